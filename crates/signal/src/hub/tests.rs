//! The hub's rules, without sockets: a recording sink per connection.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use ringlet_proto::RelayKind;
use serde_json::{json, Value};

use super::*;

type Log = Rc<RefCell<Vec<(u32, &'static str, Value)>>>;

#[derive(Clone)]
struct TestSink {
    id: u32,
    log: Log,
    fail: Rc<Cell<Option<SinkError>>>,
    /// When set, what is sent stays here (a transport that stopped
    /// writing), for `take_unsent`.
    stuck: Rc<RefCell<Option<Vec<Unsent>>>>,
}

impl Sink for TestSink {
    fn send(&self, to: To<'_>, event: &'static str, payload: &Outgoing<'_>) -> Result<(), SinkError> {
        if let Some(e) = self.fail.get() {
            return Err(e);
        }
        if let Some(stuck) = self.stuck.borrow_mut().as_mut() {
            let payload = payload.payload().clone();
            stuck.push(Unsent { room: to.room.clone(), peer: to.peer.clone(), event, payload });
            return Ok(());
        }
        // The pieces and the whole must say the same.
        assert_eq!(payload.pieces().concat(), payload.payload().get());
        self.log.borrow_mut().push((self.id, event, serde_json::from_str(&payload.pieces().concat()).unwrap()));
        Ok(())
    }

    fn take_unsent(&self) -> Vec<Unsent> {
        self.stuck.borrow_mut().take().unwrap_or_default()
    }

    fn take_unsent_for(&self, to: To<'_>) -> Vec<Unsent> {
        let mut stuck = self.stuck.borrow_mut();
        let Some(all) = stuck.as_mut() else { return vec![] };
        let (mine, rest) = std::mem::take(all).into_iter().partition(|u| u.room == *to.room && u.peer == *to.peer);
        *all = rest;
        mine
    }
}

struct World {
    hub: Hub<u32, TestSink>,
    log: Log,
    fails: Vec<Rc<Cell<Option<SinkError>>>>,
    stuck: Vec<Rc<RefCell<Option<Vec<Unsent>>>>>,
}

impl World {
    fn new(config: HubConfig) -> Self {
        World { hub: Hub::new(config, Arc::new(Metrics::default())), log: Log::default(), fails: vec![], stuck: vec![] }
    }

    fn connect(&mut self) -> u32 {
        let id = self.fails.len() as u32;
        let fail = Rc::new(Cell::new(None));
        let stuck = Rc::new(RefCell::new(None));
        self.fails.push(fail.clone());
        self.stuck.push(stuck.clone());
        self.hub.connect(id, TestSink { id, log: self.log.clone(), fail, stuck });
        id
    }

    fn join(&mut self, key: u32, req: Value) -> Result<JoinAccepted, ErrorBody> {
        let req = JoinRequest::parse(&req.to_string()).unwrap();
        let mut out = None;
        self.hub.join(key, req, |ack| out = Some(ack.clone()));
        match out.expect("join always replies") {
            Ack::Ok(a) => Ok(a),
            Ack::Err(e) => Err(e),
        }
    }

    fn relay(&mut self, key: u32, kind: RelayKind, msg: Value) -> Result<(), ErrorBody> {
        let text = msg.to_string();
        let view = RelayView::parse(kind, &text).unwrap();
        self.hub.relay(key, &view)
    }

    /// Everything delivered since the last call.
    fn take(&self) -> Vec<(u32, &'static str, Value)> {
        std::mem::take(&mut *self.log.borrow_mut())
    }
}

fn offer(room: &str, n: u32) -> Value {
    json!({"roomId": room, "sdp": {"type": "offer", "sdp": format!("v=0 #{n}")}})
}

fn cand(room: &str, n: u32) -> Value {
    json!({"roomId": room, "seq": n, "candidate": {"candidate": format!("candidate:{n}"), "sdpMid": "0", "sdpMLineIndex": 0}})
}

fn config() -> HubConfig {
    HubConfig { grace: Duration::from_secs(5), ..HubConfig::default() }
}

#[test]
fn seed_flow_relays_to_the_other_peer_only_with_from() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    let ja = w.join(a, json!("room-1")).unwrap();
    assert!(!ja.polite);
    assert!(ja.peers.is_empty());
    let jb = w.join(b, json!("room-1")).unwrap();
    assert!(jb.polite, "the later joiner yields");
    assert_eq!(jb.peers[0].peer_id, ja.peer_id);
    let joined = w.take();
    assert_eq!(joined.len(), 1);
    assert_eq!((joined[0].0, joined[0].1), (a, event::PEER_JOINED));
    assert_eq!(joined[0].2["peerId"], jb.peer_id.as_str());

    w.relay(a, RelayKind::SdpOffer, offer("room-1", 1)).unwrap();
    let got = w.take();
    assert_eq!(got.len(), 1, "no echo to the sender");
    assert_eq!((got[0].0, got[0].1), (b, event::SDP_OFFER));
    assert_eq!(got[0].2["from"], ja.peer_id.as_str());
    assert_eq!(got[0].2["sdp"]["sdp"], "v=0 #1");

    let answer = json!({"roomId": "room-1", "sdp": {"type": "answer", "sdp": "v=0"}});
    w.relay(b, RelayKind::SdpAnswer, answer).unwrap();
    let got = w.take();
    assert_eq!((got[0].0, got[0].1), (a, event::SDP_ANSWER));
}

