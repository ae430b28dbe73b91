//! `attnjoule sweep`: seconds and joules per call over variants × contexts × phases.

use crate::cli::out::{errln, outln};

use anyhow::bail;
use attnjoule::mask::MaskRecipe;
use attnjoule::paged::mix::{Mix, ServingAxes};
use attnjoule::paged::KvDtype;
use attnjoule::profile::Phase;
use attnjoule::sweep::backend::{self, BackendKind, RunConfig};
use attnjoule::sweep::protocol::ProtocolConfig;
use attnjoule::sweep::{powers_of_two, Shard, SweepSpec};
use attnjoule::work::Variant;
use std::path::PathBuf;

/// Where the sweep runs.
#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Backend {
    /// A real GPU: time from CUDA events, energy from NVML.
    Cuda,
    /// The CPU emulator: counters only, small sizes.
    Emu,
}

impl From<Backend> for BackendKind {
    fn from(b: Backend) -> Self {
        match b {
            Backend::Cuda => BackendKind::Cuda,
            Backend::Emu => BackendKind::Emu,
        }
    }
}

#[derive(clap::Args)]
pub struct Args {
    #[arg(long, value_enum, default_value = "cuda")]
    backend: Backend,
    /// Variants: flash, flash-hopper, flash-hopper-fp8 (prefill), decode (decode), dense (both).
    /// Default: flash,flash-hopper,decode,dense on a GPU; flash,decode,dense on the emulator
    /// (which runs the Hopper prefill too when asked: `--variants flash-hopper`).
    #[arg(long, value_enum, value_delimiter = ',')]
    variants: Vec<Variant>,
    #[arg(long, value_enum, value_delimiter = ',', default_value = "prefill,decode")]
    phases: Vec<Phase>,
    /// Context sizes (keys); default powers of two from --ctx-min to --ctx-max (64..512 with
    /// --backend emu).
    #[arg(long, value_delimiter = ',')]
    ctx: Vec<usize>,
    #[arg(long, default_value_t = 1024)]
    ctx_min: usize,
    #[arg(long, default_value_t = 1 << 20)]
    ctx_max: usize,
    /// Decode: new tokens per step (1..16), a point each.
    #[arg(long, value_delimiter = ',', default_value = "1")]
    decode_tokens: Vec<usize>,
    /// Masks, every parameter part of a point's key: none, causal, window:<keys>,
    /// longformer:<block>:<local>:<global>, bigbird:<block>:<local>:<global>:<random>:<seed>,
    /// strided:<block>:<local>:<stride>, csr:<path> (a block layout file, profiles/README.md).
    #[arg(long, value_delimiter = ',', default_value = "causal", value_parser = MaskRecipe::from_arg)]
    mask: Vec<MaskRecipe>,
    /// Decode points' KV cache: bf16, fp8 (e4m3 with per-token scales; paged only).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "bf16")]
    kv_dtype: Vec<KvDtype>,
    /// Decode points' cache layout: contiguous (today's kernel) or pages of 16..256 tokens (the
    /// paged kernel, not written yet: such points are listed and fail with "no kernel yet").
    #[arg(long, value_delimiter = ',', default_value = "contiguous", value_parser = page_arg)]
    page_size: Vec<Layout>,
    /// Decode points' batch: uniform (--batch sequences of each context) or a named ragged mix
    /// mix<count>:<seed> (count sequences up to each context; paged only).
    #[arg(long, value_delimiter = ',', default_value = "uniform", value_parser = mix_arg)]
    mix: Vec<Batching>,
    #[arg(long, default_value_t = 1)]
    batch: usize,
    #[arg(long, default_value_t = 8)]
    heads: usize,
    #[arg(long, default_value_t = 1)]
    kv_heads: usize,
    #[arg(long, default_value_t = 128)]
    head_dim: usize,
    /// Each measured window lasts at least this long (device time).
    #[arg(long, default_value_t = 1.0)]
    min_seconds: f64,
    #[arg(long, default_value_t = 5)]
    reps: u32,
    #[arg(long, default_value_t = 5)]
    warmup: u32,
    /// Idle baseline window (seconds).
    #[arg(long, default_value_t = 3.0)]
    idle_seconds: f64,
    /// Idle gap before each measured window, drawn uniformly from MIN:MAX seconds (a single value
    /// is a fixed gap). The draw keeps windows from phase-locking with NVML's energy-counter
    /// updates, so MAX - MIN should span at least one counter period (printed by the idle baseline).
    #[arg(long, default_value = "0.2:0.6", value_parser = gap_arg)]
    gap: Gap,
    /// Power sampling period (milliseconds).
    #[arg(long, default_value_t = 10)]
    power_period_ms: u64,
    /// CUDA devices, one worker each (e.g. 0,1,2,3).
    #[arg(long, value_delimiter = ',', default_value = "0")]
    devices: Vec<usize>,
    /// Take share i of n (0 <= i < n) of the points, e.g. a Slurm array task: --shard $SLURM_ARRAY_TASK_ID/8.
    #[arg(long)]
    shard: Option<Shard>,
    /// Output folder (default profiles/<gpu>-<date>/).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Continue the JSONL log in the output folder.
    #[arg(long)]
    resume: bool,
    /// With --resume, measure the points that failed before again.
    #[arg(long)]
    retry_failed: bool,
    /// Skip the cuBLAS GEMM calibration points.
    #[arg(long)]
    no_gemm: bool,
    /// Emulator: largest device footprint of one point (MiB); bigger points are infeasible.
    #[arg(long, default_value_t = 1024)]
    emu_max_mib: usize,
    /// Seed for input data and idle gaps (default: fresh).
    #[arg(long)]
    seed: Option<u64>,
    /// Print the points this run (or shard) would measure, with their device footprint, and exit.
    #[arg(long)]
    dry_run: bool,
}

