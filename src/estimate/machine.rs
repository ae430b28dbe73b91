//! The estimator's GPU where no profile point answers: how long a step takes (achieved fractions
//! of the peaks, a fixed overhead per serving step) and what a GPU draws meanwhile (a power model
//! by what the step is bound by). Every figure carries where it comes from (datasheet, assumed,
//! measured, calibrated), and the report prints it.
//!
//! A step of `F` FLOPs and `B` DRAM bytes on one GPU keeps the tensor cores busy for
//! `t_c = F / (η_f · peak FLOP/s)` and the memory system for `t_m = B / (η_b · peak bytes/s)`; it
//! takes `t = max(t_c, t_m)`, and the GPU draws
//! `P = P_wait + (P_compute − P_wait) · u_c + (P_memory − P_wait) · u_m · (1 − u_c)`
//! with `u_c = t_c / t`, `u_m = t_m / t`: the compute-bound power when the tensor cores are
//! saturated, the memory-bound power when only the memory is, waiting power when neither is, and
//! never above the larger of the two.

use super::analytical;
use crate::profile::{Phase, Point, PointStatus, Profile, ProfileKind};
use serde::Serialize;

/// Where a figure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Datasheet,
    Assumed,
    Measured,
    Calibrated,
}

impl Origin {
    pub fn label(self) -> &'static str {
        match self {
            Origin::Datasheet => "datasheet",
            Origin::Assumed => "assumed",
            Origin::Measured => "measured",
            Origin::Calibrated => "calibrated",
        }
    }
}

/// One figure and its origin, with a line saying what it rests on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Figure {
    pub value: f64,
    pub origin: Origin,
    pub basis: String,
}

impl Figure {
    pub fn new(value: f64, origin: Origin, basis: impl Into<String>) -> Figure {
        Figure { value, origin, basis: basis.into() }
    }
}

/// Power of one GPU by what its work is bound by.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PowerModel {
    /// Tensor cores saturated (compute-bound prefill, large GEMMs), W.
    pub compute_watts: Figure,
    /// Memory bandwidth saturated, tensor cores mostly idle (decode), W.
    pub memory_watts: Figure,
    /// Holding a shard and waiting (idle pipeline stages, launch and scheduling gaps), W.
    pub wait_watts: Figure,
}

impl PowerModel {
    /// Watts of a GPU whose tensor cores are busy a fraction `u_c` of the time and its memory `u_m`.
    pub fn watts(&self, u_c: f64, u_m: f64) -> f64 {
        let (c, m, w) = (self.compute_watts.value, self.memory_watts.value, self.wait_watts.value);
        let (u_c, u_m) = (u_c.clamp(0.0, 1.0), u_m.clamp(0.0, 1.0));
        w + (c - w) * u_c + (m - w) * u_m * (1.0 - u_c)
    }
}

/// Achieved fractions of the peaks, and the time a serving step spends outside the GPU's kernels.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Efficiency {
    /// Fraction of peak DRAM bandwidth a memory-bound step achieves.
    pub bandwidth: Figure,
    /// Fraction of peak tensor FLOP/s a compute-bound step achieves.
    pub flops: Figure,
    /// Seconds per serving step (one token for every sequence of the batch) when the GPUs wait
    /// (scheduling, sampling, launch gaps), drawn at the waiting power.
    pub step_overhead_s: Figure,
    /// Latency of one step of a tensor-parallel ring all-reduce, s: each layer all-reduces its
    /// activations twice (after attention, after the FFN), `2 (tp - 1)` steps each, plus their
    /// bytes over `link_gbps`; drawn at the waiting power.
    pub allreduce_hop_s: Figure,
}

/// The GPU as the estimator costs work that no profile point covers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Machine {
    /// The datasheet's board power (max TDP), W: what power fractions are fractions of.
    pub board_watts: f64,
    /// Peak dense bf16 FLOP/s.
    pub peak_flops: f64,
    /// Peak DRAM bytes/s.
    pub peak_bytes: f64,
    /// GPU-to-GPU bandwidth per direction, bytes/s (NVLink).
    pub link_bytes: f64,
    pub power: PowerModel,
    pub efficiency: Efficiency,
}

