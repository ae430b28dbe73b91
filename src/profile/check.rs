//! What a profile must satisfy to be read (and written): every number finite and in its range,
//! every shape a real attention call, prefill points square. A profile that breaks one is refused
//! with one line naming the field (`points[3].shape: heads must be at least 1`), instead of giving
//! NaN tables or energies below zero downstream.

use super::{GemmPoint, GpuInfo, Peaks, Phase, Point, PointStatus, Profile, Stat};
use crate::mask::MaskRecipe;

type Check = std::result::Result<(), String>;

fn finite(field: &str, v: f64) -> Check {
    if v.is_finite() {
        Ok(())
    } else {
        Err(format!("{field} must be a finite number, not {v}"))
    }
}

pub(super) fn non_negative(field: &str, v: f64) -> Check {
    finite(field, v)?;
    if v < 0.0 {
        return Err(format!("{field} must not be negative, got {v}"));
    }
    Ok(())
}

fn positive(field: &str, v: f64) -> Check {
    finite(field, v)?;
    if v <= 0.0 {
        return Err(format!("{field} must be positive, got {v}"));
    }
    Ok(())
}

fn opt(field: &str, v: Option<f64>, f: fn(&str, f64) -> Check) -> Check {
    v.map_or(Ok(()), |v| f(field, v))
}

/// Median, min and max of repeated measurements of a quantity that cannot be negative (seconds,
/// joules; zero happens: an energy counter too coarse for a short window).
fn stat(field: &str, s: &Stat) -> Check {
    non_negative(&format!("{field}.median"), s.median)?;
    non_negative(&format!("{field}.min"), s.min)?;
    non_negative(&format!("{field}.max"), s.max)?;
    non_negative(&format!("{field}.cv"), s.cv)?;
    if !(s.min <= s.median && s.median <= s.max) {
        return Err(format!("{field}: min {} <= median {} <= max {} does not hold", s.min, s.median, s.max));
    }
    if s.n == 0 {
        return Err(format!("{field}.n must be at least 1"));
    }
    Ok(())
}

/// Joules above idle may be negative (a window below the idle baseline); only finite.
fn signed_stat(field: &str, s: &Stat) -> Check {
    for (k, v) in [("median", s.median), ("min", s.min), ("max", s.max)] {
        finite(&format!("{field}.{k}"), v)?;
    }
    non_negative(&format!("{field}.cv"), s.cv)
}

pub(super) fn gpu(g: &GpuInfo) -> Check {
    opt("gpu.power_limit_w", g.power_limit_w, positive)?;
    opt("gpu.energy_counter_period_s", g.energy_counter_period_s, positive)?;
    if g.memory_bytes == Some(0) {
        return Err("gpu.memory_bytes must be positive".into());
    }
    if g.sm_count == Some(0) {
        return Err("gpu.sm_count must be positive".into());
    }
    Ok(())
}

fn peaks(p: &Peaks) -> Check {
    positive("peaks.bf16_tflops", p.bf16_tflops)?;
    positive("peaks.hbm_gbps", p.hbm_gbps)?;
    positive("peaks.board_watts", p.board_watts)?;
    opt("peaks.idle_watts", p.idle_watts, non_negative)
}

pub(super) fn point(p: &Point) -> Check {
    if p.variant.trim().is_empty() || p.implementation.trim().is_empty() {
        return Err("variant and implementation must be named".into());
    }
    p.shape.validate().map_err(|e| format!("shape: {}", plain(e)))?;
    let s = p.shape;
    if p.phase == Phase::Prefill && s.seq_q != s.seq_k {
        return Err(format!("shape: a prefill point has seq_q == seq_k, not {} and {}", s.seq_q, s.seq_k));
    }
    // Layout recipes are checked against the shape (cheap); a csr file is not read here.
    if !matches!(p.mask, MaskRecipe::Csr { .. }) {
        p.mask.validate(s.seq_q, s.seq_k).map_err(|e| format!("mask: {}", plain(e)))?;
    }
    non_negative("flops", p.flops)?;
    non_negative("min_bytes", p.min_bytes)?;
    if let Some(x) = &p.seconds {
        stat("seconds", x)?;
    }
    if let Some(x) = &p.joules {
        stat("joules", x)?;
    }
    if let Some(x) = &p.joules_above_idle {
        signed_stat("joules_above_idle", x)?;
    }
    opt("watts", p.watts, non_negative)?;
    if p.calls == Some(0) {
        return Err("calls must be at least 1".into());
    }
    if let PointStatus::Infeasible { need_gib, have_gib } = p.status {
        non_negative("need_gib", need_gib)?;
        non_negative("have_gib", have_gib)?;
    }
    for (k, v) in &p.ncu {
        finite(&format!("ncu.{k}"), *v)?;
    }
    if let Some(d) = &p.detail {
        opt("detail.idle_watts", d.idle_watts, non_negative)?;
        opt("detail.warmup_seconds_per_call", d.warmup_seconds_per_call, non_negative)?;
        for (k, xs) in [("rep_seconds", &d.rep_seconds), ("rep_joules", &d.rep_joules)] {
            for (i, v) in xs.iter().enumerate() {
                non_negative(&format!("detail.{k}[{i}]"), *v)?;
            }
        }
    }
    Ok(())
}

fn gemm(g: &GemmPoint) -> Check {
    for (k, v) in [("m", g.m), ("n", g.n), ("k", g.k)] {
        if v == 0 || v > i32::MAX as u64 {
            return Err(format!("{k} must be in 1..={}, got {v}", i32::MAX));
        }
    }
    stat("seconds", &g.seconds)?;
    if let Some(j) = &g.joules {
        stat("joules", j)?;
    }
    Ok(())
}

fn plain(e: crate::Error) -> String {
    match e {
        crate::Error::Invalid(m) | crate::Error::Format(m) => m,
        e => e.to_string(),
    }
}

/// Every field of `p` in range, or the first that is not, named.
pub(super) fn profile(p: &Profile) -> Check {
    gpu(&p.gpu)?;
    if let Some(x) = &p.peaks {
        peaks(x)?;
    }
    opt("idle_watts", p.idle_watts, non_negative)?;
    for (i, pt) in p.points.iter().enumerate() {
        point(pt).map_err(|e| format!("points[{i}] ({}): {e}", pt.key()))?;
    }
    for (i, g) in p.gemm.iter().enumerate() {
        gemm(g).map_err(|e| format!("gemm[{i}]: {e}"))?;
    }
    Ok(())
}
