//! Raw video frames.

/// An I420 (YUV 4:2:0 planar) frame: full-size luma, quarter-size chroma,
/// tightly packed (stride = width).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct I420Frame {
    pub width: usize,
    pub height: usize,
    /// Y, then U, then V.
    pub data: Vec<u8>,
}

impl I420Frame {
    /// A black frame. Width and height must be even.
    pub fn black(width: usize, height: usize) -> Self {
        assert!(width.is_multiple_of(2) && height.is_multiple_of(2), "I420 needs even dimensions");
        let luma = width * height;
        let mut data = vec![16u8; luma + luma / 2];
        data[luma..].fill(128);
        I420Frame { width, height, data }
    }

    pub fn y(&self) -> &[u8] {
        &self.data[..self.width * self.height]
    }

    pub fn y_mut(&mut self) -> &mut [u8] {
        let n = self.width * self.height;
        &mut self.data[..n]
    }

    pub fn uv_mut(&mut self) -> (&mut [u8], &mut [u8]) {
        let luma = self.width * self.height;
        let (u, v) = self.data[luma..].split_at_mut(luma / 4);
        (u, v)
    }
}
