//! Command-line flags (each also an environment variable).

use std::net::SocketAddr;
use std::time::Duration;

use clap::{Parser, ValueEnum};

use crate::{Config, HubConfig, Origins};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// ringlet-signal: the Socket.IO signaling server for Ringlet calls.
#[derive(Debug, Parser)]
#[command(name = "ringlet-signal", version, about)]
pub struct Args {
    /// Address to listen on [default: 0.0.0.0:3000, or 0.0.0.0:$PORT when PORT is set]
    #[arg(long, env = "RINGLET_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Peers a room holds
    #[arg(long, env = "RINGLET_MAX_PEERS", default_value_t = 2, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub max_peers: u16,

    /// A browser origin allowed to connect (repeatable; '*' allows any).
    /// The app's own origins and same-origin pages are always allowed.
    #[arg(long = "cors-origin", env = "RINGLET_CORS_ORIGIN", value_delimiter = ',')]
    pub cors_origin: Vec<String>,

    /// Socket.IO ping interval
    #[arg(long, env = "RINGLET_PING_INTERVAL", default_value = "25s", value_parser = humantime::parse_duration)]
    pub ping_interval: Duration,

    /// Socket.IO ping timeout
    #[arg(long, env = "RINGLET_PING_TIMEOUT", default_value = "60s", value_parser = humantime::parse_duration)]
    pub ping_timeout: Duration,

    /// How long a peer whose transport dropped keeps its place (0s: none)
    #[arg(long, env = "RINGLET_GRACE", default_value = "15s", value_parser = humantime::parse_duration)]
    pub grace: Duration,

    /// Messages held per away peer
    #[arg(long, env = "RINGLET_MAX_HELD", default_value_t = 1024)]
    pub max_held: usize,

    /// Held bytes per away peer
    #[arg(long, env = "RINGLET_MAX_HELD_BYTES", default_value_t = 1024 * 1024)]
    pub max_held_bytes: usize,

    /// Refuse joins without a valid invite token (see --token-secret).
    /// Rooms are then created with `POST /api/rooms`, which returns the
    /// room's first token
    #[arg(long, env = "RINGLET_REQUIRE_TOKEN")]
    pub require_token: bool,

    /// The secret invite tokens are signed with (16 bytes or more). Give it
    /// through the environment rather than the command line, which other
    /// local users can read. Every node of one deployment needs the same
    #[arg(long, env = "RINGLET_TOKEN_SECRET", hide_env_values = true)]
    pub token_secret: Option<String>,

    /// How long an invite token lasts
    #[arg(long, env = "RINGLET_TOKEN_TTL", default_value = "24h", value_parser = humantime::parse_duration)]
    pub token_ttl: Duration,

    /// Socket.IO connections from one IP address (0: no limit)
    /// [default: 64, or no limit when listening on a loopback address]
    ///
    /// A direct WebSocket counts from the moment it opens until it closes.
    ///
    /// A server that listens on loopback only hears this host: a reverse
    /// proxy in front of it (every client then has the proxy's address, so
    /// counting it would cap the whole service) or local programs.
    #[arg(long, env = "RINGLET_MAX_CONNS_PER_IP")]
    pub max_conns_per_ip: Option<usize>,

    /// Sustained events per second per connection (0: no limit). A client
    /// over it is refused; one that keeps going is disconnected
    #[arg(long, env = "RINGLET_MAX_EVENTS_PER_SEC", default_value_t = 100.0)]
    pub max_events_per_sec: f64,

    /// Events a connection may send at once above the sustained rate
    #[arg(long, env = "RINGLET_EVENT_BURST", default_value_t = 500.0)]
    pub event_burst: f64,

    /// Rooms one connection may be in at once
    #[arg(long, env = "RINGLET_MAX_ROOMS_PER_SOCKET", default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_rooms_per_socket: u32,

    /// Rooms on the server in all
    #[arg(long, env = "RINGLET_MAX_ROOMS", default_value_t = 100_000, value_parser = clap::value_parser!(u64).range(1..))]
    pub max_rooms: u64,

