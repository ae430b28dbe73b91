//! Attention time and energy from profile points: monotone (Fritsch–Carlson) cubic interpolation
//! of log seconds and log joules against log context, then scaled from the profiled kernel shape to
//! the model's per-GPU shape by the ratio of roofline times of their work counts (`crate::work`).
//! For the analytical profile the scaling is exact (its points *are* roofline times).

use crate::error::{invalid, Result};
use crate::mask::MaskRecipe;
use crate::paged::KvDtype;
use crate::problem::{Problem, Shape};
use crate::profile::{Phase, Point, PointStatus, Profile};
use crate::work::{self, Variant, Work};

/// Peak rates that turn work into roofline time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Roofline {
    /// FLOP/s (dense bf16).
    pub flops: f64,
    /// DRAM bytes/s.
    pub bytes: f64,
}

impl Roofline {
    pub fn time(&self, flops: f64, bytes: f64) -> f64 {
        (flops / self.flops).max(bytes / self.bytes)
    }
    pub fn work_time(&self, w: &Work) -> f64 {
        self.time(w.flops, w.min_bytes)
    }
}

/// Useful FLOPs and minimum bytes of `variant` on `p`, a decode's cache stored as `kv`. The
/// tiling changes only executed FLOPs, which the estimator does not use, so flash counts one whole
/// tile: tile classification then costs O(seq_q) instead of O(seq_q · seq_k / tile²).
pub fn work_of(variant: Variant, p: &Problem, kv: KvDtype) -> Work {
    match variant {
        Variant::Dense => work::dense(p),
        Variant::Flash => work::flash(p, p.shape.seq_q.max(1), p.shape.seq_k.max(1)),
        Variant::FlashHopper => work::flash_hopper(p, p.shape.seq_q.max(1), p.shape.seq_k.max(1), 2),
        Variant::FlashHopperFp8 => work::flash_hopper(p, p.shape.seq_q.max(1), p.shape.seq_k.max(1), 1),
        Variant::Decode => work::decode_kv(p, 1, kv),
    }
}

/// Monotone cubic Hermite interpolation (Fritsch & Carlson 1980) with linear extrapolation.
#[derive(Debug, Clone)]
pub struct Pchip {
    x: Vec<f64>,
    y: Vec<f64>,
    m: Vec<f64>,
}

impl Pchip {
    /// `x` strictly increasing, at least two points.
    pub fn new(x: Vec<f64>, y: Vec<f64>) -> Result<Pchip> {
        let n = x.len();
        if n < 2 || y.len() != n {
            return invalid("interpolation needs at least two points");
        }
        if x.windows(2).any(|w| w[1].partial_cmp(&w[0]) != Some(std::cmp::Ordering::Greater))
            || x.iter().chain(&y).any(|v| !v.is_finite())
        {
            return invalid("interpolation points must be finite with increasing x");
        }
        let d: Vec<f64> = (0..n - 1).map(|i| (y[i + 1] - y[i]) / (x[i + 1] - x[i])).collect();
        let mut m = vec![0.0; n];
        m[0] = d[0];
        m[n - 1] = d[n - 2];
        for i in 1..n - 1 {
            m[i] = if d[i - 1] * d[i] <= 0.0 { 0.0 } else { (d[i - 1] + d[i]) / 2.0 };
        }
        // Limit slopes so each segment stays monotone.
        for i in 0..n - 1 {
            if d[i] == 0.0 {
                m[i] = 0.0;
                m[i + 1] = 0.0;
                continue;
            }
            let (a, b) = (m[i] / d[i], m[i + 1] / d[i]);
            let s = a * a + b * b;
            if s > 9.0 {
                let t = 3.0 / s.sqrt();
                m[i] = t * a * d[i];
                m[i + 1] = t * b * d[i];
            }
        }
        Ok(Pchip { x, y, m })
    }

    pub fn range(&self) -> (f64, f64) {
        (self.x[0], self.x[self.x.len() - 1])
    }

