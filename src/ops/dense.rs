//! The dense (materialized scores) baseline: three kernels over an f32 scratch S[b, h, i, j].

use super::{base_params, check_grid, Launch, Plan};
use crate::device::LaunchConfig;
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::problem::Problem;

/// Tile edge of the scores and PV kernels (kernels/dense.cu: kTile).
const TILE: u32 = 64;
const THREADS: u32 = 256;

pub fn plan(p: &Problem) -> Result<Plan> {
    let s = &p.shape;
    if !matches!(s.head_dim, 64 | 128) {
        return invalid(format!("the dense baseline is tested for head_dim 64 and 128, not {}", s.head_dim));
    }
    let bh = (s.batch * s.heads) as u32;
    let scratch = (s.batch * s.heads) as u128 * s.seq_q as u128 * s.seq_k as u128 * 4;
    if scratch > isize::MAX as u128 {
        return invalid(format!("dense scores need {scratch} bytes of scratch, beyond addressable memory"));
    }
    let (sq, sk) = (s.seq_q as u32, s.seq_k as u32);
    let params = base_params(p);
    let block = [THREADS, 1, 1];
    let k = |e: &str| KernelRef::new("dense", e);
    let launches = vec![
        Launch {
            kernel: k("attn_dense_scores")?,
            cfg: LaunchConfig { grid: [sk.div_ceil(TILE), sq.div_ceil(TILE), bh], block, dynamic_shared_bytes: 0 },
            params,
            tensor_maps: Vec::new(),
        },
        Launch {
            kernel: k("attn_dense_softmax")?,
            cfg: LaunchConfig { grid: [sq, bh, 1], block, dynamic_shared_bytes: 0 },
            params,
            tensor_maps: Vec::new(),
        },
        Launch {
            kernel: k("attn_dense_pv")?,
            cfg: LaunchConfig {
                grid: [sq.div_ceil(TILE), s.head_dim as u32 / TILE, bh],
                block,
                dynamic_shared_bytes: 0,
            },
            params,
            tensor_maps: Vec::new(),
        },
    ];
    for l in &launches {
        check_grid(l.cfg.grid)?;
    }
    Ok(Plan {
        launches,
        scratch_bytes: scratch as usize,
        scratch_lse_bytes: 0,
        input: super::InputFormat::Bf16,
        work: crate::work::dense(p),
        description: format!("3 kernels, {TILE}x{TILE} tiles, f32 scores {:.1} MiB", scratch as f64 / 1048576.0),
    })
}
