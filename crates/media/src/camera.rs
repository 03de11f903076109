//! The camera through nokhwa (v4l2 on Linux): enumeration, and a capture
//! thread that opens a device near the requested size and rate (1280×720 at
//! 30 by default, or whatever the device offers closest), converts each
//! frame to I420 and leaves the newest in a one-frame mailbox. Unplugging
//! is an event, not a panic. With no camera, enumeration returns an empty
//! list and opening says so.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};

use nokhwa::pixel_format::RgbFormat;
use nokhwa::utils::{ApiBackend, CameraFormat, CameraIndex, FrameFormat, RequestedFormat, RequestedFormatType, Resolution};

use crate::devices::DeviceError;
use crate::frame::I420Frame;
use crate::mailbox::Latest;

/// A camera as a picker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CameraDevice {
    pub index: u32,
    pub name: String,
}

/// The cameras the system offers; none is not an error.
pub fn cameras() -> Result<Vec<CameraDevice>, DeviceError> {
    let list = nokhwa::query(ApiBackend::Auto).map_err(|e| DeviceError::Backend(e.to_string()))?;
    Ok(list
        .iter()
        .filter_map(|c| match c.index() {
            CameraIndex::Index(i) => Some(CameraDevice { index: *i, name: c.human_name() }),
            CameraIndex::String(_) => None,
        })
        .collect())
}

/// What the camera reports besides frames.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CameraEvent {
    /// Capture runs at this size and rate (what the device could do).
    Started { width: u32, height: u32, fps: u32 },
    /// The device failed or was unplugged; capture has stopped.
    Lost(String),
}

/// A running capture; dropping it stops the thread.
pub struct CameraCapture {
    pub frames: Arc<Latest<I420Frame>>,
    pub events: mpsc::Receiver<CameraEvent>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl CameraCapture {
    /// Opens camera `index` as close to `width`×`height` at `fps` as it goes.
    pub fn open(index: u32, width: u32, height: u32, fps: u32) -> Result<CameraCapture, DeviceError> {
        if !cameras()?.iter().any(|c| c.index == index) {
            return Err(DeviceError::NotFound(format!("camera {index}")));
        }
        let frames: Arc<Latest<I420Frame>> = Arc::default();
        let (ev_tx, events) = mpsc::channel();
        let (ready_tx, ready_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let (out, halt) = (Arc::clone(&frames), Arc::clone(&stop));
        // The camera handle stays on this thread (it is not Send everywhere).
        let thread = std::thread::spawn(move || {
            let want = CameraFormat::new(Resolution::new(width, height), FrameFormat::MJPEG, fps);
            let format = RequestedFormat::new::<RgbFormat>(RequestedFormatType::Closest(want));
            let mut cam = match nokhwa::Camera::new(CameraIndex::Index(index), format).and_then(|mut c| c.open_stream().map(|_| c)) {
                Ok(c) => c,
                Err(e) => {
                    let _ = ready_tx.send(Err(DeviceError::Backend(e.to_string())));
                    return;
                }
            };
            let f = cam.camera_format();
            let _ = ready_tx.send(Ok(()));
            let _ = ev_tx.send(CameraEvent::Started { width: f.width(), height: f.height(), fps: f.frame_rate() });
            while !halt.load(Ordering::Relaxed) {
                match cam.frame().and_then(|b| b.decode_image::<RgbFormat>()) {
                    Ok(img) => {
                        let (w, h) = (img.width() as usize, img.height() as usize);
                        out.put(rgb_to_i420(img.as_raw(), w & !1, h & !1, w));
                    }
                    Err(e) => {
                        let _ = ev_tx.send(CameraEvent::Lost(e.to_string()));
                        break;
                    }
                }
            }
            out.close();
        });
        ready_rx
            .recv()
            .map_err(|_| DeviceError::Backend("camera thread died".into()))??;
        Ok(CameraCapture { frames, events, stop, thread: Some(thread) })
    }
}

impl Drop for CameraCapture {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// RGB (8 bits, packed, `stride` pixels a row) to I420 with BT.601
/// limited-range coefficients, on an even `width`×`height`.
pub fn rgb_to_i420(rgb: &[u8], width: usize, height: usize, stride: usize) -> I420Frame {
    let mut f = I420Frame::black(width, height);
    let px = |x: usize, y: usize| {
        let i = (y * stride + x) * 3;
        (rgb[i] as i32, rgb[i + 1] as i32, rgb[i + 2] as i32)
    };
    let y_plane = f.y_mut();
    for y in 0..height {
        for x in 0..width {
            let (r, g, b) = px(x, y);
            y_plane[y * width + x] = (((66 * r + 129 * g + 25 * b + 128) >> 8) + 16).clamp(0, 255) as u8;
        }
    }
    let (u_plane, v_plane) = f.uv_mut();
    for y in 0..height / 2 {
        for x in 0..width / 2 {
            let (mut r, mut g, mut b) = (0, 0, 0);
            for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                let p = px(2 * x + dx, 2 * y + dy);
                r += p.0;
                g += p.1;
                b += p.2;
            }
            let (r, g, b) = (r / 4, g / 4, b / 4);
            u_plane[y * width / 2 + x] = (((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
            v_plane[y * width / 2 + x] = (((112 * r - 94 * g - 18 * b + 128) >> 8) + 128).clamp(0, 255) as u8;
        }
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_colours_convert() {
        for ((r, g, b), (y, u, v)) in [((255, 255, 255), (235, 128, 128)), ((0, 0, 0), (16, 128, 128)), ((255, 0, 0), (82, 90, 240))] {
            let rgb: Vec<u8> = [r, g, b].repeat(4 * 4);
            let f = rgb_to_i420(&rgb, 4, 4, 4);
            assert_eq!(f.y()[0], y, "Y of {r},{g},{b}");
            let luma = 16;
            assert_eq!((f.data[luma], f.data[luma + 4]), (u, v), "UV of {r},{g},{b}");
        }
    }
}
