//! Every gradient of `grad` against central finite differences of its forward, in f64 where
//! the forward is linear and with a step that keeps away from kinks where it is not.

use tract_onnx::prelude::tract_ndarray::Array2;

use super::grad::*;
use crate::dataset::rng::Rng;
use crate::quant::gptq::{patches_at, ConvGeometry};

fn uniform(rng: &mut Rng, n: usize, lo: f32, hi: f32) -> Vec<f32> {
    (0..n).map(|_| lo + (hi - lo) * (rng.below(1 << 24) as f32 / (1u64 << 24) as f32)).collect()
}

/// The patches GPTQ and the reconstruction read against a direct convolution: `w cols + b`
/// is the conv's output at each pixel.
#[test]
fn patches_times_weights_is_the_convolution() {
    let mut rng = Rng::for_item(41, "reconstruct", 0);
    let (c, h, w, o, k) = (3usize, 7usize, 6usize, 4usize, 3usize);
    let x = uniform(&mut rng, c * h * w, -1.0, 1.0);
    let wt = uniform(&mut rng, o * c * k * k, -1.0, 1.0);
    let b = uniform(&mut rng, o, -0.5, 0.5);
    for stride in [1usize, 2] {
        let (oh, ow) = ((h + 2 - k) / stride + 1, (w + 2 - k) / stride + 1);
        let at: Vec<(usize, usize)> = (0..oh).flat_map(|y| (0..ow).map(move |x| (y, x))).collect();
        let g = ConvGeometry { kernel: [k, k], stride: [stride, stride], pads: [1, 1, 1, 1] };
        assert_eq!(g.positions(h, w), at.len());
        let flat: Vec<usize> = at.iter().map(|&(y, x)| y * ow + x).collect();
        let rows = patches_at(&x, [c, h, w], &g, &flat);
        let cols = Array2::from_shape_vec((at.len(), c * k * k), rows).unwrap().t().to_owned();
        let wm = Array2::from_shape_vec((o, c * k * k), wt.clone()).unwrap();
        let y = conv(wm.view(), cols.view(), &b);
        for (p, &(oy, ox)) in at.iter().enumerate() {
            for oc in 0..o {
                let mut want = f64::from(b[oc]);
                for ci in 0..c {
                    for ky in 0..k {
                        for kx in 0..k {
                            let (iy, ix) = ((oy * stride + ky) as isize - 1, (ox * stride + kx) as isize - 1);
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                let xv = x[(ci * h + iy as usize) * w + ix as usize];
                                want += f64::from(xv) * f64::from(wt[((oc * c + ci) * k + ky) * k + kx]);
                            }
                        }
                    }
                }
                assert!((f64::from(y[[oc, p]]) - want).abs() < 1e-5, "stride {stride} pixel {p} channel {oc}");
            }
        }
    }
}

/// The conv's weight gradient of `L = sum r y` (`r` random) against finite differences (L is
/// linear in the weights, so the differences are exact up to rounding).
#[test]
fn conv_weight_gradient_equals_finite_differences() {
    let mut rng = Rng::for_item(41, "reconstruct", 1);
    let (o, k, p) = (3usize, 5usize, 4usize);
    let w = Array2::from_shape_vec((o, k), uniform(&mut rng, o * k, -1.0, 1.0)).unwrap();
    let cols = Array2::from_shape_vec((k, p), uniform(&mut rng, k * p, -1.0, 1.0)).unwrap();
    let r = Array2::from_shape_vec((o, p), uniform(&mut rng, o * p, -1.0, 1.0)).unwrap();
    let b = vec![0.1f32; o];
    let loss = |w: &Array2<f32>, cols: &Array2<f32>| (conv(w.view(), cols.view(), &b) * &r).sum();
    let dw = conv_weight_grad(r.view(), cols.view());
    let eps = 1e-2f32;
    for i in 0..o {
        for j in 0..k {
            let (mut a, mut z) = (w.clone(), w.clone());
            a[[i, j]] += eps;
            z[[i, j]] -= eps;
            let fd = (loss(&a, &cols) - loss(&z, &cols)) / (2.0 * eps);
            assert!((fd - dw[[i, j]]).abs() < 1e-3, "dw[{i}][{j}]: {fd} vs {}", dw[[i, j]]);
        }
    }
}

