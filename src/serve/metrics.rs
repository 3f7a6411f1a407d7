//! `/metrics` in the Prometheus text format, written by hand: a few counters, gauges and
//! histograms do not need a metrics crate and its registry.
//!
//! - `qdet_requests_total{route, status}`: every answered request, by route template;
//! - `qdet_request_duration_seconds`: whole requests, body read to response built;
//! - `qdet_stage_duration_seconds{stage}`: queue wait, decode, preprocess, inference,
//!   postprocess of each image;
//! - `qdet_queue_depth`, `qdet_in_flight`: images waiting for a worker and on one now;
//! - `qdet_upload_budget_free_bytes`, and the counters of requests abandoned or expired and
//!   of heap trims.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use super::body::Budget;
use super::heap::Heap;
use super::queue::Gauges;

/// Upper bounds of the latency buckets, in seconds: from a postprocess (tens of
/// microseconds) to a large image on a slow box.
const BUCKETS: [f64; 14] = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// The timed stages of one image, in the order [`Metrics::observe_stages`] takes them.
pub(super) const STAGES: [&str; 5] = ["queue", "decode", "preprocess", "inference", "postprocess"];

#[derive(Default)]
struct Histogram {
    counts: [AtomicU64; BUCKETS.len()],
    count: AtomicU64,
    /// Sum in microseconds (an integer, so it can be atomic).
    sum_us: AtomicU64,
}

impl Histogram {
    fn observe(&self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|&b| seconds <= b) {
            self.counts[i].fetch_add(1, Ordering::Relaxed);
        }
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add((seconds * 1e6) as u64, Ordering::Relaxed);
    }

    /// The `_bucket`, `_sum` and `_count` lines; `labels` is `stage="x",` or empty.
    fn write(&self, out: &mut String, name: &str, labels: &str) {
        let mut cumulative = 0;
        for (b, c) in BUCKETS.iter().zip(&self.counts) {
            cumulative += c.load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{{labels}le=\"{b}\"}} {cumulative}");
        }
        let count = self.count.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels}le=\"+Inf\"}} {count}");
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let braces = if labels.is_empty() { String::new() } else { format!("{{{}}}", labels.trim_end_matches(',')) };
        let _ = writeln!(out, "{name}_sum{braces} {sum}");
        let _ = writeln!(out, "{name}_count{braces} {count}");
    }
}

#[derive(Default)]
pub(super) struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    request: Histogram,
    stages: [Histogram; STAGES.len()],
}

impl Metrics {
    pub(super) fn count_request(&self, route: &str, status: u16, seconds: f64) {
        if let Ok(mut r) = self.requests.lock() {
            *r.entry((route.to_string(), status)).or_default() += 1;
        }
        self.request.observe(seconds);
    }

    /// One image's stage times, in milliseconds, in the order of [`STAGES`].
    pub(super) fn observe_stages(&self, ms: [f64; STAGES.len()]) {
        for (h, v) in self.stages.iter().zip(ms) {
            h.observe(v / 1e3);
        }
    }

    pub(super) fn render(&self, gauges: &Gauges, budget: &Budget, heap: &Heap) -> String {
        let mut out = String::new();
        out.push_str("# HELP qdet_requests_total Requests answered, by route and status.\n");
        out.push_str("# TYPE qdet_requests_total counter\n");
        if let Ok(r) = self.requests.lock() {
            for ((route, status), n) in r.iter() {
                let _ = writeln!(out, "qdet_requests_total{{route=\"{}\",status=\"{status}\"}} {n}", escape(route));
            }
        }
        out.push_str("# HELP qdet_request_duration_seconds Whole requests, from routing to the response.\n");
        out.push_str("# TYPE qdet_request_duration_seconds histogram\n");
        self.request.write(&mut out, "qdet_request_duration_seconds", "");
        out.push_str("# HELP qdet_stage_duration_seconds Each image's time per stage.\n");
        out.push_str("# TYPE qdet_stage_duration_seconds histogram\n");
        for (name, h) in STAGES.iter().zip(&self.stages) {
            h.write(&mut out, "qdet_stage_duration_seconds", &format!("stage=\"{name}\","));
        }
        let gauge = |out: &mut String, name: &str, help: &str, v: usize| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        };
        gauge(&mut out, "qdet_queue_depth", "Images waiting for a worker.", gauges.queued.load(Ordering::Relaxed));
        gauge(&mut out, "qdet_in_flight", "Images on a worker now.", gauges.in_flight.load(Ordering::Relaxed));
        let free = budget.available_bytes();
        gauge(&mut out, "qdet_upload_budget_free_bytes", "Bytes of --max-inflight-bytes free now.", free as usize);
        let counter = |out: &mut String, name: &str, help: &str, v: u64| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}");
        };
        let abandoned = gauges.abandoned.load(Ordering::Relaxed);
        let help = "Requests whose client had gone before the answer was ready (not run, or stopped after decoding).";
        counter(&mut out, "qdet_requests_abandoned_total", help, abandoned);
        let expired = gauges.expired.load(Ordering::Relaxed);
        counter(
            &mut out,
            "qdet_requests_expired_total",
            "Requests answered 503 after waiting past --deadline-ms.",
            expired,
        );
        let help = "Times the server, idle after a burst, gave its free memory back to the system.";
        counter(&mut out, "qdet_heap_trims_total", help, heap.trims());
        out
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_are_cumulative_and_counters_labelled() {
        let m = Metrics::default();
        m.count_request("/v1/detect", 200, 0.02);
        m.count_request("/v1/detect", 200, 0.2);
        m.observe_stages([0.0, 1.0, 2.0, 30.0, 0.05]);
        let text = m.render(&Gauges::default(), &Budget::new(1 << 20), &Heap::default());
        assert!(text.contains("qdet_requests_total{route=\"/v1/detect\",status=\"200\"} 2"), "{text}");
        assert!(text.contains("qdet_request_duration_seconds_bucket{le=\"0.025\"} 1"), "{text}");
        assert!(text.contains("qdet_request_duration_seconds_bucket{le=\"+Inf\"} 2"), "{text}");
        assert!(text.contains("qdet_stage_duration_seconds_bucket{stage=\"inference\",le=\"0.05\"} 1"), "{text}");
        assert!(text.contains("qdet_stage_duration_seconds_count{stage=\"decode\"} 1"), "{text}");
        assert!(text.contains("qdet_queue_depth 0"), "{text}");
    }
}
