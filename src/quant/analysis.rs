//! Quantization error, measured as PPQ's `graphwise_error_analyse` and
//! `layerwise_error_analyse` measure it: PPQ's noise-to-signal ratio
//! `sum((q - f)^2) / sum(f^2)` and the cosine similarity of `q` and `f`, computed per image and
//! averaged over images (PPQ's `MeasureRecorder`).
//!
//! The detect head's output is measured in two parts, box rows (pixels) and class-score rows
//! (0..1): as one tensor the boxes' large values would hide every score error.

use serde::Serialize;
use tract_onnx::pb;

use super::sites::ConvSite;
use crate::onnx::proto;

/// Mean per-image error of one tensor.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ErrorStats {
    /// PPQ's noise-to-signal ratio (0 is exact).
    pub nsr: f64,
    /// Cosine similarity (1 is exact).
    pub cosine: f64,
}

/// Running mean of [`ErrorStats`] over images.
#[derive(Debug, Clone, Default)]
pub struct ErrorMeter {
    nsr: f64,
    cosine: f64,
    n: usize,
}

impl ErrorMeter {
    pub fn add(&mut self, quantized: &[f32], reference: &[f32]) {
        let (mut noise, mut signal, mut dot, mut q2) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&q, &f) in quantized.iter().zip(reference) {
            let (q, f) = (f64::from(q), f64::from(f));
            noise += (q - f) * (q - f);
            signal += f * f;
            dot += q * f;
            q2 += q * q;
        }
        // PPQ adds 1e-7 to the denominators; an all-zero reference reads as no signal.
        self.nsr += noise / (signal + 1e-7);
        self.cosine += dot / ((q2 * signal).sqrt() + 1e-7);
        self.n += 1;
    }

    pub fn stats(&self) -> Option<ErrorStats> {
        (self.n > 0).then(|| ErrorStats { nsr: self.nsr / self.n as f64, cosine: self.cosine / self.n as f64 })
    }
}

/// Error at the model output, boxes and scores apart.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OutputError {
    pub boxes: ErrorStats,
    pub scores: ErrorStats,
}

impl OutputError {
    /// The ranking key for sensitivity: both parts weigh the same.
    pub fn key(&self) -> f64 {
        self.boxes.nsr + self.scores.nsr
    }
}

#[derive(Debug, Clone, Default)]
pub struct OutputMeter {
    boxes: ErrorMeter,
    scores: ErrorMeter,
}

impl OutputMeter {
    /// `quantized` and `reference` are `[1, 4 + nc, anchors]` head outputs.
    pub fn add(&mut self, quantized: &[f32], reference: &[f32], anchors: usize) {
        let split = (4 * anchors).min(reference.len());
        self.boxes.add(&quantized[..split], &reference[..split]);
        self.scores.add(&quantized[split..], &reference[split..]);
    }

    pub fn stats(&self) -> Option<OutputError> {
        Some(OutputError { boxes: self.boxes.stats()?, scores: self.scores.stats()? })
    }
}

/// Per-channel running mean of `quantized - reference` for an NC... tensor: the shift bias
/// correction cancels.
#[derive(Debug, Clone, Default)]
pub struct ChannelMeanMeter {
    sums: Vec<f64>,
    count: u64,
}

impl ChannelMeanMeter {
    pub fn add(&mut self, quantized: &[f32], reference: &[f32], channel_len: usize) {
        let channels = reference.len() / channel_len.max(1);
        self.sums.resize(channels, 0.0);
        for (c, (q, f)) in quantized.chunks(channel_len).zip(reference.chunks(channel_len)).enumerate() {
            self.sums[c] += q.iter().zip(f).map(|(&q, &f)| f64::from(q) - f64::from(f)).sum::<f64>();
        }
        self.count += channel_len as u64;
    }

    pub fn means(&self) -> Vec<f64> {
        self.sums.iter().map(|s| s / self.count.max(1) as f64).collect()
    }
}

/// Name of the float twin ("shadow") of a quantized Conv's output.
pub fn shadow_output(site: &ConvSite) -> String {
    format!("{}_float", site.output)
}

