//! The call engine: one actor task owns the peer connection and the
//! negotiator; signaling events, peer-connection events and commands all
//! arrive on channels and are handled one at a time, in order. No two
//! negotiation steps ever interleave.

use std::sync::Arc;
use std::time::{Duration, Instant};

use ringlet_proto::{IceCandidate, PeerId, SessionDescription};
use tokio::sync::{mpsc, oneshot};
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    MediaEngine, PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceConnectionState, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, Registry, SettingEngineBuilder, register_default_interceptors,
};

use crate::congestion::{ReportingEstimator, TargetBitrate};
use crate::control::DataMessage;
use crate::audio::{AudioPacket, AudioSender};
use crate::media_path::RemoteClock;
use crate::video::{AppRtcp, VideoFrame, VideoSender};
use webrtc::media_stream::track_local::static_sample::TrackLocalStaticSample;
use crate::negotiation::{CandidateAction, DescriptionAction, Negotiator};
use crate::signaling::{SignalEvent, Signaling, SignalingConfig};

/// How long after an unanswered credential refresh to ask again.
const REFRESH_RETRY: Duration = Duration::from_secs(10);

/// How long after our last local description new ICE servers wait before
/// they are handed to the peer connection (see [`Session::servers_stale`]).
/// A margin, not a guarantee: the driver takes a queued gathering in
/// microseconds, but one that rebinds may resolve a TURN host name first,
/// and a rollback and an answer queue two back to back. A refresh is due a
/// fifth of the credential's life before it expires: a second is nothing.
const GATHERING_SETTLE: Duration = Duration::from_secs(1);

/// How a call behaves.
#[derive(Debug, Clone)]
pub struct CallConfig {
    pub signaling: SignalingConfig,
    /// STUN/TURN servers; none needed on one LAN. The join ack's servers
    /// (with short-lived TURN credentials, refreshed before they expire)
    /// are added to these.
    pub ice_servers: Vec<ringlet_proto::IceServer>,
    /// Which candidates ICE may use: `Relay` sends everything through TURN
    /// (hides the addresses; tests prove the relay path with it).
    pub ice_policy: IcePolicy,
    /// Local UDP address to gather on (`0.0.0.0:0` = every interface).
    pub udp_bind: String,
    /// The pause between ICE connectivity checks. The library's 200 ms
    /// default dominates call setup on a LAN.
    pub ice_check_interval: Duration,
    /// How long the ICE connection may stay `disconnected` before an ICE
    /// restart (a `failed` one restarts at once).
    pub ice_restart_after: Duration,
    /// Also offer when a peer joins after us (by default only the newcomer
    /// offers). Both sides then offer at once: glare, which perfect
    /// negotiation resolves; tests use it to prove that.
    pub offer_on_peer_joined: bool,
}

impl CallConfig {
    pub fn new(signaling: SignalingConfig) -> Self {
        CallConfig {
            signaling,
            ice_servers: Vec::new(),
            ice_policy: IcePolicy::All,
            udp_bind: "0.0.0.0:0".into(),
            ice_check_interval: Duration::from_millis(20),
            ice_restart_after: Duration::from_secs(3),
            offer_on_peer_joined: false,
        }
    }
}

/// Which ICE candidates a call may use.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum IcePolicy {
    /// Host, server-reflexive and relay candidates.
    #[default]
    All,
    /// Relay (TURN) candidates only.
    Relay,
}

/// What the engine reports, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum CallEvent {
    /// `token`: a fresh invite token from a server that signs them, for
    /// links shared from now on.
    Joined { peer_id: PeerId, polite: bool, others: Vec<PeerId>, rejoin: bool, token: Option<String> },
    Refused { code: String, message: String },
    PeerJoined(PeerId),
    PeerLeft { peer_id: PeerId, reason: String },
    SignalingLost(String),
    IceState(String),
    Connection(String),
    /// ICE and DTLS are up with this peer.
    Connected { peer_id: Option<PeerId> },
    DataOpen,
    /// A chat line from the other peer.
    Chat(String),
    /// The other peer's microphone and camera state.
    RemoteMedia { audio_muted: bool, video_muted: bool },
    /// The other peer hung up (said so over the data channel).
    RemoteHangup,
    /// A test frame from the other peer (`ringlet-peer`'s synthetic source).
    Frame { n: u64, ts_us: u64 },
    /// A data-channel message that is none of the above.
    Data(String),
    /// The peer (or our own send path) needs a keyframe: force one on the
    /// encoder's next frame.
    KeyframeRequested,
    IceRestart,
    /// An offer/answer exchange completed: signaling state is stable.
    Negotiated,
    /// Something went wrong in negotiation; the call goes on if it can.
    Warning(String),
}

enum Command {
    Send(String),
    Media { audio_muted: bool, video_muted: bool },
    RestartIce,
    Stats(oneshot::Sender<CallStats>),
    Hangup(oneshot::Sender<()>),
}

/// Counters of the current session (reset when a new peer session starts,
/// except the reconnect count).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CallStats {
    pub offers_sent: u64,
    pub answers_sent: u64,
    pub rollbacks: u64,
    pub collisions_ignored: u64,
    pub candidates_sent: u64,
    pub candidates_received: u64,
    pub candidates_applied: u64,
    pub candidates_queued: u64,
    pub candidates_dropped: u64,
    pub candidate_errors: u64,
    pub ice_restarts: u64,
    pub rejoins: u64,
    /// Fresh ICE server credentials applied (each with an ICE restart).
    pub ice_refreshes: u64,
    /// The candidate types (`host`, `srflx`, `prflx`, `relay`) of the
    /// selected pair, local and remote.
    pub selected_pair: Option<(String, String)>,
    /// The congestion controller's target, bits per second (what the
    /// encoder should produce).
    pub target_bitrate_bps: u64,
    /// Network quality of the current session, from webrtc's stats: the
    /// selected candidate pair's round-trip time, and RTP totals (the
    /// caller turns totals into rates).
    pub rtt_ms: Option<f64>,
    pub bytes_sent: u64,
    pub bytes_received: u64,
    pub packets_received: u64,
    pub packets_lost: i64,
}

