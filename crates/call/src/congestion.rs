//! Congestion control: GCC over transport-wide CC feedback, with the target
//! bitrate published for the encoder.
//!
//! webrtc-rs runs the estimator inside its interceptor chain and offers no
//! getter for its output; the estimator is the one part the application
//! supplies, so wrapping it is how the estimate gets out.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rtc::interceptor::{BandwidthEstimator, EstimatorStats, Gcc, PacketReport};

/// Start, floor and ceiling of the estimate, in bits per second: a 720p30
/// VP8 stream looks good from ~1.5 Mbit/s; the floor keeps audio and a
/// small picture alive on a bad link.
pub const INITIAL_BPS: f64 = 1_000_000.0;
pub const MIN_BPS: f64 = 100_000.0;
pub const MAX_BPS: f64 = 2_500_000.0;

/// The latest target bitrate, shared with whoever encodes.
#[derive(Debug, Clone)]
pub struct TargetBitrate(Arc<AtomicU64>);

impl TargetBitrate {
    /// Bits per second.
    pub fn get(&self) -> u64 {
        f64::from_bits(self.0.load(Ordering::Relaxed)) as u64
    }
}

/// GCC, publishing its target after every update.
pub struct ReportingEstimator<E> {
    inner: E,
    target: Arc<AtomicU64>,
}

impl ReportingEstimator<Gcc> {
    pub fn gcc() -> (Self, TargetBitrate) {
        Self::new(Gcc::new(INITIAL_BPS, MIN_BPS, MAX_BPS))
    }
}

impl<E: BandwidthEstimator> ReportingEstimator<E> {
    pub fn new(inner: E) -> (Self, TargetBitrate) {
        let target = Arc::new(AtomicU64::new(inner.target_bitrate().to_bits()));
        (ReportingEstimator { inner, target: Arc::clone(&target) }, TargetBitrate(target))
    }

    fn publish(&self) {
        self.target.store(self.inner.target_bitrate().to_bits(), Ordering::Relaxed);
    }
}

impl<E: BandwidthEstimator> BandwidthEstimator for ReportingEstimator<E> {
    fn on_reports(&mut self, now: Instant, reports: &[PacketReport]) {
        self.inner.on_reports(now, reports);
        self.publish();
    }
    fn target_bitrate(&self) -> f64 {
        self.inner.target_bitrate()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.inner.handle_timeout(now);
        self.publish();
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.inner.poll_timeout()
    }
    fn stats(&self) -> EstimatorStats {
        self.inner.stats()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_initial_target_is_published() {
        let (_, target) = ReportingEstimator::gcc();
        assert_eq!(target.get(), INITIAL_BPS as u64);
    }
}
