//! Split-KV decode (kernels/decode.cu): a few query tokens against a long K/V cache.
//!
//! One CTA serves all query heads of one KV head (GQA rows packed as (token, head-in-group)),
//! over one run of the key tiles its mask visits; `splits` such runs per (batch, KV head) fill
//! the SMs. Each split writes f32 partial O and LSE, merged by the combine kernel; with one split
//! the split kernel writes O and LSE itself and the combine is skipped.
//!
//! Split heuristic ([`choose_splits`]): fill one wave of resident CTAs, i.e. about
//! `sm_count * ctas_per_sm` CTAs in all, but give every split at least [`MIN_TILES_PER_SPLIT`]
//! key tiles, then even the runs out so that no split is left empty.

use super::{base_params, check_grid, Launch, Plan};
use crate::device::LaunchConfig;
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::Mask;
use crate::problem::Problem;

/// Keys per K/V tile (kernels/decode.cu: DecodeTraits::BN).
pub const TILE_K: usize = 64;
/// Query tokens per call the kernels take (attn_decode.cuh: DECODE_MAX_SEQ_Q).
pub const MAX_SEQ_Q: usize = 16;
/// A split reads at least this many key tiles (256 keys) so that its fixed costs (pipeline fill,
/// partial O/LSE written and read back by the combine: rows·(d+1)·4 bytes each way) stay small
/// next to its K/V (≥ 4·64·d·4 bytes). See [`min_tiles_per_split`] for the Q re-read bound.
pub const MIN_TILES_PER_SPLIT: usize = 4;
/// Threads of the combine kernel's CTA, one CTA per output row (attn_decode.cuh: COMBINE_WARPS).
pub const COMBINE_THREADS: u32 = 256;
/// H100 SXM: the default when the caller does not pass the device's SM count.
pub const H100_SMS: usize = 132;
/// Usable shared memory per SM for CTAs on H100 (228 KB, 1 KB reserved per CTA).
const SMEM_PER_SM: usize = 228 * 1024;
const REGS_PER_SM: usize = 65536;

/// The compile-time choices of the split kernel instance a problem runs on (DecodeTraits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeConfig {
    pub entry: &'static str,
    pub combine_entry: &'static str,
    pub head_dim: usize,
    /// Warps along rows (16 rows each) and along the keys of a tile.
    pub warps_m: usize,
    pub warps_n: usize,
    pub stages: usize,
}

impl DecodeConfig {
    pub fn threads(&self) -> usize {
        32 * self.warps_m * self.warps_n
    }
    /// (token, head) rows one CTA holds.
    pub fn rows_per_cta(&self) -> usize {
        16 * self.warps_m
    }
    /// Dynamic shared memory: the Q tile plus `stages` K and V tiles, bf16.
    pub fn smem_bytes(&self) -> usize {
        2 * self.head_dim * (self.rows_per_cta() + self.stages * 2 * TILE_K)
    }
    /// CTAs one SM holds, from shared memory, threads and ptxas's register count.
    pub fn ctas_per_sm(&self) -> usize {
        let regs = KernelRef::new("decode", self.entry).ok().and_then(|k| k.resources()).map_or(255, |r| r.registers);
        let by_smem = SMEM_PER_SM / (self.smem_bytes() + 1024 + 1024);
        let by_threads = 2048 / self.threads();
        // Registers are allocated per warp in units of 256 (8 per thread).
        let by_regs = REGS_PER_SM / (self.threads() * (regs as usize).div_ceil(8) * 8);
        by_smem.min(by_threads).min(by_regs).max(1)
    }
}

/// The kernel instance for a problem, with the decode-specific checks.
pub fn config(p: &Problem) -> Result<DecodeConfig> {
    let s = &p.shape;
    if s.seq_q > MAX_SEQ_Q {
        return invalid(format!("decode takes at most {MAX_SEQ_Q} query tokens per call, got seq_q = {}", s.seq_q));
    }
    if let Mask::BlockSparse(l) = &p.mask {
        if l.block_q < s.seq_q || l.block_k % TILE_K != 0 {
            return invalid(format!(
                "decode needs every query token in the first block row and blocks of whole {TILE_K}-key tiles: \
                 block_q {} must be at least seq_q {} and block_k {} a multiple of {TILE_K}",
                l.block_q, s.seq_q, l.block_k
            ));
        }
    }
    let (d, stages) = match s.head_dim {
        64 => (64, 4),
        128 => (128, 3),
        d => return invalid(format!("decode is compiled for head_dim 64 and 128, not {d}")),
    };
    let rows = s.seq_q * s.group();
    let (narrow, warps_m, warps_n) = if rows <= 16 { (true, 1, 4) } else { (false, 8, 1) };
    let entry = match (d, narrow, &p.mask) {
        (64, true, Mask::None) => "attn_decode_d64_r16_none",
        (64, true, Mask::Causal) => "attn_decode_d64_r16_causal",
        (64, true, Mask::Window { .. }) => "attn_decode_d64_r16_window",
        (64, true, Mask::BlockSparse(_)) => "attn_decode_d64_r16_sparse",
        (64, false, Mask::None) => "attn_decode_d64_r128_none",
        (64, false, Mask::Causal) => "attn_decode_d64_r128_causal",
        (64, false, Mask::Window { .. }) => "attn_decode_d64_r128_window",
        (64, false, Mask::BlockSparse(_)) => "attn_decode_d64_r128_sparse",
        (_, true, Mask::None) => "attn_decode_d128_r16_none",
        (_, true, Mask::Causal) => "attn_decode_d128_r16_causal",
        (_, true, Mask::Window { .. }) => "attn_decode_d128_r16_window",
        (_, true, Mask::BlockSparse(_)) => "attn_decode_d128_r16_sparse",
        (_, false, Mask::None) => "attn_decode_d128_r128_none",
        (_, false, Mask::Causal) => "attn_decode_d128_r128_causal",
        (_, false, Mask::Window { .. }) => "attn_decode_d128_r128_window",
        (_, false, Mask::BlockSparse(_)) => "attn_decode_d128_r128_sparse",
    };
    let combine_entry = if d == 64 { "attn_decode_combine_d64" } else { "attn_decode_combine_d128" };
    Ok(DecodeConfig { entry, combine_entry, head_dim: d, warps_m, warps_n, stages })
}

