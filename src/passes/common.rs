//! Helpers the passes share: typed op matching for tract's generic element-wise and binary
//! ops, and the rewiring of a conv that gains a quantized output. Not a pass.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::{BinMiniOp, TypedBinOp};
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::math::{Add, Mul};
use tract_onnx::tract_core::ops::nn::Sigmoid;

use crate::kernels::conv::{OutKind, OutSpec};
use crate::ops::qconv::QConvOp;

/// The mini-op of an element-wise node (`Sigmoid`, `QuantizeLinearU8`...) if it is a `T`:
/// tract types those nodes as one `ElementWiseOp` wrapping the mini-op.
pub fn element_wise<T: ElementWiseMiniOp>(node: &TypedNode) -> Option<&T> {
    node.op_as::<ElementWiseOp>()?.0.downcast_ref::<T>()
}

/// Whether `node` is a binary op (`TypedBinOp`) of mini-op `T` (`Add`, `Mul`...).
pub fn is_binary<T: BinMiniOp>(node: &TypedNode) -> bool {
    node.op_as::<TypedBinOp>().is_some_and(|b| b.0.is::<T>())
}

/// Whether `o` is a float output of a [`QConvOp`].
pub fn float_conv_output(model: &TypedModel, o: OutletId) -> bool {
    model.node(o.node).op_as::<QConvOp>().is_some_and(|c| c.outputs[o.slot].kind == OutKind::F32)
}

/// Whether `inlet` is the only reader of `outlet`, which is not a model output.
pub fn sole_reader(model: &TypedModel, outlet: OutletId, inlet: InletId) -> TractResult<bool> {
    Ok(model.outlet_successors(outlet) == [inlet] && !model.output_outlets()?.contains(&outlet))
}

/// A patch replacing the conv of float output `from` with one that also writes that output
/// quantized with `q` (instead of the floats when `drop_float`: the caller rewires their only
/// reader). The conv's other outputs keep their readers. Returns the patch, to which the
/// caller adds its own rewiring, and the replacement's outlets: by the old conv's slot, then
/// the uint8 one.
pub fn requantized(
    model: &TypedModel,
    from: OutletId,
    q: (f32, u8),
    drop_float: bool,
) -> TractResult<Option<(TypedModelPatch, TVec<OutletId>, OutletId)>> {
    let Some(conv) = model.node(from.node).op_as::<QConvOp>() else { return Ok(None) };
    let spec = conv.outputs[from.slot];
    if spec.kind != OutKind::F32 {
        return Ok(None);
    }
    let requant = OutSpec { kind: OutKind::U8(q), ..spec };
    if let Some(j) = conv.outputs.iter().position(|o| *o == requant) {
        // Already written: reuse it (a float output left unread goes in `drop_unread_outputs`).
        let mut p = TypedModelPatch::default();
        let taps = (0..conv.outputs.len())
            .map(|k| p.tap_model(model, OutletId::new(from.node, k)))
            .collect::<TractResult<TVec<_>>>()?;
        let out = taps[j];
        return Ok(Some((p, taps, out)));
    }
    let mut op = conv.clone();
    let slot = if drop_float {
        op.outputs[from.slot] = requant;
        from.slot
    } else {
        op.outputs.push(requant);
        op.outputs.len() - 1
    };
    let outputs = model.output_outlets()?;
    let node = model.node(from.node);
    let mut p = TypedModelPatch::default();
    let taps = node.inputs.iter().map(|&i| p.tap_model(model, i)).collect::<TractResult<TVec<_>>>()?;
    let new = p.wire_node(format!("{}.requant", node.name), op, &taps)?;
    for j in (0..conv.outputs.len()).filter(|&j| !(drop_float && j == from.slot)) {
        let old = OutletId::new(from.node, j);
        if !model.outlet_successors(old).is_empty() || outputs.contains(&old) {
            p.shunt_outside(model, old, new[j])?;
        }
    }
    let out = new[slot];
    Ok(Some((p, new, out)))
}

/// The Mul of `Sigmoid(conv)`, `Mul(conv, sigmoid)` (SiLU) when nothing else reads the conv
/// or the sigmoid.
pub fn silu_mul(model: &TypedModel, conv_out: OutletId) -> Option<usize> {
    let succ: Vec<usize> = model.outlet_successors(conv_out).iter().map(|i| i.node).collect();
    if succ.len() != 2 {
        return None;
    }
    let sig = succ.iter().copied().find(|&s| element_wise::<Sigmoid>(model.node(s)).is_some())?;
    let mul = succ.iter().copied().find(|&s| s != sig)?;
    let m = model.node(mul);
    let sig_out = model.outlet_successors(OutletId::new(sig, 0));
    let reads = |o: OutletId| m.inputs.contains(&o);
    (is_binary::<Mul>(m) && reads(conv_out) && reads(OutletId::new(sig, 0)) && sig_out.len() == 1).then_some(mul)
}

/// The two-input float Adds of the model, by node id.
pub fn float_adds(model: &TypedModel) -> Vec<usize> {
    model.nodes().iter().filter(|n| is_binary::<Add>(n) && n.inputs.len() == 2).map(|n| n.id).collect()
}

/// A bottleneck's shortcut: for `Add(x, conv)` of two equal, concrete f32 facts where one
/// input is the whole output of a `C` op (`whole`), read by nothing else and not a model
/// output, which input that is and a copy of its op.
pub fn shortcut_conv<C: TypedOp + Clone>(
    model: &TypedModel,
    add: usize,
    whole: impl Fn(&C) -> bool,
) -> TractResult<Option<(usize, C)>> {
    let node = model.node(add);
    let facts = [model.outlet_fact(node.inputs[0])?, model.outlet_fact(node.inputs[1])?];
    if facts[0] != facts[1] || facts[0].datum_type != DatumType::F32 || facts[0].shape.as_concrete().is_none() {
        return Ok(None);
    }
    let outputs = model.output_outlets()?;
    Ok((0..2).find_map(|i| {
        let o = node.inputs[i];
        let c = model.node(o.node).op_as::<C>()?;
        (whole(c) && model.outlet_successors(o).len() == 1 && !outputs.contains(&o)).then(|| (i, c.clone()))
    }))
}
