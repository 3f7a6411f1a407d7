//! Loading an Ultralytics YOLO detection ONNX export (v5u, v8, v10, 11, 26) and running it with tract.
//!
//! A model is checked once at load time (one image input, a detect head output) so that a
//! classification, segmentation or pose export fails with a message instead of producing
//! nonsense boxes. Static models are optimized once; dynamic ones get one optimized plan per
//! input shape, cached, because tract optimizes far better with concrete dimensions.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tract_onnx::prelude::tract_data::internal::DimLike;
use tract_onnx::prelude::*;
use tract_onnx::tract_hir::infer::Factoid;

use crate::error::{Error, Result};
use crate::meta::ModelMeta;
use crate::ops::qconv::QConvOp;
use crate::passes::{Context, PatchReport, Report};

pub(crate) type Plan = Arc<TypedRunnableModel>;

/// Element type of the model's input. Float weights of either kind run as f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Precision {
    F32,
    F16,
}

/// What the model's first output holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Head {
    /// `[1, 4 + nc, anchors]`: cx, cy, w, h then one score per class, before NMS.
    Raw { num_classes: usize },
    /// `[1, k, 6]`: x1, y1, x2, y2, score, class after the exported NMS (end2end / nms=True).
    EndToEnd,
}

/// The raw output of one inference, in model-input pixel coordinates.
#[derive(Debug, Clone)]
pub struct RawOutput {
    head: Head,
    values: Values,
    /// `(rows, cols)` of [`RawOutput::data`]: `(4 + nc, anchors)` for `Raw`, `(k, 6)` for
    /// `EndToEnd`.
    dims: (usize, usize),
}

/// The output's floats: the plan's own tensor when it is plain f32 (copying its 2.8 MB at 640
/// was a serial 0.25 ms per inference), else a copy.
#[derive(Debug, Clone)]
enum Values {
    Owned(Vec<f32>),
    Tensor(Tensor),
}

impl RawOutput {
    /// An output from row-major `data` of `dims`.
    pub fn new(head: Head, data: Vec<f32>, dims: (usize, usize)) -> RawOutput {
        RawOutput { head, values: Values::Owned(data), dims }
    }

    /// What the output holds.
    pub fn head(&self) -> Head {
        self.head
    }

    /// `(rows, cols)` of [`RawOutput::data`]: `(4 + nc, anchors)` for [`Head::Raw`], `(k, 6)`
    /// for [`Head::EndToEnd`].
    pub fn dims(&self) -> (usize, usize) {
        self.dims
    }

    /// Row-major data of the first output without its batch dimension.
    pub fn data(&self) -> &[f32] {
        match &self.values {
            Values::Owned(v) => v,
            // Checked plain f32 when it was stored (`Model::run`).
            Values::Tensor(t) => t.try_as_plain_ram().and_then(|v| v.as_slice::<f32>()).unwrap_or(&[]),
        }
    }
}

/// One node's times over the runs of [`Model::run_profiled`].
#[derive(Debug, Clone)]
pub struct NodeTime {
    /// The op's name (`Conv`, `QdetConvU8`, ...).
    pub op: String,
    pub total: Duration,
    /// The fastest run: on a shared machine, the sum of these is the run without its noise.
    pub best: Duration,
}

/// How the quantized Convs of a QDQ model run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Int8 {
    /// On qdet's integer kernels (`kernels`), the fastest exact one on this CPU.
    #[default]
    Native,
    /// On this integer kernel where it is available and exact for a conv's weights, else as
    /// `Native` ([`crate::RuntimeOptions::int8_kernel`] for one model: tests and benchmarks
    /// run each path).
    Kernel(crate::runtime::Kernel),
    /// As the file's float graph: QuantizeLinear/DequantizeLinear steps simulated in float.
    Simulated,
}

/// A loaded, checked detection model ([`Model::load`]).
pub struct Model {
    path: PathBuf,
    meta: ModelMeta,
    precision: Precision,
    /// Fixed `(height, width)` of a static model; `None` when height and width are symbolic.
    fixed_size: Option<(usize, usize)>,
    head: Head,
    source: InferenceModel,
    /// Plans by input size, each with when it was last used (a counter).
    plans: Mutex<Plans>,
    /// Quantized Convs the integer kernels run (empty for float models and `Int8::Simulated`).
    int8_convs: Arc<Vec<crate::onnx::qdq::QConvSpec>>,
    /// The integer kernel asked for ([`Int8::Kernel`]).
    kernel: Option<crate::kernels::Isa>,
    /// What the graph passes did for the last plan built.
    report: Mutex<Option<Report>>,
}

