//! A nearest-neighbour upsampling of a conv's float output, read only by uint8 Concats with
//! one scale and zero point, upsamples the conv's uint8 output with those parameters
//! instead ([`UpsampleU8`]): nearest only copies values, so the bytes are the same, without
//! the floats (the neck's two upsamplings).

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::nn::resize::{CoordTransformer, Interpolator};
use tract_onnx_opl::resize::{CoordTransform, Nearest, Resize};

use super::common::{float_conv_output, requantized, sole_reader};
use super::{Context, Pass, Report};
use crate::ops::quantize_u8::{grid_bits, QuantizeConcatU8};
use crate::ops::upsample_u8::UpsampleU8;

/// Counts the Resizes on uint8.
#[derive(Debug)]
pub struct ResizeU8;

impl Pass for ResizeU8 {
    fn name(&self) -> &'static str {
        "resize_u8"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let outputs = model.output_outlets()?.to_vec();
    let ids: Vec<usize> = model.nodes().iter().filter(|n| upsample(model, n).is_some()).map(|n| n.id).collect();
    for id in ids {
        let node = model.node(id);
        let Some(op) = upsample(model, node) else { continue };
        let (input, out) = (node.inputs[0], OutletId::new(id, 0));
        let from_conv = float_conv_output(model, input);
        let readers = model.outlet_successors(out);
        let q: Vec<(u32, u8)> = readers
            .iter()
            .filter_map(|r| model.node(r.node).op_as::<QuantizeConcatU8>().map(|c| grid_bits(c.params[r.slot])))
            .collect();
        let readers_ok = !q.is_empty() && q.len() == readers.len() && q.windows(2).all(|w| w[0] == w[1]);
        if !from_conv || !readers_ok || outputs.contains(&out) {
            continue;
        }
        let q = (f32::from_bits(q[0].0), q[0].1);
        let sole = sole_reader(model, input, InletId::new(id, 0))?;
        let Some((mut p, _, bytes)) = requantized(model, input, q, sole)? else { continue };
        let name = format!("{}.u8", node.name);
        p.wire_node(&name, op, &[bytes])?;
        p.apply(model)?;
        // Rewired by hand: tract only shunts an outlet to one of the same type.
        let new = OutletId::new(model.node_by_name(&name)?.id, 0);
        for inlet in model.outlet_successors(out).to_vec() {
            model.add_edge(new, inlet)?;
        }
        done += 1;
    }
    Ok(done)
}

/// The uint8 upsampling doing what `n` does, if it is an ONNX Resize as tract-onnx types it,
/// nearest with asymmetric coordinates and floor (Ultralytics' export), by whole factors on
/// H and W given as constant scales.
fn upsample(model: &TypedModel, n: &TypedNode) -> Option<UpsampleU8> {
    let r = n.op_as::<Resize>()?;
    let plain = r.interpolator == Interpolator::Nearest
        && r.nearest == Nearest::Floor
        && r.coord_transformer == CoordTransform::Plain(CoordTransformer::Asymmetric);
    let scales = model.outlet_fact(*n.inputs.get(r.optional_scales_input?)?).ok()?.konst.clone()?;
    let scales = scales.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.to_vec();
    let whole = |v: f32| (v >= 1.0 && v.fract() == 0.0).then_some(v as usize);
    let ok = plain
        && r.optional_sizes_input.is_none()
        && r.axes.is_none()
        && scales.len() == 4
        && scales[0] == 1.0
        && scales[1] == 1.0;
    if !ok {
        return None;
    }
    Some(UpsampleU8 { scale: (whole(scales[2])?, whole(scales[3])?) })
}
