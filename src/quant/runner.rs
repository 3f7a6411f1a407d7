//! Running an in-memory ONNX graph (a model with extra outputs, or a QDQ variant of it) with
//! tract and reading every output: calibration and error analysis look inside the network.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tract_onnx::prelude::*;

use crate::error::{Error, Result};
use crate::model::{optimize_with, root_cause, Plan};
use crate::onnx::proto::ModelProto;

/// One output tensor, flattened.
#[derive(Debug, Clone)]
pub struct Activation {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

impl Activation {
    /// Length of one channel (axis 1) of an NCHW or NC... tensor.
    pub fn channel_len(&self) -> usize {
        self.shape.iter().skip(2).product::<usize>().max(1)
    }
}

pub struct GraphRunner {
    /// The model file the graph came from, for messages.
    path: PathBuf,
    source: InferenceModel,
    plans: Mutex<HashMap<(usize, usize), Plan>>,
    /// Quantized Convs to run on the integer kernels (empty: the graph as written).
    int8: Vec<crate::onnx::qdq::QConvSpec>,
}

impl GraphRunner {
    pub fn new(proto: &ModelProto, path: &Path) -> Result<GraphRunner> {
        let source = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_output_types(true)
            .with_ignore_value_info(true)
            .model_for_proto_model(proto)
            .map_err(|e| Error::NotOnnx { path: path.into(), reason: root_cause(&e) })?;
        Ok(GraphRunner { path: path.into(), source, plans: Mutex::new(HashMap::new()), int8: Vec::new() })
    }

    fn plan(&self, size: (usize, usize)) -> Result<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = plans.get(&size) {
            return Ok(p.clone());
        }
        let cx = crate::passes::Context { specs: &self.int8, kernel: None };
        let (plan, _) = optimize_with(&self.source, DatumType::F32, size, &cx).map_err(|e| Error::Unsupported {
            path: self.path.clone(),
            reason: format!("cannot prepare its graph for a {}x{} input: {}", size.1, size.0, root_cause(&e)),
        })?;
        plans.insert(size, plan.clone());
        Ok(plan)
    }

    /// Runs one letterboxed CHW image; outputs in the graph's output order.
    pub fn run(&self, chw: &[f32], size: (usize, usize)) -> Result<Vec<Activation>> {
        let plan = self.plan(size)?;
        let fail = |e: TractError| Error::Inference(root_cause(&e));
        let input = Tensor::from_shape(&[1, 3, size.0, size.1], chw).map_err(fail)?;
        let outputs = plan.run(tvec!(input.into())).map_err(fail)?;
        outputs
            .iter()
            .map(|t| {
                let t = t.cast_to::<f32>().map_err(fail)?;
                let view = t.to_plain_array_view::<f32>().map_err(fail)?;
                Ok(Activation { shape: view.shape().to_vec(), data: view.iter().copied().collect() })
            })
            .collect()
    }
}
