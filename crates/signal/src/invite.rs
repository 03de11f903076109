//! Invite tokens: who may join a room when the server requires them.
//!
//! A token is `<expiry>.<mac>`: the expiry in Unix seconds, and
//! base64url(HMAC-SHA256(secret, "ringlet-invite\0" room "\0" expiry)).
//! It names one room and one deadline and needs no server state, so any
//! node holding the secret can check it, and a restart forgets nothing.
//!
//! Tokens are only ever minted for room ids the server chose itself
//! ([`Invites::new_room`]) or for a room the holder has already joined (the
//! join ack refreshes the token): minting for a client-chosen room would let
//! anyone invite themselves into a room whose id they had learned.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use ringlet_signal::invite::{Invites, InviteError};
//!
//! let invites = Invites::new(b"a secret of at least sixteen bytes".to_vec(), Duration::from_secs(3600), true).unwrap();
//! let now = SystemTime::now();
//! let (room, token) = invites.new_room(now);
//! assert_eq!(invites.check(&room, Some(&token.token), now), Ok(()));
//! assert_eq!(invites.check(&room, None, now), Err(InviteError::Required));
//! let later = now + Duration::from_secs(7200);
//! assert_eq!(invites.check(&room, Some(&token.token), later), Err(InviteError::Expired));
//! ```

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use ringlet_proto::{ErrorBody, ErrorCode, RoomId};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// The shortest secret accepted: a guessable key would make every token
/// forgeable.
pub const MIN_SECRET: usize = 16;

/// Why a join's token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InviteError {
    #[error("this server admits only people with an invite link; ask for one")]
    Required,
    #[error("this invite is not valid for this room; check the link you were sent")]
    Invalid,
    #[error("this invite has expired; ask for a new link")]
    Expired,
}

impl InviteError {
    pub fn code(self) -> ErrorCode {
        match self {
            InviteError::Required => ErrorCode::TokenRequired,
            InviteError::Invalid => ErrorCode::TokenInvalid,
            InviteError::Expired => ErrorCode::TokenExpired,
        }
    }

    pub fn to_body(self) -> ErrorBody {
        ErrorBody { code: self.code(), message: self.to_string() }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("the invite secret must be at least {MIN_SECRET} bytes (got {0})")]
pub struct WeakSecret(usize);

/// A minted token and when it stops working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Minted {
    pub token: String,
    /// Unix seconds.
    pub expires_at: u64,
}

/// The server's invite policy: its secret, how long tokens last, and
/// whether a join needs one.
#[derive(Clone)]
pub struct Invites {
    key: HmacSha256,
    ttl: Duration,
    required: bool,
}

impl std::fmt::Debug for Invites {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("Invites").field("ttl", &self.ttl).field("required", &self.required).finish_non_exhaustive()
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

impl Invites {
    pub fn new(secret: Vec<u8>, ttl: Duration, required: bool) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET {
            return Err(WeakSecret(secret.len()));
        }
        let key = HmacSha256::new_from_slice(&secret).expect("HMAC takes a key of any length");
        Ok(Invites { key, ttl, required })
    }

    /// A server that signs tokens with a random per-process secret (the
    /// desktop app's embedded server: its links live as long as the app).
    pub fn ephemeral(ttl: Duration, required: bool) -> Self {
        let secret: [u8; 32] = rand::random();
        Invites::new(secret.to_vec(), ttl, required).expect("32 bytes is long enough")
    }

