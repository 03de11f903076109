//! One lean connection: a single task that reads frames, handles them in
//! arrival order, and writes whatever its outbox holds.

use std::cell::{Cell, RefCell};
use std::future::{poll_fn, Future};
use std::net::IpAddr;
use std::os::fd::{BorrowedFd, RawFd};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use ringlet_proto::{event, Ack, ErrorBody, ErrorCode, ErrorEvent, NAMESPACE};
use socketioxide::socket::Sid;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::time::{Instant, Sleep};

use super::pace::Pace;
use super::wire::{self, Decoder, Eio, Flow, Sio, SioKind, WsMessage};
use super::{End, Lean, Outbox};
use crate::hub::Departure;
use crate::io::{handle, invalid, split_packet, Outlet, Respond};

/// How long the goodbye (DISCONNECT, close frame) may take to go out, and
/// the client to close its end after it.
const GOODBYE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// More attachments than any signaling client sends: the connection is
/// closed rather than made to swallow them.
const MAX_ATTACHMENTS: usize = 64;

/// The largest message read before a connection has connected to
/// `/signaling`: a CONNECT with room for an auth object, pings. A socket
/// that has not connected may be one waiting beyond its address's limit
/// (see `Address`): it must not be able to make the server buffer
/// megabytes for it.
const MAX_MESSAGE_UNCONNECTED: usize = 16 * 1024;

/// Replies (pongs, refusals) a connection not yet connected to
/// `/signaling` may leave unread before it is closed: its pings and
/// CONNECT attempts are small, so a client that reads them never gets near.
const MAX_UNREAD_UNCONNECTED: usize = 64 * 1024;

thread_local! {
    /// Where reads land. Per thread, not per connection: an idle
    /// connection holds no read buffer, and a busy one reads up to 64 KiB
    /// (a burst of candidates) in one syscall.
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0; 64 * 1024].into_boxed_slice());
}

/// Why a connection's task ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The transport ended (EOF, an I/O error, an Engine.IO close).
    Lost,
    /// We close it with this WebSocket code: a broken rule, a missed pong,
    /// no CONNECT in time.
    Close(u16),
    /// The client sent a close frame (with this code): echoed back.
    PeerClosed(Option<u16>),
    /// Disconnected for flooding.
    Kicked,
    /// The server is shutting down.
    Shutdown,
}

enum Phase {
    /// Engine.IO is open; the client has not connected to `/signaling`.
    Waiting { connect_by: Instant },
    Connected { sid: Sid },
}

enum Heartbeat {
    Idle { ping_at: Instant },
    AwaitingPong { by: Instant },
}

/// A binary packet's attachments still to come, and the event to refuse
/// once they have (binary acks and unconnected sockets refuse nothing).
struct Attachments {
    left: usize,
    refuse: Option<(String, Option<i64>)>,
}

/// A connection's place under the per-address limit. It is taken when the
/// WebSocket opens and kept until it closes: counting only connections to
/// `/signaling` would let one address keep any number of sockets open by
/// connecting and disconnecting them in turn.
enum Address {
    /// No address to count (a transport without one).
    Uncounted,
    /// Counted (the slot gives its place back when dropped).
    Held { _slot: AddressSlot },
    /// The address had no place left when the WebSocket opened: it waits
    /// in one of as many places again (`Gate::hold_waiting`); a CONNECT
    /// tries for a place, and is refused as over the limit if there still
    /// is none.
    Full { ip: IpAddr, _slot: AddressSlot },
    /// Not even a place to wait: the WebSocket is closed at once.
    Refused(IpAddr),
}

impl Address {
    fn hold(lean: &Arc<Lean>, ip: IpAddr) -> Address {
        if let Some(held) = Address::try_held(lean, ip) {
            held
        } else if lean.shared.gate.hold_waiting(ip) {
            Address::Full { ip, _slot: AddressSlot { lean: Arc::clone(lean), ip, waiting: true } }
        } else {
            Address::Refused(ip)
        }
    }

    /// A place under the limit, if the address has one free. (A slot
    /// exists only for a place taken: dropping it gives one back.)
    fn try_held(lean: &Arc<Lean>, ip: IpAddr) -> Option<Address> {
        let taken = lean.shared.gate.hold_address(ip);
        taken.then(|| Address::Held { _slot: AddressSlot { lean: Arc::clone(lean), ip, waiting: false } })
    }
}

