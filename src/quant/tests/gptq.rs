//! GPTQ against numbers computed independently with numpy (`np.linalg.cholesky(np.linalg.inv(H)).T`
//! and the paper's loop, float64) on a tiny layer whose inputs are strongly correlated.

use crate::quant::gptq::{self, ConvGeometry, Hessian, PairBound};
use crate::quant::observers::QuantBounds;

/// Six input patches of four correlated inputs (two pairs that move together).
const X: [[f32; 4]; 6] = [
    [0.9, 0.8, 0.1, 0.0],
    [0.7, 0.75, 0.3, 0.2],
    [0.2, 0.1, 0.9, 0.85],
    [0.5, 0.45, 0.5, 0.55],
    [1.0, 0.95, 0.0, 0.1],
    [0.0, 0.05, 1.0, 0.9],
];
const W: [f32; 8] = [0.33, -0.61, 0.12, 0.52, -0.27, 0.44, 0.71, -0.38];
/// A 4-bit grid makes the rounding choices visible on four weights.
const BOUNDS: QuantBounds = QuantBounds { qmin: -7, qmax: 7, symmetric: true };
/// numpy's `cholesky(inv(H + 0.01 * mean(diag H) * I)).T` for `H = X^T X`.
const U_NUMPY: [f64; 16] = [
    3.7933647273217184,
    -3.9325008802404686,
    0.27437941313444353,
    -0.3665914220399477,
    0.0,
    0.6842693523383977,
    -0.1386119364134301,
    -0.07797775907438317,
    0.0,
    0.0,
    3.4243715999494806,
    -3.5906406595192473,
    0.0,
    0.0,
    0.0,
    0.7240699642946523,
];
/// Numerical noise between the two factorizations (f64, condition number about 1e3).
const U_TOL: f64 = 1e-9;

fn hessian() -> Hessian {
    let x: Vec<f32> = X.iter().flatten().copied().collect();
    let mut h = Hessian::new(4);
    h.add_gram(&gptq::gram(&x, 6, 4).unwrap());
    h
}

fn scales() -> Vec<f32> {
    vec![0.61f32 / 7.0, 0.71f32 / 7.0]
}

/// `sum ((W - s Q) x)^2` over the patches.
fn output_error(q: &[i8]) -> f64 {
    let s = scales();
    let mut e = 0.0;
    for x in &X {
        for c in 0..2 {
            let y: f64 = (0..4)
                .map(|k| (f64::from(W[c * 4 + k]) - f64::from(s[c]) * f64::from(q[c * 4 + k])) * f64::from(x[k]))
                .sum();
            e += y * y;
        }
    }
    e
}

#[test]
fn inverse_cholesky_matches_numpy() {
    // H in f64 as numpy computed it, then GPTQ's dampening.
    let mut h = vec![0.0f64; 16];
    for x in &X {
        for i in 0..4 {
            for j in 0..4 {
                h[i * 4 + j] += f64::from(x[i]) * f64::from(x[j]);
            }
        }
    }
    let damp = gptq::DAMP * (0..4).map(|i| h[i * 5]).sum::<f64>() / 4.0;
    (0..4).for_each(|i| h[i * 5] += damp);
    let u = gptq::inverse_cholesky_upper(&h, 4).unwrap();
    for (k, (a, b)) in u.iter().zip(&U_NUMPY).enumerate() {
        assert!((a - b).abs() < U_TOL, "U[{}][{}]: {a} vs numpy {b}", k / 4, k % 4);
    }
}

#[test]
fn gptq_rounds_as_numpy_and_beats_nearest() {
    let q = gptq::round(&W, &scales(), &hessian(), BOUNDS, None).unwrap();
    // numpy: GPTQ [[4, -7, 1, 6], [-3, 5, 7, -4]], round-to-nearest [[4, -7, 1, 6], [-3, 4, 7, -4]].
    assert_eq!(q, [4, -7, 1, 6, -3, 5, 7, -4]);
    let nearest = [4i8, -7, 1, 6, -3, 4, 7, -4];
    // numpy: 0.004621136891389264 against 0.017106988047183774.
    assert!((output_error(&q) - 0.004621136891389264).abs() < 1e-7, "{}", output_error(&q));
    assert!((output_error(&nearest) - 0.017106988047183774).abs() < 1e-7);
}

