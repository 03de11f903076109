//! Ringlet's call engine: the signaling client, perfect negotiation with a
//! remote-candidate queue, reconnection resume and ICE restart, over
//! webrtc-rs. It builds and tests without a window; the desktop app and
//! `ringlet-peer` drive it.
//!
//! ```no_run
//! # async fn demo() {
//! use ringlet_call::{Call, CallConfig, CallEvent, SignalingConfig};
//! use ringlet_proto::{PeerId, RoomId};
//!
//! let signaling = SignalingConfig::new(
//!     "http://127.0.0.1:3000",
//!     RoomId::new("room-1").unwrap(),
//!     PeerId::new("alice").unwrap(),
//! );
//! let (call, mut events) = Call::start(CallConfig::new(signaling));
//! while let Some(e) = events.recv().await {
//!     if let CallEvent::DataOpen = e {
//!         call.send("hello");
//!     }
//! }
//! # }
//! ```

pub mod audio;
pub mod congestion;
pub mod control;
pub mod engine;
pub mod ice_servers;
pub mod media_path;
pub mod negotiation;
pub mod rooms;
pub mod signaling;
pub mod video;

pub use audio::{AudioPacket, AudioSender};
pub use control::DataMessage;
pub use media_path::{MediaSender, RemoteClock, SenderReport};
pub use engine::{Call, CallConfig, CallEvent, CallStats, IcePolicy};
pub use signaling::{SignalEvent, Signaling, SignalingConfig};
pub use video::{VideoFrame, VideoSender};
