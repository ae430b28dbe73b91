//! The profile schema (version 2): what a sweep measured (or what an analytical model derives),
//! the input of the estimator and of `attnjoule compare` / `merge`. Documented in
//! `profiles/README.md`. Optional fields added later default when absent; any other change bumps
//! [`SCHEMA_VERSION`] (at most once per release) and older versions are converted on read.

mod check;
mod points;

pub use points::Points;

use crate::device::Counters;
use crate::error::{Error, Result};
use crate::mask::MaskRecipe;
use crate::paged::mix::ServingAxes;
use crate::problem::Shape;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Version 2: a point's `mask` is a [`MaskRecipe`] spelling (version 1: an object of `kind`,
/// `size` and a free-form `detail`, converted on read by [`upgrade_point`]).
pub const SCHEMA_VERSION: u32 = 2;

/// Largest profile file read (bytes): about 30,000 points; a bound keeps `--profile /dev/zero`
/// from reading until memory runs out.
pub const MAX_PROFILE_BYTES: u64 = 64 << 20;

/// What produced a profile's numbers. Estimates must say which.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProfileKind {
    /// Timed and metered on a real GPU.
    Measured,
    /// Derived from datasheet figures (roofline), not measured.
    Analytical,
    /// Run on the CPU emulator: counters only, no time or energy.
    Emulated,
    /// The peer script's `--cpu` dry run: PyTorch on the CPU, host-clock seconds, no energy. It
    /// checks the pipeline; its numbers are no GPU's.
    CpuDryRun,
}

impl ProfileKind {
    /// How outputs label the kind (tables, plots, summaries).
    pub fn label(self) -> &'static str {
        match self {
            ProfileKind::Measured => "MEASURED",
            ProfileKind::Analytical => "ANALYTICAL (datasheet roofline, not measured)",
            ProfileKind::Emulated => "EMULATED (CPU emulator: counters, no time or energy)",
            ProfileKind::CpuDryRun => "CPU DRY RUN (PyTorch on a CPU, no energy; not a GPU measurement)",
        }
    }
    /// Whether the profile has seconds and joules of a GPU (measured or modeled) an estimate can
    /// stand on.
    pub fn has_gpu_numbers(self) -> bool {
        matches!(self, ProfileKind::Measured | ProfileKind::Analytical)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GpuInfo {
    pub name: String,
    #[serde(default)]
    pub uuid: Option<String>,
    #[serde(default)]
    pub driver: Option<String>,
    #[serde(default)]
    pub cuda: Option<String>,
    #[serde(default)]
    pub sm_count: Option<u32>,
    #[serde(default)]
    pub memory_bytes: Option<u64>,
    #[serde(default)]
    pub power_limit_w: Option<f64>,
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default)]
    pub mem_clock_mhz: Option<u32>,
    /// How often NVML's total-energy counter moved, measured at idle before the sweep (seconds;
    /// equal to the 1 ms poll means "at least that fine"): each end of a metered window can lag by
    /// up to this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub energy_counter_period_s: Option<f64>,
}

/// Clocks, temperature and throttle reasons at one moment.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GpuState {
    #[serde(default)]
    pub sm_clock_mhz: Option<u32>,
    #[serde(default)]
    pub mem_clock_mhz: Option<u32>,
    #[serde(default)]
    pub temperature_c: Option<u32>,
    #[serde(default)]
    pub power_w: Option<f64>,
    /// Active clock-limiting reasons by NVML name ("sw_power_cap", "hw_slowdown", ...).
    #[serde(default)]
    pub throttle_reasons: Vec<String>,
}

/// Reasons that do not mean the clocks were pulled down by power or heat during the work.
const BENIGN_REASONS: [&str; 3] = ["gpu_idle", "applications_clocks_setting", "display_clock_setting"];

impl GpuState {
    /// Clocks were limited by power or temperature (a measured point taken then is flagged).
    pub fn throttled(&self) -> bool {
        self.throttle_reasons.iter().any(|r| !BENIGN_REASONS.contains(&r.as_str()))
    }
}

impl GpuInfo {
    /// Its numbers in range (a power limit, memory, SM count); the error names the field.
    pub fn validate(&self) -> Result<()> {
        check::gpu(self).map_err(Error::Format)
    }
}

/// An idle power in range (finite, not negative); the error names `field`.
pub fn check_idle_watts(field: &str, w: Option<f64>) -> Result<()> {
    w.map_or(Ok(()), |w| check::non_negative(field, w).map_err(Error::Format))
}

