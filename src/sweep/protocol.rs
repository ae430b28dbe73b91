//! The measurement protocol of one point.
//!
//! NVML's power readings on A100/H100-class boards are averaged over windows and cover only part
//! of each, so short runs lie. Per point: warm up, timing each warm-up launch with device events;
//! then launch back to back until a window lasts at least `min_seconds`; repeat `reps` times with
//! randomized idle gaps (so the windows do not phase-lock with the counter's update period);
//! rotate among input buffer sets so L2 never holds the inputs. Report medians and spread.

use crate::device::Timestamp;
use crate::energy::{self, EnergySource, GpuState};
use crate::error::{Error, Result};
use crate::profile::{EnergyMethod, Stat};
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

/// What the protocol drives: a prepared call on a device (or a simulation of one).
pub trait Target {
    /// Enqueues one call on input set `set` (0..sets()).
    fn launch(&mut self, set: usize) -> Result<()>;
    fn sets(&self) -> usize;
    fn record(&mut self) -> Result<Timestamp>;
    /// Seconds between two recorded timestamps (waits for `b`).
    fn elapsed_s(&mut self, a: Timestamp, b: Timestamp) -> Result<f64>;
    fn synchronize(&mut self) -> Result<()>;
    /// Leaves the device idle for `seconds`.
    fn idle(&mut self, seconds: f64);
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProtocolConfig {
    /// Individually timed warm-up launches ...
    pub warmup_calls: u32,
    /// ... stopping early once they add up to this many seconds (long calls at 1M tokens).
    pub warmup_max_seconds: f64,
    /// Minimum length of each measured window (device time).
    pub min_seconds: f64,
    pub reps: u32,
    /// Idle gap before each repetition, drawn uniformly from [gap_min_s, gap_max_s].
    pub gap_min_s: f64,
    pub gap_max_s: f64,
    /// Seed of the gap draws.
    pub seed: u64,
    /// Upper bound on launches in one window (guards against a broken timer).
    pub max_calls: u64,
}

impl Default for ProtocolConfig {
    fn default() -> Self {
        ProtocolConfig {
            warmup_calls: 5,
            warmup_max_seconds: 3.0,
            min_seconds: 1.0,
            reps: 5,
            gap_min_s: 0.2,
            gap_max_s: 0.6,
            seed: 0,
            max_calls: 10_000_000,
        }
    }
}

/// One repetition's window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Rep {
    pub calls: u64,
    /// Device (event) time of the window.
    pub device_seconds: f64,
    pub energy: energy::WindowEnergy,
}

/// The result of one point's protocol.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Measurement {
    pub seconds: Stat,
    pub joules: Stat,
    pub joules_above_idle: Option<Stat>,
    /// Median average power over the windows.
    pub watts: f64,
    pub method: EnergyMethod,
    pub calls: u64,
    pub warmup_seconds_per_call: f64,
    pub start: GpuState,
    pub end: GpuState,
    pub throttled: bool,
    pub reps: Vec<Rep>,
}

/// Idle board power: one window of `seconds` with nothing running.
pub fn idle_watts(target: &mut dyn Target, src: &dyn EnergySource, seconds: f64) -> Result<f64> {
    target.synchronize()?;
    let m = energy::begin(src)?;
    target.idle(seconds);
    let w = energy::end(src, m)?;
    Ok(w.watts())
}