/// A running call. Dropping it does not hang up: call [`Call::hangup`].
#[derive(Clone)]
pub struct Call {
    cmd: mpsc::UnboundedSender<Command>,
    audio: AudioSender,
    remote_audio: Arc<std::sync::Mutex<Option<mpsc::Receiver<AudioPacket>>>>,
    video: VideoSender,
    remote_video: Arc<std::sync::Mutex<Option<mpsc::Receiver<VideoFrame>>>>,
    remote_clock: Arc<RemoteClock>,
    remote_keyframe: Arc<tokio::sync::Notify>,
}

impl Call {
    /// Joins the room and runs the call in the background.
    pub fn start(config: CallConfig) -> (Call, mpsc::UnboundedReceiver<CallEvent>) {
        let (cmd, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let (signaling, sig_rx) = Signaling::start(config.signaling.clone());
        let (pc_tx, pc_rx) = mpsc::unbounded_channel();
        let (video, video_rx) = VideoSender::channel(crate::video::SEND_QUEUE);
        let (remote_tx, remote_rx) = mpsc::channel(crate::video::RECEIVE_QUEUE);
        let (target_tx, target_rx) = tokio::sync::watch::channel(None);
        let (keyframe_tx, keyframe_rx) = mpsc::unbounded_channel();
        crate::video::spawn_writer(video_rx, target_rx, keyframe_tx.clone());
        let (audio, audio_rx) = AudioSender::channel(crate::audio::SEND_QUEUE);
        let (remote_audio_tx, remote_audio_rx) = mpsc::channel(crate::audio::RECEIVE_QUEUE);
        let (audio_target_tx, audio_target_rx) = tokio::sync::watch::channel(None);
        crate::audio::spawn_writer(audio_rx, audio_target_rx);
        let remote_clock = Arc::new(RemoteClock::default());
        let remote_keyframe = Arc::new(tokio::sync::Notify::new());
        let actor = Actor {
            config,
            signaling,
            events: ev_tx,
            polite: false,
            session: None,
            next_generation: 0,
            pc_tx,
            disconnected_since: None,
            acked_servers: Vec::new(),
            refresh_at: None,
            stats: CallStats::default(),
            media: None,
            target: None,
            video_target: target_tx,
            keyframe_tx,
            remote_video: remote_tx,
            audio_target: audio_target_tx,
            remote_audio: remote_audio_tx,
            remote_clock: Arc::clone(&remote_clock),
            remote_keyframe: Arc::clone(&remote_keyframe),
        };
        tokio::spawn(actor.run(sig_rx, pc_rx, cmd_rx, keyframe_rx));
        let remote_video = Arc::new(std::sync::Mutex::new(Some(remote_rx)));
        let remote_audio = Arc::new(std::sync::Mutex::new(Some(remote_audio_rx)));
        (Call { cmd, audio, remote_audio, video, remote_video, remote_clock, remote_keyframe }, ev_rx)
    }

    /// Where to put Opus packets (20 ms each) for the peer. Never blocks.
    pub fn audio(&self) -> AudioSender {
        self.audio.clone()
    }

    /// The peer's Opus packets with their RTP sequence numbers (bounded).
    /// Can be taken once.
    pub fn take_remote_audio(&self) -> Option<mpsc::Receiver<AudioPacket>> {
        self.remote_audio.lock().ok()?.take()
    }

    /// Where to put encoded VP8 frames for the peer. Never blocks.
    pub fn video(&self) -> VideoSender {
        self.video.clone()
    }

    /// The peer's VP8 frames, depacketized, for the app to decode (bounded:
    /// the oldest are dropped, and a keyframe requested, if it falls
    /// behind). Can be taken once.
    pub fn take_remote_video(&self) -> Option<mpsc::Receiver<VideoFrame>> {
        self.remote_video.lock().ok()?.take()
    }

    /// The peer's latest RTCP sender reports (its RTP clocks against its
    /// wall clock), for lip sync.
    pub fn remote_clock(&self) -> Arc<RemoteClock> {
        Arc::clone(&self.remote_clock)
    }

    /// Asks the peer for a keyframe (a PLI): for a view that lost frames
    /// downstream of the engine and cannot decode until the next one.
    pub fn request_remote_keyframe(&self) {
        self.remote_keyframe.notify_one();
    }

    /// Sends raw text over the data channel.
    pub fn send(&self, text: impl Into<String>) {
        let _ = self.cmd.send(Command::Send(text.into()));
    }

    /// Sends a data-channel message (chat, mute state, test frame).
    pub fn send_message(&self, m: &DataMessage) {
        self.send(m.to_text());
    }

    /// Sets our microphone/camera state; the other peer is told now and
    /// whenever the data channel (re)opens.
    pub fn set_media(&self, audio_muted: bool, video_muted: bool) {
        let _ = self.cmd.send(Command::Media { audio_muted, video_muted });
    }

    /// Starts an ICE restart through the normal negotiation path.
    pub fn restart_ice(&self) {
        let _ = self.cmd.send(Command::RestartIce);
    }

    /// The current counters.
    pub async fn stats(&self) -> Option<CallStats> {
        let (tx, rx) = oneshot::channel();
        self.cmd.send(Command::Stats(tx)).ok()?;
        rx.await.ok()
    }

    /// Leaves the room and closes the peer connection.
    pub async fn hangup(&self) {
        let (tx, rx) = oneshot::channel();
        if self.cmd.send(Command::Hangup(tx)).is_ok() {
            let _ = tokio::time::timeout(Duration::from_secs(3), rx).await;
        }
    }
}

/// Peer-connection events, tagged with the session they belong to.
enum PcEvent {
    NegotiationNeeded,
    Candidate(RTCIceCandidateInit),
    Ice(RTCIceConnectionState),
    State(RTCPeerConnectionState),
    DataChannel(Arc<dyn DataChannel>),
    Track(Arc<dyn webrtc::media_stream::track_remote::TrackRemote>),
    DataOpen,
    Data(String),
}

struct Handler {
    generation: u64,
    tx: mpsc::UnboundedSender<(u64, PcEvent)>,
}

impl Handler {
    fn send(&self, e: PcEvent) {
        let _ = self.tx.send((self.generation, e));
    }
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_negotiation_needed(&self) {
        self.send(PcEvent::NegotiationNeeded);
    }
    async fn on_ice_candidate(&self, e: RTCPeerConnectionIceEvent) {
        match e.candidate.to_json() {
            Ok(c) => self.send(PcEvent::Candidate(c)),
            Err(err) => tracing::warn!(error = %err, "unserializable local candidate"),
        }
    }
    async fn on_ice_connection_state_change(&self, s: RTCIceConnectionState) {
        self.send(PcEvent::Ice(s));
    }
    async fn on_connection_state_change(&self, s: RTCPeerConnectionState) {
        self.send(PcEvent::State(s));
    }
    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        self.send(PcEvent::DataChannel(dc));
    }
    async fn on_track(&self, track: Arc<dyn webrtc::media_stream::track_remote::TrackRemote>) {
        self.send(PcEvent::Track(track));
    }
}

