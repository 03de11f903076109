//! VP8 round trips through the real libvpx.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use ringlet_media::{read_stamp, EncodeJob, EncoderConfig, EncoderThread, Latest, TestPattern, Vp8Decoder, Vp8Encoder};

fn psnr_y(a: &[u8], b: &[u8]) -> f64 {
    let mse: f64 = a.iter().zip(b).map(|(x, y)| (*x as f64 - *y as f64).powi(2)).sum::<f64>() / a.len() as f64;
    if mse == 0.0 { f64::INFINITY } else { 10.0 * (255.0f64 * 255.0 / mse).log10() }
}

#[test]
fn hd_round_trip_keeps_the_picture_and_the_stamp() {
    let config = EncoderConfig::hd();
    let mut enc = Vp8Encoder::new(config).unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    let mut pattern = TestPattern::new(config.width, config.height);
    for i in 0..30 {
        let (frame, stamp) = pattern.next_frame();
        let packets = enc.encode(&frame, false).unwrap();
        assert_eq!(packets.len(), 1, "no lag: one packet out per frame in");
        assert_eq!(packets[0].keyframe, i == 0, "frame {i}");
        let decoded = dec.decode(&packets[0].data).unwrap().expect("a picture");
        assert_eq!((decoded.width, decoded.height), (1280, 720));
        assert_eq!(read_stamp(&decoded), Some(stamp), "frame {i}: the stamp survives coding");
        let q = psnr_y(frame.y(), decoded.y());
        assert!(q > 30.0, "frame {i}: luma PSNR {q:.1} dB");
    }
}

#[test]
fn keyframes_come_on_request() {
    let config = EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() };
    let mut enc = Vp8Encoder::new(config).unwrap();
    let mut pattern = TestPattern::new(320, 240);
    let kinds: Vec<bool> = (0..6)
        .map(|i| enc.encode(&pattern.next_frame().0, i == 4).unwrap()[0].keyframe)
        .collect();
    assert_eq!(kinds, vec![true, false, false, false, true, false]);
}

/// Noise: content no bitrate can render perfectly, so the encoder spends
/// what it is allowed (the test pattern is too easy to show a difference).
fn noise(seed: u32, w: usize, h: usize) -> ringlet_media::I420Frame {
    let mut f = ringlet_media::I420Frame::black(w, h);
    let mut x = seed.wrapping_mul(2654435761).max(1);
    for (i, b) in f.data.iter_mut().enumerate() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        // A gradient with film grain: rich enough to use any bitrate, not
        // so rough that even the coarsest quantizer overshoots.
        *b = (96 + (i % w) * 64 / w) as u8 + (x >> 28) as u8;
    }
    f
}

#[test]
fn the_bitrate_follows_the_target() {
    let config = EncoderConfig { width: 640, height: 360, ..EncoderConfig::hd() };
    let bytes_at = |kbps: u32| {
        let mut enc = Vp8Encoder::new(EncoderConfig { bitrate_kbps: 2500, ..config }).unwrap();
        enc.set_bitrate(kbps).unwrap();
        (0..90u32).map(|i| enc.encode(&noise(i, 640, 360), false).unwrap()[0].data.len()).skip(30).sum::<usize>()
    };
    let low = bytes_at(300);
    let high = bytes_at(2500);
    assert!(high > low * 3, "2.5 Mbit/s gave {high} bytes, 300 kbit/s {low}");
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    let mut dec = Vp8Decoder::new().unwrap();
    assert!(dec.decode(&[0xff; 64]).is_err());
    let mut enc = Vp8Encoder::new(EncoderConfig::hd()).unwrap();
    assert!(enc.encode(&TestPattern::new(320, 240).next_frame().0, false).is_err(), "wrong size");
}

#[test]
fn the_mailbox_keeps_only_the_newest_when_the_consumer_stalls() {
    let m: Latest<u32> = Latest::default();
    assert!(!m.put(1));
    assert!(m.put(2));
    assert!(m.put(3));
    assert_eq!(m.take(), Some(3));
    assert_eq!(m.dropped(), 2);
    m.close();
    assert_eq!(m.take(), None);
}

#[test]
fn the_encoder_thread_never_blocks_capture() {
    let config = EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() };
    let out = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&out);
    let stall = Arc::new(Mutex::new(()));
    let gate = Arc::clone(&stall);
    let held = stall.lock().unwrap();
    let enc = EncoderThread::spawn(config, move |f| {
        let _wait = gate.lock().unwrap(); // the consumer is stuck
        sink.lock().unwrap().push(f);
    })
    .unwrap();
    let mut pattern = TestPattern::new(320, 240);
    let start = std::time::Instant::now();
    for _ in 0..200 {
        enc.submit(EncodeJob { frame: pattern.next_frame().0, keyframe: false, bitrate_kbps: None });
    }
    assert!(start.elapsed() < Duration::from_secs(5), "submitting blocked");
    assert!(enc.dropped() > 150, "old frames were dropped, not queued: {}", enc.dropped());
    drop(held);
    enc.finish().unwrap();
    let got = out.lock().unwrap();
    assert!(!got.is_empty() && got.len() < 50, "{} frames encoded", got.len());
    assert!(got[0].keyframe);
}
