//! The local side: camera and microphone (or the test sources), running
//! from the pre-join screen on, feeding the preview, the level meter and,
//! once in a call, the encoders.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringlet_call::{AudioPacket, AudioSender, VideoFrame, VideoSender};
use ringlet_media::{
    i420_to_jpeg, rms, AudioCapture, AudioInput, CaptureEvent, DeviceError, EncodeJob, EncoderConfig, EncoderThread,
    OpusEncoder, VideoCapture, VideoInput,
};

use crate::frames::{now_us, FrameHub};

/// Width of the preview sent to the page (a tile needs no more).
const PREVIEW_WIDTH: usize = 640;
const PREVIEW_QUALITY: u8 = 70;

/// Where encoded media goes while in a call.
#[derive(Clone)]
pub(crate) struct Sinks {
    pub video: VideoSender,
    pub audio: AudioSender,
}

#[derive(Default)]
struct Shared {
    sinks: Mutex<Option<Sinks>>,
    mic_on: AtomicBool,
    camera_on: AtomicBool,
    /// Microphone level of the last 20 ms (RMS, 0..32767).
    level: AtomicU32,
    keyframe: AtomicBool,
    bitrate_kbps: AtomicU32,
    video_frames_sent: AtomicU64,
    audio_frames_sent: AtomicU64,
    stop: AtomicBool,
}

/// Capture plus the pumps that hand frames on. Dropping it stops all.
pub struct LocalMedia {
    video: VideoCapture,
    audio: AudioCapture,
    video_input: Mutex<VideoInput>,
    shared: Arc<Shared>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

/// What the local side reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LocalStats {
    pub level: u32,
    pub video_frames_sent: u64,
    pub audio_frames_sent: u64,
}

