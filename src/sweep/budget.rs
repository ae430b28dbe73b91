//! How long a sweep, or the peer script on the same points, keeps a GPU busy: estimated without
//! one, so that a run can be sized to a lease before it starts (`attnjoule gpu-run plan`).
//!
//! Each call is timed at the roofline of an analytical profile's peaks, derated by assumed
//! efficiencies; the protocol ([`super::protocol`]) then fixes the rest: warm-up calls, `reps`
//! windows of at least `min_seconds`, an idle gap before each, the buffer sets uploaded first. On
//! top come per-process costs (start, CUDA context, idle baseline, importing torch, compiling
//! FlexAttention). Every assumed figure is in [`Assumptions`] with where it comes from; a run's
//! own step times (the summary prints them next to these estimates) are what to correct them by.

use super::protocol::ProtocolConfig;
use super::{buffer_sets, PointSpec, SweepSpec};
use crate::estimate::interp::Roofline;
use crate::ops::{Attention, Options};
use crate::profile::Phase;
use crate::work::{Variant, Work};
use serde::Serialize;

/// The fixed costs and rates an estimate assumes; none is measured here.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Assumptions {
    /// Fraction of the bf16 peak an attention kernel reaches when compute-bound.
    pub compute_efficiency: f64,
    /// Fraction of the HBM bandwidth a kernel reaches when memory-bound.
    pub memory_efficiency: f64,
    /// Fraction of the bf16 peak cuBLAS reaches on large GEMMs.
    pub gemm_efficiency: f64,
    /// Launch and gap per call (seconds), on top of the roofline.
    pub launch_s: f64,
    /// Host-to-device upload rate of input buffers (pageable memory), bytes/s.
    pub upload_bytes_per_s: f64,
    /// Per measured window: synchronize, energy and clock reads (seconds).
    pub window_overhead_s: f64,
    /// Per attnjoule process: start, CUDA context, module load, NVML (seconds).
    pub process_s: f64,
    /// Per sweep: writing profile, CSV and plots (seconds).
    pub output_s: f64,
    /// `import torch` and CUDA initialization in a peer process (seconds).
    pub torch_import_s: f64,
    /// FlexAttention's first compile in a process (dynamo, inductor, Triton; seconds).
    pub flex_first_compile_s: f64,
    /// Each further FlexAttention compile (a new shape or mask recompiles; seconds).
    pub flex_compile_s: f64,
    /// An SDPA backend's first call on a new shape (cuDNN builds a graph per shape; seconds).
    pub sdpa_setup_s: f64,
}

impl Default for Assumptions {
    fn default() -> Self {
        Assumptions {
            compute_efficiency: 0.35,
            memory_efficiency: 0.6,
            gemm_efficiency: 0.8,
            launch_s: 10e-6,
            upload_bytes_per_s: 5e9,
            window_overhead_s: 0.01,
            process_s: 2.0,
            output_s: 0.5,
            torch_import_s: 8.0,
            flex_first_compile_s: 15.0,
            flex_compile_s: 5.0,
            sdpa_setup_s: 0.3,
        }
    }
}

impl Assumptions {
    /// Each figure with its source, for the dry run's printout.
    pub fn table(&self) -> Vec<(&'static str, String, &'static str)> {
        vec![
            (
                "compute-bound kernels",
                format!("{:.0}% of the bf16 peak", 100.0 * self.compute_efficiency),
                "docs/perf-prefill.md: the mma.sync (FlashAttention-2) regime, ~35% of peak",
            ),
            (
                "memory-bound kernels",
                format!("{:.0}% of HBM bandwidth", 100.0 * self.memory_efficiency),
                "assumed, below docs/perf-decode.md's 85% target (short calls do not reach it)",
            ),
            (
                "cuBLAS GEMM",
                format!("{:.0}% of the bf16 peak", 100.0 * self.gemm_efficiency),
                "the lending workplace's notes: 770-800 TFLOP/s of 989 on an H200, random data",
            ),
            ("launch and gap per call", format!("{} us", self.launch_s * 1e6), "assumed (no CUDA graphs)"),
            ("input upload", format!("{} GB/s", self.upload_bytes_per_s / 1e9), "assumed pageable host-to-device copy"),
            (
                "per measured window",
                format!("{} s", self.window_overhead_s),
                "assumed: synchronize, NVML energy and clock reads",
            ),
            (
                "attnjoule process",
                format!("{} s", self.process_s),
                "assumed: start, CUDA context and module load, NVML",
            ),
            ("sweep outputs", format!("{} s", self.output_s), "assumed: profile, CSV, SVG plots"),
            ("import torch", format!("{} s", self.torch_import_s), "assumed (a few seconds on a warm disk)"),
            (
                "FlexAttention, first compile",
                format!("{} s", self.flex_first_compile_s),
                "assumed: torch.compile of flex_attention and create_block_mask",
            ),
            (
                "FlexAttention, each further compile",
                format!("{} s", self.flex_compile_s),
                "assumed: every shape and mask recompiles (dynamic=False)",
            ),
            ("SDPA, first call on a shape", format!("{} s", self.sdpa_setup_s), "assumed (cuDNN graph build)"),
        ]
    }

