//! Short-lived TURN credentials, minted by the TURN REST scheme that coturn
//! (`use-auth-secret`) and most TURN services accept: the server and the TURN
//! server share a secret; a credential is
//!
//! - username `<expiry, unix seconds>:<peerId>`
//! - password `base64(HMAC-SHA1(secret, username))`
//!
//! so the TURN server checks it without asking us, and refuses it once the
//! expiry has passed. Sans-IO: the caller passes the time.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hmac::{Hmac, Mac};
use ringlet_proto::{IceServer, PeerId};
use sha1::Sha1;

/// What `ringlet-signal` hands out in every join ack.
#[derive(Clone, PartialEq, Eq)]
pub struct TurnConfig {
    /// `turn:` / `turns:` URLs sharing the secret (one `IceServer`).
    pub urls: Vec<String>,
    /// The secret shared with the TURN server (`static-auth-secret`).
    pub secret: String,
    /// How long a credential lives.
    pub ttl: Duration,
    /// `stun:` URLs handed out as they are (no credential).
    pub stun_urls: Vec<String>,
}

impl fmt::Debug for TurnConfig {
    /// Never prints the secret (configs end up in logs).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("secret", &"<redacted>")
            .field("ttl", &self.ttl)
            .field("stun_urls", &self.stun_urls)
            .finish()
    }
}

/// A credential by the TURN REST scheme, valid until `expiry` (unix seconds).
pub fn credential(secret: &[u8], expiry: u64, peer: &str) -> (String, String) {
    let username = format!("{expiry}:{peer}");
    let mut mac = Hmac::<Sha1>::new_from_slice(secret).expect("HMAC takes a key of any length");
    mac.update(username.as_bytes());
    let password = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, password)
}

impl TurnConfig {
    /// The ICE servers for `peer` at `now`: the STUN URLs (if any), then the
    /// TURN URLs with a credential that expires `ttl` from now.
    pub fn ice_servers(&self, peer: &PeerId, now: SystemTime) -> Vec<IceServer> {
        let mut servers = Vec::with_capacity(2);
        if !self.stun_urls.is_empty() {
            servers.push(IceServer { urls: self.stun_urls.clone(), username: None, credential: None });
        }
        if !self.urls.is_empty() {
            let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
            // Round up: a TTL under a second still gives a credential that
            // lives past `now`.
            let expiry = (now + self.ttl).as_secs() + u64::from((now + self.ttl).subsec_nanos() > 0);
            let (username, password) = credential(self.secret.as_bytes(), expiry, peer.as_str());
            servers.push(IceServer { urls: self.urls.clone(), username: Some(username), credential: Some(password) });
        }
        servers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Computed independently: `printf '%s' '1700000000:alice' |
    /// openssl dgst -sha1 -hmac north-sea -binary | base64`.
    const VECTOR: (&str, u64, &str, &str) = ("north-sea", 1_700_000_000, "alice", "fYZsCfMUFS6r+6Q7R40Yu2hIbXk=");

    #[test]
    fn matches_a_known_vector() {
        let (secret, expiry, peer, password) = VECTOR;
        assert_eq!(credential(secret.as_bytes(), expiry, peer), (format!("{expiry}:{peer}"), password.to_owned()));
    }

    /// The same check against openssl at test time, where it is installed.
    #[test]
    fn matches_openssl() {
        use std::io::Write;
        use std::process::{Command, Stdio};
        let username = "1800000000:bob-2";
        let Ok(mut child) = Command::new("openssl")
            .args(["dgst", "-sha1", "-hmac", "s3cr=t with spaces", "-binary"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
        else {
            eprintln!("no openssl: skipped (the fixed vector still runs)");
            return;
        };
        child.stdin.take().unwrap().write_all(username.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        let expected = base64::engine::general_purpose::STANDARD.encode(&out.stdout);
        assert_eq!(credential(b"s3cr=t with spaces", 1_800_000_000, "bob-2").1, expected);
    }

    #[test]
    fn ice_servers_carry_a_credential_that_expires_after_the_ttl() {
        let config = TurnConfig {
            urls: vec!["turn:turn.example:3478".into(), "turn:turn.example:3478?transport=tcp".into()],
            secret: "north-sea".into(),
            ttl: Duration::from_secs(3600),
            stun_urls: vec!["stun:stun.example:3478".into()],
        };
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000 - 3600);
        let servers = config.ice_servers(&PeerId::new("alice").unwrap(), now);
        assert_eq!(servers.len(), 2);
        assert_eq!(servers[0], IceServer { urls: vec!["stun:stun.example:3478".into()], username: None, credential: None });
        assert_eq!(servers[1].urls, config.urls);
        assert_eq!(servers[1].username.as_deref(), Some("1700000000:alice"));
        assert_eq!(servers[1].credential.as_deref(), Some(VECTOR.3));
        // A fraction of a second rounds the expiry up, never down.
        let later = config.ice_servers(&PeerId::new("alice").unwrap(), now + Duration::from_millis(1));
        assert_eq!(later[1].username.as_deref(), Some("1700000001:alice"));
    }

    #[test]
    fn the_secret_stays_out_of_debug_output() {
        let config = TurnConfig { urls: vec![], secret: "hunter2".into(), ttl: Duration::from_secs(1), stun_urls: vec![] };
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