/// Adds to a QDQ graph, for each site, a float copy of the Conv that reads the same
/// (un-quantized) input with the original float weights: its output minus the quantized
/// Conv's is that Conv's own quantization error, whatever error its input already carries.
/// `float_model` is the model before quantization (it holds the float initializers).
pub fn add_shadows(qdq: &mut pb::ModelProto, float_model: &pb::ModelProto, sites: &[&ConvSite]) {
    let (Some(graph), Some(float_graph)) = (qdq.graph.as_mut(), float_model.graph.as_ref()) else { return };
    for site in sites {
        let mut node = float_graph.node[site.node_index].clone();
        node.name = format!("{}_float", site.name);
        // A Concat quantized per input reads the dequantized parts: the shadow gets its own
        // Concat of the float ones.
        if let Some(c) = site.concat {
            let mut concat = float_graph.node[c].clone();
            concat.name = format!("{}_float", concat.name);
            concat.output = vec![format!("{}_float", site.input)];
            node.input[0] = concat.output[0].clone();
            graph.node.push(concat);
        }
        node.output = vec![shadow_output(site)];
        for (slot, name) in [(1, Some(&site.weight)), (2, site.bias.as_ref())] {
            let Some(name) = name else { continue };
            if let Some(t) = float_graph.initializer.iter().find(|t| &t.name == name) {
                let mut t = t.clone();
                t.name = format!("{name}_float");
                node.input[slot] = t.name.clone();
                graph.initializer.push(t);
            }
        }
        graph.node.push(node);
    }
}

/// Replaces the graph's outputs with `names` (tract then prunes what they do not need).
pub fn set_outputs(model: &mut pb::ModelProto, names: &[String]) {
    if let Some(graph) = model.graph.as_mut() {
        graph.output = names.iter().map(|n| proto::output(n)).collect();
    }
}

/// A text bar for a value in `[0, max]`, `width` cells, with eighth-cell resolution.
pub fn bar(value: f64, max: f64, width: usize) -> String {
    const PARTS: [char; 8] = [' ', '▏', '▎', '▍', '▌', '▋', '▊', '▉'];
    if max.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater) || !value.is_finite() {
        return String::new();
    }
    let eighths = ((value / max).clamp(0.0, 1.0) * (width * 8) as f64).round() as usize;
    let mut s = "█".repeat(eighths / 8);
    if !eighths.is_multiple_of(8) {
        s.push(PARTS[eighths % 8]);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nsr_and_cosine_by_hand() {
        let mut m = ErrorMeter::default();
        // noise 0.25 + 0.25 = 0.5, signal 1 + 4 = 5 -> 0.1; q.f = 1.5 + 5 = 6.5,
        // |q|^2 = 2.25 + 6.25 = 8.5 -> cos = 6.5 / sqrt(42.5) = 0.99705...
        m.add(&[1.5, 2.5], &[1.0, 2.0]);
        let s = m.stats().unwrap();
        assert!((s.nsr - 0.1).abs() < 1e-7, "{}", s.nsr);
        assert!((s.cosine - 6.5 / 42.5f64.sqrt()).abs() < 1e-7, "{}", s.cosine);
        // A second, exact image halves the mean NSR (per-image averaging, as PPQ).
        m.add(&[3.0], &[3.0]);
        assert!((m.stats().unwrap().nsr - 0.05).abs() < 1e-7);
    }

    #[test]
    fn channel_means_by_hand() {
        let mut m = ChannelMeanMeter::default();
        m.add(&[1.0, 2.0, 10.0, 10.0], &[0.0, 0.0, 10.5, 10.5], 2);
        m.add(&[0.0, 0.0, 0.0, 0.0], &[0.0, 0.0, 0.0, 0.0], 2);
        assert_eq!(m.means(), vec![0.75, -0.25]);
    }

    #[test]
    fn bars() {
        assert_eq!(bar(1.0, 1.0, 4), "████");
        assert_eq!(bar(0.5, 1.0, 4), "██");
        assert_eq!(bar(1.0 / 32.0, 1.0, 4), "▏");
        assert_eq!(bar(0.0, 0.0, 4), "");
    }
}
