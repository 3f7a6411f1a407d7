//! qdet's int8 convolution kernels against tract's f32 convolution on the same shapes (layers
//! of the COCO yolov8n at 640), one thread. Throughput is in multiply-adds: criterion's
//! "elem/s" is MAC/s. Shapes: (in_c, out_c, k, stride, input side). The `tile` group times
//! the micro-kernel alone, on the widest kernel this CPU has: 16 pixels x 16 channels of a
//! k x k conv over `in_c` channels, image and weights in cache, no packing or epilogue. The
//! `epilogue` group times the epilogue alone on a row of 80 pixels (16 channels each): scale
//! and bias, SiLU or not, requantized to uint8; "elem/s" there is 16-channel pixels a second.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use qdet::internals::Isa;
use qdet::internals::{proto, ConvShape, Epilogue, QConv};
use tract_onnx::pb;
use tract_onnx::prelude::*;

const SHAPES: &[(&str, usize, usize, usize, usize, usize)] = &[
    ("model.1 3x3 s2 16->32 @320", 16, 32, 3, 2, 320),
    ("model.2.m.0 3x3 16->16 @160", 16, 16, 3, 1, 160),
    ("model.4.cv1 1x1 64->64 @80", 64, 64, 1, 1, 80),
    ("model.7 3x3 s2 128->256 @40", 128, 256, 3, 2, 40),
];

fn shape(in_c: usize, out_c: usize, k: usize, stride: usize, side: usize) -> ConvShape {
    let p = k / 2;
    ConvShape {
        in_c,
        in_h: side,
        in_w: side,
        out_c,
        kh: k,
        kw: k,
        stride: (stride, stride),
        pad: [p; 4],
        dilation: (1, 1),
    }
}

