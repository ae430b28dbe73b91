//! `attnjoule gpu-run`: the one prepared command of scripts/gpu-run.sh for a lent GPU. `plan` is
//! its dry run (every step, its points and its estimated GPU time; no GPU needed), `steps` lists
//! the same steps for the script to run, and `summary DIR` turns a run's folder into summary.md
//! and the short table printed last. The plan lives here so that what is estimated is exactly
//! what runs: sweep and peer steps are flag lists that the estimate parses with `sweep`'s parser.

use crate::cli::out::{out, outln};

use super::estimate::Gpu;
use super::sweep;
use anyhow::bail;
use attnjoule::profile::{PointStatus, Profile, ProfileKind};
use attnjoule::sweep::backend::BackendKind;
use attnjoule::sweep::budget::{self, Assumptions, PointEstimate};
use clap::Parser;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Subcommand)]
enum Cmd {
    /// The dry run: every step with its points and estimated GPU time, the assumptions behind the
    /// estimate; fails when the total exceeds --budget-s.
    Plan(PlanArgs),
    /// The steps as tab-separated lines for scripts/gpu-run.sh: name, mode, cap (s), estimate (s),
    /// command.
    Steps(PlanArgs),
    /// Write DIR/summary.md from a run's folder and print it, the table of points last.
    Summary {
        /// The run's work folder (what scripts/gpu-run.sh packs).
        dir: PathBuf,
    },
}

#[derive(clap::Args)]
struct PlanArgs {
    /// The GPU whose bundled analytical profile times the calls.
    #[arg(long, value_enum, default_value = "h200")]
    gpu: Gpu,
    /// Seconds the required steps may take, by the estimate.
    #[arg(long, default_value_t = 360.0)]
    budget_s: f64,
    /// Also list every point with its estimated call time and cost.
    #[arg(long)]
    points: bool,
}

pub fn run(a: Args) -> anyhow::Result<()> {
    match a.cmd {
        Cmd::Plan(p) => plan(&p),
        Cmd::Steps(p) => {
            for s in estimate_steps(&p)? {
                outln!("{}\t{}\t{:.0}\t{:.0}\t{}", s.step.name, s.step.mode.name(), s.cap_s, s.est_s, s.step.command());
            }
            Ok(())
        }
        Cmd::Summary { dir } => summary(&dir),
    }
}

// ------------------------------------------------------------------------------------------------
// The plan.

/// The protocol sized for the budget (the sweep's defaults: 5 warm-ups, 5 windows of >= 1 s, a
/// 3 s idle baseline). Fewer, shorter windows: the energy per window is read less precisely (each
/// end can lag by the NVML counter's period, which the run measures and prints).
/// Idle gaps of 0.1-0.25 s instead of 0.2-0.6 s: they were over half of a short point's time. A
/// 0.15 s span still spreads the windows' phases over the energy counter's update period unless
/// that period is longer; the run measures the period and the sweep warns if so.
const PROTOCOL: [&str; 10] =
    ["--warmup", "3", "--min-seconds", "0.3", "--reps", "3", "--idle-seconds", "1", "--gap", "0.1:0.25"];

/// Contexts 1K..1M in powers of four.
const CTX_ALL: &str = "1024,4096,16384,65536,262144,1048576";
/// Prefill contexts where even a causal call stays well under a second.
const CTX_SHORT: &str = "1024,4096,16384,65536";
/// Long prefill, only for masks whose work is bounded per query (window, block-sparse).
const CTX_LONG: &str = "262144,1048576";
const BOUNDED_MASKS: &str = "window:4096,longformer:128:1:1";

/// Seconds assumed for steps whose work the estimate does not model point by point.
const PREFLIGHT_S: f64 = 5.0; // unpacking the bundle, starting each binary once, nvidia-smi
const PER_STEP_S: f64 = 0.5; // the script packs the work folder after every step
const CEILINGS_COPY_GEMM_S: f64 = 3.0; // 20 copies of 4 GiB and 20 GEMMs of 8192^3, warm-ups, nvidia-smi
const NCU_S: f64 = 20.0; // ncu start, the call's warm-ups, replaying one kernel per metric pass
/// The peer script's --check on a GPU: 6 masks x 3 shapes per implementation (CHECK_MASKS and
/// the GPU shapes in benches/peers/torch_attention.py); SDPA runs the 2 plain masks only.
const CHECK_CASES: (usize, usize) = (18, 6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Runs, then the next step.
    Fg,
    /// Starts in the background; the next `Join` step waits for it.
    Bg,
    /// Waits for the background steps, then runs.
    Join,
    /// Runs only when the time left before the deadline covers its estimate.
    Optional,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Mode::Fg => "fg",
            Mode::Bg => "bg",
            Mode::Join => "join",
            Mode::Optional => "opt",
        }
    }
}

