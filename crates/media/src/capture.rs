//! Switchable capture: one running video source and one running audio
//! source, each replaceable mid-call (another camera, the test pattern, a
//! different microphone, the test tone) while whoever consumes the frames
//! (the encoder, the preview) keeps reading from the same place. The call
//! never notices: the track, its SSRC and the negotiated session stay.
//!
//! A switch opens the new device first, on the caller's thread, so a
//! missing or busy device is an error returned to the caller and the old
//! source keeps running. A device that fails later is an event.
//!
//! ```no_run
//! use ringlet_media::capture::{VideoCapture, VideoInput};
//!
//! let video = VideoCapture::start(VideoInput::TestPattern { width: 1280, height: 720 }).unwrap();
//! let frame = video.frames().take().unwrap(); // the encoder's side
//! if let Err(e) = video.switch(VideoInput::Camera { index: 0 }) {
//!     eprintln!("still on the test pattern: {e}");
//! }
//! ```

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use crate::audio::{ToneSource, FRAME_SAMPLES};
use crate::camera::{CameraCapture, CameraEvent};
use crate::devices::{DeviceError, MicEvent, Microphone};
use crate::frame::I420Frame;
use crate::mailbox::Latest;
use crate::synthetic::TestPattern;

/// How long a source may stay silent before the runner checks for a
/// switch or a stop anyway.
const POLL: Duration = Duration::from_millis(100);

/// Where video comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VideoInput {
    /// The moving, stamped test pattern at 30 fps.
    TestPattern { width: usize, height: usize },
    /// A camera by index, opened near 1280×720 at 30 fps.
    Camera { index: u32 },
    /// No video (the camera is off).
    Off,
}

/// Where audio comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AudioInput {
    /// The test tone with its once-a-second marker.
    Tone,
    /// A microphone by id (`None`: the system default).
    Mic { id: Option<String> },
    /// No audio (muted at the source).
    Off,
}

/// What a capture reports besides frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaptureEvent {
    /// Now capturing from this source (after a start or a switch); for
    /// video, at this size (a camera's is what it could do).
    Started { source: String, size: Option<(usize, usize)> },
    /// The device failed or was unplugged: capture stopped (the consumer
    /// sees no more frames until a switch).
    Lost { source: String, reason: String },
}

enum VideoSource {
    Pattern(TestPattern, Instant),
    Camera(CameraCapture, u32),
    Off,
}

impl VideoSource {
    fn open(input: &VideoInput) -> Result<VideoSource, DeviceError> {
        Ok(match input {
            VideoInput::TestPattern { width, height } => VideoSource::Pattern(TestPattern::new(*width, *height), Instant::now()),
            VideoInput::Camera { index } => VideoSource::Camera(CameraCapture::open(*index, 1280, 720, 30)?, *index),
            VideoInput::Off => VideoSource::Off,
        })
    }

    fn describe(&self) -> String {
        match self {
            VideoSource::Pattern(..) => "test pattern".into(),
            VideoSource::Camera(_, i) => format!("camera {i}"),
            VideoSource::Off => "off".into(),
        }
    }
}

/// A running video capture whose source can be switched.
pub struct VideoCapture {
    frames: Arc<Latest<I420Frame>>,
    switch: mpsc::Sender<VideoSource>,
    events: Mutex<mpsc::Receiver<CaptureEvent>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl VideoCapture {
    /// Opens `input` and starts capturing.
    pub fn start(input: VideoInput) -> Result<VideoCapture, DeviceError> {
        let first = VideoSource::open(&input)?;
        let frames: Arc<Latest<I420Frame>> = Arc::default();
        let (switch, switches) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt) = (Arc::clone(&frames), Arc::clone(&stop));
        let thread = std::thread::Builder::new()
            .name("video-capture".into())
            .spawn(move || run_video(first, &out, &switches, &ev_tx, &halt))
            .map_err(|e| DeviceError::Backend(e.to_string()))?;
        Ok(VideoCapture { frames, switch, events: Mutex::new(events), stop, thread: Some(thread) })
    }

    /// The newest frame waits here (one slot: a slow reader loses old
    /// frames, capture never waits).
    pub fn frames(&self) -> Arc<Latest<I420Frame>> {
        Arc::clone(&self.frames)
    }

    /// Replaces the source. The new one is opened first: on error the old
    /// one goes on.
    pub fn switch(&self, input: VideoInput) -> Result<(), DeviceError> {
        let source = VideoSource::open(&input)?;
        self.switch.send(source).map_err(|_| DeviceError::Backend("video capture has stopped".into()))
    }

    /// Events since the last call.
    pub fn events(&self) -> Vec<CaptureEvent> {
        self.events.lock().map(|e| e.try_iter().collect()).unwrap_or_default()
    }
}

