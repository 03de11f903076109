//! The real capture code on whatever this machine has. Here (no sound
//! card), ALSA still offers its `null` device, which captures silence at
//! full speed: enough to run the whole path.

use std::time::Duration;

use ringlet_media::{audio_inputs, audio_outputs, DeviceError, Microphone, FRAME_SAMPLES};

#[test]
fn enumeration_works_with_or_without_devices() {
    let inputs = audio_inputs().expect("enumerating inputs is not an error, even with none");
    let outputs = audio_outputs().expect("enumerating outputs is not an error, even with none");
    eprintln!("inputs: {inputs:?}\noutputs: {outputs:?}");
}

#[test]
fn a_missing_device_is_a_clear_error() {
    match Microphone::open(Some("no such microphone")) {
        Err(DeviceError::NotFound(name)) => assert_eq!(name, "no such microphone"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a device that does not exist"),
    }
}

#[test]
fn the_null_device_captures_20_ms_frames() {
    let inputs = audio_inputs().unwrap();
    let Some(dev) = inputs.iter().find(|d| d.id == "null") else {
        eprintln!("no ALSA null device on this machine: nothing to open; inputs: {inputs:?}");
        return;
    };
    let mic = Microphone::open(Some(&dev.id)).expect("the null device opens");
    let frame = mic.frames.recv_timeout(Duration::from_secs(3)).expect("a frame within 3 s");
    assert_eq!(frame.len(), FRAME_SAMPLES);
    // And it keeps coming.
    for _ in 0..5 {
        assert_eq!(mic.frames.recv_timeout(Duration::from_secs(1)).expect("more frames").len(), FRAME_SAMPLES);
    }
    assert!(mic.events.try_recv().is_err(), "no device error");
}

#[test]
fn camera_enumeration_runs_and_a_missing_camera_is_a_clear_error() {
    // The real v4l2 query; this machine has no camera, which is not an error.
    let cams = ringlet_media::cameras().expect("enumerating cameras is not an error, even with none");
    eprintln!("cameras: {cams:?}");
    let missing = 1000;
    match ringlet_media::CameraCapture::open(missing, 1280, 720, 30) {
        Err(DeviceError::NotFound(what)) => assert!(what.contains("1000")),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened camera {missing}"),
    }
}

#[test]
fn the_null_device_plays_what_the_playout_decodes() {
    use ringlet_media::{AudioPlayout, OpusEncoder, SharedSource, Speaker, ToneSource};
    use std::time::Instant;
    let outputs = audio_outputs().unwrap();
    let Some(dev) = outputs.iter().find(|d| d.id == "null") else {
        eprintln!("no ALSA null device on this machine: nothing to open; outputs: {outputs:?}");
        return;
    };
    // A second of tone, queued as if it had arrived from the network.
    let playout = AudioPlayout::shared().unwrap();
    let (mut tone, mut enc) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap());
    let t0 = Instant::now();
    for i in 0..50u16 {
        let arrival = t0 + Duration::from_millis(20 * i as u64);
        playout.lock().unwrap().push(i, i as u32 * 960, enc.encode(&tone.next_frame()).unwrap(), arrival);
    }
    let source: SharedSource = playout.clone();
    let speaker = Speaker::open(Some(&dev.id), source).expect("the null device opens for playback");
    // The null device is not rate-limited: it drains the buffer at once.
    let deadline = Instant::now() + Duration::from_secs(5);
    let done = |s: &ringlet_media::PlayoutStats| s.decoded + s.jitter.accelerated >= 50;
    while !done(&playout.lock().unwrap().stats()) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    // A whole second arrived at once, so the buffer also sheds delay down
    // to its target; every packet is either played or shed.
    let stats = playout.lock().unwrap().stats();
    assert_eq!(stats.decoded + stats.jitter.accelerated, 50, "{stats:?}");
    assert!(stats.decoded >= 10, "{stats:?}");
    assert!(speaker.events.try_recv().is_err(), "no device error");
    drop(speaker);
    // Switching device mid-call: the same playout feeds a new speaker.
    let again = Speaker::open(Some(&dev.id), playout.clone()).expect("reopens");
    drop(again);
}

#[test]
fn a_missing_speaker_is_a_clear_error() {
    let source: ringlet_media::SharedSource = ringlet_media::AudioPlayout::shared().unwrap();
    match ringlet_media::Speaker::open(Some("no such speaker"), source) {
        Err(DeviceError::NotFound(name)) => assert_eq!(name, "no such speaker"),
        Err(e) => panic!("wrong error: {e}"),
        Ok(_) => panic!("opened a device that does not exist"),
    }
}
