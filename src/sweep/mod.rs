//! The sweep: variants × context sizes × phases, each point measured by [`protocol`] and appended
//! to a JSONL file at once ([`jsonl`]), resumable, shardable across nodes, with a JSON profile,
//! CSV and plots at the end ([`output`]). [`merge`] joins shards; [`compare`] sets two profiles
//! side by side.

pub mod backend;
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
use crate::mask::Mask;
use crate::problem::{Problem, Shape};
use crate::profile::{MaskSpec, Phase};
use crate::work::Variant;
use serde::{Deserialize, Serialize};

/// H100 L2 size; input rotation makes every set's reuse distance at least twice this.
pub const L2_BYTES: usize = 50 * 1024 * 1024;
pub const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The mask of a sweep, as given on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaskChoice {
    None,
    Causal,
    /// Causal sliding window of this many keys.
    Window(usize),
    /// Longformer block-sparse layout (`BlockLayout::longformer`): block size, local blocks either
    /// side of the diagonal, global blocks.
    Longformer {
        block: usize,
        local: usize,
        global: usize,
    },
}

impl MaskChoice {
    /// "none", "causal", "window:4096", "longformer:128:1:1" (block:local:global).
    pub fn parse(s: &str) -> Result<MaskChoice> {
        let bad = || {
            invalid(format!("mask {s:?}: expected none, causal, window:<keys> or longformer:<block>:<local>:<global>"))
        };
        match s {
            "none" => Ok(MaskChoice::None),
            "causal" => Ok(MaskChoice::Causal),
            _ => {
                if let Some(w) = s.strip_prefix("window:") {
                    return match w.parse::<usize>() {
                        Ok(w) if w > 0 => Ok(MaskChoice::Window(w)),
                        _ => bad(),
                    };
                }
                let nums: Option<Vec<usize>> =
                    s.strip_prefix("longformer:").map(|r| r.split(':').filter_map(|x| x.parse().ok()).collect());
                match nums.as_deref() {
                    Some(&[block, local, global]) if block > 0 => Ok(MaskChoice::Longformer { block, local, global }),
                    _ => bad(),
                }
            }
        }
    }
    /// Whether this mask can be built for `seq_q x seq_k`: a longformer layout is a CSR with i32
    /// offsets whose construction visits every (block row, block column) pair, so its block grid
    /// is bounded ([`MAX_LAYOUT_BLOCKS`]); a bigger block keeps long sequences in range.
    pub fn validate(&self, seq_q: usize, seq_k: usize) -> Result<()> {
        if let MaskChoice::Longformer { block, .. } = *self {
            let (nq, nk) = (seq_q.div_ceil(block), seq_k.div_ceil(block));
            if nq.checked_mul(nk).is_none_or(|n| n > MAX_LAYOUT_BLOCKS) {
                return invalid(format!(
                    "longformer block {block} at {seq_q} x {seq_k} tokens makes {nq} x {nk} blocks (at most \
                     {MAX_LAYOUT_BLOCKS}); use a larger block"
                ));
            }
        }
        Ok(())
    }
    pub fn mask(&self, seq_q: usize, seq_k: usize) -> Mask {
        match *self {
            MaskChoice::None => Mask::None,
            MaskChoice::Causal => Mask::Causal,
            MaskChoice::Window(w) => Mask::causal_window(w),
            MaskChoice::Longformer { block, local, global } => {
                Mask::BlockSparse(crate::mask::BlockLayout::longformer(seq_q, seq_k, block, local, global))
            }
        }
    }
    pub fn spec(&self) -> MaskSpec {
        match self {
            MaskChoice::None => MaskSpec { kind: "none".into(), size: None, detail: None },
            MaskChoice::Causal => MaskSpec { kind: "causal".into(), size: None, detail: None },
            MaskChoice::Window(w) => MaskSpec { kind: "window".into(), size: Some(*w as u64), detail: None },
            // The same spelling as the peer script, so `compare` matches the points.
            MaskChoice::Longformer { block, local, global } => MaskSpec {
                kind: "block_sparse".into(),
                size: Some(*block as u64),
                detail: Some(format!("longformer local={local} global={global}")),
            },
        }
    }
}

/// Largest block grid (block rows x block columns) a layout mask is built for: 2^28 pairs take
/// about a second to enumerate; the sweep's 1M-token contexts need 2^26 at block 128.
pub const MAX_LAYOUT_BLOCKS: usize = 1 << 28;

/// What to sweep.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SweepSpec {
    pub variants: Vec<Variant>,
    pub phases: Vec<Phase>,
    pub contexts: Vec<usize>,
    /// Decode: new tokens per step (seq_q), each a separate point.
    pub decode_tokens: Vec<usize>,
    pub masks: Vec<MaskChoice>,
    pub batch: usize,
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

