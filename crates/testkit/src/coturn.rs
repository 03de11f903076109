//! A real TURN server for tests: Debian's coturn (`turnserver`), on
//! loopback, with TURN REST authentication (`use-auth-secret`), its own
//! free ports and a temporary directory for its log and pid file. Killed
//! when dropped.

use std::net::{SocketAddr, TcpListener, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

pub struct Coturn {
    /// Where it listens, UDP and TCP.
    pub addr: SocketAddr,
    child: Child,
    dir: PathBuf,
}

/// A port free for both UDP and TCP on loopback (TURN listens on both).
fn free_port() -> std::io::Result<u16> {
    for _ in 0..50 {
        let udp = UdpSocket::bind("127.0.0.1:0")?;
        let port = udp.local_addr()?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::other("no port free for both UDP and TCP"))
}

impl Coturn {
    /// Starts `turnserver` accepting credentials signed with `secret`, and
    /// waits until it listens.
    pub fn start(secret: &str) -> std::io::Result<Coturn> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!("ringlet-coturn-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&dir)?;
        let port = free_port()?;
        // Relayed addresses come from a small range of their own; the base
        // is a port that was just free, so parallel tests rarely overlap.
        let relay_base = free_port()?.min(65_535 - 64);
        let log = dir.join("turn.log");
        let child = Command::new("turnserver")
            .args(["-n", "--no-cli", "--no-tls", "--no-dtls", "--simple-log", "--verbose", "--realm=ringlet"])
            .args(["--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1", "--allow-loopback-peers"])
            .arg(format!("--listening-port={port}"))
            .arg(format!("--min-port={relay_base}"))
            .arg(format!("--max-port={}", relay_base + 63))
            .arg("--use-auth-secret")
            .arg(format!("--static-auth-secret={secret}"))
            .arg(format!("--log-file={}", log.display()))
            .arg(format!("--pidfile={}", dir.join("turn.pid").display()))
            .arg(format!("--userdb={}", dir.join("turndb").display()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| std::io::Error::new(e.kind(), format!("cannot run turnserver (Debian package coturn): {e}")))?;
        let mut me = Coturn { addr: SocketAddr::from(([127, 0, 0, 1], port)), child, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !me.log().contains("UDP listener opened on") {
            if let Some(status) = me.child.try_wait()? {
                return Err(std::io::Error::other(format!("turnserver exited ({status}):\n{}", me.log())));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(format!("turnserver did not start:\n{}", me.log())));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(me)
    }

    /// Its `turn:` URL (UDP).
    pub fn url(&self) -> String {
        format!("turn:{}", self.addr)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("turn.log")).unwrap_or_default()
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
