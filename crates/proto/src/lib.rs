//! Ringlet's signaling wire protocol: every event on the `/signaling` Socket.IO
//! namespace, as serde types shared by the server (`ringlet-signal`), the call
//! engine and (mirrored) the web UI.
//!
//! The protocol is a superset of the seed tutorial's: its browser client sends
//! `join` with a bare room string and relays `{roomId, sdp}` /
//! `{roomId, candidate}` objects; Ringlet clients add a stable `peerId`, acks,
//! addressed relays (`to`) and presence events. Both forms parse here.
//!
//! ```
//! use ringlet_proto::{JoinRequest, RoomId};
//!
//! // The seed's form: a bare room string.
//! let seed: JoinRequest = serde_json::from_str(r#""room-1""#).unwrap();
//! assert_eq!(seed.room_id(), &RoomId::new("room-1").unwrap());
//!
//! // Ringlet's form: an object with a stable peer id.
//! let ext: JoinRequest =
//!     serde_json::from_str(r#"{"roomId":"room-1","peerId":"alice"}"#).unwrap();
//! assert_eq!(ext.peer_id().map(|p| p.as_str()), Some("alice"));
//! ```

use std::borrow::Cow;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

mod relay;
mod scan;
pub use relay::{RelayKind, RelayView};

/// The namespace every signaling event travels on.
pub const NAMESPACE: &str = "/signaling";

/// Event names, client → server and server → client.
pub mod event {
    pub const JOIN: &str = "join";
    pub const LEAVE: &str = "leave";
    pub const SDP_OFFER: &str = "sdp-offer";
    pub const SDP_ANSWER: &str = "sdp-answer";
    pub const ICE_CANDIDATE: &str = "ice-candidate";
    /// App-level liveness probe with an ack: Socket.IO's own ping notices a
    /// frozen server only after pingInterval + pingTimeout (85 s with the
    /// seed's settings); a client that wants to know in seconds asks this.
    pub const HEARTBEAT: &str = "heartbeat";
    pub const PEER_JOINED: &str = "peer-joined";
    pub const PEER_LEFT: &str = "peer-left";
    pub const ERROR: &str = "error";
}

/// Size limits the server enforces, in bytes.
pub mod limits {
    /// An SDP body (`sdp.sdp`), as text: its JSON escapes (every line ends
    /// in `\r\n`, four bytes on the wire) do not count against it.
    pub const MAX_SDP: usize = 64 * 1024;
    /// A candidate line (`candidate.candidate`), as text.
    pub const MAX_CANDIDATE: usize = 2 * 1024;
    /// Room for the other fields of a relayed message (`roomId`, `to`, and
    /// whatever else a client adds, such as the load generator's timestamp).
    pub const MAX_ENVELOPE: usize = 2 * 1024;
    /// A `join` or `leave` payload.
    pub const MAX_JOIN: usize = 4 * 1024;
    /// A display name, in characters.
    pub const MAX_NAME_CHARS: usize = 64;
}

