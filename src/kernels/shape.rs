//! The shape of a convolution: what the weight packing and the conv driver both need.

/// Shape of a convolution on one image (NCHW, batch 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConvShape {
    pub in_c: usize,
    pub in_h: usize,
    pub in_w: usize,
    pub out_c: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: (usize, usize),
    /// Top, left, bottom, right.
    pub pad: [usize; 4],
    pub dilation: (usize, usize),
}

impl ConvShape {
    pub fn out_h(&self) -> usize {
        (self.in_h + self.pad[0] + self.pad[2] - self.dilation.0 * (self.kh - 1) - 1) / self.stride.0 + 1
    }

    pub fn out_w(&self) -> usize {
        (self.in_w + self.pad[1] + self.pad[3] - self.dilation.1 * (self.kw - 1) - 1) / self.stride.1 + 1
    }

    /// Reduction length: `in_c * kh * kw`.
    pub fn k(&self) -> usize {
        self.in_c * self.kh * self.kw
    }

    /// Multiply-adds per image.
    pub fn macs(&self) -> u64 {
        (self.out_c * self.k() * self.out_h() * self.out_w()) as u64
    }
}