    /// Rooms one address may create a minute over POST /api/rooms
    #[arg(long, env = "RINGLET_MAX_NEW_ROOMS_PER_MIN", default_value_t = 60.0)]
    pub max_new_rooms_per_min: f64,

    /// Serve HTTPS/WSS with this certificate chain (PEM); needs --tls-key
    #[arg(long, env = "RINGLET_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<std::path::PathBuf>,

    /// The private key of --tls-cert (PEM)
    #[arg(long, env = "RINGLET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,

    /// Runtime worker threads. The hub is one lock, so one thread relays
    /// with the least CPU per message; more help only the HTTP side
    #[arg(long, env = "RINGLET_WORKERS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub workers: u16,

    /// Serve the web client from this directory instead of the copy built
    /// into the binary (for working on `ui/` without rebuilding)
    #[arg(long, env = "RINGLET_WEB_ROOT", conflicts_with = "no_web")]
    pub web_root: Option<std::path::PathBuf>,

    /// Serve no web client: signaling, /healthz and /metrics only
    #[arg(long, env = "RINGLET_NO_WEB")]
    pub no_web: bool,

    /// A TURN server URL for the join ack, e.g. `turn:turn.example.com:3478`,
    /// `turn:host:3478?transport=tcp` or `turns:host:5349` (repeatable). Each
    /// join gets a credential by the TURN REST scheme, signed with
    /// --turn-secret (coturn: `use-auth-secret`)
    #[arg(long = "turn-url", env = "RINGLET_TURN_URL", value_delimiter = ',', requires = "turn_secret")]
    pub turn_url: Vec<String>,

    /// The secret shared with the TURN server (coturn `static-auth-secret`).
    /// Prefer the environment variable: a command line is visible to others
    #[arg(long, env = "RINGLET_TURN_SECRET", hide_env_values = true, requires = "turn_url")]
    pub turn_secret: Option<String>,

    /// How long a minted TURN credential stays valid; clients refresh it
    /// shortly before it expires
    #[arg(long, env = "RINGLET_TURN_TTL", default_value = "1h", value_parser = humantime::parse_duration)]
    pub turn_ttl: Duration,

    /// A STUN server URL for the join ack, e.g. `stun:stun.example.com:3478`
    /// (repeatable)
    #[arg(long = "stun-url", env = "RINGLET_STUN_URL", value_delimiter = ',')]
    pub stun_url: Vec<String>,

    /// Cluster mode: share rooms with other nodes through this Redis
    /// (redis://host:port[/db], Redis 7+). Every node is equal; put them
    /// behind any load balancer
    #[arg(long, env = "RINGLET_REDIS")]
    pub redis: Option<String>,

    /// Cluster mode: a node silent this long is dead, and its peers start
    /// their grace period
    #[arg(long, env = "RINGLET_REDIS_NODE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub redis_node_ttl: Duration,

    /// Who serves clients that open a WebSocket directly: `lean` (Ringlet's
    /// own transport, one task per connection) or `socketioxide`. Polling
    /// and cluster mode always use socketioxide
    #[arg(long, env = "RINGLET_WEBSOCKET", value_enum, default_value_t = crate::WsEngine::Lean)]
    pub websocket: crate::WsEngine,

    /// Log format
    #[arg(long, env = "RINGLET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Args {
    /// The listen address: `--listen`, else `PORT` from the environment, else 3000.
    pub fn listen_addr(&self, port_env: Option<&str>) -> Result<SocketAddr, String> {
        if let Some(a) = self.listen {
            return Ok(a);
        }
        match port_env {
            Some(p) => p
                .parse::<u16>()
                .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
                .map_err(|_| format!("PORT must be a port number, got {p:?}")),
            None => Ok(SocketAddr::from(([0, 0, 0, 0], 3000))),
        }
    }