impl LocalMedia {
    /// Opens both sources and starts the preview pump (frames go to the
    /// page when it shows the preview) and the level meter.
    pub fn start(video: VideoInput, audio: AudioInput, hub: FrameHub) -> Result<LocalMedia, DeviceError> {
        let video_cap = VideoCapture::start(video.clone())?;
        let audio_cap = AudioCapture::start(audio)?;
        let shared = Arc::new(Shared::default());
        shared.mic_on.store(true, Ordering::Relaxed);
        shared.camera_on.store(video != VideoInput::Off, Ordering::Relaxed);
        shared.keyframe.store(true, Ordering::Relaxed);

        let out = Arc::clone(&shared);
        let encoder = EncoderThread::spawn(EncoderConfig::hd(), move |f| {
            let sink = out.sinks.lock().ok().and_then(|s| s.as_ref().map(|s| s.video.clone()));
            if let Some(sink) = sink {
                if sink.send(VideoFrame::outgoing(f.data, f.keyframe)) {
                    out.video_frames_sent.fetch_add(1, Ordering::Relaxed);
                } else {
                    // Dropped on the way: the peer needs a keyframe to recover.
                    out.keyframe.store(true, Ordering::Relaxed);
                }
            }
        })
        .map_err(|e| DeviceError::Backend(e.to_string()))?;

        let (frames, s, preview_hub) = (video_cap.frames(), Arc::clone(&shared), hub.clone());
        let video_pump = std::thread::Builder::new()
            .name("video-pump".into())
            .spawn(move || {
                while !s.stop.load(Ordering::Relaxed) {
                    let Some(frame) = frames.take_timeout(Duration::from_millis(100)) else { continue };
                    if preview_hub.wants_preview() {
                        match i420_to_jpeg(&frame, PREVIEW_WIDTH, PREVIEW_QUALITY) {
                            Ok(jpeg) => preview_hub.publish_preview(&jpeg, now_us()),
                            Err(e) => tracing::debug!(error = %e, "preview"),
                        }
                    }
                    let in_call = s.sinks.lock().map(|x| x.is_some()).unwrap_or(false);
                    if in_call && s.camera_on.load(Ordering::Relaxed) {
                        let kbps = s.bitrate_kbps.load(Ordering::Relaxed);
                        encoder.submit(EncodeJob {
                            frame,
                            keyframe: s.keyframe.swap(false, Ordering::Relaxed),
                            bitrate_kbps: (kbps > 0).then_some(kbps),
                        });
                    }
                }
                let _ = encoder.finish();
            })
            .map_err(|e| DeviceError::Backend(e.to_string()))?;

        let pcm = audio_cap.take_frames().ok_or_else(|| DeviceError::Backend("audio frames already taken".into()))?;
        let s = Arc::clone(&shared);
        let audio_pump = std::thread::Builder::new()
            .name("audio-pump".into())
            .spawn(move || {
                let Ok(mut opus) = OpusEncoder::new(32_000) else { return };
                // Some devices (ALSA's null) deliver faster than real time:
                // never send more than real time allows, or the network
                // floods. A small burst is fine (device buffers come in
                // bunches).
                let (mut allowance, mut last) = (5.0f64, Instant::now());
                while !s.stop.load(Ordering::Relaxed) {
                    let Ok(frame) = pcm.recv_timeout(Duration::from_millis(100)) else { continue };
                    s.level.store(rms(&frame) as u32, Ordering::Relaxed);
                    let now = Instant::now();
                    allowance = (allowance + now.duration_since(last).as_secs_f64() / 0.020).min(5.0);
                    last = now;
                    if allowance < 1.0 {
                        continue;
                    }
                    allowance -= 1.0;
                    let sink = s.sinks.lock().ok().and_then(|x| x.as_ref().map(|x| x.audio.clone()));
                    if let (Some(sink), true) = (sink, s.mic_on.load(Ordering::Relaxed)) {
                        if let Ok(data) = opus.encode(&frame) {
                            if sink.send(AudioPacket::outgoing(data)) {
                                s.audio_frames_sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                }
            })
            .map_err(|e| DeviceError::Backend(e.to_string()))?;

        Ok(LocalMedia {
            video: video_cap,
            audio: audio_cap,
            video_input: Mutex::new(video),
            shared,
            threads: vec![video_pump, audio_pump],
        })
    }

    /// Starts sending into a call (or stops, with `None`).
    pub(crate) fn attach(&self, sinks: Option<Sinks>) {
        if let Ok(mut s) = self.shared.sinks.lock() {
            *s = sinks;
        }
        self.shared.keyframe.store(true, Ordering::Relaxed);
    }

    /// The next frame sent is a keyframe (the peer asked).
    pub fn request_keyframe(&self) {
        self.shared.keyframe.store(true, Ordering::Relaxed);
    }

    /// The bitrate the congestion controller allows.
    pub fn set_bitrate_kbps(&self, kbps: u32) {
        self.shared.bitrate_kbps.store(kbps, Ordering::Relaxed);
    }

    pub fn set_mic(&self, on: bool) {
        self.shared.mic_on.store(on, Ordering::Relaxed);
    }

    pub fn mic_on(&self) -> bool {
        self.shared.mic_on.load(Ordering::Relaxed)
    }

    /// Camera off releases the device (its light goes out); on reopens
    /// the chosen one.
    pub fn set_camera(&self, on: bool) -> Result<(), DeviceError> {
        let input = if on { self.video_input.lock().map(|i| i.clone()).unwrap_or(VideoInput::Off) } else { VideoInput::Off };
        self.video.switch(input)?;
        self.shared.camera_on.store(on, Ordering::Relaxed);
        self.shared.keyframe.store(true, Ordering::Relaxed);
        Ok(())
    }

    pub fn camera_on(&self) -> bool {
        self.shared.camera_on.load(Ordering::Relaxed)
    }

    /// Another camera (or the test pattern). Applies at once if the camera
    /// is on, else when it is turned on.
    pub fn switch_video(&self, input: VideoInput) -> Result<(), DeviceError> {
        if self.camera_on() {
            self.video.switch(input.clone())?;
        } else if let VideoInput::Camera { index } = input {
            // Not opened until the camera is turned on, but a camera that
            // is not there is said now, while the person is choosing.
            if !ringlet_media::cameras()?.iter().any(|c| c.index == index) {
                return Err(DeviceError::NotFound(format!("camera {index}")));
            }
        }
        if let Ok(mut i) = self.video_input.lock() {
            *i = input;
        }
        Ok(())
    }

    /// Another microphone (or the test tone).
    pub fn switch_audio(&self, input: AudioInput) -> Result<(), DeviceError> {
        self.audio.switch(input)
    }

    /// Device events (started, lost) since the last call.
    pub fn events(&self) -> Vec<CaptureEvent> {
        let mut v = self.video.events();
        v.extend(self.audio.events());
        v
    }

    pub fn stats(&self) -> LocalStats {
        LocalStats {
            level: self.shared.level.load(Ordering::Relaxed),
            video_frames_sent: self.shared.video_frames_sent.load(Ordering::Relaxed),
            audio_frames_sent: self.shared.audio_frames_sent.load(Ordering::Relaxed),
        }
    }
}

impl Drop for LocalMedia {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
