//! Messages on the call's data channel: chat and control, peer to peer (the
//! signaling server never sees them). JSON text with a `t` tag, so a browser
//! peer reads them with `JSON.parse`.

use serde::{Deserialize, Serialize};

/// One data-channel message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "t", rename_all = "kebab-case")]
pub enum DataMessage {
    /// A chat line.
    Chat { text: String },
    /// The sender's microphone and camera state, sent on every change and
    /// when the channel opens.
    Media { audio_muted: bool, video_muted: bool },
    /// The sender hung up: the other side need not wait for signaling.
    Hangup,
    /// A liveness/test frame (`ringlet-peer`'s synthetic source until real
    /// media flows): a counter and the sender's clock in microseconds.
    Frame {
        n: u64,
        #[serde(default)]
        ts_us: u64,
    },
}

impl DataMessage {
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("serializable")
    }

    /// Parses a received message; `None` for anything that is not one of
    /// ours (it is then surfaced raw).
    pub fn parse(text: &str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_a_stable_wire_form() {
        assert_eq!(DataMessage::Chat { text: "hi".into() }.to_text(), r#"{"t":"chat","text":"hi"}"#);
        assert_eq!(DataMessage::Hangup.to_text(), r#"{"t":"hangup"}"#);
        assert_eq!(
            DataMessage::Media { audio_muted: true, video_muted: false }.to_text(),
            r#"{"t":"media","audio_muted":true,"video_muted":false}"#
        );
        let f = DataMessage::Frame { n: 7, ts_us: 9 };
        assert_eq!(DataMessage::parse(&f.to_text()), Some(f));
        assert_eq!(DataMessage::parse("plain text"), None);
        assert_eq!(DataMessage::parse(r#"{"t":"unknown"}"#), None);
    }
}