    pub fn config(&self, port_env: Option<&str>) -> Result<Config, String> {
        let origins = if self.cors_origin.iter().any(|o| o == "*") {
            Origins::Any
        } else {
            let mut list: Vec<String> = crate::APP_ORIGINS.iter().map(|s| s.to_string()).collect();
            for o in &self.cors_origin {
                let o = o.trim().trim_end_matches('/');
                if !(o.starts_with("http://") || o.starts_with("https://") || o.contains("://")) {
                    return Err(format!("--cors-origin must be an origin such as https://example.com, got {o:?}"));
                }
                list.push(o.to_owned());
            }
            Origins::List(list)
        };
        let turn = self.turn_config()?;
        let invites = match (self.require_token, &self.token_secret) {
            (true, Some(secret)) => Some(
                crate::Invites::new(secret.as_bytes().to_vec(), self.token_ttl, true)
                    .map_err(|e| format!("--token-secret: {e}"))?,
            ),
            (true, None) => return Err("--require-token needs --token-secret (or RINGLET_TOKEN_SECRET)".into()),
            (false, Some(_)) => return Err("--token-secret does nothing without --require-token".into()),
            (false, None) => None,
        };
        for (name, v) in [
            ("--max-events-per-sec", self.max_events_per_sec),
            ("--event-burst", self.event_burst),
            ("--max-new-rooms-per-min", self.max_new_rooms_per_min),
        ] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{name} must be a number of zero or more, got {v}"));
            }
        }
        let listen = self.listen_addr(port_env)?;
        let connections_per_ip = self.max_conns_per_ip.unwrap_or(if listen.ip().to_canonical().is_loopback() {
            0
        } else {
            crate::LimitConfig::default().connections_per_ip
        });
        Ok(Config {
            listen,
            hub: HubConfig {
                max_peers: self.max_peers as usize,
                grace: self.grace,
                max_held_messages: self.max_held,
                max_held_bytes: self.max_held_bytes,
                max_rooms_per_connection: self.max_rooms_per_socket as usize,
                max_rooms: self.max_rooms as usize,
                turn,
            },
            limits: crate::LimitConfig {
                connections_per_ip,
                events_per_sec: self.max_events_per_sec,
                event_burst: self.event_burst,
                room_creation_per_sec: self.max_new_rooms_per_min / 60.0,
                room_creation_burst: 20.0,
            },
            invites,
            tls: match (&self.tls_cert, &self.tls_key) {
                (Some(cert), Some(key)) => Some(crate::TlsFiles { cert: cert.clone(), key: key.clone() }),
                _ => None,
            },
            origins,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            web: match (&self.web_root, self.no_web) {
                (_, true) => crate::WebClient::Off,
                (Some(dir), false) if !dir.is_dir() => {
                    return Err(format!("--web-root {} is not a directory", dir.display()))
                }
                (Some(dir), false) => crate::WebClient::Dir(dir.clone()),
                (None, false) => crate::WebClient::Embedded,
            },
            redis: match &self.redis {
                Some(url) if !(url.starts_with("redis://") || url.starts_with("redis+unix://")) => {
                    return Err(format!("--redis must be a redis:// or redis+unix:// URL, got {url:?}"));
                }
                Some(url) if self.redis_node_ttl < Duration::from_millis(500) => {
                    return Err(format!("--redis-node-ttl must be at least 500ms for {url}"));
                }
                Some(url) => Some(crate::ClusterConfig { node_ttl: self.redis_node_ttl, ..crate::ClusterConfig::new(url) }),
                None => None,
            },
            websocket: self.websocket,
            ..Config::default()
        })
    }
}

