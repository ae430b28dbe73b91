//! e4m3 (OCP FP8 E4M3: 1 sign, 4 exponent bits with bias 7, 3 mantissa bits; no infinities, NaN
//! = S.1111.111; largest finite 448; subnormals below 2^-6 down to 2^-9) and the inputs of the
//! `flash-hopper-fp8` variant: Q and K quantized per (batch, KV head) with a descale factor each,
//! V transposed (8-bit wgmma reads K-major operands only: for O += P V the keys must be
//! contiguous) and its keys put in the order the kernel's P fragments hold them
//! ([`key_order`]).

use crate::problem::Shape;
use half::bf16;
use rayon::prelude::*;

/// Largest finite e4m3 value.
pub const E4M3_MAX: f32 = 448.0;

/// The e4m3 nearest to `x` (ties to even), saturated to ±448 (as `cvt.rn.satfinite.e4m3x2.f32`);
/// NaN stays NaN.
pub fn e4m3_from_f32(x: f32) -> u8 {
    if x.is_nan() {
        return 0x7f;
    }
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let a = x.abs().min(E4M3_MAX);
    // Exponent of the e4m3 binade of `a` (subnormals share the binade of 2^-6).
    let e = if a < f32::powi(2.0, -6) { -6 } else { exponent(a) };
    let ulp = f32::powi(2.0, e - 3);
    // Round to a multiple of the binade's spacing, ties to even (exact in f32: a / ulp < 2^5).
    let m = a / ulp;
    let mut q = m.floor();
    let frac = m - q;
    if frac > 0.5 || (frac == 0.5 && q % 2.0 == 1.0) {
        q += 1.0;
    }
    let v = (q * ulp).min(E4M3_MAX);
    sign | e4m3_bits_of(v)
}

/// floor(log2 x) of a positive normal f32, from its exponent bits (no rounding of a logarithm).
fn exponent(x: f32) -> i32 {
    ((x.to_bits() >> 23) & 0xff) as i32 - 127
}

/// The bits of a non-negative value that is exactly representable in e4m3.
fn e4m3_bits_of(v: f32) -> u8 {
    if v == 0.0 {
        return 0;
    }
    let e = exponent(v);
    if e < -6 {
        // Subnormal: mantissa counts 2^-9.
        return (v / f32::powi(2.0, -9)).round() as u8;
    }
    let mant = ((v / f32::powi(2.0, e) - 1.0) * 8.0).round() as u32;
    // A mantissa that rounded up to 8 moved to the next binade.
    let (e, mant) = if mant == 8 { (e + 1, 0) } else { (e, mant) };
    (((e + 7) as u32) << 3 | mant) as u8
}

/// The value of an e4m3 byte.
pub fn e4m3_to_f32(b: u8) -> f32 {
    let sign = if b & 0x80 != 0 { -1.0 } else { 1.0 };
    let e = ((b >> 3) & 0xf) as i32;
    let m = (b & 7) as f32;
    if e == 0xf && b & 7 == 7 {
        return f32::NAN;
    }
    if e == 0 {
        sign * m * f32::powi(2.0, -9)
    } else {
        sign * (1.0 + m / 8.0) * f32::powi(2.0, e - 7)
    }
}

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
                let b = e4m3_from_f32(v.to_f32() / ds);
                (b, e4m3_to_f32(b) as f64 * ds as f64)
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
    fn every_byte_round_trips_and_rounding_is_nearest_even() {
        for b in 0..=255u8 {
            let x = e4m3_to_f32(b);
            if x.is_nan() {
                continue;
            }
            // -0 encodes as 0x80, 0 as 0x00.
            assert_eq!(e4m3_from_f32(x), b, "byte {b:#04x} = {x}");
        }
        assert_eq!(e4m3_to_f32(0x7e), 448.0);
        assert_eq!(e4m3_to_f32(0x01), f32::powi(2.0, -9));
        assert_eq!(e4m3_from_f32(1000.0), 0x7e, "saturates");
        assert_eq!(e4m3_from_f32(-1000.0), 0xfe);
        // 1 + 1/16 lies halfway between 1 and 1.125: ties to the even mantissa (1).
        assert_eq!(e4m3_to_f32(e4m3_from_f32(1.0625)), 1.0);
        assert_eq!(e4m3_to_f32(e4m3_from_f32(1.1875)), 1.25);
        assert_eq!(e4m3_to_f32(e4m3_from_f32(1.07)), 1.125);
        // Below half the smallest subnormal: zero.
        assert_eq!(e4m3_from_f32(f32::powi(2.0, -11)), 0);
    }

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
        assert_eq!(e4m3_to_f32(f.vt[row + 4]) as f64 * dv as f64, f.v_values[((37 + 2) * 2) * 64 + 5]);
        // Padding past seq_k (key 37 and on) is zero.
        let pad = (32..64).filter(|&c| 32 + key_order(c % 32) >= 37);
        assert!(pad.clone().count() > 0);
        assert!(pad.into_iter().all(|c| f.vt[row + c] == 0));
    }
}
