//! The Hopper prefill (kernels/flash_hopper_*.cu on kernels/include/attn_hopper.cuh): one
//! persistent launch, a CTA per SM looping over (query tile, head, batch) work tiles, Q/K/V/O
//! moved by TMA through tensor maps. The configuration mirrors the kernels' HopperTraits; the
//! performance case is docs/perf-hopper.md.

use super::{base_params, InputFormat, Launch, MapPlan, Operand, Plan};
use crate::device::tensor_map::{Interleave, L2Promotion};
use crate::device::{LaunchConfig, TensorMapElem, TensorMapFill, TensorMapSpec, TensorMapSwizzle};
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::Mask;
use crate::problem::Problem;

/// SMs of an H100 SXM / H200: the persistent grid when the caller does not say
/// (`Options::sm_count`, which the emulator's tests set low to give each CTA several tiles).
pub const DEFAULT_SMS: usize = 132;

/// Query rows per consumer warpgroup (one wgmma M).
pub const SLAB_ROWS: usize = 64;

/// The compile-time choices of the instance a problem runs on (HopperTraits in the .cu files).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HopperConfig {
    pub module: String,
    pub entry: String,
    pub input: InputFormat,
    pub head_dim: usize,
    /// Query rows per work tile (64 per consumer warpgroup).
    pub tile_q: usize,
    /// Keys per K/V tile (the S wgmma's N).
    pub tile_k: usize,
    /// K/V ring depth.
    pub stages: usize,
}

impl HopperConfig {
    pub fn consumers(&self) -> usize {
        self.tile_q / SLAB_ROWS
    }
    /// One producer warpgroup and the consumers.
    pub fn threads(&self) -> usize {
        128 * (1 + self.consumers())
    }
    /// setmaxnreg budgets (producer, consumer): what each warpgroup keeps of the 64K registers.
    pub fn register_budgets(&self) -> (u32, u32) {
        if self.consumers() == 2 {
            (24, 240)
        } else {
            (32, 160)
        }
    }
    fn elem_bytes(&self) -> usize {
        match self.input {
            InputFormat::Bf16 => 2,
            InputFormat::E4m3 => 1,
        }
    }
    /// Dynamic shared memory, as HopperTraits::kSmemBytes: Q (and O: in Q's place for bf16,
    /// beside it for e4m3), the ring of K and V (V^T) tiles, 256 bytes of mbarriers and published
    /// indices, and 1 KiB to align the base to 1024 bytes.
    pub fn smem_bytes(&self) -> usize {
        let (d, eb) = (self.head_dim, self.elem_bytes());
        let q = self.tile_q * d * eb;
        let o = self.tile_q * d * 2;
        let qo = if self.input == InputFormat::Bf16 { q } else { q + o };
        qo + self.stages * 2 * self.tile_k * d * eb + 256 + 1024
    }
    /// wgmma FLOPs one visited key tile costs a work tile (S = QK^T and O += PV, 2 per MAC).
    pub fn flops_per_tile(&self) -> u64 {
        4 * (self.tile_q * self.tile_k * self.head_dim) as u64
    }
}

