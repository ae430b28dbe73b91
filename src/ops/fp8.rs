//! The inputs of the `flash-hopper-fp8` variant: Q, K and V in e4m3 (the codec of
//! [`crate::paged::fp8`], rounded like `cvt.rn.satfinite`), each tensor scaled per (batch, KV head)
//! so that its largest magnitude maps to 448, with the f32 factors (descales) that undo it; V
//! transposed (8-bit wgmma reads K-major operands only: for O += P V the keys must be contiguous)
//! and its keys put in the order the kernel's P fragments hold them ([`key_order`]).

use crate::problem::Shape;
use half::bf16;
use rayon::prelude::*;

pub use crate::paged::fp8::E4M3_MAX;
use crate::paged::fp8::{decode, encode};

/// Inside every 32 keys, the key the kernel's P fragment holds at position `p` (0..32) of the k32
/// slice: wgmma's 8-bit A fragment gives a thread columns 4t..4t+3 (and +16), while the S
/// accumulator gives it keys 2t, 2t+1, 8+2t, 8+2t+1 (and +16), so position 16h + 4t + e holds
/// key 16h + 8(e/2) + 2t + e%2. V^T's columns are stored in this order.
pub fn key_order(p: usize) -> usize {
    let (h, t, e) = (p >> 4, (p >> 2) & 3, p & 3);
    16 * h + 8 * (e >> 1) + 2 * t + (e & 1)
}

/// Keys of V^T's rows, padded to whole 32-key slices (the row stride, `keys_padded` bytes, is
/// then a multiple of 16 as the TMA requires).
pub fn keys_padded(seq_k: usize) -> usize {
    seq_k.div_ceil(32) * 32
}

/// The e4m3 inputs of one call and the values they stand for.
#[derive(Debug, Clone)]
pub struct Fp8Inputs {
    /// Q as e4m3, BSHD like the bf16 Q.
    pub q: Vec<u8>,
    /// K as e4m3, BSHD.
    pub k: Vec<u8>,
    /// V^T as e4m3: [batch, kv_heads, head_dim, keys_padded(seq_k)], keys in [`key_order`] inside
    /// each 32, zeros past seq_k.
    pub vt: Vec<u8>,
    /// Descales, f32 [batch, kv_heads] each: real value = stored value * descale. Laid out as
    /// the device buffer: Q's, then K's, then V's.
    pub descales: Vec<f32>,
    /// What the kernel computes with: stored values times their descale, exactly (BSHD; V
    /// untransposed), for the reference.
    pub q_values: Vec<f64>,
    pub k_values: Vec<f64>,
    pub v_values: Vec<f64>,
}

