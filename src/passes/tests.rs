//! The pass list on the bundled fixtures, its counts pinned.

use tract_onnx::prelude::*;

use super::*;

fn typed(file: &str) -> TypedModel {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
    tract_onnx::onnx()
        .with_ignore_output_shapes(true)
        .with_ignore_value_info(true)
        .model_for_path(path)
        .unwrap()
        .with_input_fact(0, f32::fact([1, 3, 320, 320]).into())
        .unwrap()
        .into_typed()
        .unwrap()
}

fn specs(file: &str) -> Vec<QConvSpec> {
    use prost::Message;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("models").join(file);
    let proto = tract_onnx::pb::ModelProto::decode(std::fs::read(path).unwrap().as_slice()).unwrap();
    crate::onnx::qdq::quantized_convs(&proto)
}

/// The order of the module doc, which says why each pass is where it is.
#[test]
fn passes_run_in_the_documented_order() {
    let names: Vec<&str> = PASSES.iter().map(|p| p.name()).collect();
    assert_eq!(
        names,
        [
            "f16_to_f32",
            "dfl",
            "softmax",
            "int8_conv",
            "quantize_u8",
            "residual_add",
            "split_outputs",
            "requantize",
            "hand_over_packed",
            "quantize_concat",
            "concat_inputs",
            "max_pool_u8",
            "resize_u8",
            "concat_packed",
            "drop_unread_outputs",
            "f32_conv",
            "concat_f32",
        ]
    );
}

/// The int8 fixture at 320 on the integer kernels. The counts are those the rewrites made
/// before they became this list (measured on the old `int8::op::patch` and the
/// `ops::*::patch` calls of `model::optimize_with`, before the refactor): 63 convs, 57 with
/// SiLU, 6 residual Adds, 8 Splits, 44 requantizations all handed over packed, 13 Concats
/// quantized in place with 33 of their inputs, 3 MaxPools, 2 Resizes; the DFL head and one
/// large f32 Concat. `quantize_u8` and `drop_unread_outputs` were not counted then: 58
/// QuantizeLinears feed the convs, and no conv is left with an output nothing reads.
/// `int8_conv.parts` counts convs reading a Concat quantized per input: none in this file
/// (`calibrate --concat-scales input` writes them; tests/it/cli_calibrate.rs).
#[test]
fn int8_fixture_counts() {
    let file = "shapes-yolov8n.int8.onnx";
    let specs = specs(file);
    let mut model = typed(file);
    let report = run(&mut model, &Context { specs: &specs, kernel: None }).unwrap();
    let counts: Vec<(&str, usize)> = report.counts.clone();
    assert_eq!(
        counts,
        [
            ("f16_to_f32", 0),
            ("dfl", 1),
            ("softmax", 0),
            ("int8_conv", 63),
            ("int8_conv.silu", 57),
            ("int8_conv.parts", 0),
            ("quantize_u8", 58),
            ("residual_add", 6),
            ("split_outputs", 8),
            ("requantize", 44),
            ("hand_over_packed", 44),
            ("quantize_concat", 13),
            ("concat_inputs", 33),
            ("max_pool_u8", 3),
            ("resize_u8", 2),
            ("concat_packed", 13),
            ("drop_unread_outputs", 0),
            ("f32_conv", 0),
            ("f32_conv.silu", 0),
            ("f32_conv.residual", 0),
            ("concat_f32", 1),
            ("concat_f32.sigmoid", 0),
        ],
        "{report}"
    );
    assert_eq!(report.conv_kernels.len(), 63, "a kernel for each int8 conv");
    let plan = model.into_optimized().unwrap();
    assert_eq!(plan.nodes().iter().filter(|n| n.op_is::<crate::ops::qconv::QConvOp>()).count(), 63);
}

/// The float fixture: no int8 pass rewrites anything; every conv but the DFL's (already
/// decoded by `dfl`) on the fp32 kernels, the 57 followed by a SiLU with it fused, the 6
/// bottlenecks' shortcut Adds in their second conv; the Concats and Splits those convs read
/// are read in place, so only the head's Concat is left for `concat_f32`.
#[test]
fn float_fixture_counts() {
    let mut model = typed("shapes-yolov8n.onnx");
    let report = run(&mut model, &Context::default()).unwrap();
    let nonzero: Vec<(&str, usize)> = report.counts.iter().copied().filter(|c| c.1 > 0).collect();
    assert_eq!(
        nonzero,
        [("dfl", 1), ("f32_conv", 63), ("f32_conv.silu", 57), ("f32_conv.residual", 6), ("concat_f32", 1)],
        "{report}"
    );
    assert!(report.kernels().is_empty());
}

/// `concat_packed` only moves bytes: the int8 fixture's outputs are bit for bit those of the
/// list without it, and every C2f and SPPF concatenation is written in its conv's layout.
#[test]
fn concat_packed_changes_no_bit() {
    let file = "shapes-yolov8n.int8.onnx";
    let specs = specs(file);
    let cx = Context { specs: &specs, kernel: None };
    let outputs = |skip: bool| {
        let mut model = typed(file);
        let mut report = Report::default();
        let mut packed = 0;
        for pass in PASSES.iter().filter(|p| !(skip && p.name() == "concat_packed")) {
            let n = pass.run(&mut model, &cx, &mut report).unwrap();
            if pass.name() == "concat_packed" {
                packed = n;
            }
        }
        let plan = model.into_optimized().unwrap().into_runnable().unwrap();
        let x: Vec<f32> = (0..3 * 320 * 320).map(|i| ((i * 7919 % 256) as f32) / 255.0).collect();
        let input = Tensor::from_shape(&[1, 3, 320, 320], &x).unwrap();
        let out = plan.run(tvec!(input.into_tvalue())).unwrap();
        (
            packed,
            out.iter()
                .map(|t| {
                    t.try_as_plain_ram()
                        .unwrap()
                        .as_slice::<f32>()
                        .unwrap()
                        .iter()
                        .map(|v| v.to_bits())
                        .collect::<Vec<_>>()
                })
                .collect::<Vec<_>>(),
        )
    };
    let (packed, with) = outputs(false);
    let (_, without) = outputs(true);
    assert_eq!(packed, 13);
    assert!(with == without, "concat_packed changed the outputs");
}
