//! Ringlet's media: what lies between a device and an encoded packet, and
//! between a received packet and a screen. This first part: raw frames, the
//! synthetic camera (a test pattern that stamps its frame number and capture
//! time into the picture) and VP8 through libvpx with real-time settings.
//! Capture (nokhwa, cpal), Opus and playback come next.

pub mod audio;
pub mod camera;
pub mod capture;
pub mod devices;
pub mod frame;
pub mod jitter;
pub mod jpeg;
pub mod mailbox;
pub mod playout;
pub mod synthetic;
pub mod sync;
pub mod vp8;

pub use audio::{rms, AudioError, OpusDecoder, OpusEncoder, ToneSource, FRAME_SAMPLES, SAMPLE_RATE};
pub use camera::{cameras, rgb_to_i420, CameraCapture, CameraDevice, CameraEvent};
pub use capture::{AudioCapture, AudioInput, CaptureEvent, VideoCapture, VideoInput};
pub use devices::{audio_inputs, audio_outputs, AudioDevice, DeviceError, MicEvent, Microphone, Speaker, SpeakerEvent};
pub use frame::I420Frame;
pub use jpeg::{i420_to_jpeg, JpegError};
pub use synthetic::{read_stamp, write_stamp, Stamp, TestPattern};
pub use sync::AvSync;
pub use mailbox::Latest;
pub use playout::{AudioPlayout, ClockSpeaker, PcmSource, PlayoutStats, SharedSource};
pub use vp8::{CodecError, EncodeJob, EncodedFrame, EncoderConfig, EncoderThread, Vp8Decoder, Vp8Encoder};