/// Keys some query token sees, as the interval the kernel reads (row-band masks), or None for
/// block-sparse layouts (whole blocks of the first block row).
fn key_union(p: &Problem) -> Option<(usize, usize)> {
    let s = &p.shape;
    match &p.mask {
        Mask::BlockSparse(_) => None,
        m => {
            let lo = m.key_range(0, s.seq_q, s.seq_k).map_or(0, |r| r.0);
            let hi = m.key_range(s.seq_q - 1, s.seq_q, s.seq_k).map_or(0, |r| r.1);
            Some((lo, hi.max(lo)))
        }
    }
}

/// Key tiles the mask object of one (batch, KV head) visits: what the splits divide (the same count as
/// `Mask::tile_counts(seq_q, seq_k, 16, TILE_K)`, computed in O(blocks) for 1M-token caches).
pub fn visited_tiles(p: &Problem) -> usize {
    let s = &p.shape;
    match (&p.mask, key_union(p)) {
        (Mask::BlockSparse(l), _) => {
            let per_block = l.block_k / TILE_K;
            let last_tile = s.seq_k.div_ceil(TILE_K);
            l.row(0).iter().map(|&c| ((c as usize + 1) * per_block).min(last_tile) - c as usize * per_block).sum()
        }
        (_, Some((lo, hi))) if hi > lo => hi.div_ceil(TILE_K) - lo / TILE_K,
        _ => 0,
    }
}

/// Fewest key tiles per split for CTAs of `rows` (token, head) rows: every split re-reads its
/// rows of Q (rows·d·2 bytes), which must stay under 5% of its K/V (64·d·4 bytes per tile), so
/// tiles ≥ 20·rows·2 / 256 = rows·5/32, and never fewer than [`MIN_TILES_PER_SPLIT`].
pub fn min_tiles_per_split(rows: usize) -> usize {
    MIN_TILES_PER_SPLIT.max((rows * 5).div_ceil(32))
}

/// The split count for `tiles` visited key tiles per (batch, KV head, row chunk), `ctas` such
/// units and CTAs of `rows` rows: enough splits for one wave of `sm_count * ctas_per_sm` CTAs,
/// at most one per [`min_tiles_per_split`] tiles, then the fewest splits giving the same tiles
/// per split (so that no split is left empty).
pub fn choose_splits(tiles: usize, ctas: usize, rows: usize, sm_count: usize, ctas_per_sm: usize) -> usize {
    let wave = (sm_count * ctas_per_sm).max(1);
    let want = (wave / ctas.max(1)).max(1);
    let cap = tiles.div_ceil(min_tiles_per_split(rows)).max(1);
    let splits = want.min(cap);
    let per_split = tiles.div_ceil(splits).max(1);
    tiles.div_ceil(per_split).max(1)
}