    pub fn eval(&self, t: f64) -> f64 {
        let n = self.x.len();
        if t <= self.x[0] {
            return self.y[0] + (t - self.x[0]) * (self.y[1] - self.y[0]) / (self.x[1] - self.x[0]);
        }
        if t >= self.x[n - 1] {
            let (a, b) = (n - 2, n - 1);
            return self.y[b] + (t - self.x[b]) * (self.y[b] - self.y[a]) / (self.x[b] - self.x[a]);
        }
        let i = self.x.partition_point(|&v| v <= t) - 1;
        let h = self.x[i + 1] - self.x[i];
        let s = (t - self.x[i]) / h;
        let (s2, s3) = (s * s, s * s * s);
        (2.0 * s3 - 3.0 * s2 + 1.0) * self.y[i]
            + (s3 - 2.0 * s2 + s) * h * self.m[i]
            + (-2.0 * s3 + 3.0 * s2) * self.y[i + 1]
            + (s3 - s2) * h * self.m[i + 1]
    }
}

/// Which profile points an attention call is read from (uniform batches only: a ragged mix's
/// point is a whole server step, not one context).
#[derive(Debug, Clone, PartialEq)]
pub struct CurveKey {
    pub variant: Variant,
    pub phase: Phase,
    pub mask: MaskRecipe,
    /// The points' KV cache dtype.
    pub kv_dtype: KvDtype,
}

/// One variant/phase/mask's time and energy against context, for one profiled kernel shape.
#[derive(Debug, Clone)]
pub struct AttnCurve {
    pub key: CurveKey,
    /// The profiled shape (its seq_q/seq_k are those of the first point).
    pub shape: Shape,
    seconds: Pchip,
    joules: Pchip,
    /// Implementation the points came from.
    pub implementation: String,
    pub contexts: (usize, usize),
}

/// An attention call's cost on one GPU.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CallCost {
    pub seconds: f64,
    pub joules: f64,
    /// The context lies outside the profiled range.
    pub extrapolated: bool,
}

fn usable(p: &Point) -> bool {
    matches!(p.status, PointStatus::Ok)
        && p.seconds.is_some_and(|s| s.median > 0.0 && s.median.is_finite())
        && p.joules.is_some_and(|j| j.median > 0.0 && j.median.is_finite())
}

impl AttnCurve {
    /// The curve for `key` in `profile`: usable points of that variant, phase and mask recipe,
    /// of the implementation "attnjoule" if present, from the most common kernel shape.
    pub fn from_profile(profile: &Profile, key: &CurveKey) -> Option<AttnCurve> {
        let mut pts: Vec<&Point> = profile
            .points
            .iter()
            .filter(|p| {
                usable(p)
                    && Variant::parse(&p.variant) == Some(key.variant)
                    && p.phase == key.phase
                    && p.mask == key.mask
                    && p.serving.kv_dtype == key.kv_dtype
                    && p.serving.mix.is_none()
            })
            .collect();
        if pts.iter().any(|p| p.implementation == "attnjoule") {
            pts.retain(|p| p.implementation == "attnjoule");
        }
        // The most common (batch, heads, kv_heads, head_dim, seq_q-if-decode, page size) shape.
        let sig = |p: &Point| {
            let s = p.shape;
            let q = if key.phase == Phase::Decode { s.seq_q } else { 0 };
            (s.batch, s.heads, s.kv_heads, s.head_dim, q, p.serving.page_size)
        };
        let mut counts = std::collections::BTreeMap::new();
        for p in &pts {
            *counts.entry(sig(p)).or_insert(0usize) += 1;
        }
        let best = counts.iter().max_by_key(|(k, n)| (**n, std::cmp::Reverse(**k)))?.0;
        pts.retain(|p| sig(p) == *best);
        pts.sort_by_key(|p| p.context());
        pts.dedup_by_key(|p| p.context());
        if pts.len() < 2 {
            return None;
        }
        let lx: Vec<f64> = pts.iter().map(|p| (p.context() as f64).ln()).collect();
        let ls: Vec<f64> = pts.iter().map(|p| p.seconds.unwrap().median.ln()).collect();
        let lj: Vec<f64> = pts.iter().map(|p| p.joules.unwrap().median.ln()).collect();
        Some(AttnCurve {
            key: key.clone(),
            shape: pts[0].shape,
            seconds: Pchip::new(lx.clone(), ls).ok()?,
            joules: Pchip::new(lx, lj).ok()?,
            implementation: pts[0].implementation.clone(),
            contexts: (pts[0].context(), pts[pts.len() - 1].context()),
        })
    }