struct Session {
    generation: u64,
    pc: Arc<dyn PeerConnection>,
    neg: Negotiator,
    remote: Option<PeerId>,
    dc: Option<Arc<dyn DataChannel>>,
    /// A negotiation-needed that came while an offer was out.
    renegotiate: bool,
    /// The next offer restarts ICE.
    ice_restart: bool,
    /// The latest acked ICE servers are not yet the peer connection's.
    ///
    /// webrtc-rs applies new servers at the next gathering its driver takes
    /// (one per local description, queued). Only a gathering that restarts
    /// ICE rebinds the sockets and allocates afresh; any other re-signs the
    /// live TURN allocations with the new username, which coturn refuses
    /// (441) so the allocation lapses. And the restart mark is one flag:
    /// when an earlier gathering is still queued, it takes the mark and
    /// ours does not rebind (seen in CI: a refresh landed just after we
    /// answered the other side's restart). So new servers are handed over
    /// only right before a description that restarts ICE, and only once
    /// our previous description's gathering has had time to be taken.
    servers_stale: bool,
    /// When we last set a local description (each queues a gathering).
    last_local: Option<Instant>,
    /// Set once the data channel is open (stops the driver kicks).
    data_open: Arc<std::sync::atomic::AtomicBool>,
    /// Our video track and its sender (for the negotiated payload type).
    video: (Arc<TrackLocalStaticSample>, u32, Arc<dyn webrtc::rtp_transceiver::RtpSender>),
    audio: (Arc<TrackLocalStaticSample>, u32, Arc<dyn webrtc::rtp_transceiver::RtpSender>),
}

impl Session {
    /// Whether our last local description's gathering has surely been
    /// taken by the driver, so a restart marked now is the next one's.
    fn servers_settled(&self) -> bool {
        self.last_local.is_none_or(|t| t.elapsed() >= GATHERING_SETTLE)
    }
}

struct Actor {
    config: CallConfig,
    signaling: Signaling,
    events: mpsc::UnboundedSender<CallEvent>,
    polite: bool,
    session: Option<Session>,
    next_generation: u64,
    pc_tx: mpsc::UnboundedSender<(u64, PcEvent)>,
    disconnected_since: Option<Instant>,
    /// The ICE servers from the latest join ack.
    acked_servers: Vec<ringlet_proto::IceServer>,
    /// When to ask the server for fresh TURN credentials.
    refresh_at: Option<Instant>,
    stats: CallStats,
    /// Our mute state, once the app set one.
    media: Option<(bool, bool)>,
    /// The congestion controller's target for the current session.
    target: Option<TargetBitrate>,
    /// Where the video writer sends frames (the current session's track).
    video_target: tokio::sync::watch::Sender<Option<crate::media_path::Target>>,
    keyframe_tx: mpsc::UnboundedSender<()>,
    remote_video: mpsc::Sender<VideoFrame>,
    audio_target: tokio::sync::watch::Sender<Option<crate::media_path::Target>>,
    remote_audio: mpsc::Sender<AudioPacket>,
    remote_clock: Arc<RemoteClock>,
    remote_keyframe: Arc<tokio::sync::Notify>,
}

/// Fills the quality fields of `st` from a webrtc stats report.
fn network_quality(report: &rtc::statistics::report::RTCStatsReport, st: &mut CallStats) {
    st.rtt_ms = report
        .candidate_pairs()
        .filter(|p| p.nominated && p.current_round_trip_time > 0.0)
        .map(|p| p.current_round_trip_time * 1e3)
        .next();
    // The transport names its selected pair; the pair names its candidates
    // by the agent's ids, which the report keys with a prefix. A remote
    // candidate learned from a check (peer-reflexive) has no entry.
    use rtc::statistics::report::RTCStatsReportEntry as E;
    let kind = |prefix: &str, id: &str| match report.get(id).or_else(|| report.get(&format!("{prefix}{id}"))) {
        Some(E::LocalCandidate(c) | E::RemoteCandidate(c)) => Some(c.candidate_type.to_string()),
        _ => None,
    };
    st.selected_pair = report.transport().and_then(|t| match report.get(&t.selected_candidate_pair_id) {
        Some(E::IceCandidatePair(p)) => Some((
            kind("RTCLocalIceCandidate_", &p.local_candidate_id)?,
            kind("RTCRemoteIceCandidate_", &p.remote_candidate_id).unwrap_or_else(|| "prflx".into()),
        )),
        _ => None,
    });
    for i in report.inbound_rtp_streams() {
        st.bytes_received += i.bytes_received;
        st.packets_received += i.received_rtp_stream_stats.packets_received;
        st.packets_lost += i.received_rtp_stream_stats.packets_lost;
    }
    for o in report.outbound_rtp_streams() {
        st.bytes_sent += o.sent_rtp_stream_stats.bytes_sent;
    }
}