/// Datasheet peaks (analytical profiles) with their sources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Peaks {
    pub bf16_tflops: f64,
    pub hbm_gbps: f64,
    pub board_watts: f64,
    #[serde(default)]
    pub idle_watts: Option<f64>,
    #[serde(default)]
    pub sources: Vec<String>,
}

/// Median and spread of repeated measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    /// Coefficient of variation (stddev / mean) over the repetitions.
    pub cv: f64,
    pub n: u32,
}

impl Stat {
    pub fn from_samples(xs: &[f64]) -> Option<Stat> {
        if xs.is_empty() {
            return None;
        }
        let mut v = xs.to_vec();
        v.sort_by(|a, b| a.total_cmp(b));
        let n = v.len();
        let median = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
        let mean = v.iter().sum::<f64>() / n as f64;
        let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n as f64;
        let cv = if mean != 0.0 { var.sqrt() / mean.abs() } else { 0.0 };
        Some(Stat { median, min: v[0], max: v[n - 1], cv, n: n as u32 })
    }
    pub fn exact(x: f64) -> Stat {
        Stat { median: x, min: x, max: x, cv: 0.0, n: 1 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Hash, PartialOrd, Ord, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// The whole prompt at once: seq_q == seq_k.
    Prefill,
    /// A few new tokens against a cache.
    Decode,
}

impl Phase {
    pub fn name(self) -> &'static str {
        match self {
            Phase::Prefill => "prefill",
            Phase::Decode => "decode",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum PointStatus {
    Ok,
    /// Would not fit in device memory: what it would need.
    Infeasible {
        need_gib: f64,
        have_gib: f64,
    },
    /// The launch or measurement failed; the sweep went on.
    Failed {
        error: String,
    },
}

/// How energy was obtained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EnergyMethod {
    /// NVML total-energy counter deltas.
    Counter,
    /// Integrated sampled power.
    SampledPower,
    /// Roofline time x board power (analytical profiles).
    Model,
    /// Not measured (emulator).
    None,
}

/// One measured (or modeled) configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// "dense", "flash", "decode", or a peer's name ("torch_sdpa_flash", "flex_attention").
    pub variant: String,
    /// "attnjoule" or the peer's implementation.
    pub implementation: String,
    pub phase: Phase,
    pub mask: MaskRecipe,
    pub shape: Shape,
    /// Serving-decode axes (`kv_dtype`, `page_size`, `mix`), each omitted when it has its default:
    /// a contiguous bf16 cache, a uniform batch (what every point without them means).
    #[serde(flatten)]
    pub serving: ServingAxes,
    #[serde(flatten)]
    pub status: PointStatus,
    /// Useful FLOPs and minimum DRAM bytes of the call (from `work`).
    pub flops: f64,
    pub min_bytes: f64,
    #[serde(default)]
    pub seconds: Option<Stat>,
    #[serde(default)]
    pub joules: Option<Stat>,
    #[serde(default)]
    pub joules_above_idle: Option<Stat>,
    #[serde(default)]
    pub watts: Option<f64>,
    pub energy_method: EnergyMethod,
    #[serde(default)]
    pub throttled: bool,
    #[serde(default)]
    pub calls: Option<u64>,
    #[serde(default)]
    pub counters: Option<Counters>,
    /// Nsight Compute metrics attached by `attnjoule import-ncu` (name -> value).
    #[serde(default)]
    pub ncu: std::collections::BTreeMap<String, f64>,
    #[serde(default)]
    pub note: Option<String>,
    /// Measurement detail (GPU, idle power, clocks and throttle state, per-repetition numbers).
    /// Optional: analytical and peer profiles may omit it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<Box<PointDetail>>,
}

/// How a measured point was taken (sweep and peer script); every field optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PointDetail {
    /// CUDA ordinal of the GPU that ran the point (`--devices`).
    #[serde(default)]
    pub device: Option<u32>,
    /// Idle board power subtracted for `joules_above_idle`.
    #[serde(default)]
    pub idle_watts: Option<f64>,
    /// Input buffer sets rotated so that L2 never holds the inputs.
    #[serde(default)]
    pub buffer_sets: Option<u32>,
    #[serde(default)]
    pub warmup_seconds_per_call: Option<f64>,
    /// Seconds and joules per call of each repetition.
    #[serde(default)]
    pub rep_seconds: Vec<f64>,
    #[serde(default)]
    pub rep_joules: Vec<f64>,
    #[serde(default)]
    pub rep_calls: Vec<u64>,
    /// Clocks, temperature and throttle reasons at the start and end of the point (read while the
    /// first and the last measured window run).
    #[serde(default)]
    pub start: Option<GpuState>,
    #[serde(default)]
    pub end: Option<GpuState>,
    /// Plan description ("3 kernels, 64x64 tiles ...").
    #[serde(default)]
    pub plan: Option<String>,
}

impl Point {
    pub fn tflops(&self) -> Option<f64> {
        self.seconds.map(|s| self.flops / s.median / 1e12)
    }
    pub fn gbps(&self) -> Option<f64> {
        self.seconds.map(|s| self.min_bytes / s.median / 1e9)
    }
    /// Context length this point stands for (seq_k).
    pub fn context(&self) -> usize {
        self.shape.seq_k
    }
    /// Every number finite and in range and the shape a real call; the error names the field.
    pub fn validate(&self) -> Result<()> {
        check::point(self).map_err(Error::Format)
    }
    /// The point's identity: [`key`] and the serving axes that differ from the default
    /// ([`ServingAxes::key_suffix`]).
    pub fn key(&self) -> String {
        key(&self.variant, &self.implementation, self.phase, &self.mask, &self.shape) + &self.serving.key_suffix()
    }
}

/// Identity of a point across runs, shards and profiles:
/// `<implementation>/<variant>/<phase>/<mask recipe>/b<batch>q<seq_q>k<seq_k>h<heads>kv<kv_heads>d<head_dim>`,
/// with every parameter of the mask (e.g. `attnjoule/flash/prefill/longformer:64:1:1/b1q4096k4096h8kv1d128`);
/// [`Point::key`] and the sweep's `PointSpec::key` append the serving axes that differ from the
/// default (`/kv=fp8/page=64/mix=mix64:1`), so older keys stay as they were.
pub fn key(variant: &str, implementation: &str, phase: Phase, mask: &MaskRecipe, s: &Shape) -> String {
    format!(
        "{}/{}/{phase}/{mask}/b{}q{}k{}h{}kv{}d{}",
        implementation.to_lowercase(),
        variant.to_lowercase(),
        s.batch,
        s.seq_q,
        s.seq_k,
        s.heads,
        s.kv_heads,
        s.head_dim
    )
}

/// A GEMM calibration point (non-attention layers): bf16 m x n x k.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GemmPoint {
    pub m: u64,
    pub n: u64,
    pub k: u64,
    pub seconds: Stat,
    #[serde(default)]
    pub joules: Option<Stat>,
    pub energy_method: EnergyMethod,
}