/// Runs the protocol on `target`, metering with `src`. `idle_w` (from [`idle_watts`]) gives the
/// energy above idle.
pub fn measure(
    target: &mut dyn Target,
    src: &dyn EnergySource,
    idle_w: Option<f64>,
    cfg: &ProtocolConfig,
) -> Result<Measurement> {
    if cfg.reps == 0 || cfg.min_seconds <= 0.0 || target.sets() == 0 {
        return Err(Error::Invalid("protocol needs reps >= 1, min_seconds > 0 and at least one buffer set".into()));
    }
    let sets = target.sets();
    // Warm-up: each launch timed on its own; the median estimates the call time.
    let mut warm = Vec::new();
    for i in 0..cfg.warmup_calls.max(1) as usize {
        let a = target.record()?;
        target.launch(i % sets)?;
        let b = target.record()?;
        warm.push(target.elapsed_s(a, b)?);
        if warm.iter().sum::<f64>() >= cfg.warmup_max_seconds {
            break;
        }
    }
    target.synchronize()?;
    let t_est = Stat::from_samples(&warm).map_or(0.0, |s| s.median);
    let mut calls = if t_est > 0.0 { (cfg.min_seconds / t_est).ceil() as u64 } else { 1 };
    calls = calls.clamp(1, cfg.max_calls);

    let mut rng = rand::rngs::StdRng::seed_from_u64(cfg.seed);
    // Clocks, temperature and throttle reasons of the first and last kept windows, read while
    // their calls run. (Read here, after the warm-up's synchronize, or after the last window's,
    // the GPU is idle: NVML then reports idle clocks and `gpu_idle`, and a point that ran
    // power-capped or hot could never be flagged `throttled`.)
    let (mut start, mut end): (Option<GpuState>, Option<GpuState>) = (None, None);
    let mut reps = Vec::new();
    // Continue the rotation where the warm-up left it.
    let mut next_set = warm.len() % sets;
    // A window shorter than min_seconds (the warm-up underestimated the rate) is redone longer;
    // at most a few times per repetition so a misbehaving timer cannot loop forever.
    let mut retries = 0;
    while reps.len() < cfg.reps as usize {
        let gap =
            if cfg.gap_max_s > cfg.gap_min_s { rng.random_range(cfg.gap_min_s..cfg.gap_max_s) } else { cfg.gap_min_s };
        target.idle(gap);
        target.synchronize()?;
        let mark = energy::begin(src)?;
        let a = target.record()?;
        for _ in 0..calls {
            target.launch(next_set)?;
            next_set = (next_set + 1) % sets;
        }
        let b = target.record()?;
        // Both events are enqueued, so this host-side read costs no device time; the calls of
        // the window are still queued or running (the launch queue holds the tail of a short-call
        // window, a long call runs for its whole length).
        let state = src.state()?;
        target.synchronize()?;
        let e = energy::end(src, mark)?;
        let dev_s = target.elapsed_s(a, b)?;
        if dev_s < cfg.min_seconds && retries < 4 && calls < cfg.max_calls {
            let scale = if dev_s > 0.0 { cfg.min_seconds / dev_s * 1.05 } else { 2.0 };
            calls = ((calls as f64 * scale).ceil() as u64).clamp(calls + 1, cfg.max_calls);
            retries += 1;
            continue;
        }
        retries = 0;
        reps.push(Rep { calls, device_seconds: dev_s, energy: e });
        start.get_or_insert_with(|| state.clone());
        end = Some(state);
    }
    let (start, end) = (start.expect("reps >= 1"), end.expect("reps >= 1"));
    let per = |f: &dyn Fn(&Rep) -> f64| Stat::from_samples(&reps.iter().map(f).collect::<Vec<_>>()).expect("reps >= 1");
    let seconds = per(&|r| r.device_seconds / r.calls as f64);
    let joules = per(&|r| r.energy.joules / r.calls as f64);
    let joules_above_idle = idle_w.map(|w| per(&|r| (r.energy.joules - w * r.energy.seconds) / r.calls as f64));
    let watts = per(&|r| r.energy.watts()).median;
    // One method for the point: the counter only if every window had it.
    let method = if reps.iter().all(|r| r.energy.method == EnergyMethod::Counter) {
        EnergyMethod::Counter
    } else {
        EnergyMethod::SampledPower
    };
    Ok(Measurement {
        seconds,
        joules,
        joules_above_idle,
        watts,
        method,
        calls: reps.iter().map(|r| r.calls).sum(),
        warmup_seconds_per_call: t_est,
        throttled: start.throttled() || end.throttled(),
        start,
        end,
        reps,
    })
}

/// A simulated call on a [`energy::SimGpu`]: each launch takes `call_s` at `active_w`; idle time
/// draws `idle_w`. Used by the protocol tests and nowhere else.
#[derive(Debug, Clone)]
pub struct SimTarget {
    pub gpu: energy::SimGpu,
    pub call_s: f64,
    pub active_w: f64,
    pub idle_w: f64,
    pub sets: usize,
    /// Launches per set, to check the rotation.
    pub launches: Vec<u64>,
}

impl SimTarget {
    pub fn new(gpu: energy::SimGpu, call_s: f64, active_w: f64, idle_w: f64, sets: usize) -> Self {
        SimTarget { gpu, call_s, active_w, idle_w, sets, launches: vec![0; sets] }
    }
}

impl Target for SimTarget {
    fn launch(&mut self, set: usize) -> Result<()> {
        self.launches[set] += 1;
        self.gpu.run(self.call_s, self.active_w);
        Ok(())
    }
    fn sets(&self) -> usize {
        self.sets
    }
    fn record(&mut self) -> Result<Timestamp> {
        Ok(Timestamp(self.gpu.stamp()))
    }
    fn elapsed_s(&mut self, a: Timestamp, b: Timestamp) -> Result<f64> {
        match (self.gpu.stamp_time(a.0), self.gpu.stamp_time(b.0)) {
            (Some(x), Some(y)) => Ok(y - x),
            _ => Err(Error::Invalid("unknown simulated timestamp".into())),
        }
    }
    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }
    fn idle(&mut self, seconds: f64) {
        self.gpu.run(seconds, self.idle_w);
    }
}
