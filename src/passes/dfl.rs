//! The detect head's DFL decode ([`Dfl`]) in place of the five ops Ultralytics exports for
//! it: `Reshape [4 * bins] -> [4, bins]`, `Transpose` (bins first), `Softmax` over the bins,
//! 1x1 `Conv` with weights `0..bins` and no bias, and the `Reshape` dropping its channel.
//! tract's five ops took about 1.3 ms of a 640 inference, mostly serial; the op is one
//! parallel pass.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::change_axes::AxisOp;
use tract_onnx::tract_core::ops::cnn::{Conv, PaddingSpec};
use tract_onnx::tract_core::ops::nn::{Softmax, SoftmaxKind};

use super::{Context, Pass, Report};
use crate::ops::dfl::Dfl;

/// Counts the chains replaced.
#[derive(Debug)]
pub struct DflDecode;

impl Pass for DflDecode {
    fn name(&self) -> &'static str {
        "dfl"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        let softmaxes: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<Softmax>()).map(|n| n.id).collect();
        let mut n = 0;
        for id in softmaxes {
            let Some((logits, bins, squeeze)) = dfl_chain(model, id) else { continue };
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, logits)?;
            let out = p.wire_node(format!("{}.qdet", model.node(id).name), Dfl { bins }, &[tap])?[0];
            p.shunt_outside(model, OutletId::new(squeeze, 0), out)?;
            p.apply(model)?;
            n += 1;
        }
        Ok(n)
    }
}

/// The node reading `node`'s only output, if exactly one does.
fn sole_successor(model: &TypedModel, node: usize) -> Option<usize> {
    match model.node(node).outputs.as_slice() {
        [o] if o.successors.len() == 1 => Some(o.successors[0].node),
        _ => None,
    }
}

/// The DFL chain ending at `softmax`: the logits' outlet, the bins and the node whose output
/// the op replaces.
fn dfl_chain(model: &TypedModel, softmax: usize) -> Option<(OutletId, usize, usize)> {
    let node = model.node(softmax);
    let op = node.op_as::<Softmax>()?;
    if op.kind != SoftmaxKind::Softmax || op.axes.as_slice() != [1] || op.quant_output_dt.is_some() {
        return None;
    }
    let moved = model.node(node.inputs[0].node);
    if moved.op_as::<AxisOp>()? != &AxisOp::Move(1, 2) || sole_successor(model, moved.id)? != softmax {
        return None;
    }
    let split = model.node(moved.inputs[0].node);
    let AxisOp::Reshape(1, from, to) = split.op_as::<AxisOp>()? else { return None };
    let (rows, sides, bins) = match (from.as_slice(), to.as_slice()) {
        ([rows], [sides, bins]) => (rows.to_usize().ok()?, sides.to_usize().ok()?, bins.to_usize().ok()?),
        _ => return None,
    };
    if rows != sides * bins || sole_successor(model, split.id)? != moved.id {
        return None;
    }
    let logits = split.inputs[0];
    let fact = model.outlet_fact(logits).ok()?;
    if fact.datum_type != DatumType::F32 || fact.rank() != 3 || fact.shape[0] != 1.to_dim() {
        return None;
    }
    let conv_id = sole_successor(model, softmax)?;
    let conv = model.node(conv_id);
    let c = conv.op_as::<Conv>()?;
    let p = &c.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&s| s == 1));
    let unpadded = match &p.padding {
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, _) => b.iter().chain(a).all(|&x| x == 0),
        _ => true,
    };
    if c.q_params.is_some()
        || c.group != 1
        || p.kernel_shape.iter().any(|&k| k != 1)
        || !ones(&p.strides)
        || !ones(&p.dilations)
        || !unpadded
        || p.input_channels != bins
        || p.output_channels != 1
        || conv.inputs.len() != 3
    {
        return None;
    }
    let konst = |i: usize| model.outlet_fact(conv.inputs[i]).ok()?.konst.clone();
    let (weights, bias) = (konst(1)?, konst(2)?);
    let arange = weights.len() == bins
        && weights.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.iter().enumerate().all(|(i, &w)| w == i as f32);
    let unbiased = bias.try_as_plain_ram().ok()?.as_slice::<f32>().ok()?.iter().all(|&b| b == 0.0);
    if !arange || !unbiased {
        return None;
    }
    let squeeze = sole_successor(model, conv_id)?;
    if model.node(squeeze).op_as::<AxisOp>()? != &AxisOp::Rm(1) {
        return None;
    }
    Some((logits, bins, squeeze))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn typed(file: &str) -> TypedModel {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
        tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .with_input_fact(0, f32::fact([1, 3, 320, 320]).into())
            .unwrap()
            .into_typed()
            .unwrap()
    }

    /// The fixture's head, fp32 and int8 exports: one chain found, and the model's output
    /// (boxes in pixels, then class scores) equal to tract running the exported ops within
    /// 2e-4 px, on a test-card input (gradients and stripes).
    #[test]
    fn replaces_the_fixture_heads_dfl_and_keeps_its_output() {
        let input: Vec<f32> = (0..3 * 320 * 320)
            .map(|i| ((i % 320) as f32 / 320.0 + ((i / 320 / 16) % 2) as f32 * 0.5 + (i / 102_400) as f32 * 0.2) % 1.0)
            .collect();
        let input = Tensor::from_shape(&[1, 3, 320, 320], &input).unwrap();
        for file in ["shapes-yolov8n.onnx", "shapes-yolov8n.int8.onnx"] {
            let exported = typed(file);
            let mut patched = exported.clone();
            assert_eq!(DflDecode.run(&mut patched, &Context::default(), &mut Report::default()).unwrap(), 1, "{file}");
            assert!(!patched.nodes().iter().any(|n| n.op_is::<Softmax>()), "{file}");
            let run = |m: TypedModel| {
                m.into_optimized().unwrap().into_runnable().unwrap().run(tvec!(input.clone().into())).unwrap().remove(0)
            };
            let (want, got) = (run(exported), run(patched));
            let (want, got) = (want.to_plain_array_view::<f32>().unwrap(), got.to_plain_array_view::<f32>().unwrap());
            assert_eq!(want.shape(), got.shape());
            let worst = want.iter().zip(got.iter()).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst < 2e-4, "{file}: outputs differ by up to {worst}");
            assert!(want.iter().take(4 * 2100).any(|&v| v > 1.0), "{file}: boxes in pixels");
        }
    }
}
