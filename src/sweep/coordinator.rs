//! The coordinator of a sweep run: starts the [`Pool`], checks that its GPUs match, opens (or
//! resumes) the JSONL log, queues the points not done yet, records each result as it arrives
//! with a progress line, and assembles the profile and its outputs at the end.

use super::backend::{BackendKind, Outcome, RunConfig};
use super::jsonl::{self, Header, Line};
use super::pool::{Event, Pool, Ready};
use super::worker::WorkerFactory;
use super::{output, point_key, PointSpec, Shard};
use crate::energy;
use crate::error::{Error, Result};
use crate::files::{DirLock, LOCK_FILE};
use crate::profile::{GemmPoint, GpuInfo, Point, PointStatus, Points, Profile, ProfileKind};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Runs the sweep of `cfg` with workers from `factory`; `progress` receives one line per finished
/// point and every warning.
pub fn run_with(cfg: &RunConfig, factory: WorkerFactory, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    cfg.validate()?;
    let all = super::enumerate(&cfg.spec)?;
    let mine = cfg.shard.map_or(all.clone(), |s| s.select(&all));
    let ordinals = match cfg.backend {
        BackendKind::Cuda => cfg.devices.clone(),
        BackendKind::Emu => vec![0],
    };
    if ordinals.is_empty() {
        return Err(Error::Invalid("--devices lists no GPU".into()));
    }
    // GEMM calibration: once per sweep (first worker of shard 0); workers without cuBLAS skip it.
    let gemm = if cfg.shard.is_none_or(|s| s.index == 0) { cfg.gemm.clone() } else { vec![] };
    // Dropping the pool on an early return releases its waiting workers.
    let mut pool = Pool::start(&ordinals, cfg, factory, gemm);
    let gpu = one_gpu(pool.ready()?)?;
    let mut warnings = Vec::new();
    if let Some(period) = gpu.info.energy_counter_period_s {
        let pr = &cfg.protocol;
        let found = [
            energy::counter_period_warning(period, pr.min_seconds),
            energy::gap_span_warning(period, pr.gap_min_s, pr.gap_max_s),
        ];
        for w in found.into_iter().flatten() {
            progress(&format!("warning: {w}"));
            warnings.push(w);
        }
    }
    let mut log = SweepLog::open(cfg, &gpu, &mut warnings, progress)?;
    let todo = log.todo(cfg, mine, progress);
    let total = todo.len();
    pool.go(todo);

    let t0 = Instant::now();
    let mut finished = 0usize;
    while let Some((w, event)) = pool.recv() {
        match event {
            Event::Point(p, secs) => {
                finished += 1;
                let el = t0.elapsed().as_secs_f64();
                let eta = el / finished as f64 * (total - finished) as f64;
                progress(&format!(
                    "[{finished}/{total}] {}{} ({secs:.1} s) | elapsed {} | ETA {}",
                    if ordinals.len() > 1 { format!("gpu{} ", ordinals[w]) } else { String::new() },
                    output::summary(&p),
                    output::hms(el),
                    output::hms(eta)
                ));
                log.point(*p)?;
            }
            Event::Gemm(Ok(g)) => {
                if let Some(g) = log.gemm(g)? {
                    progress(&format!(
                        "gemm {}x{}x{}: {:.3} ms, {:.2} TFLOP/s{}",
                        g.m,
                        g.n,
                        g.k,
                        g.seconds.median * 1e3,
                        g.flops() / g.seconds.median / 1e12,
                        g.joules.map(|j| format!(", {:.3e} J/FLOP", j.median / g.flops())).unwrap_or_default()
                    ));
                }
            }
            Event::Gemm(Err(e)) => warn(&mut warnings, progress, format!("GEMM calibration point skipped: {e}")),
            Event::Warning(m) => warn(&mut warnings, progress, m),
            Event::Done | Event::Ready { .. } | Event::Fatal(_) => {}
        }
    }
    let left = pool.finish();
    if left > 0 {
        warn(&mut warnings, progress, format!("{left} points not run (no usable GPU left); `--resume` runs them"));
    }
    log.warnings.extend(warnings);
    let mut out = log.finish(cfg)?;
    out.not_run = left;
    Ok(out)
}

fn warn(warnings: &mut Vec<String>, progress: &mut dyn FnMut(&str), m: String) {
    progress(&format!("warning: {m}"));
    warnings.push(m);
}

/// The GPU of the run: the workers' must all be the same model on the same driver.
fn one_gpu(ready: Vec<Ready>) -> Result<Ready> {
    let mut it = ready.into_iter();
    let first = it.next().ok_or_else(|| Error::Invalid("no sweep worker".into()))?;
    let mut kind = first.kind;
    for r in it {
        if r.info.name != first.info.name || r.info.driver != first.info.driver {
            return Err(Error::Invalid(format!(
                "--devices mixes GPU models or drivers: {} vs {}",
                first.info.name, r.info.name
            )));
        }
        kind = r.kind;
    }
    Ok(Ready { kind, ..first })
}

