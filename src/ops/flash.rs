//! The fused flash-style prefill (kernels/flash_prefill.cu): one launch, one CTA per query tile of
//! one (batch, head), mask-aware key-tile skipping. Tile sizes mirror the kernel's traits.

use super::{base_params, check_grid, Launch, Plan};
use crate::device::LaunchConfig;
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::Mask;
use crate::problem::Problem;

/// Key-tile width of every instance (kernels/flash_prefill.cu: FlashTraits::BN).
pub const TILE_K: usize = 64;

/// The compile-time choices of the kernel instance a problem runs on (FlashTraits in the .cu).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlashConfig {
    pub entry: &'static str,
    pub head_dim: usize,
    /// Query rows per CTA (`warp_rows` per warp).
    pub tile_q: usize,
    /// Keys per streamed K/V tile.
    pub tile_k: usize,
    pub warps: usize,
    /// Query rows per warp: 16 or 32 (one or two m16 blocks sharing each K/V fragment).
    pub warp_rows: usize,
    /// Depth of the cp.async K/V ring.
    pub stages: usize,
}

impl FlashConfig {
    pub fn threads(&self) -> usize {
        32 * self.warps
    }
    /// Dynamic shared memory: the Q tile plus `stages` K and V tiles, bf16.
    pub fn smem_bytes(&self) -> usize {
        2 * self.head_dim * (self.tile_q + self.stages * 2 * self.tile_k)
    }
    /// mma.sync m16n8k16 instructions one warp issues per visited key tile: per m16 block, S = QK^T
    /// is (d/16)·(tile_k/8) and O += PV is (tile_k/16)·(d/8).
    pub fn mma_per_warp_tile(&self) -> usize {
        (self.warp_rows / 16) * ((self.head_dim / 16) * (self.tile_k / 8) + (self.tile_k / 16) * (self.head_dim / 8))
    }
}

/// The kernel instance for a problem, with the block-sparse layout check.
pub fn config(p: &Problem) -> Result<FlashConfig> {
    let d = p.shape.head_dim;
    let suffix = match p.mask {
        Mask::None => "none",
        Mask::Causal => "causal",
        Mask::Window { .. } => "window",
        Mask::BlockSparse(_) => "sparse",
    };
    // (warps, rows per warp): row-band d=64 uses 4 warps of 32 rows, d=128 8 warps of 16 (32 rows
    // of 128-wide O would spill); block-sparse 4 warps of 16 rows (64-row tiles).
    let (warps, warp_rows) = match (suffix, d) {
        ("sparse", _) => (4, 16),
        (_, 64) => (4, 32),
        _ => (8, 16),
    };
    let tile_q = warps * warp_rows;
    let stages = match d {
        64 => 3,
        128 => 2,
        _ => return invalid(format!("flash prefill is compiled for head_dim 64 and 128, not {d}")),
    };
    if let Mask::BlockSparse(l) = &p.mask {
        if !l.block_q.is_multiple_of(tile_q) || !l.block_k.is_multiple_of(TILE_K) {
            return invalid(format!(
                "flash prefill needs block-sparse blocks made of whole {tile_q}x{TILE_K} tiles: block_q {} must be a \
                 multiple of {tile_q} and block_k {} a multiple of {TILE_K}",
                l.block_q, l.block_k
            ));
        }
    }
    let entry = match (d, suffix) {
        (64, "none") => "attn_flash_prefill_d64_none",
        (64, "causal") => "attn_flash_prefill_d64_causal",
        (64, "window") => "attn_flash_prefill_d64_window",
        (64, _) => "attn_flash_prefill_d64_sparse",
        (_, "none") => "attn_flash_prefill_d128_none",
        (_, "causal") => "attn_flash_prefill_d128_causal",
        (_, "window") => "attn_flash_prefill_d128_window",
        _ => "attn_flash_prefill_d128_sparse",
    };
    Ok(FlashConfig { entry, head_dim: d, tile_q, tile_k: TILE_K, warps, warp_rows, stages })
}

pub fn plan(p: &Problem) -> Result<Plan> {
    let s = &p.shape;
    let c = config(p)?;
    let grid = [s.seq_q.div_ceil(c.tile_q) as u64, s.heads as u64, s.batch as u64];
    if grid[0] > i32::MAX as u64 || grid[1] > 65535 || grid[2] > 65535 {
        return invalid(format!("flash grid {grid:?} exceeds CUDA's limits (heads and batch at most 65535)"));
    }
    let grid = [grid[0] as u32, grid[1] as u32, grid[2] as u32];
    check_grid(grid)?;
    let launch = Launch {
        kernel: KernelRef::new("flash_prefill", c.entry)?,
        cfg: LaunchConfig { grid, block: [c.threads() as u32, 1, 1], dynamic_shared_bytes: c.smem_bytes() as u32 },
        params: base_params(p),
        tensor_maps: Vec::new(),
    };
    Ok(Plan {
        launches: vec![launch],
        scratch_bytes: 0,
        scratch_lse_bytes: 0,
        input: super::InputFormat::Bf16,
        work: crate::work::flash(p, c.tile_q, c.tile_k),
        description: format!(
            "tile {}x{}, {} warps x {} rows, {} cp.async stages, {} KiB smem",
            c.tile_q,
            c.tile_k,
            c.warps,
            c.warp_rows,
            c.stages,
            c.smem_bytes() / 1024
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BlockLayout, Shape};

    #[test]
    fn sparse_layout_must_be_whole_tiles() {
        let l = BlockLayout::full(256, 256, 32, 64);
        let p = Problem::new(Shape::prefill(1, 256, 2, 1, 64), Mask::BlockSparse(l));
        assert!(matches!(plan(&p), Err(crate::Error::Invalid(_))));
        let l = BlockLayout::full(256, 256, 128, 64);
        let p = Problem::new(Shape::prefill(1, 256, 2, 1, 64), Mask::BlockSparse(l));
        let plan = plan(&p).unwrap();
        assert_eq!(plan.launches[0].cfg.grid, [4, 2, 1]);
    }

    #[test]
    fn smem_matches_traits() {
        let p = Problem::new(Shape::prefill(1, 1000, 8, 1, 128), Mask::Causal);
        let c = config(&p).unwrap();
        // Q 128x128 + 2 stages of K and V 64x128, bf16
        assert_eq!(c.smem_bytes(), 2 * (128 * 128 + 2 * 2 * 64 * 128));
        assert_eq!(c.mma_per_warp_tile(), 64 + 64);
        let r = plan(&p).unwrap().launches[0].kernel.resources().unwrap();
        assert_eq!(r.spill_store_bytes + r.stack_bytes, 0);
    }
}