impl Default for SweepSpec {
    fn default() -> Self {
        SweepSpec {
            variants: vec![Variant::Flash, Variant::Decode, Variant::Dense],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: powers_of_two(1024, 1 << 20),
            decode_tokens: vec![1],
            masks: vec![MaskChoice::Causal],
            batch: 1,
            heads: 8,
            kv_heads: 1,
            head_dim: 128,
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
    pub mask: MaskChoice,
    pub shape: Shape,
}

impl PointSpec {
    pub fn problem(&self) -> Problem {
        Problem::new(self.shape, self.mask.mask(self.shape.seq_q, self.shape.seq_k))
    }
    pub fn key(&self) -> String {
        key(self.variant.name(), "attnjoule", self.phase, &self.mask.spec(), &self.shape)
    }
    pub fn label(&self) -> String {
        let s = &self.shape;
        match self.phase {
            Phase::Prefill => format!("{} prefill {} ctx={}", self.variant.name(), self.mask.spec().kind, s.seq_k),
            Phase::Decode => {
                format!("{} decode {} ctx={} q={}", self.variant.name(), self.mask.spec().kind, s.seq_k, s.seq_q)
            }
        }
    }
}

/// Identity of a point across runs, shards and profiles.
pub fn key(variant: &str, implementation: &str, phase: Phase, mask: &MaskSpec, s: &Shape) -> String {
    format!(
        "{implementation}/{variant}/{phase:?}/{}{}/b{}q{}k{}h{}kv{}d{}",
        mask.kind,
        mask.size.map(|w| format!(":{w}")).unwrap_or_default(),
        s.batch,
        s.seq_q,
        s.seq_k,
        s.heads,
        s.kv_heads,
        s.head_dim
    )
    .to_lowercase()
}

pub fn point_key(p: &crate::profile::Point) -> String {
    key(&p.variant, &p.implementation, p.phase, &p.mask, &p.shape)
}

/// Which phases a variant runs in: flash is prefill-only, decode is decode-only, dense both.
pub fn applies(v: Variant, phase: Phase) -> bool {
    matches!((v, phase), (Variant::Dense, _) | (Variant::Flash, Phase::Prefill) | (Variant::Decode, Phase::Decode))
}

/// Every point of the spec, in a fixed order (phase, variant, mask, context, decode tokens).
pub fn enumerate(spec: &SweepSpec) -> Result<Vec<PointSpec>> {
    if spec.heads == 0 || spec.kv_heads == 0 || !spec.heads.is_multiple_of(spec.kv_heads) {
        return invalid(format!("heads {} must be a positive multiple of kv_heads {}", spec.heads, spec.kv_heads));
    }
    let mut out = Vec::new();
    for &phase in &spec.phases {
        for &variant in &spec.variants {
            if !applies(variant, phase) {
                continue;
            }
            for mask in &spec.masks {
                for &ctx in &spec.contexts {
                    mask.validate(ctx, ctx)?;
                    let (b, h, hk, d) = (spec.batch, spec.heads, spec.kv_heads, spec.head_dim);
                    match phase {
                        Phase::Prefill => out.push(PointSpec {
                            variant,
                            phase,
                            mask: mask.clone(),
                            shape: Shape::prefill(b, ctx, h, hk, d),
                        }),
                        Phase::Decode => {
                            for &q in &spec.decode_tokens {
                                if q <= ctx {
                                    out.push(PointSpec {
                                        variant,
                                        phase,
                                        mask: mask.clone(),
                                        shape: Shape::decode(b, q, ctx, h, hk, d),
                                    });
                                }
                            }
                        }
                    }
                }
            }
        }
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
/// least twice L2, at most what fits beside the shared scratch, at least one. The cap (1024) is
/// above what the smallest default point needs (decode at 1K, one KV head of 128: 0.5 MB sets,
/// 200 sets); a lower one would leave small points' inputs in L2.
pub fn buffer_sets(set_bytes: usize, footprint: usize, free: usize) -> usize {
    let want = (2 * L2_BYTES).div_ceil(set_bytes.max(1)) + 1;
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
        assert_eq!(
            MaskChoice::parse("longformer:128:1:2").unwrap(),
            MaskChoice::Longformer { block: 128, local: 1, global: 2 }
        );
        assert!(MaskChoice::parse("longformer:0:1:1").is_err() && MaskChoice::parse("window:").is_err());
        assert!(Shard::parse("3/3").is_err() && Shard::parse("1/0").is_err() && Shard::parse("x").is_err());
    }

    #[test]
    fn huge_bounds_and_layouts() {
        assert_eq!(powers_of_two(1000, 5000), vec![1024, 2048, 4096]);
        assert!(powers_of_two(usize::MAX, usize::MAX).is_empty());
        assert_eq!(powers_of_two(1 << 62, usize::MAX), vec![1 << 62, 1 << 63]);
        let lf = |block| MaskChoice::Longformer { block, local: 1, global: 1 };
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
        assert_eq!(buffer_sets(10 << 20, 20 << 20, 80 << 30), 11);
        // huge sets: at least 2 when two fit, 1 when not
        assert_eq!(buffer_sets(30 << 30, 31 << 30, 80 << 30), 2);
        assert_eq!(buffer_sets(30 << 30, 60 << 30, 64 << 30), 1);
        // decode at 1K (K, V, Q, O of 8 heads / 1 KV head, d 128): 2x L2 needs 200 sets
        let dec = Shape::decode(1, 1, 1024, 8, 1, 128);
        let set = 4 * dec.q_elems() + 4 * dec.kv_elems() + 4 * dec.lse_elems();
        let sets = buffer_sets(set, set, 80 << 30);
        assert!(sets * set >= 2 * L2_BYTES && (sets - 2) * set < 2 * L2_BYTES && sets > 64, "{sets} sets of {set}");
    }
}