    pub fn required(&self) -> bool {
        self.required
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    fn mac(&self, room: &str, expiry: u64) -> HmacSha256 {
        let mut mac = self.key.clone();
        mac.update(b"ringlet-invite\0");
        mac.update(room.as_bytes());
        mac.update(b"\0");
        mac.update(expiry.to_string().as_bytes());
        mac
    }

    /// A token for `room`, valid for the configured time from `now`.
    /// Only for rooms the server named or the caller has joined: see the
    /// module docs.
    pub fn mint(&self, room: &RoomId, now: SystemTime) -> Minted {
        let expires_at = unix(now).saturating_add(self.ttl.as_secs().max(1));
        let tag = self.mac(room.as_str(), expires_at).finalize().into_bytes();
        Minted { token: format!("{expires_at}.{}", URL_SAFE_NO_PAD.encode(tag)), expires_at }
    }

    /// A fresh room with an unguessable id (128 random bits) and its token.
    pub fn new_room(&self, now: SystemTime) -> (RoomId, Minted) {
        let room = random_room_id();
        let minted = self.mint(&room, now);
        (room, minted)
    }

    /// Whether a join of `room` with `token` may go on. Without
    /// `required`, any join may, token or not.
    pub fn check(&self, room: &RoomId, token: Option<&str>, now: SystemTime) -> Result<(), InviteError> {
        if !self.required {
            return Ok(());
        }
        let token = token.filter(|t| !t.is_empty()).ok_or(InviteError::Required)?;
        let (expiry, tag) = token.split_once('.').ok_or(InviteError::Invalid)?;
        // Canonical decimal only: one token per (room, expiry).
        if expiry.is_empty()
            || expiry.len() > 20
            || !expiry.bytes().all(|b| b.is_ascii_digit())
            || expiry.starts_with('0')
        {
            return Err(InviteError::Invalid);
        }
        let expiry: u64 = expiry.parse().map_err(|_| InviteError::Invalid)?;
        let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| InviteError::Invalid)?;
        // Constant-time comparison.
        self.mac(room.as_str(), expiry).verify_slice(&tag).map_err(|_| InviteError::Invalid)?;
        if unix(now) >= expiry {
            return Err(InviteError::Expired);
        }
        Ok(())
    }
}

/// A fresh room id of 128 random bits.
pub fn random_room_id() -> RoomId {
    RoomId::from_random(rand::random())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invites(required: bool) -> Invites {
        Invites::new(b"0123456789abcdef-secret".to_vec(), Duration::from_secs(60), required).unwrap()
    }

    fn room(s: &str) -> RoomId {
        RoomId::new(s).unwrap()
    }

    #[test]
    fn a_minted_token_admits_to_its_room_until_it_expires() {
        let inv = invites(true);
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let m = inv.mint(&room("r1"), t0);
        assert_eq!(m.expires_at, 1_800_000_060);
        assert!(m.token.starts_with("1800000060."));
        assert_eq!(inv.check(&room("r1"), Some(&m.token), t0), Ok(()));
        assert_eq!(inv.check(&room("r1"), Some(&m.token), t0 + Duration::from_secs(59)), Ok(()));
        assert_eq!(inv.check(&room("r1"), Some(&m.token), t0 + Duration::from_secs(60)), Err(InviteError::Expired));
    }

    #[test]
    fn a_token_names_one_room_and_one_secret() {
        let inv = invites(true);
        let now = SystemTime::now();
        let m = inv.mint(&room("r1"), now);
        assert_eq!(inv.check(&room("r2"), Some(&m.token), now), Err(InviteError::Invalid));
        let other = Invites::new(b"another secret, also long".to_vec(), Duration::from_secs(60), true).unwrap();
        assert_eq!(other.check(&room("r1"), Some(&m.token), now), Err(InviteError::Invalid));
    }

    #[test]
    fn a_moved_deadline_or_a_mangled_token_is_invalid() {
        let inv = invites(true);
        let now = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let m = inv.mint(&room("r1"), now);
        let (_, tag) = m.token.split_once('.').unwrap();
        for bad in [
            format!("1900000000.{tag}"),
            format!("01800000060.{tag}"),
            format!("1800000060.{}", &tag[1..]),
            format!("1800000060.{tag}A"),
            "1800000060".into(),
            ".".into(),
            "x.y".into(),
            format!("-5.{tag}"),
            format!("99999999999999999999999.{tag}"),
        ] {
            assert_eq!(inv.check(&room("r1"), Some(&bad), now), Err(InviteError::Invalid), "{bad}");
        }
        assert_eq!(inv.check(&room("r1"), None, now), Err(InviteError::Required));
        assert_eq!(inv.check(&room("r1"), Some(""), now), Err(InviteError::Required));
    }

    #[test]
    fn without_required_anyone_joins() {
        let inv = invites(false);
        assert_eq!(inv.check(&room("r1"), None, SystemTime::now()), Ok(()));
        assert_eq!(inv.check(&room("r1"), Some("junk"), SystemTime::now()), Ok(()));
    }

    #[test]
    fn new_rooms_are_unguessable_and_valid() {
        let inv = invites(true);
        let (a, ma) = inv.new_room(SystemTime::now());
        let (b, _) = inv.new_room(SystemTime::now());
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 22);
        assert_eq!(inv.check(&a, Some(&ma.token), SystemTime::now()), Ok(()));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(Invites::new(b"short".to_vec(), Duration::from_secs(1), true).is_err());
        assert!(!format!("{:?}", invites(true)).contains("secret"));
    }
}
