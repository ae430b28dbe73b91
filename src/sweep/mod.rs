//! The sweep: variants × context sizes × phases, each point measured by [`protocol`] and appended
//! to a JSONL file at once ([`jsonl`]), resumable, shardable across nodes, with a JSON profile,
//! CSV and plots at the end ([`output`]). [`merge`] joins shards; [`compare`] sets two profiles
//! side by side.

pub mod backend;
pub mod budget;
pub mod compare;
pub mod coordinator;
pub mod jsonl;
pub mod merge;
pub mod ncu;
pub mod output;
pub mod pool;
pub mod protocol;
pub mod worker;

use crate::error::{invalid, Result};
use crate::mask::MaskRecipe;
use crate::paged::mix::ServingAxes;
use crate::problem::{Problem, Shape};
use crate::profile::Phase;
use crate::work::Variant;
use serde::{Deserialize, Serialize};

/// Largest K/V cache (bytes) a serving point is planned for: a TiB, several times any GPU's memory.
pub const MAX_SERVING_BYTES: f64 = (1u64 << 40) as f64;

/// L2 size assumed where the device does not say (the H100 SXM's 50 MB; the CUDA backend reads
/// the device's own): input rotation makes every set's reuse distance at least twice the L2.
pub const DEFAULT_L2_BYTES: usize = 50 * 1024 * 1024;
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// What to sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSpec {
    pub variants: Vec<Variant>,
    pub phases: Vec<Phase>,
    pub contexts: Vec<usize>,
    /// Decode: new tokens per step (seq_q), each a separate point.
    pub decode_tokens: Vec<usize>,
    pub masks: Vec<MaskRecipe>,
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Decode variant only: the serving axes of its points (KV dtype, page size, ragged mix),
    /// each a point of its own. Default: today's contiguous bf16 uniform points only; any other
    /// is enumerated only when asked for (`--kv-dtype`, `--page-size`, `--mix`).
    #[serde(default = "default_serving", skip_serializing_if = "is_default_serving")]
    pub serving: Vec<ServingAxes>,
}

fn default_serving() -> Vec<ServingAxes> {
    vec![ServingAxes::default()]
}

fn is_default_serving(v: &[ServingAxes]) -> bool {
    v == default_serving()
}

impl Default for SweepSpec {
    fn default() -> Self {
        SweepSpec {
            variants: vec![Variant::Flash, Variant::Decode, Variant::Dense],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: powers_of_two(1024, 1 << 20),
            decode_tokens: vec![1],
            masks: vec![MaskRecipe::Causal],
            batch: 1,
            heads: 8,
            kv_heads: 1,
            head_dim: 128,
            serving: default_serving(),
        }
    }
}

/// Powers of two in `[lo, hi]` (empty when there are none; never loops on huge bounds).
pub fn powers_of_two(lo: usize, hi: usize) -> Vec<usize> {
    let mut v = Vec::new();
    let mut x = lo.max(1).checked_next_power_of_two();
    while let Some(p) = x.filter(|&p| p <= hi) {
        v.push(p);
        x = p.checked_mul(2);
    }
    v
}

/// One point of a sweep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointSpec {
    pub variant: Variant,
    pub phase: Phase,
    pub mask: MaskRecipe,
    pub shape: Shape,
    /// Paged / fp8 / ragged decode (a mix point's `shape` has the mix's sequence count as
    /// batch and its longest context as seq_k).
    #[serde(default)]
    pub serving: ServingAxes,
}

