//! Room and peer ids: accepted exactly when they match `^[A-Za-z0-9_-]{1,64}$`.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringlet_proto::{PeerId, RoomId};

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else { return };
    let valid = (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    assert_eq!(RoomId::new(s).is_ok(), valid);
    assert_eq!(PeerId::new(s).is_ok(), valid);
    // Through serde, as JSON text (escapes included).
    if let Ok(r) = serde_json::from_str::<RoomId>(s) {
        let back = serde_json::to_string(&r).unwrap();
        assert_eq!(serde_json::from_str::<RoomId>(&back).unwrap(), r);
    }
});
