//! Zero-copy validation of relayed messages.
//!
//! The server relays `sdp-offer`, `sdp-answer` and `ice-candidate` payloads
//! as the sender wrote them (the seed's load generator, for one, puts its own
//! fields beside `roomId` and expects them back), adding only `from`. So it
//! checks the shape on borrowed slices and rewrites the JSON text once,
//! instead of building a `serde_json::Value` per message.

use std::borrow::Cow;

use serde::de::{IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

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

    /// The largest whole payload accepted for this event, in JSON text:
    /// room for its SDP or candidate escaped to twice its length (an SDP
    /// of short lines is a third `\r\n`), whose own limit is then checked
    /// on the text itself.
    pub fn max_payload(self) -> usize {
        match self {
            RelayKind::SdpOffer | RelayKind::SdpAnswer => 2 * limits::MAX_SDP + limits::MAX_ENVELOPE,
            RelayKind::IceCandidate => 2 * limits::MAX_CANDIDATE + limits::MAX_ENVELOPE,
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

/// The top-level members of an object, values as the sender wrote them.
///
/// Not a `serde_json::Value`: that would evaluate every number (one beyond
/// f64, `1e400`, is valid JSON that the zero-copy parse accepts but `Value`
/// refuses) and re-format floats and key order on the way out.
#[derive(Debug)]
struct Members<'a>(Vec<(String, &'a RawValue)>);

impl<'de> Deserialize<'de> for Members<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Members<'de>, M::Error> {
                let mut out = Vec::new();
                while let Some(entry) = map.next_entry::<String, &'de RawValue>()? {
                    out.push(entry);
                }
                Ok(Members(out))
            }
        }
        d.deserialize_map(V)
    }
}

/// A relayed message that passed validation, borrowing the sender's JSON.
#[derive(Debug)]
pub struct RelayView<'a> {
    pub kind: RelayKind,
    pub room_id: Cow<'a, str>,
    pub to: Option<Cow<'a, str>>,
    raw: &'a str,
    /// The sender's members when it wrote a `from` of its own (rare): the
    /// relay is rebuilt from them without it.
    members: Option<Members<'a>>,
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
        Self::check(kind, raw, env)
    }

    /// [`RelayView::parse`] on the front of `text`, which goes on after the
    /// object (a Socket.IO packet's `...}]`): the view, and the text after
    /// it. One pass over the bytes, where splitting the packet first and
    /// parsing the object then took two.
    ///
    /// ```
    /// use ringlet_proto::{RelayKind, RelayView};
    /// let text = r#"{"roomId":"r1","sdp":{"type":"offer","sdp":"v=0"}}]"#;
    /// let (view, rest) = RelayView::parse_front(RelayKind::SdpOffer, text).unwrap();
    /// assert_eq!((view.room_id.as_ref(), rest), ("r1", "]"));
    /// ```
    pub fn parse_front(kind: RelayKind, text: &'a str) -> Result<(Self, &'a str), ProtoError> {
        let ev = kind.event();
        let invalid = |detail: String| ProtoError::InvalidPayload { event: ev, detail };
        if !text.starts_with('{') {
            return Err(invalid("expected an object".into()));
        }
        if let Some(view) = Self::scan_front(kind, text) {
            return Ok(view);
        }
        let mut stream = serde_json::Deserializer::from_str(text).into_iter::<Envelope<'a>>();
        let env = match stream.next() {
            Some(r) => r.map_err(|e| invalid(e.to_string()))?,
            None => return Err(invalid("expected an object".into())),
        };
        let (raw, rest) = text.split_at(stream.byte_offset());
        if raw.len() > kind.max_payload() {
            return Err(ProtoError::TooLarge { what: "payload", size: raw.len(), limit: kind.max_payload() });
        }
        Ok((Self::check(kind, raw, env)?, rest))
    }

    /// The fast path of [`RelayView::parse_front`]: a plain, valid ICE
    /// candidate read by [`crate::scan`]. `None` sends everything else,
    /// refusals included, to serde_json.
    fn scan_front(kind: RelayKind, text: &'a str) -> Option<(Self, &'a str)> {
        if kind != RelayKind::IceCandidate {
            return None;
        }
        let c = crate::scan::ice_candidate(text)?;
        let ok = c.end <= kind.max_payload()
            && c.candidate_len <= limits::MAX_CANDIDATE
            && valid_id(c.room_id)
            && c.to.is_none_or(valid_id);
        if !ok {
            return None;
        }
        let (raw, rest) = text.split_at(c.end);
        Some((RelayView { kind, room_id: Cow::Borrowed(c.room_id), to: c.to.map(Cow::Borrowed), raw, members: None }, rest))
    }

    fn check(kind: RelayKind, raw: &'a str, env: Envelope<'a>) -> Result<Self, ProtoError> {
        let ev = kind.event();
        let invalid = |detail: String| ProtoError::InvalidPayload { event: ev, detail };
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
        let members = if env.from {
            Some(serde_json::from_str::<Members<'a>>(raw).map_err(|e| invalid(e.to_string()))?)
        } else {
            None
        };
        Ok(RelayView { kind, room_id, to: env.to, raw, members })
    }

    /// [`RelayView::with_from`] as pieces to write one after another,
    /// without building the string; `None` on the rare path (the sender
    /// wrote a `from` of its own, which must be dropped).
    ///
    /// ```
    /// use ringlet_proto::{RelayKind, RelayView};
    /// let raw = r#"{"roomId":"r1","sdp":{"type":"answer","sdp":"v=0"}}"#;
    /// let view = RelayView::parse(RelayKind::SdpAnswer, raw).unwrap();
    /// assert_eq!(view.pieces_with_from("bob").unwrap().concat(), view.with_from("bob"));
    /// ```
    pub fn pieces_with_from<'b>(&'b self, peer: &'b str) -> Option<[&'b str; 4]> {
        debug_assert!(valid_id(peer));
        // `raw` is an object with at least `roomId`: never `{}`.
        self.members.is_none().then(|| ["{\"from\":\"", peer, "\",", &self.raw[1..]])
    }

    /// The payload to deliver: the sender's object with `from` set to `peer`
    /// (whatever the sender put there itself is replaced: ids are not
    /// spoofable). `peer` must be a valid peer id (no escaping is done).
    pub fn with_from(&self, peer: &str) -> String {
        if let Some(pieces) = self.pieces_with_from(peer) {
            return pieces.concat();
        }
        let mut out = String::with_capacity(self.raw.len() + peer.len() + 10);
        out.push_str("{\"from\":\"");
        out.push_str(peer);
        out.push('"');
        // Rare path: the sender's `from` (however its key was escaped)
        // does not survive; every other member is copied as written.
        for (key, value) in self.members.iter().flat_map(|m| &m.0).filter(|(k, _)| k != "from") {
            out.push(',');
            out.push_str(&serde_json::to_string(key).expect("a string serializes"));
            out.push(':');
            out.push_str(value.get());
        }
        out.push('}');
        out
    }
}