/// Pair-bounded GPTQ against numpy (the same loop, each odd column clamped to what its even
/// neighbour leaves of the limit) on weights whose pairs of one sign exceed it: the bound
/// holds, its error is spread over the later columns, and `output_error` is the direct sum.
#[test]
fn pair_bounded_gptq_rounds_as_numpy() {
    const W2: [f32; 8] = [0.33, 0.61, -0.12, -0.52, -0.27, -0.44, 0.71, 0.38];
    let h = hessian();
    let direct = |q: &[i8]| -> f64 {
        let s = scales();
        X.iter()
            .flat_map(|x| (0..2).map(move |c| (c, x)))
            .map(|(c, x)| {
                let y: f64 = (0..4)
                    .map(|k| (f64::from(W2[c * 4 + k]) - f64::from(s[c]) * f64::from(q[c * 4 + k])) * f64::from(x[k]))
                    .sum();
                y * y
            })
            .sum()
    };
    let free = gptq::round(&W2, &scales(), &h, BOUNDS, None).unwrap();
    // numpy: [[4, 7, -1, -6], [-3, -4, 7, 4]], error 0.0048547504745947.
    assert_eq!(free, [4, 7, -1, -6, -3, -4, 7, 4]);
    let bound = PairBound { taps: 1, limit: 8 };
    let bounded = gptq::round(&W2, &scales(), &h, BOUNDS, Some(bound)).unwrap();
    // numpy: [[4, 4, -1, -5], [-3, -4, 7, 1]], error 0.27416201573927523.
    assert_eq!(bounded, [4, 4, -1, -5, -3, -4, 7, 1]);
    for (q, want) in [(&free, 0.0048547504745947), (&bounded, 0.27416201573927523)] {
        assert!((gptq::output_error(&W2, &scales(), q, &h) - want).abs() < 1e-6, "{q:?}");
        assert!((direct(q) - want).abs() < 1e-6, "{q:?}");
    }
}

#[test]
fn uncorrelated_inputs_round_to_nearest() {
    // A diagonal Hessian moves no error between columns: GPTQ is round-to-nearest.
    let mut h = Hessian::new(4);
    h.sum = vec![2.0, 0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 3.0, 0.0, 0.0, 0.0, 0.0, 0.0];
    let q = gptq::round(&W, &scales(), &h, BOUNDS, None).unwrap();
    // The last input never fires (zero on the diagonal): its weights become 0.
    assert_eq!(q, [4, -7, 1, 0, -3, 4, 7, 0]);
}

#[test]
fn patches_follow_the_weight_layout() {
    // 2 channels of 3x3 (channel c, pixel p holds 10 c + p), kernel 3x3, stride 2, pad 1:
    // a 2x2 output; row r is output position r, its columns (channel, ky, kx).
    let input: Vec<f32> = (0..2).flat_map(|c| (0..9).map(move |p| (10 * c + p) as f32)).collect();
    let g = ConvGeometry { kernel: [3, 3], stride: [2, 2], pads: [1, 1, 1, 1] };
    let (x, rows) = gptq::patches(&input, [2, 3, 3], &g);
    assert_eq!(rows, 4);
    let row = |r: usize| &x[r * 18..(r + 1) * 18];
    // Output (0, 0): the window's top row and left column are padding.
    assert_eq!(row(0), [0., 0., 0., 0., 0., 1., 0., 3., 4., 0., 0., 0., 0., 10., 11., 0., 13., 14.]);
    // Output (1, 1): centred on pixel (2, 2); its bottom row and right column are padding.
    assert_eq!(row(3), [4., 5., 0., 7., 8., 0., 0., 0., 0., 14., 15., 0., 17., 18., 0., 0., 0., 0.]);
}

#[test]
fn shape_errors_are_typed() {
    assert!(gptq::gram(&[1.0; 5], 2, 3).is_err());
    assert!(gptq::round(&W[..7], &scales(), &hessian(), BOUNDS, None).is_err());
}