fn to_rtc(d: &SessionDescription) -> Result<RTCSessionDescription, String> {
    let v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("unusable description: {e}"))
}

fn from_rtc(d: &RTCSessionDescription) -> Result<SessionDescription, String> {
    let v = serde_json::to_value(d).map_err(|e| e.to_string())?;
    serde_json::from_value(v).map_err(|e| format!("unusable local description: {e}"))
}

fn candidate_to_rtc(c: &IceCandidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment.clone(),
        ..Default::default()
    }
}

fn candidate_from_rtc(c: &RTCIceCandidateInit) -> IceCandidate {
    IceCandidate {
        candidate: c.candidate.clone(),
        sdp_mid: c.sdp_mid.clone(),
        sdp_mline_index: c.sdp_mline_index,
        username_fragment: c.username_fragment.clone(),
    }
}

impl Actor {
    fn emit(&self, e: CallEvent) {
        let _ = self.events.send(e);
    }

    async fn run(
        mut self,
        mut sig_rx: mpsc::UnboundedReceiver<SignalEvent>,
        mut pc_rx: mpsc::UnboundedReceiver<(u64, PcEvent)>,
        mut cmd_rx: mpsc::UnboundedReceiver<Command>,
        mut keyframe_rx: mpsc::UnboundedReceiver<()>,
    ) {
        let mut tick = tokio::time::interval(Duration::from_millis(250));
        loop {
            tokio::select! {
                e = sig_rx.recv() => match e {
                    Some(e) => self.on_signal(e).await,
                    None => break,
                },
                Some((generation, e)) = pc_rx.recv() => {
                    if self.session.as_ref().is_some_and(|s| s.generation == generation) {
                        self.on_pc(e).await;
                    }
                }
                c = cmd_rx.recv() => match c {
                    Some(Command::Send(text)) => self.send_data(&text).await,
                    Some(Command::Media { audio_muted, video_muted }) => {
                        self.media = Some((audio_muted, video_muted));
                        self.send_media().await;
                    }
                    Some(Command::RestartIce) => self.restart_ice().await,
                    Some(Command::Stats(tx)) => {
                        let mut st = self.stats.clone();
                        st.target_bitrate_bps = self.target.as_ref().map_or(0, TargetBitrate::get);
                        if let Some(s) = &self.session {
                            st.candidates_queued = s.neg.queued() as u64;
                            st.candidates_dropped = s.neg.dropped_candidates;
                            let report = s.pc.get_stats(Instant::now(), rtc::statistics::StatsSelector::None).await;
                            network_quality(&report, &mut st);
                        }
                        let _ = tx.send(st);
                    }
                    Some(Command::Hangup(done)) => {
                        self.say_goodbye().await;
                        self.signaling.leave().await;
                        self.close_session().await;
                        let _ = done.send(());
                        break;
                    }
                    None => {
                        self.signaling.leave().await;
                        self.close_session().await;
                        break;
                    }
                },
                _ = tick.tick() => {
                    self.check_ice().await;
                    // An offer held back for its servers to settle.
                    if let Err(e) = self.maybe_offer().await {
                        self.emit(CallEvent::Warning(e));
                    }
                    if self.refresh_at.is_some_and(|t| Instant::now() >= t) {
                        // Asked again later unless the answer (which
                        // reschedules) comes: a refusal or a lost ack.
                        self.refresh_at = Some(Instant::now() + REFRESH_RETRY);
                        tracing::debug!("asking for fresh ICE server credentials");
                        self.signaling.refresh();
                    }
                }
                Some(()) = keyframe_rx.recv() => {
                    while keyframe_rx.try_recv().is_ok() {}
                    self.emit(CallEvent::KeyframeRequested);
                }
            }
        }
    }

    async fn on_signal(&mut self, e: SignalEvent) {
        match e {
            SignalEvent::Refreshed(accepted) => {
                // Fresh credentials: new allocations (this restart's, and any
                // later network change's) need an unexpired one.
                self.use_acked_servers(accepted.ice_servers, true).await;
            }
            SignalEvent::Joined { accepted, rejoin } => {
                self.polite = accepted.polite;
                self.use_acked_servers(accepted.ice_servers.clone(), false).await;
                self.stats.rejoins += u64::from(rejoin);
                let others: Vec<PeerId> = accepted.peers.iter().map(|p| p.peer_id.clone()).collect();
                self.emit(CallEvent::Joined {
                    peer_id: accepted.peer_id.clone(),
                    polite: accepted.polite,
                    others: others.clone(),
                    rejoin,
                    token: accepted.token.clone(),
                });
                if let Some(s) = &self.session {
                    // Resume: the peer connection lived on; re-send our last
                    // word in case the other side missed it.
                    if let Some(d) = s.neg.resume() {
                        self.signaling.send_description(d.clone(), s.remote.clone());
                    }
                } else if let Some(first) = others.first() {
                    // Someone was waiting: the newcomer makes the offer.
                    if let Err(e) = self.open_session(Some(first.clone()), true).await {
                        self.emit(CallEvent::Warning(e));
                    }
                }
            }
            SignalEvent::Refused(e) => self.emit(CallEvent::Refused { code: e.code.to_string(), message: e.message }),
            SignalEvent::PeerJoined(p) => {
                if let Some(s) = &self.session {
                    if s.remote.as_ref().is_some_and(|r| *r != p.peer_id) {
                        // A different peer: the old session is over.
                        self.close_session().await;
                    }
                }
                // The newcomer offers; we answer.
                self.polite = false;
                let newcomer = p.peer_id.clone();
                self.emit(CallEvent::PeerJoined(p.peer_id));
                if self.config.offer_on_peer_joined && self.session.is_none() {
                    if let Err(e) = self.open_session(Some(newcomer), true).await {
                        self.emit(CallEvent::Warning(e));
                    }
                }
            }
            SignalEvent::PeerLeft(p) => {
                if self.session.as_ref().is_some_and(|s| s.remote.as_ref().is_none_or(|r| *r == p.peer_id)) {
                    self.close_session().await;
                }
                self.emit(CallEvent::PeerLeft { peer_id: p.peer_id, reason: format!("{:?}", p.reason).to_lowercase() });
            }
            SignalEvent::Description { from, sdp } => {
                if let Err(e) = self.on_description(from, sdp).await {
                    self.emit(CallEvent::Warning(e));
                }
            }
            SignalEvent::Candidate { from, candidate } => {
                if let Err(e) = self.on_candidate(from, candidate).await {
                    self.emit(CallEvent::Warning(e));
                }
            }
            SignalEvent::ServerError(e) => self.emit(CallEvent::Warning(format!("server: {}: {}", e.code, e.message))),
            SignalEvent::Lost { reason } => self.emit(CallEvent::SignalingLost(reason)),
        }
    }

