//! Sweep workers: one measures points on one device. [`gpu::GpuWorker`] times and meters them on
//! a GPU; [`emu::EmuWorker`] runs each once on the CPU emulator for counters. The [`Worker`]
//! trait is public so that tests drive the whole sweep (log, resume, outputs) with simulated GPUs.

pub mod emu;
pub mod gpu;

use super::backend::{BackendKind, RunConfig};
use super::protocol::Measurement;
use super::PointSpec;
use crate::error::Result;
use crate::ops::Options;
use crate::profile::{EnergyMethod, GemmPoint, GpuInfo, Point, PointStatus, ProfileKind};
use std::sync::Arc;

/// Measures points on one device.
pub trait Worker {
    /// Measured (GPU) or Emulated.
    fn kind(&self) -> ProfileKind;
    fn info(&self) -> GpuInfo;
    fn idle_watts(&self) -> Option<f64>;
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point;
    fn gemm(&mut self, m: usize, n: usize, k: usize) -> Result<GemmPoint>;
    /// Asked after a failed point: can this worker still run the next one? A CUDA kernel fault
    /// (illegal address, launch failure, ...) is sticky: every later call in the context fails.
    /// An unhealthy worker is dropped (releasing the context resets it) and made anew, instead
    /// of recording every remaining point as failed with the same error.
    fn healthy(&mut self) -> bool {
        true
    }
}

/// Makes the worker for the n-th entry of `--devices` (called on the worker's own thread).
pub type WorkerFactory = Arc<dyn Fn(usize, &RunConfig) -> Result<Box<dyn Worker>> + Send + Sync>;

/// The factory of `cfg.backend`: a CUDA device with NVML, or the emulator.
pub fn default_factory() -> WorkerFactory {
    Arc::new(|ordinal, cfg| match cfg.backend {
        BackendKind::Cuda => gpu::GpuWorker::cuda(ordinal, cfg).map(|w| Box::new(w) as Box<dyn Worker>),
        BackendKind::Emu => Ok(Box::new(emu::EmuWorker::new(emu_device()?, cfg.emu_max_bytes)) as Box<dyn Worker>),
    })
}

/// The CPU emulator as a sweep backend (sanitizer and counters on).
pub fn emu_device() -> Result<Box<dyn crate::device::Device>> {
    Ok(Box::new(crate::emu::EmuDevice::new()))
}

/// A point with its identity, work counts and `status`, nothing measured yet.
pub fn blank_point(spec: &PointSpec, status: PointStatus) -> Point {
    // A mask that cannot be built (a layout file gone) or a problem that is not valid has no
    // work counts: zero, with the error in the point's status (counting an invalid problem's
    // work could take minutes and gigabytes).
    let work = spec.problem().ok().filter(|p| p.validate().is_ok()).map_or(crate::work::Work::default(), |p| {
        crate::ops::Attention::new(spec.variant, &p, &Options::default()).map(|a| a.work()).unwrap_or_else(|_| {
            match spec.variant {
                crate::work::Variant::Dense => crate::work::dense(&p),
                crate::work::Variant::Flash => crate::work::flash(&p, 128, 64),
                crate::work::Variant::FlashHopper => crate::work::flash_hopper(&p, 128, 128, 2),
                crate::work::Variant::FlashHopperFp8 => crate::work::flash_hopper(&p, 128, 128, 1),
                crate::work::Variant::Decode => crate::work::decode(&p, 1),
            }
        })
    });
    Point {
        variant: spec.variant.name().into(),
        implementation: "attnjoule".into(),
        phase: spec.phase,
        mask: spec.mask.clone(),
        shape: spec.shape,
        serving: spec.serving,
        status,
        flops: work.flops,
        min_bytes: work.min_bytes,
        seconds: None,
        joules: None,
        joules_above_idle: None,
        watts: None,
        energy_method: EnergyMethod::None,
        throttled: false,
        calls: None,
        counters: None,
        ncu: Default::default(),
        note: None,
        detail: None,
    }
}

pub fn failed(spec: &PointSpec, e: impl std::fmt::Display) -> Point {
    blank_point(spec, PointStatus::Failed { error: e.to_string() })
}

/// Fills a measured point from the protocol's result.
pub fn measured_point(mut p: Point, m: &Measurement, idle: Option<f64>, sets: usize) -> Point {
    p.seconds = Some(m.seconds);
    p.joules = Some(m.joules);
    p.joules_above_idle = m.joules_above_idle;
    p.watts = Some(m.watts);
    p.energy_method = m.method;
    p.throttled = m.throttled;
    p.calls = Some(m.calls);
    let d = p.detail.get_or_insert_with(Default::default);
    d.idle_watts = idle;
    d.buffer_sets = Some(sets as u32);
    d.warmup_seconds_per_call = Some(m.warmup_seconds_per_call);
    d.rep_seconds = m.reps.iter().map(|r| r.device_seconds / r.calls as f64).collect();
    d.rep_joules = m.reps.iter().map(|r| r.energy.joules / r.calls as f64).collect();
    d.rep_calls = m.reps.iter().map(|r| r.calls).collect();
    d.start = Some(m.start.clone());
    d.end = Some(m.end.clone());
    p
}
