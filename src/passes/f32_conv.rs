//! Each float Conv (group 1, 2-D, constant weights, concrete input shape) on qdet's fp32
//! kernels: an [`FConvOp`] replaces tract's convolution, with a following SiLU fused into its
//! epilogue as [`super::int8_conv`] does. Runs after the int8 passes, so in a QDQ file it only
//! sees the convs left float. Without an fp32 SIMD kernel on this CPU (or with
//! `QDET_FKERNEL=tract`) tract keeps them.

use std::sync::Arc;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Slice, TypedConcat};
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::common::{float_adds, shortcut_conv, silu_mul};
use super::{Context, Pass, Report};
use crate::kernels::conv::ConvShape;
use crate::kernels::fconv::{FConv, FIsa};
use crate::ops::fconv::FConvOp;

/// The sub-count of convs with their SiLU fused.
pub const SILU: &str = "f32_conv.silu";

/// The sub-count of shortcut Adds fused into the conv they add to.
pub const RESIDUAL: &str = "f32_conv.residual";

/// Counts the convs replaced and notes [`SILU`] and [`RESIDUAL`].
#[derive(Debug)]
pub struct F32Conv;

impl Pass for F32Conv {
    fn name(&self) -> &'static str {
        "f32_conv"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, report: &mut Report) -> TractResult<usize> {
        let Some(isa) = crate::kernels::dispatch::fp32_kernel() else { return Ok(0) };
        let ids: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<Conv>()).map(|n| n.id).collect();
        let (mut replaced, mut silu) = (0, 0);
        for id in ids {
            let Some(conv) = float_conv(model, id, isa)? else { continue };
            let conv_out = OutletId::new(id, 0);
            let silu_mul = silu_mul(model, conv_out);
            let out_c = conv.shape.out_c;
            let node = model.node(id);
            let sources = sources(model, node.inputs[0], &conv.shape)?;
            let inputs = sources.iter().map(|&(_, first, n)| (first, n)).collect();
            let (silu_fused, conv) = (silu_mul.is_some(), Arc::new(conv));
            let op = FConvOp { conv, inputs, silu: silu_fused, residual: None, outputs: vec![(0, out_c)] };
            let mut p = TypedModelPatch::default();
            let taps = sources.iter().map(|&(o, _, _)| p.tap_model(model, o)).collect::<TractResult<TVec<_>>>()?;
            let out = p.wire_node(format!("{}.qdet", node.name), op, &taps)?[0];
            p.shunt_outside(model, silu_mul.map_or(conv_out, |m| OutletId::new(m, 0)), out)?;
            p.apply(model)?;
            replaced += 1;
            silu += usize::from(silu_mul.is_some());
        }
        report.note(SILU, silu);
        report.note(RESIDUAL, fuse_residuals(model)?);
        Ok(replaced)
    }
}

/// `Add(x, conv)` of two `[1, C, H, W]` floats, the conv's whole output read by nothing
/// else (a bottleneck's shortcut), becomes the conv with `x` (or the tensor `x` slices) as
/// its residual, added in the epilogue: one pass over the output instead of three.
fn fuse_residuals(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    for add in float_adds(model) {
        let whole = |c: &FConvOp| c.outputs == [(0, c.conv.shape.out_c)] && c.residual.is_none();
        let Some((slot, conv)) = shortcut_conv(model, add, whole)? else {
            continue;
        };
        let node = model.node(add);
        let (other, first, n) = slice_of(model, node.inputs[1 - slot])?;
        if n != conv.conv.shape.out_c {
            continue;
        }
        let conv_node = model.node(node.inputs[slot].node);
        let name = format!("{}.residual", conv_node.name);
        let mut p = TypedModelPatch::default();
        let mut taps = conv_node.inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
        taps.push(p.tap_model(model, other)?);
        let new = p.wire_node(name, FConvOp { residual: Some(first), ..conv }, &taps)?[0];
        p.shunt_outside(model, OutletId::new(add, 0), new)?;
        p.apply(model)?;
        done += 1;
    }
    Ok(done)
}

/// What a conv reading `input` reads, as `(tensor, first channel, channels)`: the inputs of a
/// channel Concat, and the tensor a channel Slice (a Split's output) slices, in place;
/// `input` itself when it is neither, or their shapes do not fit.
fn sources(model: &TypedModel, input: OutletId, s: &ConvShape) -> TractResult<Vec<(OutletId, usize, usize)>> {
    let whole = vec![(input, 0, s.in_c)];
    let node = model.node(input.node);
    let parts: Vec<OutletId> = match node.op_as::<TypedConcat>() {
        Some(c) if c.axis == 1 && !model.output_outlets()?.contains(&input) => node.inputs.to_vec(),
        _ => vec![input],
    };
    let mut out = Vec::with_capacity(parts.len());
    for o in parts {
        let (o, first, n) = slice_of(model, o)?;
        let fact = model.outlet_fact(o)?;
        let Some(shape) = fact.shape.as_concrete() else { return Ok(whole) };
        let fits = fact.datum_type == DatumType::F32
            && shape.len() == 4
            && shape[0] == 1
            && shape[2..] == [s.in_h, s.in_w]
            && first + n <= shape[1];
        if !fits {
            return Ok(whole);
        }
        out.push((o, first, n));
    }
    Ok(if out.iter().map(|p| p.2).sum::<usize>() == s.in_c { out } else { whole })
}

/// `(tensor, first, n)` of a channel Slice's output, else `(o, 0, its channels)`.
fn slice_of(model: &TypedModel, o: OutletId) -> TractResult<(OutletId, usize, usize)> {
    let node = model.node(o.node);
    let channels = model.outlet_fact(o)?.shape.as_concrete().and_then(|s| s.get(1).copied()).unwrap_or(0);
    if let Some(sl) = node.op_as::<Slice>() {
        if let (1, Ok(start), Ok(end)) = (sl.axis, sl.start.to_usize(), sl.end.to_usize()) {
            return Ok((node.inputs[0], start, end - start));
        }
    }
    Ok((o, 0, channels))
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
