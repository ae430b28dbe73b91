//! The emulator as a sweep worker: each point's call runs once on the CPU emulator, checked
//! against the f64 reference, and reports counters (no time or energy).

use super::{blank_point, failed, Worker};
use crate::device::Device;
use crate::error::{Error, Result};
use crate::ops::{Attention, Options};
use crate::profile::{GemmPoint, GpuInfo, Point, PointDetail, PointStatus, ProfileKind};
use crate::sweep::{infeasible, PointSpec};
use std::time::Instant;

pub struct EmuWorker<D: Device> {
    dev: D,
    max_bytes: usize,
}

impl<D: Device> EmuWorker<D> {
    /// Runs points on `dev` (an emulator, possibly wrapped), refusing those whose device memory
    /// exceeds `max_bytes`.
    pub fn new(dev: D, max_bytes: usize) -> Self {
        EmuWorker { dev, max_bytes }
    }
}

/// Sums counters field by field (through their JSON form, so new counter fields need no change).
fn add_counters(a: Option<crate::device::Counters>, b: &crate::device::Counters) -> Option<crate::device::Counters> {
    let Some(a) = a else { return Some(b.clone()) };
    let (mut va, vb) = (serde_json::to_value(&a).ok()?, serde_json::to_value(b).ok()?);
    if let (Some(ma), Some(mb)) = (va.as_object_mut(), vb.as_object()) {
        for (k, x) in ma.iter_mut() {
            if let (Some(p), Some(q)) = (x.as_u64(), mb.get(k).and_then(|y| y.as_u64())) {
                *x = serde_json::Value::from(p + q);
            }
        }
    }
    serde_json::from_value(va).ok()
}

impl<D: Device> Worker for EmuWorker<D> {
    fn kind(&self) -> ProfileKind {
        ProfileKind::Emulated
    }
    fn info(&self) -> GpuInfo {
        GpuInfo { name: self.dev.name(), sm_count: Some(self.dev.sm_count()), ..Default::default() }
    }
    fn idle_watts(&self) -> Option<f64> {
        None
    }
    fn point(&mut self, spec: &PointSpec, seed: u64) -> Point {
        // Decode splits follow this device's SM count (the emulator reports an H100's 132).
        let opts = Options { sm_count: Some(self.dev.sm_count() as usize), ..Default::default() };
        let problem = match spec.problem() {
            Ok(p) => p,
            Err(e) => return failed(spec, e),
        };
        let att = match Attention::new(spec.variant, &problem, &opts) {
            Ok(a) => a,
            Err(e) => return failed(spec, e),
        };
        if let Some((need_gib, have_gib)) = infeasible(att.footprint_bytes() as u128, self.max_bytes as u128) {
            return blank_point(spec, PointStatus::Infeasible { need_gib, have_gib });
        }
        let s = spec.shape;
        let q = crate::reference::random_bf16(s.q_elems(), seed);
        let k = crate::reference::random_bf16(s.kv_elems(), seed.wrapping_add(1));
        let v = crate::reference::random_bf16(s.kv_elems(), seed.wrapping_add(2));
        let t0 = Instant::now();
        match att.run_once(&self.dev, &q, &k, &v) {
            Ok((out, reports)) => {
                let mut p = blank_point(spec, PointStatus::Ok);
                p.counters = reports.iter().filter_map(|r| r.counters.as_ref()).fold(None, add_counters);
                p.calls = Some(1);
                let findings: u64 = reports.iter().map(|r| r.findings_total).sum();
                let nan = out.o.iter().filter(|x| x.is_nan()).count();
                let wall = t0.elapsed().as_secs_f64();
                // The emulated output is checked against the f64 reference: a wrong kernel is a
                // failed point, not a counter profile.
                let err = crate::reference::attention(&problem, &q, &k, &v).map(|r| {
                    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
                    crate::reference::rel_l2(&got, &r.o)
                });
                let err = match err {
                    Ok(e) => e,
                    Err(e) => return failed(spec, e),
                };
                p.note = Some(format!(
                    "emulated in {wall:.2} s wall; rel L2 vs f64 reference {err:.2e}; {findings} sanitizer findings; \
                     {nan} unwritten outputs; not measured"
                ));
                if nan > 0 || err.is_nan() || err > 1e-2 {
                    p.status = PointStatus::Failed {
                        error: format!("emulated output wrong: rel L2 {err:.2e} vs the f64 reference, {nan} unwritten"),
                    };
                }
                p.detail =
                    Some(Box::new(PointDetail { plan: Some(att.plan().description.clone()), ..Default::default() }));
                p
            }
            Err(e) => failed(spec, e),
        }
    }
    fn gemm(&mut self, _m: usize, _n: usize, _k: usize) -> Result<GemmPoint> {
        Err(Error::Invalid("GEMM calibration needs cuBLAS on a GPU".into()))
    }
}