    /// Seconds of one call of work `w` (executed FLOPs: masked tile corners cost time too).
    pub fn call_seconds(&self, w: &Work, roof: &Roofline) -> f64 {
        let compute = w.executed_flops.max(w.flops) / (roof.flops * self.compute_efficiency);
        let memory = w.min_bytes / (roof.bytes * self.memory_efficiency);
        compute.max(memory) + self.launch_s
    }

    /// Seconds the protocol spends on a call of `call_s` seconds: the warm-up, then `reps`
    /// windows of whole calls lasting at least `min_seconds`, each after an idle gap.
    pub fn protocol_seconds(&self, call_s: f64, p: &ProtocolConfig) -> f64 {
        let call_s = call_s.max(1e-9);
        let warm_calls = (p.warmup_max_seconds / call_s).ceil().clamp(1.0, p.warmup_calls.max(1) as f64);
        let window = (p.min_seconds / call_s).ceil().clamp(1.0, p.max_calls as f64) * call_s;
        let gap = 0.5 * (p.gap_min_s + p.gap_max_s.max(p.gap_min_s));
        warm_calls * call_s + p.reps as f64 * (gap + window + self.window_overhead_s)
    }
}

/// One point's estimate.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PointEstimate {
    pub label: String,
    /// Seconds of one call (0 when the point is infeasible or cannot be planned).
    pub call_s: f64,
    /// Allocating and uploading the input sets.
    pub setup_s: f64,
    /// Everything the point costs.
    pub total_s: f64,
    /// Why it costs (almost) nothing: infeasible, or refused at once.
    pub note: Option<String>,
}

/// A sweep's estimate: its points, its GEMM calibration, its per-process costs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SweepEstimate {
    pub points: Vec<PointEstimate>,
    pub gemm: Vec<PointEstimate>,
    pub fixed_s: f64,
    pub total_s: f64,
}

/// Bytes of one input set as the sweep allocates it (Q, K, V, O, LSE at 4 bytes per element of
/// room, see `backend`), and the bytes uploaded into it (Q, K, V in bf16).
fn set_bytes(s: &crate::Shape) -> (usize, usize) {
    (4 * s.q_elems() + 4 * s.kv_elems() + 4 * s.lse_elems(), 2 * (s.q_elems() + 2 * s.kv_elems()))
}

/// One attnjoule sweep point on a GPU with `gpu_memory` bytes free.
pub fn point(
    spec: &PointSpec,
    proto: &ProtocolConfig,
    roof: &Roofline,
    gpu_memory: usize,
    a: &Assumptions,
) -> PointEstimate {
    let label = spec.label();
    let att = match spec.problem().and_then(|p| Attention::new(spec.variant, &p, &Options::default())) {
        Ok(att) => att,
        Err(e) => return PointEstimate { label, call_s: 0.0, setup_s: 0.0, total_s: 0.0, note: Some(e.to_string()) },
    };
    let footprint = att.footprint_bytes();
    if let Some((need, have)) = super::infeasible(footprint as u128, gpu_memory as u128) {
        let note = Some(format!("infeasible: {need:.1} GiB of {have:.1}"));
        return PointEstimate { label, call_s: 0.0, setup_s: 0.0, total_s: 0.0, note };
    }
    let (set, uploaded) = set_bytes(&spec.shape);
    let sets = buffer_sets(set, footprint, gpu_memory, super::DEFAULT_L2_BYTES);
    let setup_s = (sets * uploaded) as f64 / a.upload_bytes_per_s;
    let call_s = a.call_seconds(&att.work(), roof);
    let total_s = setup_s + a.protocol_seconds(call_s, proto);
    PointEstimate { label, call_s, setup_s, total_s, note: None }
}

