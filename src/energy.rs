//! Energy measurement: NVML's total-energy counter and sampled board power, behind a small trait
//! ([`EnergySource`]) so the measurement protocol can be tested with a deterministic simulated
//! counter and power trace ([`SimGpu`]).
//!
//! A window of work is metered by [`begin`] / [`end`]: the energy is the counter delta (mJ) when
//! the GPU has one, else the integral of the sampled power over the window (the method is
//! recorded). NVML's readings on A100/H100-class boards are averaged and updated periodically, so
//! windows must be long (the protocol makes them ≥ 1 s); see `sweep::protocol`.

use crate::error::{Error, Result};
// GpuState is the profile's record of a GPU's clocks and throttling; re-exported where it is read.
pub use crate::profile::GpuState;
use crate::profile::{EnergyMethod, GpuInfo};
use serde::{Deserialize, Serialize};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// One power reading: seconds on the source's clock, board watts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PowerSample {
    pub t: f64,
    pub watts: f64,
}

/// Where energy readings come from: NVML on a GPU, [`SimGpu`] in tests.
pub trait EnergySource {
    /// Seconds on the source's monotonic clock (the clock of power samples).
    fn now(&self) -> f64;
    /// The total-energy counter in millijoules; `None` when the GPU has none.
    fn energy_mj(&self) -> Result<Option<u64>>;
    /// Power samples with `t0 <= t <= t1`, oldest first.
    fn samples(&self, t0: f64, t1: f64) -> Vec<PowerSample>;
    fn state(&self) -> Result<GpuState>;
    fn info(&self) -> Result<GpuInfo>;
    /// Lets `seconds` pass with the GPU idle (a sleep on a real GPU).
    fn wait(&self, seconds: f64);
}

/// The start of a metered window.
#[derive(Debug, Clone, Copy)]
pub struct Mark {
    pub t: f64,
    pub energy_mj: Option<u64>,
}

/// Energy of one metered window.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct WindowEnergy {
    pub joules: f64,
    /// Window length on the source's clock.
    pub seconds: f64,
    pub method: EnergyMethod,
    /// Power samples inside the window.
    pub samples: usize,
}

impl WindowEnergy {
    pub fn watts(&self) -> f64 {
        if self.seconds > 0.0 {
            self.joules / self.seconds
        } else {
            0.0
        }
    }
}

pub fn begin(src: &dyn EnergySource) -> Result<Mark> {
    Ok(Mark { energy_mj: src.energy_mj()?, t: src.now() })
}

/// Ends a window: the counter delta when both ends have one and it moved, else the integral of
/// the sampled power. Fails when neither is available (no counter and fewer than two samples).
pub fn end(src: &dyn EnergySource, m: Mark) -> Result<WindowEnergy> {
    let t1 = src.now();
    let e1 = src.energy_mj()?;
    let seconds = t1 - m.t;
    let samples = src.samples(m.t, t1);
    if let (Some(a), Some(b)) = (m.energy_mj, e1) {
        // A counter that did not move over a non-empty window is not updating; fall back.
        if b > a || seconds <= 0.0 {
            return Ok(WindowEnergy {
                joules: (b.saturating_sub(a)) as f64 / 1000.0,
                seconds,
                method: EnergyMethod::Counter,
                samples: samples.len(),
            });
        }
    }
    let joules = integrate_power(&samples, m.t, t1).ok_or_else(|| {
        Error::Nvml(format!(
            "no energy counter and only {} power samples in a {seconds:.3} s window; lengthen --min-seconds",
            samples.len()
        ))
    })?;
    Ok(WindowEnergy { joules, seconds, method: EnergyMethod::SampledPower, samples: samples.len() })
}