impl PointSpec {
    /// The call this point measures (building its mask; a `csr` layout file is read). A serving
    /// point (paged, fp8 or ragged) is refused: the paged decode kernel does not exist yet.
    pub fn problem(&self) -> Result<Problem> {
        if !self.serving.is_default() {
            return invalid(format!(
                "no kernel yet: a paged decode point ({}) needs the serving-decode kernel (issue 18)",
                self.serving.label().trim()
            ));
        }
        Ok(Problem::new(self.shape, self.mask.mask(self.shape.seq_q, self.shape.seq_k)?))
    }
    pub fn key(&self) -> String {
        key(self.variant.name(), "attnjoule", self.phase, &self.mask, &self.shape) + &self.serving.key_suffix()
    }
    /// A serving point's step as a paged kernel would run it: the batch, the default split plan
    /// (132 SMs) and the step's bytes; what `--dry-run` shows until that kernel exists. A cache
    /// beyond [`MAX_SERVING_BYTES`] is refused before anything is allocated.
    pub fn paged_step(
        &self,
    ) -> Result<(crate::paged::PagedBatch, crate::paged::plan::SplitPlan, crate::work::PagedBytes)> {
        let bytes = self.serving.cache_bytes(&self.shape);
        if bytes > MAX_SERVING_BYTES {
            return invalid(format!(
                "a paged cache of {:.0} GiB is beyond any GPU (at most {:.0} GiB planned)",
                bytes / GIB,
                MAX_SERVING_BYTES / GIB
            ));
        }
        let b = self.serving.batch(&self.shape)?;
        let masks = b.masks(&self.mask)?;
        let plan = crate::paged::plan::plan(&b, &masks, &Default::default())?;
        let (_, bytes) = crate::work::paged_decode(&b, &masks, &plan);
        Ok((b, plan, bytes))
    }
    pub fn label(&self) -> String {
        let s = &self.shape;
        match self.phase {
            Phase::Prefill => format!("{} prefill {} ctx={}", self.variant.name(), self.mask, s.seq_k),
            Phase::Decode => format!(
                "{} decode {} ctx={} q={}{}",
                self.variant.name(),
                self.mask,
                s.seq_k,
                s.seq_q,
                self.serving.label()
            ),
        }
    }
}

pub use crate::profile::key;

/// [`crate::profile::Point::key`].
pub fn point_key(p: &crate::profile::Point) -> String {
    p.key()
}

/// Which phases a variant runs in: the flash variants are prefill-only, decode is decode-only,
/// dense both.
pub fn applies(v: Variant, phase: Phase) -> bool {
    matches!(
        (v, phase),
        (Variant::Dense, _)
            | (Variant::Flash | Variant::FlashHopper | Variant::FlashHopperFp8, Phase::Prefill)
            | (Variant::Decode, Phase::Decode)
    )
}

/// Every point of the spec, in a fixed order (phase, variant, mask, context, decode tokens), each
/// once: a value listed twice (`--ctx 64,64`) is one point, by construction (points are keyed by
/// [`PointSpec::key`]). Refused up front, before anything runs: a shape the kernels cannot run
/// (a zero, an unsupported head_dim, a context beyond their 32-bit range), a mask that does not
/// build at a point's size, and a sweep without points.
pub fn enumerate(spec: &SweepSpec) -> Result<Vec<PointSpec>> {
    if spec.heads == 0 || spec.kv_heads == 0 || !spec.heads.is_multiple_of(spec.kv_heads) {
        return invalid(format!("heads {} must be a positive multiple of kv_heads {}", spec.heads, spec.kv_heads));
    }
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for &phase in &spec.phases {
        for &variant in &spec.variants {
            if !applies(variant, phase) {
                continue;
            }
            for mask in &spec.masks {
                for &ctx in &spec.contexts {
                    let (b, h, hk, d) = (spec.batch, spec.heads, spec.kv_heads, spec.head_dim);
                    // Serving axes apply to the decode kernel; every other point is contiguous bf16.
                    let axes = match variant {
                        Variant::Decode => spec.serving.clone(),
                        _ => default_serving(),
                    };
                    let shapes: Vec<(Shape, ServingAxes)> = match phase {
                        Phase::Prefill => vec![(Shape::prefill(b, ctx, h, hk, d), ServingAxes::default())],
                        Phase::Decode => spec
                            .decode_tokens
                            .iter()
                            .filter(|&&q| q <= ctx)
                            .flat_map(|&q| {
                                axes.iter()
                                    .map(move |a| (Shape::decode(a.mix.map_or(b, |m| m.count), q, ctx, h, hk, d), *a))
                            })
                            .collect(),
                    };
                    for (shape, serving) in shapes {
                        let at = |m: String| {
                            crate::Error::Invalid(format!("{phase} point of {} queries x {ctx} keys: {m}", shape.seq_q))
                        };
                        let plain = |e: crate::Error| match e {
                            crate::Error::Invalid(m) => at(m),
                            e => e,
                        };
                        shape.validate_for_kernels().map_err(plain)?;
                        // Every point's mask must build: refused here, before anything runs.
                        mask.validate(shape.seq_q, shape.seq_k).map_err(plain)?;
                        let p = PointSpec { variant, phase, mask: mask.clone(), shape, serving };
                        if seen.insert(p.key()) {
                            out.push(p);
                        }
                    }
                }
            }
        }
    }
    if out.is_empty() {
        return invalid(format!(
            "the sweep has no points: no variant of {:?} runs in phases {:?}, or every decode token count of {:?} \
             exceeds every context of {:?}",
            spec.variants.iter().map(|v| v.name()).collect::<Vec<_>>(),
            spec.phases.iter().map(|p| p.name()).collect::<Vec<_>>(),
            spec.decode_tokens,
            spec.contexts
        ));
    }
    Ok(out)
}