/// A whole `attnjoule sweep` (its points, `gemm` sizes on top) in one process.
pub fn sweep(
    points: &[PointSpec],
    gemm: &[(usize, usize, usize)],
    proto: &ProtocolConfig,
    idle_seconds: f64,
    roof: &Roofline,
    gpu_memory: usize,
    a: &Assumptions,
) -> SweepEstimate {
    let points: Vec<PointEstimate> = points.iter().map(|p| point(p, proto, roof, gpu_memory, a)).collect();
    let gemm: Vec<PointEstimate> = gemm
        .iter()
        .map(|&(m, n, k)| {
            let call_s = 2.0 * (m * n * k) as f64 / (roof.flops * a.gemm_efficiency) + a.launch_s;
            let set = 2 * (m * k + k * n + m * n);
            let setup_s = (buffer_sets(set, set, gpu_memory, super::DEFAULT_L2_BYTES) * 2 * (m * k + k * n)) as f64
                / a.upload_bytes_per_s;
            let total_s = setup_s + a.protocol_seconds(call_s, proto);
            PointEstimate { label: format!("gemm {m}x{n}x{k}"), call_s, setup_s, total_s, note: None }
        })
        .collect();
    // The idle baseline also learns the energy counter's period: at least 0.5 s (backend).
    let fixed_s = a.process_s + idle_seconds.max(0.5) + a.output_s;
    let total_s = fixed_s + points.iter().chain(&gemm).map(|p| p.total_s).sum::<f64>();
    SweepEstimate { points, gemm, fixed_s, total_s }
}

/// The peer implementations of benches/peers/torch_attention.py that the estimate knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Peer {
    /// `sdpa_flash`, `sdpa_efficient`, `sdpa_cudnn`, `sdpa_math`: no mask but none and causal.
    Sdpa,
    /// `flex`: compiled per shape and mask.
    Flex,
}

impl Peer {
    pub fn of(name: &str) -> Option<Peer> {
        match name {
            "sdpa_flash" | "sdpa_efficient" | "sdpa_cudnn" | "sdpa_math" => Some(Peer::Sdpa),
            "flex" => Some(Peer::Flex),
            _ => None,
        }
    }
}

