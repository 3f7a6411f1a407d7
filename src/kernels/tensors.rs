//! Running a convolution into new tensors, one per [`OutSpec`], for the graph ops.

use tract_onnx::prelude::*;

use super::conv::{Epilogue, Input, Output, QConv, Target};
use super::outspec::{OutKind, OutSpec};
use super::OC_BLOCK;

impl QConv {
    /// Runs like [`QConv::run_targets`] into new tensors, one per spec: floats or uint8
    /// `[1, channels, oh, ow]`, or a packed image `[len]`. They are not zeroed first: the run
    /// writes every byte (zeroing them was 5% of an int8 inference, and serial).
    ///
    /// # Errors
    /// If a spec's tensor cannot be allocated.
    ///
    /// # Panics
    /// As [`QConv::run_targets`].
    pub fn run_to_tensors(
        &self,
        x: Input,
        zp: u8,
        e: Epilogue,
        residual: Option<&[f32]>,
        specs: &[OutSpec],
    ) -> TractResult<Vec<Tensor>> {
        let s = &self.shape;
        for o in specs {
            assert!(o.first % OC_BLOCK == 0 && o.first + o.channels <= s.out_c, "{o:?} of {} channels", s.out_c);
            if let OutKind::Packed(_, l) = o.kind {
                assert!(
                    l.in_c == o.channels && l.in_h == s.out_h() && l.in_w == s.out_w(),
                    "{l:?} is not {o:?} of {s:?}"
                );
            }
        }
        let mut tensors = Vec::with_capacity(specs.len());
        for o in specs {
            let (dt, shape) = o.tensor_shape(s);
            // SAFETY: u8 and f32 hold no pointers and have no invalid bit patterns, and
            // `run_targets` below writes every element before the tensor is returned: each
            // target's channels `first..first + channels` (whole blocks from a multiple of 16,
            // asserted) for every output row (the bands cover them all); for a packed image
            // also its padding rows, columns and the lanes past `in_c` (see `run_bands`).
            tensors.push(unsafe { Tensor::uninitialized_dt(dt, &shape)? });
        }
        let mut views = tensors.iter_mut().map(|t| t.try_as_plain_ram_mut()).collect::<TractResult<Vec<_>>>()?;
        let mut targets = Vec::with_capacity(views.len());
        for (v, o) in views.iter_mut().zip(specs) {
            let out = match o.kind {
                OutKind::F32 => Output::F32(v.as_slice_mut::<f32>()?),
                OutKind::U8(q) => Output::U8(v.as_slice_mut::<u8>()?, q),
                OutKind::Packed(q, l) => Output::Packed(v.as_slice_mut::<u8>()?, q, l),
            };
            targets.push(Target { first: o.first, out });
        }
        self.run_targets(x, zp, e, residual, targets);
        drop(views);
        Ok(tensors)
    }
}