/// One GPU's busy time on a piece of work and its mean power meanwhile.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Busy {
    pub seconds: f64,
    pub watts: f64,
}

impl Busy {
    pub fn joules(&self) -> f64 {
        self.seconds * self.watts
    }
}

/// The analytical assumption for memory-bound power: this fraction of the board power.
/// See [`MEMORY_BOUND_BASIS`].
pub const MEMORY_BOUND_FRACTION: f64 = 0.6;

/// What [`MEMORY_BOUND_FRACTION`] rests on.
pub const MEMORY_BOUND_BASIS: &str =
    "60% of board power while only the memory is saturated (decode); sources in docs/ESTIMATOR.md";

/// Calibration bounds (`calibrate`): a figure outside them would not describe a working server.
pub const BANDWIDTH_RANGE: (f64, f64) = (0.2, 1.0);
pub const FLOPS_RANGE: (f64, f64) = (0.1, 1.0);
pub const OVERHEAD_RANGE_S: (f64, f64) = (0.0, 0.05);
/// Memory-bound power as a fraction of board power.
pub const MEMORY_POWER_RANGE: (f64, f64) = (0.2, 1.0);
pub const ALLREDUCE_HOP_RANGE_S: (f64, f64) = (0.0, 1e-4);
/// NVLink bandwidth of the H100 SXM and H200 SXM per direction, bytes/s: 900 GB/s total
/// (datasheets), 450 each way.
pub const NVLINK_BYTES: f64 = 450e9;
/// Compute-bound power as a fraction of board power.
pub const COMPUTE_POWER_RANGE: (f64, f64) = (0.5, 1.0);

impl Machine {
    /// Datasheet peaks reached, no overhead, board power when compute-bound, the assumed
    /// fraction of it when memory-bound, `wait` while waiting.
    pub fn analytical(bf16_tflops: f64, hbm_gbps: f64, board_watts: f64, wait: Figure) -> Machine {
        let roof = "the datasheet peak is reached (roofline: an optimistic bound on time)";
        Machine {
            board_watts,
            peak_flops: bf16_tflops * 1e12,
            peak_bytes: hbm_gbps * 1e9,
            link_bytes: NVLINK_BYTES,
            power: PowerModel {
                compute_watts: Figure::new(board_watts, Origin::Datasheet, "board power (max TDP)"),
                memory_watts: Figure::new(board_watts * MEMORY_BOUND_FRACTION, Origin::Assumed, MEMORY_BOUND_BASIS),
                wait_watts: wait,
            },
            efficiency: Efficiency {
                bandwidth: Figure::new(1.0, Origin::Assumed, roof),
                flops: Figure::new(1.0, Origin::Assumed, roof),
                step_overhead_s: Figure::new(0.0, Origin::Assumed, "no time between steps"),
                allreduce_hop_s: Figure::new(0.0, Origin::Assumed, "no latency: all-reduces at NVLink bandwidth"),
            },
        }
    }

