//! Test support shared by Ringlet's crates.
//!
//! [`Proxy`] sits between a client and a server on loopback and does to
//! the connection what a network does: delay it (in order, as TCP would)
//! or cut it without a close handshake; [`Proxy::failover`] forwards each
//! new connection to the first of several servers that accepts it, as a
//! load balancer in front of a cluster does. [`coturn::Coturn`] is a real
//! TURN server on loopback; [`RedisServer`] a throwaway `redis-server`.

pub mod coturn;
mod redis;
pub use redis::RedisServer;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

/// A loopback TCP proxy.
pub struct Proxy {
    pub addr: SocketAddr,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Forwards to `target` at once.
    pub async fn start(target: SocketAddr) -> Proxy {
        Self::with_delay(target, Duration::ZERO).await
    }

    /// Forwards to `target`, holding every chunk `delay` in each direction,
    /// in order: latency, not reordering.
    pub async fn with_delay(target: SocketAddr, delay: Duration) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let Ok(outbound) = TcpStream::connect(target).await else { continue };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                let mut list = t.lock().expect("proxy task list");
                list.push(tokio::spawn(pipe(ir, ow, delay)));
                list.push(tokio::spawn(pipe(or, iw, delay)));
            }
        });
        Proxy { addr, tasks, accept }
    }

    /// Forwards each new connection to the first of `targets` that accepts
    /// it: when one server dies, clients that reconnect reach the next.
    pub async fn failover(targets: Vec<SocketAddr>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy address");
        let tasks: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let t = Arc::clone(&tasks);
        let accept = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let mut outbound = None;
                for target in &targets {
                    if let Ok(s) = TcpStream::connect(target).await {
                        outbound = Some(s);
                        break;
                    }
                }
                let Some(outbound) = outbound else { continue };
                let _ = inbound.set_nodelay(true);
                let _ = outbound.set_nodelay(true);
                let (ir, iw) = inbound.into_split();
                let (or, ow) = outbound.into_split();
                let mut list = t.lock().expect("proxy task list");
                list.retain(|t| !t.is_finished());
                list.push(tokio::spawn(pipe(ir, ow, Duration::ZERO)));
                list.push(tokio::spawn(pipe(or, iw, Duration::ZERO)));
            }
        });
        Proxy { addr, tasks, accept }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Drops every proxied connection and stops accepting new ones.
    pub fn cut(&self) {
        self.accept.abort();
        for t in self.tasks.lock().expect("proxy task list").drain(..) {
            t.abort();
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.cut();
    }
}

async fn pipe(mut from: tokio::net::tcp::OwnedReadHalf, mut to: tokio::net::tcp::OwnedWriteHalf, delay: Duration) {
    if delay.is_zero() {
        let _ = tokio::io::copy(&mut from, &mut to).await;
        return;
    }
    let (tx, mut rx) = mpsc::unbounded_channel::<(tokio::time::Instant, Vec<u8>)>();
    let writer = async move {
        while let Some((due, chunk)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&chunk).await.is_err() {
                break;
            }
        }
    };
    let reader = async move {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx.send((tokio::time::Instant::now() + delay, buf[..n].to_vec())).is_err() {
                        break;
                    }
                }
            }
        }
    };
    tokio::join!(reader, writer);
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("address").port()
}