#[test]
fn relays_need_membership_and_stay_in_their_room() {
    let mut w = World::new(config());
    let (a, b, c, d) = (w.connect(), w.connect(), w.connect(), w.connect());
    w.join(a, json!("one")).unwrap();
    w.join(b, json!("one")).unwrap();
    w.join(c, json!("two")).unwrap();
    w.join(d, json!("two")).unwrap();
    w.take();
    w.relay(a, RelayKind::IceCandidate, cand("one", 1)).unwrap();
    assert!(w.take().iter().all(|(to, _, _)| *to == b));
    let e = w.relay(c, RelayKind::IceCandidate, cand("one", 1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotInRoom);
    let e = w.relay(c, RelayKind::IceCandidate, cand("nowhere", 1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::NotInRoom);
    assert!(w.take().is_empty());
}

#[test]
fn capacity_counts_away_peers_and_frees_on_leave() {
    let mut w = World::new(config());
    let (a, b, c) = (w.connect(), w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    assert_eq!(w.join(c, json!("r")).unwrap_err().code, ErrorCode::RoomFull);
    w.hub.disconnect(b, Departure::Lost);
    assert_eq!(w.join(c, json!("r")).unwrap_err().code, ErrorCode::RoomFull, "b's place is held");
    w.take();
    w.hub.leave(a, &RoomId::new("r").unwrap()).unwrap();
    assert!(w.take().is_empty(), "b is away: peer-left is held, not sent");
    w.join(c, json!("r")).unwrap();
}

#[test]
fn addressed_relay_goes_to_one_peer() {
    let mut w = World::new(HubConfig { max_peers: 3, ..config() });
    let (a, b, c) = (w.connect(), w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.join(c, json!({"roomId": "r", "peerId": "c"})).unwrap();
    w.take();
    let mut msg = offer("r", 1);
    msg["to"] = json!("c");
    w.relay(a, RelayKind::SdpOffer, msg).unwrap();
    let got = w.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].0, c);
    let mut msg = offer("r", 2);
    msg["to"] = json!("zed");
    assert_eq!(w.relay(a, RelayKind::SdpOffer, msg).unwrap_err().code, ErrorCode::UnknownPeer);
    let mut msg = offer("r", 3);
    msg["to"] = json!("a");
    assert_eq!(w.relay(a, RelayKind::SdpOffer, msg).unwrap_err().code, ErrorCode::UnknownPeer);
}

#[test]
fn dropped_peer_gets_held_messages_in_order_after_its_ack() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(b, Departure::Lost);
    let timers = w.hub.take_timers();
    assert_eq!(timers.len(), 1);
    assert_eq!(timers[0].after, Duration::from_secs(5));
    w.take();
    for n in 0..10 {
        w.relay(a, RelayKind::IceCandidate, cand("r", n)).unwrap();
    }
    assert!(w.take().is_empty());
    assert_eq!(w.hub.metrics.held(), 10);

    let b2 = w.connect();
    let mut order = vec![];
    let req = JoinRequest::parse(r#"{"roomId":"r","peerId":"b"}"#).unwrap();
    let log = w.log.clone();
    w.hub.join(b2, req, |ack| {
        order.push(("ack", log.borrow().len()));
        let Ack::Ok(a) = ack else { panic!("refused") };
        assert!(a.resumed);
        assert!(a.polite, "a rejoin keeps its role");
    });
    assert_eq!(order, vec![("ack", 0)], "ack before the held messages");
    let got = w.take();
    let seqs: Vec<u64> = got
        .iter()
        .map(|(to, _, v)| {
            assert_eq!(*to, b2);
            v["seq"].as_u64().unwrap()
        })
        .collect();
    assert_eq!(seqs, (0..10).collect::<Vec<_>>());
    assert_eq!(w.hub.metrics.held(), 0);

    // The old timer fires late: it must not evict the returned peer.
    w.hub.expire(&timers[0]);
    assert_eq!(w.hub.is_online("r", "b"), Some(true));
    assert!(w.take().is_empty());
}

/// A returning peer's join ack lists who is in the room; of the presence
/// events held for it, only the news the list cannot tell comes after it.
#[test]
fn a_returning_peer_hears_only_the_presence_news_its_ack_does_not_tell() {
    let mut w = World::new(HubConfig { max_peers: 3, ..config() });
    let (a, c) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(c, json!({"roomId": "r", "peerId": "c"})).unwrap();
    w.hub.disconnect(a, Departure::Lost);
    // While `a` is away: `b` joins (and stays), `d` joins and leaves,
    // `c` (whom `a` knew) leaves and comes back as a new session.
    let (b, d) = (w.connect(), w.connect());
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.join(d, json!({"roomId": "r", "peerId": "d"})).unwrap_err(); // full: a, c, b
    w.hub.disconnect(c, Departure::Deliberate);
    w.join(d, json!({"roomId": "r", "peerId": "d"})).unwrap();
    w.hub.disconnect(d, Departure::Deliberate);
    let c2 = w.connect();
    w.join(c2, json!({"roomId": "r", "peerId": "c"})).unwrap();
    w.take();

    let a2 = w.connect();
    let ack = w.join(a2, json!({"roomId": "r", "peerId": "a"})).unwrap();
    let mut listed: Vec<&str> = ack.peers.iter().map(|p| p.peer_id.as_str()).collect();
    listed.sort();
    assert_eq!(listed, ["b", "c"]);
    let told: Vec<(&str, String)> = w
        .take()
        .into_iter()
        .map(|(to, ev, v)| {
            assert_eq!(to, a2);
            (ev, v["peerId"].as_str().unwrap().to_owned())
        })
        .collect();
    assert_eq!(
        told,
        [(event::PEER_LEFT, "c".to_owned()), (event::PEER_JOINED, "c".to_owned())],
        "not b (listed), not d (never known and gone): c left and is back"
    );
}

/// A peer it knew that left while it was away: one `peer-left`.
#[test]
fn a_returning_peer_hears_who_left_while_it_was_away() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(a, Departure::Lost);
    w.hub.disconnect(b, Departure::Deliberate);
    w.take();
    let a2 = w.connect();
    assert!(w.join(a2, json!({"roomId": "r", "peerId": "a"})).unwrap().peers.is_empty());
    let told = w.take();
    assert_eq!(told.len(), 1, "{told:?}");
    assert_eq!((told[0].1, told[0].2["peerId"].as_str()), (event::PEER_LEFT, Some("b")));
}

#[test]
fn grace_expiry_tells_the_room_peer_left() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(b, Departure::Lost);
    w.relay(a, RelayKind::IceCandidate, cand("r", 1)).unwrap();
    w.take();
    for t in w.hub.take_timers() {
        w.hub.expire(&t);
    }
    let got = w.take();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].0, got[0].1), (a, event::PEER_LEFT));
    assert_eq!(got[0].2, json!({"roomId": "r", "peerId": "b", "reason": "timeout"}));
    assert_eq!(w.hub.metrics.held(), 0);
    assert_eq!(w.hub.is_online("r", "b"), None);
}

