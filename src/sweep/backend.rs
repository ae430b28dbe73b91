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

/// What a finished sweep produced.
#[derive(Debug)]
pub struct Outcome {
    pub profile: Profile,
    pub dir: PathBuf,
    pub log: PathBuf,
    pub files: Vec<PathBuf>,
    pub warnings: Vec<String>,
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
