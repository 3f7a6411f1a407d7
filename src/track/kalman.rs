//! Ultralytics' `KalmanFilterXYAH` in f64, as its numpy code: state (x, y, a, h) and their
//! velocities, constant-velocity motion, noise scaled by the height. The motion matrix is
//! identity plus ones, so predict is written out as the sums its products reduce to (the
//! same roundings as numpy's products, whose other terms are exact zeros).

const STD_POS: f64 = 1.0 / 20.0;
const STD_VEL: f64 = 1.0 / 160.0;

#[derive(Clone, Debug)]
pub(super) struct Gaussian {
    pub mean: [f64; 8],
    pub cov: [[f64; 8]; 8],
}

impl Gaussian {
    /// A track from its first measurement (x, y, a, h): zero velocity, `initiate`'s spread.
    pub fn initiate(z: [f64; 4]) -> Gaussian {
        let h = z[3];
        let std = [
            2.0 * STD_POS * h,
            2.0 * STD_POS * h,
            1e-2,
            2.0 * STD_POS * h,
            10.0 * STD_VEL * h,
            10.0 * STD_VEL * h,
            1e-5,
            10.0 * STD_VEL * h,
        ];
        let mut cov = [[0.0; 8]; 8];
        for (i, s) in std.iter().enumerate() {
            cov[i][i] = s * s;
        }
        Gaussian { mean: [z[0], z[1], z[2], z[3], 0.0, 0.0, 0.0, 0.0], cov }
    }

    /// One step of `multi_predict`.
    pub fn predict(&mut self) {
        let h = self.mean[3];
        let std = [STD_POS * h, STD_POS * h, 1e-2, STD_POS * h, STD_VEL * h, STD_VEL * h, 1e-5, STD_VEL * h];
        for i in 0..4 {
            self.mean[i] += self.mean[i + 4];
        }
        let p = &self.cov;
        let mut left = *p; // F · P
        for i in 0..4 {
            for j in 0..8 {
                left[i][j] = p[i][j] + p[i + 4][j];
            }
        }
        let mut out = left; // (F · P) · Fᵀ
        for row in out.iter_mut().zip(left.iter()) {
            for j in 0..4 {
                row.0[j] = row.1[j] + row.1[j + 4];
            }
        }
        for (i, s) in std.iter().enumerate() {
            out[i][i] += s * s;
        }
        self.cov = out;
    }

    /// The correction by a measurement (x, y, a, h).
    pub fn update(&mut self, z: [f64; 4]) {
        let h = self.mean[3];
        let std = [STD_POS * h, STD_POS * h, 1e-1, STD_POS * h];
        let mut s = [[0.0; 4]; 4]; // projected covariance
        for i in 0..4 {
            s[i][..4].copy_from_slice(&self.cov[i][..4]);
            s[i][i] += std[i] * std[i];
        }
        // K = P[:, :4] · S⁻¹, solved as numpy does: S · Kᵀ = P[:, :4]ᵀ.
        let mut kt = [[0.0; 8]; 4];
        for (r, row) in kt.iter_mut().enumerate() {
            for (c, v) in row.iter_mut().enumerate() {
                *v = self.cov[c][r];
            }
        }
        solve4(s, &mut kt);
        let innovation: [f64; 4] = std::array::from_fn(|k| z[k] - self.mean[k]);
        for (i, m) in self.mean.iter_mut().enumerate() {
            *m += (0..4).map(|k| innovation[k] * kt[k][i]).sum::<f64>();
        }
        // P - K · (S · Kᵀ): numpy's multi_dot takes this order for these shapes.
        let skt: [[f64; 8]; 4] =
            std::array::from_fn(|r| std::array::from_fn(|c| (0..4).map(|k| s[r][k] * kt[k][c]).sum()));
        for (i, row) in self.cov.iter_mut().enumerate() {
            for (j, v) in row.iter_mut().enumerate() {
                *v -= (0..4).map(|k| kt[k][i] * skt[k][j]).sum::<f64>();
            }
        }
    }
}

/// Solves `a · X = b` in place of `b` (Gaussian elimination with partial pivoting, LAPACK's
/// gesv); `a` is a covariance plus a positive diagonal, never singular.
fn solve4(mut a: [[f64; 4]; 4], b: &mut [[f64; 8]; 4]) {
    for col in 0..4 {
        let pivot = (col..4).fold(col, |best, r| if a[r][col].abs() > a[best][col].abs() { r } else { best });
        a.swap(col, pivot);
        b.swap(col, pivot);
        for r in col + 1..4 {
            let f = a[r][col] / a[col][col];
            let (pa, pb) = (a[col], b[col]);
            for (x, p) in a[r][col..].iter_mut().zip(&pa[col..]) {
                *x -= f * p;
            }
            for (x, p) in b[r].iter_mut().zip(&pb) {
                *x -= f * p;
            }
        }
    }
    for col in (0..4).rev() {
        let solved = *b;
        for (k, x) in b[col].iter_mut().enumerate() {
            let tail: f64 = (col + 1..4).map(|j| a[col][j] * solved[j][k]).sum();
            *x = (*x - tail) / a[col][col];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(serde::Deserialize)]
    struct Step {
        initiate: Option<[f64; 4]>,
        predict: Option<bool>,
        update: Option<[f64; 4]>,
        mean: [f64; 8],
        covariance: [[f64; 8]; 8],
    }

    /// A measurement as Ultralytics passes it: float32 numbers widened to f64.
    fn f32s(z: [f64; 4]) -> [f64; 4] {
        z.map(|v| v as f32 as f64)
    }

    #[test]
    fn same_as_ultralytics_kalman_filter_xyah() {
        let cases: Vec<Vec<Step>> = crate::tests::load_json("tests/data/bytetrack/kalman.json");
        for steps in &cases {
            let mut g: Option<Gaussian> = None;
            for (k, s) in steps.iter().enumerate() {
                match (s.initiate, s.predict, s.update, g.as_mut()) {
                    (Some(z), _, _, _) => g = Some(Gaussian::initiate(f32s(z))),
                    (_, Some(true), _, Some(g)) => g.predict(),
                    (_, _, Some(z), Some(g)) => g.update(f32s(z)),
                    _ => panic!("step {k}: nothing to do"),
                }
                let g = g.as_ref().expect("initiated");
                for i in 0..8 {
                    let tol = 1e-9 * s.mean[i].abs().max(1.0);
                    assert!((g.mean[i] - s.mean[i]).abs() <= tol, "step {k} mean[{i}]: {} vs {}", g.mean[i], s.mean[i]);
                    for j in 0..8 {
                        let (a, b) = (g.cov[i][j], s.covariance[i][j]);
                        assert!((a - b).abs() <= 1e-9 * b.abs().max(1e-3), "step {k} cov[{i}][{j}]: {a} vs {b}");
                    }
                }
            }
        }
    }
}
