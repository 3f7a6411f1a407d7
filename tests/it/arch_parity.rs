//! The same detections on every architecture and every integer kernel: the fixture's fp32 and
//! int8 models on 12 val images against what the x86_64 build detects
//! (tests/data/arch/*.json, written on x86_64 by the ignored `write_x86_reference` below).
//! On x86_64 this holds the reference to the current build; under `qemu-aarch64`
//! (`.ci/aarch64.sh`, three CPU models) it checks tract's ARM float kernels and each NEON
//! integer kernel the CPU model has.
//!
//! fp32 must agree to 1e-4 (px and confidence): only the float kernels' summation order
//! differs. int8 to 1 px and 0.01: the integer sums are exact on every kernel, but the
//! float steps between them (tract's ops, the epilogue's rounding of `x / scale`) can put a
//! value within an ulp of a rounding boundary one uint8 step apart.

use qdet::internals::{isa_of, kernel_of, Isa, WeightRange};
use qdet::{read_image, Detector, Int8, Kernel, Model, NmsOptions};

use crate::util::*;

const FP32: &str = "models/shapes-yolov8n.onnx";
const INT8: &str = "models/shapes-yolov8n.int8.onnx";
const FP32_REF: &str = "tests/data/arch/shapes-fp32-x86_64.json";
const INT8_REF: &str = "tests/data/arch/shapes-int8-x86_64.json";
/// The int8 detections of x86_64 CPUs without FMA (SSE only), whose float loops multiply
/// then add (`QDET_CPU=sse4` on any x86_64): float steps an ulp apart move some uint8 values
/// a step, and detections up to 0.02 in confidence.
const INT8_UNFUSED_REF: &str = "tests/data/arch/shapes-int8-x86_64-unfused.json";
const IMAGES: usize = 12;
const CONF: f32 = 0.25;

fn images() -> Vec<String> {
    (0..IMAGES).map(|i| format!("datasets/shapes/images/val/val_{i:04}.jpg")).collect()
}

fn detector(model: &str, int8: Int8) -> Detector {
    let model = Model::load_with(&root().join(model), None, int8).unwrap_or_else(|e| panic!("{e}"));
    Detector::new(model, None, NmsOptions::default().with_conf(CONF))
}

fn check(det: &Detector, reference: &str, box_tol: f32, conf_tol: f32) -> usize {
    let reference = load_reference(reference);
    assert_eq!(reference.images.keys().cloned().collect::<Vec<_>>(), images(), "the reference's images");
    let (mut problems, mut compared) = (Vec::new(), 0);
    for (rel, want) in &reference.images {
        let path = root().join(rel);
        let got =
            det.detect(&read_image(&path).unwrap_or_else(|e| panic!("{e}"))).unwrap_or_else(|e| panic!("{rel}: {e}"));
        problems.extend(compare(&path, &got, &want.detections, reference.conf, box_tol, conf_tol));
        compared += want.detections.len();
    }
    assert!(compared > 30, "the reference holds {compared} detections");
    assert!(problems.is_empty(), "{} mismatches:\n{}", problems.len(), problems.join("\n"));
    compared
}

#[test]
fn fp32_detections_equal_the_x86_build() {
    let n = check(&detector(FP32, Int8::Native), FP32_REF, 1e-4, 1e-4);
    eprintln!("fp32: {n} detections within 1e-4 of x86_64");
}

/// Every SIMD integer kernel this CPU has (exact for the fixture's pair-bounded 8-bit
/// weights), each running the whole model, and the one `qdet detect` picks by default.
#[test]
fn int8_detections_on_every_kernel_equal_the_x86_build() {
    let default = detector(INT8, Int8::Native);
    let report = default.model().int8_report().expect("the QDQ model runs on the integer kernels");
    // The fixture's weights are pair-bounded, as `calibrate` writes them by default: every
    // conv on the fastest kernel for such weights (`vpmaddubsw` on AVX2 and SSE CPUs).
    let bounded = WeightRange { max_abs: 127, max_pair: 128 };
    assert_eq!(report.kernels, [(kernel_of(Isa::best(bounded)), 63)], "{report:?}");
    #[cfg(target_arch = "aarch64")]
    assert!(
        matches!(report.most_used_kernel().map(isa_of), Some(Isa::NeonI8mm | Isa::NeonDot | Isa::NeonMull)),
        "an ARM kernel: {report:?}"
    );
    // The same rewrites as on x86_64 (parity_ultralytics.rs counts them).
    assert_eq!((report.replaced, report.silu_fused, report.convs_in_plan), (63, 57, 63), "{report:?}");
    let simd = |k: &Kernel| isa_of(*k) != isa_of(*k).twin() && k.available() && isa_of(*k).exact_for(bounded);
    let mut kernels: Vec<Kernel> = Kernel::all().iter().copied().filter(simd).collect();
    assert!(!kernels.is_empty(), "no SIMD kernel on this CPU");
    // Under emulation a CPU model can skip the kernels another run already held to the
    // reference with the same float loops (.ci/x86_64.sh: Haswell runs the AVX2 ones; its SSE
    // kernels with fused loops are the native run's). Every name given must be one it has.
    if let Some(names) = std::env::var("QDET_PARITY_KERNELS").ok().filter(|n| !n.is_empty()) {
        let wanted: Vec<&str> = names.split(',').collect();
        for name in &wanted {
            assert!(
                kernels.iter().any(|k| k.name() == *name),
                "QDET_PARITY_KERNELS: {name} is not a kernel of this CPU"
            );
        }
        kernels.retain(|k| wanted.contains(&k.name()));
    }
    for kernel in kernels {
        let det = detector(INT8, Int8::Kernel(kernel));
        assert_eq!(det.model().int8_report().map(|r| r.kernels), Some(vec![(kernel, 63)]));
        let n = check(&det, int8_reference(), 1.0, 0.01);
        eprintln!("int8 on {kernel}: {n} detections within 1 px / 0.01 of x86_64");
    }
}

/// The x86_64 int8 reference of this CPU's kind of float loops.
fn int8_reference() -> &'static str {
    if qdet::internals::float_loops_fused() {
        INT8_REF
    } else {
        INT8_UNFUSED_REF
    }
}

/// Writes the references from this build (run on x86_64 after a change that moves
/// detections: `cargo test --release --test it arch_parity -- --ignored`, then again with
/// `QDET_CPU=sse4` for the int8 reference of CPUs without FMA).
#[cfg(target_arch = "x86_64")]
#[test]
#[ignore]
fn write_x86_reference() {
    let refs: &[(&str, &str)] = if qdet::internals::float_loops_fused() {
        &[(FP32, FP32_REF), (INT8, INT8_REF)]
    } else {
        &[(INT8, INT8_UNFUSED_REF)]
    };
    for &(model, out) in refs {
        let det = detector(model, Int8::Native);
        let mut found = serde_json::Map::new();
        for rel in images() {
            let img = read_image(&root().join(&rel)).unwrap();
            let dets: Vec<_> = det
                .detect(&img)
                .unwrap()
                .iter()
                .map(|d| serde_json::json!({ "class": d.class, "conf": d.score, "box": d.bbox }))
                .collect();
            found.insert(rel, serde_json::json!({ "width": img.width, "height": img.height, "detections": dets }));
        }
        let text = serde_json::to_string_pretty(&serde_json::json!({ "conf": CONF, "images": found })).unwrap();
        let path = root().join(out);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text + "\n").unwrap();
    }
}
