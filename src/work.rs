//! Work counts in one place: FLOPs and minimum DRAM bytes of each variant for a problem. Used by
//! the counter tests, the profiler (TFLOP/s, GB/s), the roofline report and the estimator.

use crate::mask::Mask;
use crate::paged::plan::SplitPlan;
use crate::paged::{key_runs, KvDtype, PagedBatch};
use crate::problem::Problem;
use serde::{Deserialize, Serialize};

/// The attention implementations this crate measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Variant {
    /// Materialized scores: S = scale QK^T (f32, global), softmax in place, O = PV.
    Dense,
    /// Fused flash-style prefill (mask-aware tile skipping), mma.sync: the portable baseline.
    Flash,
    /// The Hopper prefill: warp-specialized, TMA and wgmma, persistent (bf16 in and out).
    FlashHopper,
    /// The Hopper prefill on e4m3 Q, K, V (per-(batch, KV head) descales), bf16 out.
    FlashHopperFp8,
    /// Split-KV decode plus combine.
    Decode,
}

impl Variant {
    pub fn name(self) -> &'static str {
        match self {
            Variant::Dense => "dense",
            Variant::Flash => "flash",
            Variant::FlashHopper => "flash-hopper",
            Variant::FlashHopperFp8 => "flash-hopper-fp8",
            Variant::Decode => "decode",
        }
    }
    pub fn parse(s: &str) -> Option<Variant> {
        match s {
            "dense" => Some(Variant::Dense),
            "flash" => Some(Variant::Flash),
            "flash-hopper" => Some(Variant::FlashHopper),
            "flash-hopper-fp8" => Some(Variant::FlashHopperFp8),
            "decode" => Some(Variant::Decode),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Work {
    /// Useful FLOPs: 4·d per visible (query, key) pair and head (QKᵀ and PV, 2 FLOPs per MAC).
    pub flops: f64,
    /// FLOPs the variant actually executes (dense computes every pair; tiles compute whole tiles).
    pub executed_flops: f64,
    /// Minimum DRAM bytes: each input byte the variant must read once, each output byte once.
    pub min_bytes: f64,
}

/// Bytes of one bf16 element.
const E: f64 = 2.0;

/// Q read + O written + LSE written, for the whole problem.
fn q_o_lse_bytes(p: &Problem) -> f64 {
    let s = &p.shape;
    2.0 * s.q_elems() as f64 * E + s.lse_elems() as f64 * 4.0
}

/// K and V bytes of keys visible to at least one query, summed over batch and KV heads.
pub fn visible_kv_bytes(p: &Problem) -> f64 {
    let s = &p.shape;
    let keys: usize = p.mask.visible_key_ranges(s.seq_q, s.seq_k).iter().map(|(a, b)| b - a).sum();
    2.0 * (s.batch * s.kv_heads * keys * s.head_dim) as f64 * E
}

/// Useful FLOPs (visible pairs only).
pub fn useful_flops(p: &Problem) -> f64 {
    let s = &p.shape;
    4.0 * s.head_dim as f64 * (s.batch * s.heads) as f64 * p.mask.visible_pairs(s.seq_q, s.seq_k) as f64
}

/// Dense materialized attention: all seq_q·seq_k pairs computed; the f32 score matrix is written
/// by the QKᵀ kernel, read and rewritten by the softmax, and read by the PV kernel.
pub fn dense(p: &Problem) -> Work {
    let s = &p.shape;
    let pairs = (s.batch * s.heads) as f64 * s.seq_q as f64 * s.seq_k as f64;
    let kv_all = 2.0 * s.kv_elems() as f64 * E;
    Work {
        flops: useful_flops(p),
        executed_flops: 4.0 * s.head_dim as f64 * pairs,
        min_bytes: q_o_lse_bytes(p) + kv_all + 4.0 * pairs * 4.0,
    }
}

/// Fused prefill with `tile_q x tile_k` tiles: Q once, visible K/V once, O and LSE once.
pub fn flash(p: &Problem, tile_q: usize, tile_k: usize) -> Work {
    let s = &p.shape;
    let (partial, full) = p.mask.tile_counts(s.seq_q, s.seq_k, tile_q, tile_k);
    Work {
        flops: useful_flops(p),
        executed_flops: 4.0
            * s.head_dim as f64
            * (s.batch * s.heads) as f64
            * ((partial + full) * (tile_q * tile_k) as u64) as f64,
        min_bytes: q_o_lse_bytes(p) + visible_kv_bytes(p),
    }
}

/// The Hopper prefill with `tile_q x tile_k` tiles and inputs of `in_bytes` per element (2: bf16;
/// 1: e4m3, plus the f32 descales): Q and the visible K/V once, O (bf16) and LSE once.
pub fn flash_hopper(p: &Problem, tile_q: usize, tile_k: usize, in_bytes: usize) -> Work {
    let s = &p.shape;
    let bf16 = flash(p, tile_q, tile_k);
    let scale = in_bytes as f64 / E;
    let descales = if in_bytes == 1 { 3.0 * 4.0 * (s.batch * s.kv_heads) as f64 } else { 0.0 };
    let q_in = s.q_elems() as f64 * E;
    Work {
        min_bytes: bf16.min_bytes - q_in - visible_kv_bytes(p) + scale * (q_in + visible_kv_bytes(p)) + descales,
        ..bf16
    }
}

/// Split-KV decode: visible K/V once, Q, O and LSE once, plus the f32 partials (O and LSE of each
/// split, written then read by the combine) when `splits > 1`.
pub fn decode(p: &Problem, splits: usize) -> Work {
    decode_kv(p, splits, KvDtype::Bf16)
}

/// [`decode`] with the cache stored as `kv`: each visible token's K and V rows cost
/// [`KvDtype::row_bytes`] per KV head (fp8: half of bf16's, plus its scales).
pub fn decode_kv(p: &Problem, splits: usize, kv: KvDtype) -> Work {
    let s = &p.shape;
    let partial =
        if splits > 1 { 2.0 * (splits * s.batch * s.heads * s.seq_q * (s.head_dim + 1)) as f64 * 4.0 } else { 0.0 };
    let kv_bytes = visible_kv_bytes(p) / (2.0 * s.head_dim as f64 * E) * 2.0 * kv.row_bytes(s.head_dim) as f64;
    let f = useful_flops(p);
    Work { flops: f, executed_flops: f, min_bytes: q_o_lse_bytes(p) + kv_bytes + partial }
}

/// The bytes of one paged decode step by where they go: the step's own minimum (each visible KV
/// byte once with its scales, Q, O, LSE) and what a split plan adds. Counter tests budget a
/// kernel against [`PagedBytes::total`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub struct PagedBytes {
    /// K and V elements of every key some row of its sequence sees, once per KV head.
    pub kv: f64,
    /// The fp8 scales of those keys (per token, KV head, K or V).
    pub kv_scales: f64,
    /// Q read, O written (bf16), LSE written (f32), once.
    pub q: f64,
    pub o: f64,
    pub lse: f64,
    /// Q rows read again by every split after a sequence's first.
    pub q_reread: f64,
    /// f32 partial O and LSE of sequences with 2 or more splits, written once and read once by
    /// the combine.
    pub partials: f64,
    /// What CTAs read to find their work: the work item (16 B), the sequence's offsets and
    /// length (16 B), one block-table entry per page holding a visible key of the CTA's tiles
    /// (block-sparse: its offsets and blocks too); the combine's split and partial offsets (12 B
    /// per merged row).
    pub metadata: f64,
}

impl PagedBytes {
    /// The step's own minimum, whatever the plan.
    pub fn step(&self) -> f64 {
        self.kv + self.kv_scales + self.q + self.o + self.lse
    }
    /// What the plan adds.
    pub fn plan(&self) -> f64 {
        self.q_reread + self.partials + self.metadata
    }
    pub fn total(&self) -> f64 {
        self.step() + self.plan()
    }
}

/// FLOPs and bytes of a paged decode step of `b` (valid) under `masks` (one per sequence)
/// split by `plan`.
pub fn paged_decode(b: &PagedBatch, masks: &[Mask], plan: &SplitPlan) -> (Work, PagedBytes) {
    let (d, h, hk) = (b.head_dim as f64, b.heads as f64, b.kv_heads as f64);
    let mut w = PagedBytes::default();
    let mut flops = 0.0;
    let rows = b.total_q() as f64 * h;
    (w.q, w.o, w.lse) = (rows * d * E, rows * d * E, rows * 4.0);
    let runs: Vec<Vec<(usize, usize)>> =
        (0..b.num_seqs()).map(|s| key_runs(&masks[s], b.new_tokens(s), b.seq_len(s))).collect();
    for s in 0..b.num_seqs() {
        let (nq, nk) = (b.new_tokens(s), b.seq_len(s));
        let keys: usize = runs[s].iter().map(|(lo, hi)| hi - lo).sum();
        w.kv += hk * keys as f64 * 2.0 * d * b.kv_dtype.elem_bytes() as f64;
        w.kv_scales += hk * keys as f64 * 2.0 * b.kv_dtype.scale_bytes() as f64;
        flops += 4.0 * d * h * masks[s].visible_pairs(nq, nk) as f64;
        let (splits, q_rows) = (plan.splits(s) as f64, nq as f64 * h);
        w.q_reread += (splits - 1.0).max(0.0) * q_rows * d * E;
        if splits >= 2.0 {
            w.partials += 2.0 * splits * q_rows * (d + 1.0) * 4.0;
        }
        if splits != 1.0 {
            w.metadata += q_rows * 12.0;
        }
    }
    for it in &plan.items {
        let s = it.seq as usize;
        // Visible keys of the item's tiles, and the distinct pages (and layout blocks) they lie in.
        let block = match &masks[s] {
            Mask::BlockSparse(l) => Some(l.block_k),
            _ => None,
        };
        let (mut pages, mut blocks) = (0usize, 0usize);
        let (mut last_page, mut last_block) = (usize::MAX, usize::MAX);
        for (a, c) in plan.item_tiles(it) {
            let (lo, hi) = (a * plan.tile_k, c * plan.tile_k);
            for &(x, y) in &runs[s] {
                let (x, y) = (x.max(lo), y.min(hi));
                if x >= y {
                    continue;
                }
                let (p0, p1) = (x / b.page_size, (y - 1) / b.page_size);
                pages += p1 - p0 + 1 - usize::from(p0 == last_page);
                last_page = p1;
                if let Some(bk) = block {
                    let (b0, b1) = (x / bk, (y - 1) / bk);
                    blocks += b1 - b0 + 1 - usize::from(b0 == last_block);
                    last_block = b1;
                }
            }
        }
        let sparse = if block.is_some() { 8.0 + 4.0 * blocks as f64 } else { 0.0 };
        w.metadata += hk * (32.0 + 4.0 * pages as f64 + sparse);
    }
    (Work { flops, executed_flops: flops, min_bytes: w.total() }, w)
}

/// Bytes the dense variant needs in device memory (inputs, outputs, the score matrix).
pub fn dense_footprint_bytes(p: &Problem) -> f64 {
    let s = &p.shape;
    q_o_lse_bytes(p)
        + 2.0 * s.kv_elems() as f64 * E
        + (s.batch * s.heads) as f64 * s.seq_q as f64 * s.seq_k as f64 * 4.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Mask, Shape};

    #[test]
    fn closed_forms() {
        let p = Problem::new(Shape::prefill(1, 1024, 8, 1, 128), Mask::None);
        assert_eq!(useful_flops(&p), 4.0 * 128.0 * 8.0 * 1024.0 * 1024.0);
        let c = Problem::new(p.shape, Mask::Causal);
        assert_eq!(useful_flops(&c), 4.0 * 128.0 * 8.0 * (1024.0 * 1025.0 / 2.0));
        // bytes: Q,O = 1024*8*128*2 each; K,V = 1024*1*128*2 each; LSE 8*1024*4
        assert_eq!(flash(&p, 128, 64).min_bytes, 2.0 * 2097152.0 + 2.0 * 262144.0 + 32768.0);
        let d = Problem::new(Shape::decode(1, 1, 32768, 8, 1, 128), Mask::causal_window(4096));
        assert_eq!(visible_kv_bytes(&d), 2.0 * 4096.0 * 128.0 * 2.0);
        // Hopper: the same FLOPs as flash over its tiles; e4m3 halves Q and K/V bytes, not O/LSE.
        assert_eq!(flash_hopper(&p, 128, 176, 2).min_bytes, flash(&p, 128, 176).min_bytes);
        let fp8 = flash_hopper(&p, 128, 128, 1);
        assert_eq!(fp8.min_bytes, 2097152.0 / 2.0 + 2097152.0 + 262144.0 + 32768.0 + 12.0);
        assert_eq!(fp8.executed_flops, flash(&p, 128, 128).executed_flops);
        for v in [Variant::Flash, Variant::FlashHopper, Variant::FlashHopperFp8, Variant::Dense, Variant::Decode] {
            assert_eq!(Variant::parse(v.name()), Some(v));
        }
    }

    #[test]
    fn fp8_halves_the_cache_plus_scales() {
        for dim in [64usize, 128] {
            let p = Problem::new(Shape::decode(2, 4, 5000, 8, 2, dim), Mask::causal_window(1000));
            let (b16, b8) = (decode_kv(&p, 3, KvDtype::Bf16), decode_kv(&p, 3, KvDtype::Fp8));
            assert_eq!(b16, decode(&p, 3));
            let kv16 = visible_kv_bytes(&p);
            // 2 x 2 x 1003 keys' rows (1000 + 3 more tokens' windows) per batch and KV head.
            assert_eq!(kv16, (2 * 2 * 1003 * 2 * dim * 2) as f64);
            let kv8 = b8.min_bytes - (b16.min_bytes - kv16);
            assert_eq!(kv8, kv16 * (dim + 2) as f64 / (2 * dim) as f64, "half, plus 2 B per row");
            assert_eq!((b8.flops, b8.executed_flops), (b16.flops, b16.executed_flops));
        }
    }

    mod paged {
        use super::*;
        use crate::mask::MaskRecipe;
        use crate::paged::plan::{plan, PlanOptions};
        use crate::paged::{Allocation, SeqSpec};

        /// A contiguous batch under a plan of one split per sequence is today's decode call.
        #[test]
        fn contiguous_single_split_is_the_decode_minimum() {
            for recipe in [MaskRecipe::Causal, MaskRecipe::None, MaskRecipe::Window { keys: 300 }] {
                let shape = Shape::decode(3, 4, 2000, 8, 2, 128);
                let p = Problem::new(shape, recipe.mask(4, 2000).unwrap());
                for kv in [KvDtype::Bf16, KvDtype::Fp8] {
                    let b = PagedBatch::contiguous(&shape, 64, kv).unwrap();
                    let masks = b.masks(&recipe).unwrap();
                    // One slot: splitting cannot help, every sequence stays whole.
                    let one = PlanOptions { sm_count: 1, ctas_per_sm: 1, ..Default::default() };
                    let pl = plan(&b, &masks, &one).unwrap();
                    assert!((0..3).all(|s| pl.splits(s) == 1));
                    let (w, bytes) = paged_decode(&b, &masks, &pl);
                    assert_eq!(bytes.step(), decode_kv(&p, 1, kv).min_bytes, "{recipe} {kv}");
                    assert_eq!(w.flops, useful_flops(&p));
                    assert_eq!((bytes.q_reread, bytes.partials), (0.0, 0.0));
                    // Each CTA: 32 B of item and offsets, and the block-table entries of its
                    // visible pages: ceil(2000 / 64) = 32 pages for causal and none.
                    let pages = match recipe {
                        MaskRecipe::Window { .. } => (2000 - 303) / 64..=1999 / 64,
                        _ => 0..=1999 / 64,
                    }
                    .count();
                    assert_eq!(bytes.metadata, 3.0 * 2.0 * (32.0 + 4.0 * pages as f64));
                }
            }
        }

        #[test]
        fn ragged_closed_form() {
            // Keys 1000 (4 new), 0 (1 new), 100000 (1 new); 8 heads on 1 KV head, d 64, fp8.
            let seqs = [
                SeqSpec { keys: 1000, new_tokens: 4 },
                SeqSpec { keys: 0, new_tokens: 1 },
                SeqSpec { keys: 100_000, new_tokens: 1 },
            ];
            let b = PagedBatch::allocate(
                8,
                1,
                64,
                16,
                KvDtype::Fp8,
                &seqs,
                Allocation { shuffle: Some(9), ..Default::default() },
            )
            .unwrap();
            let masks = b.masks(&MaskRecipe::Causal).unwrap();
            let pl = plan(&b, &masks, &PlanOptions::default()).unwrap();
            let (w, bytes) = paged_decode(&b, &masks, &pl);
            let keys = 1000.0 + 100_000.0;
            assert_eq!(bytes.kv, keys * 2.0 * 64.0);
            assert_eq!(bytes.kv_scales, keys * 2.0 * 2.0);
            assert_eq!((bytes.q, bytes.o, bytes.lse), (6.0 * 8.0 * 128.0, 6.0 * 8.0 * 128.0, 6.0 * 8.0 * 4.0));
            let (n0, n2) = (pl.splits(0) as f64, pl.splits(2) as f64);
            assert_eq!(pl.splits(1), 0);
            assert!(n2 > 1.0, "the long sequence is split");
            assert_eq!(bytes.q_reread, (n0 - 1.0) * 4.0 * 8.0 * 128.0 + (n2 - 1.0) * 8.0 * 128.0);
            let part = |n: f64, q: f64| if n >= 2.0 { 2.0 * n * q * 8.0 * 65.0 * 4.0 } else { 0.0 };
            assert_eq!(bytes.partials, part(n0, 4.0) + part(n2, 1.0));
            // Causal rows of 4 tokens: 1000 + 999 + 998 + 997 pairs; one token: 100000.
            assert_eq!(w.flops, 4.0 * 64.0 * 8.0 * (3994.0 + 100_000.0));
            // Every page of the long sequence's table is read once over its splits (they cut at
            // tile edges, 4 pages of 16 per 64-key tile), and the first sequence's.
            let pages: f64 = (63 + 6250) as f64;
            let combine = if n0 == 1.0 { 0.0 } else { 4.0 * 8.0 * 12.0 } + 8.0 * 12.0 + 8.0 * 12.0;
            assert_eq!(bytes.metadata, 32.0 * pl.items.len() as f64 + 4.0 * pages + combine);
            assert_eq!(w.min_bytes, bytes.total());
        }
    }
}
