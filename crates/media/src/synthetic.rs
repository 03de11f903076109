//! A synthetic camera: a moving test pattern that carries its frame counter
//! and capture time in the picture, readable back after lossy coding, so
//! latency and loss can be measured end to end with no camera.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::frame::I420Frame;

/// Side of one stamp cell in pixels: large enough that VP8 at modest
/// bitrates keeps each cell clearly black or white.
const CELL: usize = 16;
/// Bits stamped: a 32-bit frame counter, then 64 bits of capture time in
/// microseconds since the Unix epoch.
const BITS: usize = 96;

/// What a frame says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    pub frame: u32,
    /// Microseconds since the Unix epoch when the frame was made.
    pub captured_us: u64,
}

impl Stamp {
    pub fn now(frame: u32) -> Self {
        let captured_us = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_micros() as u64;
        Stamp { frame, captured_us }
    }

    fn bits(&self) -> impl Iterator<Item = bool> + '_ {
        (0..32).map(move |i| self.frame >> (31 - i) & 1 == 1).chain((0..64).map(move |i| self.captured_us >> (63 - i) & 1 == 1))
    }
}

/// Rows of cells the stamp needs at `width`.
fn stamp_rows(width: usize) -> usize {
    let per_row = width / CELL;
    BITS.div_ceil(per_row)
}

/// Writes `stamp` into the top rows of the frame: one `CELL`-sized square
/// per bit, white for 1, black for 0.
pub fn write_stamp(frame: &mut I420Frame, stamp: Stamp) {
    let w = frame.width;
    let per_row = w / CELL;
    assert!(per_row > 0 && stamp_rows(w) * CELL <= frame.height, "frame too small for the stamp");
    let y = frame.y_mut();
    for (i, bit) in stamp.bits().enumerate() {
        let (cx, cy) = (i % per_row, i / per_row);
        let v = if bit { 235 } else { 16 };
        for row in cy * CELL..(cy + 1) * CELL {
            y[row * w + cx * CELL..row * w + (cx + 1) * CELL].fill(v);
        }
    }
}

/// Reads a stamp back, by the mean of each cell's inner part (the edges
/// suffer most from coding). `None` if a cell is too grey to tell.
pub fn read_stamp(frame: &I420Frame) -> Option<Stamp> {
    let w = frame.width;
    let per_row = w / CELL;
    if per_row == 0 || stamp_rows(w) * CELL > frame.height {
        return None;
    }
    let y = frame.y();
    let (mut frame_no, mut us) = (0u32, 0u64);
    for i in 0..BITS {
        let (cx, cy) = (i % per_row, i / per_row);
        let mut sum = 0u32;
        for row in cy * CELL + 4..(cy + 1) * CELL - 4 {
            for col in cx * CELL + 4..(cx + 1) * CELL - 4 {
                sum += y[row * w + col] as u32;
            }
        }
        let mean = sum / ((CELL - 8) * (CELL - 8)) as u32;
        let bit = match mean {
            0..=90 => false,
            161..=255 => true,
            _ => return None,
        };
        if i < 32 {
            frame_no = frame_no << 1 | bit as u32;
        } else {
            us = us << 1 | bit as u64;
        }
    }
    Some(Stamp { frame: frame_no, captured_us: us })
}

/// The test pattern: colour bars, a box moving across them, and the stamp.
///
/// The bars never change, so they are drawn once; each frame copies them
/// and paints only the box and the stamp (drawing all 921,600 luma pixels
/// per 720p frame cost ~0.12 core at 30 fps; a copy costs a fraction).
#[derive(Debug)]
pub struct TestPattern {
    width: usize,
    height: usize,
    next: u32,
    background: I420Frame,
}

impl TestPattern {
    pub fn new(width: usize, height: usize) -> Self {
        TestPattern { width, height, next: 0, background: Self::bars(width, height) }
    }

    /// Frames made so far.
    pub fn count(&self) -> u32 {
        self.next
    }

    /// The next frame, stamped with its number and the time now.
    pub fn next_frame(&mut self) -> (I420Frame, Stamp) {
        let mut f = self.background.clone();
        self.paint_box(&mut f, self.next);
        let stamp = Stamp::now(self.next);
        write_stamp(&mut f, stamp);
        self.next = self.next.wrapping_add(1);
        (f, stamp)
    }

    /// A luma ramp under seven chroma bars; the stamp rows stay black.
    fn bars(w: usize, h: usize) -> I420Frame {
        let mut f = I420Frame::black(w, h);
        let top = stamp_rows(w) * CELL;
        let y = f.y_mut();
        let ramp: Vec<u8> = (0..w).map(|col| (40 + col * 160 / w) as u8).collect();
        for row in top..h {
            y[row * w..(row + 1) * w].copy_from_slice(&ramp);
        }
        let (u, v) = f.uv_mut();
        let cw = w / 2;
        for (i, (u, v)) in u.iter_mut().zip(v.iter_mut()).enumerate() {
            let bar = (i % cw) * 7 / cw;
            *u = [128, 60, 200, 90, 170, 40, 220][bar];
            *v = [128, 200, 60, 170, 90, 220, 40][bar];
        }
        f
    }

    fn paint_box(&self, f: &mut I420Frame, n: u32) {
        let (w, h) = (self.width, self.height);
        let top = stamp_rows(w) * CELL;
        let side = (h / 6).max(8).min(w);
        let bx = (n as usize * 8) % (w - side).max(1);
        let by = top + (n as usize * 3) % (h.saturating_sub(top + side)).max(1);
        let y = f.y_mut();
        for row in by..(by + side).min(h) {
            y[row * w + bx..row * w + (bx + side).min(w)].fill(235);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_reads_back_exactly() {
        let mut p = TestPattern::new(1280, 720);
        for _ in 0..3 {
            let (f, s) = p.next_frame();
            assert_eq!(read_stamp(&f), Some(s));
        }
        assert_eq!(p.count(), 3);
    }

    #[test]
    fn frames_differ_as_the_box_moves() {
        let mut p = TestPattern::new(320, 240);
        let (a, _) = p.next_frame();
        let (b, _) = p.next_frame();
        let top = stamp_rows(320) * CELL * 320;
        assert_ne!(a.y()[top..], b.y()[top..]);
    }

    #[test]
    fn the_box_moves_over_unchanging_bars() {
        let mut p = TestPattern::new(320, 240);
        let frames: Vec<I420Frame> = (0..3).map(|_| p.next_frame().0).collect();
        // Chroma (the bars) is the same in every frame; luma differs only
        // where the box was or is.
        let luma = 320 * 240;
        assert_eq!(frames[0].data[luma..], frames[2].data[luma..]);
        let changed = frames[0].y().iter().zip(frames[1].y()).skip(stamp_rows(320) * CELL * 320).filter(|(a, b)| a != b).count();
        let side = 240 / 6;
        assert!(changed > 0 && changed <= 2 * side * side, "{changed} pixels changed");
    }

    #[test]
    fn a_grey_frame_has_no_stamp() {
        let mut f = I420Frame::black(320, 240);
        f.y_mut().fill(128);
        assert_eq!(read_stamp(&f), None);
    }
}