fn central(f: impl Fn(f64) -> f64, x: f64, eps: f64) -> f64 {
    (f(x + eps) - f(x - eps)) / (2.0 * eps)
}

#[test]
fn silu_gradient_equals_finite_differences() {
    for x in [-8.0f32, -3.0, -1.28, -0.5, 0.0, 0.3, 1.0, 4.0, 9.0] {
        let fd = central(|v| f64::from(silu(v as f32)), f64::from(x), 1e-3);
        assert!((fd - f64::from(silu_grad(x))).abs() < 2e-3, "silu'({x}): {fd} vs {}", silu_grad(x));
    }
    // Hand-checked: silu(1) = 1 / (1 + e^-1) = 0.7310586, silu'(0) = 0.5.
    assert!((silu(1.0) - 0.731_058_6).abs() < 1e-6 && (silu_grad(0.0) - 0.5).abs() < 1e-7);
}

#[test]
fn adaround_gradients_equal_finite_differences() {
    let a = AdaRound::default();
    for v in [-3.0f32, -0.7, 0.0, 0.4, 2.5] {
        let fd = central(|x| f64::from(a.h(x as f32)), f64::from(v), 1e-3);
        assert!((fd - f64::from(a.h_grad(v))).abs() < 1e-3, "h'({v})");
        for beta in [20.0f32, 2.0] {
            let fd = central(|x| f64::from(a.reg(x as f32, beta)), f64::from(v), 1e-3);
            assert!(
                (fd - f64::from(a.reg_grad(v, beta))).abs() < 1e-2 * (1.0 + fd.abs()),
                "reg'({v}, {beta}): {fd} vs {}",
                a.reg_grad(v, beta)
            );
        }
    }
    // Clamped far out: h is 0 or 1 and flat, and init inverts h.
    assert_eq!((a.h(-10.0), a.h(10.0), a.h_grad(10.0)), (0.0, 1.0, 0.0));
    for frac in [0.1f32, 0.5, 0.9] {
        assert!((a.h(a.init(frac)) - frac).abs() < 1e-5);
    }
}

/// Adam on a quadratic bowl reaches its minimum.
#[test]
fn adam_minimises_a_quadratic() {
    let target = [1.5f32, -2.0, 0.25];
    let mut p = vec![0.0f32; 3];
    let mut opt = Adam::new(3, 0.05);
    for _ in 0..2000 {
        let g: Vec<f32> = p.iter().zip(&target).map(|(x, t)| 2.0 * (x - t)).collect();
        opt.step(&mut p, &g);
    }
    for (x, t) in p.iter().zip(&target) {
        assert!((x - t).abs() < 1e-3, "{p:?}");
    }
}

/// On a block whose input patches are correlated (as an image's are), AdaRound's integers
/// give a lower output error than nearest rounding, and end as whole offsets of the floor.
#[test]
fn adaround_beats_nearest_rounding_on_a_correlated_block() {
    use super::block::Schedule;
    let mut rng = Rng::for_item(41, "reconstruct", 2);
    let (o, k, p) = (8usize, 36usize, 400usize);
    // Patches from a few shared factors plus noise: strongly correlated inputs.
    let factors = uniform(&mut rng, 4 * p, 0.0, 1.0);
    let mix = uniform(&mut rng, k * 4, -1.0, 1.0);
    let noise = uniform(&mut rng, k * p, -0.05, 0.05);
    let cols = Array2::from_shape_fn((k, p), |(i, j)| {
        (0..4).map(|f| mix[i * 4 + f] * factors[f * p + j]).sum::<f32>() + noise[i * p + j]
    });
    let w = Array2::from_shape_vec((o, k), uniform(&mut rng, o * k, -1.0, 1.0)).unwrap();
    // A coarse grid, where rounding matters: 8 levels a side.
    let scales: Vec<f32> = (0..o).map(|r| w.row(r).iter().fold(0f32, |m, x| m.max(x.abs())) / 8.0).collect();
    let bias = uniform(&mut rng, o, -0.2, 0.2);
    let target = conv(w.view(), cols.view(), &bias).mapv(silu);
    let block = silu_block(&cols, &target, &w, &scales, &bias);
    let nearest = block.nearest();
    let l = block.adaround(&Schedule { steps: 2000, ..Schedule::default() });
    assert_eq!((&l.bias, &l.scales), (&bias, &scales), "bias and scales are learned only when asked");
    let learned = l.q;
    let (en, el) = (block.error(&nearest, &scales, &bias), block.error(&learned, &scales, &bias));
    eprintln!("output MSE: nearest {en}, AdaRound {el}");
    assert!(el < 0.5 * en, "AdaRound {el} against nearest {en}");
    for (i, &q) in learned.iter().enumerate() {
        let f = (w.as_slice().unwrap()[i] / scales[i / k]).floor();
        assert!(q as f32 == f || q as f32 == f + 1.0, "weight {i}: {q} is not floor {f} or floor + 1");
    }
}