/// How often the total-energy counter moves: polls it every `poll` seconds for `span` seconds
/// and returns the median interval between changes (`None`: no counter, or fewer than three
/// changes). Each end of a metered window can lag by up to one period, so windows must be long
/// against it; polling costs host time only, so it doubles as the idle baseline's wait. A result
/// equal to `poll` means "at least this fine".
pub fn counter_period(src: &dyn EnergySource, span: f64, poll: f64) -> Result<Option<f64>> {
    let Some(mut last) = src.energy_mj()? else { return Ok(None) };
    let t0 = src.now();
    let mut changes = Vec::new();
    while src.now() - t0 < span {
        src.wait(poll);
        if let Some(e) = src.energy_mj()? {
            if e != last {
                changes.push(src.now());
                last = e;
            }
        }
    }
    let mut gaps: Vec<f64> = changes.windows(2).map(|w| w[1] - w[0]).collect();
    if gaps.len() < 2 {
        return Ok(None);
    }
    gaps.sort_by(f64::total_cmp);
    Ok(Some(gaps[gaps.len() / 2]))
}

/// A warning when a counter that moves every `period` seconds makes windows of `min_seconds`
/// uncertain by more than 1% (up to one period at each end).
pub fn counter_period_warning(period: f64, min_seconds: f64) -> Option<String> {
    (period > 0.01 * min_seconds).then(|| {
        format!(
            "NVML's energy counter moves every {:.1} ms: windows of {min_seconds} s can be off by up to {:.1}%; \
             raise --min-seconds",
            period * 1e3,
            100.0 * period / min_seconds
        )
    })
}

/// Why the idle gaps are random: a window that starts at the same phase of the counter's update
/// period every time errs the same way every time. Drawn over at least one period, the start
/// phases spread and the error averages out over repetitions; a narrower span does not.
pub fn gap_span_warning(period: f64, gap_min_s: f64, gap_max_s: f64) -> Option<String> {
    (gap_max_s - gap_min_s < period).then(|| {
        format!(
            "idle gaps of {gap_min_s}-{gap_max_s} s span less than the energy counter's {:.1} ms period: \
             windows may phase-lock with its updates; widen --gap",
            period * 1e3
        )
    })
}

/// Joules over `[t0, t1]` from power samples: trapezoids between samples, the first and last
/// sample held flat to the window edges. None with fewer than two samples.
pub fn integrate_power(samples: &[PowerSample], t0: f64, t1: f64) -> Option<f64> {
    let s: Vec<&PowerSample> = samples.iter().filter(|s| s.t >= t0 && s.t <= t1).collect();
    if s.len() < 2 || t1 <= t0 {
        return None;
    }
    let mut j = s[0].watts * (s[0].t - t0) + s[s.len() - 1].watts * (t1 - s[s.len() - 1].t);
    for w in s.windows(2) {
        j += 0.5 * (w[0].watts + w[1].watts) * (w[1].t - w[0].t);
    }
    Some(j)
}

/// NVML on GPU `index`: the energy counter, a power-sampling thread, metadata.
pub struct NvmlSource {
    nvml: Arc<nvml_wrapper::Nvml>,
    index: u32,
    epoch: Instant,
    buf: Arc<Mutex<VecDeque<PowerSample>>>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
    counter_supported: bool,
}

/// Samples kept by the sampling thread (10 minutes at 10 ms).
const MAX_SAMPLES: usize = 60_000;

fn nvml_err(what: &str, e: nvml_wrapper::error::NvmlError) -> Error {
    Error::Nvml(format!("{what}: {e}"))
}

