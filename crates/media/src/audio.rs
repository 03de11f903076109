//! Audio: a synthetic microphone and Opus (48 kHz, 20 ms frames, in-band
//! FEC on, DTX off) with loss concealment on the decoding side.

/// Opus's and WebRTC's clock.
pub const SAMPLE_RATE: u32 = 48_000;
/// One 20 ms frame of mono audio.
pub const FRAME_SAMPLES: usize = 960;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("opus: {0}")]
pub struct AudioError(String);

impl From<opus::Error> for AudioError {
    fn from(e: opus::Error) -> Self {
        AudioError(e.to_string())
    }
}

/// A test tone: 440 Hz, with a 1 kHz beep every second (a marker a
/// listener — or a test — can find).
#[derive(Debug, Default)]
pub struct ToneSource {
    sample: u64,
}

impl ToneSource {
    /// The next 20 ms.
    pub fn next_frame(&mut self) -> Vec<i16> {
        let mut out = Vec::with_capacity(FRAME_SAMPLES);
        for _ in 0..FRAME_SAMPLES {
            let t = self.sample as f64 / SAMPLE_RATE as f64;
            let beep = (self.sample % SAMPLE_RATE as u64) < (SAMPLE_RATE as u64 / 20);
            let f = if beep { 1000.0 } else { 440.0 };
            out.push(((t * f * std::f64::consts::TAU).sin() * 8000.0) as i16);
            self.sample += 1;
        }
        out
    }
}

pub struct OpusEncoder {
    inner: opus::Encoder,
}

impl OpusEncoder {
    pub fn new(bitrate_bps: i32) -> Result<Self, AudioError> {
        let mut inner = opus::Encoder::new(SAMPLE_RATE, opus::Channels::Mono, opus::Application::Voip)?;
        inner.set_bitrate(opus::Bitrate::Bits(bitrate_bps))?;
        // FEC lets the receiver rebuild a lost frame from the next one.
        inner.set_inband_fec(true)?;
        inner.set_packet_loss_perc(10)?;
        inner.set_dtx(false)?;
        Ok(OpusEncoder { inner })
    }

    /// Encodes one 20 ms frame.
    pub fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, AudioError> {
        if pcm.len() != FRAME_SAMPLES {
            return Err(AudioError(format!("a frame is {FRAME_SAMPLES} samples, got {}", pcm.len())));
        }
        Ok(self.inner.encode_vec(pcm, 1500)?)
    }
}

pub struct OpusDecoder {
    inner: opus::Decoder,
}

impl OpusDecoder {
    pub fn new() -> Result<Self, AudioError> {
        Ok(OpusDecoder { inner: opus::Decoder::new(SAMPLE_RATE, opus::Channels::Mono)? })
    }

    /// Decodes a packet; `None` conceals a lost one (PLC).
    pub fn decode(&mut self, packet: Option<&[u8]>) -> Result<Vec<i16>, AudioError> {
        let mut out = vec![0i16; FRAME_SAMPLES];
        let n = self.inner.decode(packet.unwrap_or(&[]), &mut out, false)?;
        out.truncate(n);
        Ok(out)
    }

    /// Rebuilds the frame before `next` from `next`'s FEC data.
    pub fn recover(&mut self, next: &[u8]) -> Result<Vec<i16>, AudioError> {
        let mut out = vec![0i16; FRAME_SAMPLES];
        let n = self.inner.decode(next, &mut out, true)?;
        out.truncate(n);
        Ok(out)
    }
}

/// Root-mean-square level of a frame.
pub fn rms(pcm: &[i16]) -> f64 {
    if pcm.is_empty() {
        return 0.0;
    }
    (pcm.iter().map(|s| (*s as f64).powi(2)).sum::<f64>() / pcm.len() as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tone_survives_opus() {
        let (mut src, mut enc, mut dec) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap(), OpusDecoder::new().unwrap());
        let mut levels = vec![];
        for _ in 0..50 {
            let frame = src.next_frame();
            let packet = enc.encode(&frame).unwrap();
            assert!(packet.len() < 200, "{} bytes for 20 ms at 32 kbit/s", packet.len());
            levels.push(rms(&dec.decode(Some(&packet)).unwrap()));
        }
        let steady = levels[10..].iter().sum::<f64>() / 40.0;
        assert!((4000.0..7000.0).contains(&steady), "decoded level {steady:.0} (sent ~5657)");
    }

    #[test]
    fn a_lost_frame_is_concealed_and_fec_rebuilds_it() {
        let (mut src, mut enc, mut dec) = (ToneSource::default(), OpusEncoder::new(32_000).unwrap(), OpusDecoder::new().unwrap());
        let packets: Vec<Vec<u8>> = (0..30).map(|_| enc.encode(&src.next_frame()).unwrap()).collect();
        for p in &packets[..20] {
            dec.decode(Some(p)).unwrap();
        }
        let concealed = dec.decode(None).unwrap();
        assert_eq!(concealed.len(), FRAME_SAMPLES);
        assert!(rms(&concealed) > 1000.0, "PLC continues the tone, not silence");
        let rebuilt = dec.recover(&packets[22]).unwrap();
        assert_eq!(rebuilt.len(), FRAME_SAMPLES);
        assert!(rms(&rebuilt) > 1000.0);
    }

    #[test]
    fn a_wrong_frame_size_is_an_error() {
        assert!(OpusEncoder::new(32_000).unwrap().encode(&[0; 100]).is_err());
    }
}