#[test]
fn deliberate_disconnect_leaves_at_once_and_empty_rooms_vanish() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!("r")).unwrap();
    let jb = w.join(b, json!("r")).unwrap();
    w.take();
    w.hub.disconnect(b, Departure::Deliberate);
    let got = w.take();
    assert_eq!(got[0].1, event::PEER_LEFT);
    assert_eq!(got[0].2["peerId"], jb.peer_id.as_str());
    assert_eq!(got[0].2["reason"], "left");
    assert!(w.hub.take_timers().is_empty());
    w.hub.disconnect(a, Departure::Deliberate);
    assert_eq!(w.hub.room_count(), 0);
}

#[test]
fn zero_grace_means_no_holding() {
    let mut w = World::new(HubConfig { grace: Duration::ZERO, ..config() });
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.take();
    w.hub.disconnect(b, Departure::Lost);
    assert_eq!(w.take()[0].2["reason"], "timeout");
}

#[test]
fn held_queue_is_bounded_by_count_and_bytes() {
    let mut w = World::new(HubConfig { max_held_messages: 3, max_held_bytes: 1 << 20, ..config() });
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(b, Departure::Lost);
    for n in 0..3 {
        w.relay(a, RelayKind::IceCandidate, cand("r", n)).unwrap();
    }
    assert_eq!(w.relay(a, RelayKind::IceCandidate, cand("r", 3)).unwrap_err().code, ErrorCode::HeldFull);

    let mut w = World::new(HubConfig { max_held_messages: 100, max_held_bytes: 300, ..config() });
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(b, Departure::Lost);
    let mut refused = None;
    for n in 0..10 {
        if let Err(e) = w.relay(a, RelayKind::IceCandidate, cand("r", n)) {
            refused = Some((n, e.code));
            break;
        }
    }
    let (n, code) = refused.expect("the byte bound bites");
    assert!(n >= 1);
    assert_eq!(code, ErrorCode::HeldFull);
}