/// A place taken under the per-address limit, given back when dropped:
/// however the connection's task ends.
struct AddressSlot {
    lean: Arc<Lean>,
    ip: IpAddr,
    waiting: bool,
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        self.lean.shared.gate.release_address(self.ip, self.waiting);
    }
}

/// The protocol state of one connection (everything but the socket).
struct Session {
    lean: Arc<Lean>,
    outbox: Outbox,
    address: Address,
    phase: Phase,
    heartbeat: Heartbeat,
    attachments: Option<Attachments>,
    ending: Option<Ending>,
    pace: Pace,
    /// When the read being handled began: one clock reading for all the
    /// events it brings.
    read_at: Instant,
    /// Text frames (Engine.IO packets) the read being handled brought.
    read_frames: u32,
    /// The last poll left bytes waiting for the socket to take them (a
    /// write or a TLS flush): its next wake-up may be for writing.
    write_waiting: bool,
    /// The client's address (whoever counts it).
    ip: Option<IpAddr>,
    /// The event budget this transport's last connection to `/signaling`
    /// left with: a DISCONNECT and a CONNECT do not fill it again.
    carried_rate: Option<crate::limits::EventRate>,
    /// Since when bytes have waited on a socket that takes none of them:
    /// a client that stops reading is gone after the ping timeout, like
    /// one that stops answering pings (which it may still do blindly).
    stalled_since: Option<Instant>,
}

pub(super) async fn serve<IO>(lean: Arc<Lean>, mut io: IO, ip: Option<IpAddr>, fd: Option<RawFd>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let outbox = Outbox::new(lean.config.backlog);
    let id = lean.register(&outbox);
    let now = Instant::now();
    let address = match ip {
        None => Address::Uncounted,
        Some(ip) => Address::hold(&lean, ip),
    };
    let mut s = Session {
        outbox: outbox.clone(),
        address,
        phase: Phase::Waiting { connect_by: now + lean.config.connect_timeout },
        heartbeat: Heartbeat::Idle { ping_at: now + lean.config.ping_interval },
        attachments: None,
        ending: None,
        pace: Pace::default(),
        read_at: now,
        read_frames: 0,
        write_waiting: false,
        stalled_since: None,
        ip,
        carried_rate: None,
        lean: Arc::clone(&lean),
    };
    s.open();
    if let Address::Refused(ip) = s.address {
        // Counted and logged as the refusal it is; the client sees close 1008.
        let _ = lean.shared.gate.address_full(ip);
        s.end(Ending::Close(1008));
    }
    let mut decoder = Decoder::default();
    let mut wbuf = Wbuf::default();
    let timer = tokio::time::sleep_until(s.deadline());
    tokio::pin!(timer);
    let mut tcp = fd.map(Tcp::new);
    let ending = poll_fn(|cx| drive(cx, &mut io, tcp.as_mut(), &mut decoder, &mut s, &mut wbuf, timer.as_mut())).await;
    tracing::debug!(?ending, "lean connection ended");

    // Leave the hub first: from here on, what peers send this connection
    // is held for its return (or refused), never queued behind the
    // goodbye or dropped with the outbox. Then say goodbye, before waiting
    // on a slow socket.
    s.leave_hub();
    s.goodbye(ending);
    outbox.take_rest(&mut wbuf.buf);
    outbox.close();
    lean.unregister(id);
    if !wbuf.is_empty() && ending != Ending::Lost {
        let _ = tokio::time::timeout(GOODBYE_WAIT, async {
            io.write_all(wbuf.unsent()).await?;
            io.flush().await?;
            io.shutdown().await?;
            // Read on to the client's end (RFC 6455 §7.1.1): a socket
            // closed with input unread is reset by the kernel, and what it
            // had still to send, the goodbye among it, is thrown away.
            // On the heap: an array here would be part of every
            // connection task's future, goodbye or not (+4 KiB each).
            let mut scrap = vec![0u8; 4096];
            while io.read(&mut scrap).await? > 0 {}
            Ok::<(), std::io::Error>(())
        })
        .await;
    }
}

