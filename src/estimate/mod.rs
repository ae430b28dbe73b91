//! The estimator: what the next phrase of a long conversation costs — seconds, joules, watt-hours —
//! as the context grows, per attention policy, from a profile (measured by `attnjoule sweep`, or
//! the bundled analytical H100 profile) and a model architecture.
//!
//! Per phrase of `P` tokens at context `C` (tokens so far), for `batch` conversations decoded
//! together on a deployment of `tp x pp` GPUs:
//! - non-attention layers: `2 · active_params` FLOPs per token and every weight read once per
//!   step, timed by the profile's GEMM calibration or the roofline of its peaks;
//! - attention: the profile's kernel curve for the policy's variant, read at the step's context
//!   and scaled to the model's per-GPU heads by work counts, times the layers;
//! - decode steps are evaluated at the phrase's middle context `C + P/2` (cost is close to linear
//!   in context, so the midpoint stands for the average);
//! - where the profile has no point (analytical profiles, non-attention layers without GEMM
//!   calibration, recurrent state), work is costed by the [`machine::Machine`]: achieved fractions
//!   of the peaks, a fixed overhead per step, and a power model by what the work is bound by
//!   (compute, memory, waiting), each figure labeled datasheet / assumed / measured / calibrated;
//!   `--calibration` fits its free figures to measured end-to-end serving points ([`calibrate`]);
//! - energy: the sum over GPUs of power x time: the stage's tensor-parallel GPUs at the work's
//!   power, the other stages' GPUs at the waiting power for the step's duration, every GPU at the
//!   waiting power during the step's overhead ([`Row::energy`] lists the terms); one
//!   conversation's share is the step's energy divided by the batch.
//!
//! Every conversation token is treated as generated (an upper bound; a listener's tokens would be
//! prefilled, more cheaply). Tensor-parallel all-reduces are costed (rings over NVLink); hand-offs
//! between pipeline stages are not.

pub mod analytical;
pub mod calibrate;
pub mod deploy;
pub mod interp;
pub mod machine;
pub mod model;
pub mod policy;

use crate::error::{invalid, Error, Result};
use crate::mask::Mask;
use crate::mask::MaskRecipe;
use crate::paged::KvDtype;
use crate::problem::{Problem, Shape};
use crate::profile::{Phase, Profile, ProfileKind};
use crate::work::Variant;
use deploy::{Deployment, Memory, GIB};
use interp::{work_of, AttnCurve, CallCost, CurveKey, Pchip, Roofline};
use machine::{Figure, Machine, Origin};
use model::ModelSpec;
use policy::{Policy, PolicyParams};
use serde::Serialize;

/// Longest context (tokens, the phrase included) an estimate reads: 2^24 tokens (a month of
/// conversation at 225 tokens a minute), what the estimator tabulates in a fraction of a second
/// (its work counts grow with the context: 0.2 s for the whole default table at 2^24 on two
/// loaded cores, 0.7 s at 2^26), and within the kernels' 32-bit range.
pub const MAX_CONTEXT: usize = 1 << 24;

/// Most minutes one estimate reports: each is a row per policy with its cumulative energy (48
/// phrases costed), and a wider table is no longer read.
pub const MAX_MINUTES: usize = 16;

/// Most regimes (batch sizes) one estimate compares side by side.
pub const MAX_REGIMES: usize = 4;

/// Most GPUs a deployment may have (`max_gpus`, `gpus`, `gpus_per_node`): the sizing tries every
/// node count up to `max_gpus`.
pub const MAX_GPUS: usize = 1 << 20;

/// A conversation: how fast the context grows, how long a phrase is, when to report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Conversation {
    pub tokens_per_minute: f64,
    pub phrase_tokens: usize,
    pub minutes: Vec<f64>,
}

impl Default for Conversation {
    fn default() -> Self {
        Conversation { tokens_per_minute: 225.0, phrase_tokens: 50, minutes: vec![5.0, 55.0, 205.0, 305.0, 505.0] }
    }
}

impl Conversation {
    pub fn validate(&self) -> Result<()> {
        if !(self.tokens_per_minute.is_finite() && self.tokens_per_minute > 0.0) {
            return invalid(format!("tokens per minute must be positive, got {}", self.tokens_per_minute));
        }
        if self.phrase_tokens == 0 {
            return invalid("phrase length must be at least 1 token");
        }
        if self.minutes.is_empty() {
            return invalid("give at least one minute to report");
        }
        if self.minutes.len() > MAX_MINUTES {
            return invalid(format!("at most {MAX_MINUTES} minutes per estimate, not {}", self.minutes.len()));
        }
        // A phrase must take a finite time to say (a rate near zero makes it infinite).
        if !self.phrase_seconds().is_finite() {
            return invalid(format!(
                "{} tokens per minute is too slow: a {}-token phrase would take forever to say",
                self.tokens_per_minute, self.phrase_tokens
            ));
        }
        if let Some(m) = self.minutes.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
            return invalid(format!("minutes must be positive, got {m}"));
        }
        // Contexts become attention shapes: within the kernels' 32-bit range, phrase included
        // (beyond it the float-to-int conversion saturates and the shapes overflow).
        let last = self.minutes.iter().copied().fold(0.0, f64::max);
        let tokens = last * self.tokens_per_minute + self.phrase_tokens as f64;
        if tokens > MAX_CONTEXT as f64 {
            let num = |x: f64| if x < 1e9 { format!("{x}") } else { format!("{x:.3e}") };
            return invalid(format!(
                "minute {} at {} tokens/min with {}-token phrases reaches {tokens:.3e} tokens of context, beyond \
                 {MAX_CONTEXT} (the longest the estimator tabulates); report earlier minutes or fewer tokens per minute",
                num(last),
                num(self.tokens_per_minute),
                self.phrase_tokens
            ));
        }
        Ok(())
    }
    /// Tokens in context at `minute`.
    pub fn context_at(&self, minute: f64) -> usize {
        (minute * self.tokens_per_minute).round() as usize
    }
    /// How long a phrase takes to say, seconds.
    pub fn phrase_seconds(&self) -> f64 {
        self.phrase_tokens as f64 / self.tokens_per_minute * 60.0
    }
}

