//! fp32 detection, stage by stage: decode, preprocess (letterbox), inference, postprocess.
//!
//! Runs on the bundled fixture model and a val image; set QDET_BENCH_MODEL (and optionally
//! QDET_BENCH_IMAGE) to bench another model too, e.g. the COCO yolov8n at
//! ../shared/models/yolov8n-coco.onnx. QDET_BENCH_THREADS sets tract's thread count.

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use qdet::read_image as read_rgb;
use qdet::Detector;
use qdet::NmsOptions;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench_model(c: &mut Criterion, name: &str, model: &Path, image: &Path) {
    let det = Detector::load(model, None, NmsOptions::default()).expect("model loads");
    let bytes = std::fs::read(image).expect("bench image");
    let mut g = c.benchmark_group(name);
    g.sample_size(20);
    g.bench_function("decode", |b| b.iter(|| qdet::decode_image(&bytes).unwrap()));
    let img = read_rgb(image).expect("bench image decodes");
    g.bench_function("preprocess", |b| b.iter(|| det.prepare(&img).unwrap()));
    let prepared = det.prepare(&img).unwrap();
    g.bench_function("inference", |b| b.iter(|| det.infer(&prepared).unwrap()));
    let raw = det.infer(&prepared).unwrap();
    g.bench_function("postprocess", |b| b.iter(|| det.postprocess(&raw, prepared.letterbox())));
    g.bench_function("end_to_end", |b| {
        b.iter(|| {
            let img = qdet::decode_image(&bytes).unwrap();
            det.detect(&img).unwrap()
        })
    });
    g.finish();
}

fn benches(c: &mut Criterion) {
    let threads: usize = std::env::var("QDET_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    qdet::RuntimeOptions::default().with_threads(threads).apply().expect("threads per inference");
    let val_image = root().join("datasets/shapes/images/val/val_0000.jpg");
    bench_model(c, &format!("shapes_t{threads}"), &root().join("models/shapes-yolov8n.onnx"), &val_image);
    if let Ok(model) = std::env::var("QDET_BENCH_MODEL") {
        let image = std::env::var("QDET_BENCH_IMAGE").map(PathBuf::from).unwrap_or(val_image);
        bench_model(c, &format!("custom_t{threads}"), Path::new(&model), &image);
    }
}

criterion_group!(detect, benches);
criterion_main!(detect);
