//! Large f32 Concats ([`ConcatF32`], copied on the kernels' team), with a Sigmoid read only
//! by the Concat applied to its input's piece as it lands: the detect head's class scores are
//! `Concat(boxes, Sigmoid(Concat(scores per scale)))`, three serial copies and a serial
//! sigmoid pass, about 0.8 ms of a COCO 640 inference on tract. Runs after the int8 passes,
//! which turn the Concats a QuantizeLinear reads into their own.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::ops::array::TypedConcat;
use tract_onnx::tract_core::ops::cnn::Conv;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::Sigmoid;

use super::{Context, Pass, Report};
use crate::ops::concat::ConcatF32;

/// Smaller Concats stay on tract: handing them to another thread costs more than it saves.
const MIN_LEN: usize = 1 << 16;

/// The sub-count of Sigmoids folded into the Concats.
pub const SIGMOID: &str = "concat_f32.sigmoid";

/// Counts the Concats replaced, and notes [`SIGMOID`].
#[derive(Debug)]
pub struct ConcatF32Pass;

impl Pass for ConcatF32Pass {
    fn name(&self) -> &'static str {
        "concat_f32"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, report: &mut Report) -> TractResult<usize> {
        let (n, folded) = patch_from(model, MIN_LEN)?;
        report.note(SIGMOID, folded);
        Ok(n)
    }
}

/// The input outlet of a Sigmoid at `outlet`, if that is one on f32 read by nothing else.
fn sigmoid_input(model: &TypedModel, outlet: OutletId) -> Option<OutletId> {
    let node = model.node(outlet.node);
    let ew = node.op_as::<ElementWiseOp>()?;
    if ew.0.downcast_ref::<Sigmoid>().is_none() || ew.1.is_some() || node.outputs[0].successors.len() != 1 {
        return None;
    }
    (model.outlet_fact(node.inputs[0]).ok()?.datum_type == DatumType::F32).then_some(node.inputs[0])
}

/// Replaces every f32 Concat of at least `min_len` values (concrete shapes) that no Conv
/// reads, folding in the Sigmoids only it reads. Returns how many Concats and how many Sigmoids.
fn patch_from(model: &mut TypedModel, min_len: usize) -> TractResult<(usize, usize)> {
    let concats: Vec<usize> = model.nodes().iter().filter(|n| n.op_is::<TypedConcat>()).map(|n| n.id).collect();
    let (mut n, mut folded) = (0, 0);
    for id in concats {
        let node = model.node(id);
        let Some(op) = node.op_as::<TypedConcat>() else { continue };
        let fact = &node.outputs[0].fact;
        let big = fact.shape.as_concrete().is_some_and(|s| s.iter().product::<usize>() >= min_len);
        // tract splits a Conv over the inputs of the Concat it reads (no copy at all): leave
        // those to it.
        let read_by_conv = node.outputs[0].successors.iter().any(|s| model.node(s.node).op_is::<Conv>());
        if fact.datum_type != DatumType::F32 || !big || read_by_conv {
            continue;
        }
        let all_f32 = node.inputs.iter().all(|i| {
            model.outlet_fact(*i).is_ok_and(|f| f.datum_type == DatumType::F32 && f.shape.as_concrete().is_some())
        });
        if !all_f32 {
            continue;
        }
        let (axis, name, inputs) = (op.axis, node.name.clone(), node.inputs.clone());
        let sources: Vec<(OutletId, bool)> =
            inputs.iter().map(|&i| sigmoid_input(model, i).map_or((i, false), |s| (s, true))).collect();
        let mut p = TypedModelPatch::default();
        let taps = sources.iter().map(|(o, _)| p.tap_model(model, *o)).collect::<TractResult<TVec<_>>>()?;
        let sigmoid: Vec<bool> = sources.iter().map(|(_, s)| *s).collect();
        folded += sigmoid.iter().filter(|s| **s).count();
        let out = p.wire_node(format!("{name}.qdet"), ConcatF32 { axis, sigmoid }, &taps)?[0];
        p.shunt_outside(model, OutletId::new(id, 0), out)?;
        p.apply(model)?;
        n += 1;
    }
    Ok((n, folded))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(m: TypedModel, input: &Tensor) -> Tensor {
        m.into_optimized()
            .unwrap()
            .into_runnable()
            .unwrap()
            .run(tvec!(input.clone().into()))
            .unwrap()
            .remove(0)
            .into_tensor()
    }

    /// The fixture's head (small at 320 with 3 classes, so with no size threshold): the f32
    /// Concats no Conv reads replaced and the class scores' Sigmoid folded in, and the model's
    /// output bit-identical to tract running its own Concats and Sigmoid, on a test-card input.
    #[test]
    fn replaces_the_fixture_heads_concats_bit_identically() {
        let _team = crate::tests::team();
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models/shapes-yolov8n.onnx");
        let exported = tract_onnx::onnx()
            .model_for_path(path)
            .unwrap()
            .with_input_fact(0, f32::fact([1, 3, 320, 320]).into())
            .unwrap()
            .into_typed()
            .unwrap();
        let input: Vec<f32> = (0..3 * 320 * 320)
            .map(|i| ((i % 320) as f32 / 320.0 + ((i / 320 / 16) % 2) as f32 * 0.5 + (i / 102_400) as f32 * 0.2) % 1.0)
            .collect();
        let input = Tensor::from_shape(&[1, 3, 320, 320], &input).unwrap();
        let mut patched = exported.clone();
        assert_eq!(patch_from(&mut patched, 0).unwrap(), (4, 1));
        let _ = crate::kernels::threads::set_threads(2);
        let (want, got) = (run(exported, &input), run(patched, &input));
        assert_eq!(want.shape(), got.shape());
        let (want, got) = (
            want.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec(),
            got.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().to_vec(),
        );
        assert!(want.iter().zip(&got).all(|(a, b)| a.to_bits() == b.to_bits()), "outputs differ");
        assert!(want.iter().skip(4 * 2100).any(|&s| s > 0.0 && s < 1.0), "class scores are sigmoids");
    }
}
