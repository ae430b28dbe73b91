//! Attention masks: which keys each query sees.
//!
//! Alignment is bottom-right (as FlashAttention): with `off = seq_k - seq_q`, query row `i` is at
//! absolute position `i + off`. Causal: key `j` is visible when `j <= i + off`. A sliding window
//! `{left, right}` shows `i + off - left <= j <= i + off + right`, a negative bound meaning
//! unbounded on that side (FlashAttention's `window_size`). Block-sparse layouts are CSR over blocks
//! of `block_q x block_k` tokens. A row that sees no key gives O = 0 and LSE = -inf.
//!
//! A [`Mask`] is built for one `seq_q x seq_k`; a [`MaskRecipe`] names a mask with all its
//! parameters and builds it for any size (the spelling the command line, the sweep's point keys and
//! the profiles share).

mod layout;
mod recipe;

pub use layout::BlockLayout;
pub use recipe::{layout_hash, read_layout_file, LayoutFile, MaskRecipe, RecipeError, MAX_LAYOUT_BLOCKS};

use crate::error::Result;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Mask {
    None,
    Causal,
    /// FlashAttention's window_size: negative = unbounded.
    Window {
        left: i64,
        right: i64,
    },
    BlockSparse(BlockLayout),
}

/// How much of a tile a mask shows: the kernels skip `Empty` tiles and mask only `Partial` ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TileClass {
    Empty,
    Partial,
    Full,
}

impl Mask {
    /// A sliding window of `w` keys ending at the query's own position (causal sliding window).
    pub fn causal_window(w: usize) -> Mask {
        Mask::Window { left: w.saturating_sub(1) as i64, right: 0 }
    }

