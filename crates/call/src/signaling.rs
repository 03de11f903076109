//! The signaling client: `rust_socketio` on `/signaling`, with the parts the
//! library lacks done here.
//!
//! Measured against socketioxide 0.18 (see the call-engine issue), and why
//! each piece exists:
//! - `connect().await` returns before the namespace is confirmed, and an
//!   emit in that gap can reset the connection: nothing is sent before
//!   `Event::Connect`, and nothing but `join` before the join ack.
//! - Outgoing messages wait in our own ordered, bounded queue while the
//!   transport is down (`emit` fails while reconnecting) and go out in order
//!   after the rejoin.
//! - A dropped transport shows only as `Event::Error` (a string), never
//!   `Event::Close`; a frozen server only after pingInterval + pingTimeout.
//!   An app-level `heartbeat` with an ack notices a dead server in seconds.
//! - After a server kick the library never reconnects, and its backoff
//!   gives up after ~15 minutes: this module owns the retry loop and builds
//!   a fresh client each time, with capped exponential backoff, forever.
//! - Ack payloads arrive nested one level deeper (`[[arg]]`), and a `&str`
//!   payload is parsed as JSON: only `serde_json::Value`s built from
//!   `ringlet_proto` types are sent.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt;
use ringlet_proto::{
    event, Ack, CandidateMessage, ErrorBody, ErrorEvent, HeartbeatAck, IceCandidate, JoinAccepted, JoinParams,
    PeerId, PeerJoined, PeerLeft, RoomId, SdpMessage, SessionDescription,
};
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// How the signaling client behaves.
#[derive(Debug, Clone)]
pub struct SignalingConfig {
    /// Server base URL, e.g. `http://127.0.0.1:3000`.
    pub url: String,
    pub room: RoomId,
    pub peer_id: PeerId,
    pub name: Option<String>,
    pub token: Option<String>,
    /// How often to ask the server for a heartbeat ack.
    pub heartbeat_every: Duration,
    /// How long a heartbeat, connect or join may take before the server
    /// counts as gone.
    pub timeout: Duration,
    /// First and largest pause between reconnection attempts.
    pub backoff: (Duration, Duration),
    /// Messages kept while disconnected; past it the oldest are dropped
    /// (the engine re-sends its description on resume anyway).
    pub max_queued: usize,
}

impl SignalingConfig {
    pub fn new(url: impl Into<String>, room: RoomId, peer_id: PeerId) -> Self {
        SignalingConfig {
            url: url.into(),
            room,
            peer_id,
            name: None,
            token: None,
            heartbeat_every: Duration::from_secs(2),
            timeout: Duration::from_secs(4),
            backoff: (Duration::from_millis(100), Duration::from_secs(5)),
            max_queued: 4096,
        }
    }
}

/// What the signaling client reports to the engine, in arrival order.
#[derive(Debug, Clone)]
pub enum SignalEvent {
    /// A join (or rejoin after a reconnect) was accepted.
    Joined { accepted: JoinAccepted, rejoin: bool },
    /// A [`Signaling::refresh`] was answered: the same place, fresh ICE
    /// server credentials.
    Refreshed(JoinAccepted),
    /// The join was refused; the client stops (room full, bad token …).
    Refused(ErrorBody),
    PeerJoined(PeerJoined),
    PeerLeft(PeerLeft),
    Description { from: Option<PeerId>, sdp: SessionDescription },
    Candidate { from: Option<PeerId>, candidate: IceCandidate },
    /// An `error` event from the server (a refused relay).
    ServerError(ErrorEvent),
    /// The transport is gone; the client is reconnecting.
    Lost { reason: String },
}

enum Outgoing {
    Description(SessionDescription, Option<PeerId>),
    Candidate(IceCandidate, Option<PeerId>),
    Leave(oneshot::Sender<()>),
    Refresh,
}

/// Handle to the signaling client; dropping it stops the client.
#[derive(Clone)]
pub struct Signaling {
    tx: mpsc::UnboundedSender<Outgoing>,
}

impl Signaling {
    /// Starts connecting and joining in the background.
    pub fn start(config: SignalingConfig) -> (Signaling, mpsc::UnboundedReceiver<SignalEvent>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        tokio::spawn(supervise(config, rx, ev_tx));
        (Signaling { tx }, ev_rx)
    }