/// A shard `i/n` (0 <= i < n): points whose position in the enumeration is `i` modulo `n`. Every
/// point falls in exactly one shard; interleaving balances large and small contexts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Shard {
    type Err = crate::Error;
    fn from_str(s: &str) -> Result<Shard> {
        Shard::parse(s)
    }
}

impl Shard {
    pub fn parse(s: &str) -> Result<Shard> {
        let bad = || crate::Error::Invalid(format!("shard {s:?}: expected i/n with 0 <= i < n (e.g. 0/4)"));
        let (a, b) = s.split_once('/').ok_or_else(bad)?;
        let (index, count) =
            (a.trim().parse::<usize>().map_err(|_| bad())?, b.trim().parse::<usize>().map_err(|_| bad())?);
        if count == 0 || index >= count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
    pub fn select<T: Clone>(&self, points: &[T]) -> Vec<T> {
        points.iter().enumerate().filter(|(k, _)| k % self.count == self.index).map(|(_, p)| p.clone()).collect()
    }
}

/// Whether a call needing `need` bytes fits in `free` bytes (5% kept for the driver and
/// fragmentation). Returns (need GiB, have GiB) when it does not.
pub fn infeasible(need: u128, free: u128) -> Option<(f64, f64)> {
    if need as f64 > free as f64 * 0.95 {
        Some((need as f64 / GIB, free as f64 / GIB))
    } else {
        None
    }
}

/// Input buffer sets to rotate: enough that the bytes touched between two uses of a set are at
/// least twice `l2_bytes`, at most what fits beside the shared scratch, at least one. The cap (1024) is
/// above what the smallest default point needs (decode at 1K, one KV head of 128: 0.5 MB sets,
/// 200 sets); a lower one would leave small points' inputs in L2.
pub fn buffer_sets(set_bytes: usize, footprint: usize, free: usize, l2_bytes: usize) -> usize {
    let want = (2 * l2_bytes).div_ceil(set_bytes.max(1)) + 1;
    let room = (free as f64 * 0.9) as usize;
    let fit = if footprint > room { 1 } else { 1 + (room - footprint) / set_bytes.max(1) };
    want.clamp(2, 1024).min(fit).max(1)
}

/// FNV-1a of a string: a stable per-point seed component (std's hasher is not stable).
pub fn fnv(s: &str) -> u64 {
    s.bytes().fold(0xcbf29ce484222325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100000001b3))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mask::Mask;

    #[test]
    fn default_sweep_points() {
        let pts = enumerate(&SweepSpec::default()).unwrap();
        // prefill: flash + dense over 11 contexts; decode: decode + dense over 11 contexts, 1 token
        assert_eq!(pts.len(), 44);
        assert!(pts.iter().all(|p| applies(p.variant, p.phase)));
        let keys: std::collections::HashSet<String> = pts.iter().map(|p| p.key()).collect();
        assert_eq!(keys.len(), pts.len(), "keys are unique");
    }

