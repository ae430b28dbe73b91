//! Running a sweep on a backend: one worker per GPU (`--devices`), or the CPU emulator. The
//! pieces: [`super::worker`] (measuring one point on one device), [`super::pool`] (the worker
//! threads, their queue and restarts) and [`super::coordinator`] (log, resume, progress, the
//! profile). This module holds the run's configuration and its entry points.

pub use super::coordinator::{run_with, slug};
pub use super::worker::{blank_point, default_factory, emu_device, failed, measured_point, Worker, WorkerFactory};
use super::{protocol::ProtocolConfig, Shard, SweepSpec, GIB};
use crate::error::{Error, Result};
use crate::profile::Profile;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    Cuda,
    Emu,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    pub spec: SweepSpec,
    pub protocol: ProtocolConfig,
    pub backend: BackendKind,
    /// CUDA ordinals, one worker each.
    pub devices: Vec<usize>,
    pub shard: Option<Shard>,
    /// Output folder; default `profiles/<gpu>-<date>/`.
    pub out: Option<PathBuf>,
    pub resume: bool,
    /// On resume, measure again the points that failed before.
    pub retry_failed: bool,
    /// Idle window for the baseline (seconds).
    pub idle_seconds: f64,
    pub power_period_ms: u64,
    /// GEMM calibration sizes (m, n, k); empty for none. Run by shard 0 only.
    pub gemm: Vec<(usize, usize, usize)>,
    /// Device memory the emulator may use for one point.
    pub emu_max_bytes: usize,
    /// Input data seed.
    pub seed: u64,
}

impl Default for RunConfig {
    fn default() -> Self {
        RunConfig {
            spec: SweepSpec::default(),
            protocol: ProtocolConfig::default(),
            backend: BackendKind::Cuda,
            devices: vec![0],
            shard: None,
            out: None,
            resume: false,
            retry_failed: false,
            idle_seconds: 3.0,
            power_period_ms: 10,
            gemm: vec![(4096, 4096, 4096), (8192, 8192, 8192), (16384, 16384, 16384)],
            emu_max_bytes: 1 << 30,
            seed: 0,
        }
    }
}

/// Largest bounds of a sweep's protocol: one measured window of 10 minutes, 100 of them per
/// point, 10 minutes of idle baseline, a power sample per minute at the slowest, 64 GPUs of a
/// node or two. Beyond these a point takes hours, which no sweep means.
pub const MAX_MIN_SECONDS: f64 = 600.0;
pub const MAX_REPS: u32 = 100;
pub const MAX_IDLE_SECONDS: f64 = 600.0;
pub const MAX_POWER_PERIOD_MS: u64 = 60_000;
pub const MAX_DEVICES: usize = 64;
/// Longest idle gap before a measured window (seconds): more only stretches a sweep.
pub const MAX_GAP_SECONDS: f64 = 60.0;

impl RunConfig {
    /// Every bound of the run (the spec's are checked by `enumerate`); one line naming the value.
    pub fn validate(&self) -> Result<()> {
        let p = &self.protocol;
        if !(p.min_seconds.is_finite() && p.min_seconds > 0.0 && p.min_seconds <= MAX_MIN_SECONDS) {
            return Err(Error::Invalid(format!(
                "min_seconds must be in (0, {MAX_MIN_SECONDS}] seconds, got {}",
                p.min_seconds
            )));
        }
        let gap_ok = |x: f64| x.is_finite() && (0.0..=MAX_GAP_SECONDS).contains(&x);
        if !(gap_ok(p.gap_min_s) && gap_ok(p.gap_max_s) && p.gap_min_s <= p.gap_max_s) {
            return Err(Error::Invalid(format!(
                "the idle gap must be MIN:MAX seconds with 0 <= MIN <= MAX <= {MAX_GAP_SECONDS}, got {}:{}",
                p.gap_min_s, p.gap_max_s
            )));
        }
        if p.reps == 0 || p.reps > MAX_REPS {
            return Err(Error::Invalid(format!("reps must be in 1..={MAX_REPS}, got {}", p.reps)));
        }
        if !(self.idle_seconds.is_finite() && (0.0..=MAX_IDLE_SECONDS).contains(&self.idle_seconds)) {
            return Err(Error::Invalid(format!(
                "idle_seconds must be in [0, {MAX_IDLE_SECONDS}] seconds, got {}",
                self.idle_seconds
            )));
        }
        if self.power_period_ms == 0 || self.power_period_ms > MAX_POWER_PERIOD_MS {
            return Err(Error::Invalid(format!(
                "power_period_ms must be in 1..={MAX_POWER_PERIOD_MS}, got {}",
                self.power_period_ms
            )));
        }
        if self.backend == BackendKind::Cuda {
            if self.devices.is_empty() || self.devices.len() > MAX_DEVICES {
                return Err(Error::Invalid(format!(
                    "devices: list 1 to {MAX_DEVICES} GPUs, not {}",
                    self.devices.len()
                )));
            }
            let mut seen = std::collections::HashSet::new();
            if let Some(d) = self.devices.iter().find(|d| !seen.insert(**d)) {
                // Two workers on one GPU would time each other's calls.
                return Err(Error::Invalid(format!("devices lists GPU {d} twice")));
            }
        }
        if self.backend == BackendKind::Emu {
            crate::emu::check_host_memory(self.emu_max_bytes as u128, "emu_max_bytes")?;
        }
        Ok(())
    }
}

/// What a finished sweep produced.
#[derive(Debug)]
pub struct Outcome {
    pub profile: Profile,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
    /// Points left in the queue (no usable GPU left): `--resume` runs them.
    pub not_run: usize,
}

/// Runs the sweep; `progress` receives one line per finished point (and warnings).
pub fn run(cfg: &RunConfig, progress: &mut dyn FnMut(&str)) -> Result<Outcome> {
    if cfg.backend == BackendKind::Cuda {
        crate::device::cuda::probe().map_err(Error::NoGpu)?;
    }
    run_with(cfg, default_factory(), progress)
}

/// GiB, for messages.
pub fn gib(bytes: usize) -> f64 {
    bytes as f64 / GIB
}