/// How the model is served.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Options {
    /// Conversations decoded together.
    pub batch: usize,
    /// Fixed GPU count; `None` sizes the deployment from memory.
    pub gpus: Option<usize>,
    pub max_gpus: usize,
    pub gpus_per_node: usize,
    /// Fraction of GPU memory kept free.
    pub headroom: f64,
    /// Power of a GPU that holds a shard and waits; `None` takes the profile's idle power.
    pub wait_watts: Option<f64>,
    pub params: PolicyParams,
    /// The block-sparse policy's mask (its decode row: seq_q 1 at the end of the cache).
    pub sparse: MaskRecipe,
    /// How the policies that keep a cache (kv-cache, window, block-sparse, budget) store it;
    /// `None`: the model's own element size, decode costed as bf16. No-cache and dense keep their
    /// transient cache in bf16 (their prefill kernels write it).
    pub kv_dtype: Option<KvDtype>,
    /// Figures fitted to measured serving points (`--calibration`): they replace the machine's
    /// assumptions (never a measured profile's figures).
    pub calibration: Option<calibrate::Applied>,
}

/// The block-sparse policy's default mask, BigBird-ITC's block budget (Zaheer et al., "Big Bird",
/// NeurIPS 2020, appendix E: 64-token blocks, 2 global, 3 sliding, 3 random): a decode row sees the
/// first 2 key blocks, its own block and the 2 before it (`local` 2: no block follows the newest
/// token), and 3 seeded random blocks.
pub const BLOCK_SPARSE_DEFAULT: MaskRecipe = MaskRecipe::BigBird { block: 64, local: 2, global: 2, random: 3, seed: 0 };

impl Default for Options {
    fn default() -> Self {
        Options {
            batch: 1,
            gpus: None,
            max_gpus: 4096,
            gpus_per_node: 8,
            headroom: 0.10,
            wait_watts: None,
            params: PolicyParams::default(),
            sparse: BLOCK_SPARSE_DEFAULT,
            kv_dtype: None,
            calibration: None,
        }
    }
}

impl Options {
    pub fn validate(&self) -> Result<()> {
        if self.batch == 0 {
            return invalid("batch must be at least 1");
        }
        if self.max_gpus == 0 || self.gpus == Some(0) || self.gpus_per_node == 0 {
            return invalid("GPU counts must be at least 1");
        }
        if self.max_gpus.max(self.gpus.unwrap_or(0)).max(self.gpus_per_node) > MAX_GPUS {
            return invalid(format!("GPU counts (max GPUs, GPUs, GPUs per node) must be at most {MAX_GPUS}"));
        }
        if !(0.0..0.9).contains(&self.headroom) {
            return invalid(format!("headroom must be in [0, 0.9), got {}", self.headroom));
        }
        if let Some(w) = self.wait_watts {
            if !(w.is_finite() && w >= 0.0) {
                return invalid("waiting power must be non-negative");
            }
        }
        self.params.validate()
    }
}

/// The GPU's figures the estimator needs besides attention curves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Hardware {
    #[serde(skip)]
    pub roof: Roofline,
    /// Work no profile point covers: achieved rates, per-step overhead, power model.
    pub machine: Machine,
    pub bf16_tflops: f64,
    pub hbm_gbps: f64,
    pub board_watts: f64,
    /// The machine's waiting power (as the output has always shown it; the estimator reads
    /// `machine.power.wait_watts`).
    pub wait_watts: f64,
    pub gpu_memory_bytes: f64,
}

/// Non-attention GEMM cost from a profile's calibration points: seconds and joules per FLOP
/// against tokens per weight read (m), interpolated in log-log space.
#[derive(Debug, Clone)]
struct GemmCal {
    s_per_flop: Pchip,
    j_per_flop: Pchip,
}

impl GemmCal {
    fn from_profile(p: &Profile) -> Option<GemmCal> {
        let mut by_m: std::collections::BTreeMap<u64, (f64, f64, f64)> = Default::default();
        for g in &p.gemm {
            let Some(j) = g.joules else { continue };
            let f = g.flops();
            if !(f > 0.0 && g.seconds.median > 0.0 && j.median > 0.0) {
                continue;
            }
            // Per m, the largest GEMM stands for the model's large weight matrices.
            let e = by_m.entry(g.m).or_insert((0.0, 0.0, 0.0));
            if f > e.0 {
                *e = (f, g.seconds.median / f, j.median / f);
            }
        }
        let mut x: Vec<f64> = by_m.keys().map(|m| (*m as f64).ln()).collect();
        let mut s: Vec<f64> = by_m.values().map(|v| v.1.ln()).collect();
        let mut j: Vec<f64> = by_m.values().map(|v| v.2.ln()).collect();
        if x.len() == 1 {
            // One size: constant per-FLOP cost.
            x.push(x[0] + 1.0);
            s.push(s[0]);
            j.push(j[0]);
        }
        Some(GemmCal { s_per_flop: Pchip::new(x.clone(), s).ok()?, j_per_flop: Pchip::new(x, j).ok()? })
    }
}

/// Which profile was used, for every output.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProfileLabel {
    pub kind: ProfileKind,
    pub gpu: String,
    pub created: String,
    pub source: String,
}