    /// The peer connection's configuration: our servers plus the ack's,
    /// and the candidate policy.
    fn rtc_configuration(&self) -> rtc::peer_connection::configuration::RTCConfiguration {
        use rtc::peer_connection::configuration::{RTCIceServer, RTCIceTransportPolicy};
        let servers: Vec<RTCIceServer> = crate::ice_servers::merge(&self.config.ice_servers, &self.acked_servers)
            .into_iter()
            .map(|s| RTCIceServer {
                urls: s.urls,
                username: s.username.unwrap_or_default(),
                credential: s.credential.unwrap_or_default(),
            })
            .collect();
        let policy = match self.config.ice_policy {
            IcePolicy::All => RTCIceTransportPolicy::All,
            IcePolicy::Relay => RTCIceTransportPolicy::Relay,
        };
        RTCConfigurationBuilder::new().with_ice_servers(servers).with_ice_transport_policy(policy).build()
    }

    /// Takes the servers of a join ack: schedules their refresh, and marks
    /// them for a running peer connection, which gets them with the next
    /// ICE restart: with `restart` (a credential refresh) that is the one
    /// made here; without (a rejoin), the next one either side makes.
    async fn use_acked_servers(&mut self, servers: Vec<ringlet_proto::IceServer>, restart: bool) {
        let changed = servers != self.acked_servers;
        self.acked_servers = servers;
        let refresh_at = crate::ice_servers::expiry(&self.acked_servers).and_then(|expiry| {
            let wait = crate::ice_servers::refresh_in(expiry, std::time::SystemTime::now());
            if wait.is_none() {
                tracing::warn!(expiry, "the server's TURN credential has already expired by our clock (clock skew?)");
            }
            wait.map(|w| Instant::now() + w)
        });
        let Some(s) = self.session.as_mut() else {
            self.refresh_at = refresh_at;
            return;
        };
        // Stale against what the connection has, not against the last ack:
        // after a rejoin the ack's servers may be the same as a refresh's
        // (the username is minted per second) yet not applied.
        s.servers_stale |= changed;
        if !s.servers_stale {
            self.refresh_at = refresh_at;
        } else if restart {
            self.refresh_at = refresh_at;
            self.stats.ice_refreshes += 1;
            self.restart_ice().await;
        } else {
            // The connection still uses the credentials it has: their
            // refresh stays due when it was, if that is sooner.
            self.refresh_at = match (self.refresh_at, refresh_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }

    /// Hands the stale ICE servers to the peer connection, once a restart
    /// is marked and [`Session::servers_settled`] (see
    /// [`Session::servers_stale`]).
    async fn apply_stale_servers(&mut self) {
        let config = self.rtc_configuration();
        let Some(s) = self.session.as_mut() else { return };
        s.servers_stale = false;
        if let Err(e) = s.pc.set_configuration(config).await {
            self.emit(CallEvent::Warning(format!("new ICE servers not applied: {e}")));
        }
    }

    async fn open_session(&mut self, remote: Option<PeerId>, offerer: bool) -> Result<(), String> {
        self.next_generation += 1;
        let generation = self.next_generation;
        let mut me = MediaEngine::default();
        me.register_default_codecs().map_err(|e| e.to_string())?;
        let registry = register_default_interceptors(Registry::new(), &mut me).map_err(|e| e.to_string())?;
        // Without congestion control our sender adds no transport-wide
        // sequence numbers and sends no REMB: the bitrate toward a browser
        // would stay fixed whatever the link does.
        let (estimator, target) = ReportingEstimator::gcc();
        let registry = rtc::peer_connection::configuration::interceptor_registry::configure_congestion_control(
            registry,
            estimator,
            rtc::peer_connection::configuration::interceptor_registry::CongestionFeedback::Twcc,
            &mut me,
        )
        .map_err(|e| format!("congestion control: {e}"))?;
        self.target = Some(target);
        let registry = registry.with(rtc::interceptor::Slot::from(14_000), AppRtcp::default());
        let setting = SettingEngineBuilder::new()
            // Answer as DTLS server: interoperates with Chromium and avoids
            // two rtc-core bugs of the client role (a ClientHello held for
            // the next ICE tick; first SRTP packets dropped before keys).
            .with_answering_dtls_role(rtc::peer_connection::transport::RTCDtlsRole::Server)
            .with_ice_connection_attempts(Some(self.config.ice_check_interval), None)
            // Notice a dead path in seconds (defaults: 5 s, then 25 s more).
            .with_ice_timeouts(Some(Duration::from_secs(3)), Some(Duration::from_secs(7)), Some(Duration::from_secs(1)))
            // mDNS joins a multicast group at build time and fails the
            // build where there is none (CI, containers); host IPs suffice.
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            // A browser's check often arrives before its candidate does; the
            // pair is then peer-reflexive, which rtc-ice would otherwise
            // hold back for a full second before selecting it (measured:
            // 1.7 s instead of ~0.2 s in half the browser-first calls).
            .with_prflx_acceptance_min_wait(Some(Duration::ZERO));
        // Relay-only: rtc-ice holds a relay pair back 2 s in case a direct
        // one works out, and there is nothing better to wait for (measured:
        // a relay call took 2.1 s to connect, each ICE restart 2 s more).
        // And webrtc 0.21.1's driver sends a TURN-relayed packet only at its
        // next wake-up (it drains the relayer before the core's writes), so
        // while nothing else flows each DTLS flight waited ~200-400 ms for a
        // timer: DTLS took 1.4 s. A 50 ms keepalive is such a wake-up
        // (measured: 0.3 s), at ~20 small STUN packets a second each way.
        let setting = match self.config.ice_policy {
            IcePolicy::Relay => setting.with_relay_acceptance_min_wait(Some(Duration::ZERO)).with_ice_timeouts(
                Some(Duration::from_secs(3)),
                Some(Duration::from_secs(7)),
                Some(Duration::from_millis(50)),
            ),
            IcePolicy::All => setting,
        };
        // With short-lived TURN credentials, an ICE restart rebinds the
        // sockets: the old allocations are released and new ones made with
        // the fresh credential. Without it, webrtc-rs re-signs the live
        // allocation with the new username, which RFC 8656 forbids and coturn
        // answers 441 (Wrong Credentials): its refreshes then fail and the
        // allocation lapses after its lifetime (measured with coturn 4.6).
        let setting = setting
            .with_discard_local_candidates_during_ice_restart(crate::ice_servers::expiry(&self.acked_servers).is_some())
            .build();
        let pc = PeerConnectionBuilder::new()
            .with_configuration(self.rtc_configuration())
            .with_setting_engine(setting)
            .with_media_engine(me)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler { generation, tx: self.pc_tx.clone() }))
            .with_udp_addrs(vec![self.config.udp_bind.clone()])
            .build()
            .await
            .map_err(|e| format!("cannot create the peer connection: {e}"))?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        self.stats = CallStats { rejoins: self.stats.rejoins, ice_refreshes: self.stats.ice_refreshes, ..CallStats::default() };
        let (track, ssrc) = crate::video::local_track()?;
        tracing::debug!(target: "ringlet_call::video", ssrc, "our video SSRC");
        let sender = pc
            .add_track(track.clone() as Arc<dyn webrtc::media_stream::track_local::TrackLocal>)
            .await
            .map_err(|e| format!("add video track: {e}"))?;
        crate::video::spawn_feedback_reader(track.clone(), self.keyframe_tx.clone());
        let (audio_track, audio_ssrc) = crate::audio::local_track()?;
        let audio_sender = pc
            .add_track(audio_track.clone() as Arc<dyn webrtc::media_stream::track_local::TrackLocal>)
            .await
            .map_err(|e| format!("add audio track: {e}"))?;
        let mut session = Session {
            generation,
            pc: pc.clone(),
            neg: Negotiator::new(self.polite),
            remote,
            dc: None,
            renegotiate: false,
            ice_restart: false,
            servers_stale: false,
            last_local: None,
            data_open: Arc::default(),
            video: (track, ssrc, sender),
            audio: (audio_track, audio_ssrc, audio_sender),
        };
        if offerer {
            // The data channel is what makes the first offer; media tracks
            // join it once the media crate feeds them.
            let dc = pc.create_data_channel("ringlet", None).await.map_err(|e| format!("data channel: {e}"))?;
            self.watch_data_channel(generation, dc.clone());
            session.dc = Some(dc);
        }
        self.session = Some(session);
        Ok(())
    }