impl GemmPoint {
    pub fn flops(&self) -> f64 {
        2.0 * self.m as f64 * self.n as f64 * self.k as f64
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub schema_version: u32,
    pub kind: ProfileKind,
    pub gpu: GpuInfo,
    /// ISO date (UTC) the profile was produced.
    pub created: String,
    /// attnjoule version and git revision, or the peer script's description.
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub peaks: Option<Peaks>,
    /// Idle board power measured before the sweep.
    #[serde(default)]
    pub idle_watts: Option<f64>,
    /// A set keyed by the full point key: one point per configuration.
    #[serde(default)]
    pub points: Points,
    #[serde(default)]
    pub gemm: Vec<GemmPoint>,
    #[serde(default)]
    pub notes: Vec<String>,
}

impl Profile {
    pub fn from_json(text: &str) -> Result<Profile> {
        let v: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::Format(format!("profile is not valid JSON: {e}")))?;
        let ver = v
            .get("schema_version")
            .and_then(|x| x.as_u64())
            .ok_or_else(|| Error::Format("profile has no schema_version".into()))?;
        if ver == 0 || ver > SCHEMA_VERSION as u64 {
            return Err(Error::Format(format!(
                "profile schema_version {ver} is not supported (this build reads 1..={SCHEMA_VERSION})"
            )));
        }
        let mut v = v;
        if ver < SCHEMA_VERSION as u64 {
            if let Some(points) = v.get_mut("points").and_then(|p| p.as_array_mut()) {
                for (i, p) in points.iter_mut().enumerate() {
                    upgrade_point(p, ver as u32).map_err(|e| Error::Format(format!("point {i}: {e}")))?;
                }
            }
            // Read into this version's types: written back, it is a current profile.
            v["schema_version"] = SCHEMA_VERSION.into();
        }
        let mut p: Profile = serde_json::from_value(v).map_err(|e| Error::Format(format!("malformed profile: {e}")))?;
        if p.kind == ProfileKind::Measured && p.is_cpu_dry_run() {
            p.kind = ProfileKind::CpuDryRun;
        }
        p.validate()?;
        Ok(p)
    }

    /// A peer-script `--cpu` dry run written before the kind existed (as "measured"): its GPU
    /// name and notes say what it was.
    fn is_cpu_dry_run(&self) -> bool {
        self.gpu.name.contains("--cpu dry run") || self.notes.iter().any(|n| n.starts_with("--cpu dry run"))
    }

