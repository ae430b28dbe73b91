//! fp8 e4m3 (the "FN" variant: no infinities, NaN = `S.1111.111`) and the host-side quantizer of a
//! paged K/V cache.
//!
//! e4m3: sign, 4 exponent bits (bias 7), 3 mantissa bits. Normal values `(1 + m/8) 2^(e-7)` for
//! e = 1..15 except the NaN pair (0x7F, 0xFF): 2^-6 .. 448; subnormals `m/8 2^-6` = m 2^-9.
//!
//! [`encode`] rounds an f32 like `cvt.rn.satfinite.e4m3x2.f32`: to nearest, ties to even; a
//! magnitude that rounds beyond 448, and infinity, saturates to ±448; NaN stays NaN (0x7F with the
//! sign bit). A kernel or a server appending tokens on the GPU with that instruction produces the
//! same codes as this host quantizer.
//!
//! Scales: one bf16 per token and KV head (the choice is argued in [`super`]). A token's row `x`
//! gets `scale = amax(|x|) / 448` rounded *up* to bf16 (so `|x| / scale <= 448`: nothing clips), 1
//! for an all-zero row, and codes `encode(x_i / scale)` with the division in f32. Dequantized, an
//! element is `decode(code) * scale`, exact in f64 (a 4-bit times an 8-bit significand).

use super::{BatchError, BatchResult, PagedBatch};
use half::bf16;

/// Largest finite e4m3 magnitude.
pub const E4M3_MAX: f32 = 448.0;
/// The code a quantizer writes for NaN (and the poison of unused slots).
pub const NAN_CODE: u8 = 0x7F;

/// The value of an e4m3 code (NaN for 0x7F and 0xFF).
pub fn decode(code: u8) -> f32 {
    let sign = if code & 0x80 != 0 { -1.0f32 } else { 1.0 };
    let (e, m) = ((code >> 3) & 0xF, code & 0x7);
    if e == 0xF && m == 0x7 {
        return f32::NAN;
    }
    let mag = if e == 0 { m as f32 * (-9f32).exp2() } else { (8 + m) as f32 * (e as f32 - 10.0).exp2() };
    sign * mag
}

/// The e4m3 code of `x`, rounded to nearest even with saturation to ±448 (`cvt.rn.satfinite`).
pub fn encode(x: f32) -> u8 {
    let sign = ((x.to_bits() >> 31) as u8) << 7;
    let a = x.abs();
    if a.is_nan() {
        return NAN_CODE | sign;
    }
    // 448 is the largest code (mantissa 110); the next step (480) is NaN's encoding, so every
    // magnitude from 448 up, rounded or saturated, ends at 448 (464, the midpoint, ties to 448's
    // even mantissa).
    if a >= E4M3_MAX {
        return 0x7E | sign;
    }
    let code = if a < (-6f32).exp2() {
        // Subnormal (and the rounding up into the smallest normal, code 8): the value in units of
        // 2^-9, rounded to an integer 0..=8. Scaling by a power of two is exact in f32.
        let t = a * 512.0;
        let f = t.floor();
        let frac = t - f;
        let n = f as u8;
        if frac > 0.5 || (frac == 0.5 && n & 1 == 1) {
            n + 1
        } else {
            n
        }
    } else {
        // Normal: keep the f32 exponent (rebiased 127 -> 7) and the top 3 of 23 mantissa bits,
        // rounding on the 20 dropped ones; a carry out of the mantissa bumps the exponent, which
        // is the correctly rounded next binade.
        let bits = a.to_bits();
        let e = ((bits >> 23) & 0xFF) as i32 - 127 + 7;
        let mant = bits & 0x7F_FFFF;
        let (keep, rest, half) = (mant >> 20, mant & 0xF_FFFF, 1u32 << 19);
        let mut c = ((e as u32) << 3) | keep;
        if rest > half || (rest == half && keep & 1 == 1) {
            c += 1;
        }
        c as u8
    };
    code | sign
}

/// The scale of one token's row: `amax / 448` rounded up to bf16; 1 for an all-zero row; `None`
/// when the row holds a NaN or an infinity.
pub fn row_scale(row: &[bf16]) -> Option<bf16> {
    let mut amax = 0f32;
    for x in row {
        let a = x.to_f32().abs();
        if !a.is_finite() {
            return None;
        }
        amax = amax.max(a);
    }
    if amax == 0.0 {
        return Some(bf16::ONE);
    }
    let want = amax / E4M3_MAX;
    let mut s = bf16::from_f32(want);
    if s.to_f32() < want {
        // Round up: the next bf16 (positive, finite: amax / 448 is far below bf16's maximum).
        s = bf16::from_bits(s.to_bits() + 1);
    }
    Some(s)
}

