//! The load-balanced split-KV plan of a paged decode step: which CTA reads which key tiles of which
//! sequence, as data for the kernel ([`PagedWorkItem`]s and per-sequence offsets, layout in
//! `kernels/include/attn_paged.h`).
//!
//! Work is counted in visited key tiles (tiles of `tile_k` keys holding a key some row of the
//! sequence sees; the same for every KV head). A sequence of `T` tiles is cut into `n` splits of
//! `ceil(T / cap)` (never below `min_tiles_per_split` tiles each, never empty; sizes differ by at
//! most one tile), so a long sequence is split and a short one is not. The cap is chosen by
//! predicting the step's time: the CTAs (one per item and KV head, longest item first, as the
//! hardware dispatches a 1-D grid) are list-scheduled onto `sm_count x ctas_per_sm` slots, each
//! costing its tiles plus `item_overhead_tiles` (pipeline fill, Q load, partials). Candidates: no
//! split at all; `cap = ceil(total / slots per KV head)`; and for `w = 1..=max_waves`, the smallest
//! cap whose items fit in `w` waves (binary search: the item count only falls as the cap grows).
//! The candidate with the smallest predicted time wins (ties: fewer items).
//!
//! Host cost: O(sequences x new tokens) to find the tiles, O(candidates x sequences x log(longest))
//! for the searches and O(candidates x distinct finish times) for the predictions; measured by
//! `plan_cost_and_balance` (tests) for a 1M-token conversation beside 63 short ones and for 64
//! sequences of 40K.

use super::params::PagedWorkItem;
use super::{key_runs, tile_runs, BatchError, BatchResult, PagedBatch};
use crate::mask::Mask;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// The planner's knobs: the kernel's tile and occupancy, the split floor, the cost model.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlanOptions {
    /// Keys per visited tile.
    pub tile_k: usize,
    pub sm_count: usize,
    /// Resident CTAs per SM (the kernel's occupancy).
    pub ctas_per_sm: usize,
    /// A split reads at least this many tiles (its fixed costs stay small next to its K/V).
    pub min_tiles_per_split: usize,
    /// Fixed cost of one CTA, in tile-times (pipeline fill, Q rows, partial O written and read).
    pub item_overhead_tiles: f64,
    /// The most waves of CTAs a candidate cap aims at.
    pub max_waves: usize,
    /// Among candidates predicted within this fraction of the fastest, the one with the fewest
    /// items wins: fewer splits mean fewer partials, Q re-reads and combine rows, which the
    /// prediction prices only roughly.
    pub fewer_items_within: f64,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            tile_k: 64,
            sm_count: 132,
            ctas_per_sm: 2,
            min_tiles_per_split: 4,
            item_overhead_tiles: 1.0,
            max_waves: 8,
            fewer_items_within: 0.05,
        }
    }
}

/// A split-KV plan: the kernel's data and what the planner predicted.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPlan {
    pub tile_k: usize,
    pub kv_heads: usize,
    /// Each sequence's visited tiles, as sorted disjoint runs of tile ids.
    pub tile_runs: Vec<Vec<(usize, usize)>>,
    /// Visited tiles per sequence (per KV head).
    pub tiles: Vec<usize>,
    /// The largest split the chosen cap allows (tiles).
    pub cap: usize,
    /// One per split, longest first; CTA `c` serves item `c / kv_heads`, KV head `c % kv_heads`.
    pub items: Vec<PagedWorkItem>,
    /// `[seqs + 1]`: splits of sequence `s` = `split_offsets[s+1] - split_offsets[s]`.
    pub split_offsets: Vec<i32>,
    /// `[seqs + 1]`: first partial row of sequence `s` (0 rows unless it has 2 or more splits).
    pub partial_offsets: Vec<i32>,
    pub partial_rows: usize,
    /// Predicted step time in tile-times (list schedule of the CTAs with their overhead).
    pub makespan: f64,
    /// Lower bound of any plan: every visited tile of every KV head spread evenly over the slots,
    /// no overhead.
    pub ideal: f64,
    /// CTA slots (`sm_count x ctas_per_sm`).
    pub slots: usize,
}