impl NvmlSource {
    /// Loads libnvidia-ml, opens GPU `index` (NVML's index, which matches CUDA's ordinal when
    /// CUDA_DEVICE_ORDER=PCI_BUS_ID), and starts sampling power every `period`.
    pub fn new(index: u32, period: Duration) -> Result<Self> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| {
            Error::Nvml(format!("NVML not available (libnvidia-ml.so not loadable: {e}); energy cannot be measured"))
        })?;
        let nvml = Arc::new(nvml);
        let dev = nvml.device_by_index(index).map_err(|e| nvml_err(&format!("GPU {index}"), e))?;
        let counter_supported = dev.total_energy_consumption().is_ok();
        let epoch = Instant::now();
        let buf = Arc::new(Mutex::new(VecDeque::with_capacity(4096)));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (nvml, buf, stop) = (nvml.clone(), buf.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("nvml-power-{index}"))
                .spawn(move || {
                    let Ok(dev) = nvml.device_by_index(index) else { return };
                    let mut next = Instant::now();
                    while !stop.load(Ordering::Relaxed) {
                        if let Ok(mw) = dev.power_usage() {
                            let s = PowerSample { t: epoch.elapsed().as_secs_f64(), watts: mw as f64 / 1000.0 };
                            let mut b = buf.lock().unwrap_or_else(|p| p.into_inner());
                            if b.len() == MAX_SAMPLES {
                                b.pop_front();
                            }
                            b.push_back(s);
                        }
                        // Fixed-rate schedule so the sample timestamps do not drift.
                        next += period;
                        let now = Instant::now();
                        if next > now {
                            std::thread::sleep(next - now);
                        } else {
                            next = now;
                        }
                    }
                })
                .map_err(|e| Error::Nvml(format!("cannot start the power-sampling thread: {e}")))?
        };
        Ok(NvmlSource { nvml, index, epoch, buf, stop, thread: Some(thread), counter_supported })
    }

    /// The NVML device with this UUID (CUDA and NVML number GPUs differently unless
    /// CUDA_DEVICE_ORDER=PCI_BUS_ID; the UUID is unambiguous).
    pub fn for_uuid(uuid: &str, period: Duration) -> Result<Self> {
        let nvml = nvml_wrapper::Nvml::init().map_err(|e| {
            Error::Nvml(format!("NVML not available (libnvidia-ml.so not loadable: {e}); energy cannot be measured"))
        })?;
        let index =
            nvml.device_by_uuid(uuid).and_then(|d| d.index()).map_err(|e| nvml_err(&format!("GPU {uuid}"), e))?;
        drop(nvml);
        Self::new(index, period)
    }

    fn dev(&self) -> Result<nvml_wrapper::Device<'_>> {
        self.nvml.device_by_index(self.index).map_err(|e| nvml_err(&format!("GPU {}", self.index), e))
    }

    /// Free device memory as NVML sees it (bytes).
    pub fn memory_free(&self) -> Result<u64> {
        Ok(self.dev()?.memory_info().map_err(|e| nvml_err("memory info", e))?.free)
    }
}

impl Drop for NvmlSource {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl EnergySource for NvmlSource {
    fn now(&self) -> f64 {
        self.epoch.elapsed().as_secs_f64()
    }
    fn energy_mj(&self) -> Result<Option<u64>> {
        if !self.counter_supported {
            return Ok(None);
        }
        self.dev()?.total_energy_consumption().map(Some).map_err(|e| nvml_err("total energy", e))
    }
    fn samples(&self, t0: f64, t1: f64) -> Vec<PowerSample> {
        let b = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        b.iter().filter(|s| s.t >= t0 && s.t <= t1).copied().collect()
    }
    fn state(&self) -> Result<GpuState> {
        use nvml_wrapper::enum_wrappers::device::{Clock, TemperatureSensor};
        let d = self.dev()?;
        let reasons = d
            .current_throttle_reasons()
            .map(|r| r.iter_names().map(|(n, _)| n.to_ascii_lowercase()).collect())
            .unwrap_or_default();
        Ok(GpuState {
            sm_clock_mhz: d.clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.clock_info(Clock::Memory).ok(),
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            power_w: d.power_usage().ok().map(|mw| mw as f64 / 1000.0),
            throttle_reasons: reasons,
        })
    }
    fn info(&self) -> Result<GpuInfo> {
        use nvml_wrapper::enum_wrappers::device::Clock;
        let d = self.dev()?;
        Ok(GpuInfo {
            name: d.name().map_err(|e| nvml_err("name", e))?,
            uuid: d.uuid().ok(),
            driver: self.nvml.sys_driver_version().ok(),
            cuda: self.nvml.sys_cuda_driver_version().ok().map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10)),
            sm_count: None,
            memory_bytes: d.memory_info().ok().map(|m| m.total),
            power_limit_w: d.enforced_power_limit().ok().map(|mw| mw as f64 / 1000.0),
            sm_clock_mhz: d.max_clock_info(Clock::SM).ok(),
            mem_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
            energy_counter_period_s: None,
        })
    }
    fn wait(&self, seconds: f64) {
        std::thread::sleep(Duration::from_secs_f64(seconds.max(0.0)));
    }
}