    fn watch_data_channel(&self, generation: u64, dc: Arc<dyn DataChannel>) {
        let tx = self.pc_tx.clone();
        tokio::spawn(async move {
            while let Some(e) = dc.poll().await {
                let out = match e {
                    DataChannelEvent::OnOpen => PcEvent::DataOpen,
                    DataChannelEvent::OnMessage(m) => PcEvent::Data(String::from_utf8_lossy(&m.data).into_owned()),
                    DataChannelEvent::OnClose => break,
                    _ => continue,
                };
                if tx.send((generation, out)).is_err() {
                    break;
                }
            }
        });
    }

    async fn on_description(&mut self, from: Option<PeerId>, sdp: SessionDescription) -> Result<(), String> {
        if self.session.is_none() {
            if sdp.kind != ringlet_proto::SdpType::Offer {
                return Err("an answer arrived with no call in progress".into());
            }
            self.open_session(from.clone(), false).await?;
        }
        let polite = self.polite;
        let s = self.session.as_mut().expect("opened above");
        if s.remote.is_none() {
            s.remote = from;
        }
        s.neg.set_polite(polite);
        match s.neg.on_remote_description(&sdp) {
            DescriptionAction::Apply { rollback, answer } => {
                if rollback {
                    let rb = RTCSessionDescription::rollback(None).map_err(|e| e.to_string())?;
                    s.last_local = Some(Instant::now());
                    s.pc.set_local_description(rb).await.map_err(|e| format!("rollback: {e}"))?;
                    s.neg.rolled_back();
                    self.stats.rollbacks += 1;
                    // Ours was rolled back: offer again once stable.
                    s.renegotiate = true;
                }
                let restarts = s.neg.restarts_ice(&sdp);
                s.pc.set_remote_description(to_rtc(&sdp)?).await.map_err(|e| format!("set remote: {e}"))?;
                // A restart: webrtc-rs marked the answer's gathering to
                // rebind, the moment for new servers (queued before the
                // answer's gathering, after any failure that would leave
                // them to an ordinary one), unless a gathering of ours may
                // still be queued; then this restart keeps the servers it has.
                if restarts && s.servers_stale && s.servers_settled() {
                    self.apply_stale_servers().await;
                }
                let s = self.session.as_mut().expect("opened above");
                for c in s.neg.remote_description_set(sdp) {
                    match s.pc.add_ice_candidate(candidate_to_rtc(&c)).await {
                        Ok(()) => self.stats.candidates_applied += 1,
                        Err(e) => {
                            self.stats.candidate_errors += 1;
                            tracing::debug!(error = %e, "queued candidate refused");
                        }
                    }
                }
                if answer {
                    let a = s.pc.create_answer(None).await.map_err(|e| format!("create answer: {e}"))?;
                    s.last_local = Some(Instant::now());
                    s.pc.set_local_description(a).await.map_err(|e| format!("set local answer: {e}"))?;
                    let local = s.pc.local_description().await.ok_or("no local description after answering")?;
                    let local = from_rtc(&local)?;
                    s.neg.local_answer_set(local.clone());
                    self.signaling.send_description(local, s.remote.clone());
                    self.stats.answers_sent += 1;
                }
                self.emit(CallEvent::Negotiated);
                self.publish_targets().await;
                self.maybe_offer().await
            }
            DescriptionAction::IgnoreCollision => {
                self.stats.collisions_ignored += 1;
                tracing::debug!("offer collision: impolite, ignoring theirs");
                Ok(())
            }
            DescriptionAction::Repeat => Ok(()),
            DescriptionAction::Unexpected => {
                tracing::debug!(kind = ?sdp.kind, "unexpected description ignored");
                Ok(())
            }
        }
    }

