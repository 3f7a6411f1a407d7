//! One observer per calibrated tensor, of the method the user chose, giving the tensor's
//! uint8 scale and zero point.

use super::Method;
use crate::quant::observers::{
    minmax_to_scale_offset, KlObserver, MinMaxObserver, MseObserver, ObserverError, PercentileObserver, QuantBounds,
    QuantParams, DEFAULT_PERCENTILE,
};

pub(super) enum Observer {
    Minmax(MinMaxObserver),
    Percentile(PercentileObserver),
    Kl(KlObserver),
    Mse(MseObserver),
}

impl Observer {
    pub(super) fn new(method: Method) -> Observer {
        match method {
            Method::Minmax => Observer::Minmax(MinMaxObserver::new()),
            Method::Percentile => Observer::Percentile(PercentileObserver::new(DEFAULT_PERCENTILE)),
            Method::Kl => Observer::Kl(KlObserver::default()),
            Method::Mse => Observer::Mse(MseObserver::new(QuantBounds::ASYM_U8)),
        }
    }

    pub(super) fn observe(&mut self, v: &[f32]) -> std::result::Result<(), ObserverError> {
        match self {
            Observer::Minmax(o) => o.observe(v),
            Observer::Percentile(o) => o.observe(v),
            Observer::Kl(o) => o.observe(v),
            Observer::Mse(o) => o.observe(v),
        }
    }

    pub(super) fn start_histogram(&mut self) -> std::result::Result<(), ObserverError> {
        match self {
            Observer::Kl(o) => o.start_histogram(),
            Observer::Mse(o) => o.start_histogram(),
            _ => Ok(()),
        }
    }

    /// The uint8 parameters.
    pub(super) fn params(&self) -> std::result::Result<QuantParams, ObserverError> {
        let u8b = QuantBounds::ASYM_U8;
        match self {
            Observer::Minmax(o) => o.params(u8b),
            Observer::Percentile(o) => o.params(u8b),
            Observer::Mse(o) => o.params(),
            Observer::Kl(o) => {
                // PPQ's KL is symmetric: it finds a threshold T for |x| on 128 levels. The
                // scheme's uint8 grid takes it as a clip on both sides of the observed range.
                let r = o.hist.range()?;
                let t = o.params(QuantBounds::SYM_I8)?.scale as f64 * 128.0;
                let (lo, hi) = (f64::from(r.min).max(-t), f64::from(r.max).min(t));
                Ok(minmax_to_scale_offset(lo, hi, u8b))
            }
        }
    }
}
