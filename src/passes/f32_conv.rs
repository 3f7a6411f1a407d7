//! Each float Conv (group 1, 2-D, constant weights, concrete input shape) on qdet's fp32
//! kernels: an [`FConvOp`] replaces tract's convolution, with a following SiLU fused into its
//! epilogue as [`super::int8_conv`] does. Runs after the int8 passes, so in a QDQ file it only
//! sees the convs left float. Without an fp32 SIMD kernel on this CPU (or with
//! `QDET_FKERNEL=tract`) tract keeps them.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::common::silu_mul;
use super::{Context, Pass, Report};
use crate::kernels::conv::ConvShape;
use crate::kernels::fconv::{FConv, FIsa};
use crate::ops::fconv::FConvOp;

/// The sub-count of convs with their SiLU fused.
pub const SILU: &str = "f32_conv.silu";

/// Counts the convs replaced and notes [`SILU`].
#[derive(Debug)]
pub struct F32Conv;

impl Pass for F32Conv {
    fn name(&self) -> &'static str {
        "f32_conv"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, report: &mut Report) -> TractResult<usize> {
        let Some(isa) = FIsa::best() else { return Ok(0) };
        let ids: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<Conv>()).map(|n| n.id).collect();
        let (mut replaced, mut silu) = (0, 0);
        for id in ids {
            let Some(conv) = float_conv(model, id, isa)? else { continue };
            let conv_out = OutletId::new(id, 0);
            let silu_mul = silu_mul(model, conv_out);
            let out_c = conv.shape.out_c;
            let op =
                FConvOp { conv: Arc::new(conv), silu: silu_mul.is_some(), residual: false, outputs: vec![(0, out_c)] };
            let node = model.node(id);
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, node.inputs[0])?;
            let out = p.wire_node(format!("{}.qdet", node.name), op, &[tap])?[0];
            p.shunt_outside(model, silu_mul.map_or(conv_out, |m| OutletId::new(m, 0)), out)?;
            p.apply(model)?;
            replaced += 1;
            silu += usize::from(silu_mul.is_some());
        }
        report.note(SILU, silu);
        Ok(replaced)
    }
}

/// Conv `id` on `isa`, if it is one the fp32 kernels run.
fn float_conv(model: &TypedModel, id: usize, isa: FIsa) -> TractResult<Option<FConv>> {
    let node = model.node(id);
    let c = node.op_as::<Conv>().context("a Conv")?;
    let p = &c.pool_spec;
    rule_if!(c.q_params.is_none() && c.group == 1 && c.kernel_fmt == KernelFormat::OIHW);
    rule_if!(p.data_format == DataFormat::NCHW && p.kernel_shape.len() == 2);
    let fact = model.outlet_fact(node.inputs[0])?;
    rule_if_some!(shape = fact.shape.as_concrete().map(|s| s.to_vec()));
    rule_if!(fact.datum_type == DatumType::F32 && shape.len() == 4 && shape[0] == 1);
    let (in_c, in_h, in_w) = (shape[1], shape[2], shape[3]);
    let konst = |i: usize| node.inputs.get(i).and_then(|&o| konst_through_casts(model, o));
    rule_if_some!(w = konst(1));
    rule_if!(w.rank() == 4);
    let out_c = w.shape()[0];
    rule_if!(w.shape()[1] == in_c && w.shape()[2..] == p.kernel_shape[..]);
    let bias = match konst(2) {
        Some(b) if b.len() == out_c => b.try_as_plain_ram()?.as_slice::<f32>()?.to_vec(),
        Some(b) if b.len() == 1 => vec![b.try_as_plain_ram()?.as_slice::<f32>()?[0]; out_c],
        None if node.inputs.len() == 2 => vec![0.0; out_c],
        _ => return Ok(None),
    };
    let dil = p.dilations.clone().unwrap_or_else(|| tvec![1, 1]);
    let strides = p.strides.clone().unwrap_or_else(|| tvec![1, 1]);
    let pads = p.padding.compute(&[in_h, in_w], &p.kernel_shape, &dil, &strides);
    let shape = ConvShape {
        in_c,
        in_h,
        in_w,
        out_c,
        kh: p.kernel_shape[0],
        kw: p.kernel_shape[1],
        stride: (strides[0], strides[1]),
        pad: [pads[0].pad_before, pads[1].pad_before, pads[0].pad_after, pads[1].pad_after],
        dilation: (dil[0], dil[1]),
    };
    rule_if!(shape.out_h() == pads[0].convoluted && shape.out_w() == pads[1].convoluted);
    let w = w.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
    Ok(Some(FConv::new(shape, &w, &bias, isa)))
}

/// The constant f32 value of `o`, through the Casts tract's ONNX loader puts on a Conv's bias.
fn konst_through_casts(model: &TypedModel, mut o: OutletId) -> Option<Arc<Tensor>> {
    while model.outlet_fact(o).ok()?.konst.is_none() {
        let n = model.node(o.node);
        n.op_as::<Cast>()?;
        o = *n.inputs.first()?;
    }
    let k = model.outlet_fact(o).ok()?.konst.clone()?;
    match k.datum_type() {
        DatumType::F32 => Some(k),
        _ => k.cast_to::<f32>().ok().map(|t| Arc::new(t.into_owned())),
    }
}
