//! Which STUN/TURN servers a call uses, and when their credentials need
//! refreshing. Sans-IO: the caller passes the time.
//!
//! The servers are the app's own (settings, `--ice-server`) plus what the
//! signaling server's join ack carries. A TURN credential from the ack is
//! short-lived (TURN REST scheme: username `<expiry unix seconds>:<peer>`),
//! so the engine asks for a fresh one well before it expires (a `join` again
//! on the same socket) and restarts ICE with it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ringlet_proto::IceServer;

/// The app's servers first (the user chose them), then the ack's, leaving
/// out an acked server whose URLs the app already configured.
pub fn merge(configured: &[IceServer], acked: &[IceServer]) -> Vec<IceServer> {
    let mut out = configured.to_vec();
    for s in acked {
        if !configured.iter().any(|c| c.urls == s.urls) {
            out.push(s.clone());
        }
    }
    out
}

/// The earliest TURN REST expiry (unix seconds) among `servers`' usernames;
/// `None` when no username has that form (static credentials, STUN only).
pub fn expiry(servers: &[IceServer]) -> Option<u64> {
    servers
        .iter()
        .filter_map(|s| {
            let (expiry, _) = s.username.as_deref()?.split_once(':')?;
            expiry.parse::<u64>().ok()
        })
        .min()
}

/// How long from `now` to ask for a fresh credential that expires at
/// `expiry`: after four fifths of what is left. A fifth of an hour is
/// plenty of margin for clock skew between us and the TURN server, and the
/// margin scales down with a short TTL (tests use seconds). `None` when it
/// has already expired by our clock: asking again would only loop.
pub fn refresh_in(expiry: u64, now: SystemTime) -> Option<Duration> {
    let now = now.duration_since(UNIX_EPOCH).unwrap_or_default();
    let left = Duration::from_secs(expiry).checked_sub(now).filter(|d| !d.is_zero())?;
    Some((left * 4 / 5).max(Duration::from_millis(500)).min(left))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server(urls: &[&str], username: Option<&str>) -> IceServer {
        IceServer {
            urls: urls.iter().map(|s| s.to_string()).collect(),
            username: username.map(str::to_owned),
            credential: username.map(|_| "pw".to_owned()),
        }
    }

    #[test]
    fn merge_keeps_configured_servers_first_and_skips_repeats() {
        let mine = [server(&["stun:stun.example:3478"], None), server(&["turn:t.example:3478"], Some("me"))];
        let acked = [server(&["turn:t.example:3478"], Some("1:a")), server(&["turn:u.example:3478"], Some("1:a"))];
        let merged = merge(&mine, &acked);
        assert_eq!(merged, vec![mine[0].clone(), mine[1].clone(), acked[1].clone()]);
        assert_eq!(merge(&[], &acked), acked.to_vec());
        assert_eq!(merge(&mine, &[]), mine.to_vec());
    }

    #[test]
    fn expiry_is_the_earliest_rest_username() {
        assert_eq!(expiry(&[]), None);
        assert_eq!(expiry(&[server(&["stun:s:1"], None), server(&["turn:t:1"], Some("static-user"))]), None);
        let servers = [server(&["turn:a:1"], Some("1700000600:alice")), server(&["turn:b:1"], Some("1700000300:alice"))];
        assert_eq!(expiry(&servers), Some(1_700_000_300));
    }

    #[test]
    fn refresh_comes_well_before_expiry_and_scales_with_the_ttl() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        // An hour left: refresh after 48 minutes (12 minutes of margin).
        assert_eq!(refresh_in(3600, t(0)), Some(Duration::from_secs(2880)));
        // Seconds left (tests): the margin shrinks with it.
        assert_eq!(refresh_in(5, t(0)), Some(Duration::from_secs(4)));
        // Under a second: not sooner than half a second, never after expiry.
        assert_eq!(refresh_in(1, t(0) + Duration::from_millis(700)), Some(Duration::from_millis(300)));
        // Already expired by our clock (skew): no refresh loop.
        assert_eq!(refresh_in(10, t(10)), None);
        assert_eq!(refresh_in(10, t(11)), None);
    }
}