impl SplitPlan {
    /// Splits of sequence `s`.
    pub fn splits(&self, s: usize) -> usize {
        (self.split_offsets[s + 1] - self.split_offsets[s]) as usize
    }
    /// CTAs of the launch.
    pub fn ctas(&self) -> usize {
        self.items.len() * self.kv_heads
    }
    /// The absolute key-tile runs an item covers (its visited-tile indices mapped through the
    /// sequence's runs).
    pub fn item_tiles(&self, it: &PagedWorkItem) -> Vec<(usize, usize)> {
        let (mut begin, mut end) = (it.tile_begin as usize, it.tile_end as usize);
        let mut out = Vec::new();
        for &(a, b) in &self.tile_runs[it.seq as usize] {
            let len = b - a;
            if begin < len && end > 0 {
                out.push((a + begin, a + end.min(len)));
            }
            begin = begin.saturating_sub(len);
            end = end.saturating_sub(len);
        }
        out
    }
    /// Tiles of the longest item, and the mean over items.
    pub fn longest_and_mean(&self) -> (usize, f64) {
        let len = |it: &PagedWorkItem| (it.tile_end - it.tile_begin) as usize;
        let longest = self.items.iter().map(len).max().unwrap_or(0);
        let total: usize = self.items.iter().map(len).sum();
        (longest, total as f64 / self.items.len().max(1) as f64)
    }
}

/// Splits of a sequence of `tiles` under `cap`: `ceil(tiles / cap)`, at most one per `min` tiles,
/// at least one (none for no tile).
fn splits_for(tiles: usize, cap: usize, min: usize) -> usize {
    if tiles == 0 {
        return 0;
    }
    tiles.div_ceil(cap).clamp(1, (tiles / min).max(1))
}

fn items_for(tiles: &[usize], cap: usize, min: usize) -> usize {
    tiles.iter().map(|&t| splits_for(t, cap, min)).sum()
}

/// Item sizes under `cap` as (tiles, items) runs, longest first: a sequence's `n` splits are
/// `T mod n` of `ceil(T / n)` tiles and the rest of `floor(T / n)`.
fn size_runs(tiles: &[usize], cap: usize, min: usize) -> Vec<(usize, usize)> {
    let mut v: Vec<(usize, usize)> = Vec::new();
    for &t in tiles {
        let n = splits_for(t, cap, min);
        if let (Some(q), Some(r)) = (t.checked_div(n), t.checked_rem(n)) {
            v.extend([(q + 1, r), (q, n - r)].into_iter().filter(|x| x.1 > 0));
        }
    }
    v.sort_unstable_by_key(|x| Reverse(x.0));
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(v.len());
    for (t, c) in v {
        match out.last_mut() {
            Some(last) if last.0 == t => last.1 += c,
            _ => out.push((t, c)),
        }
    }
    out
}

/// Predicted time (tile-times) of dispatching `kv_heads` CTAs per item, items in `runs` order,
/// each CTA to the slot that frees first (list scheduling). Slots that free at the same time are
/// interchangeable, so they are kept as (time, count) and a run of equal CTAs fills them in bulk:
/// the same schedule as one CTA at a time, in O(distinct finish times) steps.
fn predict(runs: &[(usize, usize)], kv_heads: usize, slots: usize, overhead: f64) -> f64 {
    // Finish times are non-negative finite floats, whose bit patterns order like their values.
    let mut free: BTreeMap<u64, usize> = BTreeMap::from([(0f64.to_bits(), slots.max(1))]);
    let mut end = 0f64;
    for &(t, items) in runs {
        let cost = t as f64 + overhead;
        let mut left = items * kv_heads;
        while left > 0 {
            let (&at, &count) = free.iter().next().expect("slots are never empty");
            let take = count.min(left);
            if take == count {
                free.remove(&at);
            } else {
                free.insert(at, count - take);
            }
            let done = f64::from_bits(at) + cost;
            *free.entry(done.to_bits()).or_insert(0) += take;
            end = end.max(done);
            left -= take;
        }
    }
    end
}