impl Drop for VideoCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.frames.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_video(
    mut source: VideoSource,
    out: &Latest<I420Frame>,
    switches: &mpsc::Receiver<VideoSource>,
    events: &mpsc::Sender<CaptureEvent>,
    stop: &AtomicBool,
) {
    const PERIOD: Duration = Duration::from_micros(33_333);
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(next) = switches.try_recv() {
            source = next; // the old device closes here
            announced = false;
        }
        let name = source.describe();
        let announce = |announced: &mut bool, width: usize, height: usize| {
            if !std::mem::replace(announced, true) {
                let _ = events.send(CaptureEvent::Started { source: name.clone(), size: Some((width, height)) });
            }
        };
        let mut lost = None;
        match &mut source {
            VideoSource::Pattern(pattern, next) => {
                let (frame, _) = pattern.next_frame();
                announce(&mut announced, frame.width, frame.height);
                out.put(frame);
                *next += PERIOD;
                let now = Instant::now();
                if *next > now {
                    std::thread::sleep(*next - now);
                } else {
                    *next = now; // fell behind: don't burst to catch up
                }
            }
            VideoSource::Camera(cam, _) => {
                for e in cam.events.try_iter() {
                    match e {
                        CameraEvent::Started { width, height, .. } => announce(&mut announced, width as usize, height as usize),
                        CameraEvent::Lost(reason) => lost = Some(reason),
                    }
                }
                if lost.is_none() {
                    if let Some(frame) = cam.frames.take_timeout(POLL) {
                        out.put(frame);
                    }
                }
            }
            // Wait for a switch (or a stop), without spinning.
            VideoSource::Off => match switches.recv_timeout(POLL) {
                Ok(next) => {
                    source = next;
                    announced = false;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        }
        if let Some(reason) = lost {
            let _ = events.send(CaptureEvent::Lost { source: name, reason });
            source = VideoSource::Off;
        }
    }
}

enum AudioSource {
    Tone(ToneSource, Instant),
    Mic(Microphone),
    Off,
}

impl AudioSource {
    fn open(input: &AudioInput) -> Result<AudioSource, DeviceError> {
        Ok(match input {
            AudioInput::Tone => AudioSource::Tone(ToneSource::default(), Instant::now()),
            AudioInput::Mic { id } => AudioSource::Mic(Microphone::open(id.as_deref())?),
            AudioInput::Off => AudioSource::Off,
        })
    }

    fn describe(&self) -> String {
        match self {
            AudioSource::Tone(..) => "test tone".into(),
            AudioSource::Mic(m) => format!("microphone {}", m.device.name),
            AudioSource::Off => "off".into(),
        }
    }
}

/// A running audio capture (48 kHz mono, 20 ms frames) whose source can be
/// switched.
pub struct AudioCapture {
    frames: Mutex<Option<mpsc::Receiver<Vec<i16>>>>,
    switch: mpsc::Sender<AudioSource>,
    events: Mutex<mpsc::Receiver<CaptureEvent>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// 20 ms frames held for a slow consumer (1 s); newer ones drop beyond it.
const AUDIO_QUEUE: usize = 50;

impl AudioCapture {
    /// Opens `input` and starts capturing.
    pub fn start(input: AudioInput) -> Result<AudioCapture, DeviceError> {
        let first = AudioSource::open(&input)?;
        let (tx, frames) = mpsc::sync_channel(AUDIO_QUEUE);
        let (switch, switches) = mpsc::channel();
        let (ev_tx, events) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let halt = Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name("audio-capture".into())
            .spawn(move || run_audio(first, &tx, &switches, &ev_tx, &halt))
            .map_err(|e| DeviceError::Backend(e.to_string()))?;
        Ok(AudioCapture { frames: Mutex::new(Some(frames)), switch, events: Mutex::new(events), stop, thread: Some(thread) })
    }

    /// The 20 ms frames, in order (bounded). Can be taken once.
    pub fn take_frames(&self) -> Option<mpsc::Receiver<Vec<i16>>> {
        self.frames.lock().ok()?.take()
    }

    /// Replaces the source. The new one is opened first: on error the old
    /// one goes on.
    pub fn switch(&self, input: AudioInput) -> Result<(), DeviceError> {
        let source = AudioSource::open(&input)?;
        self.switch.send(source).map_err(|_| DeviceError::Backend("audio capture has stopped".into()))
    }

    /// Events since the last call.
    pub fn events(&self) -> Vec<CaptureEvent> {
        self.events.lock().map(|e| e.try_iter().collect()).unwrap_or_default()
    }
}

impl Drop for AudioCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run_audio(
    mut source: AudioSource,
    out: &mpsc::SyncSender<Vec<i16>>,
    switches: &mpsc::Receiver<AudioSource>,
    events: &mpsc::Sender<CaptureEvent>,
    stop: &AtomicBool,
) {
    const PERIOD: Duration = Duration::from_millis(20);
    let mut announced = false;
    while !stop.load(Ordering::Relaxed) {
        if let Ok(next) = switches.try_recv() {
            source = next;
            announced = false;
        }
        let name = source.describe();
        if !std::mem::replace(&mut announced, true) {
            let _ = events.send(CaptureEvent::Started { source: name.clone(), size: None });
        }
        let mut lost = None;
        let frame = match &mut source {
            AudioSource::Tone(tone, next) => {
                let f = tone.next_frame();
                *next += PERIOD;
                let now = Instant::now();
                if *next > now {
                    std::thread::sleep(*next - now);
                } else {
                    *next = now;
                }
                Some(f)
            }
            AudioSource::Mic(mic) => {
                if let Ok(MicEvent::Lost(reason)) = mic.events.try_recv() {
                    lost = Some(reason);
                    None
                } else {
                    mic.frames.recv_timeout(POLL).ok()
                }
            }
            AudioSource::Off => match switches.recv_timeout(POLL) {
                Ok(next) => {
                    source = next;
                    announced = false;
                    None
                }
                Err(mpsc::RecvTimeoutError::Timeout) => None,
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            },
        };
        if let Some(f) = frame {
            debug_assert_eq!(f.len(), FRAME_SAMPLES);
            match out.try_send(f) {
                Ok(()) | Err(mpsc::TrySendError::Full(_)) => {}
                Err(mpsc::TrySendError::Disconnected(_)) => break,
            }
        }
        if let Some(reason) = lost {
            let _ = events.send(CaptureEvent::Lost { source: name, reason });
            source = AudioSource::Off;
        }
    }
}
