//! VP8 through libvpx, set up for real time: no lag frames, CBR at the
//! bitrate the congestion controller asks for, error resilient, one thread,
//! high speed; keyframes on request and at most every few seconds.
//!
//! A libvpx context must stay on the thread that made it (it is neither
//! `Send` nor `Sync`); [`EncoderThread`] gives the encoder a thread of its
//! own, fed through a one-frame mailbox that always holds the newest frame.

use std::mem::MaybeUninit;
use std::os::raw::{c_int, c_ulong};
use std::sync::Arc;

use vpx_sys::*;

use crate::frame::I420Frame;
use crate::mailbox::Latest;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("libvpx {op} failed: {code:?}")]
    Vpx { op: &'static str, code: String },
    #[error("frame is {got_w}x{got_h}, the encoder was set up for {want_w}x{want_h}")]
    Size { got_w: usize, got_h: usize, want_w: usize, want_h: usize },
}

fn check(op: &'static str, rc: vpx_codec_err_t) -> Result<(), CodecError> {
    if rc == vpx_codec_err_t::VPX_CODEC_OK {
        Ok(())
    } else {
        Err(CodecError::Vpx { op, code: format!("{rc:?}") })
    }
}

/// Encoder settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EncoderConfig {
    pub width: usize,
    pub height: usize,
    pub fps: u32,
    pub bitrate_kbps: u32,
    /// A keyframe at least this often, in frames (besides on request).
    pub keyframe_interval: u32,
    /// libvpx speed: -16 (fastest) … 16; negative values are "realtime" speeds.
    pub cpu_used: i32,
}

impl EncoderConfig {
    /// 1280×720 at 30 fps, 1.5 Mbit/s, a keyframe every 3 s at most.
    pub fn hd() -> Self {
        EncoderConfig { width: 1280, height: 720, fps: 30, bitrate_kbps: 1500, keyframe_interval: 90, cpu_used: -8 }
    }
}

/// One encoded frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedFrame {
    pub data: Vec<u8>,
    pub keyframe: bool,
    /// Presentation time in frames.
    pub pts: i64,
}

pub struct Vp8Encoder {
    ctx: Box<vpx_codec_ctx_t>,
    cfg: Box<vpx_codec_enc_cfg_t>,
    config: EncoderConfig,
    pts: i64,
}

impl Vp8Encoder {
    pub fn new(config: EncoderConfig) -> Result<Self, CodecError> {
        // SAFETY: libvpx fills the zeroed config and context; both live in
        // boxes so their addresses stay put for libvpx's internal pointers.
        unsafe {
            let iface = vpx_codec_vp8_cx();
            let mut cfg: Box<vpx_codec_enc_cfg_t> = Box::new(MaybeUninit::zeroed().assume_init());
            check("enc_config_default", vpx_codec_enc_config_default(iface, &mut *cfg, 0))?;
            cfg.g_w = config.width as u32;
            cfg.g_h = config.height as u32;
            cfg.g_timebase.num = 1;
            cfg.g_timebase.den = config.fps as c_int;
            cfg.rc_target_bitrate = config.bitrate_kbps;
            cfg.rc_end_usage = vpx_rc_mode::VPX_CBR;
            // Real time: every frame out as soon as it is in.
            cfg.g_lag_in_frames = 0;
            cfg.g_threads = 1;
            cfg.g_error_resilient = VPX_ERROR_RESILIENT_DEFAULT;
            // Never skip frames to hold the rate: the pacer does that.
            cfg.rc_dropframe_thresh = 0;
            cfg.kf_mode = vpx_kf_mode::VPX_KF_AUTO;
            cfg.kf_min_dist = 0;
            cfg.kf_max_dist = config.keyframe_interval;
            cfg.rc_min_quantizer = 4;
            cfg.rc_max_quantizer = 56;
            cfg.rc_undershoot_pct = 100;
            cfg.rc_overshoot_pct = 15;
            cfg.rc_buf_initial_sz = 500;
            cfg.rc_buf_optimal_sz = 600;
            cfg.rc_buf_sz = 1000;
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            check(
                "enc_init",
                vpx_codec_enc_init_ver(&mut *ctx, iface, &*cfg, 0, VPX_ENCODER_ABI_VERSION as c_int),
            )?;
            let mut enc = Vp8Encoder { ctx, cfg, config, pts: 0 };
            enc.control(vp8e_enc_control_id::VP8E_SET_CPUUSED, config.cpu_used)?;
            // Skip unchanged blocks: cheap on still scenes.
            enc.control(vp8e_enc_control_id::VP8E_SET_STATIC_THRESHOLD, 1)?;
            Ok(enc)
        }
    }

