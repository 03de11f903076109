//! A Ringlet call as the desktop app runs it, without the window: the
//! local media from the pre-join screen on ([`LocalMedia`]), a call that
//! attaches it ([`Session`]), and the frames the page shows ([`FrameHub`]).
//! The Tauri shell holds these and forwards commands and events; all the
//! behaviour lives here, tested without a window.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::sync::Arc;
//! use ringlet_media::{AudioInput, VideoInput};
//! use ringlet_proto::{PeerId, RoomId};
//! use ringlet_session::{FrameHub, LocalMedia, Session, SessionConfig, APP_ORIGINS};
//!
//! let hub = FrameHub::bind(&APP_ORIGINS).await?;
//! let local = Arc::new(LocalMedia::start(VideoInput::TestPattern { width: 1280, height: 720 }, AudioInput::Tone, hub.clone())?);
//! let config = SessionConfig {
//!     server: "http://127.0.0.1:3000".into(),
//!     room: RoomId::new("room-1")?,
//!     peer_id: PeerId::new("alice")?,
//!     name: Some("Alice".into()),
//!     token: None,
//!     ice_servers: vec![],
//!     speaker: None,
//! };
//! let (session, mut events) = Session::start(config, local, hub)?;
//! while let Some(e) = events.recv().await {
//!     println!("{}", serde_json::to_string(&e)?);
//! }
//! # Ok(()) }
//! ```

/// The media crate, for the sources a session starts from.
pub use ringlet_media as media;
/// The call engine, for what a shell asks a server directly (new rooms).
pub use ringlet_call as call;

pub mod devices;
pub mod frames;
pub mod local;
pub mod session;

pub use devices::{audio_input, video_input, DeviceList, DeviceOption, TEST_PATTERN, TEST_TONE};
pub use frames::{FrameHub, APP_ORIGINS};
pub use local::{LocalMedia, LocalStats};
pub use session::{Quality, Session, SessionConfig, SessionEvent};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SessionError {
    #[error("media: {0}")]
    Media(String),
}