/// Why a payload was refused; every variant maps to an [`ErrorCode`] the
/// client can read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("payload is not valid for `{event}`: {detail}")]
    InvalidPayload { event: &'static str, detail: String },
    #[error("room id must match ^[A-Za-z0-9_-]{{1,64}}$")]
    InvalidRoom,
    #[error("peer id must match ^[A-Za-z0-9_-]{{1,64}}$")]
    InvalidPeerId,
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge { what: &'static str, size: usize, limit: usize },
}

impl ProtoError {
    pub fn code(&self) -> ErrorCode {
        match self {
            ProtoError::InvalidPayload { .. } => ErrorCode::InvalidPayload,
            ProtoError::InvalidRoom => ErrorCode::InvalidRoom,
            ProtoError::InvalidPeerId => ErrorCode::InvalidPeerId,
            ProtoError::TooLarge { .. } => ErrorCode::TooLarge,
        }
    }

    pub fn to_body(&self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }
}

fn valid_id(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

macro_rules! id_type {
    ($(#[$m:meta])* $name:ident, $err:expr) => {
        $(#[$m])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates `s` against `^[A-Za-z0-9_-]{1,64}$`.
            pub fn new(s: impl Into<String>) -> Result<Self, ProtoError> {
                let s = s.into();
                if valid_id(&s) { Ok(Self(s)) } else { Err($err) }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }
        impl TryFrom<String> for $name {
            type Error = ProtoError;
            fn try_from(s: String) -> Result<Self, ProtoError> {
                Self::new(s)
            }
        }
        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// A room: what a link names. `^[A-Za-z0-9_-]{1,64}$`.
    RoomId,
    ProtoError::InvalidRoom
);

impl RoomId {
    /// A new room's id from 128 random bits (the caller's RNG): 22
    /// base64url characters, as the server and the web client name rooms.
    pub fn from_random(bits: [u8; 16]) -> RoomId {
        const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let n = u128::from_be_bytes(bits);
        // 22 six-bit digits hold 132 bits; the top four are zero.
        let id = (0..22).rev().map(|i| ALPHABET[((n >> (i * 6)) & 63) as usize] as char).collect::<String>();
        RoomId(id)
    }
}
id_type!(
    /// A participant, stable across reconnects (a socket id is not).
    /// `^[A-Za-z0-9_-]{1,64}$`, chosen by the client or assigned by the server.
    PeerId,
    ProtoError::InvalidPeerId
);

/// `join`, in either form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JoinRequest {
    /// The seed's form: `socket.emit('join', 'room-1')`.
    Bare(RoomId),
    /// Ringlet's form: `{roomId, peerId?, token?, name?}`.
    Extended(JoinParams),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinParams {
    pub room_id: RoomId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peer_id: Option<PeerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

impl JoinRequest {
    /// Parses a `join` payload from its JSON text, with an error a client can
    /// read for anything that is not one of the two forms.
    pub fn parse(json: &str) -> Result<Self, ProtoError> {
        if json.len() > limits::MAX_JOIN {
            return Err(ProtoError::TooLarge {
                what: "join payload",
                size: json.len(),
                limit: limits::MAX_JOIN,
            });
        }
        let invalid = |detail: String| ProtoError::InvalidPayload { event: event::JOIN, detail };
        let value: serde_json::Value =
            serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        match value {
            serde_json::Value::String(s) => Ok(JoinRequest::Bare(RoomId::new(s)?)),
            serde_json::Value::Object(ref map) => {
                // Check the ids first so a bad one gets its own error code.
                match map.get("roomId") {
                    Some(serde_json::Value::String(r)) if valid_id(r) => {}
                    Some(serde_json::Value::String(_)) => return Err(ProtoError::InvalidRoom),
                    _ => return Err(invalid("`roomId` (a string) is required".into())),
                }
                match map.get("peerId") {
                    None | Some(serde_json::Value::Null) => {}
                    Some(serde_json::Value::String(p)) if valid_id(p) => {}
                    Some(_) => return Err(ProtoError::InvalidPeerId),
                }
                let params: JoinParams =
                    serde_json::from_value(value).map_err(|e| invalid(e.to_string()))?;
                if let Some(name) = &params.name {
                    if name.chars().count() > limits::MAX_NAME_CHARS {
                        return Err(ProtoError::TooLarge {
                            what: "name",
                            size: name.len(),
                            limit: limits::MAX_NAME_CHARS,
                        });
                    }
                }
                Ok(JoinRequest::Extended(params))
            }
            other => Err(invalid(format!(
                "expected a room id string or {{roomId, peerId?}}, got {}",
                json_kind(&other)
            ))),
        }
    }

    pub fn room_id(&self) -> &RoomId {
        match self {
            JoinRequest::Bare(r) => r,
            JoinRequest::Extended(p) => &p.room_id,
        }
    }

    pub fn peer_id(&self) -> Option<&PeerId> {
        match self {
            JoinRequest::Bare(_) => None,
            JoinRequest::Extended(p) => p.peer_id.as_ref(),
        }
    }

    pub fn name(&self) -> Option<&str> {
        match self {
            JoinRequest::Bare(_) => None,
            JoinRequest::Extended(p) => p.name.as_deref(),
        }
    }

    pub fn token(&self) -> Option<&str> {
        match self {
            JoinRequest::Bare(_) => None,
            JoinRequest::Extended(p) => p.token.as_deref(),
        }
    }
}

impl<'de> Deserialize<'de> for JoinRequest {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Cow<'de, RawValue> = Deserialize::deserialize(d)?;
        JoinRequest::parse(raw.get()).map_err(serde::de::Error::custom)
    }
}

impl Serialize for JoinRequest {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            JoinRequest::Bare(r) => r.serialize(s),
            JoinRequest::Extended(p) => p.serialize(s),
        }
    }
}

pub(crate) fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Someone in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerInfo {
    pub peer_id: PeerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// An ICE server as `RTCPeerConnection` takes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

/// The ack of a successful `join`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinAccepted {
    pub room_id: RoomId,
    /// The peer id this socket speaks as in the room (the one asked for, or
    /// one the server assigned).
    pub peer_id: PeerId,
    /// Everyone else in the room, in the order they joined.
    pub peers: Vec<PeerInfo>,
    /// Whether this peer yields in an offer collision (perfect negotiation).
    /// The later joiner of any pair is the polite one; a rejoin keeps its role.
    pub polite: bool,
    #[serde(default)]
    pub ice_servers: Vec<IceServer>,
    /// Whether this join resumed a place held during a transport drop.
    #[serde(default)]
    pub resumed: bool,
    /// A fresh invite token for this room, when the server signs them:
    /// carry it in links shared from now on and in later rejoins (the one
    /// joined with may expire during a long call).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// An ack: `{ok:true, ...}` or `{ok:false, error:{code, message}}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack<T> {
    Ok(T),
    Err(ErrorBody),
}

impl<T: Serialize> Serialize for Ack<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct OkAck<'a, T> {
            ok: bool,
            #[serde(flatten)]
            body: &'a T,
        }
        #[derive(Serialize)]
        struct ErrAck<'a> {
            ok: bool,
            error: &'a ErrorBody,
        }
        match self {
            Ack::Ok(body) => OkAck { ok: true, body }.serialize(s),
            Ack::Err(error) => ErrAck { ok: false, error }.serialize(s),
        }
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Ack<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut v = serde_json::Value::deserialize(d)?;
        let ok = v.get("ok").and_then(|o| o.as_bool()).ok_or_else(|| D::Error::missing_field("ok"))?;
        if ok {
            if let Some(map) = v.as_object_mut() {
                map.remove("ok");
            }
            serde_json::from_value(v).map(Ack::Ok).map_err(D::Error::custom)
        } else {
            let e = v.get_mut("error").map(serde_json::Value::take).ok_or_else(|| D::Error::missing_field("error"))?;
            serde_json::from_value(e).map(Ack::Err).map_err(D::Error::custom)
        }
    }
}

