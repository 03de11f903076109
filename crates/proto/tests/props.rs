//! Property tests of every parser of wire input: the short, always-run
//! version of the cargo-fuzz targets in `crates/proto/fuzz/`.
//!
//! Inputs are arbitrary strings, arbitrary JSON values, JSON shaped like
//! the real messages (right keys, random types in each), and valid messages
//! cut or spliced at random. Properties: nothing panics; whatever is
//! accepted is valid (ids match their pattern, sizes within limits); a
//! relayed payload comes out as valid JSON, the sender's object with `from`
//! set to the relaying peer; accepted messages round-trip.
//!
//! `PROPTEST_CASES=100000 cargo test -p ringlet-proto --test props` for a
//! longer run.

use proptest::prelude::*;
use ringlet_proto::*;
use serde_json::{json, Map, Value};

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn id() -> impl Strategy<Value = String> {
    "[A-Za-z0-9_-]{1,64}"
}

/// Strings that are often ids, sometimes nearly (empty, too long, one bad
/// character), sometimes anything.
fn idish() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => id(),
        1 => Just(String::new()),
        1 => "[A-Za-z0-9_-]{65,70}",
        1 => "[A-Za-z0-9]{0,10}[^A-Za-z0-9_-][A-Za-z0-9]{0,10}",
        1 => any::<String>(),
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter("JSON has no NaN or infinity", |f| f.is_finite()).prop_map(Value::from),
        (0u32..70000).prop_map(Value::from),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        idish().prop_map(Value::String),
        // Around the size limits (2 KiB candidate, 4 KiB join, 64 KiB SDP).
        (0usize..70_000).prop_map(|n| Value::String("x".repeat(n))),
    ]
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "roomId", "peerId", "to", "from", "sdp", "type", "candidate", "sdpMid", "sdpMLineIndex",
            "usernameFragment", "name", "token", "ok", "error", "code", "message",
        ])
        .prop_map(str::to_owned),
        "[a-zA-Z]{0,8}",
        any::<String>(),
    ]
}

/// Any JSON value, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(5, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key(), inner), 0..8).prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Either `good` or, one time in three, any JSON value at all.
fn or_any(good: impl Strategy<Value = Value> + 'static) -> BoxedStrategy<Value> {
    prop_oneof![2 => good, 1 => json_value()].boxed()
}

/// Objects with the real keys, each valid or of a random type, plus extras.
fn shaped() -> impl Strategy<Value = Value> {
    let sdp = (
        or_any(prop::sample::select(vec!["offer", "answer", "pranswer", "rollback", "bogus"]).prop_map(Value::from)),
        or_any(prop_oneof!["v=0\r\n[a-z=0-9 \r\n]{0,200}", Just(String::new())].prop_map(Value::from)),
    )
        .prop_map(|(t, s)| json!({"type": t, "sdp": s}));
    let candidate = (
        or_any("candidate:[0-9]{1,4} 1 udp [0-9]{1,10} 192\\.0\\.2\\.[0-9]{1,3} [0-9]{1,5} typ host".prop_map(Value::from)),
        or_any("[0-9]{1,2}".prop_map(Value::from)),
        or_any((0u16..4).prop_map(Value::from)),
    )
        .prop_map(|(c, m, i)| json!({"candidate": c, "sdpMid": m, "sdpMLineIndex": i}));
    (
        prop::option::of(or_any(idish().prop_map(Value::from))),
        prop::option::of(or_any(idish().prop_map(Value::from))),
        prop::option::of(or_any(idish().prop_map(Value::from))),
        prop::option::of(or_any(id().prop_map(Value::from))),
        prop::option::of(or_any(sdp)),
        prop::option::of(or_any(candidate)),
        prop::collection::vec((key(), json_value()), 0..3),
    )
        .prop_map(|(room, peer, to, from, sdp, cand, extra)| {
            let mut m = Map::new();
            for (k, v) in extra {
                m.insert(k, v);
            }
            let mut put = |k: &str, v: Option<Value>| {
                if let Some(v) = v {
                    m.insert(k.to_owned(), v);
                }
            };
            put("roomId", room);
            put("peerId", peer);
            put("to", to);
            put("from", from);
            put("sdp", sdp);
            put("candidate", cand);
            Value::Object(m)
        })
}