/// The instance for a problem, with the block-sparse layout check.
pub fn config(p: &Problem, input: InputFormat) -> Result<HopperConfig> {
    let d = p.shape.head_dim;
    let kind = match p.mask {
        Mask::None => "none",
        Mask::Causal => "causal",
        Mask::Window { .. } => "window",
        Mask::BlockSparse(_) => "sparse",
    };
    let (tile_q, tile_k, stages) = match (input, d, kind) {
        (InputFormat::Bf16, 64, _) => (192, 128, 3),
        (InputFormat::Bf16, 128, "none") => (128, 176, 2),
        (InputFormat::Bf16, 128, _) => (128, 128, 2),
        (InputFormat::Bf16, 256, _) => (128, 80, 2),
        (InputFormat::E4m3, 64, _) => (192, 128, 3),
        (InputFormat::E4m3, 128, _) => (128, 128, 3),
        (InputFormat::E4m3, 256, _) => (128, 128, 2),
        _ => return invalid(format!("the Hopper prefill is compiled for head_dim 64, 128 and 256, not {d}")),
    };
    if let Mask::BlockSparse(l) = &p.mask {
        // Each consumer warpgroup's 64 rows lie in one block row, and the 8 keys of an
        // accumulator column block in one block column (kernels/include/attn_tile_mask.cuh).
        if !l.block_q.is_multiple_of(SLAB_ROWS) || !l.block_k.is_multiple_of(64) {
            return invalid(format!(
                "the Hopper prefill needs block-sparse blocks of whole 64-token multiples: block_q {} and block_k {} \
                 must be multiples of 64",
                l.block_q, l.block_k
            ));
        }
    }
    let (prefix, module_prefix) = match input {
        InputFormat::Bf16 => ("attn_flash_hopper", "flash_hopper"),
        InputFormat::E4m3 => ("attn_flash_hopper_fp8", "flash_hopper_fp8"),
    };
    Ok(HopperConfig {
        module: format!("{module_prefix}_d{d}"),
        entry: format!("{prefix}_d{d}_{kind}"),
        input,
        head_dim: d,
        tile_q,
        tile_k,
        stages,
    })
}

/// The tensor maps of one call (addresses filled from the buffers at allocation): Q, K and V
/// (V^T for e4m3) as the producer loads them, O as each consumer warpgroup stores its 64 rows.
/// BSHD tensors are 4-D maps (head_dim, seq, heads, batch), so one box never crosses a head or
/// a batch and rows past seq are zero-filled (loads) or dropped (stores).
pub fn tensor_maps(p: &Problem, c: &HopperConfig) -> Vec<MapPlan> {
    let s = &p.shape;
    let (d, eb) = (s.head_dim as u64, c.elem_bytes() as u64);
    let elem = match c.input {
        InputFormat::Bf16 => TensorMapElem::Bf16,
        InputFormat::E4m3 => TensorMapElem::U8,
    };
    // Boxes are column blocks of one swizzle span (128 bytes; 64 when a row is 64 bytes).
    let span = (d * eb).min(128);
    let swizzle = |bytes: u64| if bytes >= 128 { TensorMapSwizzle::B128 } else { TensorMapSwizzle::B64 };
    let bshd = |heads: usize, seq: usize, rows: usize, elem: TensorMapElem, eb: u64, span: u64| TensorMapSpec {
        elem,
        addr: 0,
        dims: vec![d, seq as u64, heads as u64, s.batch as u64],
        strides: vec![heads as u64 * d * eb, d * eb, seq as u64 * heads as u64 * d * eb],
        box_dims: vec![(span / eb) as u32, rows as u32, 1, 1],
        element_strides: vec![1; 4],
        interleave: Interleave::None,
        swizzle: swizzle(span),
        l2_promotion: L2Promotion::B128,
        fill: TensorMapFill::Zero,
    };
    let v = match c.input {
        InputFormat::Bf16 => bshd(s.kv_heads, s.seq_k, c.tile_k, elem, eb, span),
        InputFormat::E4m3 => {
            // V^T [batch, kv_heads, d, keys padded]: rows of keys, boxes of 128 keys x d rows.
            let kp = super::fp8::keys_padded(s.seq_k) as u64;
            TensorMapSpec {
                elem,
                addr: 0,
                dims: vec![kp, d, s.kv_heads as u64, s.batch as u64],
                strides: vec![kp, d * kp, s.kv_heads as u64 * d * kp],
                box_dims: vec![c.tile_k.min(128) as u32, d as u32, 1, 1],
                element_strides: vec![1; 4],
                interleave: Interleave::None,
                swizzle: swizzle(c.tile_k.min(128) as u64),
                l2_promotion: L2Promotion::B128,
                fill: TensorMapFill::Zero,
            }
        }
    };
    vec![
        MapPlan { operand: Operand::Q, spec: bshd(s.heads, s.seq_q, c.tile_q, elem, eb, span) },
        MapPlan { operand: Operand::K, spec: bshd(s.kv_heads, s.seq_k, c.tile_k, elem, eb, span) },
        MapPlan { operand: Operand::V, spec: v },
        MapPlan { operand: Operand::O, spec: bshd(s.heads, s.seq_q, SLAB_ROWS, TensorMapElem::Bf16, 2, 128) },
    ]
}

