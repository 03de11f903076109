//! Relayed payloads (`sdp-offer`, `sdp-answer`, `ice-candidate`): the
//! zero-copy validation, its fast path, and the `from` rewrite. The first byte picks the
//! event; the rest is the payload.
#![no_main]
use std::collections::HashMap;

use libfuzzer_sys::fuzz_target;
use ringlet_proto::{CandidateMessage, RelayKind, RelayView, SdpMessage};
use serde_json::value::RawValue;

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fuzz_target!(|data: &[u8]| {
    let Some((&k, rest)) = data.split_first() else { return };
    let kind = [RelayKind::SdpOffer, RelayKind::SdpAnswer, RelayKind::IceCandidate][k as usize % 3];
    let Ok(raw) = std::str::from_utf8(rest) else { return };
    // The one-pass form, whose fast path reads plain candidates without
    // serde_json, takes exactly what serde_json takes, read the same way.
    let text = format!("{raw}]");
    match (RelayView::parse(kind, raw), RelayView::parse_front(kind, &text)) {
        (Ok(a), Ok((b, rest))) => {
            assert_eq!(rest.trim_start(), "]");
            assert_eq!((&a.room_id, &a.to), (&b.room_id, &b.to));
            assert_eq!(a.with_from("p").trim_end(), b.with_from("p"));
        }
        (Ok(_), Err(e)) => panic!("parse_front refused what parse took: {e}"),
        // A front of what parse refused may read (the rest then holds the
        // refused part), or trailing space may tip the size limit.
        (Err(_), Ok((_, rest))) => assert!(rest.trim_start() != "]" || raw.len() > kind.max_payload()),
        (Err(_), Err(_)) => {}
    }
    let Ok(view) = RelayView::parse(kind, raw) else { return };
    assert!(raw.len() <= kind.max_payload());
    assert!(valid_id(&view.room_id));
    if let Some(to) = &view.to {
        assert!(valid_id(to));
    }
    let out = view.with_from("fuzz-peer");
    // Valid JSON, an object, `from` replaced, nothing else changed.
    let fields: HashMap<String, &RawValue> = serde_json::from_str(&out).expect("with_from gives a JSON object");
    assert_eq!(fields["from"].get(), "\"fuzz-peer\"");
    if let Ok(input) = serde_json::from_str::<HashMap<String, &RawValue>>(raw) {
        for (key, value) in &input {
            if key != "from" {
                assert_eq!(fields[key].get(), value.get(), "field {key} changed");
            }
        }
        assert_eq!(fields.len(), input.len() + usize::from(!input.contains_key("from")));
    }
    // What the engine reads back from the relay.
    match kind {
        RelayKind::IceCandidate => {
            let _ = serde_json::from_str::<CandidateMessage>(&out);
        }
        _ => {
            let _ = serde_json::from_str::<SdpMessage>(&out);
        }
    }
});
