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

    /// A row-band mask as `(lo, hi)` shifts from the row's absolute position `pos`: row `pos`
    /// sees `[clamp(pos + lo), clamp(pos + hi))` (clamped to `[0, seq_k]`; `None` = unbounded on
    /// that side); `None` for block-sparse.
    fn band(&self) -> Option<(Option<i128>, Option<i128>)> {
        match *self {
            Mask::None => Some((None, None)),
            Mask::Causal => Some((None, Some(1))),
            Mask::Window { left, right } => {
                Some(((left >= 0).then_some(-(left as i128)), (right >= 0).then_some(right as i128 + 1)))
            }
            Mask::BlockSparse(_) => None,
        }
    }

    /// The key range `[lo, hi)` a row-band mask (none, causal, window) shows query row `i`;
    /// `None` for block-sparse, whose rows are not intervals. Computed in 128 bits: any sizes,
    /// no overflow.
    pub fn key_range(&self, i: usize, seq_q: usize, seq_k: usize) -> Option<(usize, usize)> {
        let (lo, hi) = self.band()?;
        let k = seq_k as i128;
        let pos = i as i128 + k - seq_q as i128;
        let lo = lo.map_or(0, |c| (pos + c).clamp(0, k)) as usize;
        let hi = hi.map_or(k, |c| (pos + c).clamp(0, k)) as usize;
        Some((lo, hi.max(lo)))
    }

    /// A row-band mask's first row that sees any key: every later row sees some too (rows see
    /// `[pos - left, pos + right + 1)`, and only a row before the first key, `pos < -right`,
    /// sees none). `None` when no row does (or for block-sparse).
    fn first_seeing_row(&self, seq_q: usize, seq_k: usize) -> Option<usize> {
        let (_, hi) = self.band()?;
        if seq_q == 0 || seq_k == 0 {
            return None;
        }
        let off = seq_k as i128 - seq_q as i128;
        // pos + hi > 0 <=> i > -hi - off
        let first = hi.map_or(0, |c| (1 - c - off).max(0));
        (first < seq_q as i128).then_some(first as usize)
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

    /// Number of visible (query, key) pairs for one (batch, head). Row-band masks in closed form
    /// (no loop over rows: the estimator asks at billions of tokens).
    pub fn visible_pairs(&self, seq_q: usize, seq_k: usize) -> u64 {
        match self {
            Mask::BlockSparse(l) => {
                let mut n = 0u64;
                for r in 0..l.rows() {
                    let rows = seq_q.min((r + 1) * l.block_q).saturating_sub(r * l.block_q) as u64;
                    for &c in l.row(r) {
                        let c = c as usize;
                        n += rows * seq_k.min((c + 1) * l.block_k).saturating_sub(c * l.block_k) as u64;
                    }
                }
                n
            }
            m => {
                let (Some(first), Some((lo, hi))) = (m.first_seeing_row(seq_q, seq_k), m.band()) else { return 0 };
                let k = seq_k as i128;
                let off = k - seq_q as i128;
                // Rows first.. all see [clamp(pos + lo), clamp(pos + hi)) with lo < hi.
                let (a, b) = (first as i128 + off, seq_q as i128 - 1 + off);
                let sum = |shift: Option<i128>, unbounded: i128| match shift {
                    Some(c) => sum_clamped(a, b, c, k),
                    None => (b - a + 1) * unbounded,
                };
                (sum(hi, k) - sum(lo, 0)) as u64
            }
        }
    }

    /// Keys visible to at least one query (what a kernel must read at least once), as sorted,
    /// disjoint `[lo, hi)` ranges. Memory and time follow the ranges, not the sequence.
    pub fn visible_key_ranges(&self, seq_q: usize, seq_k: usize) -> Vec<(usize, usize)> {
        match self {
            Mask::BlockSparse(l) => {
                let mut cols: Vec<usize> = l.col_idx.iter().map(|&c| c.max(0) as usize).collect();
                cols.sort_unstable();
                cols.dedup();
                let mut out: Vec<(usize, usize)> = Vec::new();
                for c in cols {
                    let (lo, hi) = (c.saturating_mul(l.block_k), seq_k.min((c + 1).saturating_mul(l.block_k)));
                    if lo >= hi {
                        continue;
                    }
                    match out.last_mut() {
                        Some(last) if last.1 == lo => last.1 = hi,
                        _ => out.push((lo, hi)),
                    }
                }
                out
            }
            // Row-band rows move monotonically and each moves by at most one key per row, so the
            // rows that see keys cover one run: from the first such row's start to the last row's end.
            m => match m.first_seeing_row(seq_q, seq_k) {
                Some(first) => {
                    let (lo, _) = m.key_range(first, seq_q, seq_k).expect("row band");
                    let (_, hi) = m.key_range(seq_q - 1, seq_q, seq_k).expect("row band");
                    vec![(lo, hi)]
                }
                None => vec![],
            },
        }
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
            // A band in O(1) (see tile_counts): the rows from the first that sees keys cover one
            // run of keys, and every row covers [lo(last row), hi(first row)).
            m => {
                let range = |i| m.key_range(i, seq_q, seq_k).expect("row band");
                if let Some(f) = m.first_seeing_row(seq_q, seq_k).map(|f| f.max(q0)).filter(|&f| f < q1) {
                    let ((lo, _), (last_lo, last_hi), (_, first_hi)) = (range(f), range(q1 - 1), range(q0));
                    any = lo < k1 && last_hi > k0;
                    all = last_lo <= k0 && k1 <= first_hi;
                } else {
                    any = false;
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
        let (mut partial, mut full, mut full_runs, mut partial_runs) = (0, 0, 0u64, 0u64);
        let first = self.first_seeing_row(seq_q, seq_k);
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
        // Counting stays linear in the row tiles (a sweep plans 1M-token calls, the estimator
        // asks at more): a layout's candidate tiles lie under its blocks and are classified; a
        // row band's are counted per row tile in O(1).
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
                    // Rows of a band move monotonically (lo and hi never decrease), and the rows
                    // that see keys are the tile's rows from `first` on; their keys form one run
                    // [lo(f), hi(last)) (see visible_key_ranges). A key tile is full when every
                    // row of the tile, an empty one included, sees it whole: it lies in
                    // [lo(last), hi(q0)). So each row tile is counted in O(1): the estimator
                    // asks at millions of tokens.
                    let Some(f) = first.map(|f| f.max(q0)).filter(|&f| f < q1) else { continue };
                    let range = |i| m.key_range(i, seq_q, seq_k).expect("row band");
                    let ((min_lo, _), (max_lo, max_hi), (_, min_hi)) = (range(f), range(q1 - 1), range(q0));
                    let (kt_lo, kt_hi) = (min_lo / tile_k, max_hi.div_ceil(tile_k).min(num_kt));
                    let full_lo = max_lo.div_ceil(tile_k).max(kt_lo);
                    let full_hi = if min_hi >= seq_k { num_kt } else { min_hi / tile_k }.min(kt_hi);
                    let full_n = full_hi.saturating_sub(full_lo);
                    full_runs += full_n as u64;
                    partial_runs += (kt_hi - kt_lo - full_n) as u64;
                }
            }
        }
        (partial + partial_runs, full + full_runs)
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

/// `sum_{x=a}^{b} clamp(x + c, 0, k)` (0 when `a > b`), in closed form.
fn sum_clamped(a: i128, b: i128, c: i128, k: i128) -> i128 {
    if a > b {
        return 0;
    }
    // x + c rises through [0, k] for x in [-c, k - c]; below it adds 0, above it adds k.
    let (lin_lo, lin_hi) = (a.max(-c), b.min(k - c));
    let mut s = 0;
    if lin_lo <= lin_hi {
        s += (lin_hi - lin_lo + 1) * (lin_lo + c + lin_hi + c) / 2;
    }
    let top = a.max(k - c + 1);
    if top <= b {
        s += (b - top + 1) * k;
    }
    s
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
    fn classify_tile_matches_every_element() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..3000 {
            let (sq, sk) = (rng.random_range(1..120), rng.random_range(1..120));
            let mask = match rng.random_range(0..4) {
                0 => Mask::None,
                1 => Mask::Causal,
                _ => Mask::Window { left: rng.random_range(-2..130), right: rng.random_range(-2..130) },
            };
            let (q0, k0) = (rng.random_range(0..sq), rng.random_range(0..sk));
            let (q1, k1) = (rng.random_range(q0 + 1..=sq), rng.random_range(k0 + 1..=sk));
            let seen: Vec<bool> =
                (q0..q1).flat_map(|i| (k0..k1).map(move |j| (i, j))).map(|(i, j)| mask.visible(i, j, sq, sk)).collect();
            let want = if !seen.iter().any(|&v| v) {
                TileClass::Empty
            } else if seen.iter().all(|&v| v) {
                TileClass::Full
            } else {
                TileClass::Partial
            };
            assert_eq!(mask.classify_tile(q0, q1, k0, k1, sq, sk), want, "{mask:?} {sq}x{sk} [{q0},{q1})x[{k0},{k1})");
        }
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

    /// The definitions, row by row and key by key: what the closed forms must agree with.
    fn pairs_and_keys_brute(m: &Mask, sq: usize, sk: usize) -> (u64, Vec<(usize, usize)>) {
        let mut seen = vec![false; sk];
        let mut pairs = 0;
        for i in 0..sq {
            for (j, s) in seen.iter_mut().enumerate() {
                if m.visible(i, j, sq, sk) {
                    pairs += 1;
                    *s = true;
                }
            }
        }
        let mut runs: Vec<(usize, usize)> = Vec::new();
        for (j, _) in seen.iter().enumerate().filter(|(_, s)| **s) {
            match runs.last_mut() {
                Some(r) if r.1 == j => r.1 = j + 1,
                _ => runs.push((j, j + 1)),
            }
        }
        (pairs, runs)
    }

    #[test]
    fn closed_form_pairs_and_keys_match_the_definition() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..600 {
            let (sq, sk) = (rng.random_range(1..150), rng.random_range(1..150));
            let b = [1, 16, 64][rng.random_range(0..3)];
            let mask = match rng.random_range(0..5) {
                0 => Mask::None,
                1 => Mask::Causal,
                2 | 3 => Mask::Window { left: rng.random_range(-2..160), right: rng.random_range(-2..160) },
                _ => Mask::BlockSparse(BlockLayout::from_fn(sq, sk, b, b * 2, |_, _| rng.random_bool(0.3))),
            };
            let (pairs, keys) = pairs_and_keys_brute(&mask, sq, sk);
            assert_eq!(mask.visible_pairs(sq, sk), pairs, "{mask:?} {sq}x{sk}");
            assert_eq!(mask.visible_key_ranges(sq, sk), keys, "{mask:?} {sq}x{sk}");
        }
        // Billions of tokens: closed forms, no allocation of the sequence.
        let n = i32::MAX as usize;
        assert_eq!(Mask::Causal.visible_pairs(n, n), (n as u64) * (n as u64 + 1) / 2);
        assert_eq!(Mask::causal_window(100).visible_key_ranges(1, n), vec![(n - 100, n)]);
        assert_eq!(Mask::Causal.key_range(0, usize::MAX, 1), Some((0, 0)));
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
