//! ONNX QuantizeLinear to uint8, `clamp(round_half_even(x / scale) + zero_point, 0, 255)`, in
//! place of tract's, which multiplies by `1 / scale` (a different rounding near .5, against
//! the spec and ONNX Runtime) and runs several times slower on these tensors.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;

use crate::kernels::pack::{Layout, Part};

#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeU8 {
    pub scale: f32,
    pub zero_point: u8,
}

impl Eq for QuantizeU8 {}

impl Op for QuantizeU8 {
    fn name(&self) -> StaticName {
        "QdetQuantizeU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let x = inputs[0].try_as_plain_ram()?.as_slice::<f32>()?;
        // Written in place: building the tensor from a Vec would copy it.
        let mut out = Tensor::zero::<u8>(inputs[0].shape())?;
        crate::kernels::quantize::quantize_parallel(
            x,
            self.scale,
            self.zero_point,
            out.try_as_plain_ram_mut()?.as_slice_mut::<u8>()?,
        );
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantizeU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        Ok(tvec!(u8::fact(inputs[0].shape.clone())))
    }

    as_op!();
}

/// `Concat(QuantizeLinear(x_0), QuantizeLinear(x_1), ...)` along the channels of
/// `[1, C, H, W]` tensors, input `k` with `params[k]` (all the same for a
/// `QuantizeLinear(Concat(..))`): each input quantized straight into its channels of the
/// uint8 output, so no float concatenation is written (a batch-1 channel concat is
/// contiguous segments). A uint8 input is one a conv already quantized with its parameters:
/// it is copied.
#[derive(Debug, Clone, PartialEq)]
pub struct QuantizeConcatU8 {
    /// (scale, zero point) of each input.
    pub params: Vec<(f32, u8)>,
    /// Written as its reading conv's padded channels-last image instead of `[1, C, H, W]`.
    pub packed: Option<PackedConcat>,
}

/// The image a [`QuantizeConcatU8`] writes for its conv ([`Layout::concat`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedConcat {
    pub layout: Layout,
    /// The reading conv's zero point, for the padding.
    pub zero_point: u8,
    /// Which inputs arrive packed (a conv's channels-last output), and their channels.
    pub inputs: Vec<Option<usize>>,
}

impl QuantizeConcatU8 {
    /// One grid for `n` inputs.
    pub fn uniform(scale: f32, zero_point: u8, n: usize) -> QuantizeConcatU8 {
        QuantizeConcatU8::new(vec![(scale, zero_point); n])
    }

    pub fn new(params: Vec<(f32, u8)>) -> QuantizeConcatU8 {
        QuantizeConcatU8 { params, packed: None }
    }

    /// [`PackedConcat`]: each input, quantized if it is float, into its channels of the image.
    fn eval_packed(&self, p: &PackedConcat, inputs: &[TValue]) -> TractResult<Tensor> {
        ensure!(
            inputs.len() == p.inputs.len(),
            "QdetQuantizeConcatU8: {} inputs, {} expected",
            inputs.len(),
            p.inputs.len()
        );
        let mut quantized = Vec::new();
        for (x, &(scale, zp)) in inputs.iter().zip(&self.params) {
            if x.datum_type() == DatumType::F32 {
                let src = x.try_as_plain_ram()?.as_slice::<f32>()?;
                let mut q = vec![0u8; src.len()];
                crate::kernels::quantize::quantize_parallel(src, scale, zp, &mut q);
                quantized.push(q);
            }
        }
        let mut floats = quantized.iter();
        let mut parts = Vec::new();
        for (x, packed) in inputs.iter().zip(&p.inputs) {
            let bytes = match x.datum_type() {
                DatumType::F32 => floats.next().context("a quantized input")?.as_slice(),
                _ => x.try_as_plain_ram()?.as_slice::<u8>()?,
            };
            parts.push(match *packed {
                Some(c) => Part::Packed(bytes, c),
                None => Part::Nchw(bytes, *x.shape().get(1).context("QdetQuantizeConcatU8: input without channels")?),
            });
        }
        crate::kernels::pack::concat_image(&p.layout, p.zero_point, &parts)
    }
}

impl Eq for QuantizeConcatU8 {}

/// A (scale, zero point) pair as something `Eq` and `Hash`.
pub fn grid_bits((scale, zero_point): (f32, u8)) -> (u32, u8) {
    (scale.to_bits(), zero_point)
}

impl Op for QuantizeConcatU8 {
    fn name(&self) -> StaticName {
        "QdetQuantizeConcatU8".into()
    }

    op_as_typed_op!();
}