/// Codes of one row at `scale`.
pub fn quantize_row(row: &[bf16], scale: bf16, out: &mut [u8]) {
    let s = scale.to_f32();
    for (o, x) in out.iter_mut().zip(row) {
        *o = encode(x.to_f32() / s);
    }
}

/// An element's dequantized value, exact.
pub fn dequantize(code: u8, scale: bf16) -> f64 {
    decode(code) as f64 * scale.to_f64()
}

/// A paged pool of one of K or V in fp8: codes `[num_pages, kv_heads, page_size, head_dim]` and
/// scales `[num_pages, kv_heads, page_size]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Fp8Pool {
    pub codes: Vec<u8>,
    pub scales: Vec<bf16>,
}

/// Quantizes the rows of `pool` (bf16, the batch's layout) that hold a cached token of some
/// sequence; every other slot gets the NaN code and a NaN scale (never read). A row with a NaN or
/// an infinity is refused, naming its slot.
pub fn quantize_pool(batch: &PagedBatch, pool: &[bf16]) -> BatchResult<Fp8Pool> {
    batch.validate()?;
    if pool.len() != batch.pool_elems() {
        return Err(BatchError::Data { what: "bf16 pool", got: pool.len(), want: batch.pool_elems() });
    }
    let d = batch.head_dim;
    let mut out = Fp8Pool { codes: vec![NAN_CODE; pool.len()], scales: vec![bf16::NAN; batch.scale_elems()] };
    for row in batch.used_rows() {
        let x = &pool[row * d..(row + 1) * d];
        let s = row_scale(x).ok_or(BatchError::NotFinite { what: "K/V pool row", index: row })?;
        out.scales[row] = s;
        quantize_row(x, s, &mut out.codes[row * d..(row + 1) * d]);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    /// Every code's value built another way: binade by binade.
    fn table() -> Vec<(u8, f64)> {
        let mut t = Vec::new();
        for k in 0..8u8 {
            t.push((k, k as f64 * 2f64.powi(-9)));
        }
        for b in -6..=8i32 {
            for j in 0..8u8 {
                let code = (((b + 7) as u8) << 3) | j;
                if code == 0x7F {
                    continue;
                }
                t.push((code, 2f64.powi(b) + j as f64 * 2f64.powi(b - 3)));
            }
        }
        t
    }

    #[test]
    fn decoding_every_code() {
        let t = table();
        assert_eq!(t.len(), 127, "127 finite non-negative codes");
        for (c, v) in &t {
            assert_eq!(decode(*c) as f64, *v, "code {c:#04x}");
            assert_eq!(decode(c | 0x80) as f64, -v, "code {:#04x}", c | 0x80);
        }
        for code in 0..=255u8 {
            let nan = code & 0x7F == 0x7F;
            assert_eq!(decode(code).is_nan(), nan, "code {code:#04x}");
        }
        assert_eq!(decode(0x7E), 448.0);
        assert_eq!(decode(0x08), 2f32.powi(-6));
        assert_eq!(decode(0x01), 2f32.powi(-9));
        assert!(decode(0x80) == 0.0 && decode(0x80).is_sign_negative());
        // Increasing over the positive codes.
        assert!((0..0x7Eu8).all(|c| decode(c) < decode(c + 1)));
        // Every non-NaN code survives decode -> encode.
        for code in 0..=255u8 {
            if code & 0x7F != 0x7F {
                assert_eq!(encode(decode(code)), code, "code {code:#04x}");
            }
        }
    }

    /// The definition of round-to-nearest-even with satfinite, by search over every finite value
    /// in f64 (exact): nearest value, a tie to the code with an even mantissa; beyond 448 (and
    /// infinity) 448.
    fn encode_by_search(x: f32, t: &[(u8, f64)]) -> u8 {
        let sign = if x.is_sign_negative() { 0x80 } else { 0 };
        if x.is_nan() {
            return 0x7F | sign;
        }
        let a = (x as f64).abs();
        let mut best = t[0];
        for &(c, v) in t {
            let (d, db) = ((v - a).abs(), (best.1 - a).abs());
            if d < db || (d == db && c & 1 == 0) {
                best = (c, v);
            }
        }
        best.0 | sign
    }

    #[test]
    fn rounding_matches_the_search() {
        let t = table();
        let mut probes: Vec<f32> = Vec::new();
        // Every bf16 value (the inputs a bf16 cache holds), as f32.
        probes.extend((0..=u16::MAX).map(|b| bf16::from_bits(b).to_f32()));
        // Every midpoint between neighbouring values, and one f32 step either side.
        let mut vals: Vec<f64> = t.iter().map(|x| x.1).collect();
        vals.sort_by(f64::total_cmp);
        for w in vals.windows(2) {
            let mid = ((w[0] + w[1]) / 2.0) as f32;
            assert_eq!(mid as f64, (w[0] + w[1]) / 2.0, "midpoints are f32 values");
            probes.extend([mid, f32::from_bits(mid.to_bits() - 1), f32::from_bits(mid.to_bits() + 1)]);
        }
        probes.extend([448.0, 464.0, 464.0001, 479.9, 480.0, 1e30, f32::INFINITY, f32::MAX, 2f32.powi(-10)]);
        probes.extend([f32::from_bits(1), f32::MIN_POSITIVE, 0.0]);
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        probes.extend((0..200_000).map(|_| f32::from_bits(rng.random::<u32>())));
        probes.extend((0..200_000).map(|_| rng.random_range(-500.0f32..500.0)));
        for x in probes {
            for x in [x, -x] {
                let (got, want) = (encode(x), encode_by_search(x, &t));
                if x.is_nan() {
                    assert!(decode(got).is_nan(), "{x}");
                } else {
                    assert_eq!(got, want, "{x:e} ({:#010x}): {got:#04x} vs {want:#04x}", x.to_bits());
                }
            }
        }
        assert_eq!(encode(f32::INFINITY), 0x7E);
        assert_eq!(encode(f32::NEG_INFINITY), 0xFE);
        assert_eq!(encode(464.0), 0x7E, "the tie past 448 goes to 448 (even mantissa)");
        assert_eq!(encode(2f32.powi(-10)), 0x00, "half the smallest subnormal ties to zero");
        assert_eq!(encode(3.0 * 2f32.powi(-10)), 0x02, "1.5 subnormal steps tie to 2 (even)");
    }

    #[test]
    fn scales_bound_every_row() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..2000 {
            let mag = 2f32.powi(rng.random_range(-130..120));
            let row: Vec<bf16> = (0..64).map(|_| bf16::from_f32(rng.random_range(-1.0f32..1.0) * mag)).collect();
            let s = row_scale(&row).unwrap();
            let amax = row.iter().map(|x| x.to_f64().abs()).fold(0.0, f64::max);
            assert!(amax / s.to_f64() <= 448.0, "scale {s} for amax {amax}");
            let mut codes = vec![0u8; 64];
            quantize_row(&row, s, &mut codes);
            for (x, c) in row.iter().zip(&codes) {
                // Relative error of a normal e4m3 value: at most half a step, 2^-4; below the
                // smallest normal, half the subnormal step 2^-10, times the scale; plus the f32
                // division's rounding (2^-24 relative, with room).
                let (x, y) = (x.to_f64(), dequantize(*c, s));
                let bound = (x.abs() * 2f64.powi(-4)).max(2f64.powi(-10) * s.to_f64()) + x.abs() * 2f64.powi(-22);
                assert!((x - y).abs() <= bound, "{x} -> {y} (scale {s})");
            }
        }
        assert_eq!(row_scale(&[bf16::ZERO; 8]), Some(bf16::ONE));
        assert_eq!(row_scale(&[bf16::ONE, bf16::NAN]), None);
        assert_eq!(row_scale(&[bf16::INFINITY]), None);
        // The largest bf16 row still gets a finite scale that holds it.
        let s = row_scale(&[bf16::MAX]).unwrap();
        assert!(s.is_finite() && bf16::MAX.to_f64() / s.to_f64() <= 448.0);
    }

    #[test]
    fn pools_quantize_used_rows_only() {
        use super::super::{Allocation, KvDtype, SeqSpec};
        let b = PagedBatch::allocate(
            4,
            2,
            64,
            16,
            KvDtype::Fp8,
            &[SeqSpec { keys: 20, new_tokens: 2 }, SeqSpec { keys: 5, new_tokens: 1 }],
            Allocation { spare_per_seq: 1, unused_pages: 2, shuffle: Some(5) },
        )
        .unwrap();
        let pool = b.random_pool(11, bf16::NAN);
        let q = quantize_pool(&b, &pool).unwrap();
        let used: std::collections::HashSet<usize> = b.used_rows().into_iter().collect();
        assert_eq!(used.len(), (20 + 5) * 2);
        for row in 0..b.scale_elems() {
            let codes = &q.codes[row * 64..(row + 1) * 64];
            if used.contains(&row) {
                assert!(q.scales[row].is_finite() && codes.iter().all(|&c| c != NAN_CODE), "row {row}");
            } else {
                assert!(q.scales[row].is_nan() && codes.iter().all(|&c| c == NAN_CODE), "row {row}");
            }
        }
        // A NaN inside a cached row is refused with its slot.
        let mut bad = pool.clone();
        let row = b.used_rows()[7];
        bad[row * 64 + 3] = bf16::NAN;
        assert_eq!(quantize_pool(&b, &bad).unwrap_err(), BatchError::NotFinite { what: "K/V pool row", index: row });
        assert!(matches!(quantize_pool(&b, &pool[1..]), Err(BatchError::Data { .. })));
    }
}