/// Plans a decode call. `splits` overrides the heuristic, up to the visited tiles (2 when fewer,
/// so that a call visiting no tile still runs the combine): more splits than tiles only add
/// empty CTAs and scratch (a million of them: gigabytes); `sm_count` defaults to the H100's 132.
pub fn plan(p: &Problem, splits: Option<usize>, sm_count: Option<usize>) -> Result<Plan> {
    let s = &p.shape;
    let c = config(p)?;
    let rows = s.seq_q * s.group();
    let chunks = rows.div_ceil(c.rows_per_cta());
    let tiles = visited_tiles(p);
    let units = s.batch * s.kv_heads * chunks;
    let sm = sm_count.unwrap_or(H100_SMS);
    let splits = match splits {
        Some(0) => return invalid("decode splits must be at least 1"),
        Some(n) if n > tiles.max(2) => {
            return invalid(format!(
                "decode splits {n}: at most the {} key tiles of {TILE_K} keys this call visits",
                tiles.max(2)
            ))
        }
        Some(n) => n,
        None => choose_splits(tiles, units, rows.min(c.rows_per_cta()), sm, c.ctas_per_sm()),
    };
    let per_split_tiles = tiles.div_ceil(splits).max(1);
    let grid_x = (chunks as u64).saturating_mul(splits as u64);
    if grid_x > i32::MAX as u64 || s.kv_heads > 65535 || s.batch > 65535 || per_split_tiles > i32::MAX as usize {
        return invalid(format!(
            "decode grid ({grid_x}, {}, {}) exceeds CUDA's limits ({splits} splits x {chunks} row chunks below \
             2^31, kv_heads and batch at most 65535)",
            s.kv_heads, s.batch
        ));
    }
    let grid = [grid_x as u32, s.kv_heads as u32, s.batch as u32];
    check_grid(grid)?;
    let mut params = base_params(p);
    params.num_splits = splits as i32;
    params.tiles_per_split = per_split_tiles as i32;
    let mut launches = vec![Launch {
        kernel: KernelRef::new("decode", c.entry)?,
        cfg: LaunchConfig { grid, block: [c.threads() as u32, 1, 1], dynamic_shared_bytes: c.smem_bytes() as u32 },
        params,
        tensor_maps: Vec::new(),
    }];
    let out_rows = s.batch * s.heads * s.seq_q;
    let (scratch_bytes, scratch_lse_bytes) = if splits > 1 {
        if out_rows > i32::MAX as usize {
            return invalid(format!("decode combine grid of {out_rows} rows exceeds CUDA's limit"));
        }
        let combine_grid = [out_rows as u32, 1, 1];
        check_grid(combine_grid)?;
        launches.push(Launch {
            kernel: KernelRef::new("decode", c.combine_entry)?,
            cfg: LaunchConfig { grid: combine_grid, block: [COMBINE_THREADS, 1, 1], dynamic_shared_bytes: 0 },
            params,
            tensor_maps: Vec::new(),
        });
        (splits * out_rows * s.head_dim * 4, splits * out_rows * 4)
    } else {
        (0, 0)
    };
    Ok(Plan {
        launches,
        scratch_bytes,
        scratch_lse_bytes,
        input: super::InputFormat::Bf16,
        work: crate::work::decode(p, splits),
        description: format!(
            "splits {splits} x {per_split_tiles} tiles of {TILE_K} keys ({tiles} visited), {} rows/CTA, {}x{} warps, \
             {} cp.async stages, {} KiB smem, {} CTAs/SM{}",
            c.rows_per_cta(),
            c.warps_m,
            c.warps_n,
            c.stages,
            c.smem_bytes() / 1024,
            c.ctas_per_sm(),
            if splits > 1 { " + combine" } else { ", direct output" }
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockLayout, Shape};

    #[test]
    fn visited_tiles_match_tile_counts() {
        let masks = [
            Mask::None,
            Mask::Causal,
            Mask::causal_window(100),
            Mask::Window { left: 3, right: 70 },
            Mask::BlockSparse(BlockLayout::full(1, 1, 16, 64)), // replaced per shape below
        ];
        for m in masks {
            for (sq, sk) in [(1, 1), (1, 7), (4, 65), (16, 1000), (16, 4097), (16, 7)] {
                let m = match &m {
                    Mask::BlockSparse(_) => Mask::BlockSparse(BlockLayout::from_fn(sq, sk, 16, 128, |_, c| c % 3 != 1)),
                    m => m.clone(),
                };
                let p = Problem::new(Shape::decode(1, sq, sk, 4, 1, 64), m.clone());
                let (a, b) = m.tile_counts(sq, sk, MAX_SEQ_Q, TILE_K);
                assert_eq!(visited_tiles(&p) as u64, a + b, "{m:?} sq {sq} sk {sk}");
            }
        }
    }

    #[test]
    fn plan_shapes() {
        let p = Problem::new(Shape::decode(2, 4, 1000, 32, 4, 128), Mask::Causal);
        let plan = plan(&p, Some(3), None).unwrap();
        assert_eq!(plan.launches.len(), 2);
        // 32 rows per KV head (4 tokens x 8 heads): the 128-row layout, one chunk.
        assert_eq!(plan.launches[0].cfg.grid, [3, 4, 2]);
        assert_eq!(plan.launches[0].cfg.block, [256, 1, 1]);
        assert_eq!(plan.launches[0].params.tiles_per_split, 6); // 16 tiles over 3 splits
        assert_eq!(plan.scratch_bytes, 3 * 2 * 32 * 4 * 128 * 4);
        let one = super::plan(&p, Some(1), None).unwrap();
        assert_eq!((one.launches.len(), one.scratch_bytes), (1, 0));
        assert!(super::plan(&p, Some(0), None).is_err());
        let long = Problem::new(Shape::decode(1, 17, 1000, 1, 1, 64), Mask::None);
        assert!(matches!(super::plan(&long, None, None), Err(crate::Error::Invalid(_))));
    }
}
