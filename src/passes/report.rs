//! What the passes did: per pass, how many rewrites ([`Report`]), and the int8 summary the
//! library's users read ([`PatchReport`]), derived from it.

use crate::kernels::Isa;
use crate::runtime::Kernel;

/// Per pass, by name, how many rewrites it did, in the order they ran.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Report {
    /// `(name, rewrites)`: each pass, followed by the sub-counts it adds (`int8_conv.silu`,
    /// `concat_f32.sigmoid`).
    pub counts: Vec<(&'static str, usize)>,
    /// Each int8 conv (by its ONNX node name) and the kernel chosen for it, in graph order:
    /// the kernel is chosen per conv, from its weights.
    pub(crate) conv_kernels: Vec<(String, Isa)>,
    /// Integer convs in the optimized plan (set after tract optimized it).
    pub convs_in_plan: usize,
}

impl Report {
    /// The count recorded under `name` (0 if none was).
    pub fn count(&self, name: &str) -> usize {
        self.counts.iter().filter(|(n, _)| *n == name).map(|(_, c)| c).sum()
    }

    /// Records that int8 conv `conv` runs on `isa`.
    pub(crate) fn add_kernel(&mut self, conv: &str, isa: Isa) {
        self.conv_kernels.push((conv.to_string(), isa));
    }

    /// How many int8 convs got each kernel, in the order the kernels were first chosen.
    pub fn kernels(&self) -> Vec<(Kernel, usize)> {
        let mut counts: Vec<(Kernel, usize)> = Vec::new();
        for &(_, isa) in &self.conv_kernels {
            let k = Kernel::new(isa);
            match counts.iter_mut().find(|(i, _)| *i == k) {
                Some((_, n)) => *n += 1,
                None => counts.push((k, 1)),
            }
        }
        counts
    }

    /// Records a sub-count of the running pass.
    pub fn note(&mut self, name: &'static str, n: usize) {
        self.counts.push((name, n));
    }
}

impl std::fmt::Display for Report {
    /// `name count` pairs in order, comma-separated.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let pairs: Vec<String> = self.counts.iter().map(|(n, c)| format!("{n} {c}")).collect();
        write!(f, "{}", pairs.join(", "))
    }
}

/// The int8 passes' counts under the names `qdet bench` and the tests have always read.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct PatchReport {
    pub replaced: usize,
    pub silu_fused: usize,
    /// QuantizeLinears of a conv output, now written by the conv.
    pub requant_fused: usize,
    /// Requantized outputs written in their readers' channels-last image.
    pub handed_over: usize,
    /// Channel Concats quantized straight into their uint8 output, on one grid or each input
    /// on its own (read by a conv of parts).
    pub concat_fused: usize,
    /// Convs writing the channel slices read from them as separate outputs.
    pub split_fused: usize,
    /// Concat inputs quantized by the conv that writes them.
    pub concat_inputs_requantized: usize,
    /// MaxPools run on uint8 (the SPPF chain).
    pub max_pools_u8: usize,
    /// Nearest Resizes run on uint8 (the neck's upsamplings).
    pub resizes_u8: usize,
    /// Residual Adds done in the epilogue of the conv they add.
    pub residual_fused: usize,
    /// Integer convs in the optimized plan: `replaced`, unless a rewrite left a superseded
    /// conv running beside its replacement.
    pub convs_in_plan: usize,
    /// Each int8 conv (by its ONNX node name) and the kernel it runs on, in graph order:
    /// the load-time check picks per conv (`maddubs` where the weights keep it exact,
    /// `madd16` where not).
    pub conv_kernels: Vec<(String, Kernel)>,
    /// How many int8 convs run on each kernel, in the order the kernels were first chosen.
    pub kernels: Vec<(Kernel, usize)>,
}

impl PatchReport {
    /// The kernel most int8 convs run on (the first of a tie in [`PatchReport::kernels`]);
    /// others may run some: see [`PatchReport::kernels`].
    pub fn most_used_kernel(&self) -> Option<Kernel> {
        let most = self.kernels.iter().map(|(_, n)| *n).max()?;
        self.kernels.iter().find(|(_, n)| *n == most).map(|(k, _)| *k)
    }
}

impl From<&Report> for PatchReport {
    fn from(r: &Report) -> PatchReport {
        use super::*;
        let n = |p: &dyn Pass| r.count(p.name());
        PatchReport {
            replaced: n(&int8_conv::Int8Conv),
            silu_fused: r.count(int8_conv::SILU),
            requant_fused: n(&requantize::Requantize),
            handed_over: n(&hand_over_packed::HandOverPacked),
            concat_fused: n(&quantize_concat::QuantizeConcat) + r.count(int8_conv::PARTS),
            split_fused: n(&split_outputs::SplitOutputs),
            concat_inputs_requantized: n(&concat_inputs::ConcatInputs),
            max_pools_u8: n(&max_pool_u8::MaxPoolU8Pass),
            resizes_u8: n(&resize_u8::ResizeU8),
            residual_fused: n(&residual_add::ResidualAdd),
            convs_in_plan: r.convs_in_plan,
            conv_kernels: r.conv_kernels.iter().map(|(c, i)| (c.clone(), Kernel::new(*i))).collect(),
            kernels: r.kernels(),
        }
    }
}