/// A one-Conv ONNX model, optimized by tract.
fn tract_conv(s: &ConvShape) -> Arc<TypedRunnableModel> {
    let w: Vec<f32> = (0..s.out_c * s.k()).map(|i| ((i * 7919) % 255) as f32 / 255.0 - 0.5).collect();
    let b: Vec<f32> = vec![0.1; s.out_c];
    let ints = |name: &str, v: Vec<i64>| pb::AttributeProto {
        name: name.into(),
        r#type: pb::attribute_proto::AttributeType::Ints as i32,
        ints: v,
        ..Default::default()
    };
    let (k, st, p) = (s.kh as i64, s.stride.0 as i64, s.pad[0] as i64);
    let conv = proto::node(
        "Conv",
        "conv",
        &["images", "w", "b"],
        &["y"],
        vec![ints("kernel_shape", vec![k, k]), ints("strides", vec![st, st]), ints("pads", vec![p; 4])],
    );
    let dim = |d: i64| pb::tensor_shape_proto::Dimension {
        value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(d)),
        ..Default::default()
    };
    let input = pb::ValueInfoProto {
        name: "images".into(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto {
                    dim: vec![dim(1), dim(s.in_c as i64), dim(s.in_h as i64), dim(s.in_w as i64)],
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    let graph = pb::GraphProto {
        node: vec![conv],
        initializer: vec![
            proto::f32_tensor("w", &[s.out_c as i64, s.in_c as i64, k, k], &w),
            proto::f32_tensor("b", &[s.out_c as i64], &b),
        ],
        input: vec![input],
        output: vec![proto::output("y")],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(graph),
        ..Default::default()
    };
    tract_onnx::onnx()
        .model_for_proto_model(&model)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("tract runs the conv")
}

fn benches(c: &mut Criterion) {
    let pool = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut g = c.benchmark_group("conv");
    g.sample_size(10);
    for &(name, in_c, out_c, k, stride, side) in SHAPES {
        let s = shape(in_c, out_c, k, stride, side);
        g.throughput(Throughput::Elements(s.macs()));
        let xf: Vec<f32> = (0..in_c * side * side).map(|i| (i % 251) as f32 / 251.0).collect();
        let plan = tract_conv(&s);
        let input = Tensor::from_shape(&[1, in_c, side, side], &xf).unwrap();
        g.bench_function(BenchmarkId::new("tract_f32", name), |b| {
            b.iter(|| plan.run(tvec!(input.clone().into())).unwrap())
        });
        let xq: Vec<u8> = (0..in_c * side * side).map(|i| (i % 251) as u8).collect();
        let scale = vec![1e-3f32; out_c];
        let bias = vec![0.1f32; out_c];
        for isa in [
            Isa::ScalarQuads,
            Isa::SseMadd16,
            Isa::SseMaddubs,
            Isa::Avx2Madd16,
            Isa::Avx2Maddubs,
            Isa::AvxVnni,
            Isa::Avx512VnniYmm,
            Isa::Avx512Vnni,
        ]
        .into_iter()
        .filter(|i| i.available())
        {
            let w: Vec<i8> = (0..out_c * s.k()).map(|i| ((i * 7919) % 127) as i8 - 63).collect();
            let conv = QConv::new(s, &w, isa);
            let e = Epilogue { scale: &scale, bias: &bias, silu: true };
            g.bench_with_input(BenchmarkId::new(format!("int8_{isa:?}"), name), &xq, |b, x| {
                b.iter(|| pool.install(|| conv.run_f32(x, 3, e)))
            });
        }
    }
    g.finish();
}

fn tiles(c: &mut Criterion) {
    use qdet::internals::{tile, OC_BLOCK, WGROUP_BYTES};
    let Some(isa) = [Isa::Avx512Vnni, Isa::NeonI8mm, Isa::NeonDot, Isa::Avx512VnniYmm, Isa::Avx2Madd16]
        .into_iter()
        .find(|i| i.available())
    else {
        return;
    };
    let mut g = c.benchmark_group(format!("tile_{isa:?}"));
    for (in_c, k) in [(16usize, 3usize), (64, 3), (128, 3), (32, 1), (64, 1), (256, 1)] {
        // One row of an 82-pixel-wide padded image, `in_c` bytes a pixel (4-channel groups).
        let (px, width, pixels) = (in_c, 82, 16);
        let taps: Vec<usize> = (0..k).flat_map(|ky| (0..k).map(move |kx| (ky * width + kx) * px)).collect();
        let x = vec![3u8; (k + 1) * width * px];
        let w = vec![1u8; taps.len() * (in_c / 4) * WGROUP_BYTES];
        let mut acc = vec![[0i32; OC_BLOCK]; pixels];
        g.throughput(Throughput::Elements((pixels * OC_BLOCK * taps.len() * in_c) as u64));
        g.bench_function(format!("{k}x{k} {in_c} channels"), |b| {
            b.iter(|| tile(isa, &x, 0, px, &taps, in_c / 4, &w, &[0; OC_BLOCK], &mut acc))
        });
    }
    g.finish();
}

fn epilogues(c: &mut Criterion) {
    use qdet::internals::{epilogue_row, Affine, Dest, Quantizer, OC_BLOCK};
    let pixels = 80;
    // Sums spread like a conv's: scaled to -3..3, where SiLU's exp does real work.
    let acc: Vec<[i32; OC_BLOCK]> =
        (0..pixels).map(|j| std::array::from_fn(|o| ((j * 7919 + o * 104_729) % 20_001) as i32 - 10_000)).collect();
    let q = Quantizer::new(0.02, 20);
    let mut out = vec![0u8; pixels * OC_BLOCK];
    let mut g = c.benchmark_group("epilogue");
    g.throughput(Throughput::Elements(pixels as u64));
    for silu in [true, false] {
        let f = Affine { scale: [3e-4; OC_BLOCK], bias: [0.1; OC_BLOCK], silu };
        let name = if silu { "uint8 with SiLU" } else { "uint8" };
        g.bench_function(name, |b| b.iter(|| epilogue_row(&acc, &f, Dest::U8 { out: &mut out, stride: OC_BLOCK, q })));
    }
    g.finish();
}

criterion_group!(int8, benches, tiles, epilogues);
criterion_main!(int8);
