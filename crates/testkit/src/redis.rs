//! A throwaway `redis-server` on a free loopback port, killed on drop.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    pub addr: SocketAddr,
    child: Child,
}

impl RedisServer {
    /// Starts `redis-server` (Debian's package; `scripts/deps.sh test`)
    /// with no persistence, and waits until it accepts connections.
    pub fn start() -> RedisServer {
        let addr = SocketAddr::from(([127, 0, 0, 1], crate::free_port()));
        RedisServer { addr, child: spawn(addr) }
    }

    /// Kills it and starts a fresh one (empty: nothing persisted) on the
    /// same port, as a Redis restart does.
    pub fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.child = spawn(self.addr);
    }

    pub fn url(&self) -> String {
        format!("redis://{}", self.addr)
    }
}

fn spawn(addr: SocketAddr) -> Child {
    let child = Command::new("redis-server")
        .args(["--port", &addr.port().to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("redis-server is installed (scripts/deps.sh test)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(addr).is_err() {
        assert!(Instant::now() < deadline, "redis-server did not start on {addr}");
        std::thread::sleep(Duration::from_millis(20));
    }
    child
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