impl ProfileLabel {
    pub fn line(&self) -> String {
        format!("profile: {} | {} | {} | {}", self.kind.label(), self.gpu, self.created, self.source)
    }
    /// A shorter label for plots.
    pub fn short(&self) -> String {
        let kind = match self.kind {
            ProfileKind::Analytical => "ANALYTICAL, not measured",
            k => k.label(),
        };
        format!("{kind} profile: {}, {}", self.gpu, self.created)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum RowStatus {
    Ok,
    /// The context does not fit on the deployment.
    DoesNotFit {
        need_gib_per_gpu: f64,
        have_gib_per_gpu: f64,
    },
    /// The profile has no points for this policy's kernel.
    NoData {
        reason: String,
    },
}

/// One policy at one minute.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Row {
    pub policy: Policy,
    pub batch: usize,
    pub minute: f64,
    pub context: usize,
    #[serde(flatten)]
    pub status: RowStatus,
    pub seconds_per_phrase: Option<f64>,
    /// One conversation's share.
    pub joules_per_token: Option<f64>,
    pub wh_per_phrase: Option<f64>,
    /// Attention's share of the phrase's energy.
    pub attention_share: Option<f64>,
    /// KV cache (or recurrent state) of one conversation, replicas included.
    pub kv_gib: f64,
    pub mem_gib_per_gpu: f64,
    pub gpus: usize,
    pub tp: usize,
    pub pp: usize,
    /// Energy of the conversation so far (every phrase up to and including this one), one
    /// conversation's share.
    pub cumulative_wh: Option<f64>,
    /// Some attention or GEMM cost came from outside the profiled range.
    pub extrapolated: bool,
    /// The phrase's energy (the whole batch) as power x time per group of GPUs.
    pub energy: Vec<EnergyTerm>,
}

/// Energy and time of one phrase for the whole batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PhraseCost {
    pub seconds: f64,
    /// All GPUs, all conversations of the batch: the sum of `energy`'s terms and `other_joules`.
    pub joules: f64,
    pub attn_joules: f64,
    pub extrapolated: bool,
    /// Every GPU of the deployment, power x time (GPU-seconds add up to GPUs x `seconds`).
    pub energy: Vec<EnergyTerm>,
    /// Energy spent outside the GPUs (the budget policy's retrieval).
    pub other_joules: f64,
}

/// Time of one stage's tensor-parallel GPUs on a part of the work (summed over stages), and
/// the energy of those GPUs meanwhile.
#[derive(Debug, Clone, Copy, Default)]
struct Part {
    seconds: f64,
    joules: f64,
}

impl Part {
    fn add(&mut self, o: Part, times: f64) {
        self.seconds += o.seconds * times;
        self.joules += o.joules * times;
    }
}

/// The work of one or more steps: non-attention layers, attention, and time outside kernels.
#[derive(Debug, Clone, Copy, Default)]
struct Step {
    layers: Part,
    attention: Part,
    /// Tensor-parallel all-reduces.
    comm: Part,
    /// Seconds every GPU waits (per-step overhead).
    overhead: f64,
    extrapolated: bool,
}

impl Step {
    fn add(&mut self, o: Step, times: f64) {
        self.layers.add(o.layers, times);
        self.attention.add(o.attention, times);
        self.comm.add(o.comm, times);
        self.overhead += o.overhead * times;
        self.extrapolated |= o.extrapolated;
    }
    fn seconds(&self) -> f64 {
        self.layers.seconds + self.attention.seconds + self.comm.seconds + self.overhead
    }
}

/// GPUs that spend `seconds` at `watts`: one term of a row's energy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EnergyTerm {
    pub what: &'static str,
    pub gpus: usize,
    pub seconds: f64,
    pub watts: f64,
}

