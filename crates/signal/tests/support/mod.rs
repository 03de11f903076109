//! Test support: a real server on an ephemeral loopback port, real
//! `rust_socketio` clients, and (from ringlet-testkit) a TCP proxy that can
//! cut connections the way a network does.
// Each test file uses a part of this module.
#![allow(dead_code, unused_imports)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
use ringlet_signal::{Config, HubConfig, Metrics, Server};
use rust_socketio::asynchronous::{Client as SioClient, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub const WAIT: Duration = Duration::from_secs(10);

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<std::io::Result<()>>>,
}

impl TestServer {
    pub async fn start(hub: HubConfig) -> TestServer {
        Self::start_with(Config { hub, ..test_config() }).await
    }

    pub async fn start_with(config: Config) -> TestServer {
        let server = Server::bind(config).await.expect("bind");
        let addr = server.local_addr();
        let metrics = server.metrics();
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(server.run(async move {
            let _ = stopped.await;
        }));
        TestServer { addr, metrics, stop: Some(stop), task: Some(task) }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = tokio::time::timeout(WAIT, t).await;
        }
    }
}

pub fn test_config() -> Config {
    Config { listen: "127.0.0.1:0".parse().unwrap(), ..Config::default() }
}

/// One received event: its name and first argument.
#[derive(Debug, Clone)]
pub struct Received {
    pub event: String,
    pub data: Value,
}

pub struct Client {
    pub sio: SioClient,
    rx: mpsc::UnboundedReceiver<Received>,
}

/// Unwraps the one argument of a payload. rust_socketio nests ack
/// payloads one level deeper (`[[arg]]`), events not (`[arg]`).
fn first_arg(p: Payload) -> Value {
    match p {
        Payload::Text(mut v) if !v.is_empty() => v.swap_remove(0),
        Payload::Text(_) => Value::Null,
        Payload::Binary(_) => Value::String("<binary>".into()),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
    }
}

impl Client {
    pub async fn connect(url: &str) -> Client {
        Self::connect_with(url, TransportType::Websocket).await
    }

    /// Connects and waits for the namespace CONNECT: emitting before it was
    /// measured to lose the message and reset the connection.
    pub async fn connect_with(url: &str, transport: TransportType) -> Client {
        Self::try_connect_with(url, transport, None).await.expect("connect")
    }

    /// Connects, or returns the reason the server refused the namespace
    /// (its `connect_error` message) or the transport failed.
    pub async fn try_connect(url: &str, tls: Option<native_tls::TlsConnector>) -> Result<Client, String> {
        Self::try_connect_with(url, TransportType::Websocket, tls).await
    }