    async fn on_candidate(&mut self, from: Option<PeerId>, c: IceCandidate) -> Result<(), String> {
        if self.session.is_none() {
            // Candidates may beat their offer here only if the offer was
            // lost; keep them for it.
            self.open_session(from, false).await?;
        }
        self.stats.candidates_received += 1;
        let s = self.session.as_mut().expect("opened above");
        match s.neg.on_remote_candidate(c.clone()) {
            CandidateAction::Apply => {
                if c.candidate.is_empty() {
                    return Ok(()); // end-of-candidates
                }
                match s.pc.add_ice_candidate(candidate_to_rtc(&c)).await {
                    Ok(()) => {
                        self.stats.candidates_applied += 1;
                        Ok(())
                    }
                    Err(e) => {
                        self.stats.candidate_errors += 1;
                        Err(format!("add candidate: {e}"))
                    }
                }
            }
            CandidateAction::Queued | CandidateAction::Dropped | CandidateAction::QueuedDroppedOldest => Ok(()),
        }
    }

    /// Makes an offer if one is wanted and allowed now.
    async fn maybe_offer(&mut self) -> Result<(), String> {
        let Some(s) = self.session.as_ref() else { return Ok(()) };
        if !s.renegotiate || !s.neg.may_offer() {
            return Ok(());
        }
        let stale = s.ice_restart && s.servers_stale;
        if stale && !s.servers_settled() {
            tracing::debug!("new ICE servers wait for the last gathering to be taken");
            return Ok(()); // tried again on the next tick
        }
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        s.renegotiate = false;
        let options = s.ice_restart.then_some(rtc::peer_connection::configuration::RTCOfferOptions { ice_restart: true });
        s.ice_restart = false;
        let offer = s.pc.create_offer(options).await.map_err(|e| format!("create offer: {e}"))?;
        if stale {
            // After `create_offer` marked the restart (the servers do not
            // change the offer), before the gathering that rebinds.
            self.apply_stale_servers().await;
        }
        let Some(s) = self.session.as_mut() else { return Ok(()) };
        s.last_local = Some(Instant::now());
        s.pc.set_local_description(offer).await.map_err(|e| format!("set local offer: {e}"))?;
        let local = s.pc.local_description().await.ok_or("no local description after offering")?;
        let local = from_rtc(&local)?;
        s.neg.local_offer_set(local.clone());
        self.signaling.send_description(local, s.remote.clone());
        self.stats.offers_sent += 1;
        Ok(())
    }

    async fn on_pc(&mut self, e: PcEvent) {
        match e {
            PcEvent::NegotiationNeeded => {
                if let Some(s) = self.session.as_mut() {
                    s.renegotiate = true;
                }
                if let Err(e) = self.maybe_offer().await {
                    self.emit(CallEvent::Warning(e));
                }
            }
            PcEvent::Candidate(c) => {
                let remote = self.session.as_ref().and_then(|s| s.remote.clone());
                self.signaling.send_candidate(candidate_from_rtc(&c), remote);
                self.stats.candidates_sent += 1;
            }
            PcEvent::Ice(state) => {
                match state {
                    RTCIceConnectionState::Disconnected => {
                        self.disconnected_since.get_or_insert_with(Instant::now);
                    }
                    RTCIceConnectionState::Failed => {
                        self.disconnected_since = None;
                        self.restart_ice().await;
                    }
                    _ => self.disconnected_since = None,
                }
                self.emit(CallEvent::IceState(state.to_string()));
            }
            PcEvent::State(state) => {
                self.emit(CallEvent::Connection(state.to_string()));
                if state == RTCPeerConnectionState::Connected {
                    let peer_id = self.session.as_ref().and_then(|s| s.remote.clone());
                    self.emit(CallEvent::Connected { peer_id });
                    if let Some(s) = &self.session {
                        if let Some(dc) = &s.dc {
                            tokio::spawn(kick_until_open(dc.clone(), s.data_open.clone()));
                        }
                    }
                }
            }
            PcEvent::DataChannel(dc) => {
                if let Some(s) = self.session.as_mut() {
                    let generation = s.generation;
                    s.dc = Some(dc.clone());
                    self.watch_data_channel(generation, dc);
                }
            }
            PcEvent::Track(track) => {
                if track.kind().await == rtc::rtp_transceiver::rtp_sender::RtpCodecKind::Audio {
                    crate::audio::spawn_reader(track, self.remote_audio.clone(), Arc::clone(&self.remote_clock));
                } else {
                    crate::video::spawn_reader(
                        track,
                        self.remote_video.clone(),
                        Arc::clone(&self.remote_clock),
                        Arc::clone(&self.remote_keyframe),
                    );
                }
            }
            PcEvent::DataOpen => {
                if let Some(s) = &self.session {
                    s.data_open.store(true, std::sync::atomic::Ordering::Relaxed);
                }
                self.emit(CallEvent::DataOpen);
                self.send_media().await;
            }
            PcEvent::Data(text) => match DataMessage::parse(&text) {
                Some(DataMessage::Chat { text }) => self.emit(CallEvent::Chat(text)),
                Some(DataMessage::Media { audio_muted, video_muted }) => {
                    self.emit(CallEvent::RemoteMedia { audio_muted, video_muted })
                }
                Some(DataMessage::Frame { n, ts_us }) => self.emit(CallEvent::Frame { n, ts_us }),
                Some(DataMessage::Hangup) => {
                    self.emit(CallEvent::RemoteHangup);
                    self.close_session().await;
                }
                None => self.emit(CallEvent::Data(text)),
            },
        }
    }

