//! fp32 against int8, stage by stage (preprocess, inference, postprocess), on the fixture model
//! and its int8 QDQ twin at 320; set QDET_BENCH_MODEL and QDET_BENCH_INT8_MODEL (and
//! optionally QDET_BENCH_IMAGE) to add another pair, e.g. the COCO yolov8n at 640 and the file
//! `qdet calibrate` makes from it. QDET_BENCH_THREADS sets the threads inside one inference
//! (run the bench once per value: the thread pools are process-wide).

use std::path::{Path, PathBuf};

use criterion::{criterion_group, criterion_main, Criterion};
use qdet::read_image as read_rgb;
use qdet::Detector;
use qdet::NmsOptions;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn bench_pair(c: &mut Criterion, name: &str, models: [(&str, &Path); 2], image: &Path) {
    let img = read_rgb(image).expect("bench image decodes");
    let mut g = c.benchmark_group(name);
    g.sample_size(15);
    for (kind, path) in models {
        let det = Detector::load(path, None, NmsOptions::default()).expect("model loads");
        let prepared = det.prepare(&img).unwrap();
        let raw = det.infer(&prepared).unwrap();
        g.bench_function(format!("{kind}/preprocess"), |b| b.iter(|| det.prepare(&img).unwrap()));
        g.bench_function(format!("{kind}/inference"), |b| b.iter(|| det.infer(&prepared).unwrap()));
        g.bench_function(format!("{kind}/postprocess"), |b| b.iter(|| det.postprocess(&raw, prepared.letterbox())));
    }
    g.finish();
}

fn benches(c: &mut Criterion) {
    let threads: usize = std::env::var("QDET_BENCH_THREADS").ok().and_then(|t| t.parse().ok()).unwrap_or(1);
    qdet::RuntimeOptions::default().with_threads(threads).apply().expect("threads per inference");
    let val_image = root().join("datasets/shapes/images/val/val_0000.jpg");
    let fixture =
        [("fp32", root().join("models/shapes-yolov8n.onnx")), ("int8", root().join("models/shapes-yolov8n.int8.onnx"))];
    bench_pair(c, &format!("shapes320_t{threads}"), [("fp32", &fixture[0].1), ("int8", &fixture[1].1)], &val_image);
    if let (Ok(fp32), Ok(int8)) = (std::env::var("QDET_BENCH_MODEL"), std::env::var("QDET_BENCH_INT8_MODEL")) {
        let image = std::env::var("QDET_BENCH_IMAGE").map(PathBuf::from).unwrap_or(val_image);
        bench_pair(c, &format!("custom_t{threads}"), [("fp32", Path::new(&fp32)), ("int8", Path::new(&int8))], &image);
    }
}

criterion_group!(fp32_vs_int8, benches);
criterion_main!(fp32_vs_int8);