/// A conv + SiLU block on 8-bit weights.
fn silu_block<'a>(
    cols: &'a Array2<f32>,
    target: &'a Array2<f32>,
    w: &'a Array2<f32>,
    scales: &'a [f32],
    bias: &'a [f32],
) -> super::block::Block<'a> {
    super::block::Block { cols: cols.view(), target: target.view(), w: w.view(), scales, bias, silu: true, qmax: 127.0 }
}

/// A block with SiLU on random patches, for the tests below.
fn silu_block_parts(seed: u64) -> (Array2<f32>, Array2<f32>, Vec<f32>, Vec<f32>) {
    let mut rng = Rng::for_item(seed, "reconstruct", 3);
    let (o, k, p) = (4usize, 12usize, 50usize);
    let cols = Array2::from_shape_vec((k, p), uniform(&mut rng, k * p, 0.0, 1.0)).unwrap();
    let w = Array2::from_shape_vec((o, k), uniform(&mut rng, o * k, -1.0, 1.0)).unwrap();
    let scales: Vec<f32> = (0..o).map(|r| w.row(r).iter().fold(0f32, |m, x| m.max(x.abs())) / 8.0).collect();
    let bias = uniform(&mut rng, o, -0.2, 0.2);
    (cols, w, scales, bias)
}

/// The block loss's gradients by the soft levels, the bias and the scales against central
/// finite differences of the loss (SiLU included).
#[test]
fn block_loss_gradients_equal_finite_differences() {
    let (cols, w, scales, bias) = silu_block_parts(5);
    let (o, k) = w.dim();
    // The target from other weights, so that the loss and its gradients are far from 0.
    let target = conv((&w * 0.9).view(), cols.view(), &bias).mapv(silu);
    let block = silu_block(&cols, &target, &w, &scales, &bias);
    let levels: Vec<f32> = w.iter().enumerate().map(|(i, &x)| x / scales[i / k] + 0.3).collect();
    let g = block.loss_and_grads(&levels, &scales, &bias);
    let loss = |l: &[f32], s: &[f32], b: &[f32]| f64::from(block.loss_and_grads(l, s, b).loss);
    let close = |what: &str, fd: f64, got: f32| {
        assert!((fd - f64::from(got)).abs() < 2e-3 * (1.0 + fd.abs()), "{what}: {fd} vs {got}")
    };
    let eps = 1e-2f32;
    for i in 0..o * k {
        let (mut a, mut z) = (levels.clone(), levels.clone());
        a[i] += eps;
        z[i] -= eps;
        close(
            &format!("level {i}"),
            (loss(&a, &scales, &bias) - loss(&z, &scales, &bias)) / f64::from(2.0 * eps),
            g.levels[i],
        );
    }
    for r in 0..o {
        let (mut a, mut z) = (bias.clone(), bias.clone());
        a[r] += eps;
        z[r] -= eps;
        close(
            &format!("bias {r}"),
            (loss(&levels, &scales, &a) - loss(&levels, &scales, &z)) / f64::from(2.0 * eps),
            g.bias[r],
        );
        let (mut a, mut z) = (scales.clone(), scales.clone());
        let e = scales[r] * 1e-2;
        a[r] += e;
        z[r] -= e;
        close(
            &format!("scale {r}"),
            (loss(&levels, &a, &bias) - loss(&levels, &z, &bias)) / f64::from(2.0 * e),
            g.scales[r],
        );
    }
}