/// A hang-up whose transport the hub found closed first (a relay to it
/// failed before the disconnect came) is still a hang-up: the peer leaves
/// at once, and the room hears why.
#[test]
fn a_hang_up_found_closed_first_still_leaves_at_once() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.take();
    w.fails[b as usize].set(Some(SinkError::Closed));
    w.relay(a, RelayKind::SdpOffer, offer("r", 7)).unwrap();
    assert_eq!(w.hub.is_online("r", "b"), Some(false));
    w.hub.disconnect(b, Departure::Deliberate);
    assert_eq!(w.hub.is_online("r", "b"), None, "gone, not away");
    let got = w.take();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!((got[0].0, got[0].1, got[0].2["reason"].as_str()), (a, event::PEER_LEFT, Some("left")));
    assert_eq!(w.hub.metrics.held(), 0, "what was held for it is dropped with it");
}

/// What a lost transport had accepted and not sent is held whole, even
/// past the held queue's limits: each sender was told ok, so holding only
/// part of it would leave a gap. Only what comes later meets the limits.
#[test]
fn what_a_lost_transport_accepted_is_held_whole_past_the_limits() {
    let mut w = World::new(HubConfig { max_held_messages: 2, ..config() });
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.take();
    *w.stuck[b as usize].borrow_mut() = Some(vec![]);
    for n in 1..=3 {
        w.relay(a, RelayKind::IceCandidate, cand("r", n)).unwrap();
    }
    w.hub.disconnect(b, Departure::Lost);
    let e = w.relay(a, RelayKind::IceCandidate, cand("r", 4)).unwrap_err();
    assert_eq!(e.code, ErrorCode::HeldFull, "later ones meet the limit, readably");
    let b2 = w.connect();
    w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    let seqs: Vec<u64> = w.take().iter().map(|(_, _, v)| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, [1, 2, 3]);
    assert_eq!(w.hub.metrics.held(), 0);
}

