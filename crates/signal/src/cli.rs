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

    /// Cluster mode: share rooms with other nodes through this Redis
    /// (redis://host:port[/db], Redis 7+). Every node is equal; put them
    /// behind any load balancer
    #[arg(long, env = "RINGLET_REDIS")]
    pub redis: Option<String>,

    /// Cluster mode: a node silent this long is dead, and its peers start
    /// their grace period
    #[arg(long, env = "RINGLET_REDIS_NODE_TTL", default_value = "3s", value_parser = humantime::parse_duration)]
    pub redis_node_ttl: Duration,

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
        Ok(Config {
            listen: self.listen_addr(port_env)?,
            hub: HubConfig {
                max_peers: self.max_peers as usize,
                grace: self.grace,
                max_held_messages: self.max_held,
                ..HubConfig::default()
            },
            origins,
            ping_interval: self.ping_interval,
            ping_timeout: self.ping_timeout,
            web: match (&self.web_root, self.no_web) {
                (_, true) => crate::WebClient::Off,
                (Some(dir), false) if !dir.is_dir() => return Err(format!("--web-root {} is not a directory", dir.display())),
                (Some(dir), false) => crate::WebClient::Dir(dir.clone()),
                (None, false) => crate::WebClient::Embedded,
            },
            redis: match &self.redis {
                Some(url) if !(url.starts_with("redis://") || url.starts_with("rediss://") || url.starts_with("redis+unix://")) => {
                    return Err(format!("--redis must be a redis:// URL, got {url:?}"));
                }
                Some(url) if self.redis_node_ttl < Duration::from_millis(500) => {
                    return Err(format!("--redis-node-ttl must be at least 500ms for {url}"));
                }
                Some(url) => Some(crate::ClusterConfig { node_ttl: self.redis_node_ttl, ..crate::ClusterConfig::new(url) }),
                None => None,
            },
            ..Config::default()
        })
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
            "--max-peers", "4", "--cors-origin", "https://a.example", "--cors-origin", "http://b.example:8080/",
            "--ping-interval", "5s", "--ping-timeout", "10s", "--grace", "500ms",
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
    fn origin_policy() {
        let o = Origins::default();
        assert!(o.allows("tauri://localhost", None));
        assert!(o.allows("http://127.0.0.1:3000", Some("127.0.0.1:3000")));
        assert!(!o.allows("http://evil.example", Some("127.0.0.1:3000")));
        assert!(!o.allows("http://127.0.0.1:3001", Some("127.0.0.1:3000")));
        assert!(Origins::Any.allows("http://evil.example", None));
    }
}