    async fn try_connect_with(
        url: &str,
        transport: TransportType,
        tls: Option<native_tls::TlsConnector>,
    ) -> Result<Client, String> {
        let (tx, rx) = mpsc::unbounded_channel();
        let err_tx = tx.clone();
        let (done_tx, done_rx) = oneshot::channel::<Result<(), String>>();
        let done = Arc::new(Mutex::new(Some(done_tx)));
        let on_err = Arc::clone(&done);
        let mut builder = ClientBuilder::new(url)
            .namespace("/signaling")
            .transport_type(transport)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                if let Some(d) = done.lock().unwrap().take() {
                    let _ = d.send(Ok(()));
                }
                async {}.boxed()
            })
            // rust_socketio maps an incoming `error` event to Event::Error,
            // which it also uses for its own transport errors (strings);
            // the server's are objects. Before CONNECT, an error is the
            // refusal; after it, an event like any other.
            .on(Event::Error, move |payload, _| {
                let data = first_arg(payload);
                match on_err.lock().unwrap().take() {
                    Some(d) => {
                        let _ = d.send(Err(data.to_string()));
                    }
                    None => {
                        let event = if data.is_object() { "error" } else { "transport-error" }.to_owned();
                        let _ = err_tx.send(Received { event, data });
                    }
                }
                async {}.boxed()
            })
            .on_any(move |ev, payload, _| {
                let event = match ev {
                    Event::Custom(s) => s,
                    other => other.as_str().to_owned(),
                };
                let _ = tx.send(Received { event, data: first_arg(payload) });
                async {}.boxed()
            });
        if let Some(tls) = tls {
            builder = builder.tls_config(tls);
        }
        let sio = builder.connect().await.map_err(|e| e.to_string())?;
        match tokio::time::timeout(WAIT, done_rx).await {
            Ok(Ok(Ok(()))) => Ok(Client { sio, rx }),
            Ok(Ok(Err(e))) => {
                let _ = sio.disconnect().await;
                Err(e)
            }
            _ => Err("neither connected nor refused in time".into()),
        }
    }

    pub async fn emit(&self, event: &str, data: Value) {
        self.sio.emit(event, data).await.expect("emit");
    }

    /// Emits with an ack and returns the ack's argument.
    pub async fn request(&self, event: &str, data: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        self.sio
            .emit_with_ack(event, data, WAIT, move |p, _| {
                if let Some(tx) = tx.lock().unwrap().take() {
                    let mut v = first_arg(p);
                    // the nesting quirk: [[arg]]
                    if let Value::Array(a) = &mut v {
                        if a.len() == 1 {
                            v = a.swap_remove(0);
                        }
                    }
                    let _ = tx.send(v);
                }
                async {}.boxed()
            })
            .await
            .expect("emit_with_ack");
        tokio::time::timeout(WAIT, rx).await.expect("ack in time").expect("ack sent")
    }

    pub async fn join(&self, data: Value) -> Value {
        self.request("join", data).await
    }

    /// The next event named `event`, skipping others.
    pub async fn next(&mut self, event: &str) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            let r = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .unwrap_or_else(|_| panic!("no `{event}` within {WAIT:?}"))
                .expect("client alive");
            if r.event == event {
                return r.data;
            }
        }
    }

    /// The next event of any name.
    pub async fn next_any(&mut self) -> Received {
        tokio::time::timeout(WAIT, self.rx.recv()).await.expect("an event in time").expect("client alive")
    }

    /// Asserts nothing arrives for `d`; returns what did, for messages.
    pub async fn quiet_for(&mut self, d: Duration) -> Vec<Received> {
        let mut got = vec![];
        let deadline = tokio::time::Instant::now() + d;
        while let Ok(Some(r)) = tokio::time::timeout_at(deadline, self.rx.recv()).await {
            got.push(r);
        }
        got
    }

    pub async fn disconnect(self) {
        let _ = self.sio.disconnect().await;
    }
}

/// A valid offer for `room`.
pub fn offer(room: &str) -> Value {
    json!({"roomId": room, "sdp": {"type": "offer", "sdp": "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\n"}})
}

/// A valid answer for `room`.
pub fn answer(room: &str) -> Value {
    json!({"roomId": room, "sdp": {"type": "answer", "sdp": "v=0\r\n"}})
}

/// A valid candidate for `room`, numbered `seq` (echoed back by the relay).
pub fn cand(room: &str, seq: u64) -> Value {
    let line = format!("candidate:1 1 udp 2122260223 192.0.2.1 {} typ host", 1000 + seq % 60000);
    json!({"roomId": room, "seq": seq, "candidate": {"candidate": line, "sdpMid": "0", "sdpMLineIndex": 0}})
}

/// `a` sends `n` candidates back to back in `room`; `b` must receive every
/// one, in order (and from `from`, when given). Gives `a` back.
pub async fn burst_arrives_in_order(a: Client, b: &mut Client, room: &str, n: u64, from: Option<&str>) -> Client {
    let r = room.to_owned();
    let sender = tokio::spawn(async move {
        for i in 0..n {
            a.emit("ice-candidate", cand(&r, i)).await;
        }
        a
    });
    for i in 0..n {
        let got = b.next("ice-candidate").await;
        assert_eq!(got["seq"], i, "out of order or lost at {i}");
        if let Some(from) = from {
            assert_eq!(got["from"], from, "from, at {i}");
        }
    }
    sender.await.unwrap()
}

pub use ringlet_testkit::Proxy;

/// A response read off a raw socket.
#[derive(Debug)]
pub struct HttpResponse {
    pub status: u16,
    /// Header lines, names lower-cased.
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl HttpResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request over a raw socket, so the request target goes out
/// exactly as written (no client normalises `..` or percent-escapes away).
pub async fn http(addr: SocketAddr, method: &str, target: &str, extra_headers: &[(&str, &str)]) -> HttpResponse {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in extra_headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.unwrap();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.get(9..12)).and_then(|s| s.parse().ok()).expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    HttpResponse { status, headers, body: body.to_owned() }
}
