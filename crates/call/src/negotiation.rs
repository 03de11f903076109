//! Perfect negotiation and the remote-candidate queue, sans-IO.
//!
//! The engine's actor asks [`Negotiator`] what to do with each signaling
//! input, performs the answer on the real peer connection, and reports back
//! what it did. Everything here is plain state, so every rule — glare,
//! rollback, queued and dropped candidates, idempotent repeats after a
//! reconnect — is unit-tested without sockets or a peer connection.
//!
//! The rules, from the W3C "perfect negotiation" pattern, made strict:
//! - An offer that arrives while we have one out (or are mid-way) collides.
//!   The impolite peer ignores it; the polite one rolls back and answers.
//! - Remote candidates that arrive before their remote description are
//!   queued (bounded) and applied in order right after it is set.
//! - Candidates of an offer we ignored, or of an older ICE session, are
//!   dropped, never applied to the wrong session: a candidate's
//!   `usernameFragment`, when present, must match the remote description's
//!   `a=ice-ufrag`.
//! - A description identical to the last one applied is a repeat (a peer
//!   resuming after a signaling reconnect re-sends it) and is ignored.

use std::collections::VecDeque;

use ringlet_proto::{IceCandidate, SdpType, SessionDescription};

/// The peer connection's signaling state, as the negotiator tracks it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalingState {
    Stable,
    HaveLocalOffer,
    HaveRemoteOffer,
    Closed,
}

/// What to do with a remote description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptionAction {
    /// Apply it: roll back our own offer first if `rollback`; then, for an
    /// offer, create and send an answer.
    Apply { rollback: bool, answer: bool },
    /// Ignore it: an offer that collided with ours, and we are impolite.
    IgnoreCollision,
    /// Ignore it: the same description was applied already.
    Repeat,
    /// Ignore it: an answer with no offer of ours outstanding.
    Unexpected,
}

/// What to do with a remote candidate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CandidateAction {
    Apply,
    /// Held until the remote description is set.
    Queued,
    /// Belongs to an ignored offer or an older ICE session.
    Dropped,
    /// The queue is full: the oldest candidate was dropped for this one.
    QueuedDroppedOldest,
}

/// Remote candidates held at most, before the description arrives.
pub const MAX_QUEUED_CANDIDATES: usize = 256;

#[derive(Debug)]
pub struct Negotiator {
    polite: bool,
    state: SignalingState,
    /// The ufrag of the remote description in force, if any.
    remote_ufrag: Option<String>,
    /// The ufrag of a remote offer we ignored: its candidates go nowhere.
    ignored_ufrag: Option<String>,
    queue: VecDeque<IceCandidate>,
    last_remote: Option<SessionDescription>,
    last_local: Option<SessionDescription>,
    /// Counters for the engine's stats.
    pub dropped_candidates: u64,
}

impl Negotiator {
    pub fn new(polite: bool) -> Self {
        Negotiator {
            polite,
            state: SignalingState::Stable,
            remote_ufrag: None,
            ignored_ufrag: None,
            queue: VecDeque::new(),
            last_remote: None,
            last_local: None,
            dropped_candidates: 0,
        }
    }

    pub fn polite(&self) -> bool {
        self.polite
    }

    /// The server decides politeness at join time; a rejoin keeps it, but a
    /// new session (the other peer left and another came) may change it.
    pub fn set_polite(&mut self, polite: bool) {
        self.polite = polite;
    }

    pub fn state(&self) -> SignalingState {
        self.state
    }

    /// Whether we may start an offer now (negotiation-needed fired).
    pub fn may_offer(&self) -> bool {
        self.state == SignalingState::Stable
    }

    /// We set a local offer.
    pub fn local_offer_set(&mut self, offer: SessionDescription) {
        self.state = SignalingState::HaveLocalOffer;
        self.last_local = Some(offer);
    }

    /// We set a local answer (after a remote offer).
    pub fn local_answer_set(&mut self, answer: SessionDescription) {
        self.state = SignalingState::Stable;
        self.last_local = Some(answer);
    }

    /// Whether `desc` is an offer that restarts ICE: it carries another
    /// ufrag than the remote description in force. The first offer of a
    /// session is not a restart; there is nothing to restart yet.
    pub fn restarts_ice(&self, desc: &SessionDescription) -> bool {
        let current = self.remote_ufrag.as_deref().filter(|u| !u.is_empty());
        let offered = ice_ufrag(&desc.sdp);
        // No ufrag at all is not a restart (webrtc-rs does not take it for one).
        desc.kind == SdpType::Offer && current.is_some() && offered.is_some() && offered.as_deref() != current
    }