    /// The analytical machine with what a measured profile's points show replacing its
    /// assumptions: each power as the median watts of the profile's memory-bound (the large ones
    /// when it has them) or compute-bound points, each achieved fraction as the median over those
    /// points (compute-bound GEMM points for FLOP/s when present). A profile that is not measured
    /// changes nothing.
    pub fn with_profile(mut self, profile: &Profile) -> Machine {
        if profile.kind != ProfileKind::Measured {
            return self;
        }
        let ridge = self.peak_flops / self.peak_bytes;
        let ok = |p: &&Point| {
            matches!(p.status, PointStatus::Ok)
                && p.seconds.is_some_and(|s| s.median > 0.0)
                && p.min_bytes > 0.0
                && p.serving.mix.is_none()
        };
        let pts: Vec<&Point> = profile.points.iter().filter(ok).collect();
        // Clearly on one side of the ridge: a factor of 4 in arithmetic intensity. Memory-bound
        // points that move at least 64 MiB when the profile has them: small calls are dominated
        // by their launch, not by the bandwidth the estimator's weight and cache reads see.
        let mut memory: Vec<&Point> =
            pts.iter().copied().filter(|p| p.phase == Phase::Decode && p.flops / p.min_bytes < ridge / 4.0).collect();
        if memory.iter().any(|p| p.min_bytes >= LARGE_BYTES) {
            memory.retain(|p| p.min_bytes >= LARGE_BYTES);
        }
        let compute: Vec<&Point> = pts.iter().copied().filter(|p| p.flops / p.min_bytes > ridge * 4.0).collect();
        let watts = |v: &[&Point]| median(v.iter().filter_map(|p| p.watts).filter(|w| *w > 0.0).collect());
        if let Some((w, n)) = watts(&memory) {
            self.power.memory_watts =
                Figure::new(w, Origin::Measured, format!("median watts of {n} memory-bound decode points"));
        }
        if let Some((w, n)) = watts(&compute) {
            self.power.compute_watts =
                Figure::new(w, Origin::Measured, format!("median watts of {n} compute-bound points"));
        }
        let secs = |p: &Point| p.seconds.map_or(f64::NAN, |s| s.median);
        let bw = median(memory.iter().map(|p| p.min_bytes / secs(p) / self.peak_bytes).collect());
        if let Some((f, n)) = bw {
            self.efficiency.bandwidth = Figure::new(
                f.min(1.0),
                Origin::Measured,
                format!("median achieved bandwidth of {n} memory-bound decode points"),
            );
        }
        // Compute-bound GEMMs only (bf16 operands and result: 2 bytes each).
        let gemm_bytes = |g: &crate::profile::GemmPoint| 2.0 * (g.m * g.k + g.k * g.n + g.m * g.n) as f64;
        let gemm = median(
            profile
                .gemm
                .iter()
                .filter(|g| g.seconds.median > 0.0 && g.flops() / gemm_bytes(g) > ridge * 4.0)
                .map(|g| g.flops() / g.seconds.median / self.peak_flops)
                .filter(|f| f.is_finite())
                .collect(),
        );
        let fl = gemm.map(|(f, n)| (f, format!("median achieved FLOP/s of {n} GEMM points"))).or_else(|| {
            median(compute.iter().map(|p| p.flops / secs(p) / self.peak_flops).collect())
                .map(|(f, n)| (f, format!("median achieved FLOP/s of {n} compute-bound points")))
        });
        if let Some((f, basis)) = fl {
            self.efficiency.flops = Figure::new(f.min(1.0), Origin::Measured, basis);
        }
        self
    }