    async fn check_ice(&mut self) {
        if self.disconnected_since.is_some_and(|t| t.elapsed() >= self.config.ice_restart_after) {
            self.disconnected_since = None;
            self.restart_ice().await;
        }
    }

    async fn restart_ice(&mut self) {
        let Some(s) = self.session.as_mut() else { return };
        s.ice_restart = true;
        s.renegotiate = true;
        self.stats.ice_restarts += 1;
        self.emit(CallEvent::IceRestart);
        if let Err(e) = self.maybe_offer().await {
            self.emit(CallEvent::Warning(e));
        }
    }

    async fn send_data(&mut self, text: &str) {
        let Some(dc) = self.session.as_ref().and_then(|s| s.dc.clone()) else {
            self.emit(CallEvent::Warning("no data channel yet".into()));
            return;
        };
        if let Err(e) = dc.send_text(text).await {
            self.emit(CallEvent::Warning(format!("data channel send: {e}")));
        }
    }

    async fn send_media(&mut self) {
        if let Some((audio_muted, video_muted)) = self.media {
            self.send_quietly(&DataMessage::Media { audio_muted, video_muted }).await;
        }
    }

    /// Sends if the channel is open; a closed or missing one is not an
    /// error here (the state goes out again when it opens).
    async fn send_quietly(&self, m: &DataMessage) {
        if let Some(dc) = self.session.as_ref().and_then(|s| s.dc.clone()) {
            let _ = dc.send_text(&m.to_text()).await;
        }
    }

    /// Tells the other peer over the data channel that we hang up, and
    /// waits (briefly) until it was acknowledged: closing the connection
    /// right away would drop it unsent.
    async fn say_goodbye(&self) {
        let Some(dc) = self.session.as_ref().and_then(|s| s.dc.clone()) else { return };
        if dc.send_text(&DataMessage::Hangup.to_text()).await.is_err() {
            return;
        }
        let deadline = Instant::now() + Duration::from_millis(500);
        while Instant::now() < deadline {
            match dc.outstanding_bytes().await {
                Ok(0) | Err(_) => return,
                Ok(_) => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    }

    /// Points the writers at this session's tracks with the payload types
    /// the negotiation settled on (never hard-coded ones).
    async fn publish_targets(&mut self) {
        let Some(s) = &self.session else { return };
        if let Some(t) = negotiated_target(&s.audio).await {
            self.audio_target.send_replace(Some(t));
        }
        let Some(t) = negotiated_target(&s.video).await else { return };
        // The video writer waits for a keyframe after a change: only
        // announce a real one.
        let changed = self.video_target.borrow().as_ref().is_none_or(|c| c.ssrc != t.ssrc || c.payload_type != t.payload_type);
        if changed {
            self.video_target.send_replace(Some(t));
        }
    }

    async fn close_session(&mut self) {
        self.video_target.send_replace(None);
        self.audio_target.send_replace(None);
        if let Some(s) = self.session.take() {
            let _ = s.pc.close().await;
        }
        self.disconnected_since = None;
    }
}

/// The writer target for a track, with the payload type negotiated for it.
async fn negotiated_target(
    (track, ssrc, sender): &(Arc<TrackLocalStaticSample>, u32, Arc<dyn webrtc::rtp_transceiver::RtpSender>),
) -> Option<crate::media_path::Target> {
    let payload_type = sender.get_parameters().await.ok()?.rtp_parameters.codecs.first()?.payload_type;
    Some(crate::media_path::Target { track: track.clone(), ssrc: *ssrc, payload_type })
}

/// Works around a webrtc 0.21.1 driver delay: packets queued while the
/// driver handles an event (the SCTP INIT once DTLS is up, the channel's
/// OPEN once SCTP is) wait for its next timer, ~200 ms each, so a data
/// channel opened ~400 ms after DTLS. Re-setting a data-channel threshold
/// to its own value is a no-op that wakes the driver's write loop; doing it
/// every 2 ms until the channel opens (at most 2 s) sends them at once.
async fn kick_until_open(dc: Arc<dyn DataChannel>, open: Arc<std::sync::atomic::AtomicBool>) {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !open.load(std::sync::atomic::Ordering::Relaxed) && Instant::now() < deadline {
        let Ok(t) = dc.buffered_amount_low_threshold().await else { return };
        if dc.set_buffered_amount_low_threshold(t).await.is_err() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