impl EnergyTerm {
    pub fn joules(&self) -> f64 {
        self.gpus as f64 * self.seconds * self.watts
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyDeployment {
    pub policy: Policy,
    pub deployment: Deployment,
    pub gpus: usize,
    /// Context the deployment was sized for.
    pub sized_for_context: usize,
}

/// Everything `attnjoule estimate` prints.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub profile: ProfileLabel,
    pub model: String,
    pub model_source: String,
    pub total_params: f64,
    pub active_params: f64,
    pub hardware: Hardware,
    pub conversation: Conversation,
    pub batch: usize,
    pub params: PolicyParams,
    /// Nominal K/V bytes per token of one conversation (no replicas), GiB, as the cache policies
    /// store it.
    pub kv_gib_per_token: f64,
    /// `--kv-dtype`, when given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kv_dtype: Option<KvDtype>,
    /// A person speaking the phrase at ~20 W, Wh.
    pub human_wh_per_phrase: f64,
    pub deployments: Vec<PolicyDeployment>,
    pub rows: Vec<Row>,
    /// Wh per phrase against minute on a log grid, for the plot.
    pub curves: Vec<PolicyCurve>,
    /// The fitted figures and "calibrated on N points from ..." when `--calibration` was given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration: Option<calibrate::Applied>,
    pub notes: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct PolicyCurve {
    pub policy: Policy,
    /// (minute, Wh per phrase), where the phrase fits and has data.
    pub points: Vec<(f64, f64)>,
}

/// Minutes for the plot: 40 log-spaced between the first and last requested minute, plus those.
pub fn plot_grid(minutes: &[f64]) -> Vec<f64> {
    let lo = minutes.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = minutes.iter().copied().fold(0.0, f64::max);
    let mut g: Vec<f64> = minutes.to_vec();
    if hi > lo {
        g.extend((0..40).map(|i| lo * (hi / lo).powf(i as f64 / 39.0)));
    }
    g.sort_by(|a, b| a.total_cmp(b));
    g.dedup_by(|a, b| (*a - *b).abs() < 1e-9 * b.abs().max(1.0));
    g
}

/// Reference power of a person saying the phrase: about 20 W, roughly what a human brain draws
/// (a resting body draws ~80-100 W). Only a reference line for scale.
pub const HUMAN_WATTS: f64 = 20.0;

/// The estimator for one profile, model and serving options.
pub struct Estimator {
    pub model: ModelSpec,
    pub hw: Hardware,
    pub label: ProfileLabel,
    pub opts: Options,
    /// The model as the cache policies store it: its KV element size overridden by
    /// `opts.kv_dtype` (scales included), for their memory.
    pub kv_model: ModelSpec,
    /// The cache policies' KV dtype (bf16 unless `opts.kv_dtype` says otherwise).
    pub kv: KvDtype,
    /// Tokens per phrase (set from the conversation).
    pub phrase_tokens: usize,
    gemm: Option<GemmCal>,
    decode: Option<AttnCurve>,
    /// The cache policies' decode curve: `kv`'s points, else the bf16 curve costed by bytes.
    kv_decode: Option<AttnCurve>,
    flash_prefill: Option<AttnCurve>,
    dense_prefill: Option<AttnCurve>,
    dense_decode: Option<AttnCurve>,
    window: Option<AttnCurve>,
    sparse: Option<AttnCurve>,
    /// Attention from the machine (work counts), not from the points: the profile's points are
    /// the roofline itself, which the machine reproduces at its assumed figures.
    analytical: bool,
    pub notes: Vec<String>,
}

impl Estimator {
    /// `source` names where the profile came from (a path, or "bundled").
    pub fn new(profile: &Profile, source: &str, model: ModelSpec, opts: Options) -> Result<Estimator> {
        model.validate()?;
        opts.validate()?;
        // An emulated profile has no time or energy; a CPU dry run has a CPU's seconds and no
        // energy: neither says what a GPU costs.
        if !profile.kind.has_gpu_numbers() {
            return Err(Error::Format(format!(
                "profile is {}; use a measured or the analytical profile",
                profile.kind.label()
            )));
        }
        let mut notes = Vec::new();
        let peaks = match &profile.peaks {
            Some(p) => p.clone(),
            None => {
                notes.push("profile has no peaks: H100 SXM datasheet peaks used for scaling and roofline".into());
                analytical::h100_sxm().peaks.expect("bundled profile has peaks")
            }
        };
        if !(peaks.bf16_tflops > 0.0 && peaks.hbm_gbps > 0.0 && peaks.board_watts > 0.0) {
            return Err(Error::Format("profile peaks must be positive".into()));
        }
        let wait = match (opts.wait_watts, profile.idle_watts, peaks.idle_watts) {
            (Some(w), _, _) => Figure::new(w, Origin::Assumed, "given by --wait-watts"),
            (None, Some(w), _) => Figure::new(w, Origin::Measured, "the profile's idle baseline"),
            (None, None, Some(w)) if profile.kind == ProfileKind::Analytical => {
                Figure::new(w, Origin::Assumed, analytical::WAIT_BASIS)
            }
            (None, None, Some(w)) => Figure::new(w, Origin::Assumed, "the profile's peaks.idle_watts"),
            (None, None, None) => {
                Figure::new(analytical::H100_WAIT_WATTS_ASSUMED, Origin::Assumed, analytical::WAIT_BASIS)
            }
        };
        let mut machine =
            Machine::analytical(peaks.bf16_tflops, peaks.hbm_gbps, peaks.board_watts, wait).with_profile(profile);
        if let Some(c) = &opts.calibration {
            machine = machine.calibrated(&c.params, &c.label);
        }
        let wait_watts = machine.power.wait_watts.value;
        let gpu_memory = match profile.gpu.memory_bytes {
            Some(b) if b > 0 => b as f64,
            _ => {
                notes.push("profile has no GPU memory size: 80 GB assumed".into());
                analytical::H100_MEMORY_BYTES as f64
            }
        };
        let hw = Hardware {
            roof: Roofline { flops: peaks.bf16_tflops * 1e12, bytes: peaks.hbm_gbps * 1e9 },
            machine,
            bf16_tflops: peaks.bf16_tflops,
            hbm_gbps: peaks.hbm_gbps,
            board_watts: peaks.board_watts,
            wait_watts,
            gpu_memory_bytes: gpu_memory,
        };
        let kv = opts.kv_dtype.unwrap_or_default();
        let find = |variant, phase, mask: MaskRecipe, kv_dtype| {
            AttnCurve::from_profile(profile, &CurveKey { variant, phase, mask, kv_dtype })
        };
        let curve = |variant, phase, mask: MaskRecipe| find(variant, phase, mask, KvDtype::Bf16);
        let kv_curve = |mask: MaskRecipe| find(Variant::Decode, Phase::Decode, mask, kv);
        let decode = curve(Variant::Decode, Phase::Decode, MaskRecipe::Causal)
            .or_else(|| curve(Variant::Decode, Phase::Decode, MaskRecipe::None));
        // A cache in another dtype: its own points where the profile has them, else the bf16
        // curve, costed by the call's bytes (AttnCurve::cost).
        let by_bytes = |what: &str, notes: &mut Vec<String>| {
            notes.push(format!(
                "no {kv} {what} decode points: {kv} KV costed from the bf16 curve by bytes (elements at {} B, \
                 {} B of scales per token and KV head)",
                kv.elem_bytes(),
                kv.scale_bytes()
            ))
        };
        let kv_decode = if kv == KvDtype::Bf16 {
            decode.clone()
        } else {
            kv_curve(MaskRecipe::Causal).or_else(|| kv_curve(MaskRecipe::None)).or_else(|| {
                by_bytes("causal", &mut notes);
                decode.clone()
            })
        };
        let window_spec = MaskRecipe::Window { keys: opts.params.window };
        let fallback = |mask: MaskRecipe, what: &str, notes: &mut Vec<String>| match kv {
            KvDtype::Bf16 => None,
            _ => curve(Variant::Decode, Phase::Decode, mask).inspect(|_| by_bytes(what, notes)),
        };
        let window =
            kv_curve(window_spec.clone()).or_else(|| fallback(window_spec, "window", &mut notes)).or_else(|| {
                notes.push("no window decode points: window decode scaled from the causal decode curve".into());
                kv_decode.clone()
            });
        let sparse = kv_curve(opts.sparse.clone())
            .or_else(|| fallback(opts.sparse.clone(), "block-sparse", &mut notes))
            .or_else(|| {
                notes.push("no block-sparse decode points: scaled from the causal decode curve".into());
                kv_decode.clone()
            });
        let mut kv_model = model.clone();
        if let Some(k) = opts.kv_dtype {
            kv_model.kv_bytes_per_elem = k.row_bytes(model.head_dim as usize) as f64 / model.head_dim as f64;
        }
        let gemm = GemmCal::from_profile(profile);
        if gemm.is_none() {
            notes.push(format!(
                "non-attention layers: {} TFLOP/s, {} GB/s peaks at the machine's achieved fractions and power \
                 model (no GEMM calibration in the profile)",
                peaks.bf16_tflops, peaks.hbm_gbps
            ));
        }
        let label = ProfileLabel {
            kind: profile.kind,
            gpu: profile.gpu.name.clone(),
            created: profile.created.clone(),
            source: source.into(),
        };
        Ok(Estimator {
            analytical: profile.kind == ProfileKind::Analytical,
            flash_prefill: curve(Variant::Flash, Phase::Prefill, MaskRecipe::Causal),
            dense_prefill: curve(Variant::Dense, Phase::Prefill, MaskRecipe::Causal),
            dense_decode: curve(Variant::Dense, Phase::Decode, MaskRecipe::Causal),
            decode,
            kv_decode,
            window,
            sparse,
            gemm,
            kv_model,
            kv,
            model,
            hw,
            label,
            opts,
            phrase_tokens: Conversation::default().phrase_tokens,
            notes,
        })
    }

    /// Tensor-core rate of the non-attention layers relative to bf16: weights of one byte or
    /// less run at the fp8 rate, twice bf16's on Hopper (H100/H200 datasheets: 1,979 vs 989
    /// dense TFLOP/s).
    fn layer_rate(&self) -> f64 {
        if self.model.bytes_per_param <= 1.0 {
            2.0
        } else {
            1.0
        }
    }

    /// Non-attention layers for a step over `tokens` tokens (all conversations).
    fn dense_layers(&self, tokens: f64, dep: &Deployment) -> Step {
        let flops = 2.0 * self.model.matmul_params() * tokens;
        let bytes = self.model.weight_bytes_read(tokens);
        let tp = dep.tp as f64;
        let layers = match &self.gemm {
            Some(g) => {
                // Tokens per weight byte pair: the m of an equivalent GEMM.
                let m = (flops / bytes).max(1.0);
                let lm = m.ln();
                let (lo, hi) = g.s_per_flop.range();
                let seconds = flops / tp * g.s_per_flop.eval(lm).exp();
                let part = Part { seconds, joules: flops * g.j_per_flop.eval(lm).exp() };
                return Step { layers: part, extrapolated: lm < lo - 1e-9 || lm > hi + 1e-9, ..Step::default() };
            }
            None => self.hw.machine.run(flops / tp, bytes / tp, self.layer_rate()),
        };
        Step { layers: Part { seconds: layers.seconds, joules: layers.joules() * tp }, ..Step::default() }
    }

    /// A step over `tokens` tokens outside the attention and GEMM kernels: each layer's two
    /// tensor-parallel ring all-reduces of the tokens' activations (latency per ring step plus
    /// bytes over the links; the stage's GPUs move data at the memory-bound power), and the fixed
    /// overhead per step (every GPU waits). Pipeline hand-offs are not modeled.
    fn overhead(&self, tokens: f64, dep: &Deployment) -> Step {
        let m = &self.hw.machine;
        let e = &m.efficiency;
        let tp = dep.tp as f64;
        let allreduce = if dep.tp > 1 {
            let bytes = tokens * self.model.d_model as f64 * 2.0;
            2.0 * (tp - 1.0) * (e.allreduce_hop_s.value + bytes / tp / m.link_bytes)
        } else {
            0.0
        };
        let comm = 2.0 * self.model.layers as f64 * allreduce;
        Step {
            comm: Part { seconds: comm, joules: comm * tp * m.power.memory_watts.value },
            overhead: e.step_overhead_s.value,
            ..Step::default()
        }
    }

    /// The model's per-GPU attention call for one layer.
    pub fn attention_problem(&self, dep: &Deployment, seq_q: usize, seq_k: usize, mask: Mask) -> Problem {
        let s = Shape {
            batch: self.opts.batch,
            seq_q: seq_q.max(1),
            seq_k: seq_k.max(1),
            heads: dep.heads_per_gpu(&self.model),
            kv_heads: dep.kv_heads_per_gpu(&self.model),
            head_dim: self.model.head_dim as usize,
        };
        Problem::new(s, mask)
    }

    /// One layer's attention call on one GPU for a decode step of `policy` at context `seq_k`
    /// (what the policy's phrase cost multiplies by the layers).
    pub fn decode_call(&self, policy: Policy, seq_k: usize, dep: &Deployment) -> Result<CallCost> {
        let prm = &self.opts.params;
        let (curve, mask, k) = match policy {
            Policy::KvCache => (&self.kv_decode, Mask::Causal, seq_k),
            Policy::NoCache => (&self.decode, Mask::Causal, seq_k),
            Policy::Dense => (&self.dense_decode, Mask::Causal, seq_k),
            Policy::Window => (&self.window, Mask::causal_window(prm.window), seq_k),
            Policy::BlockSparse => (&self.sparse, self.opts.sparse.mask(1, seq_k)?, seq_k),
            Policy::Budget => (&self.kv_decode, Mask::Causal, seq_k.min(prm.budget)),
            Policy::Recurrent => return invalid("the recurrent policy has no attention call"),
        };
        let Some(c) = curve else { return Err(Error::Format("profile has no usable decode points".into())) };
        self.call(c, &self.attention_problem(dep, 1, k, mask), self.kv_of(policy))
    }

    /// One attention call on one GPU: from the curve's points, or from the machine when the
    /// profile is analytical.
    fn call(&self, c: &AttnCurve, p: &Problem, kv: KvDtype) -> Result<CallCost> {
        if !self.analytical {
            return c.cost(p, kv, &self.hw.roof);
        }
        let w = work_of(c.key.variant, p, kv);
        let b = self.hw.machine.run(w.flops, w.min_bytes, 1.0);
        Ok(CallCost { seconds: b.seconds, joules: b.joules(), extrapolated: false })
    }

    /// The KV dtype a policy's decode reads: the option's for the policies that keep a cache,
    /// bf16 for those that rebuild it every phrase.
    pub fn kv_of(&self, policy: Policy) -> KvDtype {
        if policy.keeps_cache() {
            self.kv
        } else {
            KvDtype::Bf16
        }
    }

    /// Attention over all layers for one step, the cache read as `kv`.
    fn attention(
        &self,
        curve: &Option<AttnCurve>,
        what: &str,
        p: &Problem,
        kv: KvDtype,
        dep: &Deployment,
    ) -> Result<Step> {
        let Some(c) = curve else {
            return Err(Error::Format(format!("profile has no usable {what} points")));
        };
        let cost = self.call(c, p, kv)?;
        let layers = self.model.layers as f64;
        Ok(Step {
            attention: Part { seconds: cost.seconds * layers, joules: cost.joules * layers * dep.tp as f64 },
            extrapolated: cost.extrapolated,
            ..Step::default()
        })
    }

    /// Recurrent mixing for one decode step: read and write every layer's state (analytical).
    fn recurrent(&self, dep: &Deployment) -> Step {
        let m = &self.model;
        let b = self.opts.batch as f64;
        let state = m.layers as f64 * m.recurrent_state_bytes_per_layer();
        let flops = b * m.layers as f64 * 4.0 * m.heads as f64 * (m.head_dim as f64).powi(2);
        let tp = dep.tp as f64;
        let busy = self.hw.machine.run(flops / tp, 2.0 * b * state / tp, 1.0);
        Step { attention: Part { seconds: busy.seconds, joules: busy.joules() * tp }, ..Step::default() }
    }

    /// One phrase at context `ctx` (tokens already in the conversation) on `dep`.
    pub fn phrase(&self, policy: Policy, ctx: usize, dep: &Deployment) -> Result<PhraseCost> {
        let step_tokens = self.opts.batch as f64;
        let phrase = self.phrase_tokens;
        let mid = ctx + phrase.div_ceil(2);
        let prm = &self.opts.params;
        let mut total = Step::default();
        let decode_steps = phrase as f64;
        let mut dense = self.dense_layers(step_tokens, dep);
        dense.add(self.overhead(step_tokens, dep), 1.0);
        let (kv, bf16) = (self.kv, KvDtype::Bf16);
        match policy {
            Policy::KvCache => total.add(self.serving_work(mid, 0.0, 0, dep)?, decode_steps),
            Policy::Window => {
                let p = self.attention_problem(dep, 1, mid, Mask::causal_window(prm.window));
                total.add(dense, decode_steps);
                total.add(self.attention(&self.window, "window decode", &p, kv, dep)?, decode_steps);
            }
            Policy::BlockSparse => {
                let p = self.attention_problem(dep, 1, mid, self.opts.sparse.mask(1, mid)?);
                total.add(dense, decode_steps);
                total.add(self.attention(&self.sparse, "block-sparse decode", &p, kv, dep)?, decode_steps);
            }
            Policy::NoCache | Policy::Dense => {
                let (pre, dec, what) = if policy == Policy::Dense {
                    (&self.dense_prefill, &self.dense_decode, "dense")
                } else {
                    (&self.flash_prefill, &self.decode, "flash")
                };
                if ctx > 0 {
                    let pp = self.attention_problem(dep, ctx, ctx, Mask::Causal);
                    total.add(self.dense_layers(step_tokens * ctx as f64, dep), 1.0);
                    total.add(self.overhead(step_tokens * ctx as f64, dep), 1.0);
                    total.add(self.attention(pre, &format!("{what} prefill"), &pp, bf16, dep)?, 1.0);
                }
                let p = self.attention_problem(dep, 1, mid, Mask::Causal);
                total.add(dense, decode_steps);
                total.add(self.attention(dec, &format!("{what} decode"), &p, bf16, dep)?, decode_steps);
            }
            Policy::Budget => {
                let k = ctx.min(prm.budget);
                if ctx > prm.budget && prm.refresh > 0 {
                    let pp = self.attention_problem(dep, prm.refresh, k, Mask::Causal);
                    total.add(self.dense_layers(step_tokens * prm.refresh as f64, dep), 1.0);
                    total.add(self.overhead(step_tokens * prm.refresh as f64, dep), 1.0);
                    total.add(self.attention(&self.flash_prefill, "flash prefill", &pp, bf16, dep)?, 1.0);
                }
                let p = self.attention_problem(dep, 1, mid.min(prm.budget), Mask::Causal);
                total.add(dense, decode_steps);
                total.add(self.attention(&self.kv_decode, "decode", &p, kv, dep)?, decode_steps);
            }
            Policy::Recurrent => {
                total.add(dense, decode_steps);
                total.add(self.recurrent(dep), decode_steps);
            }
        }
        let other = if policy == Policy::Budget && ctx > prm.budget { prm.retrieval_joules * step_tokens } else { 0.0 };
        Ok(self.price(&total, dep, other))
    }

    /// One step of a server that decodes the batch at context `ctx` and, in the same forward
    /// pass (continuous batching, chunked prefill), prefills the prompts of the requests that
    /// replace finished ones: a fraction `arrivals` of the batch per step (batch / mean output
    /// tokens in steady state), each of `prompt` tokens. What a serving system measures per
    /// output token (`calibrate`); `arrivals` 0 is a plain kv-cache decode step.
    pub fn serving_step(&self, ctx: usize, arrivals: f64, prompt: usize, dep: &Deployment) -> Result<PhraseCost> {
        Ok(self.price(&self.serving_work(ctx, arrivals, prompt, dep)?, dep, 0.0))
    }

    /// The work of [`Estimator::serving_step`]; with `arrivals` 0, a kv-cache phrase's decode step.
    fn serving_work(&self, ctx: usize, arrivals: f64, prompt: usize, dep: &Deployment) -> Result<Step> {
        let b = self.opts.batch as f64;
        let prefill = if prompt > 0 { arrivals * b * prompt as f64 } else { 0.0 };
        let mut step = self.dense_layers(b + prefill, dep);
        step.add(self.overhead(b + prefill, dep), 1.0);
        let p = self.attention_problem(dep, 1, ctx, Mask::Causal);
        step.add(self.attention(&self.kv_decode, "decode", &p, self.kv, dep)?, 1.0);
        if prefill > 0.0 {
            // The batch's prompts prefilled once, a fraction `arrivals` of them per step.
            let pp = self.attention_problem(dep, prompt, prompt, Mask::Causal);
            step.add(self.attention(&self.flash_prefill, "flash prefill", &pp, KvDtype::Bf16, dep)?, arrivals);
        }
        Ok(step)
    }

    /// Energy of `work` on `dep`: the working stage's GPUs at each part's power, the other
    /// stages' GPUs waiting meanwhile, every GPU waiting during the overhead.
    fn price(&self, work: &Step, dep: &Deployment, other_joules: f64) -> PhraseCost {
        let wait = self.hw.machine.power.wait_watts.value;
        let (tp, idle) = (dep.tp, dep.gpus() - dep.tp);
        let active = |what, p: Part| EnergyTerm {
            what,
            gpus: tp,
            seconds: p.seconds,
            watts: if p.seconds > 0.0 { p.joules / (tp as f64 * p.seconds) } else { wait },
        };
        let kernels = work.layers.seconds + work.attention.seconds + work.comm.seconds;
        let energy = vec![
            active("non-attention layers", work.layers),
            active("attention", work.attention),
            active("tensor-parallel all-reduces", work.comm),
            EnergyTerm { what: "other stages waiting", gpus: idle, seconds: kernels, watts: wait },
            EnergyTerm { what: "overhead between steps", gpus: tp + idle, seconds: work.overhead, watts: wait },
        ];
        let joules = energy.iter().map(EnergyTerm::joules).sum::<f64>() + other_joules;
        let attn = energy[1].joules() + idle as f64 * work.attention.seconds * wait;
        PhraseCost {
            seconds: work.seconds(),
            joules,
            attn_joules: attn,
            extrapolated: work.extrapolated,
            energy,
            other_joules,
        }
    }

    pub fn memory(&self, policy: Policy, ctx: usize, dep: &Deployment) -> Memory {
        let m = if policy.keeps_cache() { &self.kv_model } else { &self.model };
        deploy::memory(m, dep, policy, &self.opts.params, ctx + self.phrase_tokens, self.opts.batch)
    }

    fn fits(&self, policy: Policy, ctx: usize, dep: &Deployment) -> bool {
        self.memory(policy, ctx, dep).total() <= dep.usable()
    }

    /// The deployment for `policy`: `--gpus` if given, else the smallest that holds the longest
    /// context of `contexts` (or the longest one that fits anywhere).
    pub fn deployment(&self, policy: Policy, contexts: &[usize]) -> Result<(Deployment, usize)> {
        let o = &self.opts;
        let (mem, head) = (self.hw.gpu_memory_bytes, o.headroom);
        let weights_fit = |d: &Deployment| self.model.weight_bytes() / d.gpus() as f64 <= d.usable();
        let longest = contexts.iter().copied().max().unwrap_or(0);
        if let Some(n) = o.gpus {
            let d = Deployment::split(n, o.gpus_per_node, mem, head)?;
            if !weights_fit(&d) {
                return invalid(format!(
                    "model {} does not fit on {n} GPUs: its weights alone need {:.0} GiB per GPU, {:.0} GiB usable",
                    self.model.name,
                    self.model.weight_bytes() / n as f64 / GIB,
                    d.usable() / GIB
                ));
            }
            return Ok((d, longest));
        }
        let Some(floor) = deploy::smallest(o.max_gpus, o.gpus_per_node, mem, head, weights_fit) else {
            return invalid(format!(
                "model {} fits no deployment of up to {} GPUs of {:.0} GiB: its weights alone need {:.0} GiB",
                self.model.name,
                o.max_gpus,
                mem / GIB,
                self.model.weight_bytes() / GIB
            ));
        };
        let mut sorted: Vec<usize> = contexts.to_vec();
        sorted.sort_unstable();
        for &c in sorted.iter().rev() {
            if let Some(d) = deploy::smallest(o.max_gpus, o.gpus_per_node, mem, head, |d| self.fits(policy, c, d)) {
                return Ok((d, c));
            }
        }
        Ok((floor, 0))
    }

    fn row(&self, policy: Policy, minute: f64, ctx: usize, dep: &Deployment, with_cumulative: bool) -> Row {
        let mem = self.memory(policy, ctx, dep);
        let b = self.opts.batch as f64;
        let kv_gib = mem.kv * dep.gpus() as f64 / b / GIB;
        let mut row = Row {
            policy,
            batch: self.opts.batch,
            minute,
            context: ctx,
            status: RowStatus::Ok,
            seconds_per_phrase: None,
            joules_per_token: None,
            wh_per_phrase: None,
            attention_share: None,
            kv_gib,
            mem_gib_per_gpu: mem.total() / GIB,
            gpus: dep.gpus(),
            tp: dep.tp,
            pp: dep.pp,
            cumulative_wh: None,
            extrapolated: false,
            energy: vec![],
        };
        if mem.total() > dep.usable() {
            row.status =
                RowStatus::DoesNotFit { need_gib_per_gpu: mem.total() / GIB, have_gib_per_gpu: dep.usable() / GIB };
            return row;
        }
        match self.phrase(policy, ctx, dep) {
            Err(e) => row.status = RowStatus::NoData { reason: e.to_string() },
            Ok(c) => {
                let per_conv = c.joules / b;
                row.seconds_per_phrase = Some(c.seconds);
                row.joules_per_token = Some(per_conv / self.phrase_tokens as f64);
                row.wh_per_phrase = Some(per_conv / 3600.0);
                row.attention_share = Some(c.attn_joules / c.joules);
                row.extrapolated = c.extrapolated;
                row.energy = c.energy;
                if with_cumulative {
                    row.cumulative_wh = self.cumulative_joules(policy, ctx, dep).map(|j| j / b / 3600.0);
                }
            }
        }
        row
    }

    /// Energy (all conversations of the batch) of every phrase from the start up to the one at
    /// `ctx`: phrases start at contexts 0, P, 2P, ...; long conversations are summed by the
    /// trapezoid rule over 48 sampled phrases (the cost is smooth in context).
    pub fn cumulative_joules(&self, policy: Policy, ctx: usize, dep: &Deployment) -> Option<f64> {
        let p = self.phrase_tokens;
        let n = ctx / p + 1;
        let f = |k: usize| self.phrase(policy, k * p, dep).ok().map(|c| c.joules);
        const SAMPLES: usize = 48;
        if n <= SAMPLES {
            return (0..n).map(f).sum();
        }
        let ks: Vec<usize> = (0..SAMPLES).map(|i| i * (n - 1) / (SAMPLES - 1)).collect();
        let vs: Vec<f64> = ks.iter().map(|&k| f(k)).collect::<Option<_>>()?;
        let mut integral = 0.0;
        for i in 1..ks.len() {
            integral += 0.5 * (vs[i] + vs[i - 1]) * (ks[i] - ks[i - 1]) as f64;
        }
        // Sum over integers = integral + half of each endpoint (trapezoid / Euler-Maclaurin).
        Some(integral + 0.5 * (vs[0] + vs[vs.len() - 1]))
    }

    /// Wh per phrase of `policy` at each of `minutes` (None where it does not fit or has no data),
    /// on the deployment sized for `conv`.
    pub fn curve(&self, policy: Policy, dep: &Deployment, conv: &Conversation, minutes: &[f64]) -> Vec<Option<f64>> {
        minutes.iter().map(|&m| self.row(policy, m, conv.context_at(m), dep, false).wh_per_phrase).collect()
    }
}

/// One report per regime (batch size) of `batches` (1 ..= [`MAX_REGIMES`] of them), side by side.
pub fn estimate_regimes(
    profile: &Profile,
    source: &str,
    model: ModelSpec,
    conv: &Conversation,
    opts: Options,
    batches: &[usize],
    policies: &[Policy],
) -> Result<Vec<Report>> {
    if batches.is_empty() || batches.len() > MAX_REGIMES {
        return invalid(format!("give 1 to {MAX_REGIMES} batch sizes, not {}", batches.len()));
    }
    batches
        .iter()
        .map(|&batch| estimate(profile, source, model.clone(), conv, Options { batch, ..opts.clone() }, policies))
        .collect()
}

/// Builds the estimator's report: a row per policy and minute.
pub fn estimate(
    profile: &Profile,
    source: &str,
    model: ModelSpec,
    conv: &Conversation,
    opts: Options,
    policies: &[Policy],
) -> Result<Report> {
    conv.validate()?;
    if policies.is_empty() {
        return invalid("no policy given");
    }
    let mut est = Estimator::new(profile, source, model, opts)?;
    est.phrase_tokens = conv.phrase_tokens;
    let contexts: Vec<usize> = conv.minutes.iter().map(|m| conv.context_at(*m)).collect();
    let mut deployments = Vec::new();
    let mut rows = Vec::new();
    let mut curves = Vec::new();
    let grid = plot_grid(&conv.minutes);
    for &policy in policies {
        let (dep, sized) = est.deployment(policy, &contexts)?;
        for (&minute, &ctx) in conv.minutes.iter().zip(&contexts) {
            rows.push(est.row(policy, minute, ctx, &dep, true));
        }
        let wh = est.curve(policy, &dep, conv, &grid);
        curves.push(PolicyCurve {
            policy,
            points: grid.iter().zip(wh).filter_map(|(m, w)| w.map(|w| (*m, w))).collect(),
        });
        deployments.push(PolicyDeployment { policy, deployment: dep, gpus: dep.gpus(), sized_for_context: sized });
    }
    let mut notes = est.notes.clone();
    notes.push(format!(
        "deployment: tensor parallel inside a node (up to {}), pipeline stages across nodes that run one after \
         another (no micro-batching); GPUs of idle stages draw {} W; tensor-parallel all-reduces as rings over \
         NVLink, not overlapped with compute (hand-offs between stages not modeled); {:.0}% of each GPU's memory \
         kept free; prefill activations in chunks of {} tokens",
        est.opts.gpus_per_node,
        est.hw.wait_watts,
        100.0 * est.opts.headroom,
        deploy::PREFILL_CHUNK_TOKENS
    ));
    notes.push(
        "every conversation token is counted as generated in phrases; decode steps are costed at the phrase's \
         middle context"
            .into(),
    );
    notes.extend(est.model.notes.iter().cloned());
    if policies.contains(&Policy::Recurrent) {
        notes.push(
            "recurrent: analytical only (roofline of a head_dim x head_dim state per head and layer, read and \
             written per token), whatever the profile"
                .into(),
        );
    }
    Ok(Report {
        profile: est.label.clone(),
        model: est.model.name.clone(),
        model_source: est.model.source.clone(),
        total_params: est.model.total_params(),
        active_params: est.model.active_params(),
        hardware: est.hw.clone(),
        conversation: conv.clone(),
        batch: est.opts.batch,
        params: est.opts.params,
        kv_gib_per_token: est.kv_model.kv_bytes_per_token() / GIB,
        kv_dtype: est.opts.kv_dtype,
        human_wh_per_phrase: HUMAN_WATTS * conv.phrase_seconds() / 3600.0,
        deployments,
        rows,
        curves,
        calibration: est.opts.calibration.clone(),
        notes,
    })
}