    /// The figures a calibration fits, in the order of [`super::calibrate::Params::to_vec`],
    /// with what each is and its scale (power figures are fractions of the board power).
    fn fitted_figures(&mut self) -> [(&mut Figure, &'static str, f64); super::calibrate::N_PARAMS] {
        let board = self.board_watts;
        [
            (&mut self.efficiency.bandwidth, "achieved bandwidth", 1.0),
            (&mut self.efficiency.flops, "achieved FLOP/s", 1.0),
            (&mut self.efficiency.step_overhead_s, "overhead per step", 1.0),
            (&mut self.efficiency.allreduce_hop_s, "all-reduce latency per ring step", 1.0),
            (&mut self.power.memory_watts, "memory-bound power", board),
            (&mut self.power.compute_watts, "compute-bound power", board),
        ]
    }

    /// `p`'s fitted figures where this machine has only assumptions (measured figures stay).
    pub fn calibrated(mut self, p: &super::calibrate::Params, label: &str) -> Machine {
        for ((f, what, scale), v) in self.fitted_figures().into_iter().zip(p.to_vec()) {
            if f.origin != Origin::Measured {
                *f = Figure::new(v * scale, Origin::Calibrated, format!("{what}, {label}"));
            }
        }
        self
    }

    /// New values for the figures [`Machine::calibrated`] set (the fit's inner loop: no
    /// relabeling, no allocation).
    pub(super) fn recalibrate(&mut self, p: &super::calibrate::Params) {
        for ((f, _, scale), v) in self.fitted_figures().into_iter().zip(p.to_vec()) {
            if f.origin == Origin::Calibrated {
                f.value = v * scale;
            }
        }
    }

    /// One GPU running `flops` at `rate` times the bf16 peak (2 for fp8 operands) and moving `bytes`.
    pub fn run(&self, flops: f64, bytes: f64, rate: f64) -> Busy {
        let tc = flops / (self.peak_flops * rate * self.efficiency.flops.value);
        let tm = bytes / (self.peak_bytes * self.efficiency.bandwidth.value);
        let t = tc.max(tm);
        if t.is_nan() || t <= 0.0 {
            return Busy { seconds: 0.0, watts: self.power.wait_watts.value };
        }
        Busy { seconds: t, watts: self.power.watts(tc / t, tm / t) }
    }

    /// The machine of a bundled datasheet, waiting at its assumed idle power.
    pub fn of_sheet(sheet: &analytical::Datasheet) -> Machine {
        Machine::analytical(
            sheet.bf16_tflops,
            sheet.hbm_gbps,
            sheet.board_watts,
            Figure::new(analytical::H100_WAIT_WATTS_ASSUMED, Origin::Assumed, analytical::WAIT_BASIS),
        )
    }
}

/// Memory-bound profile points at least this large (bytes) stand for streaming bandwidth.
const LARGE_BYTES: f64 = 64.0 * 1024.0 * 1024.0;

/// Median of the finite values and how many there were.
pub(super) fn median(mut v: Vec<f64>) -> Option<(f64, usize)> {
    v.retain(|x| x.is_finite());
    if v.is_empty() {
        return None;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    let m = if n % 2 == 1 { v[n / 2] } else { 0.5 * (v[n / 2 - 1] + v[n / 2]) };
    Some((m, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine::of_sheet(&analytical::H100_SXM)
    }

    #[test]
    fn power_spans_wait_memory_and_compute() {
        let m = machine();
        let p = &m.power;
        assert_eq!(p.watts(0.0, 0.0), p.wait_watts.value);
        assert_eq!(p.watts(0.0, 1.0), p.memory_watts.value);
        assert_eq!(p.watts(1.0, 0.0), p.compute_watts.value);
        assert_eq!(p.watts(1.0, 1.0), p.compute_watts.value);
        let hi = p.compute_watts.value.max(p.memory_watts.value);
        for i in 0..=10 {
            for j in 0..=10 {
                let w = p.watts(i as f64 / 10.0, j as f64 / 10.0);
                assert!(w >= p.wait_watts.value - 1e-9 && w <= hi + 1e-9, "{i} {j}: {w}");
            }
        }
    }

    #[test]
    fn a_step_takes_the_slower_resource_at_its_power() {
        let m = machine();
        // Memory-bound: 1 GB at 3.35 TB/s with next to no FLOPs.
        let b = m.run(1e6, 1e9, 1.0);
        assert!((b.seconds - 1e9 / 3.35e12).abs() < 1e-15);
        assert!((b.watts - m.power.memory_watts.value).abs() < 1.0);
        // Compute-bound: 1 PFLOP.
        let c = m.run(1e15, 1e6, 1.0);
        assert!((c.seconds - 1e15 / 989e12).abs() < 1e-12);
        assert!((c.watts - 700.0).abs() < 1e-6);
        // fp8 doubles the rate.
        assert!((m.run(1e15, 1e6, 2.0).seconds - c.seconds / 2.0).abs() < 1e-12);
        // Half the bandwidth: twice the time.
        let mut slow = m.clone();
        slow.efficiency.bandwidth.value = 0.5;
        assert!((slow.run(1e6, 1e9, 1.0).seconds - 2.0 * b.seconds).abs() < 1e-15);
    }

    #[test]
    fn median_of_even_and_odd() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some((2.0, 3)));
        assert_eq!(median(vec![4.0, 1.0, 2.0, 3.0]), Some((2.5, 4)));
        assert_eq!(median(vec![f64::NAN]), None);
    }
}
