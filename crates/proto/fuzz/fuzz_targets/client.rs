//! What clients parse from the server: acks, errors, presence, relays.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringlet_proto::*;

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let _ = serde_json::from_str::<JoinAck>(s);
    let _ = serde_json::from_str::<Ack<HeartbeatAck>>(s);
    let _ = serde_json::from_str::<ErrorEvent>(s);
    let _ = serde_json::from_str::<PeerJoined>(s);
    let _ = serde_json::from_str::<PeerLeft>(s);
    let _ = serde_json::from_str::<SdpMessage>(s);
    let _ = serde_json::from_str::<CandidateMessage>(s);
    if let Ok(ack) = serde_json::from_str::<JoinAck>(s) {
        let back = serde_json::to_string(&ack).unwrap();
        assert_eq!(serde_json::from_str::<JoinAck>(&back).unwrap(), ack);
    }
});