/// Writes what is queued, reads and handles what arrived, runs the timer;
/// until the connection ends.
fn drive<IO: AsyncRead + AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    io: &mut IO,
    mut tcp: Option<&mut Tcp>,
    decoder: &mut Decoder,
    s: &mut Session,
    wbuf: &mut Wbuf,
    mut timer: Pin<&mut Sleep>,
) -> Poll<Ending> {
    // Registered before looking, so a push in between still wakes us.
    let outbox_woke = s.outbox.register(cx.waker());
    // Neither the outbox (which the task's own replies wake too; its first
    // push, the open packet, comes before any register) nor a socket ready
    // for a waiting write: the socket woke us for reading, or the timer
    // did (checked below). Only the first pass can tell.
    let mut socket_woke = !outbox_woke && !s.write_waiting;
    loop {
        match s.outbox.take(&mut wbuf.buf) {
            Some(End::Shutdown) => return Poll::Ready(Ending::Shutdown),
            Some(End::Kick) => return Poll::Ready(Ending::Kicked),
            Some(End::Closed) | None => {}
        }
        if let Some(ending) = s.ending {
            return Poll::Ready(ending);
        }
        let mut progressed = false;
        let mut wrote = false;

        while !wbuf.is_empty() {
            match Pin::new(&mut *io).poll_write(cx, wbuf.unsent()) {
                Poll::Ready(Ok(0)) | Poll::Ready(Err(_)) => return Poll::Ready(Ending::Lost),
                Poll::Ready(Ok(n)) => {
                    wrote = true;
                    wbuf.sent(n);
                    if wbuf.is_empty() {
                        // What queued while `wbuf` waited on a full socket
                        // woke no one (only a push onto an empty outbox
                        // does): it goes out now. (An ending wakes the
                        // task: the next pass sees it.)
                        let _ = s.outbox.take(&mut wbuf.buf);
                    }
                }
                Poll::Pending => break,
            }
        }
        let mut flushing = false;
        if wbuf.is_empty() {
            // TLS holds written bytes until flushed; TCP returns at once.
            match Pin::new(&mut *io).poll_flush(cx) {
                Poll::Ready(Err(_)) => return Poll::Ready(Ending::Lost),
                Poll::Pending => flushing = true,
                Poll::Ready(Ok(())) => {}
            }
            if wbuf.buf.capacity() > 64 * 1024 {
                wbuf.buf = Vec::new(); // a burst went out: give its buffer back
            }
        }
        s.write_waiting = flushing || !wbuf.is_empty();

        let after_hold = s.pace.holding();
        s.read_at = Instant::now();
        s.note_writes(wrote, s.read_at);
        // No timer due either: data has come in.
        let data_woke = socket_woke && s.read_at < timer.deadline();
        socket_woke = false;
        let read = if s.pace.may_read(s.read_at, data_woke) {
            read_some(cx, io, decoder, s)
        } else {
            Poll::Pending // the timer wakes us when the hold is over
        };
        match read {
            Poll::Ready(Ok(())) => {
                progressed = true;
                s.pace.read(s.read_at, std::mem::take(&mut s.read_frames));
                // A read after a hold takes several segments, which the
                // kernel acknowledges at once whatever this says.
                if let Some(tcp) = tcp.as_deref_mut().filter(|_| !after_hold) {
                    tcp.delay_acks();
                }
            }
            Poll::Ready(Err(ending)) => return Poll::Ready(ending),
            Poll::Pending => {}
        }

        if timer.as_mut().poll(cx).is_ready() {
            let now = Instant::now();
            s.pace.timer_fired(now);
            s.on_timer(now);
            progressed = true;
        }
        // A pong or a CONNECT moves the deadline as surely as the timer.
        if timer.deadline() != s.deadline() {
            timer.as_mut().reset(s.deadline());
        }
        if let Some(tcp) = tcp.as_deref_mut() {
            tcp.quiet_while(s.pace.holding());
        }
        if !progressed {
            return Poll::Pending;
        }
    }
}