pub type JoinAck = Ack<JoinAccepted>;

/// The ack of a `heartbeat`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatAck {}

/// Machine-readable reason for a refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    InvalidPayload,
    InvalidRoom,
    InvalidPeerId,
    TooLarge,
    RoomFull,
    NotInRoom,
    UnknownPeer,
    /// The recipient is too far behind: its outgoing queue is full.
    PeerBacklogged,
    /// The recipient is away and its held-message queue is full.
    HeldFull,
    /// Another live socket already speaks as this peer id in this room.
    PeerIdTaken,
    Unauthorized,
    /// The server requires an invite token and the join carried none.
    TokenRequired,
    /// The invite token is not one the server signed for this room.
    TokenInvalid,
    /// The invite token was genuine but has expired.
    TokenExpired,
    /// Too many events too fast from one connection.
    RateLimited,
    /// A server limit: connections per address, rooms per connection,
    /// rooms in all.
    LimitExceeded,
    Internal,
    /// A code this build does not know (a newer server's): still an error.
    #[serde(other)]
    Other,
}

impl ErrorCode {
    /// Every code, for counting refusals by reason.
    pub const ALL: [ErrorCode; 18] = [
        ErrorCode::InvalidPayload,
        ErrorCode::InvalidRoom,
        ErrorCode::InvalidPeerId,
        ErrorCode::TooLarge,
        ErrorCode::RoomFull,
        ErrorCode::NotInRoom,
        ErrorCode::UnknownPeer,
        ErrorCode::PeerBacklogged,
        ErrorCode::HeldFull,
        ErrorCode::PeerIdTaken,
        ErrorCode::Unauthorized,
        ErrorCode::TokenRequired,
        ErrorCode::TokenInvalid,
        ErrorCode::TokenExpired,
        ErrorCode::RateLimited,
        ErrorCode::LimitExceeded,
        ErrorCode::Internal,
        ErrorCode::Other,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidPayload => "invalid-payload",
            ErrorCode::InvalidRoom => "invalid-room",
            ErrorCode::InvalidPeerId => "invalid-peer-id",
            ErrorCode::TooLarge => "too-large",
            ErrorCode::RoomFull => "room-full",
            ErrorCode::NotInRoom => "not-in-room",
            ErrorCode::UnknownPeer => "unknown-peer",
            ErrorCode::PeerBacklogged => "peer-backlogged",
            ErrorCode::HeldFull => "held-full",
            ErrorCode::PeerIdTaken => "peer-id-taken",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::TokenRequired => "token-required",
            ErrorCode::TokenInvalid => "token-invalid",
            ErrorCode::TokenExpired => "token-expired",
            ErrorCode::RateLimited => "rate-limited",
            ErrorCode::LimitExceeded => "limit-exceeded",
            ErrorCode::Internal => "internal",
            ErrorCode::Other => "other",
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// The `error` event, sent when a refused event carried no ack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ErrorEvent {
    pub code: ErrorCode,
    pub message: String,
    /// The event that was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
}

/// `sdp.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SdpType {
    Offer,
    Answer,
    Pranswer,
    Rollback,
}