/// A simulated GPU for tests: a clock that advances only when work or idle time is added, a
/// piecewise-constant power trace, a millijoule counter that integrates it exactly (floored), and
/// power samples on a fixed grid. Everything is deterministic.
#[derive(Debug, Clone)]
pub struct SimGpu {
    inner: Arc<Mutex<SimState>>,
}

#[derive(Debug)]
struct SimState {
    t: f64,
    joules: f64,
    /// (start, end, watts) segments of the power trace.
    trace: Vec<(f64, f64, f64)>,
    counter: bool,
    sample_period: f64,
    /// The counter shows the energy at the last multiple of this (None: always current).
    counter_period: Option<f64>,
    /// Power while `wait`ing.
    idle_watts: f64,
    state: GpuState,
    /// Timestamps handed out by `stamp`.
    stamps: Vec<f64>,
}

impl SimGpu {
    /// `counter`: whether the simulated GPU has a total-energy counter (else only samples).
    pub fn new(counter: bool, sample_period: f64) -> Self {
        SimGpu {
            inner: Arc::new(Mutex::new(SimState {
                t: 0.0,
                joules: 0.0,
                trace: Vec::new(),
                counter,
                sample_period,
                counter_period: None,
                idle_watts: 60.0,
                state: GpuState::default(),
                stamps: Vec::new(),
            })),
        }
    }
    /// A counter that updates only every `period` seconds (as NVML's does, at some rate).
    pub fn with_counter_period(self, period: f64) -> Self {
        self.lock().counter_period = Some(period);
        self
    }
    fn lock(&self) -> std::sync::MutexGuard<'_, SimState> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
    /// Advances the clock by `seconds` at `watts`.
    pub fn run(&self, seconds: f64, watts: f64) {
        let mut s = self.lock();
        let t0 = s.t;
        s.t += seconds;
        s.joules += seconds * watts;
        let t1 = s.t;
        s.trace.push((t0, t1, watts));
    }
    pub fn set_state(&self, st: GpuState) {
        self.lock().state = st;
    }
    /// Records the current time; returns its index (a simulated event).
    pub fn stamp(&self) -> u64 {
        let mut s = self.lock();
        let t = s.t;
        s.stamps.push(t);
        s.stamps.len() as u64 - 1
    }
    pub fn stamp_time(&self, i: u64) -> Option<f64> {
        self.lock().stamps.get(i as usize).copied()
    }
    fn power_at(s: &SimState, t: f64) -> f64 {
        // Segments are [start, end): a sample at a boundary reads the segment that begins there.
        s.trace.iter().rev().find(|&&(a, b, _)| t >= a && t < b).or(s.trace.last()).map_or(0.0, |x| x.2)
    }
}