    fn control(&mut self, id: vp8e_enc_control_id, value: c_int) -> Result<(), CodecError> {
        // SAFETY: a known control id with an int argument, on a live context.
        check("control", unsafe { vpx_codec_control_(&mut *self.ctx, id as c_int, value) })
    }

    pub fn config(&self) -> EncoderConfig {
        self.config
    }

    /// Changes the target bitrate on the fly (what the congestion
    /// controller asks for).
    pub fn set_bitrate(&mut self, kbps: u32) -> Result<(), CodecError> {
        self.cfg.rc_target_bitrate = kbps.max(50);
        self.config.bitrate_kbps = self.cfg.rc_target_bitrate;
        // SAFETY: the live context and its own (boxed) config.
        check("enc_config_set", unsafe { vpx_codec_enc_config_set(&mut *self.ctx, &*self.cfg) })
    }

    /// Encodes one frame; `keyframe` forces one (a PLI from the peer).
    pub fn encode(&mut self, frame: &I420Frame, keyframe: bool) -> Result<Vec<EncodedFrame>, CodecError> {
        let c = self.config;
        if frame.width != c.width || frame.height != c.height {
            return Err(CodecError::Size { got_w: frame.width, got_h: frame.height, want_w: c.width, want_h: c.height });
        }
        let mut out = Vec::with_capacity(1);
        // SAFETY: the image wraps `frame.data`, which outlives the encode
        // call; libvpx copies what it keeps.
        unsafe {
            let mut img: vpx_image_t = MaybeUninit::zeroed().assume_init();
            let data = frame.data.as_ptr() as *mut u8;
            if vpx_img_wrap(&mut img, vpx_img_fmt::VPX_IMG_FMT_I420, c.width as u32, c.height as u32, 1, data).is_null() {
                return Err(CodecError::Vpx { op: "img_wrap", code: "null".into() });
            }
            let flags = if keyframe { VPX_EFLAG_FORCE_KF as i64 } else { 0 };
            check("encode", vpx_codec_encode(&mut *self.ctx, &img, self.pts, 1, flags, VPX_DL_REALTIME as c_ulong))?;
            let mut iter = std::ptr::null();
            loop {
                let pkt = vpx_codec_get_cx_data(&mut *self.ctx, &mut iter);
                if pkt.is_null() {
                    break;
                }
                if (*pkt).kind == vpx_codec_cx_pkt_kind::VPX_CODEC_CX_FRAME_PKT {
                    let f = &(*pkt).data.frame;
                    out.push(EncodedFrame {
                        data: std::slice::from_raw_parts(f.buf as *const u8, f.sz as usize).to_vec(),
                        keyframe: f.flags & VPX_FRAME_IS_KEY != 0,
                        pts: f.pts,
                    });
                }
            }
        }
        self.pts += 1;
        Ok(out)
    }
}