impl std::fmt::Debug for Model {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Model")
            .field("path", &self.path)
            .field("precision", &self.precision)
            .field("fixed_size", &self.fixed_size)
            .field("head", &self.head)
            .finish()
    }
}

/// The largest input side a dynamic model is run at: 4096 (a 4096 x 4096 input is 200 MB of
/// floats before the first conv; far larger sizes made tract fail to allocate, and abort).
pub const MAX_IMGSZ: usize = 4096;

/// Why `h` x `w` cannot be a dynamic model's input size, if it cannot: each side a multiple of
/// the model's stride, at most [`MAX_IMGSZ`].
pub fn check_imgsz(h: usize, w: usize, stride: usize) -> std::result::Result<(), String> {
    for v in [h, w] {
        if v == 0 || v > MAX_IMGSZ {
            return Err(format!("image size {v} is out of range: 1 to {MAX_IMGSZ}"));
        }
        if v % stride != 0 {
            return Err(format!(
                "image size {v} is not a multiple of the model's stride {stride} (try {})",
                v.next_multiple_of(stride)
            ));
        }
    }
    Ok(())
}

impl Model {
    /// Loads and validates a model. `probe_size` is the input size used to check the output
    /// shape of a dynamic model (usually the `--imgsz` the caller will run at).
    pub fn load(path: &Path, probe_size: Option<(usize, usize)>) -> Result<Model> {
        Model::load_with(path, probe_size, Int8::Native)
    }

    /// [`Model::load`], choosing how a QDQ model's quantized Convs run.
    pub fn load_with(path: &Path, probe_size: Option<(usize, usize)>, int8: Int8) -> Result<Model> {
        let bytes = crate::input::read(path, crate::input::MODEL_LIMIT)?;
        Model::from_bytes(path, &bytes, probe_size, int8)
    }