/// Small JSON values: any type, a few levels, short strings.
fn small_json() -> impl Strategy<Value = Value> {
    prop_oneof![Just(Value::Null), any::<bool>().prop_map(Value::Bool), number(), "[ -~]{0,16}".prop_map(Value::String)]
        .prop_recursive(3, 12, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
                prop::collection::vec(("[a-z]{1,6}", inner), 0..4).prop_map(|kv| Value::Object(kv.into_iter().collect())),
            ]
        })
}

/// A valid relay of `kind` with random extra fields and perhaps a `from`.
fn valid_relay(kind: RelayKind) -> impl Strategy<Value = Value> {
    (id(), prop::option::of(id()), prop::option::of(small_json()), prop::collection::vec(("[a-z]{1,8}", small_json()), 0..3), "[ -~]{1,300}")
        .prop_map(move |(room, to, from, extra, body)| {
            let mut m = Map::new();
            for (k, v) in extra {
                m.insert(format!("x{k}"), v);
            }
            m.insert("roomId".into(), json!(room));
            if let Some(to) = to {
                m.insert("to".into(), json!(to));
            }
            if let Some(from) = from {
                m.insert("from".into(), from);
            }
            match kind {
                RelayKind::SdpOffer => m.insert("sdp".into(), json!({"type": "offer", "sdp": body})),
                RelayKind::SdpAnswer => m.insert("sdp".into(), json!({"type": "answer", "sdp": body})),
                RelayKind::IceCandidate => {
                    m.insert("candidate".into(), json!({"candidate": body, "sdpMid": "0", "sdpMLineIndex": 0}))
                }
            };
            Value::Object(m)
        })
}

fn kind() -> impl Strategy<Value = RelayKind> {
    prop::sample::select(vec![RelayKind::SdpOffer, RelayKind::SdpAnswer, RelayKind::IceCandidate])
}

/// JSON text: any value's, a shaped message's, or one of those cut short or
/// with a few bytes replaced (still valid UTF-8).
fn text() -> impl Strategy<Value = String> {
    let source = prop_oneof![json_value(), shaped()].prop_map(|v| v.to_string());
    prop_oneof![
        3 => source.clone(),
        1 => any::<String>(),
        2 => (source, any::<prop::sample::Index>(), any::<prop::sample::Index>(), "[\\[\\]{}\",:0-9a-z\\\\ ]{0,3}").prop_map(
            |(s, a, b, ins)| {
                let cut = |i: prop::sample::Index| {
                    let mut n = i.index(s.len() + 1);
                    while !s.is_char_boundary(n) {
                        n -= 1;
                    }
                    n
                };
                let (x, y) = { let (x, y) = (cut(a), cut(b)); (x.min(y), x.max(y).min(x + 4)) };
                let y = (x..=y).rev().find(|&n| s.is_char_boundary(n)).unwrap_or(x);
                format!("{}{}{}", &s[..x], ins, &s[y..])
            }
        ),
    ]
}

/// Checks one relay parse; called on every generated text.
fn check_relay(kind: RelayKind, raw: &str, peer: &str) -> Result<(), TestCaseError> {
    check_front(kind, raw, peer)?;
    let Ok(view) = RelayView::parse(kind, raw) else { return Ok(()) };
    prop_assert!(raw.len() <= kind.max_payload());
    prop_assert!(valid_id(&view.room_id), "accepted room id {:?}", view.room_id);
    if let Some(to) = &view.to {
        prop_assert!(valid_id(to), "accepted to {:?}", to);
    }
    let out = view.with_from(peer);
    let out: Value = match serde_json::from_str(&out) {
        Ok(v) => v,
        // Numbers serde_json cannot hold as f64 (1e400) are still valid
        // JSON; check the text with a parser that does not evaluate them.
        Err(_) => {
            let raw_out: Box<serde_json::value::RawValue> = serde_json::from_str(&out)
                .map_err(|e| TestCaseError::fail(format!("with_from gave invalid JSON ({e}): {out}")))?;
            prop_assert!(raw_out.get().starts_with('{'), "not an object: {}", out);
            let m: std::collections::HashMap<String, &serde_json::value::RawValue> = serde_json::from_str(&out).unwrap();
            prop_assert_eq!(m["from"].get(), format!("\"{peer}\""));
            return Ok(());
        }
    };
    let obj = out.as_object().ok_or_else(|| TestCaseError::fail("with_from gave a non-object"))?;
    prop_assert_eq!(&obj["from"], &json!(peer));
    // Everything else is the sender's, untouched (when it parses as a Value).
    if let Ok(Value::Object(mut input)) = serde_json::from_str::<Value>(raw) {
        input.insert("from".into(), json!(peer));
        prop_assert_eq!(obj, &input);
    }
    Ok(())
}

