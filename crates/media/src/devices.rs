//! Real audio devices through cpal (ALSA on Linux): enumeration, and a
//! microphone that delivers 20 ms mono frames at 48 kHz whatever the device
//! does natively. A missing, busy or vanished device is an error value or
//! an event, never a panic.

use std::sync::mpsc;
use std::time::Duration;

use cpal::traits::{DeviceTrait, HostTrait, StreamTrait};

use crate::audio::{FRAME_SAMPLES, SAMPLE_RATE};
use crate::playout::SharedSource;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeviceError {
    #[error("no audio device named {0:?}")]
    NotFound(String),
    #[error("no default {0} device")]
    NoDefault(&'static str),
    #[error("audio device: {0}")]
    Backend(String),
}

fn backend(e: impl std::fmt::Display) -> DeviceError {
    DeviceError::Backend(e.to_string())
}

/// An audio device as a picker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AudioDevice {
    /// Stable identifier to open it by (the ALSA PCM name on Linux).
    pub id: String,
    /// What a person reads.
    pub name: String,
    pub sample_rate: u32,
    pub channels: u16,
}

fn describe(d: &cpal::Device, input: bool) -> Option<AudioDevice> {
    let id = d.id().ok()?.id().to_owned();
    let name = d.description().map(|x| x.name().to_owned()).unwrap_or_else(|_| id.clone());
    let config = if input { d.default_input_config() } else { d.default_output_config() }.ok()?;
    Some(AudioDevice { id, name, sample_rate: config.sample_rate(), channels: config.channels() })
}

/// Microphones (and other capture devices) the host offers.
pub fn audio_inputs() -> Result<Vec<AudioDevice>, DeviceError> {
    let host = cpal::default_host();
    Ok(host.input_devices().map_err(backend)?.filter_map(|d| describe(&d, true)).collect())
}

/// Speakers (and other playback devices) the host offers.
pub fn audio_outputs() -> Result<Vec<AudioDevice>, DeviceError> {
    let host = cpal::default_host();
    Ok(host.output_devices().map_err(backend)?.filter_map(|d| describe(&d, false)).collect())
}

/// The input (or output) device with this id, or the default one, with its
/// description and the stream config to open it at (its own rate and
/// channels; conversion to 48 kHz mono happens on our side).
fn open_device(name: Option<&str>, input: bool) -> Result<(cpal::Device, AudioDevice, cpal::StreamConfig), DeviceError> {
    let host = cpal::default_host();
    let kind = if input { "input" } else { "output" };
    let device = match name {
        Some(n) => {
            let mut all = if input { host.input_devices() } else { host.output_devices() }.map_err(backend)?;
            all.find(|d| d.id().is_ok_and(|id| id.id() == n)).ok_or_else(|| DeviceError::NotFound(n.to_owned()))?
        }
        None => if input { host.default_input_device() } else { host.default_output_device() }.ok_or(DeviceError::NoDefault(kind))?,
    };
    let info = describe(&device, input).ok_or_else(|| DeviceError::Backend(format!("device has no {kind} config")))?;
    let config = cpal::StreamConfig { channels: info.channels, sample_rate: info.sample_rate, buffer_size: cpal::BufferSize::Default };
    Ok((device, info, config))
}

/// What the microphone reports besides audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MicEvent {
    /// The device failed or went away; capture has stopped.
    Lost(String),
}

/// A running capture. Frames arrive on `frames`; dropping it stops capture.
pub struct Microphone {
    pub device: AudioDevice,
    pub frames: mpsc::Receiver<Vec<i16>>,
    pub events: mpsc::Receiver<MicEvent>,
    _stream: cpal::Stream,
}

/// Turns device-rate interleaved samples into 48 kHz mono 20 ms frames.
struct Framer {
    channels: usize,
    /// Device samples per output sample.
    step: f64,
    pos: f64,
    last: f32,
    out: Vec<i16>,
}

impl Framer {
    fn push(&mut self, interleaved: &[f32], mut emit: impl FnMut(Vec<i16>)) {
        for chunk in interleaved.chunks(self.channels) {
            let mono = chunk.iter().sum::<f32>() / chunk.len() as f32;
            // Linear interpolation between the previous and this sample.
            while self.pos <= 1.0 {
                let v = self.last + (mono - self.last) * self.pos as f32;
                self.out.push((v.clamp(-1.0, 1.0) * i16::MAX as f32) as i16);
                if self.out.len() == FRAME_SAMPLES {
                    emit(std::mem::replace(&mut self.out, Vec::with_capacity(FRAME_SAMPLES)));
                }
                self.pos += self.step;
            }
            self.pos -= 1.0;
            self.last = mono;
        }
    }
}