/// A filesystem-friendly GPU name ("NVIDIA H100 80GB HBM3" -> "nvidia-h100-80gb-hbm3").
pub fn slug(name: &str) -> String {
    let s: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '-' }).collect();
    s.split('-').filter(|p| !p.is_empty()).collect::<Vec<_>>().join("-")
}

/// The file name (without extension) of the run's profile.
fn stem(cfg: &RunConfig) -> String {
    cfg.shard.map(|s| format!("profile-shard{}of{}", s.index, s.count)).unwrap_or_else(|| "profile".into())
}

fn log_name(shard: Option<Shard>) -> String {
    match shard {
        Some(s) => format!("points-shard{}of{}.jsonl", s.index, s.count),
        None => "points.jsonl".into(),
    }
}

/// Why an existing log at `log_path` must not be continued by this run, if it must not.
fn resume_refusal(h: &Header, cfg: &RunConfig, gpu: &GpuInfo, kind: ProfileKind, log_path: &Path) -> Option<Error> {
    if !cfg.resume {
        return Some(Error::Invalid(format!(
            "{} exists; pass --resume to continue it, or choose another --out",
            log_path.display()
        )));
    }
    if h.gpu.name != gpu.name || h.kind != kind {
        return Some(Error::Invalid(format!(
            "{} was written on {:?} ({:?}); refusing to resume it on {:?}",
            log_path.display(),
            h.gpu.name,
            h.kind,
            gpu.name
        )));
    }
    // A log of another shape (batch, heads, KV heads, head_dim) would mix its points into this
    // profile under the same curves; older logs without a recorded config are taken as they are.
    let logged = &h.config["spec"];
    let s = &cfg.spec;
    let differ: Vec<String> =
        [("batch", s.batch), ("heads", s.heads), ("kv_heads", s.kv_heads), ("head_dim", s.head_dim)]
            .into_iter()
            .filter_map(|(k, v)| logged[k].as_u64().filter(|&l| l != v as u64).map(|l| format!("{k} {l} (now {v})")))
            .collect();
    (!differ.is_empty()).then(|| {
        Error::Invalid(format!(
            "{} is a sweep of another shape: {}; refusing to resume it (choose another --out)",
            log_path.display(),
            differ.join(", ")
        ))
    })
}

/// Whether `dir` may hold a sweep: it does not exist yet, is empty, or is a sweep's folder (it
/// holds a sweep log). Any other folder (`--out /`, a home folder) is refused: a sweep writes
/// and replaces files there (profile.json, profile.csv, plots).
fn check_out_dir(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    let sweep_file = |n: &String| (n.starts_with("points") && n.ends_with(".jsonl")) || n.ends_with(LOCK_FILE);
    if names.is_empty() || names.iter().any(sweep_file) {
        return Ok(());
    }
    Err(Error::Invalid(format!(
        "--out {} holds other files and no sweep log (points*.jsonl); give a new or empty folder, or a sweep's folder",
        dir.display()
    )))
}

/// The run's log and what it holds: points and GEMM points (resumed ones first), warnings.
struct SweepLog {
    dir: PathBuf,
    path: PathBuf,
    /// Held while the sweep writes: a second sweep on the same log is refused.
    _lock: DirLock,
    writer: jsonl::Writer,
    header: Header,
    points: Points,
    gemm: Vec<GemmPoint>,
    /// GEMM sizes the log already had: not written twice.
    gemm_done: Vec<(u64, u64, u64)>,
    warnings: Vec<String>,
}