/// The one-pass form (`parse_front`, on the text as a packet holds it)
/// takes exactly what the two-pass form takes, with the same result.
fn check_front(kind: RelayKind, raw: &str, peer: &str) -> Result<(), TestCaseError> {
    let text = format!("{raw}]");
    match (RelayView::parse(kind, raw), RelayView::parse_front(kind, &text)) {
        (Ok(a), Ok((b, rest))) => {
            prop_assert_eq!(rest.trim_start(), "]");
            prop_assert_eq!((&a.room_id, &a.to), (&b.room_id, &b.to));
            let (a, b) = (a.with_from(peer), b.with_from(peer));
            prop_assert_eq!(a.trim_end(), b.as_str());
        }
        (Ok(_), Err(e)) => prop_assert!(false, "parse_front refused what parse took ({e}): {raw}"),
        // What parse refuses, parse_front may read a front of, but never
        // the whole (the rest holds what parse refused), unless the only
        // difference is trailing space counted against the size limit.
        (Err(_), Ok((_, rest))) => prop_assert!(
            rest.trim_start() != "]" || raw.len() > kind.max_payload(),
            "parse_front took what parse refused: {raw}"
        ),
        (Err(_), Err(_)) => {}
    }
    Ok(())
}

/// JSON text spelled the ways a client might spell an `ice-candidate`:
/// the known keys (repeated at times) and odd ones, values of every type in
/// each (numbers at the edges of `sdpMLineIndex`, escapes, control
/// characters, nesting), whitespace between any tokens. What the fast path
/// of `parse_front` reads, it must read as serde_json does.
fn candidate_spellings() -> impl Strategy<Value = String> {
    const WS: &[&str] = &["", "", "", " ", "\n", "\t ", "\r\n"];
    const VALUES: &[&str] = &[
        r#""r1""#, r#""bob""#, r#""bad id""#, r#""""#, r#""é""#, r#""a\"b""#, r#""\u0041""#, "\"\u{1}\"",
        r#""candidate:1 1 udp 2122260223 192.0.2.1 50000 typ host xxxxxxxxxxxxxxxxxxxx""#,
        "null", "true", "false", "0", "-0", "01", "1.0", "1e2", "-1", "65535", "65536", "99999", "1.5e-3", "1e400", "-", "1.",
        "[]", "{}", r#"[1,{"a":[null,"x"]}]"#, "[1,]", r#"{"a":1,}"#, "[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]",
    ];
    fn pick(list: &'static [&'static str]) -> BoxedStrategy<&'static str> {
        prop::sample::select(list).boxed()
    }
    fn member(key: BoxedStrategy<&'static str>, value: BoxedStrategy<String>) -> BoxedStrategy<String> {
        (pick(WS), key, pick(WS), pick(WS), value, pick(WS)).prop_map(|(a, k, b, c, v, d)| format!("{a}\"{k}\"{b}:{c}{v}{d}")).boxed()
    }
    /// Members that make a valid candidate, some random ones, in any order.
    fn object(must: Vec<BoxedStrategy<String>>, more: BoxedStrategy<String>) -> BoxedStrategy<String> {
        (must, prop::collection::vec(more, 0..4))
            .prop_map(|(mut m, more)| {
                m.extend(more);
                m
            })
            .prop_shuffle()
            .prop_map(|m| format!("{{{}}}", m.join(",")))
            .boxed()
    }
    let values = || pick(VALUES).prop_map(String::from).boxed();
    let mostly = |good: &'static str| prop_oneof![4 => Just(good.to_owned()), 1 => values()].boxed();
    const INDEXES: &[&str] = &["0", "-0", "01", "00", "1.0", "1e2", "1E2", "-1", "65535", "65536", "99999", "100000", "null", "\"0\""];
    let index = (pick(WS), pick(WS), pick(INDEXES)).prop_map(|(a, b, v)| format!("{a}\"sdpMLineIndex\":{b}{v}")).boxed();
    let inner_keys = pick(&["candidate", "sdpMid", "usernameFragment", "x"]);
    let inner = object(
        vec![member(pick(&["candidate"]), mostly(r#""candidate:1 1 udp 1 192.0.2.1 9 typ host""#))],
        prop_oneof![member(inner_keys, values()), index].boxed(),
    );
    let outer_value = prop_oneof![3 => values(), 1 => inner.clone()].boxed();
    let outer_keys = pick(&["roomId", "candidate", "to", "to", "from", "sdp", "t", "x"]);
    object(
        vec![member(pick(&["roomId"]), mostly(r#""r1""#)), member(pick(&["candidate"]), inner)],
        member(outer_keys, outer_value),
    )
}

proptest! {
    // Cheap cases, and the fast path's edges are many: more of them.
    #![proptest_config(ProptestConfig { cases: 2048, max_shrink_iters: 2000, .. ProptestConfig::default() })]
    #[test]
    fn candidates_however_spelled_read_as_serde_reads_them(raw in candidate_spellings(), peer in id()) {
        check_relay(RelayKind::IceCandidate, &raw, &peer)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 2000, .. ProptestConfig::default() })]

    #[test]
    fn join_never_panics_and_accepts_only_valid(raw in text()) {
        if let Ok(req) = JoinRequest::parse(&raw) {
            prop_assert!(raw.len() <= limits::MAX_JOIN);
            prop_assert!(valid_id(req.room_id().as_str()));
            if let Some(p) = req.peer_id() { prop_assert!(valid_id(p.as_str())); }
            if let Some(n) = req.name() { prop_assert!(n.chars().count() <= limits::MAX_NAME_CHARS); }
            // Round trip: what we would send parses back to the same request.
            let back = serde_json::to_string(&req).unwrap();
            prop_assert_eq!(JoinRequest::parse(&back).unwrap(), req);
        }
        // The serde entry point takes what parse takes, as the same request.
        if let Ok(req) = JoinRequest::parse(&raw) {
            prop_assert_eq!(serde_json::from_str::<JoinRequest>(&raw).unwrap(), req);
        }
    }

    #[test]
    fn join_of_any_json_value(v in prop_oneof![json_value(), shaped()]) {
        let raw = v.to_string();
        if let Ok(req) = JoinRequest::parse(&raw) {
            prop_assert_eq!(req.room_id().as_str(), v.as_str().or_else(|| v["roomId"].as_str()).unwrap());
        }
    }

    #[test]
    fn leave_never_panics_and_round_trips(raw in text()) {
        if let Ok(req) = LeaveRequest::parse(&raw) {
            prop_assert!(valid_id(req.room_id.as_str()));
            let back = serde_json::to_string(&req).unwrap();
            prop_assert_eq!(LeaveRequest::parse(&back).unwrap(), req);
        }
    }

    #[test]
    fn relay_never_panics_and_with_from_is_valid_json(k in kind(), raw in text(), peer in id()) {
        check_relay(k, &raw, &peer)?;
    }

    #[test]
    fn relay_of_shaped_json(k in kind(), v in shaped(), peer in id()) {
        check_relay(k, &v.to_string(), &peer)?;
    }

    #[test]
    fn valid_relays_are_accepted_and_get_their_from(k in kind(), v in kind().prop_flat_map(valid_relay), peer in id()) {
        // `v` is valid for its own kind; for the other kinds it may or may not be.
        let raw = v.to_string();
        let own = if v.get("candidate").is_some() { RelayKind::IceCandidate }
            else if v["sdp"]["type"] == "offer" { RelayKind::SdpOffer } else { RelayKind::SdpAnswer };
        let view = RelayView::parse(own, &raw);
        prop_assert!(view.is_ok(), "refused a valid {:?}: {:?} {}", own, view.err(), raw);
        let view = view.unwrap();
        prop_assert_eq!(view.room_id.as_ref(), v["roomId"].as_str().unwrap());
        prop_assert_eq!(view.to.as_deref(), v.get("to").and_then(Value::as_str));
        check_relay(own, &raw, &peer)?;
        check_relay(k, &raw, &peer)?;
        // And the typed form the engine reads parses what was relayed.
        let out = view.with_from(&peer);
        match own {
            RelayKind::IceCandidate => {
                let m: CandidateMessage = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(m.from.map(String::from), Some(peer.clone()));
            }
            _ => {
                let m: SdpMessage = serde_json::from_str(&out).unwrap();
                prop_assert_eq!(m.from.map(String::from), Some(peer.clone()));
            }
        }
    }

    #[test]
    fn ids_accept_exactly_their_pattern(s in idish()) {
        prop_assert_eq!(RoomId::new(s.clone()).is_ok(), valid_id(&s));
        prop_assert_eq!(PeerId::new(s.clone()).is_ok(), valid_id(&s));
        let via_serde = serde_json::from_value::<RoomId>(json!(s));
        prop_assert_eq!(via_serde.is_ok(), valid_id(&s));
        if let Ok(r) = via_serde {
            prop_assert_eq!(serde_json::to_value(&r).unwrap(), json!(s));
        }
    }

    /// What clients parse from the server (the engine and the web client
    /// read these): any JSON must give a value or an error, never a panic.
    #[test]
    fn client_side_types_never_panic(v in prop_oneof![json_value(), shaped()]) {
        let _ = serde_json::from_value::<JoinAck>(v.clone());
        let _ = serde_json::from_value::<Ack<HeartbeatAck>>(v.clone());
        let _ = serde_json::from_value::<ErrorEvent>(v.clone());
        let _ = serde_json::from_value::<PeerJoined>(v.clone());
        let _ = serde_json::from_value::<PeerLeft>(v.clone());
        let _ = serde_json::from_value::<SdpMessage>(v.clone());
        let _ = serde_json::from_value::<CandidateMessage>(v.clone());
        let _ = serde_json::from_value::<JoinParams>(v);
    }
}

/// Found by the fuzzers: a relay whose sender set `from` and put a number
/// beyond f64 elsewhere (valid JSON, accepted by the zero-copy parse) made
/// `with_from` panic while rebuilding the object as a `serde_json::Value`.
#[test]
fn with_from_keeps_numbers_beyond_f64() {
    for raw in [
        r#"{"roomId":"r","from":"mallory","x":1e400,"candidate":{"candidate":"c"}}"#,
        r#"{"from":null,"roomId":"r","x":[-1e999],"candidate":{"candidate":"c"}}"#,
        r#"{"roomId":"r","from":1,"x":123456789012345678901234567890e300,"sdp":{"type":"offer","sdp":"v=0"}}"#,
    ] {
        let kind = if raw.contains("candidate") { RelayKind::IceCandidate } else { RelayKind::SdpOffer };
        let view = RelayView::parse(kind, raw).unwrap();
        let out = view.with_from("alice");
        let m: std::collections::HashMap<String, &serde_json::value::RawValue> = serde_json::from_str(&out).unwrap();
        assert_eq!(m["from"].get(), r#""alice""#, "{out}");
        assert!(out.contains("e400") || out.contains("e999") || out.contains("e300"), "{out}");
    }
}

/// A `from` written with an escape (`"fr\u006fm"`) is still `from`.
#[test]
fn escaped_from_key_is_replaced_too() {
    let raw = r#"{"roomId":"r","fr\u006fm":"mallory","candidate":{"candidate":"c"}}"#;
    let out: Value = serde_json::from_str(&RelayView::parse(RelayKind::IceCandidate, raw).unwrap().with_from("alice")).unwrap();
    assert_eq!(out["from"], "alice");
    assert_eq!(out.as_object().unwrap().len(), 3);
}