/// An `RTCSessionDescriptionInit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionDescription {
    #[serde(rename = "type")]
    pub kind: SdpType,
    #[serde(default)]
    pub sdp: String,
}

/// An `RTCIceCandidateInit`. An empty `candidate` is the end-of-candidates marker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    pub candidate: String,
    #[serde(default)]
    pub sdp_mid: Option<String>,
    #[serde(default, rename = "sdpMLineIndex")]
    pub sdp_mline_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// `sdp-offer` / `sdp-answer`: `{roomId, sdp:{type, sdp}, to?}`; relayed with `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SdpMessage {
    pub room_id: RoomId,
    pub sdp: SessionDescription,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PeerId>,
    /// Set by the server on relay; a client's own value is replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PeerId>,
}

/// `ice-candidate`: `{roomId, candidate:{candidate, sdpMid, sdpMLineIndex}, to?}`; relayed with `from`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CandidateMessage {
    pub room_id: RoomId,
    pub candidate: IceCandidate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<PeerId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<PeerId>,
}

/// `leave`: `{roomId}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LeaveRequest {
    pub room_id: RoomId,
}

impl LeaveRequest {
    /// Parses a `leave` payload, with a readable error for anything else.
    pub fn parse(json: &str) -> Result<Self, ProtoError> {
        if json.len() > limits::MAX_JOIN {
            return Err(ProtoError::TooLarge { what: "leave payload", size: json.len(), limit: limits::MAX_JOIN });
        }
        let invalid = |detail: String| ProtoError::InvalidPayload { event: event::LEAVE, detail };
        let value: serde_json::Value = serde_json::from_str(json).map_err(|e| invalid(e.to_string()))?;
        match value.get("roomId") {
            Some(serde_json::Value::String(r)) if valid_id(r) => {}
            Some(serde_json::Value::String(_)) => return Err(ProtoError::InvalidRoom),
            _ => return Err(invalid("expected {roomId}".into())),
        }
        serde_json::from_value(value).map_err(|e| invalid(e.to_string()))
    }
}

/// `peer-joined`: someone entered (or came back to) the room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerJoined {
    pub room_id: RoomId,
    pub peer_id: PeerId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Why a peer left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LeaveReason {
    /// It said `leave`, or closed its Socket.IO connection on purpose.
    Left,
    /// Its transport dropped and it did not come back within the grace period.
    Timeout,
}

/// `peer-left`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PeerLeft {
    pub room_id: RoomId,
    pub peer_id: PeerId,
    pub reason: LeaveReason,
}

#[cfg(test)]
mod tests;