impl Args {
    /// `--turn-url`, `--turn-secret`, `--turn-ttl`, `--stun-url` → what the
    /// hub puts in each join ack (none when neither kind of URL is given).
    fn turn_config(&self) -> Result<Option<std::sync::Arc<crate::TurnConfig>>, String> {
        let scheme_ok = |u: &str, schemes: &[&str]| schemes.iter().any(|s| u.starts_with(s) && u.len() > s.len());
        for u in &self.turn_url {
            if !scheme_ok(u, &["turn:", "turns:"]) {
                return Err(format!("--turn-url must start with turn: or turns:, got {u:?}"));
            }
        }
        for u in &self.stun_url {
            if !scheme_ok(u, &["stun:", "stuns:"]) {
                return Err(format!("--stun-url must start with stun: or stuns:, got {u:?}"));
            }
        }
        if self.turn_secret.as_deref().is_some_and(str::is_empty) {
            return Err("--turn-secret must not be empty".into());
        }
        if self.turn_ttl < Duration::from_secs(1) {
            return Err("--turn-ttl must be at least 1s".into());
        }
        if self.turn_url.is_empty() && self.stun_url.is_empty() {
            return Ok(None);
        }
        Ok(Some(std::sync::Arc::new(crate::TurnConfig {
            urls: self.turn_url.clone(),
            secret: self.turn_secret.clone().unwrap_or_default(),
            ttl: self.turn_ttl,
            stun_urls: self.stun_url.clone(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Args {
        Args::try_parse_from(std::iter::once("ringlet-signal").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn defaults_follow_the_seed() {
        let c = parse(&[]).config(None).unwrap();
        assert_eq!(c.listen, "0.0.0.0:3000".parse().unwrap());
        assert_eq!(c.hub.max_peers, 2);
        assert_eq!(c.ping_interval, Duration::from_secs(25));
        assert_eq!(c.ping_timeout, Duration::from_secs(60));
        assert_eq!(c.hub.grace, Duration::from_secs(15));
        assert_eq!(c.origins, Origins::default());
    }

    #[test]
    fn port_env_applies_only_without_listen() {
        assert_eq!(parse(&[]).config(Some("4100")).unwrap().listen, "0.0.0.0:4100".parse().unwrap());
        let c = parse(&["--listen", "127.0.0.1:5000"]).config(Some("4100")).unwrap();
        assert_eq!(c.listen, "127.0.0.1:5000".parse().unwrap());
        assert!(parse(&[]).config(Some("http")).is_err());
    }

    #[test]
    fn flags_are_parsed() {
        let c = parse(&[
            "--max-peers",
            "4",
            "--cors-origin",
            "https://a.example",
            "--cors-origin",
            "http://b.example:8080/",
            "--ping-interval",
            "5s",
            "--ping-timeout",
            "10s",
            "--grace",
            "500ms",
        ])
        .config(None)
        .unwrap();
        assert_eq!(c.hub.max_peers, 4);
        assert_eq!(c.hub.grace, Duration::from_millis(500));
        assert_eq!(c.ping_interval, Duration::from_secs(5));
        let Origins::List(list) = c.origins else { panic!("not a list") };
        assert!(list.contains(&"https://a.example".to_string()));
        assert!(list.contains(&"http://b.example:8080".to_string()));
        assert!(list.contains(&"tauri://localhost".to_string()));
        assert_eq!(parse(&["--cors-origin", "*"]).config(None).unwrap().origins, Origins::Any);
        assert!(parse(&["--cors-origin", "example.com"]).config(None).is_err());
        assert!(Args::try_parse_from(["ringlet-signal", "--max-peers", "0"]).is_err());
        assert!(Args::try_parse_from(["ringlet-signal", "--grace", "soon"]).is_err());
        let c = parse(&["--redis", "redis://127.0.0.1:6390/2", "--redis-node-ttl", "1s"]).config(None).unwrap();
        let r = c.redis.expect("cluster mode");
        assert_eq!(r.url, "redis://127.0.0.1:6390/2");
        assert_eq!(r.node_ttl, Duration::from_secs(1));
        assert!(parse(&["--redis", "127.0.0.1:6379"]).config(None).is_err());
        assert!(parse(&[]).config(None).unwrap().redis.is_none());
    }

    #[test]
    fn limits_tokens_and_tls_flags() {
        let c = parse(&[]).config(None).unwrap();
        assert_eq!(c.limits, crate::LimitConfig::default());
        assert_eq!(c.hub.max_rooms_per_connection, 4);
        assert!(c.invites.is_none() && c.tls.is_none());
        let c = parse(&[
            "--max-conns-per-ip",
            "3",
            "--max-events-per-sec",
            "0",
            "--max-rooms-per-socket",
            "2",
            "--max-rooms",
            "10",
            "--require-token",
            "--token-secret",
            "0123456789abcdef",
            "--token-ttl",
            "1h",
            "--tls-cert",
            "c.pem",
            "--tls-key",
            "k.pem",
        ])
        .config(None)
        .unwrap();
        assert_eq!(c.limits.connections_per_ip, 3);
        assert_eq!(c.limits.events_per_sec, 0.0);
        assert_eq!((c.hub.max_rooms_per_connection, c.hub.max_rooms), (2, 10));
        let inv = c.invites.expect("tokens required");
        assert!(inv.required());
        assert_eq!(inv.ttl(), Duration::from_secs(3600));
        assert_eq!(c.tls.unwrap().cert, std::path::PathBuf::from("c.pem"));
        assert!(parse(&["--require-token"]).config(None).unwrap_err().contains("--token-secret"));
        assert!(parse(&["--require-token", "--token-secret", "short"]).config(None).unwrap_err().contains("16 bytes"));
        assert!(parse(&["--token-secret", "0123456789abcdef"]).config(None).is_err());
        assert!(parse(&["--max-events-per-sec=-1"]).config(None).is_err());
        assert!(Args::try_parse_from(["ringlet-signal", "--tls-cert", "c.pem"]).is_err());
        assert!(Args::try_parse_from(["ringlet-signal", "--max-rooms-per-socket", "0"]).is_err());
    }

    #[test]
    fn a_server_on_loopback_counts_no_addresses_unless_told() {
        let per_ip = |args: &[&str]| parse(args).config(None).unwrap().limits.connections_per_ip;
        assert_eq!(per_ip(&[]), 64, "listening on every address");
        assert_eq!(per_ip(&["--listen", "192.0.2.7:3000"]), 64);
        assert_eq!(per_ip(&["--listen", "127.0.0.1:3000"]), 0, "behind a proxy on this host");
        assert_eq!(per_ip(&["--listen", "[::1]:3000"]), 0);
        assert_eq!(per_ip(&["--listen", "[::ffff:127.0.0.1]:3000"]), 0);
        assert_eq!(per_ip(&["--listen", "[::]:3000"]), 64);
        assert_eq!(per_ip(&["--listen", "127.0.0.1:3000", "--max-conns-per-ip", "5"]), 5);
        assert_eq!(per_ip(&["--max-conns-per-ip", "0"]), 0);
    }

    #[test]
    fn turn_flags() {
        assert!(parse(&[]).config(None).unwrap().hub.turn.is_none());
        let c = parse(&[
            "--turn-url", "turn:127.0.0.1:3478", "--turn-url", "turns:turn.example:5349?transport=tcp",
            "--turn-secret", "s", "--turn-ttl", "10m", "--stun-url", "stun:127.0.0.1:3478",
        ])
        .config(None)
        .unwrap();
        let t = c.hub.turn.unwrap();
        assert_eq!(t.urls, ["turn:127.0.0.1:3478", "turns:turn.example:5349?transport=tcp"]);
        assert_eq!((t.secret.as_str(), t.ttl), ("s", Duration::from_secs(600)));
        assert_eq!(t.stun_urls, ["stun:127.0.0.1:3478"]);
        assert_eq!(parse(&["--turn-url", "turn:h:1", "--turn-secret", "s"]).config(None).unwrap().hub.turn.unwrap().ttl, Duration::from_secs(3600));
        // STUN alone needs no secret.
        assert!(parse(&["--stun-url", "stun:h:3478"]).config(None).unwrap().hub.turn.unwrap().urls.is_empty());
        // A URL without its secret, or a secret without a URL, is a mistake.
        assert!(Args::try_parse_from(["ringlet-signal", "--turn-url", "turn:h:1"]).is_err());
        assert!(Args::try_parse_from(["ringlet-signal", "--turn-secret", "s"]).is_err());
        assert!(parse(&["--turn-url", "http://h:1", "--turn-secret", "s"]).config(None).is_err());
        assert!(parse(&["--stun-url", "turn:h:1"]).config(None).is_err());
        assert!(parse(&["--turn-url", "turn:h:1", "--turn-secret", "s", "--turn-ttl", "0s"]).config(None).is_err());
    }

    #[test]
    fn origin_policy() {
        let o = Origins::default();
        assert!(o.allows("tauri://localhost", None));
        assert!(o.allows("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(!o.allows("http://evil.example", Some("127.0.0.1:3000")));
        assert!(!o.allows("http://127.0.0.1:3001", Some("127.0.0.1:3000")));
        assert!(Origins::Any.allows("http://evil.example", None));
    }
}
