//! What a person sets once and keeps: persisted with tauri-plugin-store
//! (`settings.json` in the app's data directory).

use ringlet_proto::IceServer;
use serde::{Deserialize, Serialize};

/// The settings screen, as stored. Unknown or missing fields take their
/// defaults, so an older file still loads.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, rename_all = "camelCase")]
pub struct Settings {
    /// Signaling server base URL; empty means the embedded one.
    pub server_url: String,
    /// STUN/TURN servers for ICE.
    pub ice_servers: Vec<IceServer>,
    /// Default devices (picker ids).
    pub camera: String,
    pub microphone: String,
    pub speaker: String,
    pub name: String,
}

impl Settings {
    /// Checks what a person typed; the message says what to fix.
    pub fn validate(&self) -> Result<(), String> {
        let url = self.server_url.trim();
        if !url.is_empty() && !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!("The server address must start with http:// or https:// (got {url:?})."));
        }
        for s in &self.ice_servers {
            if s.urls.is_empty() {
                return Err("An ICE server needs at least one URL.".into());
            }
            for u in &s.urls {
                if !(u.starts_with("stun:") || u.starts_with("turn:") || u.starts_with("turns:")) {
                    return Err(format!("ICE server URLs start with stun:, turn: or turns: (got {u:?})."));
                }
                if u.starts_with("turn") && (s.username.is_none() || s.credential.is_none()) {
                    return Err(format!("The TURN server {u} needs a username and a password."));
                }
            }
        }
        if self.name.chars().count() > 64 {
            return Err("The display name is at most 64 characters.".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_explains_what_to_fix() {
        assert_eq!(Settings::default().validate(), Ok(()));
        let bad = Settings { server_url: "example.com".into(), ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("http://"));
        let turn = IceServer { urls: vec!["turn:t.example:3478".into()], username: None, credential: None };
        let bad = Settings { ice_servers: vec![turn.clone()], ..Default::default() };
        assert!(bad.validate().unwrap_err().contains("username"));
        let ok = IceServer { username: Some("u".into()), credential: Some("p".into()), ..turn };
        assert_eq!(Settings { ice_servers: vec![ok], ..Default::default() }.validate(), Ok(()));
        let stun = IceServer { urls: vec!["http://x".into()], username: None, credential: None };
        assert!(Settings { ice_servers: vec![stun], ..Default::default() }.validate().is_err());
    }

    #[test]
    fn an_older_file_still_loads() {
        let s: Settings = serde_json::from_str(r#"{"serverUrl":"https://s.example","future":1}"#).unwrap();
        assert_eq!(s.server_url, "https://s.example");
        assert_eq!(s.camera, "");
    }
}
