//! What a convolution op writes: each of its outputs, a range of channels as floats, uint8,
//! or the next convolution's packed image.

use tract_onnx::prelude::DatumType;

use super::pack::Layout;
use super::shape::ConvShape;

/// One output of [`super::conv::QConv::run_to_tensors`]: channels `first..first + channels`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OutSpec {
    /// A multiple of [`super::OC_BLOCK`].
    pub first: usize,
    pub channels: usize,
    pub kind: OutKind,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum OutKind {
    F32,
    /// Quantized with (scale, zero point), `[1, n, OH, OW]`.
    U8((f32, u8)),
    /// Quantized, as the padded channels-last image of the next convs.
    Packed((f32, u8), Layout),
}

impl OutSpec {
    /// The datum type and shape of its tensor.
    pub fn tensor_shape(&self, s: &ConvShape) -> (DatumType, Vec<usize>) {
        let shape = vec![1, self.channels, s.out_h(), s.out_w()];
        match self.kind {
            OutKind::F32 => (DatumType::F32, shape),
            OutKind::U8(_) => (DatumType::U8, shape),
            OutKind::Packed(_, l) => (DatumType::U8, vec![l.len()]),
        }
    }
}