/// Work tiles of a problem: query tiles times heads times batch.
pub fn work_tiles(p: &Problem, c: &HopperConfig) -> u64 {
    let s = &p.shape;
    s.seq_q.div_ceil(c.tile_q) as u64 * (s.heads * s.batch) as u64
}

/// Key tiles each of `ctas` persistent CTAs visits under the kernel's schedule (attn_hopper.cuh,
/// WorkTile): work tiles ordered longest first (query tiles from the last, every (batch, head) of
/// one query tile together), CTA c taking r * G + c in even rounds r and r * G + G - 1 - c in odd
/// ones. The launch lasts about as long as the busiest CTA: mean / max is its load balance.
pub fn cta_key_tiles(p: &Problem, c: &HopperConfig, ctas: usize) -> Vec<u64> {
    let s = &p.shape;
    let (nq, nk) = (s.seq_q.div_ceil(c.tile_q), s.seq_k.div_ceil(c.tile_k));
    let visited: Vec<u64> = (0..nq)
        .map(|qt| {
            let (q0, q1) = (qt * c.tile_q, ((qt + 1) * c.tile_q).min(s.seq_q));
            (0..nk)
                .filter(|&kt| {
                    let (k0, k1) = (kt * c.tile_k, ((kt + 1) * c.tile_k).min(s.seq_k));
                    p.mask.classify_tile(q0, q1, k0, k1, s.seq_q, s.seq_k) != crate::mask::TileClass::Empty
                })
                .count() as u64
        })
        .collect();
    let (bh, g) = (s.batch * s.heads, ctas.max(1));
    let mut per_cta = vec![0u64; g];
    for w in 0..nq * bh {
        let (round, pos) = (w / g, w % g);
        let cta = if round % 2 == 1 { g - 1 - pos } else { pos };
        per_cta[cta] += visited[nq - 1 - w / bh];
    }
    per_cta
}