/// `b` speaks in room `r` (with `a`) and in `second` (with `c`), and its
/// transport stops writing: candidates 1-3 from `a` and 9 from `c` are
/// accepted and stay in its sink. Returns the world, `a` and `b`.
fn stuck_in_two_rooms(second: &str) -> (World, u32, u32) {
    let mut w = World::new(config());
    let (a, b, c) = (w.connect(), w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.join(b, json!({"roomId": second, "peerId": "b"})).unwrap();
    w.join(c, json!({"roomId": second, "peerId": "c"})).unwrap();
    w.take();
    *w.stuck[b as usize].borrow_mut() = Some(vec![]);
    for n in 1..=3 {
        w.relay(a, RelayKind::IceCandidate, cand("r", n)).unwrap();
    }
    w.relay(c, RelayKind::IceCandidate, cand(second, 9)).unwrap();
    (w, a, b)
}

/// A rejoin that replaces a socket still thought alive takes over what
/// that socket had for the peer and had not sent, in order, ahead of what
/// comes next; what the old socket had for its other rooms stays with it.
#[test]
fn a_rejoin_that_replaces_a_socket_takes_over_what_it_had_not_sent() {
    let (mut w, a, b) = stuck_in_two_rooms("s");
    let b2 = w.connect();
    w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.relay(a, RelayKind::IceCandidate, cand("r", 4)).unwrap();
    let got: Vec<(u32, u64)> = w.take().iter().map(|(to, _, v)| (*to, v["seq"].as_u64().unwrap())).collect();
    assert_eq!(got, [(b2, 1), (b2, 2), (b2, 3), (b2, 4)]);
    let left: Vec<u64> = w.stuck[b as usize].borrow().as_ref().unwrap().iter().map(|u| {
        serde_json::from_str::<Value>(u.payload.get()).unwrap()["seq"].as_u64().unwrap()
    }).collect();
    assert_eq!(left, [9], "room s's message stays with the old socket");
}

#[test]
fn a_closed_sink_turns_the_peer_away_and_holds_the_message() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.take();
    w.fails[b as usize].set(Some(SinkError::Closed));
    w.relay(a, RelayKind::SdpOffer, offer("r", 7)).unwrap();
    assert_eq!(w.hub.is_online("r", "b"), Some(false));
    assert_eq!(w.hub.take_timers().len(), 1);
    // The close arrives afterwards: nothing changes twice.
    w.hub.disconnect(b, Departure::Lost);
    assert!(w.hub.take_timers().is_empty());
    let b2 = w.connect();
    w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    let got = w.take();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].2["sdp"]["sdp"], "v=0 #7");
}

#[test]
fn what_a_lost_connection_never_sent_is_held_first_and_in_order() {
    let (mut w, a, b) = stuck_in_two_rooms("other");
    w.hub.disconnect(b, Departure::Lost);
    // Sent after the loss: held behind them.
    w.relay(a, RelayKind::IceCandidate, cand("r", 4)).unwrap();
    assert_eq!(w.hub.metrics.held(), 5);
    let b2 = w.connect();
    w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    let seqs: Vec<_> = w.take().iter().map(|(to, ev, v)| (*to, *ev, v["seq"].clone())).collect();
    let want: Vec<_> = (1..=4).map(|n| (b2, event::ICE_CANDIDATE, json!(n))).collect();
    assert_eq!(seqs, want, "none lost, none out of order, only this room's");
    w.join(b2, json!({"roomId": "other", "peerId": "b"})).unwrap();
    assert_eq!(w.take().iter().map(|(_, _, v)| v["seq"].clone()).collect::<Vec<_>>(), vec![json!(9)]);
}