    pub fn send_description(&self, sdp: SessionDescription, to: Option<PeerId>) {
        let _ = self.tx.send(Outgoing::Description(sdp, to));
    }

    pub fn send_candidate(&self, candidate: IceCandidate, to: Option<PeerId>) {
        let _ = self.tx.send(Outgoing::Candidate(candidate, to));
    }

    /// Joins again on the same connection: the server answers with the same
    /// place and freshly minted TURN credentials (`SignalEvent::Refreshed`).
    /// Dropped while disconnected: the rejoin brings fresh ones anyway.
    pub fn refresh(&self) {
        let _ = self.tx.send(Outgoing::Refresh);
    }

    /// Says `leave` (if connected) and stops the client.
    pub async fn leave(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Outgoing::Leave(done)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(2), wait).await;
        }
    }
}

/// Raw events from rust_socketio's callbacks, forwarded in order.
enum Raw {
    Connected,
    Event(String, Value),
    ServerError(Value),
    TransportError(String),
    Closed,
}

fn first_arg(p: Payload) -> Value {
    match p {
        Payload::Text(mut v) if !v.is_empty() => v.swap_remove(0),
        #[allow(deprecated)]
        Payload::String(s) => serde_json::from_str(&s).unwrap_or(Value::String(s)),
        _ => Value::Null,
    }
}

/// Unwraps rust_socketio's extra ack nesting (`[[arg]]` → `arg`).
fn ack_arg(p: Payload) -> Value {
    match first_arg(p) {
        Value::Array(mut a) if a.len() == 1 => a.swap_remove(0),
        v => v,
    }
}

async fn connect(config: &SignalingConfig, raw_tx: mpsc::UnboundedSender<Raw>) -> Result<Client, String> {
    let (t1, t2, t3, t4) = (raw_tx.clone(), raw_tx.clone(), raw_tx.clone(), raw_tx);
    ClientBuilder::new(config.url.clone())
        .namespace(ringlet_proto::NAMESPACE)
        .transport_type(TransportType::Websocket)
        .reconnect(false)
        .on(Event::Connect, move |_, _| {
            let _ = t1.send(Raw::Connected);
            async {}.boxed()
        })
        .on(Event::Close, move |_, _| {
            let _ = t2.send(Raw::Closed);
            async {}.boxed()
        })
        // An incoming `error` event and the library's own transport errors
        // both arrive here: the server's are objects, the library's strings.
        .on(Event::Error, move |p, _| {
            let v = first_arg(p);
            let _ = t3.send(if v.is_object() { Raw::ServerError(v) } else { Raw::TransportError(v.to_string()) });
            async {}.boxed()
        })
        .on_any(move |ev, p, _| {
            if let Event::Custom(name) = ev {
                let _ = t4.send(Raw::Event(name, first_arg(p)));
            }
            async {}.boxed()
        })
        .connect()
        .await
        .map_err(|e| e.to_string())
}

/// Emits with an ack and waits for it (or the timeout).
async fn request(client: &Client, ev: &str, data: Value, timeout: Duration) -> Result<Value, String> {
    let (tx, rx) = oneshot::channel();
    let tx = Arc::new(std::sync::Mutex::new(Some(tx)));
    client
        .emit_with_ack(ev, data, timeout, move |p, _| {
            if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
                let _ = tx.send(ack_arg(p));
            }
            async {}.boxed()
        })
        .await
        .map_err(|e| e.to_string())?;
    match tokio::time::timeout(timeout, rx).await {
        Ok(Ok(v)) => Ok(v),
        _ => Err(format!("no ack to `{ev}` within {timeout:?}")),
    }
}

fn outgoing_to_wire(config: &SignalingConfig, m: &Outgoing) -> Option<(&'static str, Value)> {
    let room_id = config.room.clone();
    let v = match m {
        Outgoing::Description(sdp, to) => {
            let ev = match sdp.kind {
                ringlet_proto::SdpType::Offer => event::SDP_OFFER,
                _ => event::SDP_ANSWER,
            };
            let msg = SdpMessage { room_id, sdp: sdp.clone(), to: to.clone(), from: None };
            (ev, serde_json::to_value(msg).ok()?)
        }
        Outgoing::Candidate(c, to) => {
            let msg = CandidateMessage { room_id, candidate: c.clone(), to: to.clone(), from: None };
            (event::ICE_CANDIDATE, serde_json::to_value(msg).ok()?)
        }
        Outgoing::Leave(_) | Outgoing::Refresh => return None,
    };
    Some(v)
}