    /// [`Model::load_with`] on a model already in memory (`calibrate` checks the model it is
    /// about to write); `path` names it in messages.
    pub fn from_bytes(path: &Path, bytes: &[u8], probe_size: Option<(usize, usize)>, int8: Int8) -> Result<Model> {
        if bytes.is_empty() {
            return Err(Error::NotOnnx { path: path.into(), reason: "the file is empty".into() });
        }
        let mut reader = std::io::Cursor::new(bytes);
        // Declared output shapes and value_info of dynamic exports name a symbolic batch
        // that conflicts with the concrete input qdet sets; the shapes are re-derived anyway.
        let source = tract_onnx::onnx()
            .with_ignore_output_shapes(true)
            .with_ignore_value_info(true)
            .model_for_read(&mut reader)
            .map_err(|e| Error::NotOnnx { path: path.into(), reason: root_cause(&e) })?;
        let meta = ModelMeta::from_props(metadata_props(&source), path)?;
        if let Some(task) = meta.task.as_deref().filter(|t| *t != "detect") {
            return Err(Error::NotDetect {
                path: path.into(),
                reason: format!("its metadata says task={task:?}; qdet runs detection exports only"),
            });
        }
        let not_detect = |reason: String| Error::NotDetect { path: path.into(), reason };
        // Ultralytics' nms=True export pads a data-dependent NonMaxSuppression result to 300
        // rows with shapes tract fixes at load time, so it fails on the first image with
        // fewer boxes. qdet runs Ultralytics' NMS itself: the plain export is the one to use.
        // By name (also below): tract-onnx's NonMaxSuppression and QuantizeLinear are private.
        if source.nodes().iter().any(|n| n.op.name() == "NonMaxSuppression") {
            return Err(Error::Unsupported {
                path: path.into(),
                reason: "it was exported with nms=True (NonMaxSuppression inside the graph), which qdet cannot run; \
                 export it again without nms=True: qdet applies Ultralytics' NMS itself"
                    .into(),
            });
        }
        let (precision, fixed_size) = input_of(&source).map_err(not_detect)?;
        if let (None, Some((h, w))) = (fixed_size, probe_size) {
            check_imgsz(h, w, meta.stride.unwrap_or(32) as usize).map_err(|reason| Error::format(path, reason))?;
        }
        let probe =
            fixed_size.or(probe_size).or(meta.imgsz.map(|(h, w)| (h as usize, w as usize))).unwrap_or((640, 640));
        let has_qdq = source.nodes().iter().any(|n| n.op.name() == "QuantizeLinear");
        // Without a SIMD kernel the portable one is about 8x slower than tract's float path:
        // simulate.
        let kernels_fast = crate::kernels::Isa::simd_available();
        let int8_convs = if has_qdq && int8 != Int8::Simulated && kernels_fast {
            use prost::Message;
            let proto = tract_onnx::pb::ModelProto::decode(bytes)
                .map_err(|e| Error::NotOnnx { path: path.into(), reason: e.to_string() })?;
            crate::onnx::qdq::quantized_convs(&proto)
        } else {
            Vec::new()
        };
        let mut model = Model {
            path: path.into(),
            meta,
            precision,
            fixed_size,
            head: Head::EndToEnd,
            source,
            plans: Mutex::new(Plans::default()),
            int8_convs: Arc::new(int8_convs),
            kernel: match int8 {
                Int8::Kernel(k) => Some(k.isa()),
                _ => None,
            },
            report: Mutex::new(None),
        };
        let plan = model.plan(probe)?;
        model.head = detect_head(&plan, &model.meta).map_err(not_detect)?;
        Ok(model)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the file's metadata says (names, stride, input size, ...).
    pub fn meta(&self) -> &ModelMeta {
        &self.meta
    }

    /// The input's element type.
    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Fixed `(height, width)` of a static model; `None` when height and width are symbolic.
    pub fn fixed_size(&self) -> Option<(usize, usize)> {
        self.fixed_size
    }

    /// What the first output holds.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Number of classes the model scores (for end-to-end models: from the metadata).
    pub fn num_classes(&self) -> usize {
        match self.head {
            Head::Raw { num_classes } => num_classes,
            Head::EndToEnd => self.meta.names.len(),
        }
    }

    /// The optimized plan for one input size, built on first use.
    fn plan(&self, size: (usize, usize)) -> Result<Plan> {
        let mut plans = self.plans.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(p) = plans.get(size) {
            return Ok(p);
        }
        let cx = Context { specs: &self.int8_convs, kernel: self.kernel };
        let (plan, report) =
            optimize_with(&self.source, self.input_type(), size, &cx).map_err(|e| Error::NotDetect {
                path: self.path.clone(),
                reason: format!("cannot prepare it for a {}x{} input: {}", size.1, size.0, root_cause(&e)),
            })?;
        plans.insert(size, plan.clone());
        *self.report.lock().unwrap_or_else(|p| p.into_inner()) = Some(report);
        Ok(plan)
    }

    /// What each graph pass (`passes::PASSES`) did, by name, for the latest plan
    /// built.
    pub fn pass_report(&self) -> Option<Report> {
        self.report.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// For a QDQ model on the integer kernels: how many Convs they run, how many SiLUs are
    /// fused, and which kernel (from the latest plan built).
    pub fn int8_report(&self) -> Option<PatchReport> {
        self.pass_report().filter(|_| !self.int8_convs.is_empty()).map(|r| PatchReport::from(&r))
    }

    fn input_type(&self) -> DatumType {
        match self.precision {
            Precision::F32 => DatumType::F32,
            Precision::F16 => DatumType::F16,
        }
    }

    /// Runs one image like [`Model::run`] and adds each node's time to `profile`, keyed by the
    /// node's id in the plan.
    pub fn run_profiled(
        &self,
        chw: &[f32],
        size: (usize, usize),
        profile: &mut BTreeMap<usize, NodeTime>,
    ) -> Result<()> {
        let plan = self.plan(size)?;
        let fail = |e: TractError| Error::Inference(root_cause(&e));
        let input = Tensor::from_shape(&[1, 3, size.0, size.1], chw).map_err(fail)?;
        let mut state = plan.spawn().map_err(fail)?;
        state
            .run_plan_with_eval(tvec!(input.into()), |ctx, st, node, inputs| {
                let t = std::time::Instant::now();
                let out = tract_onnx::tract_core::plan::eval(ctx, st, node, inputs);
                let took = t.elapsed();
                let e = profile.entry(node.id).or_insert_with(|| NodeTime {
                    op: node.op().name().to_string(),
                    total: Duration::ZERO,
                    best: Duration::MAX,
                });
                e.total += took;
                e.best = e.best.min(took);
                out
            })
            .map_err(fail)?;
        Ok(())
    }

    /// Runs the model on one letterboxed CHW image (`3 * h * w` floats in 0..1).
    pub fn run(&self, chw: &[f32], size: (usize, usize)) -> Result<RawOutput> {
        let plan = self.plan(size)?;
        let shape = [1, 3, size.0, size.1];
        // The plan's input is f32 even for an fp16-input export (see `plan`).
        let input = Tensor::from_shape(&shape, chw).map_err(|e| Error::Inference(root_cause(&e)))?;
        let fail = |e: TractError| Error::Inference(root_cause(&e));
        let mut outputs = plan.run(tvec!(input.into())).map_err(fail)?;
        if outputs.is_empty() {
            return Err(Error::Inference("the model has no outputs".into()));
        }
        let mut out = outputs.remove(0).into_tensor();
        if out.datum_type() != DatumType::F32 {
            out = out.cast_to::<f32>().map_err(fail)?.into_owned();
        }
        let shape = out.shape().to_vec();
        if shape.len() != 3 || shape[0] != 1 {
            return Err(Error::Inference(format!("unexpected output shape {shape:?}")));
        }
        let dims = (shape[1], shape[2]);
        if out.try_as_plain_ram().and_then(|v| v.as_slice::<f32>().map(|_| ())).is_ok() {
            return Ok(RawOutput { head: self.head, values: Values::Tensor(out), dims });
        }
        let view = out.to_plain_array_view::<f32>().map_err(fail)?;
        Ok(RawOutput::new(self.head, view.iter().copied().collect(), dims))
    }
}

/// Most plans a model keeps. A dynamic model gets a plan per letterboxed input shape (an
/// image's aspect ratio decides it, and `serve` clients choose `imgsz`): a long-running server
/// fed every shape must not keep one for each. 32 covers the rectangular shapes `val` meets
/// on a dataset of mixed aspect ratios at 640 (multiples of 32 for the short side), so that
/// it never rebuilds one.
const MAX_PLANS: usize = 32;

/// The plans of one model by input size, least recently used dropped first.
struct Plans<P = Plan> {
    by_size: HashMap<(usize, usize), (P, u64)>,
    clock: u64,
}

impl<P> Default for Plans<P> {
    fn default() -> Self {
        Plans { by_size: HashMap::new(), clock: 0 }
    }
}

impl<P: Clone> Plans<P> {
    fn get(&mut self, size: (usize, usize)) -> Option<P> {
        self.clock += 1;
        let now = self.clock;
        self.by_size.get_mut(&size).map(|(plan, used)| {
            *used = now;
            plan.clone()
        })
    }

    fn insert(&mut self, size: (usize, usize), plan: P) {
        if self.by_size.len() >= MAX_PLANS {
            if let Some(oldest) = self.by_size.iter().min_by_key(|(_, (_, used))| *used).map(|(k, _)| *k) {
                self.by_size.remove(&oldest);
            }
        }
        self.clock += 1;
        self.by_size.insert(size, (plan, self.clock));
    }
}

/// Optimizes a loaded graph for one `[1, 3, h, w]` input of type `input_type`: qdet's graph
/// passes ([`crate::passes::PASSES`], with `cx`) on the typed model, then tract's optimizer.
/// Returns the plan and what the passes did.
pub(crate) fn optimize_with(
    source: &InferenceModel,
    input_type: DatumType,
    size: (usize, usize),
    cx: &Context,
) -> TractResult<(Plan, Report)> {
    let mut typed =
        source.clone().with_input_fact(0, InferenceFact::dt_shape(input_type, [1, 3, size.0, size.1]))?.into_typed()?;
    let mut report = crate::passes::run(&mut typed, cx)?;
    let plan = typed.into_optimized()?.into_runnable()?;
    report.convs_in_plan = plan.model().nodes().iter().filter(|n| n.op_is::<QConvOp>()).count();
    Ok((plan, report))
}

/// The precision and, for a static export, the size of the model's one image input.
fn input_of(source: &InferenceModel) -> std::result::Result<(Precision, Option<(usize, usize)>), String> {
    if source.inputs.len() != 1 {
        return Err(format!("expected one image input, found {}", source.inputs.len()));
    }
    let fact = source.input_fact(0).map_err(|e| root_cause(&e))?;
    let precision = match fact.datum_type.concretize() {
        Some(DatumType::F32) | None => Precision::F32,
        Some(DatumType::F16) => Precision::F16,
        Some(other) => return Err(format!("input type {other:?} is not a float image")),
    };
    if fact.shape.is_open() {
        return Err("the input has no known rank".into());
    }
    let dims: Vec<Option<usize>> = fact.shape.dims().map(|d| d.concretize().and_then(|d| d.to_usize().ok())).collect();
    if dims.len() != 4 || dims[1].is_some_and(|c| c != 3) {
        return Err(format!("input shape {:?} is not [batch, 3, height, width]", fact.shape));
    }
    let fixed_size = match (dims[2], dims[3]) {
        (Some(h), Some(w)) => Some((h, w)),
        _ => None,
    };
    Ok((precision, fixed_size))
}

/// Decides from the concrete output shapes what kind of head this is, and rejects the
/// Ultralytics exports that are not plain detection.
fn detect_head(plan: &Plan, meta: &ModelMeta) -> std::result::Result<Head, String> {
    let model = plan.model();
    let shapes: Vec<Vec<usize>> = model
        .output_outlets()
        .map_err(|e| root_cause(&e))?
        .iter()
        .map(|o| {
            let fact = model.outlet_fact(*o).map_err(|e| root_cause(&e))?;
            fact.shape.as_concrete().map(|s| s.to_vec()).ok_or_else(|| "output shape is not concrete".to_string())
        })
        .collect::<std::result::Result<_, String>>()?;
    let first = shapes.first().ok_or("the model has no outputs")?;
    if shapes.len() > 1 && shapes[1].len() == 4 {
        return Err(format!(
            "it has a second output of shape {:?} (mask prototypes): this is a segmentation export",
            shapes[1]
        ));
    }
    match first.as_slice() {
        [1, _] => Err(format!("its output {first:?} is one score per class: this is a classification export")),
        // A raw head has at least 21 anchors even for a 32x32 input, so 6 columns means NMS is inside.
        [1, _, 6] => Ok(Head::EndToEnd),
        [1, c, n] if *c > 4 && n > c => {
            let nc = c - 4;
            if !meta.names.is_empty() && meta.names.len() != nc {
                return Err(format!(
                    "its output has {nc} class scores but its metadata names {} classes (pose or other head?)",
                    meta.names.len()
                ));
            }
            Ok(Head::Raw { num_classes: nc })
        }
        _ => Err(format!("output shape {first:?} is neither [1, 4+classes, anchors] nor [1, k, 6]")),
    }
}

/// The ONNX `metadata_props`, as tract stores them under `onnx.metadata_props.<key>`.
fn metadata_props(model: &InferenceModel) -> BTreeMap<String, String> {
    model
        .properties
        .iter()
        .filter_map(|(k, v)| {
            let key = k.strip_prefix("onnx.metadata_props.")?;
            let value = v.try_as_plain_ram().ok()?.to_scalar::<String>().ok()?.clone();
            Some((key.to_string(), value))
        })
        .collect()
}

/// tract errors chain context; users need the innermost reason and the outer step.
pub(crate) fn root_cause(e: &TractError) -> String {
    let chain: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    match chain.as_slice() {
        [] => e.to_string(),
        [only] => only.clone(),
        [first, .., last] => format!("{first}: {last}"),
    }
}

#[cfg(test)]
mod plan_cache_tests {
    use super::{Plans, MAX_PLANS};

    /// Past `MAX_PLANS` sizes the least recently used plan goes, and only it.
    #[test]
    fn least_recently_used_plan_is_dropped() {
        let mut plans: Plans<usize> = Plans::default();
        for i in 0..MAX_PLANS {
            plans.insert((i, i), i);
        }
        assert_eq!(plans.get((0, 0)), Some(0)); // (1, 1) is now the oldest
        plans.insert((999, 999), 999);
        assert_eq!(plans.by_size.len(), MAX_PLANS);
        assert_eq!(plans.get((1, 1)), None);
        assert_eq!(plans.get((0, 0)), Some(0));
        assert_eq!(plans.get((2, 2)), Some(2));
        assert_eq!(plans.get((999, 999)), Some(999));
    }
}