#[derive(Debug, Clone)]
enum Action {
    /// scripts/gpu_ceilings.py: copy bandwidth and cuBLAS bf16 GEMM through torch.
    Ceilings,
    /// The peer script's --check for these implementations.
    PeerCheck(&'static str),
    /// One test executable's GPU tests (`--ignored`, only those whose name contains the filter:
    /// an executable may also hold emulator tests ignored for another reason), assumed to take
    /// this many seconds.
    Test(&'static str, &'static str, f64),
    /// `attnjoule sweep` with these flags, into the run's one sweep folder (`--resume`).
    Sweep(Vec<String>),
    /// The peer script with these implementations and shared flags, into peers/<step>.json.
    Peers(&'static str, Vec<String>),
    /// `attnjoule ncu` of one call under Nsight Compute: variant, context.
    Ncu(&'static str, usize),
}

#[derive(Debug, Clone)]
struct Step {
    name: &'static str,
    mode: Mode,
    action: Action,
}

fn flags(list: &[&str]) -> Vec<String> {
    list.iter().chain(PROTOCOL.iter()).map(|s| s.to_string()).collect()
}

/// The default plan, in the order it runs: ceilings first, the GPU tests (with the peer check
/// beside them: it is mostly CPU-side compilation), our sweep, the peers on the same points, and
/// two Nsight Compute reports if time remains.
fn default_plan() -> Vec<Step> {
    use Action::*;
    use Mode::*;
    let step = |name, mode, action| Step { name, mode, action };
    vec![
        step("ceilings", Fg, Ceilings),
        step("peer-check", Bg, PeerCheck("sdpa_flash,sdpa_cudnn,flex")),
        // Assumed seconds: process and CUDA context, the cases, their f64 references on the CPU.
        step("test-attnjoule-lib", Fg, Test("attnjoule-lib", "", 5.0)),
        step("test-device_backends", Fg, Test("device_backends", "", 5.0)),
        step("test-flash", Fg, Test("flash", "", 15.0)),
        step("test-decode", Fg, Test("decode", "", 15.0)),
        // Five small PTX modules JIT-compiled, ten launches of a few blocks, the same on the emulator
        // (under a second on the CPU here).
        step("test-outside", Fg, Test("outside", "", 3.0)),
        // Hopper's asynchronous instructions (TMA, mbarrier, bulk copies) against the emulator.
        step("test-emu_async", Fg, Test("emu_async", "", 10.0)),
        // wgmma, stmatrix and fp8 conversions against the emulator (tests/emu_wgmma.rs).
        step("test-emu_wgmma", Fg, Test("emu_wgmma", "", 20.0)),
        // Six points of the budget protocol's size, a GEMM, the NVML and ncu-command tests.
        step("test-sweep", Fg, Test("sweep", "", 30.0)),
        step(
            "sweep-decode",
            Join,
            Sweep(flags(&[
                "--variants",
                "decode",
                "--phases",
                "decode",
                "--mask",
                "causal,window:4096,longformer:128:1:1",
                "--ctx",
                CTX_ALL,
                "--no-gemm",
            ])),
        ),
        step(
            "sweep-prefill",
            Fg,
            Sweep(flags(&[
                "--variants",
                "flash",
                "--phases",
                "prefill",
                "--mask",
                "none,causal,window:4096,longformer:128:1:1",
                "--ctx",
                CTX_SHORT,
                "--no-gemm",
            ])),
        ),
        step(
            "sweep-prefill-long",
            Fg,
            Sweep(flags(&[
                "--variants",
                "flash",
                "--phases",
                "prefill",
                "--mask",
                BOUNDED_MASKS,
                "--ctx",
                CTX_LONG,
                "--no-gemm",
            ])),
        ),
        // Dense where it fits, and the GEMM calibration (J/FLOP for the estimator's other layers).
        step(
            "sweep-dense-gemm",
            Fg,
            Sweep(flags(&[
                "--variants",
                "dense",
                "--phases",
                "prefill,decode",
                "--mask",
                "causal",
                "--ctx",
                "1024,16384",
            ])),
        ),
        step(
            "peers-sdpa-prefill",
            Fg,
            Peers("sdpa_flash,sdpa_cudnn", flags(&["--phases", "prefill", "--mask", "causal", "--ctx", CTX_SHORT])),
        ),
        step(
            "peers-sdpa-decode",
            Fg,
            Peers("sdpa_flash", flags(&["--phases", "decode", "--mask", "causal", "--ctx", CTX_ALL])),
        ),
        step(
            "peers-flex",
            Fg,
            Peers("flex", flags(&["--phases", "prefill", "--mask", BOUNDED_MASKS, "--ctx", "65536,1048576"])),
        ),
        // The Hopper prefill (its GPU tests: the emulator's proof checked on the hardware) and its
        // points beside flash and the SDPA peers above: required, it is the kernel a first run
        // most needs to measure (the plan stays within the budget with it).
        step("test-flash_hopper", Fg, Test("flash_hopper", "cuda_", 20.0)),
        step(
            "sweep-prefill-hopper",
            Fg,
            Sweep(flags(&[
                "--variants",
                "flash-hopper",
                "--phases",
                "prefill",
                "--mask",
                "none,causal",
                "--ctx",
                CTX_SHORT,
                "--no-gemm",
            ])),
        ),
        // Serving decode (issue 18): the paged kernels' GPU tests (the emulated cases, then the
        // step's bandwidth against a device-to-device copy), and ragged 64-sequence steps, bf16
        // and fp8, if time remains.
        step("test-serving_decode", Optional, Test("serving_decode", "cuda_", 20.0)),
        step(
            "sweep-serving",
            Optional,
            Sweep(flags(&[
                "--variants",
                "decode",
                "--phases",
                "decode",
                "--mask",
                "causal",
                "--ctx",
                "32768,131072",
                "--kv-dtype",
                "bf16,fp8",
                "--page-size",
                "64",
                "--mix",
                "uniform,mix64:1",
                "--batch",
                "64",
                "--no-gemm",
            ])),
        ),
        step("ncu-flash", Optional, Ncu("flash", 16384)),
        step("ncu-decode", Optional, Ncu("decode", 262144)),
    ]
}

/// A word of a command line, quoted for bash when it needs it.
fn sh(word: &str) -> String {
    if word.chars().all(|c| c.is_ascii_alphanumeric() || ":,._-/=".contains(c)) {
        word.to_string()
    } else {
        format!("'{}'", word.replace('\'', r"'\''"))
    }
}

impl Step {
    /// The command scripts/gpu-run.sh runs (bash; $BIN is attnjoule, $TESTS the test
    /// executables, $ROOT the bundle with scripts/ and benches/, $W the work folder, $PY python3).
    fn command(&self) -> String {
        let peer = r#"LD_LIBRARY_PATH="$PY_LD" "$PY" "$ROOT/benches/peers/torch_attention.py""#;
        match &self.action {
            Action::Ceilings => {
                r#"LD_LIBRARY_PATH="$PY_LD" "$PY" "$ROOT/scripts/gpu_ceilings.py" --out "$W/ceilings.json""#.to_string()
            }
            Action::PeerCheck(impls) => format!(r#"{peer} --check --attnjoule "$BIN" --impls {impls}"#),
            Action::Test(bin, filter, _) => {
                let only = if filter.is_empty() { String::new() } else { format!(" {}", sh(filter)) };
                format!(r#"ATTNJOULE="$BIN" "$TESTS/{bin}" --ignored --test-threads=1{only}"#)
            }
            Action::Sweep(args) => {
                let args: Vec<String> = args.iter().map(|a| sh(a)).collect();
                format!(r#""$BIN" sweep --out "$W/sweep" --resume {}"#, args.join(" "))
            }
            Action::Peers(impls, args) => {
                let args: Vec<String> = args.iter().map(|a| sh(a)).collect();
                format!(r#"{peer} --impls {impls} --out "$W/peers/{}.json" {}"#, self.name, args.join(" "))
            }
            Action::Ncu(variant, ctx) => {
                // Kernel names select the call (every attention kernel is attn_*), not NVTX ranges:
                // libnvToolsExt may be missing there. ncu flushes caches before each replay, so
                // the first call needs no warm-up; decode is two kernels (split, combine).
                format!(
                    r#"ncu -k regex:^attn_ --launch-count 2 --clock-control none --section-folder "$ROOT/profiles/ncu" --section AttnjouleSummary --csv --page raw "$BIN" ncu --variant {variant} --ctx {ctx} --warmup 0 > "$W/ncu-{variant}-{ctx}.csv""#
                )
            }
        }
    }
}

/// A step with its estimate.
struct Estimated {
    step: Step,
    est_s: f64,
    cap_s: f64,
    points: Vec<PointEstimate>,
    /// A one-line account of what the estimate counts.
    what: String,
}

#[derive(Parser)]
#[command(name = "sweep")]
struct SweepFlags {
    #[command(flatten)]
    a: sweep::Args,
}

/// The sweep configuration these flags give `attnjoule sweep` (the peer script's shared flags
/// mean the same).
fn sweep_config(args: &[String]) -> anyhow::Result<attnjoule::sweep::backend::RunConfig> {
    let f = SweepFlags::try_parse_from(std::iter::once("sweep".to_string()).chain(args.iter().cloned()))
        .map_err(|e| anyhow::anyhow!("{}", e.to_string().lines().next().unwrap_or("bad flags")))?;
    sweep::config(&f.a)
}

fn estimate_steps(p: &PlanArgs) -> anyhow::Result<Vec<Estimated>> {
    let sheet = p.gpu.sheet();
    let roof = sheet.roofline();
    // What the sweep sees free on the card, its CUDA context aside.
    let free = (sheet.memory_bytes as f64 * 0.98) as usize;
    let a = Assumptions::default();
    let mut out = Vec::new();
    for step in default_plan() {
        let (est, points, what) = match &step.action {
            Action::Ceilings => (
                a.torch_import_s + CEILINGS_COPY_GEMM_S,
                vec![],
                format!("import torch {} s + copies, GEMMs, nvidia-smi {} s", a.torch_import_s, CEILINGS_COPY_GEMM_S),
            ),
            Action::PeerCheck(impls) => {
                let n = impls.split(',').count();
                let flex = impls.split(',').any(|i| i == "flex");
                let (flex_cases, sdpa_cases) = CHECK_CASES;
                let compiles = if flex { flex_cases } else { 0 };
                let sdpa = (n - flex as usize) * sdpa_cases;
                let est = a.torch_import_s
                    + if flex { a.flex_first_compile_s + (compiles - 1) as f64 * a.flex_compile_s } else { 0.0 }
                    + sdpa as f64 * a.sdpa_setup_s;
                (est, vec![], format!("{compiles} FlexAttention compiles, {sdpa} SDPA cases, import torch"))
            }
            Action::Test(_, _, s) => (a.process_s + s, vec![], "assumed: GPU tests and their CPU references".into()),
            Action::Sweep(args) => {
                let cfg = sweep_config(args)?;
                if cfg.backend != BackendKind::Cuda {
                    bail!("step {}: the plan's sweeps run on the GPU", step.name);
                }
                let pts = attnjoule::sweep::enumerate(&cfg.spec)?;
                let e = budget::sweep(&pts, &cfg.gemm, &cfg.protocol, cfg.idle_seconds, &roof, free, &a);
                let what = format!(
                    "{} points{}, process and idle baseline {:.1} s",
                    e.points.len(),
                    if e.gemm.is_empty() { String::new() } else { format!(" + {} GEMM", e.gemm.len()) },
                    e.fixed_s
                );
                (e.total_s, e.points.into_iter().chain(e.gemm).collect(), what)
            }
            Action::Peers(impls, args) => {
                let cfg = sweep_config(args)?;
                let impls: Vec<&str> = impls.split(',').collect();
                let e = budget::peers(&impls, &cfg.spec, &cfg.protocol, cfg.idle_seconds, &roof, free, &a)?;
                let what = format!("{} points, import torch and idle baseline {:.1} s", e.points.len(), e.fixed_s);
                (e.total_s, e.points, what)
            }
            Action::Ncu(..) => (NCU_S, vec![], "assumed: one call under ncu, one section".into()),
        };
        let est = est + PER_STEP_S;
        // Caps stop a hung step, not a slow one: well above the estimate.
        let cap = match step.action {
            Action::Test(..) => (3.0 * est).max(60.0),
            _ => 1.5 * est + 30.0,
        };
        out.push(Estimated { step, est_s: est, cap_s: cap.ceil(), points, what });
    }
    Ok(out)
}

/// Seconds from the start until the required steps end (background steps overlap the foreground
/// ones up to the next join), and the optional steps' sum.
fn timeline(steps: &[Estimated]) -> (f64, f64) {
    let (mut t, mut bg_end, mut optional) = (PREFLIGHT_S, 0.0f64, 0.0);
    for s in steps {
        match s.step.mode {
            Mode::Fg => t += s.est_s,
            Mode::Bg => bg_end = bg_end.max(t + s.est_s),
            Mode::Join => t = t.max(bg_end) + s.est_s,
            Mode::Optional => optional += s.est_s,
        }
    }
    (t.max(bg_end), optional)
}

fn plan(p: &PlanArgs) -> anyhow::Result<()> {
    let steps = estimate_steps(p)?;
    let sheet = p.gpu.sheet();
    outln!(
        "attnjoule gpu-run plan: scripts/gpu-run.sh OUTDIR on one {} (dry run, no GPU used)",
        sheet.key.to_uppercase()
    );
    outln!(
        "calls timed at the ANALYTICAL profiles/{} ({} TFLOP/s bf16, {} GB/s), derated as assumed below",
        sheet.file,
        sheet.bf16_tflops,
        sheet.hbm_gbps
    );
    outln!(
        "protocol: {} (sweep default: --warmup 5 --min-seconds 1 --reps 5 --idle-seconds 3 --gap 0.2:0.6)",
        PROTOCOL.join(" ")
    );
    outln!();
    outln!("{:<20} {:<4} {:>6} {:>7} {:>6}  what", "step", "mode", "points", "est. s", "cap s");
    outln!(
        "{:<20} {:<4} {:>6} {:>7.0} {:>6}  unpack, start every binary, nvidia-smi",
        "preflight",
        "fg",
        "-",
        PREFLIGHT_S,
        "-"
    );
    for s in &steps {
        let n = if s.points.is_empty() { "-".to_string() } else { s.points.len().to_string() };
        outln!("{:<20} {:<4} {:>6} {:>7.1} {:>6.0}  {}", s.step.name, s.step.mode.name(), n, s.est_s, s.cap_s, s.what);
    }
    let (total, optional) = timeline(&steps);
    outln!();
    outln!(
        "total: {total:.0} s of the required steps (budget {:.0} s; the background peer check overlaps the tests), \
         {optional:.0} s more for the optional steps if time remains",
        p.budget_s
    );
    outln!();
    outln!("assumptions (none measured here; the run's summary prints each step's real seconds beside these):");
    for (what, value, source) in Assumptions::default().table() {
        outln!("  {what:<36} {value:<22} {source}");
    }
    outln!("  {:<36} {:<22} assumed", "per step (packing the work folder)", format!("{PER_STEP_S} s"));
    if p.points {
        outln!();
        for s in steps.iter().filter(|s| !s.points.is_empty()) {
            outln!("{}:", s.step.name);
            for pt in &s.points {
                let note = pt.note.as_deref().map(|n| format!("  ({n})")).unwrap_or_default();
                outln!("  {:<52} call {:>10.3} ms  point {:>6.2} s{note}", pt.label, pt.call_s * 1e3, pt.total_s);
            }
        }
    }
    if total > p.budget_s {
        bail!("the plan's estimate, {total:.0} s, exceeds the budget of {:.0} s", p.budget_s);
    }
    Ok(())
}

// ------------------------------------------------------------------------------------------------
// The summary.

/// Numbers for a table: 3 significant digits, exponent form outside 1e-3..1e5.
fn num(v: f64) -> String {
    let a = v.abs();
    if !v.is_finite() {
        "-".into()
    } else if a != 0.0 && !(1e-3..1e5).contains(&a) {
        format!("{v:.2e}")
    } else if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

fn read(path: &Path) -> Option<String> {
    attnjoule::files::read_text(path, 64 << 20, "run file").ok()
}

/// The last status of each step in steps.tsv (name, status, seconds, estimate); a resumed run
/// appends, so later lines win and seconds add up.
fn steps_table(dir: &Path) -> Vec<(String, String, f64, f64)> {
    let mut out: Vec<(String, String, f64, f64)> = Vec::new();
    for line in read(&dir.join("steps.tsv")).unwrap_or_default().lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let [name, status, secs, est, ..] = f[..] else { continue };
        let (secs, est) = (secs.parse().unwrap_or(0.0), est.parse().unwrap_or(0.0));
        match out.iter_mut().find(|s| s.0 == name) {
            Some(s) => {
                s.1 = status.to_string();
                s.2 += secs;
            }
            None => out.push((name.to_string(), status.to_string(), secs, est)),
        }
    }
    out
}

/// "2 passed, 0 failed" from a test executable's log, or the last line when it did not finish.
fn test_result(log: &str) -> String {
    let (mut passed, mut failed, mut seen) = (0, 0, false);
    for l in log.lines().filter(|l| l.starts_with("test result:")) {
        seen = true;
        let count = |word: &str| {
            l.split(';')
                .filter_map(|part| part.trim().strip_suffix(word).map(|n| n.trim().rsplit(' ').next().unwrap_or("")))
                .find_map(|n| n.parse::<usize>().ok())
                .unwrap_or(0)
        };
        passed += count("passed");
        failed += count("failed");
    }
    if seen {
        format!("{passed} passed, {failed} failed")
    } else {
        log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output").chars().take(120).collect()
    }
}

fn load(path: &Path) -> Option<Profile> {
    path.exists().then(|| Profile::load(path).ok()).flatten()
}

fn summary(dir: &Path) -> anyhow::Result<()> {
    if !dir.is_dir() {
        bail!("{} is not a folder (give the run's work folder)", dir.display());
    }
    let ours = load(&dir.join("sweep/profile.json"));
    let mut peers: Vec<Profile> = Vec::new();
    if let Ok(rd) = std::fs::read_dir(dir.join("peers")) {
        let mut files: Vec<PathBuf> =
            rd.flatten().map(|e| e.path()).filter(|p| p.extension().is_some_and(|x| x == "json")).collect();
        files.sort();
        peers.extend(files.iter().filter_map(|f| load(f)));
    }
    let mut md = String::new();
    let gpu = ours.as_ref().map_or("GPU not recorded (no sweep profile)".to_string(), |p| p.gpu.name.clone());
    let _ = writeln!(md, "# attnjoule GPU run: {gpu}\n");
    let kind = match ours.as_ref().map(|p| p.kind) {
        Some(ProfileKind::Measured) => "MEASURED on this GPU.",
        Some(ProfileKind::Emulated) => "EMULATED (the CPU emulator: counters, no time or energy), not measured.",
        Some(ProfileKind::Analytical) => "ANALYTICAL, not measured.",
        Some(ProfileKind::CpuDryRun) => "CPU DRY RUN (PyTorch on a CPU, no energy), not measured.",
        None => "Nothing measured: no sweep profile.",
    };
    let _ = writeln!(
        md,
        "{kind} scripts/gpu-run.sh, budget protocol ({}): a first look at every kernel, not the full sweep; ratios \
         are ours / peer from this run (below 1: ours is faster or cheaper).\n",
        PROTOCOL.join(" ")
    );
    if let Some(t) = read(&dir.join("gpu.txt")) {
        let mut lines = t.lines();
        let smi = match (lines.next(), lines.next()) {
            (Some(head), Some(values)) if head.starts_with("name") => format!("{head} = {values}"),
            _ => format!("failed ({})", t.lines().next().unwrap_or("no output")),
        };
        let _ = writeln!(md, "- nvidia-smi: {smi}");
    }
    match read(&dir.join("ceilings.json")).and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok()) {
        Some(c) if c["error"].is_string() => {
            let _ = writeln!(md, "- ceilings: not measured: {}", c["error"].as_str().unwrap_or_default());
        }
        Some(c) => {
            let f = |k: &str| c[k].as_f64().map_or("-".into(), num);
            let _ = writeln!(
                md,
                "- ceilings: device-to-device copy {} GB/s (bytes read + written), bf16 GEMM {}^3 {} TFLOP/s ({})",
                f("copy_gbps"),
                c["gemm_n"].as_u64().unwrap_or(0),
                f("gemm_tflops"),
                c["library"].as_str().unwrap_or("?")
            );
            if let Some(s) = c["clocks"].as_str() {
                let _ = writeln!(md, "- clocks: {s}");
            }
        }
        None => {
            let _ = writeln!(md, "- ceilings: not measured (see logs/ceilings.log)");
        }
    }
    if let Some(p) = &ours {
        let g = &p.gpu;
        let _ = writeln!(
            md,
            "- GPU: driver {}, CUDA {}, {} SMs, {} GiB, power limit {} W",
            g.driver.as_deref().unwrap_or("?"),
            g.cuda.as_deref().unwrap_or("?"),
            g.sm_count.map_or("?".into(), |x| x.to_string()),
            g.memory_bytes.map_or("?".into(), |b| num(b as f64 / (1u64 << 30) as f64)),
            g.power_limit_w.map_or("?".into(), num)
        );
        let _ = writeln!(
            md,
            "- NVML energy counter update period: {}; idle {} W",
            g.energy_counter_period_s.map_or("not measured".into(), |s| format!("{} s", num(s))),
            p.idle_watts.map_or("-".into(), num)
        );
        for gm in &p.gemm {
            let s = gm.seconds.median;
            let _ = writeln!(
                md,
                "- cuBLAS GEMM calibration {}x{}x{}: {} TFLOP/s{}",
                gm.m,
                gm.n,
                gm.k,
                num(gm.flops() / s / 1e12),
                gm.joules.map_or(String::new(), |j| format!(", {} J/FLOP", num(j.median / gm.flops())))
            );
        }
    }
    let throttled = |p: &Profile| {
        let ok: Vec<_> = p.points.iter().filter(|x| matches!(x.status, PointStatus::Ok)).collect();
        format!("{} of {} measured points", ok.iter().filter(|x| x.throttled).count(), ok.len())
    };
    if let Some(p) = &ours {
        let peers_thr: Vec<String> = peers.iter().map(throttled).collect();
        let _ = writeln!(md, "- throttled: ours {}; peers {}", throttled(p), peers_thr.join(", "));
    }
    let steps = steps_table(dir);
    for (name, status, ..) in steps.iter().filter(|s| s.0.starts_with("test-") || s.0 == "peer-check") {
        let log = read(&dir.join("logs").join(format!("{name}.log"))).unwrap_or_default();
        let detail = if name == "peer-check" {
            log.lines().rev().find(|l| l.starts_with("check on")).unwrap_or("no verdict line").to_string()
        } else {
            test_result(&log)
        };
        let _ = writeln!(md, "- {name}: {status}; {detail}");
    }
    let _ = writeln!(md, "\n| step | status | seconds | estimate |\n|---|---|---:|---:|");
    for (name, status, secs, est) in &steps {
        let _ = writeln!(md, "| {name} | {status} | {secs:.0} | {est:.0} |");
    }
    if steps.is_empty() {
        let _ = writeln!(md, "| (no step recorded) | | | |");
    }
    // The table of points, last.
    let mut variants: Vec<String> = Vec::new();
    for pp in &peers {
        for x in pp.points.iter().filter(|x| matches!(x.status, PointStatus::Ok)) {
            if !variants.contains(&x.variant) {
                variants.push(x.variant.clone());
            }
        }
    }
    let _ = write!(md, "\n| variant | phase | mask | ctx | ms/call | TFLOP/s | GB/s | J/call | W | thr |");
    for v in &variants {
        let _ = write!(md, " ÷{v} s, J |");
    }
    let _ = write!(md, "\n|---|---|---|---:|---:|---:|---:|---:|---:|---|");
    md.push_str(&"---|".repeat(variants.len()));
    md.push('\n');
    let mut rows = 0;
    for x in ours.iter().flat_map(|p| &p.points) {
        let mask = x.mask.to_string();
        let phase = format!("{:?}", x.phase).to_lowercase();
        let head = format!("| {} | {phase} | {mask} | {} |", x.variant, x.shape.seq_k);
        let Some(s) = x.seconds.map(|s| s.median).filter(|_| matches!(x.status, PointStatus::Ok)) else {
            let why = match &x.status {
                PointStatus::Infeasible { need_gib, .. } => format!("infeasible ({} GiB)", num(*need_gib)),
                PointStatus::Failed { error } => format!("failed: {}", error.chars().take(60).collect::<String>()),
                PointStatus::Ok => "not timed (emulator)".into(),
            };
            let _ = writeln!(md, "{head} {why} | | | | | |{}", " |".repeat(variants.len()));
            rows += 1;
            continue;
        };
        let j = x.joules.map(|j| j.median);
        let _ = write!(
            md,
            "{head} {} | {} | {} | {} | {} | {} |",
            num(s * 1e3),
            num(x.flops / s / 1e12),
            num(x.min_bytes / s / 1e9),
            j.map_or("-".into(), num),
            x.watts.map_or("-".into(), num),
            if x.throttled { "yes" } else { "no" }
        );
        for v in &variants {
            let peer = peers.iter().flat_map(|p| &p.points).find(|y| {
                &y.variant == v
                    && matches!(y.status, PointStatus::Ok)
                    && y.phase == x.phase
                    && y.mask == x.mask
                    && y.shape == x.shape
            });
            let cell = peer.and_then(|y| y.seconds.map(|ys| (ys.median, y.joules.map(|j| j.median)))).map_or(
                "-".to_string(),
                |(ys, yj)| {
                    let jr = j.zip(yj).map_or("-".into(), |(a, b)| num(a / b));
                    format!("{}, {jr}", num(s / ys))
                },
            );
            let _ = write!(md, " {cell} |");
        }
        md.push('\n');
        rows += 1;
    }
    if rows == 0 {
        let _ = writeln!(md, "| (no sweep points yet) | | | | | | | | | |");
    }
    attnjoule::files::write_atomic(&dir.join("summary.md"), md.as_bytes())?;
    out!("{md}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_logs_count_passes_and_failures() {
        let log = "running 2 tests\ntest a ... ok\ntest result: ok. 2 passed; 0 failed; 0 ignored; 0 measured; 9 \
                   filtered out; finished in 1.2s\n";
        assert_eq!(test_result(log), "2 passed, 0 failed");
        let bad = "test result: FAILED. 1 passed; 1 failed; 0 ignored\n";
        assert_eq!(test_result(bad), "1 passed, 1 failed");
        assert_eq!(test_result("thread main panicked\n\n"), "thread main panicked");
    }

    #[test]
    fn every_step_estimates_and_the_timeline_overlaps_the_check() {
        let p = PlanArgs { gpu: Gpu::H200, budget_s: 360.0, points: false };
        let steps = estimate_steps(&p).unwrap();
        let check = steps.iter().find(|s| s.step.name == "peer-check").unwrap();
        // The required tests (an optional one runs after the required steps, if time remains).
        let tests: f64 = steps
            .iter()
            .filter(|s| s.step.name.starts_with("test-") && s.step.mode != Mode::Optional)
            .map(|s| s.est_s)
            .sum();
        let serial: f64 =
            PREFLIGHT_S + steps.iter().filter(|s| s.step.mode != Mode::Optional).map(|s| s.est_s).sum::<f64>();
        let (total, optional) = timeline(&steps);
        // The check runs beside the tests: the total saves the shorter of the two.
        assert!((serial - total - check.est_s.min(tests)).abs() < 1e-9, "{serial} {total}");
        assert!(optional > 0.0);
        assert!(steps.iter().all(|s| s.est_s > 0.0 && s.cap_s > s.est_s), "every step has an estimate and a cap");
        // The sweeps cover decode 1K..1M for every mask and the 1M prefill only for bounded masks.
        let labels: Vec<&str> = steps.iter().flat_map(|s| &s.points).map(|p| p.label.as_str()).collect();
        for mask in ["causal", "window:4096", "longformer:128:1:1"] {
            assert!(labels.contains(&format!("decode decode {mask} ctx=1048576 q=1").as_str()), "{mask}");
        }
        assert!(labels.contains(&"flash prefill window:4096 ctx=1048576"));
        assert!(!labels.contains(&"flash prefill causal ctx=1048576"));
        // Serving decode: uniform and ragged 64-sequence steps over a bf16 and an fp8 cache.
        assert!(labels.contains(&"decode decode causal ctx=131072 q=1 kv=fp8 page=64 mix=mix64:1"));
        assert!(labels.contains(&"decode decode causal ctx=32768 q=1 page=64"));
    }
}