    /// The profiled kernel's own problem at `seq_k` keys (prefill points are square).
    pub fn profiled_problem(&self, seq_k: usize) -> Option<Problem> {
        let mut s = self.shape;
        s.seq_k = seq_k;
        s.seq_q = if self.key.phase == Phase::Prefill { seq_k } else { s.seq_q.min(seq_k) };
        Some(Problem::new(s, self.key.mask.mask(s.seq_q, s.seq_k).ok()?))
    }

    /// Cost of the model's call `p` (per GPU, its cache stored as `kv`), read at context
    /// `p.shape.seq_k`: the curve's value times the ratio of the roofline times of the two calls'
    /// work, so a call in another KV dtype than the curve's points is costed by its bytes.
    pub fn cost(&self, p: &Problem, kv: KvDtype, roof: &Roofline) -> Result<CallCost> {
        let c = p.shape.seq_k;
        let Some(prof) = self.profiled_problem(c) else {
            return invalid(format!("cannot rebuild profile mask {}", self.key.mask));
        };
        let v = self.key.variant;
        let ratio = roof.work_time(&work_of(v, p, kv)) / roof.work_time(&work_of(v, &prof, self.key.kv_dtype));
        let lc = (c as f64).ln();
        let (lo, hi) = self.seconds.range();
        Ok(CallCost {
            seconds: self.seconds.eval(lc).exp() * ratio,
            joules: self.joules.eval(lc).exp() * ratio,
            extrapolated: lc < lo - 1e-9 || lc > hi + 1e-9,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pchip_is_monotone_and_exact_at_knots() {
        let x = vec![0.0, 1.0, 2.0, 3.0, 4.0];
        let y = vec![0.0, 0.1, 3.0, 3.05, 7.0];
        let p = Pchip::new(x.clone(), y.clone()).unwrap();
        for (a, b) in x.iter().zip(&y) {
            assert!((p.eval(*a) - b).abs() < 1e-12);
        }
        let mut last = f64::NEG_INFINITY;
        for i in 0..=400 {
            let v = p.eval(i as f64 / 100.0);
            assert!(v >= last - 1e-12, "not monotone at {i}");
            last = v;
        }
        // Linear extrapolation with the end segments' slopes.
        assert!((p.eval(5.0) - (7.0 + 3.95)).abs() < 1e-12);
        assert!((p.eval(-1.0) - (-0.1)).abs() < 1e-12);
        assert!(Pchip::new(vec![1.0, 1.0], vec![0.0, 1.0]).is_err());
        assert!(Pchip::new(vec![1.0], vec![0.0]).is_err());
    }

    #[test]
    fn pchip_reproduces_power_laws_in_log_space() {
        let x: Vec<f64> = (10..=20).map(|k| (2f64).powi(k).ln()).collect();
        let y: Vec<f64> = x.iter().map(|l| 2.0 * l + 0.5).collect();
        let p = Pchip::new(x, y).unwrap();
        let t = (3000f64).ln();
        assert!((p.eval(t) - (2.0 * t + 0.5)).abs() < 1e-12);
    }

    #[test]
    fn block_sparse_decode_row_sees_a_bounded_number_of_keys() {
        let r = crate::estimate::BLOCK_SPARSE_DEFAULT;
        for n in [4096usize, 65536, 1 << 20] {
            let m = r.mask(1, n).unwrap();
            let keys = m.visible_pairs(1, n);
            // 2 global + 3 band blocks, up to 3 random ones: 5..=8 blocks of 64.
            assert!((5 * 64 - 64..=8 * 64).contains(&keys), "{n}: {keys}");
            assert!(m.visible(0, n - 1, 1, n), "the newest key is visible");
            assert!(m.visible(0, 0, 1, n), "global blocks are visible");
        }
    }
}