impl EnergySource for SimGpu {
    fn now(&self) -> f64 {
        self.lock().t
    }
    fn energy_mj(&self) -> Result<Option<u64>> {
        let s = self.lock();
        let joules = match s.counter_period {
            None => s.joules,
            Some(p) => {
                let tq = (s.t / p).floor() * p;
                s.trace.iter().map(|&(a, b, w)| w * (b.min(tq) - a).max(0.0)).sum()
            }
        };
        Ok(s.counter.then(|| (joules * 1000.0).floor() as u64))
    }
    fn samples(&self, t0: f64, t1: f64) -> Vec<PowerSample> {
        let s = self.lock();
        let p = s.sample_period;
        let mut k = (t0 / p).ceil() as u64;
        let mut out = Vec::new();
        while (k as f64) * p <= t1.min(s.t) {
            let t = k as f64 * p;
            out.push(PowerSample { t, watts: Self::power_at(&s, t) });
            k += 1;
        }
        out
    }
    fn state(&self) -> Result<GpuState> {
        Ok(self.lock().state.clone())
    }
    fn info(&self) -> Result<GpuInfo> {
        Ok(GpuInfo { name: "Simulated GPU".into(), driver: Some("sim".into()), ..Default::default() })
    }
    fn wait(&self, seconds: f64) {
        let w = self.lock().idle_watts;
        self.run(seconds, w);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integrate_holds_edges_and_uses_trapezoids() {
        let s = [PowerSample { t: 1.0, watts: 100.0 }, PowerSample { t: 2.0, watts: 300.0 }];
        // [0.5,1]: 100*0.5 ; [1,2]: 200 ; [2,3]: 300
        assert_eq!(integrate_power(&s, 0.5, 3.0), Some(50.0 + 200.0 + 300.0));
        assert_eq!(integrate_power(&s[..1], 0.0, 3.0), None);
    }

    #[test]
    fn window_uses_counter_then_samples() {
        let g = SimGpu::new(true, 0.01);
        g.run(1.0, 70.0);
        let m = begin(&g).unwrap();
        g.run(2.0, 400.0);
        let w = end(&g, m).unwrap();
        assert_eq!(w.method, EnergyMethod::Counter);
        assert!((w.joules - 800.0).abs() <= 1e-3, "{}", w.joules);
        assert!((w.watts() - 400.0).abs() < 1e-3);

        let g = SimGpu::new(false, 0.01);
        g.run(1.0, 70.0);
        let m = begin(&g).unwrap();
        g.run(2.0, 400.0);
        let w = end(&g, m).unwrap();
        assert_eq!(w.method, EnergyMethod::SampledPower);
        assert_eq!(w.samples, 201);
        assert!((w.joules - 800.0).abs() < 1e-6, "{}", w.joules);
    }

    #[test]
    fn counter_period_is_measured_and_warned_about() {
        let g = SimGpu::new(true, 0.01).with_counter_period(0.025);
        let p = counter_period(&g, 0.5, 0.001).unwrap().unwrap();
        assert!((p - 0.025).abs() < 0.0015, "{p}");
        // An always-current counter reads as the poll interval; none at all gives None.
        let p = counter_period(&SimGpu::new(true, 0.01), 0.1, 0.001).unwrap().unwrap();
        assert!((p - 0.001).abs() < 1e-9, "{p}");
        assert_eq!(counter_period(&SimGpu::new(false, 0.01), 0.1, 0.001).unwrap(), None);
        assert!(counter_period_warning(0.001, 1.0).is_none());
        let w = counter_period_warning(0.1, 1.0).unwrap();
        assert!(w.contains("100.0 ms") && w.contains("10.0%"), "{w}");
        // Gaps drawn over one period or more spread the windows' phases; a fixed gap does not.
        assert!(gap_span_warning(0.1, 0.1, 0.25).is_none());
        let w = gap_span_warning(0.1, 0.3, 0.3).unwrap();
        assert!(w.contains("100.0 ms") && w.contains("--gap"), "{w}");
    }

    #[test]
    fn throttle_flags_only_limiting_reasons() {
        let mut s = GpuState { throttle_reasons: vec!["gpu_idle".into()], ..Default::default() };
        assert!(!s.throttled());
        s.throttle_reasons.push("sw_power_cap".into());
        assert!(s.throttled());
    }

    #[test]
    fn nvml_absent_is_one_clear_error() {
        match NvmlSource::new(0, Duration::from_millis(10)) {
            Ok(_) => {} // a GPU machine
            Err(e) => {
                let m = e.to_string();
                assert!(!m.contains('\n') && m.contains("NVML"), "{m}");
            }
        }
    }
}