#[test]
fn a_backlogged_recipient_is_reported_to_the_sender() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!("r")).unwrap();
    w.join(b, json!("r")).unwrap();
    w.fails[b as usize].set(Some(SinkError::Backlogged));
    let e = w.relay(a, RelayKind::IceCandidate, cand("r", 1)).unwrap_err();
    assert_eq!(e.code, ErrorCode::PeerBacklogged);
}

#[test]
fn a_rejoin_replaces_a_stale_socket() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    let b2 = w.connect();
    let j = w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    assert!(j.resumed);
    w.take();
    w.relay(a, RelayKind::IceCandidate, cand("r", 1)).unwrap();
    assert_eq!(w.take()[0].0, b2);
    assert_eq!(w.relay(b, RelayKind::IceCandidate, cand("r", 2)).unwrap_err().code, ErrorCode::NotInRoom);
    // The stale socket's late close must not disturb the new one.
    w.hub.disconnect(b, Departure::Lost);
    assert_eq!(w.hub.is_online("r", "b"), Some(true));
    assert!(w.hub.take_timers().is_empty());
}

#[test]
fn joining_twice_on_one_socket_is_idempotent() {
    let mut w = World::new(config());
    let a = w.connect();
    let first = w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    let again = w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    assert_eq!(first, again);
    let bare = w.join(a, json!("r")).unwrap();
    assert_eq!(bare.peer_id, first.peer_id);
    assert_eq!(w.join(a, json!({"roomId": "r", "peerId": "other"})).unwrap_err().code, ErrorCode::PeerIdTaken);
}