    /// What to re-send after the signaling transport came back: the local
    /// description, if we are waiting for an answer or are stable (the
    /// other side may have missed our last word; it treats a repeat
    /// idempotently).
    pub fn resume(&self) -> Option<&SessionDescription> {
        match self.state {
            SignalingState::HaveLocalOffer | SignalingState::Stable => self.last_local.as_ref(),
            _ => None,
        }
    }

    /// Decides about a remote description.
    pub fn on_remote_description(&mut self, desc: &SessionDescription) -> DescriptionAction {
        if self.last_remote.as_ref().is_some_and(|last| last.kind == desc.kind && last.sdp == desc.sdp) {
            return DescriptionAction::Repeat;
        }
        match desc.kind {
            SdpType::Offer => {
                let collision = self.state != SignalingState::Stable;
                if collision && !self.polite {
                    self.ignored_ufrag = ice_ufrag(&desc.sdp);
                    // Candidates of the ignored offer already queued go too.
                    self.drop_queued_of(self.ignored_ufrag.clone());
                    return DescriptionAction::IgnoreCollision;
                }
                DescriptionAction::Apply { rollback: collision, answer: true }
            }
            SdpType::Answer | SdpType::Pranswer => {
                if self.state != SignalingState::HaveLocalOffer {
                    return DescriptionAction::Unexpected;
                }
                DescriptionAction::Apply { rollback: false, answer: false }
            }
            SdpType::Rollback => DescriptionAction::Unexpected,
        }
    }

    /// We rolled back our local offer (polite side of a collision).
    pub fn rolled_back(&mut self) {
        self.state = SignalingState::Stable;
    }

    /// The remote description is set. Returns the queued candidates that
    /// belong to it, in arrival order, to apply now.
    pub fn remote_description_set(&mut self, desc: SessionDescription) -> Vec<IceCandidate> {
        let ufrag = ice_ufrag(&desc.sdp);
        self.state = match desc.kind {
            SdpType::Offer => SignalingState::HaveRemoteOffer,
            _ => SignalingState::Stable,
        };
        if ufrag.is_some() && ufrag == self.ignored_ufrag {
            self.ignored_ufrag = None;
        }
        self.remote_ufrag = ufrag.clone().or_else(|| Some(String::new()));
        self.last_remote = Some(desc);
        let mut ready = Vec::with_capacity(self.queue.len());
        while let Some(c) = self.queue.pop_front() {
            if belongs(&c, ufrag.as_deref()) {
                ready.push(c);
            } else {
                self.dropped_candidates += 1;
            }
        }
        ready
    }

    /// Decides about a remote candidate.
    pub fn on_remote_candidate(&mut self, c: IceCandidate) -> CandidateAction {
        let frag = c.username_fragment.as_deref().filter(|f| !f.is_empty());
        if frag.is_some() && frag == self.ignored_ufrag.as_deref() {
            self.dropped_candidates += 1;
            return CandidateAction::Dropped;
        }
        // Applied directly only when a remote description is in force and
        // no newer one is on its way (our offer is out: the answer will
        // carry the session these candidates belong to).
        if let Some(remote) = &self.remote_ufrag {
            if self.state != SignalingState::HaveLocalOffer {
                if frag.is_some_and(|f| !remote.is_empty() && f != remote) {
                    self.dropped_candidates += 1;
                    return CandidateAction::Dropped;
                }
                return CandidateAction::Apply;
            }
        }
        self.queue.push_back(c);
        if self.queue.len() > MAX_QUEUED_CANDIDATES {
            self.queue.pop_front();
            self.dropped_candidates += 1;
            return CandidateAction::QueuedDroppedOldest;
        }
        CandidateAction::Queued
    }

    /// Candidates waiting for their description.
    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    /// Forget the session (the other peer left; a new one may come).
    pub fn reset(&mut self, polite: bool) {
        *self = Negotiator::new(polite);
    }

    fn drop_queued_of(&mut self, ufrag: Option<String>) {
        let Some(u) = ufrag else { return };
        let before = self.queue.len();
        self.queue.retain(|c| c.username_fragment.as_deref() != Some(u.as_str()));
        self.dropped_candidates += (before - self.queue.len()) as u64;
    }
}