impl SweepLog {
    /// Opens the log of `cfg`'s output folder, resuming it when it exists and may be continued;
    /// writes the header of a new one. The log's own warnings (a cut last line) go to `progress`;
    /// `early` ones, already shown, are kept after them.
    fn open(cfg: &RunConfig, gpu: &Ready, early: &mut Vec<String>, progress: &mut dyn FnMut(&str)) -> Result<Self> {
        let dir = cfg.out.clone().unwrap_or_else(|| {
            let who = if gpu.kind == ProfileKind::Emulated { "emulator".to_string() } else { slug(&gpu.info.name) };
            PathBuf::from("profiles").join(format!("{who}-{}", output::utc_date()))
        });
        check_out_dir(&dir)?;
        let name = log_name(cfg.shard);
        // No output of the sweep may replace a layout file it reads.
        let stem = stem(cfg);
        for m in &cfg.spec.masks {
            if let crate::mask::MaskRecipe::Csr { path: layout, .. } = m {
                for out in [name.clone(), format!("{stem}.json"), format!("{stem}.csv")] {
                    crate::files::refuse_overwrite("--out", &dir.join(out), &[Path::new(layout)])?;
                }
            }
        }
        // One lock per log (shards of one sweep share the folder, each with its own log).
        let lock = DirLock::acquire_named(&dir, &format!(".{name}"), "sweep")?;
        let path = dir.join(name);
        let existing = jsonl::read(&path)?;
        for w in &existing.warnings {
            progress(&format!("warning: {w}"));
        }
        let mut warnings = existing.warnings.clone();
        warnings.append(early);
        if let Some(e) = existing.header.as_ref().and_then(|h| resume_refusal(h, cfg, &gpu.info, gpu.kind, &path)) {
            return Err(e);
        }
        let mut writer = jsonl::Writer::open(&path, existing.valid_len)?;
        let header = match existing.header {
            Some(h) => h,
            None => {
                let h = Header {
                    kind: gpu.kind,
                    gpu: gpu.info.clone(),
                    created: output::utc_date(),
                    tool: Some(format!("attnjoule {} sweep", env!("CARGO_PKG_VERSION"))),
                    idle_watts: gpu.idle,
                    config: serde_json::to_value(cfg).unwrap_or_default(),
                    schema_version: crate::profile::SCHEMA_VERSION,
                };
                writer.append(&Line::Header(h.clone()))?;
                h
            }
        };
        let mut gemm = existing.gemm;
        if cfg.resume {
            gemm.retain(|g| cfg.gemm.contains(&(g.m as usize, g.n as usize, g.k as usize)));
        }
        let gemm_done = gemm.iter().map(|g| (g.m, g.n, g.k)).collect();
        Ok(SweepLog { dir, path, _lock: lock, writer, header, points: existing.points, gemm, gemm_done, warnings })
    }

    /// The points of `mine` the log does not hold (with `--retry-failed`, failed ones are run
    /// again and dropped from the log's points). Logged points that are not part of this sweep
    /// (a resume with other variants, masks or contexts) stay in the log but not in its profile:
    /// the profile holds the sweep asked for, and says so.
    fn todo(&mut self, cfg: &RunConfig, mine: Vec<PointSpec>, progress: &mut dyn FnMut(&str)) -> Vec<PointSpec> {
        let wanted: HashSet<String> = mine.iter().map(PointSpec::key).collect();
        let before = self.points.len();
        let example = self.points.iter().map(point_key).find(|k| !wanted.contains(k));
        self.points.retain(|p| wanted.contains(&point_key(p)));
        if let Some(example) = example {
            let m = format!(
                "{} points of {} are not part of this sweep (e.g. {example}); they stay in the log, not in this \
                 profile",
                before - self.points.len(),
                self.path.display()
            );
            progress(&format!("warning: {m}"));
            self.warnings.push(m);
        }
        let is_failed = |p: &Point| matches!(p.status, PointStatus::Failed { .. });
        let done: HashSet<String> =
            self.points.iter().filter(|p| !(cfg.retry_failed && is_failed(p))).map(point_key).collect();
        if cfg.retry_failed {
            self.points.retain(|p| !is_failed(p));
        }
        let todo: Vec<PointSpec> = mine.into_iter().filter(|p| !done.contains(&p.key())).collect();
        if !done.is_empty() {
            progress(&format!("resuming {}: {} points done, {} to go", self.path.display(), done.len(), todo.len()));
        }
        todo
    }

    fn point(&mut self, p: Point) -> Result<()> {
        self.writer.append(&Line::Point(Box::new(p.clone())))?;
        self.points.insert(p);
        Ok(())
    }

    /// Records a GEMM point unless the log had it; returns it when recorded.
    fn gemm(&mut self, g: GemmPoint) -> Result<Option<&GemmPoint>> {
        if self.gemm_done.contains(&(g.m, g.n, g.k)) {
            return Ok(None);
        }
        self.writer.append(&Line::Gemm(g.clone()))?;
        self.gemm.push(g);
        Ok(self.gemm.last())
    }

    /// The profile of the log, written with its CSV and plots.
    fn finish(self, cfg: &RunConfig) -> Result<Outcome> {
        let h = self.header;
        let profile = Profile {
            schema_version: crate::profile::SCHEMA_VERSION,
            kind: h.kind,
            gpu: h.gpu,
            created: h.created,
            tool: h.tool,
            peaks: None,
            idle_watts: h.idle_watts,
            points: self.points,
            gemm: self.gemm,
            notes: match h.kind {
                ProfileKind::Emulated | ProfileKind::Analytical | ProfileKind::CpuDryRun => {
                    vec!["CPU emulator: counters only; time and energy not measured".into()]
                }
                ProfileKind::Measured => vec![format!(
                    "protocol: {} reps of >= {} s windows, medians; energy above idle subtracts {:.1} W",
                    cfg.protocol.reps,
                    cfg.protocol.min_seconds,
                    h.idle_watts.unwrap_or(0.0)
                )],
            },
        };
        let files = output::write_all(&profile, &self.dir, &stem(cfg))?;
        Ok(Outcome { profile, dir: self.dir, log: self.path, files, warnings: self.warnings, not_run: 0 })
    }
}
