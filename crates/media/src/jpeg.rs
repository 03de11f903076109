//! JPEG for the webview: the local preview (and the remote picture when
//! the webview cannot decode VP8 itself) as small, quick stills. The frame
//! is point-sampled down to at most `max_width` first: a preview tile
//! needs no 720p, and encoding a quarter of the pixels costs a quarter.

use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

use crate::frame::I420Frame;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("jpeg: {0}")]
pub struct JpegError(String);

/// Encodes `frame` as a baseline 4:2:0 JPEG no wider than `max_width`
/// (scaled by a whole factor, so 1280×720 at 640 becomes 640×360).
pub fn i420_to_jpeg(frame: &I420Frame, max_width: usize, quality: u8) -> Result<Vec<u8>, JpegError> {
    let (w, h) = (frame.width, frame.height);
    if w == 0 || h == 0 || frame.data.len() < w * h * 3 / 2 {
        return Err(JpegError(format!("not an I420 frame of {w}x{h}")));
    }
    let step = w.div_ceil(max_width.max(2)).max(1);
    let (ow, oh) = ((w / step) & !1, (h / step) & !1);
    if ow == 0 || oh == 0 || ow > u16::MAX as usize || oh > u16::MAX as usize {
        return Err(JpegError(format!("cannot scale {w}x{h} by {step}")));
    }
    let (y, chroma) = frame.data.split_at(w * h);
    let (u, v) = chroma.split_at(w * h / 4);
    let cw = w / 2;
    let mut ycbcr = Vec::with_capacity(ow * oh * 3);
    for oy in 0..oh {
        let sy = oy * step;
        let (yrow, crow) = (&y[sy * w..], sy / 2 * cw);
        for ox in 0..ow {
            let sx = ox * step;
            ycbcr.extend_from_slice(&[yrow[sx], u[crow + sx / 2], v[crow + sx / 2]]);
        }
    }
    let mut out = Vec::with_capacity(ow * oh / 4);
    let mut enc = Encoder::new(&mut out, quality.clamp(1, 100));
    enc.set_sampling_factor(SamplingFactor::F_2_2);
    enc.encode(&ycbcr, ow as u16, oh as u16, ColorType::Ycbcr).map_err(|e| JpegError(e.to_string()))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::TestPattern;

    #[test]
    fn a_720p_frame_becomes_a_small_preview() {
        let (frame, _) = TestPattern::new(1280, 720).next_frame();
        let jpeg = i420_to_jpeg(&frame, 640, 70).unwrap();
        assert_eq!(&jpeg[..2], &[0xff, 0xd8], "SOI marker");
        assert_eq!(&jpeg[jpeg.len() - 2..], &[0xff, 0xd9], "EOI marker");
        // The SOF0 segment carries the size: height then width.
        let sof = jpeg.windows(2).position(|w| w == [0xff, 0xc0]).expect("baseline frame header");
        let (hh, ww) = (u16::from_be_bytes([jpeg[sof + 5], jpeg[sof + 6]]), u16::from_be_bytes([jpeg[sof + 7], jpeg[sof + 8]]));
        assert_eq!((ww, hh), (640, 360));
        assert!(jpeg.len() < 100_000, "{} bytes", jpeg.len());
    }

    #[test]
    fn a_short_buffer_is_an_error() {
        let f = I420Frame { width: 64, height: 64, data: vec![0; 10] };
        assert!(i420_to_jpeg(&f, 640, 70).is_err());
    }
}
