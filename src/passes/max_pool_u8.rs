//! tract MaxPools (stride 1, explicit padding, NCHW) whose every reader is a uint8 Concat
//! with one scale and zero point, or another such pool, and whose input is a conv's float
//! output or another such pool, run on uint8 with those parameters ([`MaxPoolU8`]):
//! quantization is monotonic, so the bytes are the same. YOLOv8's SPPF: three pools.

use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{MaxPool, PaddingSpec};
use tract_onnx::tract_core::ops::nn::DataFormat;

use super::common::{float_conv_output, requantized, sole_reader};
use super::{Context, Pass, Report};
use crate::ops::max_pool_u8::MaxPoolU8;
use crate::ops::quantize_u8::{grid_bits, QuantizeConcatU8};

/// Counts the MaxPools on uint8.
#[derive(Debug)]
pub struct MaxPoolU8Pass;

impl Pass for MaxPoolU8Pass {
    fn name(&self) -> &'static str {
        "max_pool_u8"
    }

    fn run(&self, model: &mut TypedModel, _cx: &Context, _report: &mut Report) -> TractResult<usize> {
        rewrite(model)
    }
}

fn rewrite(model: &mut TypedModel) -> TractResult<usize> {
    let mut done = 0;
    let set = pools(model)?;
    for id in model.eval_order()? {
        let Some(&q) = set.get(&id) else { continue };
        let node = model.node(id);
        let Some(pool) = pool_of(node) else { continue };
        let input = node.inputs[0];
        let name = format!("{}.u8", node.name);
        let (mut p, src) = if model.node(input.node).op_is::<MaxPoolU8>() {
            let mut p = TypedModelPatch::default();
            let tap = p.tap_model(model, input)?;
            (p, tap)
        } else {
            let sole = sole_reader(model, input, InletId::new(id, 0))?;
            let (p, _, out) = requantized(model, input, q, sole)?.context("a conv's float output")?;
            (p, out)
        };
        p.wire_node(&name, pool, &[src])?;
        p.apply(model)?;
        // Rewired by hand: tract only shunts an outlet to one of the same type.
        let new = OutletId::new(model.node_by_name(&name)?.id, 0);
        for inlet in model.outlet_successors(OutletId::new(id, 0)).to_vec() {
            model.add_edge(new, inlet)?;
        }
        done += 1;
    }
    Ok(done)
}

/// The pools to run on uint8, with the scale and zero point of their Concat readers.
fn pools(model: &TypedModel) -> TractResult<HashMap<usize, (f32, u8)>> {
    // Candidates with the quantization of their Concat readers.
    let mut set: HashMap<usize, (f32, u8)> = HashMap::new();
    for n in model.nodes() {
        if pool_of(n).is_none() || model.outlet_fact(n.inputs[0])?.datum_type != DatumType::F32 {
            continue;
        }
        let q: Vec<(u32, u8)> = model
            .outlet_successors(OutletId::new(n.id, 0))
            .iter()
            .filter_map(|r| model.node(r.node).op_as::<QuantizeConcatU8>().map(|c| grid_bits(c.params[r.slot])))
            .collect();
        if let Some(&(scale, zp)) = q.first() {
            if q.iter().all(|&x| x == (scale, zp)) {
                set.insert(n.id, (f32::from_bits(scale), zp));
            }
        }
    }
    // Drop those with another reader or input, until none is left to drop.
    let outputs = model.output_outlets()?.to_vec();
    loop {
        let keep = |id: usize, set: &HashMap<usize, (f32, u8)>| -> bool {
            let q = set[&id];
            let out = OutletId::new(id, 0);
            let readers_ok = !outputs.contains(&out)
                && model.outlet_successors(out).iter().all(|r| {
                    let n = model.node(r.node);
                    n.op_as::<QuantizeConcatU8>().is_some_and(|c| c.params[r.slot] == q) || set.get(&r.node) == Some(&q)
                });
            let input = model.node(id).inputs[0];
            let from_conv = float_conv_output(model, input);
            readers_ok && (from_conv || set.get(&input.node) == Some(&q))
        };
        let drop: Vec<usize> = set.keys().copied().filter(|&id| !keep(id, &set)).collect();
        if drop.is_empty() {
            break;
        }
        for id in drop {
            set.remove(&id);
        }
    }
    Ok(set)
}

/// The uint8 pool doing what `n` does, if it is a MaxPool this can run.
fn pool_of(n: &TypedNode) -> Option<MaxPoolU8> {
    let op = n.op_as::<MaxPool>()?;
    let s = &op.pool_spec;
    let ones = |v: &Option<TVec<usize>>| v.as_ref().is_none_or(|v| v.iter().all(|&x| x == 1));
    let (before, after) = match &s.padding {
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => (b.clone(), a.clone()),
        _ => return None,
    };
    let ok = s.data_format == DataFormat::NCHW
        && s.kernel_shape.len() == 2
        && before.len() == 2
        && after.len() == 2
        && ones(&s.strides)
        && ones(&s.dilations)
        && op.with_index_outputs.is_none();
    let (kh, kw) = (s.kernel_shape[0], s.kernel_shape[1]);
    (ok && kh > before[0].max(after[0]) && kw > before[1].max(after[1]))
        .then(|| MaxPoolU8 { kernel: (kh, kw), pad: [before[0], before[1], after[0], after[1]] })
}
