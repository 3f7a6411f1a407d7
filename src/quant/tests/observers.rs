//! Parity of `crate::quant::observers` with PPQ 0.6.6's own observers, on the fixture written by
//! `tools/parity/ppq_observers_reference.py` (tests/data/quant/observers.json).
//!
//! Zero points and f32 scales must be bit-identical: PPQ computes scales in f64 (Python
//! floats) and stores them as f32, and so do we. (The JSON holds each f32 scale as an f64;
//! serde_json's default float parser may be one f64 ulp off, so the comparison is on the value
//! cast back to f32, which that cannot change.)

use serde_json::Value;

use crate::quant::observers::{
    weight_scales_per_channel, KlObserver, MinMaxObserver, MseObserver, PercentileObserver, QuantBounds, QuantParams,
    DEFAULT_PERCENTILE,
};
use crate::tests::load_json;

fn fixture() -> Value {
    load_json("tests/data/quant/observers.json")
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap() as f32).collect()
}

fn bounds(name: &str) -> QuantBounds {
    match name {
        "asym_u8" => QuantBounds::ASYM_U8,
        "sym_i8" => QuantBounds::SYM_I8,
        "sym_i8_narrow" => QuantBounds::SYM_I8_NARROW,
        other => panic!("unknown bounds {other}"),
    }
}

fn ours(observer: &str, b: QuantBounds, batches: &[Vec<f32>]) -> QuantParams {
    match observer {
        "minmax" => {
            let mut o = MinMaxObserver::new();
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.params(b).unwrap()
        }
        "percentile" | "percentile0.999" => {
            let p = if observer == "percentile" { DEFAULT_PERCENTILE } else { 0.999 };
            let mut o = PercentileObserver::new(p);
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.params(b).unwrap()
        }
        "kl" => {
            let mut o = KlObserver::default();
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.start_histogram().unwrap();
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.params(b).unwrap()
        }
        "mse" => {
            let mut o = MseObserver::new(b);
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.start_histogram().unwrap();
            batches.iter().for_each(|x| o.observe(x).unwrap());
            o.params().unwrap()
        }
        other => panic!("unknown observer {other}"),
    }
}

/// `uniform_outlier_batches()` of the reference script: 4 x 65536 values `k / 65536` with
/// `k = (i * 7919 + b * 104729) mod 65536`, batch 0's first value replaced by 1.2.
fn uniform_outlier_batches() -> Vec<Vec<f32>> {
    (0..4u64)
        .map(|b| {
            let mut x: Vec<f32> = (0..65536u64).map(|i| ((i * 7919 + b * 104729) % 65536) as f32 / 65536.0).collect();
            if b == 0 {
                x[0] = 1.2;
            }
            x
        })
        .collect()
}

#[test]
fn activation_observers_match_ppq() {
    let fx = fixture();
    let mut checked = 0;
    let mut failures = Vec::new();
    for case in fx["activations"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let batches: Vec<Vec<f32>> = if case["generated"].as_bool() == Some(true) {
            assert_eq!(name, "uniform_outlier");
            uniform_outlier_batches()
        } else {
            case["batches"].as_array().unwrap().iter().map(floats).collect()
        };
        for (key, want) in case["results"].as_object().unwrap() {
            let (observer, b) = key.split_once('/').unwrap();
            let got = ours(observer, bounds(b), &batches);
            let want_scale = want["scale"].as_f64().unwrap() as f32;
            let want_zp = want["zero_point"].as_i64().unwrap();
            if got.scale != want_scale || i64::from(got.zero_point) != want_zp {
                failures.push(format!("{name} {key}: ours {got:?}, PPQ scale {want_scale} zp {want_zp}"));
            }
            checked += 1;
        }
    }
    eprintln!("checked {checked} observer results");
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    assert!(checked >= 50);
}

#[test]
fn weight_scales_match_ppq() {
    let fx = fixture();
    let w = &fx["weights"];
    let values = floats(&w["values"]);
    let out_channels = w["shape"][0].as_u64().unwrap() as usize;
    for (b, want) in w["results"].as_object().unwrap() {
        let got = weight_scales_per_channel(&values, out_channels, bounds(b));
        let want_scales = floats(&want["scales"]);
        assert_eq!(got.len(), want_scales.len());
        for (c, (g, e)) in got.iter().zip(&want_scales).enumerate() {
            assert_eq!(g, e, "{b} channel {c}");
        }
        assert!(want["zero_points"].as_array().unwrap().iter().all(|z| z.as_i64() == Some(0)));
    }
}
