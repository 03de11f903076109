//! VP8 encode and decode time per 1280×720 frame, one thread, real-time
//! settings, on the synthetic pattern. `cargo bench -p ringlet-media`.

use std::time::Instant;

use ringlet_media::{EncoderConfig, I420Frame, TestPattern, Vp8Decoder, Vp8Encoder};

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

/// The test pattern plus film grain: closer to a camera's noisy picture
/// than the clean pattern, which codes almost for free.
fn grainy(pattern: &mut TestPattern, seed: u32) -> I420Frame {
    let mut f = pattern.next_frame().0;
    let mut x = seed.wrapping_mul(2654435761).max(1);
    for b in f.data.iter_mut() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        *b = b.saturating_add((x >> 29) as u8);
    }
    f
}

fn main() {
    for content in ["pattern", "grainy"] {
        run(content);
    }
}

fn run(content: &str) {
    let config = EncoderConfig::hd();
    let mut enc = Vp8Encoder::new(config).expect("encoder");
    let mut dec = Vp8Decoder::new().expect("decoder");
    let mut pattern = TestPattern::new(config.width, config.height);
    let frames: Vec<_> = (0..330u32)
        .map(|i| if content == "pattern" { pattern.next_frame().0 } else { grainy(&mut pattern, i) })
        .collect();
    let (mut e, mut d, mut bytes) = (Vec::new(), Vec::new(), 0usize);
    for (i, f) in frames.iter().enumerate() {
        let t = Instant::now();
        let pkts = enc.encode(f, false).expect("encode");
        let te = t.elapsed().as_secs_f64() * 1e3;
        let t = Instant::now();
        for p in &pkts {
            dec.decode(&p.data).expect("decode");
            bytes += p.data.len();
        }
        let td = t.elapsed().as_secs_f64() * 1e3;
        if i >= 30 {
            e.push(te);
            d.push(td);
        }
    }
    println!(
        "{{\"bench\":\"vp8_720p\",\"content\":\"{content}\",\"frames\":{},\"bitrate_kbps\":{},\"encode_ms\":{{\"p50\":{:.2},\"p95\":{:.2}}},\"decode_ms\":{{\"p50\":{:.2},\"p95\":{:.2}}},\"avg_frame_bytes\":{}}}",
        e.len(),
        config.bitrate_kbps,
        pct(&mut e, 0.5),
        pct(&mut e, 0.95),
        pct(&mut d, 0.5),
        pct(&mut d, 0.95),
        bytes / frames.len()
    );
}