/// Quantizes bf16 Q, K, V for the fp8 kernel: per (batch, KV head) the largest magnitude of Q
/// (over the heads of that KV head's group), of K and of V maps to 448.
pub fn quantize(s: &Shape, q: &[bf16], k: &[bf16], v: &[bf16]) -> Fp8Inputs {
    let (b_n, hk_n, d, g) = (s.batch, s.kv_heads, s.head_dim, s.group());
    let groups = b_n * hk_n;
    // amax per (batch, KV head) of each tensor.
    let amax = |x: &[bf16], heads: usize, seq: usize, per_group: usize| -> Vec<f32> {
        (0..groups)
            .into_par_iter()
            .map(|bg| {
                let (b, hk) = (bg / hk_n, bg % hk_n);
                let mut m = 0f32;
                for i in 0..seq {
                    for h in hk * per_group..(hk + 1) * per_group {
                        let row = ((b * seq + i) * heads + h) * d;
                        m = x[row..row + d].iter().fold(m, |m, v| m.max(v.to_f32().abs()));
                    }
                }
                m
            })
            .collect()
    };
    let descale_of = |m: f32| if m > 0.0 { m / E4M3_MAX } else { 1.0 };
    let dq: Vec<f32> = amax(q, s.heads, s.seq_q, g).into_iter().map(descale_of).collect();
    let dk: Vec<f32> = amax(k, hk_n, s.seq_k, 1).into_iter().map(descale_of).collect();
    let dv: Vec<f32> = amax(v, hk_n, s.seq_k, 1).into_iter().map(descale_of).collect();
    // Element e of a BSHD tensor with `heads` heads: its (batch, KV head) group.
    let group_of = |e: usize, heads: usize, seq: usize, per_group: usize| {
        let h = (e / d) % heads;
        let b = e / (d * heads * seq);
        b * hk_n + h / per_group
    };
    let quant = |x: &[bf16], desc: &[f32], heads: usize, seq: usize, per_group: usize| -> (Vec<u8>, Vec<f64>) {
        x.par_iter()
            .enumerate()
            .map(|(e, v)| {
                let ds = desc[group_of(e, heads, seq, per_group)];
                let b = encode(v.to_f32() / ds);
                (b, decode(b) as f64 * ds as f64)
            })
            .unzip()
    };
    let (q8, q_values) = quant(q, &dq, s.heads, s.seq_q, g);
    let (k8, k_values) = quant(k, &dk, hk_n, s.seq_k, 1);
    let (v8, v_values) = quant(v, &dv, hk_n, s.seq_k, 1);
    // V^T with the kernel's key order: column c of row (b, hk, dd) holds key 32(c/32) +
    // key_order(c % 32).
    let kp = keys_padded(s.seq_k);
    let mut vt = vec![0u8; b_n * hk_n * d * kp];
    vt.par_chunks_mut(kp).enumerate().for_each(|(row, out)| {
        let (bg, dd) = (row / d, row % d);
        let (b, hk) = (bg / hk_n, bg % hk_n);
        for (c, o) in out.iter_mut().enumerate() {
            let key = 32 * (c / 32) + key_order(c % 32);
            if key < s.seq_k {
                *o = v8[((b * s.seq_k + key) * hk_n + hk) * d + dd];
            }
        }
    });
    let mut descales = dq;
    descales.extend(dk);
    descales.extend(dv);
    Fp8Inputs { q: q8, k: k8, vt, descales, q_values, k_values, v_values }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_is_a_permutation_matching_the_fragments() {
        let mut seen = [false; 32];
        for p in 0..32 {
            seen[key_order(p)] = true;
        }
        assert!(seen.iter().all(|&s| s));
        // Thread t = 1 holds A positions 4..8: keys 2, 3, 10, 11.
        assert_eq!((4..8).map(key_order).collect::<Vec<_>>(), vec![2, 3, 10, 11]);
        assert_eq!((20..24).map(key_order).collect::<Vec<_>>(), vec![18, 19, 26, 27]);
    }

    #[test]
    fn quantized_values_are_close_and_vt_is_transposed_in_key_order() {
        let s = Shape { batch: 2, seq_q: 5, seq_k: 37, heads: 4, kv_heads: 2, head_dim: 64 };
        let seed = crate::reference::fresh_seed();
        let q = crate::reference::random_bf16(s.q_elems(), seed);
        let k = crate::reference::random_bf16(s.kv_elems(), seed + 1);
        let v = crate::reference::random_bf16(s.kv_elems(), seed + 2);
        let f = quantize(&s, &q, &k, &v);
        assert_eq!(f.descales.len(), 3 * 4);
        for (x, y) in q.iter().zip(&f.q_values) {
            // 3 mantissa bits: relative error at most 2^-4 (values below the subnormal range
            // of the scaled tensor are absolute 2^-10 * descale).
            let x = x.to_f64();
            assert!((x - y).abs() <= x.abs() / 16.0 + 1e-3, "{x} vs {y} (seed {seed})");
        }
        let kp = keys_padded(37);
        assert_eq!(kp, 64);
        assert_eq!(f.vt.len(), 2 * 2 * 64 * kp);
        // Row (b 1, hk 0, d 5) is row (1 * 2 + 0) * 64 + 5: column 4 holds key 2, V[1, 2, 0, 5].
        let row = (2 * 64 + 5) * kp;
        let dv = f.descales[8 + 2];
        assert_eq!(decode(f.vt[row + 4]) as f64 * dv as f64, f.v_values[((37 + 2) * 2) * 64 + 5]);
        // Padding past seq_k (key 37 and on) is zero.
        let pad = (32..64).filter(|&c| 32 + key_order(c % 32) >= 37);
        assert!(pad.clone().count() > 0);
        assert!(pad.into_iter().all(|c| f.vt[row + c] == 0));
    }
}