/// What the task is writing: the bytes taken from the outbox, and how many
/// of them the socket has taken. A partial write moves an offset, not the
/// rest of the buffer: a slow reader taking a few KiB at a time from
/// megabytes queued would otherwise cost a copy of all of them each time.
#[derive(Default)]
struct Wbuf {
    buf: Vec<u8>,
    sent: usize,
}

impl Wbuf {
    fn is_empty(&self) -> bool {
        self.sent == self.buf.len()
    }

    fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    /// The socket took `n` more bytes; once it has all of them the buffer
    /// is empty again (its capacity kept for the next burst).
    fn sent(&mut self, n: usize) {
        self.sent += n;
        if self.sent == self.buf.len() {
            self.buf.clear();
            self.sent = 0;
        }
    }
}

/// One read into this thread's scratch buffer, its frames handled.
fn read_some<IO: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    io: &mut IO,
    decoder: &mut Decoder,
    s: &mut Session,
) -> Poll<Result<(), Ending>> {
    SCRATCH.with_borrow_mut(|scratch| {
        let mut rb = ReadBuf::new(scratch);
        match Pin::new(&mut *io).poll_read(cx, &mut rb) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Err(e)) => {
                tracing::debug!(error = %e, "lean connection read failed");
                Poll::Ready(Err(Ending::Lost))
            }
            Poll::Ready(Ok(())) if rb.filled().is_empty() => Poll::Ready(Err(Ending::Lost)),
            Poll::Ready(Ok(())) => {
                let max = Cell::new(s.max_message());
                let fed = decoder.feed(rb.filled_mut(), &max, |m| {
                    let flow = s.on_ws(m);
                    max.set(s.max_message()); // a CONNECT or DISCONNECT moves it
                    flow
                });
                if let Err(e) = fed {
                    tracing::debug!(error = %e, "closing a lean connection");
                    s.end(Ending::Close(e.close_code()));
                }
                Poll::Ready(Ok(()))
            }
        }
    })
}

/// The TCP socket under a connection's `io`, for the two options its
/// pacing sets.
struct Tcp {
    fd: RawFd,
    quiet: bool,
}

/// While a read is held, the socket wakes no one until this much is queued
/// (more than a hold gathers: the timer ends holds, not this). Small enough
/// that the kernel leaves the receive buffer and window alone: it resizes
/// them for a mark beyond about half the buffer (128 KiB by default).
const QUIET_LOW_WATER: libc::c_int = 16 * 1024;

impl Tcp {
    fn new(fd: RawFd) -> Tcp {
        Tcp { fd, quiet: false }
    }