/// A `--gap` value: (min, max) seconds.
#[derive(Clone, Copy, Debug)]
pub struct Gap(f64, f64);

/// Longest idle gap accepted (the run's own bound, checked again by `RunConfig::validate`).
const MAX_GAP_S: f64 = backend::MAX_GAP_SECONDS;

fn gap_arg(s: &str) -> Result<Gap, String> {
    let num = |t: &str| t.trim().parse::<f64>().ok().filter(|x| x.is_finite() && (0.0..=MAX_GAP_S).contains(x));
    let (lo, hi) = match s.split_once(':') {
        Some((a, b)) => (num(a), num(b)),
        None => (num(s), num(s)),
    };
    match (lo, hi) {
        (Some(lo), Some(hi)) if lo <= hi => Ok(Gap(lo, hi)),
        _ => Err(format!("{s:?}: MIN:MAX seconds with 0 <= MIN <= MAX <= {MAX_GAP_S} (or one value)")),
    }
}

/// A `--page-size` value: contiguous, or tokens per page.
#[derive(Clone, Copy)]
pub struct Layout(Option<usize>);

fn page_arg(s: &str) -> Result<Layout, String> {
    match s {
        "contiguous" => Ok(Layout(None)),
        _ => s.parse().map(|p| Layout(Some(p))).map_err(|_| format!("{s:?}: contiguous or a page size (16..256)")),
    }
}

/// A `--mix` value: uniform, or a named ragged mix.
#[derive(Clone, Copy)]
pub struct Batching(Option<Mix>);

fn mix_arg(s: &str) -> Result<Batching, String> {
    match s {
        "uniform" => Ok(Batching(None)),
        _ => s.parse().map(|m| Batching(Some(m))).map_err(|e: attnjoule::paged::BatchError| e.to_string()),
    }
}