    /// Every number finite and in range, every shape a real call (see `check`); the error names
    /// the field.
    pub fn validate(&self) -> Result<()> {
        check::profile(self).map_err(Error::Format)
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("profile serializes")
    }

    /// Reads and validates a profile (at most [`MAX_PROFILE_BYTES`]); errors name the file.
    pub fn load(path: &Path) -> Result<Profile> {
        let text = crate::files::read_text(path, MAX_PROFILE_BYTES, "profile")?;
        Self::from_json(&text).map_err(|e| match e {
            Error::Format(m) => Error::Format(format!("{}: {m}", path.display())),
            e => e,
        })
    }

    /// Writes the profile atomically (a failed write leaves the old file); an invalid profile
    /// (a NaN, a negative power) is refused, not written.
    pub fn save(&self, path: &Path) -> Result<()> {
        self.validate().map_err(|e| match e {
            Error::Format(m) => Error::Invalid(format!("refusing to write {}: {m}", path.display())),
            e => e,
        })?;
        crate::files::write_atomic(path, self.to_json().as_bytes())
    }
}

/// Converts one point (JSON, as a profile or a sweep log of schema `from` holds it) to this
/// version, in place. Version 1 spelled the mask as `{"kind", "size", "detail"}`; a mask that is
/// already a recipe spelling is left as it is (a log resumed by a newer build mixes both).
pub fn upgrade_point(point: &mut serde_json::Value, from: u32) -> std::result::Result<(), String> {
    if from >= 2 {
        return Ok(());
    }
    let seq_q = point.pointer("/shape/seq_q").and_then(|x| x.as_u64());
    let Some(mask) = point.get_mut("mask") else { return Ok(()) };
    if mask.is_string() {
        return Ok(());
    }
    let recipe = v1_mask(mask, seq_q)?;
    *mask = serde_json::Value::String(recipe.to_string());
    Ok(())
}

/// The recipe a schema-1 mask object names: `none`, `causal`, `window` of `size` keys,
/// `block_sparse` of block `size` with detail `longformer local=L global=G`, or the estimator's
/// decode row `bigbird-decode local=L global=G random=R seed=S` (L blocks ending at the query,
/// which is `bigbird:<size>:<L-1>:G:R:S` for one query row).
fn v1_mask(m: &serde_json::Value, seq_q: Option<u64>) -> std::result::Result<MaskRecipe, String> {
    let kind = m.get("kind").and_then(|k| k.as_str()).unwrap_or("");
    let size = m.get("size").and_then(|s| s.as_u64()).map(|s| s as usize);
    let detail = m.get("detail").and_then(|d| d.as_str()).unwrap_or("");
    let refuse = || {
        format!(
            "schema-1 mask {m} names no mask recipe; replace it by the recipe it was measured with (none, causal, \
             window:<keys>, longformer:<block>:<local>:<global>, bigbird:..., strided:...; profiles/README.md) and \
             set schema_version to {SCHEMA_VERSION}"
        )
    };
    let params = |builder: &str| -> Option<std::collections::BTreeMap<&str, u64>> {
        let mut it = detail.split_whitespace();
        (it.next()? == builder).then_some(())?;
        it.map(|kv| kv.split_once('=').and_then(|(k, v)| Some((k, v.parse().ok()?)))).collect()
    };
    let recipe = match (kind, size) {
        ("none", _) => MaskRecipe::None,
        ("causal", _) => MaskRecipe::Causal,
        ("window", Some(keys)) if keys > 0 => MaskRecipe::Window { keys },
        ("block_sparse", Some(block)) if block > 0 => {
            if let Some(p) = params("longformer") {
                match (p.get("local"), p.get("global"), p.len()) {
                    (Some(&l), Some(&g), 2) => MaskRecipe::Longformer { block, local: l as usize, global: g as usize },
                    _ => return Err(refuse()),
                }
            } else if let Some(p) = params("bigbird-decode") {
                match (p.get("local"), p.get("global"), p.get("random"), p.get("seed"), p.len(), seq_q) {
                    (Some(&l), Some(&g), Some(&r), Some(&seed), 4, Some(1)) if l >= 1 => MaskRecipe::BigBird {
                        block,
                        local: l as usize - 1,
                        global: g as usize,
                        random: r as usize,
                        seed,
                    },
                    _ => return Err(refuse()),
                }
            } else {
                return Err(refuse());
            }
        }
        _ => return Err(refuse()),
    };
    Ok(recipe)
}