    #[test]
    fn shards_partition_points() {
        let pts = enumerate(&SweepSpec { decode_tokens: vec![1, 4, 16], ..Default::default() }).unwrap();
        for n in [1, 2, 3, 7, 100] {
            let mut seen = std::collections::HashMap::new();
            for i in 0..n {
                let sh = Shard::parse(&format!("{i}/{n}")).unwrap();
                for p in sh.select(&pts) {
                    *seen.entry(p.key()).or_insert(0) += 1;
                }
            }
            assert_eq!(seen.len(), pts.len(), "n={n}: every point in some shard");
            assert!(seen.values().all(|&c| c == 1), "n={n}: every point in exactly one shard");
        }
        assert!(Shard::parse("3/3").is_err() && Shard::parse("1/0").is_err() && Shard::parse("x").is_err());
    }

    #[test]
    fn huge_bounds_and_layouts() {
        assert_eq!(powers_of_two(1000, 5000), vec![1024, 2048, 4096]);
        assert!(powers_of_two(usize::MAX, usize::MAX).is_empty());
        assert_eq!(powers_of_two(1 << 62, usize::MAX), vec![1 << 62, 1 << 63]);
        let lf = |block| MaskRecipe::Longformer { block, local: 1, global: 1 };
        assert!(lf(128).validate(1 << 20, 1 << 20).is_ok());
        assert!(lf(1).validate(1 << 20, 1 << 20).is_err());
        let spec = SweepSpec { masks: vec![lf(1)], contexts: vec![1 << 20], ..Default::default() };
        assert!(enumerate(&spec).is_err());
    }

    #[test]
    fn infeasibility_and_sets() {
        // dense scores at 64K prefill, 8 heads: 8 * 64K * 64K * 4 bytes = 128 GiB
        let p = Problem::new(Shape::prefill(1, 65536, 8, 1, 128), Mask::Causal);
        let att = crate::ops::Attention::new(Variant::Dense, &p, &Default::default()).unwrap();
        let need = att.footprint_bytes() as u128;
        let (n, h) = infeasible(need, 80 << 30).expect("does not fit in 80 GiB");
        assert!(n > 128.0 && n < 130.0 && h == 80.0, "{n} {h}");
        let small = Problem::new(Shape::prefill(1, 4096, 8, 1, 128), Mask::Causal);
        let att = crate::ops::Attention::new(Variant::Dense, &small, &Default::default()).unwrap();
        assert!(infeasible(att.footprint_bytes() as u128, 80 << 30).is_none());
        // 10 MB sets: 100 MB of L2 reuse distance needs 11 sets
        assert_eq!(buffer_sets(10 << 20, 20 << 20, 80 << 30, DEFAULT_L2_BYTES), 11);
        // a device reporting a 60 MB L2 needs 13
        assert_eq!(buffer_sets(10 << 20, 20 << 20, 80 << 30, 60 << 20), 13);
        // huge sets: at least 2 when two fit, 1 when not
        assert_eq!(buffer_sets(30 << 30, 31 << 30, 80 << 30, DEFAULT_L2_BYTES), 2);
        assert_eq!(buffer_sets(30 << 30, 60 << 30, 64 << 30, DEFAULT_L2_BYTES), 1);
        // decode at 1K (K, V, Q, O of 8 heads / 1 KV head, d 128): 2x L2 needs 200 sets
        let dec = Shape::decode(1, 1, 1024, 8, 1, 128);
        let set = 4 * dec.q_elems() + 4 * dec.kv_elems() + 4 * dec.lse_elems();
        let sets = buffer_sets(set, set, 80 << 30, DEFAULT_L2_BYTES);
        assert!(
            sets * set >= 2 * DEFAULT_L2_BYTES && (sets - 2) * set < 2 * DEFAULT_L2_BYTES && sets > 64,
            "{sets} sets of {set}"
        );
    }
}
