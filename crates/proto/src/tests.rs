use super::*;
use serde_json::json;

#[test]
fn seed_join_is_a_bare_string() {
    let j: JoinRequest = serde_json::from_value(json!("room-1")).unwrap();
    assert_eq!(j, JoinRequest::Bare(RoomId::new("room-1").unwrap()));
    assert_eq!(j.peer_id(), None);
}

#[test]
fn extended_join_parses_every_field() {
    let j = JoinRequest::parse(r#"{"roomId":"r_1","peerId":"p-1","token":"t","name":"Ada"}"#).unwrap();
    assert_eq!(j.room_id().as_str(), "r_1");
    assert_eq!(j.peer_id().unwrap().as_str(), "p-1");
    assert_eq!(j.token(), Some("t"));
    assert_eq!(j.name(), Some("Ada"));
    // and round-trips
    let back = serde_json::to_value(&j).unwrap();
    assert_eq!(back, json!({"roomId":"r_1","peerId":"p-1","token":"t","name":"Ada"}));
}

#[test]
fn join_refusals_name_their_reason() {
    let code = |s: &str| JoinRequest::parse(s).unwrap_err().code();
    assert_eq!(code(r#""""#), ErrorCode::InvalidRoom);
    assert_eq!(code(r#""../etc""#), ErrorCode::InvalidRoom);
    assert_eq!(code(&format!("\"{}\"", "a".repeat(65))), ErrorCode::InvalidRoom);
    assert_eq!(code(r#"{"roomId":"ok","peerId":"bad id"}"#), ErrorCode::InvalidPeerId);
    assert_eq!(code(r#"{"roomId":"ok","peerId":7}"#), ErrorCode::InvalidPeerId);
    assert_eq!(code(r#"{"roomId":"sp ace"}"#), ErrorCode::InvalidRoom);
    for bad in ["null", "42", "[]", "true", r#"{}"#, r#"{"roomId":5}"#, "{", ""] {
        assert_eq!(code(bad), ErrorCode::InvalidPayload, "{bad}");
    }
    assert_eq!(code(&format!("\"{}\"", "a".repeat(5000))), ErrorCode::TooLarge);
    let long_name = format!(r#"{{"roomId":"r","name":"{}"}}"#, "n".repeat(65));
    assert_eq!(code(&long_name), ErrorCode::TooLarge);
}

#[test]
fn ids_accept_exactly_the_documented_alphabet() {
    assert!(RoomId::new("A-z_09").is_ok());
    assert!(RoomId::new("a".repeat(64)).is_ok());
    for bad in ["", "a b", "é", "a/b", "a.b", "%2e"] {
        assert!(RoomId::new(bad).is_err(), "{bad}");
        assert!(PeerId::new(bad).is_err(), "{bad}");
    }
    assert!(serde_json::from_value::<RoomId>(json!("no way")).is_err());
}

#[test]
fn seed_sdp_shape_parses() {
    // What the seed's client emits: {roomId, sdp: RTCSessionDescription}.
    let m: SdpMessage = serde_json::from_value(json!({
        "roomId": "room-1",
        "sdp": {"type": "offer", "sdp": "v=0\r\n"}
    }))
    .unwrap();
    assert_eq!(m.sdp.kind, SdpType::Offer);
    assert_eq!(m.to, None);
    let view =
        RelayView::parse(RelayKind::SdpOffer, r#"{"roomId":"room-1","sdp":{"type":"offer","sdp":"v=0\r\n"}}"#).unwrap();
    assert_eq!(view.room_id, "room-1");
}

#[test]
fn seed_candidate_shape_parses() {
    let m: CandidateMessage = serde_json::from_value(json!({
        "roomId": "room-1",
        "candidate": {"candidate": "candidate:0 1 UDP 2122252543 192.0.2.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}
    }))
    .unwrap();
    assert_eq!(m.candidate.sdp_mline_index, Some(0));
    assert_eq!(m.candidate.sdp_mid.as_deref(), Some("0"));
    // A browser's RTCIceCandidate.toJSON() also carries usernameFragment, and
    // Rust peers send an empty sdpMid; both are fine.
    let m: CandidateMessage = serde_json::from_value(json!({
        "roomId": "room-1",
        "candidate": {"candidate": "", "sdpMid": "", "sdpMLineIndex": null, "usernameFragment": "abcd"}
    }))
    .unwrap();
    assert_eq!(m.candidate.username_fragment.as_deref(), Some("abcd"));
}

#[test]
fn relay_with_from_keeps_every_field_and_replaces_a_spoofed_from() {
    let raw = r#"{"roomId":"r","t":12.5,"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0},"to":"b"}"#;
    let v = RelayView::parse(RelayKind::IceCandidate, raw).unwrap();
    assert_eq!(v.to.as_deref(), Some("b"));
    let out: serde_json::Value = serde_json::from_str(&v.with_from("a")).unwrap();
    assert_eq!(
        out,
        json!({"from":"a","roomId":"r","t":12.5,"candidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0},"to":"b"})
    );

    let spoof = r#"{"roomId":"r","from":"mallory","sdp":{"type":"answer","sdp":"v=0"}}"#;
    let v = RelayView::parse(RelayKind::SdpAnswer, spoof).unwrap();
    let out: serde_json::Value = serde_json::from_str(&v.with_from("a")).unwrap();
    assert_eq!(out["from"], "a");
    // A null `from` is replaced too (JSON.parse keeps the last of two keys).
    let null_from = r#"{"roomId":"r","candidate":{"candidate":"c"},"from":null}"#;
    let v = RelayView::parse(RelayKind::IceCandidate, null_from).unwrap();
    let text = v.with_from("a");
    assert_eq!(text.matches("\"from\"").count(), 1, "{text}");
    let cand_out: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(cand_out["from"], "a");
    // It parses as the typed message too.
    let typed: SdpMessage = serde_json::from_value(out).unwrap();
    assert_eq!(typed.from.unwrap().as_str(), "a");
}

#[test]
fn relay_refuses_bad_input_with_a_reason() {
    let code = |k, s: &str| RelayView::parse(k, s).unwrap_err().code();
    use RelayKind::*;
    for bad in ["null", "1", "\"x\"", "[]", "{", "{}", r#"{"roomId":null}"#, r#"{"roomId":"r"}"#] {
        assert_eq!(code(SdpOffer, bad), ErrorCode::InvalidPayload, "{bad}");
        assert_eq!(code(IceCandidate, bad), ErrorCode::InvalidPayload, "{bad}");
    }
    assert_eq!(code(SdpOffer, r#"{"roomId":"../x","sdp":{"type":"offer","sdp":"v"}}"#), ErrorCode::InvalidRoom);
    assert_eq!(code(SdpOffer, r#"{"roomId":"r","sdp":{"type":"answer","sdp":"v"}}"#), ErrorCode::InvalidPayload);
    assert_eq!(code(SdpAnswer, r#"{"roomId":"r","sdp":{"type":"offer","sdp":"v"}}"#), ErrorCode::InvalidPayload);
    assert_eq!(code(SdpOffer, r#"{"roomId":"r","sdp":{"type":"bogus","sdp":"v"}}"#), ErrorCode::InvalidPayload);
    assert_eq!(code(SdpOffer, r#"{"roomId":"r","sdp":"v=0"}"#), ErrorCode::InvalidPayload);
    assert_eq!(
        code(SdpOffer, r#"{"roomId":"r","to":"no one","sdp":{"type":"offer","sdp":"v"}}"#),
        ErrorCode::InvalidPeerId
    );
    assert_eq!(code(IceCandidate, r#"{"roomId":"r","candidate":{"candidate":5}}"#), ErrorCode::InvalidPayload);
    assert_eq!(code(IceCandidate, r#"{"roomId":"r","candidate":null}"#), ErrorCode::InvalidPayload);

    let big_sdp = format!(r#"{{"roomId":"r","sdp":{{"type":"offer","sdp":"{}"}}}}"#, "v".repeat(limits::MAX_SDP + 1));
    assert_eq!(code(SdpOffer, &big_sdp), ErrorCode::TooLarge);
    let ok_sdp = format!(r#"{{"roomId":"r","sdp":{{"type":"offer","sdp":"{}"}}}}"#, "v".repeat(limits::MAX_SDP));
    assert!(RelayView::parse(SdpOffer, &ok_sdp).is_ok());
    // The limit is the SDP's text: 4,000 lines of 16 bytes (64,000) are
    // 72,000 bytes of JSON with their `\r\n` escaped, and pass.
    let lines = r"a=x-0123456789\r\n".repeat(4000);
    let escaped = format!(r#"{{"roomId":"r","sdp":{{"type":"offer","sdp":"{lines}"}}}}"#);
    assert!(escaped.len() > limits::MAX_SDP + limits::MAX_ENVELOPE);
    let view = RelayView::parse(SdpOffer, &escaped).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(view.room_id, "r");
    let over = format!(r#"{{"roomId":"r","sdp":{{"type":"offer","sdp":"{}"}}}}"#, r"a=x-0123456789\r\n".repeat(4100));
    assert_eq!(code(SdpOffer, &over), ErrorCode::TooLarge, "65,600 bytes of SDP");
    let big_cand =
        format!(r#"{{"roomId":"r","candidate":{{"candidate":"{}"}}}}"#, "c".repeat(limits::MAX_CANDIDATE + 1));
    assert_eq!(code(IceCandidate, &big_cand), ErrorCode::TooLarge);
    let huge = format!(r#"{{"roomId":"r","pad":"{}","candidate":{{"candidate":"c"}}}}"#, "p".repeat(1 << 20));
    assert_eq!(code(IceCandidate, &huge), ErrorCode::TooLarge);
}

#[test]
fn leave_parses_and_refuses_readably() {
    assert_eq!(LeaveRequest::parse(r#"{"roomId":"r"}"#).unwrap().room_id.as_str(), "r");
    let code = |s: &str| LeaveRequest::parse(s).unwrap_err().code();
    assert_eq!(code("null"), ErrorCode::InvalidPayload);
    assert_eq!(code(r#"{"roomId":"a b"}"#), ErrorCode::InvalidRoom);
    assert_eq!(code(&format!(r#"{{"roomId":"r","pad":"{}"}}"#, "p".repeat(5000))), ErrorCode::TooLarge);
}

#[test]
fn acks_have_the_documented_shape() {
    let ok: JoinAck = Ack::Ok(JoinAccepted {
        room_id: RoomId::new("r").unwrap(),
        peer_id: PeerId::new("p").unwrap(),
        peers: vec![PeerInfo { peer_id: PeerId::new("q").unwrap(), name: None }],
        polite: true,
        ice_servers: vec![],
        resumed: false,
        token: None,
    });
    let v = serde_json::to_value(&ok).unwrap();
    assert_eq!(
        v,
        json!({"ok":true,"roomId":"r","peerId":"p","peers":[{"peerId":"q"}],"polite":true,"iceServers":[],"resumed":false})
    );
    assert_eq!(serde_json::from_value::<JoinAck>(v).unwrap(), ok);

    let err: JoinAck = Ack::Err(ErrorBody { code: ErrorCode::RoomFull, message: "full".into() });
    let v = serde_json::to_value(&err).unwrap();
    assert_eq!(v, json!({"ok":false,"error":{"code":"room-full","message":"full"}}));
    assert_eq!(serde_json::from_value::<JoinAck>(v).unwrap(), err);
}

#[test]
fn presence_events_have_the_documented_shape() {
    let left = PeerLeft {
        room_id: RoomId::new("r").unwrap(),
        peer_id: PeerId::new("p").unwrap(),
        reason: LeaveReason::Timeout,
    };
    assert_eq!(serde_json::to_value(&left).unwrap(), json!({"roomId":"r","peerId":"p","reason":"timeout"}));
    let e =
        ErrorEvent { code: ErrorCode::NotInRoom, message: "m".into(), event: Some("sdp-offer".into()), room_id: None };
    assert_eq!(serde_json::to_value(&e).unwrap(), json!({"code":"not-in-room","message":"m","event":"sdp-offer"}));
}

#[test]
fn error_codes_round_trip_and_unknown_ones_still_read() {
    for c in ErrorCode::ALL {
        let json = serde_json::to_string(&c).unwrap();
        assert_eq!(json, format!("\"{}\"", c.as_str()));
        assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), c);
    }
    // A newer server's code must not make an older client's ack unreadable.
    let ack: JoinAck = serde_json::from_str(r#"{"ok":false,"error":{"code":"something-new","message":"m"}}"#).unwrap();
    assert!(matches!(ack, Ack::Err(ErrorBody { code: ErrorCode::Other, .. })));
}

#[test]
fn random_room_ids_are_valid_base64url_of_their_bits() {
    let id = RoomId::from_random([0xff; 16]);
    assert_eq!(id.as_str(), format!("D{}", "_".repeat(21)), "top 4 of 132 bits are zero");
    assert_eq!(RoomId::from_random([0; 16]).as_str(), "A".repeat(22));
    let id = RoomId::from_random(*b"0123456789abcdef");
    assert_eq!(RoomId::new(id.as_str()).unwrap(), id);
    assert_ne!(RoomId::from_random([1; 16]), RoomId::from_random([2; 16]));
}
