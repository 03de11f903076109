//! `join` payloads: the bare-string and object forms, via `parse` and serde.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringlet_proto::{limits, JoinRequest};

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    let Ok(req) = JoinRequest::parse(raw) else { return };
    assert!(raw.len() <= limits::MAX_JOIN);
    assert!(valid_id(req.room_id().as_str()));
    if let Some(p) = req.peer_id() {
        assert!(valid_id(p.as_str()));
    }
    if let Some(n) = req.name() {
        assert!(n.chars().count() <= limits::MAX_NAME_CHARS);
    }
    let back = serde_json::to_string(&req).unwrap();
    assert_eq!(JoinRequest::parse(&back).unwrap(), req);
    assert_eq!(serde_json::from_str::<JoinRequest>(raw).unwrap(), req);
});