fn translate(name: &str, v: Value) -> Option<SignalEvent> {
    match name {
        event::PEER_JOINED => serde_json::from_value(v).ok().map(SignalEvent::PeerJoined),
        event::PEER_LEFT => serde_json::from_value(v).ok().map(SignalEvent::PeerLeft),
        event::SDP_OFFER | event::SDP_ANSWER => serde_json::from_value::<SdpMessage>(v)
            .ok()
            .map(|m| SignalEvent::Description { from: m.from, sdp: m.sdp }),
        event::ICE_CANDIDATE => serde_json::from_value::<CandidateMessage>(v)
            .ok()
            .map(|m| SignalEvent::Candidate { from: m.from, candidate: m.candidate }),
        _ => None,
    }
}

/// Keeps the invite token an ack carries (a server that requires them
/// hands out a fresh one): later joins, a rejoin or a credential refresh,
/// still pass once the first token has expired.
fn adopt_token(config: &mut SignalingConfig, join: &mut Value, accepted: &JoinAccepted) {
    if let Some(token) = &accepted.token {
        config.token = Some(token.clone());
        join["token"] = Value::String(token.clone());
    }
}

/// Why a session with the server ended.
enum End {
    Lost(String),
    Stop,
    Refused,
}

async fn supervise(
    mut config: SignalingConfig,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    events: mpsc::UnboundedSender<SignalEvent>,
) {
    let mut queue: VecDeque<Outgoing> = VecDeque::new();
    let mut backoff = config.backoff.0;
    let mut joined_once = false;
    loop {
        match session(&mut config, &mut rx, &events, &mut queue, joined_once).await {
            End::Stop | End::Refused => return,
            End::Lost(reason) => {
                tracing::info!(%reason, "signaling lost; reconnecting");
                let _ = events.send(SignalEvent::Lost { reason });
            }
        }
        if events.is_closed() {
            return;
        }
        joined_once = true;
        // Keep accepting outgoing messages while waiting to retry.
        let sleep = tokio::time::sleep(backoff);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                _ = &mut sleep => break,
                m = rx.recv() => match m {
                    None => return,
                    Some(Outgoing::Leave(done)) => { let _ = done.send(()); return; }
                    Some(m) => enqueue(&mut queue, m, config.max_queued),
                },
            }
        }
        backoff = (backoff * 2).min(config.backoff.1);
    }
}

fn enqueue(queue: &mut VecDeque<Outgoing>, m: Outgoing, max: usize) {
    if matches!(m, Outgoing::Refresh) {
        return;
    }
    queue.push_back(m);
    if queue.len() > max {
        queue.pop_front();
        tracing::warn!("signaling queue full while disconnected: dropped the oldest message");
    }
}

async fn session(
    config: &mut SignalingConfig,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    events: &mpsc::UnboundedSender<SignalEvent>,
    queue: &mut VecDeque<Outgoing>,
    rejoin: bool,
) -> End {
    let (raw_tx, mut raw) = mpsc::unbounded_channel();
    let client = match tokio::time::timeout(config.timeout, connect(config, raw_tx)).await {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return End::Lost(format!("connect: {e}")),
        Err(_) => return End::Lost("connect timed out".into()),
    };
    let end = run(config, &client, &mut raw, rx, events, queue, rejoin).await;
    let _ = tokio::time::timeout(Duration::from_millis(500), client.disconnect()).await;
    end
}