    fn fd(&self) -> BorrowedFd<'_> {
        // SAFETY: `fd` is the socket under this connection's `io`, which the
        // task owns for as long as it holds this: it stays open and ours.
        unsafe { BorrowedFd::borrow_raw(self.fd) }
    }

    /// Lets the kernel delay the ACK for what was just read (until it can
    /// ride on a reply, or its delayed-ACK timer), instead of sending one
    /// per read.
    ///
    /// Measured: with quick ACKs, a third of the kernel time of a relay
    /// burst was pure ACKs from `recv` (the sender gets no reply to carry
    /// them). The kernel leaves this mode on its own, hence once per read.
    fn delay_acks(&mut self) {
        let _ = socket2::SockRef::from(&self.fd()).set_tcp_quickack(false);
    }

    /// Keeps the socket quiet while a read is held: each segment of a burst
    /// would otherwise wake the runtime's thread from `epoll_wait` for a
    /// task that is not reading, which undid half of what the hold saves.
    /// `SO_RCVLOWAT` holds those wake-ups back. Setting it back to 1 raises
    /// a readiness event if data waits (Linux 4.18 and later), so the held
    /// bytes are read at once when the hold ends.
    fn quiet_while(&mut self, holding: bool) {
        if holding == self.quiet {
            return;
        }
        let n: libc::c_int = if holding { QUIET_LOW_WATER } else { 1 };
        // socket2 has no setter for SO_RCVLOWAT.
        // SAFETY: a valid socket (see `fd`) and an int option of its size.
        let r = unsafe {
            libc::setsockopt(
                self.fd,
                libc::SOL_SOCKET,
                libc::SO_RCVLOWAT,
                (&raw const n).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if r == 0 {
            self.quiet = holding;
        }
    }
}

impl Session {
    fn config(&self) -> &super::LeanConfig {
        &self.lean.config
    }

    /// The Engine.IO open packet: the session id and heartbeat settings.
    fn open(&self) {
        let c = self.config();
        let open = format!(
            r#"0{{"sid":"{}","upgrades":[],"pingInterval":{},"pingTimeout":{},"maxPayload":{}}}"#,
            Sid::new(),
            c.ping_interval.as_millis(),
            c.ping_timeout.as_millis(),
            c.max_message
        );
        self.push(&[open.as_bytes()]);
    }

    fn push(&self, parts: &[&[u8]]) {
        if let Err(e) = self.outbox.push(parts) {
            tracing::debug!(error = %e, "dropped an outgoing packet");
        }
    }

    fn end(&mut self, ending: Ending) {
        self.ending.get_or_insert(ending);
    }

    /// The size limit for the next message, by phase (see
    /// [`MAX_MESSAGE_UNCONNECTED`]).
    fn max_message(&self) -> usize {
        match self.phase {
            Phase::Connected { .. } => self.config().max_message,
            Phase::Waiting { .. } => self.config().max_message.min(MAX_MESSAGE_UNCONNECTED),
        }
    }

    fn deadline(&self) -> Instant {
        let beat = match self.heartbeat {
            Heartbeat::Idle { ping_at } => ping_at,
            Heartbeat::AwaitingPong { by } => by,
        };
        let mut due = match self.phase {
            Phase::Waiting { connect_by } => beat.min(connect_by),
            Phase::Connected { .. } => beat,
        };
        if let Some(since) = self.stalled_since {
            due = due.min(since + self.config().ping_timeout);
        }
        self.pace.until().map_or(due, |until| due.min(until))
    }

    /// After a pass's writes: whether bytes still wait, and whether the
    /// socket took any of them (`wrote`).
    fn note_writes(&mut self, wrote: bool, now: Instant) {
        self.stalled_since = match self.stalled_since {
            _ if !self.write_waiting => None,
            Some(since) if !wrote => Some(since),
            _ => Some(now),
        };
    }

    fn on_timer(&mut self, now: Instant) {
        if self.stalled_since.is_some_and(|since| now >= since + self.config().ping_timeout) {
            // Nothing can reach it: no goodbye, and its peers hold what
            // they send for its return.
            tracing::debug!("the client read nothing for the ping timeout");
            return self.end(Ending::Lost);
        }
        if let Phase::Waiting { connect_by } = self.phase {
            if now >= connect_by {
                tracing::debug!("no CONNECT in time");
                return self.end(Ending::Close(1000));
            }
        }
        match self.heartbeat {
            Heartbeat::Idle { ping_at } if now >= ping_at => {
                self.push(&[b"2"]);
                self.heartbeat = Heartbeat::AwaitingPong { by: now + self.config().ping_timeout };
            }
            Heartbeat::AwaitingPong { by } if now >= by => {
                tracing::debug!("no pong in time");
                self.end(Ending::Close(1000));
            }
            _ => {}
        }
    }

    fn on_ws(&mut self, m: WsMessage<'_>) -> Flow {
        if matches!(self.phase, Phase::Waiting { .. }) && self.outbox.queued() > MAX_UNREAD_UNCONNECTED {
            tracing::debug!("an unconnected client left its replies unread");
            self.end(Ending::Close(1008));
            return Flow::Stop;
        }
        match m {
            WsMessage::Text(_) if self.attachments.is_some() => {
                tracing::debug!("a text packet while binary attachments were due");
                self.end(Ending::Close(1002));
            }
            WsMessage::Text(text) => {
                self.read_frames += 1;
                self.on_eio(text)
            }
            WsMessage::Binary(_) => self.on_attachment(),
            WsMessage::Ping(payload) => {
                if let Err(e) = self.outbox.push_frame(wire::OP_PONG, &[payload], super::From::Itself) {
                    tracing::debug!(error = %e, "pong not sent");
                }
            }
            WsMessage::Pong => {}
            WsMessage::Close(code) => self.end(Ending::PeerClosed(code)),
        }
        if self.ending.is_some() {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn on_eio(&mut self, text: &str) {
        match wire::parse_eio(text) {
            Eio::Message(packet) => self.on_sio(packet),
            // Only the answer to a ping sent counts: a client sending pongs
            // blindly must not put the next ping off for ever.
            Eio::Pong => {
                if let Heartbeat::AwaitingPong { .. } = self.heartbeat {
                    self.heartbeat = Heartbeat::Idle { ping_at: Instant::now() + self.config().ping_interval };
                }
            }
            // Engine.IO v3 clients ping the server.
            Eio::Ping => self.push(&[b"3"]),
            Eio::Close => self.end(Ending::Lost),
            Eio::Bad => {
                tracing::debug!(packet = %truncate(text), "not an Engine.IO packet a client sends");
                self.end(Ending::Close(1002));
            }
        }
    }

    fn on_sio(&mut self, text: &str) {
        let Some(p) = wire::parse_sio(text) else {
            tracing::debug!(packet = %truncate(text), "unreadable Socket.IO packet");
            return self.end(Ending::Close(1002));
        };
        if p.ns != NAMESPACE {
            if p.kind == SioKind::Connect {
                let ns = if p.ns == "/" { "" } else { p.ns };
                self.push(&[b"44", ns.as_bytes(), if ns.is_empty() { b"" } else { b"," }, br#"{"message":"Invalid namespace"}"#]);
            }
            return self.expect_attachments(&p, None);
        }
        match (p.kind, &self.phase) {
            (SioKind::Connect, Phase::Waiting { .. }) => self.connect(),
            (SioKind::Connect, Phase::Connected { sid }) => {
                let sid = *sid;
                self.connected(sid); // a repeated CONNECT: the same answer
            }
            (SioKind::Disconnect, Phase::Connected { sid }) => {
                let sid = *sid;
                self.carried_rate = self.lean.shared.gate.detach_rate(sid);
                self.lean.shared.with_hub(|hub| hub.disconnect(sid, Departure::Deliberate));
                let connect_by = Instant::now() + self.config().connect_timeout;
                self.phase = Phase::Waiting { connect_by };
            }
            (SioKind::Event, Phase::Connected { sid }) => {
                let reply = LeanReply { sid: *sid, outbox: &self.outbox, ack: p.ack };
                let shared = &self.lean.shared;
                match shared.gate.admit_at(reply, self.read_at.into_std(), || split_packet(p.data).map(|x| x.event)) {
                    Some(reply) => handle(shared, reply, p.data, false),
                    // Kicked: nothing more it sent is read.
                    None if self.outbox.ending() == Some(End::Kick) => self.end(Ending::Kicked),
                    None => {}
                }
            }
            (SioKind::BinaryEvent, Phase::Connected { sid }) => {
                let reply = LeanReply { sid: *sid, outbox: &self.outbox, ack: p.ack };
                let ev = split_packet(p.data).map(|x| x.event.to_owned()).unwrap_or_default();
                if self.lean.shared.gate.admit_at(reply, self.read_at.into_std(), || Some(ev.as_str())).is_some() {
                    return self.expect_attachments(&p, Some((ev, p.ack)));
                }
                if self.outbox.ending() == Some(End::Kick) {
                    return self.end(Ending::Kicked);
                }
                self.expect_attachments(&p, None)
            }
            // Acks (the server asks none), packets before CONNECT:
            // ignored, as Socket.IO servers do.
            _ => self.expect_attachments(&p, None),
        }
    }

    fn connect(&mut self) {
        let sid = Sid::new();
        let shared = Arc::clone(&self.lean.shared);
        if let Address::Full { ip, .. } = self.address {
            // (The waiting place goes back as the old value drops.)
            if let Some(held) = Address::try_held(&self.lean, ip) {
                self.address = held;
            }
        }
        // The address is counted by `self.address`, not per CONNECT.
        let attached = match self.address {
            Address::Full { ip, .. } | Address::Refused(ip) => Err(shared.gate.address_full(ip)),
            Address::Uncounted | Address::Held { .. } => {
                shared.gate.attach_counted(sid, self.ip, self.carried_rate.take());
                Ok(())
            }
        };
        if let Err(refused) = attached {
            let message = serde_json::to_string(&refused.0).expect("a string serializes");
            return self.push(&[b"44/signaling,{\"message\":", message.as_bytes(), b"}"]);
        }
        shared.with_hub(|hub| hub.connect(sid, Outlet::Lean(self.outbox.clone())));
        self.phase = Phase::Connected { sid };
        tracing::debug!(%sid, "connected (lean)");
        self.connected(sid);
    }

    fn connected(&self, sid: Sid) {
        self.push(&[b"40/signaling,{\"sid\":\"", sid.to_string().as_bytes(), b"\"}"]);
    }

    /// Swallows a binary packet's attachments; refuses its event once
    /// they have all come.
    fn expect_attachments(&mut self, p: &Sio<'_>, refuse: Option<(String, Option<i64>)>) {
        if !matches!(p.kind, SioKind::BinaryEvent | SioKind::BinaryAck) {
            return;
        }
        if p.attachments > MAX_ATTACHMENTS {
            tracing::debug!(attachments = p.attachments, "too many attachments");
            return self.end(Ending::Close(1008));
        }
        self.attachments = Some(Attachments { left: p.attachments, refuse });
        if p.attachments == 0 {
            self.on_attachments_done();
        }
    }

    fn on_attachment(&mut self) {
        match &mut self.attachments {
            Some(a) => {
                a.left -= 1;
                if a.left == 0 {
                    self.on_attachments_done();
                }
            }
            None => {
                tracing::debug!("a binary frame nobody announced");
                self.end(Ending::Close(1003));
            }
        }
    }

    fn on_attachments_done(&mut self) {
        let Some(Attachments { refuse: Some((ev, ack)), .. }) = self.attachments.take() else { return };
        let Phase::Connected { sid } = self.phase else { return };
        self.lean.shared.metrics.refused(ErrorCode::InvalidPayload);
        let reply = LeanReply { sid, outbox: &self.outbox, ack };
        reply.refuse(Some(&ev), None, invalid(&ev, "binary attachments are not accepted"));
    }

    fn goodbye(&self, ending: Ending) {
        let code = match ending {
            Ending::Lost => return,
            Ending::Close(code) => code,
            Ending::PeerClosed(code) => code.unwrap_or(1000),
            Ending::Kicked => 1008,
            Ending::Shutdown => 1001,
        };
        if matches!(ending, Ending::Kicked | Ending::Shutdown) && matches!(self.phase, Phase::Connected { .. }) {
            self.push(&[b"41/signaling,"]);
        }
        let _ = self.outbox.push_frame(wire::OP_CLOSE, &[&code.to_be_bytes()], super::From::Itself);
    }

    /// The connection is gone: its peers keep their place for the grace
    /// period, unless it was disconnected for flooding.
    fn leave_hub(&mut self) {
        if let Phase::Connected { sid } = self.phase {
            let shared = &self.lean.shared;
            let how = shared.gate.detach_lost(sid);
            shared.with_hub(|hub| hub.disconnect(sid, how));
        }
    }
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Answers to one event on a lean connection.
struct LeanReply<'a> {
    sid: Sid,
    outbox: &'a Outbox,
    ack: Option<i64>,
}

impl Respond for LeanReply<'_> {
    fn sid(&self) -> Sid {
        self.sid
    }

    fn wants_ack(&self) -> bool {
        self.ack.is_some()
    }

    fn ack<T: serde::Serialize>(self, body: &Ack<T>) {
        let Some(id) = self.ack else { return };
        let json = serde_json::to_string(body).expect("acks serialize");
        let id = id.to_string();
        if let Err(e) = self.outbox.push(&[b"43/signaling,", id.as_bytes(), b"[", json.as_bytes(), b"]"]) {
            tracing::debug!(error = %e, "ack not sent");
        }
    }

    fn error_event(self, body: &ErrorEvent) {
        let json = serde_json::to_string(body).expect("errors serialize");
        if let Err(e) = self.outbox.event(event::ERROR, &json, super::From::Itself) {
            tracing::debug!(error = %e, "error event not sent");
        }
    }

    fn refuse_and_disconnect(self, ev: Option<&str>, err: ErrorBody) {
        let outbox = self.outbox.clone();
        self.refuse(ev, None, err);
        outbox.end(End::Kick);
    }
}
