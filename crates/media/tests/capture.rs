//! Switching sources while the consumer keeps reading from the same place:
//! what the app does when a person picks another camera or microphone
//! mid-call. Runs the real device code where this machine allows (ALSA's
//! null device; no camera here, so a camera switch is refused cleanly).

use std::time::{Duration, Instant};

use ringlet_media::{read_stamp, rms, AudioCapture, AudioInput, CaptureEvent, DeviceError, VideoCapture, VideoInput};

fn wait_for<T>(mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out");
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn video_switches_source_and_size_and_a_missing_camera_changes_nothing() {
    let video = VideoCapture::start(VideoInput::TestPattern { width: 320, height: 240 }).unwrap();
    let frames = video.frames();
    let f = frames.take_timeout(Duration::from_secs(2)).expect("pattern frames");
    assert_eq!((f.width, f.height), (320, 240));
    let first = read_stamp(&f).expect("stamped").frame;

    // No camera 1000 here: a clear error, and the pattern goes on.
    match video.switch(VideoInput::Camera { index: 1000 }) {
        Err(DeviceError::NotFound(what)) => assert!(what.contains("1000")),
        other => panic!("expected NotFound, got {other:?}"),
    }
    let f = frames.take_timeout(Duration::from_secs(2)).expect("still the pattern");
    assert!(read_stamp(&f).unwrap().frame > first);

    // Another source at another size: the same mailbox delivers it.
    video.switch(VideoInput::TestPattern { width: 640, height: 360 }).unwrap();
    let f = wait_for(|| frames.take_timeout(Duration::from_millis(100)).filter(|f| f.width == 640));
    assert_eq!(f.height, 360);
    // A fresh source counts from 0 (the one-slot mailbox may have replaced
    // its first frames before we looked).
    assert!(read_stamp(&f).unwrap().frame < 15, "a fresh source: {:?}", read_stamp(&f));

    // Camera off: frames stop; back on: they resume.
    video.switch(VideoInput::Off).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let _ = frames.take_timeout(Duration::from_millis(10)); // one may have been in flight
    assert!(frames.take_timeout(Duration::from_millis(300)).is_none(), "no frames while off");
    video.switch(VideoInput::TestPattern { width: 320, height: 240 }).unwrap();
    assert!(frames.take_timeout(Duration::from_secs(2)).is_some());

    let started: Vec<_> = video.events().into_iter().filter(|e| matches!(e, CaptureEvent::Started { .. })).collect();
    assert!(started.len() >= 3, "{started:?}");
    assert!(started.contains(&CaptureEvent::Started { source: "test pattern".into(), size: Some((640, 360)) }), "{started:?}");
}

#[test]
fn audio_switches_between_tone_and_microphone_and_refuses_a_missing_one() {
    let audio = AudioCapture::start(AudioInput::Tone).unwrap();
    let frames = audio.take_frames().unwrap();
    assert!(audio.take_frames().is_none(), "taken once");
    let loud = |f: &Vec<i16>| rms(f) > 1000.0;
    let f = frames.recv_timeout(Duration::from_secs(2)).unwrap();
    assert_eq!(f.len(), ringlet_media::FRAME_SAMPLES);
    assert!(wait_for(|| frames.recv_timeout(Duration::from_millis(100)).ok().map(|f| loud(&f))), "the tone is audible");

    match audio.switch(AudioInput::Mic { id: Some("no such microphone".into()) }) {
        Err(DeviceError::NotFound(_)) => {}
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(loud(&frames.recv_timeout(Duration::from_secs(2)).unwrap()), "still the tone");

    let inputs = ringlet_media::audio_inputs().unwrap();
    if inputs.iter().any(|d| d.id == "null") {
        // ALSA's null device captures silence: the switch is audible as such.
        audio.switch(AudioInput::Mic { id: Some("null".into()) }).unwrap();
        wait_for(|| frames.recv_timeout(Duration::from_millis(100)).ok().filter(|f| rms(f) == 0.0));
        audio.switch(AudioInput::Tone).unwrap();
        wait_for(|| frames.recv_timeout(Duration::from_millis(100)).ok().filter(|f| loud(f)));
    } else {
        eprintln!("no ALSA null device here: microphone switch not exercised; inputs: {inputs:?}");
    }
    // Muted at the source: nothing comes.
    audio.switch(AudioInput::Off).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    while frames.try_recv().is_ok() {}
    assert!(frames.recv_timeout(Duration::from_millis(300)).is_err());
}

#[test]
fn the_encoder_follows_a_new_size_with_a_keyframe() {
    use ringlet_media::{EncodeJob, EncoderConfig, EncoderThread, TestPattern, Vp8Decoder};
    let (tx, rx) = std::sync::mpsc::channel();
    let enc = EncoderThread::spawn(EncoderConfig { width: 320, height: 240, ..EncoderConfig::hd() }, move |f| {
        let _ = tx.send(f);
    })
    .unwrap();
    let mut dec = Vp8Decoder::new().unwrap();
    let mut sizes = vec![];
    for (w, h) in [(320, 240), (640, 360)] {
        let mut p = TestPattern::new(w, h);
        for _ in 0..5 {
            enc.submit(EncodeJob { frame: p.next_frame().0, keyframe: false, bitrate_kbps: None });
            let f = rx.recv_timeout(Duration::from_secs(5)).expect("encoded");
            if let Some(img) = dec.decode(&f.data).unwrap() {
                sizes.push((img.width, img.height, f.keyframe));
            }
        }
    }
    enc.finish().unwrap();
    assert_eq!(sizes.len(), 10, "{sizes:?}");
    assert_eq!(sizes[4], (320, 240, false));
    assert_eq!(sizes[5], (640, 360, true), "the new size starts with a keyframe");
    assert_eq!(sizes[9].0, 640);
}
