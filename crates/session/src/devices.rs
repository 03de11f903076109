//! What the device pickers offer: the real devices, and the test sources
//! (always there, so "test my setup" works on any machine).

use ringlet_media::{AudioInput, VideoInput};
use serde::{Deserialize, Serialize};

/// The id of the synthetic camera and microphone in a picker.
pub const TEST_PATTERN: &str = "test-pattern";
pub const TEST_TONE: &str = "test-tone";

/// One entry of a picker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceOption {
    pub id: String,
    pub label: String,
}

/// Everything the pickers offer, and what went wrong listing them (shown,
/// not fatal: the test sources remain).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceList {
    pub cameras: Vec<DeviceOption>,
    pub microphones: Vec<DeviceOption>,
    pub speakers: Vec<DeviceOption>,
    pub problems: Vec<String>,
}

impl DeviceList {
    /// Asks the system (v4l2 through nokhwa, ALSA through cpal).
    pub fn query() -> DeviceList {
        let mut list = DeviceList::default();
        match ringlet_media::cameras() {
            Ok(c) => list.cameras = c.into_iter().map(|c| DeviceOption { id: format!("camera:{}", c.index), label: c.name }).collect(),
            Err(e) => list.problems.push(format!("cameras: {e}")),
        }
        match ringlet_media::audio_inputs() {
            Ok(d) => list.microphones = d.into_iter().map(|d| DeviceOption { id: format!("mic:{}", d.id), label: d.name }).collect(),
            Err(e) => list.problems.push(format!("microphones: {e}")),
        }
        // First, what the call uses when nothing was chosen.
        list.speakers.push(DeviceOption { id: String::new(), label: "System default".into() });
        match ringlet_media::audio_outputs() {
            Ok(d) => list.speakers.extend(d.into_iter().map(|d| DeviceOption { id: d.id, label: d.name })),
            Err(e) => list.problems.push(format!("speakers: {e}")),
        }
        if list.cameras.is_empty() {
            list.problems.push("No camera found: the test pattern stands in.".into());
        }
        list.cameras.push(DeviceOption { id: TEST_PATTERN.into(), label: "Test pattern".into() });
        list.microphones.push(DeviceOption { id: TEST_TONE.into(), label: "Test tone".into() });
        list
    }
}

/// A picker id as a video source: `camera:<index>`, `test-pattern` or `off`.
pub fn video_input(id: &str) -> Result<VideoInput, String> {
    match id {
        TEST_PATTERN => Ok(VideoInput::TestPattern { width: 1280, height: 720 }),
        "off" | "" => Ok(VideoInput::Off),
        _ => id
            .strip_prefix("camera:")
            .and_then(|i| i.parse().ok())
            .map(|index| VideoInput::Camera { index })
            .ok_or_else(|| format!("not a camera: {id:?}")),
    }
}

/// A picker id as an audio source: `mic:<id>`, `mic:` (the default),
/// `test-tone` or `off`.
pub fn audio_input(id: &str) -> Result<AudioInput, String> {
    match id {
        TEST_TONE => Ok(AudioInput::Tone),
        "off" | "" => Ok(AudioInput::Off),
        _ => id
            .strip_prefix("mic:")
            .map(|m| AudioInput::Mic { id: (!m.is_empty()).then(|| m.to_owned()) })
            .ok_or_else(|| format!("not a microphone: {id:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picker_ids_map_to_sources() {
        assert_eq!(video_input("camera:2"), Ok(VideoInput::Camera { index: 2 }));
        assert_eq!(video_input(TEST_PATTERN), Ok(VideoInput::TestPattern { width: 1280, height: 720 }));
        assert!(video_input("camera:x").is_err());
        assert!(video_input("/dev/video0").is_err());
        assert_eq!(audio_input("mic:null"), Ok(AudioInput::Mic { id: Some("null".into()) }));
        assert_eq!(audio_input("mic:"), Ok(AudioInput::Mic { id: None }));
        assert_eq!(audio_input(TEST_TONE), Ok(AudioInput::Tone));
        assert!(audio_input("speaker").is_err());
    }

    #[test]
    fn the_test_sources_are_always_offered() {
        let list = DeviceList::query();
        assert!(list.cameras.iter().any(|c| c.id == TEST_PATTERN));
        assert!(list.microphones.iter().any(|m| m.id == TEST_TONE));
    }
}