impl Microphone {
    /// Opens the input with this id (or the default) and starts capturing.
    pub fn open(name: Option<&str>) -> Result<Microphone, DeviceError> {
        let (device, info, config) = open_device(name, true)?;
        // Bounded: a stalled consumer loses the oldest audio, capture goes on.
        let (tx, frames) = mpsc::sync_channel::<Vec<i16>>(50);
        let (ev_tx, events) = mpsc::channel();
        let mut framer = Framer {
            channels: info.channels.max(1) as usize,
            step: info.sample_rate as f64 / SAMPLE_RATE as f64,
            pos: 0.0,
            last: 0.0,
            out: Vec::with_capacity(FRAME_SAMPLES),
        };
        let stream = device
            .build_input_stream(
                config,
                move |data: &[f32], _| framer.push(data, |f| {
                    let _ = tx.try_send(f);
                }),
                move |e| {
                    let _ = ev_tx.send(MicEvent::Lost(e.to_string()));
                },
                Some(Duration::from_secs(1)),
            )
            .map_err(backend)?;
        stream.play().map_err(backend)?;
        Ok(Microphone { device: info, frames, events, _stream: stream })
    }
}

/// What the speaker reports besides playing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpeakerEvent {
    /// The device failed or went away; playback has stopped.
    Lost(String),
}

/// Turns 48 kHz mono from a [`PcmSource`] into the device's rate and
/// channels (linear interpolation; the same sample on every channel).
struct Spreader {
    channels: usize,
    /// Source samples per device sample.
    step: f64,
    pos: f64,
    prev: f32,
    cur: f32,
    chunk: Vec<i16>,
    used: usize,
}

impl Spreader {
    fn new(channels: u16, device_rate: u32) -> Self {
        Spreader {
            channels: channels.max(1) as usize,
            step: SAMPLE_RATE as f64 / device_rate as f64,
            pos: 0.0,
            prev: 0.0,
            cur: 0.0,
            // 10 ms: the lock on the source is taken once per chunk.
            chunk: vec![0; FRAME_SAMPLES / 2],
            used: FRAME_SAMPLES / 2,
        }
    }

    fn render(&mut self, out: &mut [f32], source: &SharedSource) {
        for frame in out.chunks_mut(self.channels) {
            while self.pos >= 1.0 {
                if self.used == self.chunk.len() {
                    match source.lock() {
                        Ok(mut s) => s.fill(&mut self.chunk),
                        // A feeder panicked mid-fill: play silence, never panic here.
                        Err(_) => self.chunk.fill(0),
                    }
                    self.used = 0;
                }
                self.prev = self.cur;
                self.cur = self.chunk[self.used] as f32 / i16::MAX as f32;
                self.used += 1;
                self.pos -= 1.0;
            }
            frame.fill(self.prev + (self.cur - self.prev) * self.pos as f32);
            self.pos += self.step;
        }
    }
}

/// A running playback. Dropping it stops playback; the source stays with
/// its owner, so switching speakers mid-call is: drop this, open another
/// on the same source.
pub struct Speaker {
    pub device: AudioDevice,
    pub events: mpsc::Receiver<SpeakerEvent>,
    _stream: cpal::Stream,
}

impl Speaker {
    /// Opens the output with this id (or the default) and starts pulling
    /// audio from `source`.
    pub fn open(name: Option<&str>, source: SharedSource) -> Result<Speaker, DeviceError> {
        let (device, info, config) = open_device(name, false)?;
        let (ev_tx, events) = mpsc::channel();
        let mut spreader = Spreader::new(info.channels, info.sample_rate);
        let stream = device
            .build_output_stream(
                config,
                move |data: &mut [f32], _| spreader.render(data, &source),
                move |e| {
                    let _ = ev_tx.send(SpeakerEvent::Lost(e.to_string()));
                },
                Some(Duration::from_secs(1)),
            )
            .map_err(backend)?;
        stream.play().map_err(backend)?;
        Ok(Speaker { device: info, events, _stream: stream })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::playout::PcmSource;
    use std::sync::{Arc, Mutex};

    /// Counts up: sample k is k (mod 2^15).
    struct Ramp(i16);
    impl PcmSource for Ramp {
        fn fill(&mut self, out: &mut [i16]) {
            for o in out {
                *o = self.0;
                self.0 = self.0.wrapping_add(1) & 0x7fff;
            }
        }
    }

    #[test]
    fn the_spreader_resamples_and_fills_every_channel() {
        let source: SharedSource = Arc::new(Mutex::new(Ramp(0)));
        // One second at 44.1 kHz stereo consumes one second of 48 kHz.
        let mut s = Spreader::new(2, 44_100);
        let mut out = vec![0f32; 44_100 * 2];
        s.render(&mut out, &source);
        assert!(out.chunks(2).all(|f| f[0] == f[1]));
        let last = out[out.len() - 1] * i16::MAX as f32;
        assert!((last - 48_000.0f32 % 32_768.0).abs() < 5.0, "ended at sample {last}");
        // Monotonic (the ramp, interpolated), apart from its wrap.
        let vals: Vec<f32> = out.chunks(2).map(|f| f[0]).collect();
        assert!(vals.windows(2).filter(|w| w[1] < w[0]).count() <= 2);
    }

    #[test]
    fn the_framer_resamples_and_downmixes() {
        // 44.1 kHz stereo, one second of a constant: 50 frames of 960.
        let mut f = Framer { channels: 2, step: 44_100.0 / 48_000.0, pos: 0.0, last: 0.0, out: vec![] };
        let mut frames = vec![];
        f.push(&vec![0.5f32; 44_100 * 2], |x| frames.push(x));
        assert!((49..=50).contains(&frames.len()), "{} frames", frames.len());
        assert!(frames[10].iter().all(|s| (s - i16::MAX / 2).abs() < 20));
    }
}