/// One persistent launch: min(work tiles, SMs) CTAs of `threads()` threads.
pub fn plan(p: &Problem, input: InputFormat, sm_count: Option<usize>) -> Result<Plan> {
    let c = config(p, input)?;
    let tiles = work_tiles(p, &c);
    let sms = sm_count.unwrap_or(DEFAULT_SMS).max(1) as u64;
    let ctas = tiles.min(sms);
    if tiles > i32::MAX as u64 {
        return invalid(format!("{tiles} work tiles: the kernel counts them in 32 bits"));
    }
    let s = &p.shape;
    if [s.seq_q, s.seq_k, s.heads, s.batch].iter().any(|&x| x as u64 > 1 << 31) {
        return invalid("TMA coordinates are 32-bit: seq, heads and batch must stay below 2^31");
    }
    let launch = Launch {
        kernel: KernelRef::new(&c.module, &c.entry)?,
        cfg: LaunchConfig {
            grid: [ctas as u32, 1, 1],
            block: [c.threads() as u32, 1, 1],
            dynamic_shared_bytes: c.smem_bytes() as u32,
        },
        params: base_params(p),
        tensor_maps: tensor_maps(p, &c),
    };
    let (producer, consumer) = c.register_budgets();
    let work = match input {
        InputFormat::Bf16 => crate::work::flash_hopper(p, c.tile_q, c.tile_k, 2),
        InputFormat::E4m3 => crate::work::flash_hopper(p, c.tile_q, c.tile_k, 1),
    };
    Ok(Plan {
        launches: vec![launch],
        scratch_bytes: 0,
        scratch_lse_bytes: 0,
        input,
        work,
        description: format!(
            "tile {}x{}, 1 producer + {} consumer warpgroups (setmaxnreg {producer}/{consumer}), {} TMA stages, {} KiB \
             smem, {ctas} persistent CTAs for {tiles} work tiles",
            c.tile_q,
            c.tile_k,
            c.consumers(),
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
    fn sparse_blocks_must_be_multiples_of_64() {
        for (bq, bk, ok) in [(64, 64, true), (128, 192, true), (32, 64, false), (64, 96, false)] {
            let l = BlockLayout::full(512, 512, bq, bk);
            let p = Problem::new(Shape::prefill(1, 512, 2, 1, 128), Mask::BlockSparse(l));
            assert_eq!(plan(&p, InputFormat::Bf16, None).is_ok(), ok, "{bq}x{bk}");
        }
    }

    #[test]
    fn persistent_grid_and_shared_memory() {
        let p = Problem::new(Shape::prefill(2, 1000, 8, 1, 128), Mask::None);
        let c = config(&p, InputFormat::Bf16).unwrap();
        assert_eq!((c.tile_q, c.tile_k, c.stages, c.threads()), (128, 176, 2, 384));
        // Q 128x128 bf16 (O in its place) + 2 stages of K and V 176x128 + sync + alignment.
        assert_eq!(c.smem_bytes(), 32768 + 2 * 2 * 45056 + 256 + 1024);
        assert!(c.smem_bytes() <= 232448);
        assert_eq!(work_tiles(&p, &c), 8 * 8 * 2);
        assert_eq!(plan(&p, InputFormat::Bf16, None).unwrap().launches[0].cfg.grid, [128, 1, 1]);
        assert_eq!(plan(&p, InputFormat::Bf16, Some(3)).unwrap().launches[0].cfg.grid, [3, 1, 1]);
        let big = Problem::new(Shape::prefill(1, 1 << 16, 8, 1, 128), Mask::Causal);
        assert_eq!(plan(&big, InputFormat::E4m3, None).unwrap().launches[0].cfg.grid, [132, 1, 1]);
    }

    #[test]
    fn the_schedule_balances_causal_work_over_the_ctas() {
        // 8K causal, d 128, 8 heads: 512 work tiles of 1 to 64 key tiles on 132 CTAs. Rounds
        // that alternate direction keep the busiest CTA within a few percent of the mean (one
        // direction only: CTA 0 takes the longest tile of every round, about 20% over).
        let p = Problem::new(Shape::prefill(1, 8192, 8, 1, 128), Mask::Causal);
        let c = config(&p, InputFormat::Bf16).unwrap();
        let per = cta_key_tiles(&p, &c, 132);
        let (total, max) = (per.iter().sum::<u64>(), *per.iter().max().unwrap());
        let (partial, full) = p.mask.tile_counts(8192, 8192, c.tile_q, c.tile_k);
        assert_eq!(total, 8 * (partial + full), "every visited tile is somebody's");
        let balance = total as f64 / 132.0 / max as f64;
        println!(
            "8K causal on 132 CTAs: busiest {max} key tiles, mean {:.1}, balance {balance:.3}",
            total as f64 / 132.0
        );
        assert!(balance > 0.9, "balance {balance}");
    }

    #[test]
    fn every_instance_fits_and_its_maps_validate() {
        for input in [InputFormat::Bf16, InputFormat::E4m3] {
            for d in [64, 128, 256] {
                for m in [
                    Mask::None,
                    Mask::Causal,
                    Mask::causal_window(100),
                    Mask::BlockSparse(BlockLayout::full(300, 300, 64, 64)),
                ] {
                    let p =
                        Problem::new(Shape { batch: 2, seq_q: 300, seq_k: 300, heads: 4, kv_heads: 2, head_dim: d }, m);
                    let c = config(&p, input).unwrap();
                    assert!(c.smem_bytes() <= 232448, "{c:?}: {} bytes", c.smem_bytes());
                    let (pr, co) = c.register_budgets();
                    assert!(pr as usize * 128 + co as usize * 128 * c.consumers() <= 65536);
                    for m in tensor_maps(&p, &c) {
                        let mut spec = m.spec.clone();
                        spec.addr = 1 << 20;
                        spec.validate().unwrap_or_else(|e| panic!("{c:?} {:?}: {e}", m.operand));
                    }
                }
            }
        }
    }
}