fn belongs(c: &IceCandidate, ufrag: Option<&str>) -> bool {
    match (c.username_fragment.as_deref().filter(|f| !f.is_empty()), ufrag) {
        (Some(f), Some(u)) => f == u,
        _ => true,
    }
}

/// The session-level or first media-level `a=ice-ufrag:` of an SDP.
pub fn ice_ufrag(sdp: &str) -> Option<String> {
    sdp.lines()
        .find_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sdp(kind: SdpType, ufrag: &str, version: u32) -> SessionDescription {
        SessionDescription { kind, sdp: format!("v=0\r\no=- 1 {version} IN IP4 0.0.0.0\r\na=ice-ufrag:{ufrag}\r\n") }
    }

    fn cand(n: u32, ufrag: Option<&str>) -> IceCandidate {
        IceCandidate {
            candidate: format!("candidate:{n} 1 udp 1 127.0.0.1 {} typ host", 5000 + n),
            sdp_mid: Some("0".into()),
            sdp_mline_index: Some(0),
            username_fragment: ufrag.map(str::to_owned),
        }
    }

    #[test]
    fn candidates_before_the_offer_are_queued_then_applied_in_order() {
        let mut n = Negotiator::new(true);
        for i in 0..5 {
            assert_eq!(n.on_remote_candidate(cand(i, None)), CandidateAction::Queued);
        }
        let offer = sdp(SdpType::Offer, "A", 1);
        assert_eq!(n.on_remote_description(&offer), DescriptionAction::Apply { rollback: false, answer: true });
        let ready = n.remote_description_set(offer);
        assert_eq!(ready.iter().map(|c| c.candidate.clone()).collect::<Vec<_>>(), (0..5).map(|i| cand(i, None).candidate).collect::<Vec<_>>());
        assert_eq!(n.state(), SignalingState::HaveRemoteOffer);
        assert_eq!(n.on_remote_candidate(cand(9, Some("A"))), CandidateAction::Apply);
        n.local_answer_set(sdp(SdpType::Answer, "B", 1));
        assert_eq!(n.state(), SignalingState::Stable);
        assert_eq!(n.on_remote_candidate(cand(10, None)), CandidateAction::Apply);
    }

    #[test]
    fn offerer_queues_candidates_until_the_answer() {
        let mut n = Negotiator::new(false);
        assert!(n.may_offer());
        n.local_offer_set(sdp(SdpType::Offer, "A", 1));
        assert!(!n.may_offer());
        assert_eq!(n.on_remote_candidate(cand(1, Some("B"))), CandidateAction::Queued);
        let answer = sdp(SdpType::Answer, "B", 1);
        assert_eq!(n.on_remote_description(&answer), DescriptionAction::Apply { rollback: false, answer: false });
        assert_eq!(n.remote_description_set(answer).len(), 1);
        assert_eq!(n.state(), SignalingState::Stable);
    }

    #[test]
    fn glare_impolite_ignores_and_drops_that_offers_candidates() {
        let mut n = Negotiator::new(false);
        n.local_offer_set(sdp(SdpType::Offer, "MINE", 1));
        // Their candidates raced ahead of their offer.
        assert_eq!(n.on_remote_candidate(cand(1, Some("THEIRS"))), CandidateAction::Queued);
        let theirs = sdp(SdpType::Offer, "THEIRS", 1);
        assert_eq!(n.on_remote_description(&theirs), DescriptionAction::IgnoreCollision);
        assert_eq!(n.queued(), 0, "the ignored offer's queued candidate is gone");
        assert_eq!(n.on_remote_candidate(cand(2, Some("THEIRS"))), CandidateAction::Dropped);
        assert_eq!(n.dropped_candidates, 2);
        // The polite side rolls back and answers ours with its same ufrag:
        // its later candidates belong to the answer and apply.
        let answer = sdp(SdpType::Answer, "THEIRS", 2);
        assert_eq!(n.on_remote_description(&answer), DescriptionAction::Apply { rollback: false, answer: false });
        n.remote_description_set(answer);
        assert_eq!(n.on_remote_candidate(cand(3, Some("THEIRS"))), CandidateAction::Apply);
    }

    #[test]
    fn glare_polite_rolls_back_and_answers() {
        let mut n = Negotiator::new(true);
        n.local_offer_set(sdp(SdpType::Offer, "MINE", 1));
        let theirs = sdp(SdpType::Offer, "THEIRS", 1);
        assert_eq!(n.on_remote_description(&theirs), DescriptionAction::Apply { rollback: true, answer: true });
        n.rolled_back();
        assert_eq!(n.state(), SignalingState::Stable);
        n.remote_description_set(theirs);
        n.local_answer_set(sdp(SdpType::Answer, "MINE", 2));
        assert_eq!(n.state(), SignalingState::Stable);
        // A late answer to our rolled-back offer is not applied.
        assert_eq!(n.on_remote_description(&sdp(SdpType::Answer, "THEIRS", 3)), DescriptionAction::Unexpected);
    }

    #[test]
    fn a_repeated_description_is_ignored_and_resume_resends_ours() {
        let mut n = Negotiator::new(true);
        let offer = sdp(SdpType::Offer, "A", 1);
        n.on_remote_description(&offer);
        n.remote_description_set(offer.clone());
        let answer = sdp(SdpType::Answer, "B", 1);
        n.local_answer_set(answer.clone());
        // After a reconnect the offerer re-sends its offer: a repeat.
        assert_eq!(n.on_remote_description(&offer), DescriptionAction::Repeat);
        assert_eq!(n.resume(), Some(&answer));
        let mut o = Negotiator::new(false);
        let mine = sdp(SdpType::Offer, "A", 1);
        o.local_offer_set(mine.clone());
        assert_eq!(o.resume(), Some(&mine), "still waiting: re-send the offer");
    }

    #[test]
    fn candidates_of_an_old_ice_session_are_dropped_after_a_restart() {
        let mut n = Negotiator::new(true);
        let first = sdp(SdpType::Offer, "OLD", 1);
        n.on_remote_description(&first);
        n.remote_description_set(first);
        n.local_answer_set(sdp(SdpType::Answer, "ME", 1));
        let restart = sdp(SdpType::Offer, "NEW", 2);
        n.on_remote_description(&restart);
        n.remote_description_set(restart);
        assert_eq!(n.on_remote_candidate(cand(1, Some("OLD"))), CandidateAction::Dropped);
        assert_eq!(n.on_remote_candidate(cand(2, Some("NEW"))), CandidateAction::Apply);
    }

    #[test]
    fn an_offer_with_another_ufrag_restarts_ice_and_a_repeat_does_not() {
        let mut n = Negotiator::new(true);
        let first = sdp(SdpType::Offer, "OLD", 1);
        assert!(!n.restarts_ice(&first), "the first offer has nothing to restart");
        n.on_remote_description(&first);
        n.remote_description_set(first.clone());
        n.local_answer_set(sdp(SdpType::Answer, "ME", 1));
        assert!(!n.restarts_ice(&first), "a repeat keeps the ufrag");
        assert!(!n.restarts_ice(&sdp(SdpType::Offer, "OLD", 2)), "a renegotiation keeps the ufrag");
        assert!(n.restarts_ice(&sdp(SdpType::Offer, "NEW", 2)));
        assert!(!n.restarts_ice(&sdp(SdpType::Answer, "NEW", 2)), "an answer never starts a restart");
        let no_ufrag = SessionDescription { kind: SdpType::Offer, sdp: "v=0\r\no=- 1 3 IN IP4 0.0.0.0\r\n".into() };
        assert!(!n.restarts_ice(&no_ufrag), "no ufrag is no restart");
    }

    #[test]
    fn the_queue_is_bounded() {
        let mut n = Negotiator::new(true);
        for i in 0..MAX_QUEUED_CANDIDATES as u32 {
            assert_eq!(n.on_remote_candidate(cand(i, None)), CandidateAction::Queued);
        }
        assert_eq!(n.on_remote_candidate(cand(9999, None)), CandidateAction::QueuedDroppedOldest);
        assert_eq!(n.queued(), MAX_QUEUED_CANDIDATES);
    }

    #[test]
    fn ufrag_is_read_from_sdp() {
        assert_eq!(ice_ufrag("v=0\r\nm=audio 9 UDP 0\r\na=ice-ufrag:xYz1\r\n"), Some("xYz1".into()));
        assert_eq!(ice_ufrag("v=0\r\n"), None);
    }
}