pub fn config(a: &Args) -> anyhow::Result<RunConfig> {
    let backend = BackendKind::from(a.backend);
    let contexts = match (a.ctx.is_empty(), backend) {
        (false, _) => a.ctx.clone(),
        // The emulator runs PTX on the CPU: small sizes unless asked otherwise.
        (true, BackendKind::Emu) if a.ctx_min == 1024 && a.ctx_max == 1 << 20 => powers_of_two(64, 512),
        (true, _) => powers_of_two(a.ctx_min, a.ctx_max),
    };
    if contexts.is_empty() || contexts.contains(&0) {
        bail!("no context sizes (check --ctx / --ctx-min / --ctx-max)");
    }
    if a.decode_tokens.contains(&0) {
        bail!("--decode-tokens must be >= 1");
    }
    if !(a.min_seconds.is_finite() && a.min_seconds > 0.0) || a.reps == 0 {
        bail!("--min-seconds must be a positive number of seconds and --reps >= 1");
    }
    if !(a.idle_seconds.is_finite() && a.idle_seconds >= 0.0) {
        bail!("--idle-seconds must be a non-negative number of seconds");
    }
    if let Some(out) = a.out.as_ref().filter(|o| o.exists() && !o.is_dir()) {
        bail!("--out {} is a file; give a folder (it holds the log, profile and plots)", out.display());
    }
    let Some(emu_max_bytes) = a.emu_max_mib.checked_mul(1 << 20) else {
        bail!("--emu-max-mib {} is beyond addressable memory", a.emu_max_mib);
    };
    let seed = a.seed.unwrap_or_else(attnjoule::reference::fresh_seed);
    let pages: Vec<Option<usize>> = a.page_size.iter().map(|p| p.0).collect();
    let mixes: Vec<Option<Mix>> = a.mix.iter().map(|m| m.0).collect();
    let serving = ServingAxes::cross(&a.kv_dtype, &pages, &mixes)?;
    Ok(RunConfig {
        spec: SweepSpec {
            variants: match (a.variants.is_empty(), backend) {
                (false, _) => a.variants.clone(),
                (true, BackendKind::Emu) => vec![Variant::Flash, Variant::Decode, Variant::Dense],
                (true, _) => vec![Variant::Flash, Variant::FlashHopper, Variant::Decode, Variant::Dense],
            },
            phases: a.phases.clone(),
            contexts,
            decode_tokens: a.decode_tokens.clone(),
            masks: a.mask.clone(),
            batch: a.batch,
            heads: a.heads,
            kv_heads: a.kv_heads,
            head_dim: a.head_dim,
            serving,
        },
        protocol: ProtocolConfig {
            warmup_calls: a.warmup,
            min_seconds: a.min_seconds,
            reps: a.reps,
            gap_min_s: a.gap.0,
            gap_max_s: a.gap.1,
            seed,
            ..Default::default()
        },
        backend,
        devices: a.devices.clone(),
        shard: a.shard,
        out: a.out.clone(),
        resume: a.resume,
        retry_failed: a.retry_failed,
        idle_seconds: a.idle_seconds,
        power_period_ms: a.power_period_ms,
        gemm: if a.no_gemm || backend == BackendKind::Emu { vec![] } else { RunConfig::default().gemm },
        emu_max_bytes,
        seed,
    })
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let cfg = config(&a)?;
    if a.dry_run {
        let all = attnjoule::sweep::enumerate(&cfg.spec)?;
        let mine = cfg.shard.map_or(all.clone(), |s| s.select(&all));
        for p in &mine {
            let need = if p.serving.is_default() {
                p.problem()
                    .and_then(|problem| attnjoule::ops::Attention::new(p.variant, &problem, &Default::default()))
                    .map(|att| format!("{:.3} GiB", backend::gib(att.footprint_bytes())))
                    .unwrap_or_else(|e| format!("({e})"))
            } else {
                // Listed with the step it stands for; the backend records it as failed.
                p.paged_step()
                    .map(|(b, plan, bytes)| {
                        format!(
                            "no kernel yet: {} seqs, {:.3} GiB of visible K/V, {} splits",
                            b.num_seqs(),
                            (bytes.kv + bytes.kv_scales) / (1u64 << 30) as f64,
                            plan.items.len()
                        )
                    })
                    .unwrap_or_else(|e| format!("({e})"))
            };
            outln!("{:<48} {}", p.label(), need);
        }
        outln!("{} of {} points", mine.len(), all.len());
        return Ok(());
    }
    if cfg.backend == BackendKind::Cuda {
        // Fail with the driver's one line before anything else is printed.
        attnjoule::device::cuda::probe().map_err(attnjoule::Error::NoGpu)?;
    }
    errln!("seed {}", cfg.seed);
    let out = backend::run(&cfg, &mut |line| errln!("{line}"))?;
    let p = &out.profile;
    let count = |f: fn(&attnjoule::profile::PointStatus) -> bool| p.points.iter().filter(|x| f(&x.status)).count();
    use attnjoule::profile::PointStatus as S;
    outln!(
        "{} points on {}: {} ok, {} infeasible, {} failed; {} GEMM points",
        p.points.len(),
        p.gpu.name,
        count(|s| matches!(s, S::Ok)),
        count(|s| matches!(s, S::Infeasible { .. })),
        count(|s| matches!(s, S::Failed { .. })),
        p.gemm.len()
    );
    outln!("log: {}", out.log.display());
    for f in &out.files {
        outln!("wrote {}", f.display());
    }
    if out.not_run > 0 {
        bail!("{} points not run (no usable GPU left); `--resume` runs them", out.not_run);
    }
    Ok(())
}
