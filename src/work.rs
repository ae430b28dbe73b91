//! Work counts in one place: FLOPs and minimum DRAM bytes of each variant for a problem. Used by
//! the counter tests, the profiler (TFLOP/s, GB/s), the roofline report and the estimator.

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
    let s = &p.shape;
    let partial =
        if splits > 1 { 2.0 * (splits * s.batch * s.heads * s.seq_q * (s.head_dim + 1)) as f64 * 4.0 } else { 0.0 };
    let f = useful_flops(p);
    Work { flops: f, executed_flops: f, min_bytes: q_o_lse_bytes(p) + visible_kv_bytes(p) + partial }
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
}