impl Drop for Vp8Encoder {
    fn drop(&mut self) {
        // SAFETY: destroyed once, on the owning thread.
        unsafe {
            vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

pub struct Vp8Decoder {
    ctx: Box<vpx_codec_ctx_t>,
}

impl Vp8Decoder {
    pub fn new() -> Result<Self, CodecError> {
        // SAFETY: as for the encoder.
        unsafe {
            let mut ctx: Box<vpx_codec_ctx_t> = Box::new(MaybeUninit::zeroed().assume_init());
            let cfg = vpx_codec_dec_cfg_t { threads: 1, w: 0, h: 0 };
            check(
                "dec_init",
                vpx_codec_dec_init_ver(&mut *ctx, vpx_codec_vp8_dx(), &cfg, 0, VPX_DECODER_ABI_VERSION as c_int),
            )?;
            Ok(Vp8Decoder { ctx })
        }
    }

    /// Decodes one frame. A corrupt or undecodable frame is an error, not a
    /// panic; the caller asks the sender for a keyframe.
    pub fn decode(&mut self, data: &[u8]) -> Result<Option<I420Frame>, CodecError> {
        // SAFETY: libvpx reads `data` during the call; the image it returns
        // is valid until the next decode, and is copied out before that.
        unsafe {
            check(
                "decode",
                vpx_codec_decode(&mut *self.ctx, data.as_ptr(), data.len() as u32, std::ptr::null_mut(), 0),
            )?;
            let mut iter = std::ptr::null();
            let img = vpx_codec_get_frame(&mut *self.ctx, &mut iter);
            if img.is_null() {
                return Ok(None);
            }
            let img = &*img;
            let (w, h) = (img.d_w as usize, img.d_h as usize);
            let mut frame = I420Frame::black(w & !1, h & !1);
            let (fw, fh) = (frame.width, frame.height);
            let planes = [(0usize, fw, fh), (1, fw / 2, fh / 2), (2, fw / 2, fh / 2)];
            let mut offset = 0;
            for (p, pw, ph) in planes {
                let stride = img.stride[p] as usize;
                for row in 0..ph {
                    let src = std::slice::from_raw_parts(img.planes[p].add(row * stride), pw);
                    frame.data[offset + row * pw..offset + (row + 1) * pw].copy_from_slice(src);
                }
                offset += pw * ph;
            }
            Ok(Some(frame))
        }
    }
}

impl Drop for Vp8Decoder {
    fn drop(&mut self) {
        // SAFETY: destroyed once, on the owning thread.
        unsafe {
            vpx_codec_destroy(&mut *self.ctx);
        }
    }
}

/// What the encoder thread is asked to do with a frame.
pub struct EncodeJob {
    pub frame: I420Frame,
    pub keyframe: bool,
    pub bitrate_kbps: Option<u32>,
}

/// The encoder on a thread of its own. Frames go in through a [`Latest`]
/// mailbox; encoded frames come out through `on_frame`.
pub struct EncoderThread {
    input: Arc<Latest<EncodeJob>>,
    handle: Option<std::thread::JoinHandle<Result<(), CodecError>>>,
}

impl EncoderThread {
    pub fn spawn(
        config: EncoderConfig,
        mut on_frame: impl FnMut(EncodedFrame) + Send + 'static,
    ) -> Result<Self, CodecError> {
        let input: Arc<Latest<EncodeJob>> = Arc::default();
        let rx = Arc::clone(&input);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let handle = std::thread::Builder::new()
            .name("vp8-encoder".into())
            .spawn(move || {
                let mut enc = match Vp8Encoder::new(config) {
                    Ok(e) => {
                        let _ = ready_tx.send(Ok(()));
                        e
                    }
                    Err(e) => {
                        let _ = ready_tx.send(Err(e.clone()));
                        return Err(e);
                    }
                };
                while let Some(job) = rx.take() {
                    // A new source (another camera, the test pattern) may
                    // bring another size: start a new stream at that size,
                    // from a keyframe. The track and the call stay as they are.
                    let (w, h) = (job.frame.width, job.frame.height);
                    let mut keyframe = job.keyframe;
                    if (w, h) != (enc.config().width, enc.config().height) {
                        enc = Vp8Encoder::new(EncoderConfig { width: w, height: h, ..enc.config() })?;
                        keyframe = true;
                    }
                    if let Some(kbps) = job.bitrate_kbps {
                        if kbps != enc.config().bitrate_kbps {
                            enc.set_bitrate(kbps)?;
                        }
                    }
                    for f in enc.encode(&job.frame, keyframe)? {
                        on_frame(f);
                    }
                }
                Ok(())
            })
            .map_err(|e| CodecError::Vpx { op: "spawn", code: e.to_string() })?;
        ready_rx.recv().map_err(|_| CodecError::Vpx { op: "spawn", code: "encoder thread died".into() })??;
        Ok(EncoderThread { input, handle: Some(handle) })
    }

    /// Hands a frame over; never blocks. Returns whether an older frame
    /// that was still waiting got dropped.
    pub fn submit(&self, job: EncodeJob) -> bool {
        self.input.put(job)
    }

    pub fn dropped(&self) -> u64 {
        self.input.dropped()
    }

    /// Stops the thread after the frame in hand; reports its last error.
    pub fn finish(mut self) -> Result<(), CodecError> {
        self.input.close();
        match self.handle.take().map(|h| h.join()) {
            Some(Ok(r)) => r,
            Some(Err(_)) => Err(CodecError::Vpx { op: "encoder thread", code: "panicked".into() }),
            None => Ok(()),
        }
    }
}

impl Drop for EncoderThread {
    fn drop(&mut self) {
        self.input.close();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}
