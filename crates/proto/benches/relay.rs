//! What reading one relayed ICE candidate costs: serde_json's full parse
//! (`RelayView::parse`, the path for everything unusual) against the fast
//! path `RelayView::parse_front` takes for the plain shape. The message is
//! the one the seed's load generator sends (about 300 bytes).
//!
//! `cargo bench -p ringlet-proto --bench relay`

use std::hint::black_box;
use std::time::Instant;

use ringlet_proto::{RelayKind, RelayView};

fn main() {
    let pad = "x".repeat(180);
    let raw = format!(
        r#"{{"roomId":"bench-17-k3j9x2","t":12345.678,"candidate":{{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 50017 typ host {pad}","sdpMid":"0","sdpMLineIndex":0}}}}"#
    );
    let packet = format!("{raw}]");
    let kind = RelayKind::IceCandidate;
    assert!(RelayView::parse(kind, &raw).is_ok() && RelayView::parse_front(kind, &packet).is_ok());
    let rounds = 5;
    let n = 400_000;
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..n {
            black_box(RelayView::parse(kind, black_box(&raw)).unwrap());
        }
        let serde = t.elapsed().as_nanos() as f64 / n as f64;
        let t = Instant::now();
        for _ in 0..n {
            black_box(RelayView::parse_front(kind, black_box(&packet)).unwrap());
        }
        let fast = t.elapsed().as_nanos() as f64 / n as f64;
        println!("{} bytes: serde_json {serde:6.0} ns, fast path {fast:6.0} ns per candidate", raw.len());
    }
}