/// Plans a step of `batch` under `masks` (one per sequence).
pub fn plan(batch: &PagedBatch, masks: &[Mask], o: &PlanOptions) -> BatchResult<SplitPlan> {
    batch.validate()?;
    batch.check_masks(masks)?;
    if o.tile_k == 0 || o.sm_count == 0 || o.ctas_per_sm == 0 || o.min_tiles_per_split == 0 || o.max_waves == 0 {
        return Err(BatchError::Invalid(
            "plan options must be at least 1 (tile, SMs, CTAs per SM, tiles, waves)".into(),
        ));
    }
    if !(o.fewer_items_within.is_finite() && (0.0..=1.0).contains(&o.fewer_items_within)) {
        return Err(BatchError::Invalid(format!("fewer_items_within {} is not a fraction", o.fewer_items_within)));
    }
    if !(o.item_overhead_tiles.is_finite() && (0.0..=1e6).contains(&o.item_overhead_tiles)) {
        return Err(BatchError::Invalid(format!("item overhead {} tiles is not a cost", o.item_overhead_tiles)));
    }
    let n = batch.num_seqs();
    let runs: Vec<Vec<(usize, usize)>> =
        (0..n).map(|s| tile_runs(&key_runs(&masks[s], batch.new_tokens(s), batch.seq_len(s)), o.tile_k)).collect();
    let tiles: Vec<usize> = runs.iter().map(|r| r.iter().map(|(a, b)| b - a).sum()).collect();
    let total: usize = tiles.iter().sum();
    let longest = tiles.iter().copied().max().unwrap_or(0);
    let (h, min) = (batch.kv_heads, o.min_tiles_per_split);
    let slots = o.sm_count.saturating_mul(o.ctas_per_sm);
    let per_head = (slots / h).max(1);
    let top = longest.max(min);

    let mut caps = vec![top, min.max(total.div_ceil(per_head))];
    for w in 1..=o.max_waves {
        let target = w.saturating_mul(per_head);
        if items_for(&tiles, top, min) > target {
            continue;
        }
        let (mut lo, mut hi) = (min.max(total.div_ceil(target)).min(top), top);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if items_for(&tiles, mid, min) <= target {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        caps.push(lo);
    }
    caps.sort_unstable();
    caps.dedup();
    let scored: Vec<(f64, usize, usize)> = caps
        .iter()
        .map(|&cap| {
            let runs = size_runs(&tiles, cap, min);
            let items = runs.iter().map(|r| r.1).sum();
            (predict(&runs, h, slots, o.item_overhead_tiles), items, cap)
        })
        .collect();
    let fastest = scored.iter().map(|c| c.0).fold(f64::INFINITY, f64::min);
    let (makespan, _, cap) = scored
        .into_iter()
        .filter(|c| c.0 <= fastest * (1.0 + o.fewer_items_within))
        .min_by(|a, b| (a.1, a.0).partial_cmp(&(b.1, b.0)).expect("finite predictions"))
        .expect("at least one candidate");

    // The chosen cap's items, their offsets, and the partial rows of multi-split sequences.
    let mut items = Vec::new();
    let (mut split_offsets, mut partial_offsets) = (vec![0i32], vec![0i32]);
    let (mut splits_total, mut partial_rows) = (0usize, 0usize);
    for (s, &t) in tiles.iter().enumerate() {
        let k = splits_for(t, cap, min);
        let (q, r) = (t.checked_div(k).unwrap_or(0), t.checked_rem(k).unwrap_or(0));
        let mut begin = 0;
        for split in 0..k {
            let end = begin + q + usize::from(split < r);
            items.push(PagedWorkItem {
                seq: s as i32,
                split: split as i32,
                tile_begin: begin as i32,
                tile_end: end as i32,
            });
            begin = end;
        }
        splits_total += k;
        if k >= 2 {
            partial_rows = k
                .checked_mul(batch.new_tokens(s) * batch.heads)
                .and_then(|x| x.checked_add(partial_rows))
                .ok_or_else(|| BatchError::TooLarge("partial rows overflow".into()))?;
        }
        for (v, what) in [(splits_total, "splits"), (partial_rows, "partial rows")] {
            if v > i32::MAX as usize {
                return Err(BatchError::TooLarge(format!("{v} {what} beyond the kernels' 32-bit range")));
            }
        }
        split_offsets.push(splits_total as i32);
        partial_offsets.push(partial_rows as i32);
    }
    if items.len().checked_mul(h).is_none_or(|c| c > i32::MAX as usize) {
        return Err(BatchError::TooLarge(format!("{} items x {h} KV heads exceed a 1-D grid", items.len())));
    }
    // Longest first; ties in sequence and key order (deterministic).
    items.sort_by_key(|it| (Reverse(it.tile_end - it.tile_begin), it.seq, it.split));
    Ok(SplitPlan {
        tile_k: o.tile_k,
        kv_heads: h,
        tile_runs: runs,
        tiles,
        cap,
        items,
        split_offsets,
        partial_offsets,
        partial_rows,
        makespan,
        ideal: (total * h) as f64 / slots as f64,
        slots,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{Allocation, KvDtype, SeqSpec};
    use super::*;
    use crate::mask::MaskRecipe;
    use rand::{Rng, SeedableRng};

    fn batch(keys: &[usize], new_tokens: usize, heads: usize, kv_heads: usize) -> PagedBatch {
        let seqs: Vec<SeqSpec> = keys.iter().map(|&k| SeqSpec { keys: k, new_tokens }).collect();
        PagedBatch::allocate(heads, kv_heads, 128, 64, KvDtype::Bf16, &seqs, Allocation::default()).unwrap()
    }

    /// What every plan must be: each sequence's visited tiles covered exactly once, in key order,
    /// by non-empty splits that respect the floor and the cap; offsets that match the items.
    fn check(b: &PagedBatch, masks: &[Mask], p: &SplitPlan, o: &PlanOptions) {
        let n = b.num_seqs();
        let mut per: Vec<Vec<PagedWorkItem>> = vec![vec![]; n];
        for it in &p.items {
            assert!(it.tile_end > it.tile_begin, "empty split {it:?}");
            per[it.seq as usize].push(*it);
        }
        let mut partial = 0;
        for s in 0..n {
            let v = &mut per[s];
            v.sort_by_key(|it| it.split);
            assert_eq!(v.len(), p.splits(s), "seq {s}");
            let mut next = 0;
            for (k, it) in v.iter().enumerate() {
                assert_eq!((it.split as usize, it.tile_begin as usize), (k, next), "seq {s} splits in key order");
                let len = (it.tile_end - it.tile_begin) as usize;
                if v.len() > 1 {
                    assert!(len >= o.min_tiles_per_split, "seq {s}: split of {len} tiles below the floor");
                }
                assert!(len <= p.cap.max(2 * o.min_tiles_per_split - 1), "seq {s}: {len} tiles over the cap {}", p.cap);
                next = it.tile_end as usize;
            }
            assert_eq!(next, p.tiles[s], "seq {s}: every visited tile once");
            // The visited tiles are exactly those holding a key some row sees (by brute force on
            // small sequences), and the items' absolute tiles tile them.
            if b.seq_len(s) <= 600 {
                let mut want = vec![false; b.seq_len(s).div_ceil(o.tile_k)];
                for t in 0..b.new_tokens(s) {
                    for j in 0..b.seq_len(s) {
                        if masks[s].visible(t, j, b.new_tokens(s), b.seq_len(s)) {
                            want[j / o.tile_k] = true;
                        }
                    }
                }
                let mut got = vec![false; want.len()];
                for it in v.iter() {
                    for (a, c) in p.item_tiles(it) {
                        for g in &mut got[a..c] {
                            assert!(!*g, "seq {s}: tile covered twice");
                            *g = true;
                        }
                    }
                }
                assert_eq!(got, want, "seq {s}");
            }
            assert_eq!(p.partial_offsets[s] as usize, partial, "seq {s}");
            if v.len() >= 2 {
                partial += v.len() * b.new_tokens(s) * b.heads;
            }
        }
        assert_eq!((p.partial_rows, p.partial_offsets[n] as usize), (partial, partial));
        // Items longest first.
        assert!(p.items.windows(2).all(|w| w[0].tile_end - w[0].tile_begin >= w[1].tile_end - w[1].tile_begin));
        // The prediction is a list schedule: within Graham's bound of the work spread evenly.
        let costs: f64 = p.items.iter().map(|it| (it.tile_end - it.tile_begin) as f64 + o.item_overhead_tiles).sum();
        let (longest, _) = p.longest_and_mean();
        let bound = costs * p.kv_heads as f64 / p.slots as f64 + longest as f64 + o.item_overhead_tiles;
        assert!(p.makespan <= bound + 1e-6, "{} > {bound}", p.makespan);
        assert!(p.makespan + 1e-6 >= p.ideal, "{} < ideal {}", p.makespan, p.ideal);
    }

    /// A bound the fastest candidate meets because one candidate does (the chosen plan is within
    /// `fewer_items_within` of it): the cap `ceil(total / slots per KV head)` makes items of at most `max(cap, 2 floor - 1)` tiles, at most one more per
    /// sequence than `slots per KV head`, list-scheduled within Graham's bound.
    fn quality_bound(b: &PagedBatch, p: &SplitPlan, o: &PlanOptions) -> f64 {
        let total: usize = p.tiles.iter().sum();
        let per_head = (p.slots / p.kv_heads).max(1);
        let cap0 = o.min_tiles_per_split.max(total.div_ceil(per_head));
        let items = per_head + b.num_seqs();
        let item = cap0.max(2 * o.min_tiles_per_split - 1) as f64;
        (total as f64 + o.item_overhead_tiles * items as f64) * p.kv_heads as f64 / p.slots as f64
            + item
            + o.item_overhead_tiles
    }

    #[test]
    fn plan_cost_and_balance() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let o = PlanOptions::default();
        // One 1M-token conversation beside 63 short ones (64..2048 keys), model shape (8 query
        // heads on 1 KV head), causal, one new token each.
        let mut keys = vec![1 << 20];
        keys.extend((0..63).map(|_| rng.random_range(64..=2048)));
        let long = batch(&keys, 1, 8, 1);
        // 64 conversations of 40K keys.
        let even = batch(&[40_000; 64], 1, 8, 1);
        for (name, b) in [("1M + 63 short", &long), ("64 x 40K", &even)] {
            let masks = b.masks(&MaskRecipe::Causal).unwrap();
            let reps = 200;
            let t0 = std::time::Instant::now();
            let mut p = None;
            for _ in 0..reps {
                p = Some(plan(b, &masks, &o).unwrap());
            }
            let us = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
            let p = p.unwrap();
            let t0 = std::time::Instant::now();
            for _ in 0..reps {
                std::hint::black_box(b.validate()).unwrap();
            }
            let v_us = t0.elapsed().as_secs_f64() / reps as f64 * 1e6;
            check(b, &masks, &p, &o);
            let (longest, mean) = p.longest_and_mean();
            println!(
                "{name}: {} items (cap {} tiles), longest {longest} tiles = {:.2}x the mean {mean:.1}; predicted \
                 {:.1} tile-times = {:.3}x the ideal {:.1}; partial rows {}; host: plan {us:.1} us, batch \
                 validation {v_us:.1} us",
                p.items.len(),
                p.cap,
                longest as f64 / mean,
                p.makespan,
                p.makespan / p.ideal,
                p.ideal,
                p.partial_rows
            );
            assert!(longest as f64 <= 2.0 * mean, "{name}: longest split {longest} vs mean {mean}");
            assert!(p.makespan <= quality_bound(b, &p, &o) * (1.0 + o.fewer_items_within) + 1e-6);
        }
        // The long conversation is split; the short ones are not.
        let p = plan(&long, &long.masks(&MaskRecipe::Causal).unwrap(), &o).unwrap();
        assert!(p.splits(0) >= 100, "{} splits of the 1M sequence", p.splits(0));
        assert!((1..64).all(|s| p.splits(s) == 1));
        // Every SM busy: at least one CTA per slot.
        assert!(p.ctas() >= p.slots);
    }

    #[test]
    fn random_batches_plan_correctly() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for case in 0..150 {
            let n = rng.random_range(1..120);
            let seqs: Vec<SeqSpec> = (0..n)
                .map(|_| SeqSpec {
                    keys: if rng.random_bool(0.1) { 0 } else { (rng.random_range(0.0f64..18.0)).exp2() as usize },
                    new_tokens: rng.random_range(1..17),
                })
                .collect();
            let (h, hk) = [(8, 1), (8, 8), (32, 4), (16, 2)][rng.random_range(0..4)];
            let b = PagedBatch::allocate(
                h,
                hk,
                64,
                16 << rng.random_range(0..5),
                KvDtype::Fp8,
                &seqs,
                Allocation::default(),
            )
            .unwrap();
            let recipe = match rng.random_range(0..5) {
                0 => MaskRecipe::Causal,
                1 => MaskRecipe::None,
                2 => MaskRecipe::Window { keys: rng.random_range(1..5000) },
                3 => MaskRecipe::BigBird { block: 64, local: 2, global: 2, random: 3, seed: rng.random() },
                _ => MaskRecipe::Strided { block: 128, local: 1, stride: rng.random_range(1..8) },
            };
            let masks = b.masks(&recipe).unwrap();
            let o = PlanOptions {
                tile_k: [32, 64, 128][rng.random_range(0..3)],
                sm_count: rng.random_range(1..200),
                ctas_per_sm: rng.random_range(1..4),
                min_tiles_per_split: rng.random_range(1..8),
                item_overhead_tiles: rng.random_range(0.0..3.0),
                max_waves: rng.random_range(1..10),
                fewer_items_within: rng.random_range(0.0..0.2),
            };
            let p = plan(&b, &masks, &o).unwrap();
            check(&b, &masks, &p, &o);
            let bound = quality_bound(&b, &p, &o);
            let slack = 1.0 + o.fewer_items_within;
            assert!(p.makespan <= bound * slack + 1e-6, "case {case} {recipe}: {} > {bound} ({o:?})", p.makespan);
            // Never worse than not splitting at all (a candidate).
            let unsplit = {
                let longest = p.tiles.iter().copied().max().unwrap_or(0).max(o.min_tiles_per_split);
                predict(&size_runs(&p.tiles, longest, o.min_tiles_per_split), hk, p.slots, o.item_overhead_tiles)
            };
            assert!(p.makespan <= unsplit * slack + 1e-6, "case {case}");
        }
    }

    #[test]
    fn bulk_prediction_is_the_list_schedule() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..300 {
            let mut runs: Vec<(usize, usize)> =
                (0..rng.random_range(0..20)).map(|_| (rng.random_range(1..200), rng.random_range(1..50))).collect();
            runs.sort_by_key(|r| Reverse(r.0));
            let (h, slots, over) = (rng.random_range(1..5), rng.random_range(1..300), rng.random_range(0.0..2.0));
            // One CTA at a time onto the slot that frees first.
            let mut heap: std::collections::BinaryHeap<Reverse<u64>> =
                (0..slots).map(|_| Reverse(0f64.to_bits())).collect();
            let mut end = 0f64;
            for &(t, n) in &runs {
                for _ in 0..n * h {
                    let Reverse(f) = heap.pop().unwrap();
                    let done = f64::from_bits(f) + t as f64 + over;
                    end = end.max(done);
                    heap.push(Reverse(done.to_bits()));
                }
            }
            // Equal up to the order of float additions (ties broken by one ulp either way).
            let got = predict(&runs, h, slots, over);
            assert!((got - end).abs() <= 1e-12 * end.max(1.0), "{runs:?} h {h} slots {slots}: {got} vs {end}");
        }
    }

    #[test]
    fn empty_sequences_get_no_split() {
        let b = batch(&[0, 5000, 0], 3, 4, 2);
        let masks = b.masks(&MaskRecipe::Causal).unwrap();
        let p = plan(&b, &masks, &PlanOptions::default()).unwrap();
        assert_eq!((p.splits(0), p.splits(2)), (0, 0));
        assert!(p.items.iter().all(|it| it.seq == 1));
        let none = batch(&[0, 0], 1, 1, 1);
        let p = plan(&none, &none.masks(&MaskRecipe::Causal).unwrap(), &PlanOptions::default()).unwrap();
        assert!(p.items.is_empty() && p.partial_rows == 0 && p.makespan == 0.0);
        let bad = PlanOptions { sm_count: 0, ..Default::default() };
        assert!(plan(&b, &masks, &bad).is_err());
        assert!(plan(&b, &masks[1..], &PlanOptions::default()).is_err());
    }
}