/// The peer script run over `spec`'s phases, masks and contexts for each of `impls`, in its own
/// process (the same loop order as the script: phase, implementation, mask, context). A peer
/// call is assumed to cost what ours does (the same work counts and roofline).
pub fn peers(
    impls: &[&str],
    spec: &SweepSpec,
    proto: &ProtocolConfig,
    idle_seconds: f64,
    roof: &Roofline,
    gpu_memory: usize,
    a: &Assumptions,
) -> crate::Result<SweepEstimate> {
    let mut out = Vec::new();
    let mut compiled = false;
    for &phase in &spec.phases {
        let variant = if phase == Phase::Prefill { Variant::Flash } else { Variant::Decode };
        let ours = super::enumerate(&SweepSpec { variants: vec![variant], phases: vec![phase], ..spec.clone() })?;
        for &name in impls {
            let Some(peer) = Peer::of(name) else {
                return crate::error::invalid(format!("unknown peer implementation {name:?}"));
            };
            for p in &ours {
                let mut e = point(p, proto, roof, gpu_memory, a);
                e.label = format!("{name} {}", e.label.split_once(' ').map_or("", |x| x.1));
                let kind = p.mask.kind();
                if peer == Peer::Sdpa && !matches!(kind, "none" | "causal") {
                    // Refused before any input is made: recorded failed at once.
                    out.push(PointEstimate { note: Some(format!("{name} has no {kind} mask")), total_s: 0.0, ..e });
                    continue;
                }
                if e.note.is_some() {
                    out.push(e);
                    continue;
                }
                let extra = match peer {
                    Peer::Sdpa => a.sdpa_setup_s,
                    Peer::Flex if !compiled => a.flex_first_compile_s,
                    Peer::Flex => a.flex_compile_s,
                };
                compiled |= peer == Peer::Flex;
                // Inputs are drawn on the device: no upload.
                let total_s = extra + e.total_s - e.setup_s;
                out.push(PointEstimate { setup_s: extra, total_s, ..e });
            }
        }
    }
    let fixed_s = a.torch_import_s + idle_seconds.max(0.5);
    let total_s = fixed_s + out.iter().map(|p| p.total_s).sum::<f64>();
    Ok(SweepEstimate { points: out, gemm: vec![], fixed_s, total_s })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::MaskRecipe;
    use crate::Shape;

    const ROOF: Roofline = Roofline { flops: 989e12, bytes: 4.8e12 };

    #[test]
    fn short_calls_cost_the_windows_long_calls_cost_themselves() {
        let a = Assumptions::default();
        let p = ProtocolConfig { warmup_calls: 3, min_seconds: 0.3, reps: 3, ..Default::default() };
        // A 10 us call: 3 warm-ups, then 3 x (0.4 s mean gap + 0.3 s window + overhead).
        let short = a.protocol_seconds(10e-6, &p);
        assert!((short - (3.0 * 10e-6 + 3.0 * (0.4 + 0.3 + 0.01))).abs() < 1e-6, "{short}");
        // A 2 s call: the warm-up stops after 2 calls (3 s), then one call per window.
        let long = a.protocol_seconds(2.0, &p);
        assert!((long - (2.0 * 2.0 + 3.0 * (0.4 + 2.0 + 0.01))).abs() < 1e-9, "{long}");
    }

    #[test]
    fn calls_follow_the_roofline() {
        let a = Assumptions::default();
        let decode = PointSpec {
            variant: Variant::Decode,
            phase: Phase::Decode,
            mask: MaskRecipe::Causal,
            shape: Shape::decode(1, 1, 1 << 20, 8, 1, 128),
            serving: Default::default(),
        };
        let prefill = PointSpec {
            variant: Variant::Flash,
            phase: Phase::Prefill,
            mask: MaskRecipe::Causal,
            shape: Shape::prefill(1, 1 << 16, 8, 1, 128),
            serving: Default::default(),
        };
        let proto = ProtocolConfig::default();
        let d = point(&decode, &proto, &ROOF, 140 << 30, &a);
        // 512 MiB of K/V at 60% of 4.8 TB/s.
        let kv = (1u64 << 29) as f64 / (0.6 * 4.8e12);
        assert!(d.call_s > kv && d.call_s < 1.01 * kv + 1e-5, "{d:?}");
        let f = point(&prefill, &proto, &ROOF, 140 << 30, &a);
        // 8.8 TFLOP of causal work at 35% of 989 TFLOP/s.
        assert!(f.call_s > 0.025 && f.call_s < 0.027, "{f:?}");
        // Dense prefill at 1M needs terabytes: infeasible, free.
        let dense = PointSpec { variant: Variant::Dense, ..prefill.clone() };
        let big = PointSpec { shape: Shape::prefill(1, 1 << 20, 8, 1, 128), ..dense };
        let e = point(&big, &proto, &ROOF, 140 << 30, &a);
        assert!(e.total_s == 0.0 && e.note.as_deref().is_some_and(|n| n.starts_with("infeasible")), "{e:?}");
    }

    #[test]
    fn peers_pay_for_compiles_and_skip_what_they_refuse() {
        let a = Assumptions::default();
        let spec = SweepSpec {
            phases: vec![Phase::Prefill],
            contexts: vec![1024, 4096],
            masks: vec![MaskRecipe::Causal, MaskRecipe::Window { keys: 256 }],
            ..Default::default()
        };
        let proto = ProtocolConfig::default();
        let e = peers(&["sdpa_flash", "flex"], &spec, &proto, 1.0, &ROOF, 140 << 30, &a).unwrap();
        assert_eq!(e.points.len(), 8);
        let refused: Vec<_> = e.points.iter().filter(|p| p.total_s == 0.0).collect();
        assert_eq!(refused.len(), 2, "sdpa has no window: {refused:?}");
        let flex: Vec<f64> = e.points.iter().filter(|p| p.label.starts_with("flex")).map(|p| p.setup_s).collect();
        assert_eq!(flex, vec![15.0, 5.0, 5.0, 5.0]);
        assert!(peers(&["xformers"], &spec, &proto, 1.0, &ROOF, 140 << 30, &a).is_err());
    }
}