async fn run(
    config: &mut SignalingConfig,
    client: &Client,
    raw: &mut mpsc::UnboundedReceiver<Raw>,
    rx: &mut mpsc::UnboundedReceiver<Outgoing>,
    events: &mpsc::UnboundedSender<SignalEvent>,
    queue: &mut VecDeque<Outgoing>,
    rejoin: bool,
) -> End {
    // 1. The namespace is confirmed.
    loop {
        match tokio::time::timeout(config.timeout, raw.recv()).await {
            Ok(Some(Raw::Connected)) => break,
            Ok(Some(Raw::TransportError(e))) => return End::Lost(e),
            Ok(Some(_)) => continue,
            Ok(None) | Err(_) => return End::Lost("no namespace connect".into()),
        }
    }
    // 2. Join (again). The ack decides everything else.
    let params = JoinParams {
        room_id: config.room.clone(),
        peer_id: Some(config.peer_id.clone()),
        token: config.token.clone(),
        name: config.name.clone(),
    };
    let mut join = serde_json::to_value(&params).expect("serializable");
    match request(client, event::JOIN, join.clone(), config.timeout).await {
        Ok(v) => match serde_json::from_value::<Ack<JoinAccepted>>(v) {
            Ok(Ack::Ok(accepted)) => {
                adopt_token(config, &mut join, &accepted);
                let _ = events.send(SignalEvent::Joined { accepted, rejoin });
            }
            Ok(Ack::Err(e)) => {
                tracing::warn!(code = %e.code, message = %e.message, "join refused");
                let _ = events.send(SignalEvent::Refused(e));
                return End::Refused;
            }
            Err(e) => return End::Lost(format!("unreadable join ack: {e}")),
        },
        Err(e) => return End::Lost(e),
    }
    // 3. Ready: flush what waited, then relay both ways.
    let mut heartbeat = tokio::time::interval(config.heartbeat_every);
    heartbeat.tick().await;
    let (hb_tx, mut hb_rx) = mpsc::unbounded_channel::<Result<(), String>>();
    let (refresh_tx, mut refresh_rx) = mpsc::unbounded_channel::<Result<Ack<JoinAccepted>, String>>();
    loop {
        while let Some(m) = queue.front() {
            if let Some((ev, v)) = outgoing_to_wire(config, m) {
                if let Err(e) = client.emit(ev, v).await {
                    return End::Lost(format!("emit: {e}"));
                }
            }
            queue.pop_front();
        }
        tokio::select! {
            biased;
            r = raw.recv() => match r {
                Some(Raw::Event(name, v)) => {
                    if let Some(e) = translate(&name, v) {
                        if events.send(e).is_err() { return End::Stop; }
                    }
                }
                Some(Raw::ServerError(v)) => {
                    if let Ok(e) = serde_json::from_value::<ErrorEvent>(v) {
                        tracing::debug!(code = %e.code, message = %e.message, "server refused a message");
                        let _ = events.send(SignalEvent::ServerError(e));
                    }
                }
                Some(Raw::TransportError(e)) => return End::Lost(e),
                Some(Raw::Closed) => return End::Lost("closed by the server".into()),
                Some(Raw::Connected) => {}
                None => return End::Lost("client stopped".into()),
            },
            m = rx.recv() => match m {
                None => return End::Stop,
                Some(Outgoing::Leave(done)) => {
                    let leave = serde_json::json!({ "roomId": config.room });
                    let _ = request(client, event::LEAVE, leave, Duration::from_secs(1)).await;
                    let _ = done.send(());
                    return End::Stop;
                }
                Some(Outgoing::Refresh) => {
                    // Like the heartbeat, off the loop: events keep flowing
                    // while the ack is on its way.
                    let (c, tx, t, join) = (client.clone(), refresh_tx.clone(), config.timeout, join.clone());
                    tokio::spawn(async move {
                        let r = request(&c, event::JOIN, join, t).await.and_then(|v| {
                            serde_json::from_value::<Ack<JoinAccepted>>(v).map_err(|e| format!("unreadable join ack: {e}"))
                        });
                        let _ = tx.send(r);
                    });
                }
                Some(m) => queue.push_back(m),
            },
            r = refresh_rx.recv() => match r {
                Some(Ok(Ack::Ok(accepted))) => {
                    adopt_token(config, &mut join, &accepted);
                    let _ = events.send(SignalEvent::Refreshed(accepted));
                }
                // The place is kept either way; the credential in hand
                // works until it expires, and a later rejoin brings another.
                Some(Ok(Ack::Err(e))) => tracing::warn!(code = %e.code, message = %e.message, "credential refresh refused"),
                Some(Err(e)) => tracing::warn!(error = %e, "credential refresh failed"),
                None => {}
            },
            r = hb_rx.recv() => {
                if let Some(Err(e)) = r { return End::Lost(e); }
            }
            _ = heartbeat.tick() => {
                let (c, tx, t) = (client.clone(), hb_tx.clone(), config.timeout);
                tokio::spawn(async move {
                    let r = request(&c, event::HEARTBEAT, serde_json::json!({}), t).await.map(|v| {
                        let _ = serde_json::from_value::<Ack<HeartbeatAck>>(v);
                    });
                    let _ = tx.send(r.map_err(|e| format!("heartbeat: {e}")));
                });
            }
        }
    }
}