    pub fn name(&self) -> &'static str {
        match self {
            Mask::None => "none",
            Mask::Causal => "causal",
            Mask::Window { .. } => "window",
            Mask::BlockSparse(_) => "block_sparse",
        }
    }

    /// Checks the mask against a `seq_q x seq_k` call (a layout must cover its block grid).
    pub fn validate(&self, seq_q: usize, seq_k: usize) -> Result<()> {
        match self {
            Mask::BlockSparse(l) => l.validate(seq_q, seq_k),
            _ => Ok(()),
        }
    }

    /// The key range `[lo, hi)` a row-band mask (none, causal, window) shows query row `i`;
    /// `None` for block-sparse, whose rows are not intervals.
    pub fn key_range(&self, i: usize, seq_q: usize, seq_k: usize) -> Option<(usize, usize)> {
        let pos = i as i64 + seq_k as i64 - seq_q as i64;
        let (lo, hi) = match *self {
            Mask::None => (0, seq_k as i64),
            Mask::Causal => (0, pos + 1),
            Mask::Window { left, right } => {
                (if left < 0 { 0 } else { pos - left }, if right < 0 { seq_k as i64 } else { pos + right + 1 })
            }
            Mask::BlockSparse(_) => return None,
        };
        let lo = lo.clamp(0, seq_k as i64) as usize;
        let hi = hi.clamp(0, seq_k as i64) as usize;
        Some((lo, hi.max(lo)))
    }

    /// Is key `j` visible to query row `i`?
    pub fn visible(&self, i: usize, j: usize, seq_q: usize, seq_k: usize) -> bool {
        match self {
            Mask::BlockSparse(l) => l.contains(i / l.block_q, j / l.block_k),
            m => {
                let (lo, hi) = m.key_range(i, seq_q, seq_k).expect("row-band mask");
                lo <= j && j < hi
            }
        }
    }

    /// The keys query row `i` sees, as sorted, disjoint `[lo, hi)` runs (adjacent layout blocks
    /// merged): what a peer implementation's mask must reproduce row by row.
    pub fn row_runs(&self, i: usize, seq_q: usize, seq_k: usize) -> Vec<(usize, usize)> {
        match self {
            Mask::BlockSparse(l) => {
                let mut runs: Vec<(usize, usize)> = Vec::new();
                let r = i / l.block_q;
                for &c in if r < l.rows() { l.row(r) } else { &[] } {
                    let (lo, hi) = (c as usize * l.block_k, ((c as usize + 1) * l.block_k).min(seq_k));
                    match runs.last_mut() {
                        Some(last) if last.1 == lo => last.1 = hi,
                        _ => runs.push((lo, hi)),
                    }
                }
                runs
            }
            m => match m.key_range(i, seq_q, seq_k) {
                Some((lo, hi)) if lo < hi => vec![(lo, hi)],
                _ => vec![],
            },
        }
    }

    /// Number of visible (query, key) pairs for one (batch, head).
    pub fn visible_pairs(&self, seq_q: usize, seq_k: usize) -> u64 {
        match self {
            Mask::BlockSparse(l) => {
                let mut n = 0u64;
                for r in 0..l.rows() {
                    let rows = (seq_q.min((r + 1) * l.block_q) - r * l.block_q) as u64;
                    for &c in l.row(r) {
                        let c = c as usize;
                        n += rows * (seq_k.min((c + 1) * l.block_k) - c * l.block_k) as u64;
                    }
                }
                n
            }
            m => (0..seq_q)
                .map(|i| {
                    let (lo, hi) = m.key_range(i, seq_q, seq_k).unwrap();
                    (hi - lo) as u64
                })
                .sum(),
        }
    }

    /// Keys visible to at least one query (what a kernel must read at least once), as sorted,
    /// disjoint `[lo, hi)` ranges.
    pub fn visible_key_ranges(&self, seq_q: usize, seq_k: usize) -> Vec<(usize, usize)> {
        let mut seen = vec![false; seq_k];
        match self {
            Mask::BlockSparse(l) => {
                for &c in &l.col_idx {
                    let c = c as usize;
                    seen[c * l.block_k..seq_k.min((c + 1) * l.block_k)].iter_mut().for_each(|s| *s = true);
                }
            }
            m => {
                // Row-band ranges move monotonically with i: their union is [min lo, max hi) when
                // they overlap; windows can leave gaps only if right < -left, so mark explicitly.
                let mut last_hi = 0;
                for i in 0..seq_q {
                    let (lo, hi) = m.key_range(i, seq_q, seq_k).unwrap();
                    let from = lo.max(last_hi.min(hi));
                    seen[from.min(hi)..hi].iter_mut().for_each(|s| *s = true);
                    last_hi = last_hi.max(hi);
                }
            }
        }
        let mut out = Vec::new();
        let mut j = 0;
        while j < seq_k {
            if seen[j] {
                let s = j;
                while j < seq_k && seen[j] {
                    j += 1;
                }
                out.push((s, j));
            } else {
                j += 1;
            }
        }
        out
    }

    /// Classifies the tile of queries `[q0, q1)` x keys `[k0, k1)`.
    pub fn classify_tile(&self, q0: usize, q1: usize, k0: usize, k1: usize, seq_q: usize, seq_k: usize) -> TileClass {
        let (mut any, mut all) = (false, true);
        match self {
            // Visibility is block membership: check each block the tile overlaps, not each element.
            Mask::BlockSparse(l) => {
                for r in q0 / l.block_q..=(q1 - 1) / l.block_q {
                    for c in k0 / l.block_k..=(k1 - 1) / l.block_k {
                        let v = l.contains(r, c);
                        any |= v;
                        all &= v;
                    }
                }
            }
            m => {
                for i in q0..q1 {
                    let (lo, hi) = m.key_range(i, seq_q, seq_k).unwrap();
                    let (a, b) = (lo.max(k0), hi.min(k1));
                    any |= a < b;
                    all &= lo <= k0 && k1 <= hi;
                }
            }
        }
        if !any {
            TileClass::Empty
        } else if all {
            TileClass::Full
        } else {
            TileClass::Partial
        }
    }

    /// Tiles of `tile_q x tile_k` a mask-aware kernel visits (non-empty ones) for one (batch,
    /// head), split into (partial, full).
    pub fn tile_counts(&self, seq_q: usize, seq_k: usize, tile_q: usize, tile_k: usize) -> (u64, u64) {
        let (mut partial, mut full, mut full_runs) = (0, 0, 0u64);
        let mut tally = |class: TileClass| match class {
            TileClass::Empty => {}
            TileClass::Partial => partial += 1,
            TileClass::Full => full += 1,
        };
        let classify = |q0: usize, q1: usize, kt: usize| {
            let k0 = kt * tile_k;
            self.classify_tile(q0, q1, k0, (k0 + tile_k).min(seq_k), seq_q, seq_k)
        };
        let num_kt = seq_k.div_ceil(tile_k);
        // Only candidate tiles are classified, so that counting stays linear in the sequence
        // (a sweep plans 1M-token calls): a row band's tiles lie in [min lo, max hi), and those
        // inside [max lo, min hi) are full without looking; a layout's lie under its blocks.
        for q0 in (0..seq_q).step_by(tile_q) {
            let q1 = (q0 + tile_q).min(seq_q);
            match self {
                Mask::BlockSparse(l) => {
                    let mut kts: Vec<usize> = (q0 / l.block_q..=(q1 - 1) / l.block_q)
                        .flat_map(|r| l.row(r).iter())
                        .flat_map(|&c| {
                            let c = c as usize;
                            c * l.block_k / tile_k..=(((c + 1) * l.block_k).min(seq_k) - 1) / tile_k
                        })
                        .collect();
                    kts.sort_unstable();
                    kts.dedup();
                    kts.into_iter().for_each(|kt| tally(classify(q0, q1, kt)));
                }
                m => {
                    let (mut min_lo, mut max_lo, mut min_hi, mut max_hi) = (seq_k, 0, seq_k, 0);
                    for i in q0..q1 {
                        let (lo, hi) = m.key_range(i, seq_q, seq_k).unwrap();
                        if lo < hi {
                            (min_lo, max_hi) = (min_lo.min(lo), max_hi.max(hi));
                        }
                        (max_lo, min_hi) = (max_lo.max(lo), min_hi.min(hi));
                    }
                    if min_lo >= max_hi {
                        continue;
                    }
                    // Tiles inside [max lo, min hi) are a run of key tiles, counted without a
                    // loop (else a full plane is quadratic in tiles: minutes at 16M tokens); only
                    // the tiles either side of that run are classified.
                    let (kt_lo, kt_hi) = (min_lo / tile_k, max_hi.div_ceil(tile_k).min(num_kt));
                    let full_lo = max_lo.div_ceil(tile_k).max(kt_lo);
                    let full_hi = if min_hi >= seq_k { num_kt } else { min_hi / tile_k }.min(kt_hi);
                    let (full_lo, full_hi) = if full_lo < full_hi { (full_lo, full_hi) } else { (kt_hi, kt_hi) };
                    full_runs += (full_hi - full_lo) as u64;
                    for kt in (kt_lo..full_lo).chain(full_hi..kt_hi) {
                        tally(classify(q0, q1, kt));
                    }
                }
            }
        }
        (partial, full + full_runs)
    }

    /// The values the kernel parameter struct carries for this mask.
    pub fn kernel_window(&self) -> (i32, i32) {
        match *self {
            Mask::Causal => (-1, 0),
            Mask::Window { left, right } => {
                (left.clamp(-1, i32::MAX as i64) as i32, right.clamp(-1, i32::MAX as i64) as i32)
            }
            _ => (-1, -1),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn causal_bottom_right() {
        let m = Mask::Causal;
        // seq_q 2, seq_k 5: row 0 sees keys 0..=3, row 1 sees 0..=4
        assert_eq!(m.key_range(0, 2, 5), Some((0, 4)));
        assert_eq!(m.key_range(1, 2, 5), Some((0, 5)));
        // seq_q > seq_k: first rows see nothing
        assert_eq!(m.key_range(0, 5, 2), Some((0, 0)));
        assert_eq!(m.visible_pairs(4, 4), 10);
    }

    #[test]
    fn window_semantics() {
        let m = Mask::Window { left: 1, right: 0 };
        assert_eq!(m.key_range(3, 8, 8), Some((2, 4)));
        let wide = Mask::Window { left: 100, right: 100 };
        assert_eq!(wide.visible_pairs(7, 9), Mask::None.visible_pairs(7, 9));
        assert_eq!(
            Mask::causal_window(256).visible_pairs(1024, 1024),
            (0..1024u64).map(|i| (i + 1).min(256)).sum::<u64>()
        );
    }

    #[test]
    fn tile_counts_window_quarter() {
        let (p, f) = Mask::causal_window(256).tile_counts(1024, 1024, 64, 64);
        let (pn, fn_) = Mask::None.tile_counts(1024, 1024, 64, 64);
        assert_eq!(pn, 0);
        assert_eq!(fn_, 256);
        // each 64-row tile touches at most 5 key tiles of a 256-key window
        assert!(p + f <= 16 * 5 && p + f >= 16 * 4 - 6, "{p} {f}");
    }

    #[test]
    fn tile_counts_of_a_large_plane_are_fast() {
        // 2^17 x 2^18 tiles: counted per run, not one by one.
        let n = 1 << 24;
        assert_eq!(Mask::None.tile_counts(n, n, 128, 64), (0, (n / 128 * (n / 64)) as u64));
        let (p, f) = Mask::Causal.tile_counts(n, n, 128, 64);
        assert_eq!(p, (n / 128 * 2) as u64);
        assert_eq!(p + f, (0..n / 128).map(|r| (2 * r + 2) as u64).sum::<u64>());
    }

    /// Every tile classified, no shortcuts: the definition tile_counts must agree with.
    fn tile_counts_brute(m: &Mask, sq: usize, sk: usize, tq: usize, tk: usize) -> (u64, u64) {
        let (mut p, mut f) = (0, 0);
        for q0 in (0..sq).step_by(tq) {
            for k0 in (0..sk).step_by(tk) {
                match m.classify_tile(q0, (q0 + tq).min(sq), k0, (k0 + tk).min(sk), sq, sk) {
                    TileClass::Empty => {}
                    TileClass::Partial => p += 1,
                    TileClass::Full => f += 1,
                }
            }
        }
        (p, f)
    }

    #[test]
    fn tile_counts_match_classifying_every_tile() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..300 {
            let (sq, sk) = (rng.random_range(1..400), rng.random_range(1..400));
            let (tq, tk) = ([16, 64, 128][rng.random_range(0..3)], [32, 64][rng.random_range(0..2)]);
            let b = [1, 16, 64][rng.random_range(0..3)];
            let mask = match rng.random_range(0..5) {
                0 => Mask::None,
                1 => Mask::Causal,
                2 => Mask::Window { left: rng.random_range(-1..300), right: rng.random_range(-1..300) },
                3 => Mask::BlockSparse(BlockLayout::bigbird(sq, sk, b, 1, 1, 2, seed)),
                _ => Mask::BlockSparse(BlockLayout::from_fn(sq, sk, b, b * 2, |_, _| rng.random_bool(0.3))),
            };
            assert_eq!(
                mask.tile_counts(sq, sk, tq, tk),
                tile_counts_brute(&mask, sq, sk, tq, tk),
                "{mask:?} {sq}x{sk} tile {tq}x{tk}"
            );
        }
    }

    #[test]
    fn block_layout_validation() {
        assert!(BlockLayout::from_csr(128, 128, 64, 64, vec![0, 1, 2], vec![0, 1]).is_ok());
        assert!(BlockLayout::from_csr(128, 128, 64, 64, vec![0, 2], vec![0, 1]).is_err());
        assert!(BlockLayout::from_csr(128, 128, 64, 64, vec![0, 1, 2], vec![0, 2]).is_err());
        assert!(BlockLayout::from_csr(128, 128, 64, 64, vec![0, 2, 2], vec![1, 0]).is_err());
        let bb = BlockLayout::bigbird(1000, 1000, 64, 1, 1, 2, 7);
        assert!(bb.validate(1000, 1000).is_ok());
        assert_eq!(bb, BlockLayout::bigbird(1000, 1000, 64, 1, 1, 2, 7));
        let s = BlockLayout::strided(512, 512, 64, 1, 3);
        assert!(s.validate(512, 512).is_ok());
        assert!(!s.contains(0, 1));
    }

    #[test]
    fn bigbird_decode_row_is_global_band_and_picks() {
        // A decode row (one query at the end of the cache) by the definition: the first `global`
        // key blocks, its own block and the `local` before it, `random` blocks drawn from a
        // generator seeded with seed ^ key blocks.
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..100 {
            let (sk, block): (usize, usize) = (rng.random_range(1..5000), [16, 64, 100][rng.random_range(0..3)]);
            let (local, global, random, s): (usize, usize, usize, u64) =
                (rng.random_range(0..4), rng.random_range(0..4), rng.random_range(0..4), rng.random());
            let nk = sk.div_ceil(block);
            let mut picks = rand::rngs::StdRng::seed_from_u64(s ^ nk as u64);
            let picks: Vec<usize> = (0..random).map(|_| picks.random_range(0..nk)).collect();
            let l = BlockLayout::bigbird(1, sk, block, local, global, random, s);
            let want: Vec<i32> = (0..nk)
                .filter(|&c| c < global || nk - 1 - c <= local || nk - 1 < global || picks.contains(&c))
                .map(|c| c as i32)
                .collect();
            assert_eq!(l.row(0), &want[..], "sk {sk} block {block} local {local} global {global} random {random}");
        }
    }

    #[test]
    fn visible_key_ranges_decode_window() {
        let m = Mask::causal_window(100);
        assert_eq!(m.visible_key_ranges(1, 1000), vec![(900, 1000)]);
        assert_eq!(Mask::None.visible_key_ranges(3, 10), vec![(0, 10)]);
        let l = BlockLayout::from_csr(64, 256, 64, 64, vec![0, 2], vec![0, 2]).unwrap();
        assert_eq!(Mask::BlockSparse(l).visible_key_ranges(64, 256), vec![(0, 64), (128, 192)]);
    }

    #[test]
    fn row_runs_are_the_visible_keys() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..200 {
            let (sq, sk) = (rng.random_range(1..200), rng.random_range(1..200));
            let b = [1, 16, 64][rng.random_range(0..3)];
            let mask = match rng.random_range(0..4) {
                0 => Mask::None,
                1 => Mask::Causal,
                2 => Mask::Window { left: rng.random_range(-1..100), right: rng.random_range(-1..100) },
                _ => Mask::BlockSparse(BlockLayout::from_fn(sq, sk, b, b * 2, |_, _| rng.random_bool(0.4))),
            };
            for i in 0..sq {
                let runs = mask.row_runs(i, sq, sk);
                let want: Vec<bool> = (0..sk).map(|j| mask.visible(i, j, sq, sk)).collect();
                let mut got = vec![false; sk];
                let mut last = None;
                for &(lo, hi) in &runs {
                    assert!(lo < hi && last.is_none_or(|l| l < lo), "{mask:?} row {i}: runs {runs:?} not disjoint");
                    got[lo..hi].iter_mut().for_each(|g| *g = true);
                    last = Some(hi);
                }
                assert_eq!(got, want, "{mask:?} {sq}x{sk} row {i}");
            }
        }
    }
}
