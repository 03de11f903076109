//! Zero-copy validation of relayed messages.
//!
//! The server relays `sdp-offer`, `sdp-answer` and `ice-candidate` payloads
//! as the sender wrote them (the seed's load generator, for one, puts its own
//! fields beside `roomId` and expects them back), adding only `from`. So it
//! checks the shape on borrowed slices and rewrites the JSON text once,
//! instead of building a `serde_json::Value` per message.

use std::borrow::Cow;

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::{event, limits, valid_id, ProtoError, SdpType};

/// The three events the server relays between peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RelayKind {
    SdpOffer,
    SdpAnswer,
    IceCandidate,
}

impl RelayKind {
    pub fn from_event(name: &str) -> Option<Self> {
        match name {
            event::SDP_OFFER => Some(RelayKind::SdpOffer),
            event::SDP_ANSWER => Some(RelayKind::SdpAnswer),
            event::ICE_CANDIDATE => Some(RelayKind::IceCandidate),
            _ => None,
        }
    }

    pub fn event(self) -> &'static str {
        match self {
            RelayKind::SdpOffer => event::SDP_OFFER,
            RelayKind::SdpAnswer => event::SDP_ANSWER,
            RelayKind::IceCandidate => event::ICE_CANDIDATE,
        }
    }

    /// The largest whole payload accepted for this event.
    pub fn max_payload(self) -> usize {
        match self {
            RelayKind::SdpOffer | RelayKind::SdpAnswer => limits::MAX_SDP + limits::MAX_ENVELOPE,
            RelayKind::IceCandidate => limits::MAX_CANDIDATE + limits::MAX_ENVELOPE,
        }
    }
}

/// The whole message in one pass: the envelope and, typed, the part its
/// event requires. Unknown fields are skipped (and relayed untouched).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    #[serde(borrow)]
    room_id: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    to: Option<Cow<'a, str>>,
    /// Present at all, even as `null`: a null `from` must be replaced too.
    #[serde(default, deserialize_with = "present")]
    from: bool,
    #[serde(borrow, default)]
    sdp: Option<SdpView<'a>>,
    #[serde(borrow, default)]
    candidate: Option<CandidateView<'a>>,
}

fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    IgnoredAny::deserialize(d).map(|_| true)
}

#[derive(Deserialize)]
struct SdpView<'a> {
    #[serde(rename = "type")]
    kind: SdpType,
    #[serde(borrow, default)]
    sdp: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // fields are parsed for their types, not read
struct CandidateView<'a> {
    #[serde(borrow)]
    candidate: Cow<'a, str>,
    #[serde(default)]
    sdp_mid: Option<Cow<'a, str>>,
    #[serde(default, rename = "sdpMLineIndex")]
    sdp_mline_index: Option<u16>,
    #[serde(default)]
    username_fragment: Option<Cow<'a, str>>,
}

/// A relayed message that passed validation, borrowing the sender's JSON.
#[derive(Debug)]
pub struct RelayView<'a> {
    pub kind: RelayKind,
    pub room_id: Cow<'a, str>,
    pub to: Option<Cow<'a, str>>,
    raw: &'a str,
    has_from: bool,
}

impl<'a> RelayView<'a> {
    /// Validates `raw` (the event's first argument, as JSON text).
    ///
    /// ```
    /// use ringlet_proto::{RelayKind, RelayView};
    /// let raw = r#"{"roomId":"r1","candidate":{"candidate":"candidate:1 1 udp 1 192.0.2.1 9 typ host","sdpMid":"0","sdpMLineIndex":0}}"#;
    /// let view = RelayView::parse(RelayKind::IceCandidate, raw).unwrap();
    /// assert_eq!(view.room_id, "r1");
    /// let out: serde_json::Value = serde_json::from_str(&view.with_from("alice")).unwrap();
    /// assert_eq!(out["from"], "alice");
    /// assert_eq!(out["candidate"]["sdpMid"], "0");
    /// ```
    pub fn parse(kind: RelayKind, raw: &'a str) -> Result<Self, ProtoError> {
        let ev = kind.event();
        let invalid = |detail: String| ProtoError::InvalidPayload { event: ev, detail };
        if raw.len() > kind.max_payload() {
            return Err(ProtoError::TooLarge { what: "payload", size: raw.len(), limit: kind.max_payload() });
        }
        if !raw.starts_with('{') {
            let kind_of = serde_json::from_str::<serde_json::Value>(raw)
                .map(|v| crate::json_kind(&v))
                .unwrap_or("invalid JSON");
            return Err(invalid(format!("expected an object, got {kind_of}")));
        }
        let env: Envelope<'a> = serde_json::from_str(raw).map_err(|e| invalid(e.to_string()))?;
        let room_id = env.room_id.ok_or_else(|| invalid("`roomId` (a string) is required".into()))?;
        if !valid_id(&room_id) {
            return Err(ProtoError::InvalidRoom);
        }
        if let Some(to) = &env.to {
            if !valid_id(to) {
                return Err(ProtoError::InvalidPeerId);
            }
        }
        match kind {
            RelayKind::SdpOffer | RelayKind::SdpAnswer => {
                let view = env.sdp.ok_or_else(|| invalid("`sdp` ({type, sdp}) is required".into()))?;
                let body = view.sdp.as_deref().unwrap_or("");
                if body.len() > limits::MAX_SDP {
                    return Err(ProtoError::TooLarge { what: "sdp", size: body.len(), limit: limits::MAX_SDP });
                }
                let expected = if kind == RelayKind::SdpOffer { "offer" } else { "answer" };
                let ok = match view.kind {
                    SdpType::Offer => kind == RelayKind::SdpOffer,
                    SdpType::Answer | SdpType::Pranswer => kind == RelayKind::SdpAnswer,
                    SdpType::Rollback => false,
                };
                if !ok {
                    return Err(invalid(format!("sdp.type must be {expected} on `{ev}`")));
                }
                if body.is_empty() {
                    return Err(invalid("sdp.sdp must not be empty".into()));
                }
            }
            RelayKind::IceCandidate => {
                let cand = env
                    .candidate
                    .ok_or_else(|| invalid("`candidate` ({candidate, sdpMid, sdpMLineIndex}) is required".into()))?;
                if cand.candidate.len() > limits::MAX_CANDIDATE {
                    return Err(ProtoError::TooLarge {
                        what: "candidate",
                        size: cand.candidate.len(),
                        limit: limits::MAX_CANDIDATE,
                    });
                }
            }
        }
        Ok(RelayView { kind, room_id, to: env.to, raw, has_from: env.from })
    }

    /// The payload to deliver: the sender's object with `from` set to `peer`
    /// (whatever the sender put there itself is replaced: ids are not
    /// spoofable). `peer` must be a valid peer id (no escaping is done).
    pub fn with_from(&self, peer: &str) -> String {
        debug_assert!(valid_id(peer));
        if self.has_from {
            // Rare path: rebuild so the sender's `from` does not survive.
            let mut map: serde_json::Map<String, serde_json::Value> =
                serde_json::from_str(self.raw).expect("validated as an object");
            map.insert("from".into(), serde_json::Value::String(peer.to_owned()));
            return serde_json::Value::Object(map).to_string();
        }
        let mut out = String::with_capacity(self.raw.len() + peer.len() + 10);
        out.push_str("{\"from\":\"");
        out.push_str(peer);
        out.push_str("\",");
        out.push_str(&self.raw[1..]);
        out
    }
}