impl EvalOp for QuantizeConcatU8 {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        if let Some(p) = &self.packed {
            return Ok(tvec!(self.eval_packed(p, &inputs)?.into_tvalue()));
        }
        let first = inputs.first().context("QdetQuantizeConcatU8 without inputs")?;
        let mut shape = first.shape().to_vec();
        ensure!(shape.len() == 4 && shape[0] == 1, "QdetQuantizeConcatU8: input of shape {:?}", shape);
        shape[1] = inputs.iter().map(|x| x.shape().get(1).copied().unwrap_or(0)).sum();
        let mut out = Tensor::zero::<u8>(&shape)?;
        let mut plain = out.try_as_plain_ram_mut()?;
        let mut rest = plain.as_slice_mut::<u8>()?;
        // All inputs' pieces in one parallel section: one per input was a hand-over each.
        enum Piece<'a> {
            Copy(&'a [u8], &'a mut [u8]),
            Quantize(&'a [f32], &'a mut [u8], (f32, u8)),
        }
        const CHUNK: usize = 1 << 15;
        let mut pieces = Vec::new();
        ensure!(
            inputs.len() == self.params.len(),
            "QdetQuantizeConcatU8: {} inputs, {} grids",
            inputs.len(),
            self.params.len()
        );
        for (x, &(scale, zp)) in inputs.iter().zip(&self.params) {
            ensure!(x.shape()[2..] == shape[2..], "QdetQuantizeConcatU8: inputs {:?} and {:?}", x.shape(), shape);
            let (mine, next) = std::mem::take(&mut rest).split_at_mut(x.len());
            if x.datum_type() == DatumType::U8 {
                let src = x.try_as_plain_ram()?.as_slice::<u8>()?;
                pieces.extend(src.chunks(CHUNK).zip(mine.chunks_mut(CHUNK)).map(|(s, d)| Piece::Copy(s, d)));
            } else {
                let src = x.try_as_plain_ram()?.as_slice::<f32>()?;
                pieces.extend(
                    src.chunks(CHUNK).zip(mine.chunks_mut(CHUNK)).map(|(s, d)| Piece::Quantize(s, d, (scale, zp))),
                );
            }
            rest = next;
        }
        crate::kernels::threads::for_each_item(pieces, |p| match p {
            Piece::Copy(src, dst) => dst.copy_from_slice(src),
            Piece::Quantize(src, dst, (scale, zp)) => crate::kernels::quantize::quantize(src, scale, zp, dst),
        });
        Ok(tvec!(out.into_tvalue()))
    }
}

impl TypedOp for QuantizeConcatU8 {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        if let Some(p) = &self.packed {
            return Ok(tvec!(u8::fact([p.layout.len()])));
        }
        let mut shape: TVec<TDim> = inputs[0].shape.iter().cloned().collect();
        shape[1] = inputs.iter().map(|f| f.shape[1].clone()).sum();
        Ok(tvec!(u8::fact(shape)))
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use tract_onnx::prelude::*;
    use tract_onnx::tract_core::internal::*;

    use super::QuantizeConcatU8;
    use crate::kernels::quantize::quantize;

    /// The fused op against the two steps it replaces: concatenate the floats along the
    /// channels, then quantize.
    #[test]
    fn quantize_concat_equals_concat_then_quantize() -> TractResult<()> {
        let (h, w) = (3, 5);
        let a: Vec<f32> = (0..2 * h * w).map(|i| i as f32 * 0.37 - 4.0).collect();
        let b: Vec<f32> = (0..3 * h * w).map(|i| 6.0 - i as f32 * 0.29).collect();
        let op = QuantizeConcatU8::uniform(0.05, 100, 2);
        let inputs = tvec!(
            Tensor::from_shape(&[1, 2, h, w], &a)?.into_tvalue(),
            Tensor::from_shape(&[1, 3, h, w], &b)?.into_tvalue()
        );
        let out = EvalOp::eval(&op, &EvalContext::out_of_plan(), inputs)?.remove(0);
        assert_eq!(out.shape(), &[1, 5, h, w]);
        let mut want = vec![0u8; 5 * h * w];
        quantize(&[a.clone(), b.clone()].concat(), 0.05, 100, &mut want);
        assert_eq!(out.try_as_plain_ram()?.as_slice::<u8>()?, &want[..]);
        assert!(want.contains(&0) && want.iter().any(|&v| v > 200));
        // An input a conv already quantized with the op's parameters is copied.
        let mut b_q = vec![0u8; b.len()];
        quantize(&b, 0.05, 100, &mut b_q);
        let inputs = tvec!(
            Tensor::from_shape(&[1, 2, h, w], &a)?.into_tvalue(),
            Tensor::from_shape(&[1, 3, h, w], &b_q)?.into_tvalue()
        );
        let mixed = EvalOp::eval(&op, &EvalContext::out_of_plan(), inputs)?.remove(0);
        assert_eq!(mixed.try_as_plain_ram()?.as_slice::<u8>()?, &want[..]);
        // Each input on its own grid: the concatenation of each quantized alone.
        let op = QuantizeConcatU8::new(vec![(0.05, 100), (0.02, 7)]);
        let inputs = tvec!(
            Tensor::from_shape(&[1, 2, h, w], &a)?.into_tvalue(),
            Tensor::from_shape(&[1, 3, h, w], &b)?.into_tvalue()
        );
        let parts = EvalOp::eval(&op, &EvalContext::out_of_plan(), inputs)?.remove(0);
        let (mut a_q, mut b_q) = (vec![0u8; a.len()], vec![0u8; b.len()]);
        quantize(&a, 0.05, 100, &mut a_q);
        quantize(&b, 0.02, 7, &mut b_q);
        assert_eq!(parts.try_as_plain_ram()?.as_slice::<u8>()?, &[a_q, b_q].concat()[..]);
        Ok(())
    }

    /// Against the definition, with ties and the clamps.
    #[test]
    fn rounds_half_to_even_and_saturates() {
        let scale = 0.5;
        let x = [0.25f32, 0.75, 1.25, -0.25, -0.75, 127.0, 1e9, -1e9, f32::NAN, 3.3];
        let mut out = [0u8; 10];
        quantize(&x, scale, 3, &mut out);
        let want: Vec<u8> = x
            .iter()
            .map(|&v| if v.is_nan() { 0 } else { ((v / scale).round_ties_even() + 3.0).clamp(0.0, 255.0) as u8 })
            .collect();
        assert_eq!(out.to_vec(), want);
        assert_eq!(out[..5], [3, 5, 5, 3, 1]);
    }
}
