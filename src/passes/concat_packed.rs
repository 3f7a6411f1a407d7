//! A [`QuantizeConcatU8`] read only by one conv whose image has no padding (the 1x1 conv
//! after each C2f, C3 and SPPF concatenation) writes that conv's channels-last image itself,
//! and the convs that quantize its inputs hand theirs over channels-last: no `[C][H][W]`
//! bytes are transposed out of those convs, copied into the concatenation and packed again.

use std::collections::BTreeSet;

use tract_onnx::prelude::*;

use super::{Context, Pass, Report};
use crate::kernels::conv::OutKind;
use crate::kernels::pack::Layout;
use crate::ops::qconv::QConvOp;
use crate::ops::quantize_u8::{PackedConcat, QuantizeConcatU8};

/// Counts the Concats written in their reader's layout.
#[derive(Debug)]
pub struct ConcatPacked;

impl Pass for ConcatPacked {
    fn name(&self) -> &'static str {
        "concat_packed"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    // Replaced nodes stay wired to their inputs until tract prunes them: only live readers count.
    let live: BTreeSet<usize> = model.eval_order()?.into_iter().collect();
    let readers = |model: &TypedModel, o: OutletId| -> Vec<InletId> {
        model.outlet_successors(o).iter().copied().filter(|r| live.contains(&r.node)).collect()
    };
    let concats: Vec<usize> = model
        .nodes()
        .iter()
        .filter(|n| n.op_as::<QuantizeConcatU8>().is_some_and(|c| c.packed.is_none()))
        .map(|n| n.id)
        .collect();
    for id in concats {
        let out = OutletId::new(id, 0);
        let Some(reader) = reader_layout(model, &readers(model, out), out, &outputs) else { continue };
        let (reader, layout, zero_point) = reader;
        let inputs = model.node(id).inputs.clone();
        let channels: Option<Vec<usize>> = inputs
            .iter()
            .map(|&i| model.outlet_fact(i).ok()?.shape.as_concrete().and_then(|s| s.get(1).copied()))
            .collect();
        let Some(channels) = channels else { continue };
        let last = channels.len().saturating_sub(1);
        let aligned = |i: usize| channels[i] % layout.k_group == 0;
        if channels.iter().sum::<usize>() != layout.in_c || !(0..last).all(aligned) {
            continue;
        }
        let mut packed = vec![None; inputs.len()];
        for (i, &input) in inputs.iter().enumerate() {
            if aligned(i) && readers(model, input) == [InletId::new(id, i)] && !outputs.contains(&input) {
                let part = Layout { in_c: channels[i], pad: [0; 4], ..layout };
                if hand_over(model, input, part)? {
                    packed[i] = Some(channels[i]);
                }
            }
        }
        let node = model.node_mut(id);
        let Some(op) = node.op_as::<QuantizeConcatU8>() else { continue };
        let packed = Some(PackedConcat { layout, zero_point, inputs: packed });
        node.op = Box::new(QuantizeConcatU8 { packed, ..op.clone() });
        model.set_outlet_fact(out, u8::fact([layout.len()]))?;
        let node = model.node_mut(reader);
        if let Some(conv) = node.op_as::<QConvOp>() {
            node.op = Box::new(QConvOp { packed_in: true, ..conv.clone() });
        }
        done += 1;
    }
    Ok(done)
}

/// The conv reading `out` as its only reader, with its image layout (unpadded) and zero point.
fn reader_layout(
    model: &TypedModel,
    readers: &[InletId],
    out: OutletId,
    outputs: &[OutletId],
) -> Option<(usize, Layout, u8)> {
    let [r] = readers else { return None };
    let conv = model.node(r.node).op_as::<QConvOp>()?;
    let layout = conv.conv.layout();
    (r.slot == 0 && !conv.packed_in && layout.pad == [0; 4] && !outputs.contains(&out)).then_some((
        r.node,
        layout,
        conv.zero_point,
    ))
}

/// Makes the conv output `input`, uint8 `[1, C, H, W]`, write the channels-last `part`
/// instead; false if it is not such an output.
fn hand_over(model: &mut TypedModel, input: OutletId, part: Layout) -> TractResult<bool> {
    let node = model.node_mut(input.node);
    let Some(conv) = node.op_as::<QConvOp>() else { return Ok(false) };
    let spec = conv.outputs[input.slot];
    let s = &conv.conv.shape;
    let fits = Layout::of(conv.conv.isa(), s).k_group == part.k_group
        && conv.conv.isa().value_bytes() == part.value_bytes
        && (spec.channels, s.out_h(), s.out_w()) == (part.in_c, part.in_h, part.in_w);
    let OutKind::U8(requant) = spec.kind else { return Ok(false) };
    if !fits {
        return Ok(false);
    }
    let mut op = conv.clone();
    op.outputs[input.slot].kind = OutKind::Packed(requant, part);
    node.op = Box::new(op);
    model.set_outlet_fact(input, u8::fact([part.len()]))?;
    Ok(true)
}
