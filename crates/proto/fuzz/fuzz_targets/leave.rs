//! `leave` payloads.
#![no_main]
use libfuzzer_sys::fuzz_target;
use ringlet_proto::LeaveRequest;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = std::str::from_utf8(data) else { return };
    if let Ok(req) = LeaveRequest::parse(raw) {
        let back = serde_json::to_string(&req).unwrap();
        assert_eq!(LeaveRequest::parse(&back).unwrap(), req);
    }
});
