//! Forward and backward of what a conv + SiLU block computes on patches of output pixels
//! (im2col rows, [`crate::quant::gptq::patches_at`]): the conv as a matrix product, SiLU,
//! AdaRound's rectified sigmoid and its regulariser (Nagel et al. 2020), and Adam.

use tract_onnx::prelude::tract_ndarray::{Array2, ArrayView2};

/// `w cols + b`: `[out_c][pixels]`.
pub fn conv(w: ArrayView2<f32>, cols: ArrayView2<f32>, b: &[f32]) -> Array2<f32> {
    let mut y = w.dot(&cols);
    for (mut row, &bias) in y.rows_mut().into_iter().zip(b) {
        row += bias;
    }
    y
}

/// The gradient of a loss with respect to the weights, from its gradient `dy` with respect
/// to [`conv`]'s output: `dy cols^T`.
pub fn conv_weight_grad(dy: ArrayView2<f32>, cols: ArrayView2<f32>) -> Array2<f32> {
    dy.dot(&cols.t())
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `x sigmoid(x)`.
pub fn silu(x: f32) -> f32 {
    x * sigmoid(x)
}

/// `d silu / dx = s (1 + x (1 - s))`, `s = sigmoid(x)`.
pub fn silu_grad(x: f32) -> f32 {
    let s = sigmoid(x);
    s * (1.0 + x * (1.0 - s))
}

/// AdaRound's rectified sigmoid `h(v) = clamp(sigmoid(v) (zeta - gamma) + gamma, 0, 1)`: the
/// soft rounding offset in `[0, 1]` added to `floor(w / s)`.
#[derive(Debug, Clone, Copy)]
pub struct AdaRound {
    pub zeta: f32,
    pub gamma: f32,
}

impl Default for AdaRound {
    fn default() -> Self {
        AdaRound { zeta: 1.1, gamma: -0.1 }
    }
}

impl AdaRound {
    pub fn h(&self, v: f32) -> f32 {
        (sigmoid(v) * (self.zeta - self.gamma) + self.gamma).clamp(0.0, 1.0)
    }

    /// `dh / dv`, 0 where clamped.
    pub fn h_grad(&self, v: f32) -> f32 {
        let raw = sigmoid(v) * (self.zeta - self.gamma) + self.gamma;
        if (0.0..=1.0).contains(&raw) {
            let s = sigmoid(v);
            s * (1.0 - s) * (self.zeta - self.gamma)
        } else {
            0.0
        }
    }

    /// The `v` whose `h` is `frac` (in `(0, 1)`): AdaRound's start from the float weight's
    /// fractional part.
    pub fn init(&self, frac: f32) -> f32 {
        let s = ((frac - self.gamma) / (self.zeta - self.gamma)).clamp(1e-6, 1.0 - 1e-6);
        (s / (1.0 - s)).ln()
    }

    /// The regulariser `1 - |2 h(v) - 1|^beta`, which pushes `h` to 0 or 1 as `beta` anneals
    /// down. (Training needs only its gradient; the tests hold that to it.)
    #[cfg(test)]
    pub fn reg(&self, v: f32, beta: f32) -> f32 {
        1.0 - (2.0 * self.h(v) - 1.0).abs().powf(beta)
    }

    /// `d reg / dv`.
    pub fn reg_grad(&self, v: f32, beta: f32) -> f32 {
        let u = 2.0 * self.h(v) - 1.0;
        if u == 0.0 {
            return 0.0;
        }
        -beta * u.abs().powf(beta - 1.0) * u.signum() * 2.0 * self.h_grad(v)
    }
}

/// Adam (Kingma & Ba 2015) over one flat parameter vector.
#[derive(Debug, Clone)]
pub struct Adam {
    pub lr: f32,
    m: Vec<f32>,
    v: Vec<f32>,
    t: i32,
}

impl Adam {
    pub fn new(n: usize, lr: f32) -> Adam {
        Adam { lr, m: vec![0.0; n], v: vec![0.0; n], t: 0 }
    }

    /// One step of `params -= lr m_hat / (sqrt(v_hat) + 1e-8)`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32]) {
        assert!(params.len() == self.m.len() && grads.len() == self.m.len(), "Adam holds {} values", self.m.len());
        let (b1, b2) = (0.9f32, 0.999f32);
        self.t += 1;
        let (c1, c2) = (1.0 - b1.powi(self.t), 1.0 - b2.powi(self.t));
        for i in 0..params.len() {
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * grads[i];
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * grads[i] * grads[i];
            params[i] -= self.lr * (self.m[i] / c1) / ((self.v[i] / c2).sqrt() + 1e-8);
        }
    }
}