#[test]
fn politeness_follows_join_order_across_departures() {
    let mut w = World::new(config());
    let (a, b, c) = (w.connect(), w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.leave(a, &RoomId::new("r").unwrap()).unwrap();
    let jc = w.join(c, json!({"roomId": "r", "peerId": "c"})).unwrap();
    assert!(jc.polite, "c joined after b");
    let b2 = w.connect();
    w.hub.disconnect(b, Departure::Lost);
    let jb = w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    assert!(!jb.polite, "b still came first");
}

#[test]
fn a_closed_sink_with_zero_grace_removes_the_peer_without_panicking() {
    let mut w = World::new(HubConfig { grace: Duration::ZERO, ..config() });
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.take();
    w.fails[b as usize].set(Some(SinkError::Closed));
    assert_eq!(w.relay(a, RelayKind::SdpOffer, offer("r", 1)).unwrap_err().code, ErrorCode::UnknownPeer);
    assert_eq!(w.hub.is_online("r", "b"), None);
    let got = w.take();
    assert_eq!((got[0].0, got[0].1), (a, event::PEER_LEFT));
}

#[test]
fn a_returning_peer_whose_new_socket_dies_during_the_flush_keeps_the_rest_held() {
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    w.join(b, json!({"roomId": "r", "peerId": "b"})).unwrap();
    w.hub.disconnect(b, Departure::Lost);
    for n in 0..5 {
        w.relay(a, RelayKind::IceCandidate, cand("r", n)).unwrap();
    }
    w.take();
    let b2 = w.connect();
    w.fails[b2 as usize].set(Some(SinkError::Closed));
    let j = w.join(b2, json!({"roomId": "r", "peerId": "b"})).unwrap();
    assert!(j.resumed);
    assert_eq!(w.hub.is_online("r", "b"), Some(false));
    assert_eq!(w.hub.metrics.held(), 5, "all five held again, in order");
    let b3 = w.connect();
    w.join(b3, json!({"roomId": "r", "peerId": "b"})).unwrap();
    let seqs: Vec<u64> = w.take().iter().map(|(_, _, v)| v["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, vec![0, 1, 2, 3, 4]);
}

#[test]
fn a_seed_form_peer_that_drops_leaves_at_once() {
    // It has no peer id of its own, so it can never resume; holding its
    // place would keep its own reload out of the room.
    let mut w = World::new(config());
    let (a, b) = (w.connect(), w.connect());
    w.join(a, json!({"roomId": "r", "peerId": "a"})).unwrap();
    let jb = w.join(b, json!("r")).unwrap();
    w.take();
    w.hub.disconnect(b, Departure::Lost);
    assert!(w.hub.take_timers().is_empty());
    let got = w.take();
    assert_eq!(got[0].1, event::PEER_LEFT);
    assert_eq!(got[0].2["peerId"], jb.peer_id.as_str());
    let b2 = w.connect();
    w.join(b2, json!("r")).expect("the reload gets in");
}

#[test]
fn rooms_per_connection_are_capped_and_a_refusal_leaves_no_room() {
    let mut w = World::new(HubConfig { max_rooms_per_connection: 2, ..config() });
    let a = w.connect();
    w.join(a, json!("r1")).unwrap();
    w.join(a, json!("r2")).unwrap();
    // Joining one of its own rooms again is not a new room.
    w.join(a, json!("r2")).unwrap();
    let e = w.join(a, json!("r3")).unwrap_err();
    assert_eq!(e.code, ErrorCode::LimitExceeded);
    assert!(e.message.contains("at most 2 rooms"), "{}", e.message);
    assert_eq!(w.hub.room_count(), 2, "the refused join created no room");
    w.hub.leave(a, &RoomId::new("r1").unwrap()).unwrap();
    w.join(a, json!("r3")).unwrap();
}

#[test]
fn total_rooms_are_capped_but_existing_rooms_still_take_peers() {
    let mut w = World::new(HubConfig { max_rooms: 2, ..config() });
    let (a, b, c) = (w.connect(), w.connect(), w.connect());
    w.join(a, json!("r1")).unwrap();
    w.join(b, json!("r2")).unwrap();
    assert_eq!(w.join(c, json!("r3")).unwrap_err().code, ErrorCode::LimitExceeded);
    assert_eq!(w.hub.room_count(), 2);
    w.join(c, json!("r1")).unwrap();
    // A room that empties frees its slot.
    w.hub.disconnect(b, Departure::Deliberate);
    let d = w.connect();
    w.join(d, json!("r3")).unwrap();
}

#[test]
fn join_acks_carry_fresh_turn_credentials_for_the_joining_peer() {
    use std::time::{SystemTime, UNIX_EPOCH};
    let turn = crate::turn::TurnConfig {
        urls: vec!["turn:127.0.0.1:3478".into()],
        secret: "s".into(),
        ttl: Duration::from_secs(600),
        stun_urls: vec![],
    };
    let mut w = World::new(HubConfig { turn: Some(Arc::new(turn)), ..config() });
    let a = w.connect();
    let req = json!({"roomId": "r", "peerId": "alice"});
    let first = w.join(a, req.clone()).unwrap();
    let [server] = &first.ice_servers[..] else { panic!("one TURN server: {:?}", first.ice_servers) };
    assert_eq!(server.urls, ["turn:127.0.0.1:3478"]);
    let username = server.username.clone().unwrap();
    let (expiry, peer) = username.split_once(':').unwrap();
    assert_eq!(peer, "alice");
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 601).contains(&expiry), "expiry {expiry}, now {now}");
    assert_eq!(server.credential, Some(crate::turn::credential(b"s", expiry, "alice").1));
    // The same socket joining again is answered again, with a credential
    // minted now: how a client refreshes before expiry.
    let again = w.join(a, req).unwrap();
    assert!(!again.resumed);
    assert_eq!(again.ice_servers[0].username.as_deref().unwrap().split_once(':').unwrap().1, "alice");
    assert!(w.take().is_empty(), "a refresh tells nobody");
    // Without TURN configured, the ack has no servers.
    let mut plain = World::new(config());
    let b = plain.connect();
    assert!(plain.join(b, json!("r")).unwrap().ice_servers.is_empty());
}