/// With the block's input shifted (as a quantized upstream shifts it), learning the bias and
/// the scales with the rounding ends below the rounding alone, and moves the bias the way
/// the shift asks.
#[test]
fn learned_bias_and_scales_absorb_a_shifted_input() {
    use super::block::Schedule;
    let (cols, w, scales, bias) = silu_block_parts(6);
    let target = conv(w.view(), cols.view(), &bias).mapv(silu);
    // The block reads its input 0.05 too high and 5% too large: the upstream's error.
    let shifted = cols.mapv(|x| 1.05 * x + 0.05);
    let block = silu_block(&shifted, &target, &w, &scales, &bias);
    let plain = block.adaround(&Schedule { steps: 1000, ..Schedule::default() });
    let both = block.adaround(&Schedule { steps: 1000, bias_lr: 1e-2, scale_lr: 1e-2, ..Schedule::default() });
    let (ep, eb) = (block.error(&plain.q, &plain.scales, &plain.bias), block.error(&both.q, &both.scales, &both.bias));
    eprintln!("output MSE: rounding alone {ep}, with bias and scales {eb}");
    assert!(eb < 0.75 * ep, "with bias and scales {eb} against rounding alone {ep}");
    // Every channel's input sum rose: its bias falls (w sums 0.05 x the row's weights).
    for (r, (b, b0)) in both.bias.iter().zip(&bias).enumerate() {
        let push: f32 = w.row(r).sum() * 0.05;
        assert!((b - b0) * push <= 0.0 || push.abs() < 0.02, "channel {r}: bias {b0} -> {b}, input push {push}");
    }
}

/// `bound_pairs` brings every pair within the limit by taking steps from the weights rounded
/// furthest up, and touches nothing else.
#[test]
fn bound_pairs_meets_the_limit_with_the_fewest_changes() {
    use super::block::Block;
    // One output channel, 4 input channels, 2 taps: real levels near the bound.
    let real = [70.4f32, 60.2, 59.9, 20.0, -70.0, -30.0, -59.3, -10.0];
    let w = Array2::from_shape_vec((1, 8), real.to_vec()).unwrap();
    let cols = Array2::zeros((8, 1));
    let target = Array2::zeros((1, 1));
    let block = Block {
        cols: cols.view(),
        target: target.view(),
        w: w.view(),
        scales: &[1.0],
        bias: &[0.0],
        silu: false,
        qmax: 127.0,
    };
    // Rounded up: channel 0/1 tap 0 = 71 + 60 = 131 > 128; tap 1 fine (60 + 20); channels
    // 2/3 tap 0 = -70 - 60 = -130 < -128; tap 1 fine.
    let mut q: Vec<i8> = vec![71, 60, 60, 20, -70, -30, -60, -10];
    block.bound_pairs(&mut q, 2, 128);
    // Channel 0 tap 0 (71 over 70.4: 0.6) and channel 1 tap 0 (60 over 59.9: 0.1): the
    // first loses 1, then 70 + 60 = 130 still over: 70 is now 0.4 under, 60 is 0.1 over,
    // so 60 loses 1, and 70 + 59 = 129: 59 is 0.9 under, 70 0.4 under: 70 loses 1.
    assert_eq!(&q[..4], &[69, 60, 59, 20]);
    // Channels 2/3 tap 0: -70 (0 over) and -60 (0.7 over): -60 -> -59 -> then -70 - 59 =
    // -129: -70 is 0 over, -59 is 0.3 under: -70 -> -69.
    assert_eq!(&q[4..], &[-69, -30, -59, -10]);
    assert!(crate::kernels::WeightRange::of(&q, 4, 2).max_pair <= 128);
}
