//! Floating-point arithmetic and conversions (`add/sub/mul/div/min/max.f32/f64`, `fma`, the
//! `.approx` functions, `cvt`, the packing `cvt` to bf16x2/f16x2), and the exact rounding
//! helpers they and the tensor family use.

use super::super::ir::*;
use super::lanes::{ix, lanes, map3, sx, wmask};
use half::{bf16, f16};

#[inline]
pub(super) fn ftz32(x: f32, ftz: bool) -> f32 {
    if ftz && x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

#[inline]
pub(super) fn out32(x: f32, ftz: bool, sat: bool) -> u64 {
    let mut x = ftz32(x, ftz);
    if sat {
        x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    }
    x.to_bits() as u64
}

/// Error of the f64 sum `s = a + b` (Knuth's two-sum): `a + b == s + err` exactly.
#[inline]
pub(super) fn two_sum_err(a: f64, b: f64, s: f64) -> f64 {
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

/// Rounds the exact value `hi + lo` (hi = its f64 rounding) to f32 with mode `r`.
#[inline]
pub(super) fn round_f32(hi: f64, lo: f64, r: Rnd) -> f32 {
    let x = hi as f32;
    if !hi.is_finite() || !x.is_finite() {
        return match r {
            Rnd::Rz if x.is_infinite() && hi.is_finite() => f32::MAX.copysign(x),
            Rnd::Rm if x == f32::INFINITY && hi.is_finite() => f32::MAX,
            Rnd::Rp if x == f32::NEG_INFINITY && hi.is_finite() => f32::MIN,
            _ => x,
        };
    }
    let d = hi - x as f64; // exact: x is the rounding of hi
    let sign = if d != 0.0 {
        d.signum()
    } else if lo != 0.0 {
        lo.signum()
    } else {
        0.0
    };
    match r {
        Rnd::Rm if sign < 0.0 => x.next_down(),
        Rnd::Rp if sign > 0.0 => x.next_up(),
        Rnd::Rz if sign < 0.0 && x > 0.0 => x.next_down(),
        Rnd::Rz if sign > 0.0 && x < 0.0 => x.next_up(),
        Rnd::Rm | Rnd::Rp | Rnd::Rz => x,
        _ => {
            // Round to nearest: hi may sit exactly on an f32 midpoint that lo breaks.
            if lo != 0.0 && d != 0.0 {
                let other = if d > 0.0 { x.next_up() } else { x.next_down() };
                let mid = (x as f64 + other as f64) * 0.5;
                if hi == mid {
                    return if (lo > 0.0) == (other > x) { other } else { x };
                }
            }
            x
        }
    }
}

#[inline(always)]
pub(super) fn f32_fma(a: f32, b: f32, c: f32, r: Rnd) -> f32 {
    let p = a as f64 * b as f64; // exact
    let s = p + c as f64;
    if matches!(r, Rnd::Default | Rnd::Rn) {
        // Rounding s to f32 is correct unless s lies exactly halfway between two f32 values
        // (low 29 mantissa bits 1000...0) or the result is subnormal; then use the exact path.
        let x = s as f32;
        if s.to_bits() & 0x1fff_ffff != 0x1000_0000 && (x.abs() >= f32::MIN_POSITIVE || x == 0.0) {
            return x;
        }
    }
    round_f32(s, two_sum_err(p, c as f64, s), r)
}

/// f16 bits to f64, exactly (finite values by their bits; infinities and NaNs as the `half`
/// crate converts them). The `half` conversion dispatches on CPU features per call, which was a
/// visible cost of mma.
#[inline(always)]
pub(super) fn f16_f64(h: u16) -> f64 {
    let e = ((h >> 10) & 0x1f) as u64;
    let m = (h & 0x3ff) as u64;
    let v = match e {
        0x1f => return f16::from_bits(h).to_f64(),
        // Subnormal or zero: m * 2^-24, exact.
        0 => m as f64 * f64::from_bits((1023 - 24) << 52),
        _ => f64::from_bits((e + 1023 - 15) << 52 | m << 42),
    };
    if h & 0x8000 != 0 {
        -v
    } else {
        v
    }
}

/// bf16 bits to f64, exactly (NaNs as the `half` crate converts them).
#[inline(always)]
pub(super) fn bf16_f64(h: u16) -> f64 {
    if h & 0x7f80 == 0x7f80 && h & 0x7f != 0 {
        return bf16::from_bits(h).to_f64();
    }
    f32::from_bits((h as u32) << 16) as f64
}

pub(super) fn half_to_f64(v: u64, t: Ty) -> f64 {
    match t {
        Ty::F16 => f16::from_bits(v as u16).to_f64(),
        Ty::Bf16 => bf16::from_bits(v as u16).to_f64(),
        Ty::F32 => f32::from_bits(v as u32) as f64,
        _ => f64::from_bits(v),
    }
}

pub(super) fn cvt(v: u64, i: &Inst, relu: bool) -> u64 {
    let (dst, src) = (i.ty, i.ty2);
    if dst.is_fp8() || src.is_fp8() {
        return cvt_fp8(v, dst, src, relu);
    }
    if src.is_float() {
        let mut x = match src {
            Ty::F32 => ftz32(f32::from_bits(v as u32), i.ftz) as f64,
            _ => half_to_f64(v, src),
        };
        let int_round = |x: f64| match i.rnd {
            Rnd::Rni => x.round_ties_even(),
            Rnd::Rzi => x.trunc(),
            Rnd::Rmi => x.floor(),
            Rnd::Rpi => x.ceil(),
            _ => x,
        };
        if dst.is_float() {
            x = int_round(x);
            if relu && (x < 0.0 || x.is_nan()) {
                x = if x.is_nan() { f64::NAN } else { 0.0 };
            }
            if i.sat && dst != Ty::F32 {
                x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
            }
            match dst {
                Ty::F32 => {
                    let r = match i.rnd {
                        Rnd::Rz | Rnd::Rm | Rnd::Rp => i.rnd,
                        _ => Rnd::Rn,
                    };
                    out32(round_f32(x, 0.0, r), i.ftz, i.sat)
                }
                Ty::F64 => x.to_bits(),
                Ty::F16 => f16::from_f64(x).to_bits() as u64,
                _ => bf16::from_f64(x).to_bits() as u64,
            }
        } else {
            let x = match i.rnd {
                Rnd::Default => x.trunc(),
                _ => int_round(x),
            };
            let w = dst.bits();
            if x.is_nan() {
                return 0;
            }
            if dst.signed() {
                let (lo, hi) = (-(2f64.powi(w as i32 - 1)), 2f64.powi(w as i32 - 1) - 1.0);
                (x.clamp(lo, hi) as i64 as u64) & wmask(w)
            } else {
                let hi = 2f64.powi(w as i32) - 1.0;
                (x.clamp(0.0, hi) as u64) & wmask(w)
            }
        }
    } else {
        let w = src.bits();
        let xi: i128 = if src.signed() { sx(v, w) as i128 } else { (v & wmask(w)) as i128 };
        match dst {
            Ty::F32 => {
                let hi = xi as f64;
                let lo = (xi - hi as i128) as f64;
                let r = match i.rnd {
                    Rnd::Rz | Rnd::Rm | Rnd::Rp => i.rnd,
                    _ => Rnd::Rn,
                };
                round_f32(hi, lo, r).to_bits() as u64
            }
            Ty::F64 => (xi as f64).to_bits(),
            Ty::F16 => f16::from_f64(xi as f64).to_bits() as u64,
            Ty::Bf16 => bf16::from_f64(xi as f64).to_bits() as u64,
            _ => {
                let dw = dst.bits();
                let mut y = xi;
                if i.sat {
                    let (lo, hi) = if dst.signed() {
                        (-(1i128 << (dw - 1)), (1i128 << (dw - 1)) - 1)
                    } else {
                        (0, (1i128 << dw) - 1)
                    };
                    y = y.clamp(lo, hi);
                }
                (y as u64) & wmask(dw)
            }
        }
    }
}

// ---- execution, one warp instruction over the lanes of `m` ----------------------------------

/// add sub mul div min max; f32 honours .ftz, .sat and directed rounding.
#[inline(always)]
pub(super) fn binary(r: &mut [u64], m: u32, i: &Inst, op: FBin) {
    if i.ty == Ty::F64 {
        lanes!(m, lane, {
            let (a, b) = (f64::from_bits(r[ix(i.a, lane)]), f64::from_bits(r[ix(i.b, lane)]));
            r[ix(i.d, lane)] = match op {
                FBin::Add => a + b,
                FBin::Sub => a - b,
                FBin::Mul => a * b,
                FBin::Div => a / b,
                FBin::Min => a.min(b),
                FBin::Max => a.max(b),
            }
            .to_bits();
        });
    } else {
        let (ftz, sat, rnd) = (i.ftz, i.sat, i.rnd);
        let directed = matches!(rnd, Rnd::Rz | Rnd::Rm | Rnd::Rp);
        lanes!(m, lane, {
            let a = ftz32(f32::from_bits(r[ix(i.a, lane)] as u32), ftz);
            let b = ftz32(f32::from_bits(r[ix(i.b, lane)] as u32), ftz);
            let v = match op {
                FBin::Add | FBin::Sub if directed => {
                    let b = if op == FBin::Sub { -b } else { b };
                    let s = a as f64 + b as f64;
                    round_f32(s, two_sum_err(a as f64, b as f64, s), rnd)
                }
                FBin::Mul if directed => round_f32(a as f64 * b as f64, 0.0, rnd),
                FBin::Add => a + b,
                FBin::Sub => a - b,
                FBin::Mul => a * b,
                FBin::Div => a / b,
                FBin::Min => a.min(b),
                FBin::Max => a.max(b),
            };
            r[ix(i.d, lane)] = out32(v, ftz, sat);
        });
    }
}

/// fma / mad: f32 correctly rounded in any mode, f64 fused.
#[inline(always)]
pub(super) fn fma(r: &mut [u64], m: u32, i: &Inst) {
    if i.ty == Ty::F64 {
        lanes!(m, lane, {
            let (a, b, c) =
                (f64::from_bits(r[ix(i.a, lane)]), f64::from_bits(r[ix(i.b, lane)]), f64::from_bits(r[ix(i.c, lane)]));
            r[ix(i.d, lane)] = a.mul_add(b, c).to_bits();
        });
    } else {
        let (ftz, sat, rnd) = (i.ftz, i.sat, i.rnd);
        map3(r, m, i.d, i.a, i.b, i.c, |a, b, c| {
            let a = ftz32(f32::from_bits(a as u32), ftz);
            let b = ftz32(f32::from_bits(b as u32), ftz);
            let c = ftz32(f32::from_bits(c as u32), ftz);
            out32(f32_fma(a, b, c, rnd), ftz, sat)
        });
    }
}

/// abs neg rcp sqrt rsqrt ex2 lg2 sin cos tanh: `.approx` ones are the f32 rounding of the exact value.
#[inline(always)]
pub(super) fn unary(r: &mut [u64], m: u32, i: &Inst, op: FUn) {
    if i.ty == Ty::F64 {
        lanes!(m, lane, {
            let a = f64::from_bits(r[ix(i.a, lane)]);
            r[ix(i.d, lane)] = match op {
                FUn::Abs => a.abs(),
                FUn::Neg => -a,
                FUn::Rcp => 1.0 / a,
                FUn::Sqrt => a.sqrt(),
                FUn::Rsqrt => 1.0 / a.sqrt(),
                FUn::Ex2 => a.exp2(),
                FUn::Lg2 => a.log2(),
                FUn::Sin => a.sin(),
                FUn::Cos => a.cos(),
                FUn::Tanh => a.tanh(),
            }
            .to_bits();
        });
    } else {
        let (ftz, sat) = (i.ftz, i.sat);
        lanes!(m, lane, {
            let a = ftz32(f32::from_bits(r[ix(i.a, lane)] as u32), ftz);
            let x = a as f64;
            // .approx functions are computed to f32 rounding of the exact value.
            let v = match op {
                FUn::Abs => a.abs(),
                FUn::Neg => -a,
                FUn::Rcp => 1.0 / a,
                FUn::Sqrt => a.sqrt(),
                FUn::Rsqrt => (1.0 / x.sqrt()) as f32,
                FUn::Ex2 => x.exp2() as f32,
                FUn::Lg2 => x.log2() as f32,
                FUn::Sin => x.sin() as f32,
                FUn::Cos => x.cos() as f32,
                FUn::Tanh => x.tanh() as f32,
            };
            r[ix(i.d, lane)] = out32(v, ftz, sat);
        });
    }
}

/// cvt between any two types (see [`cvt`]).
#[inline(always)]
pub(super) fn convert(r: &mut [u64], m: u32, i: &Inst, relu: bool) {
    lanes!(m, lane, {
        r[ix(i.d, lane)] = cvt(r[ix(i.a, lane)], i, relu);
    });
}

/// cvt.{bf16x2,f16x2}.f32 d, a, b: a in the upper half; cvt.rn.satfinite.{e4m3x2,e5m2x2}.f32:
/// a in the upper byte.
#[inline(always)]
pub(super) fn cvt_pack(r: &mut [u64], m: u32, i: &Inst, relu: bool) {
    if matches!(i.ty, Ty::E4m3x2 | Ty::E5m2x2) {
        let e4 = i.ty == Ty::E4m3x2;
        lanes!(m, lane, {
            let f = |v: u64| f64_f8(f32::from_bits(v as u32) as f64, e4, relu) as u64;
            r[ix(i.d, lane)] = f(r[ix(i.a, lane)]) << 8 | f(r[ix(i.b, lane)]);
        });
        return;
    }
    let bfl = i.ty == Ty::Bf16x2;
    lanes!(m, lane, {
        let conv = |v: u64| {
            let mut x = f32::from_bits(v as u32);
            if relu && x < 0.0 {
                x = 0.0;
            }
            if bfl {
                bf16::from_f32(x).to_bits() as u64
            } else {
                f16::from_f32(x).to_bits() as u64
            }
        };
        r[ix(i.d, lane)] = conv(r[ix(i.a, lane)]) << 16 | conv(r[ix(i.b, lane)]);
    });
}

// ---- fp8 (OCP E4M3: bias 7, 3 mantissa bits, no infinity, NaN S.1111.111, largest 448;
// E5M2: bias 15, 2 mantissa bits, IEEE-like infinity and NaNs, largest 57344) ----------------

/// The canonical NaN the emulator writes for an fp8 result (both formats) and for an f16 result
/// of a NaN fp8 input. What the hardware writes is to be confirmed on a GPU.
pub(super) const F8_NAN: u8 = 0x7f;
pub(super) const F16_NAN: u16 = 0x7fff;

/// 2^e for the exponents fp8 needs (a normal f64).
const fn pow2(e: i32) -> f64 {
    f64::from_bits(((e + 1023) as u64) << 52)
}

/// The value of fp8 code `b`, exactly (e4m3: bias 7, S.1111.111 NaN; e5m2: bias 15, IEEE-style
/// infinities and NaNs).
const fn f8_decode(b: u8, e4m3: bool) -> f64 {
    let (mb, bias) = if e4m3 { (3u32, 7i32) } else { (2, 15) };
    let e = ((b & 0x7f) >> mb) as i32;
    let m = (b as u32) & ((1 << mb) - 1);
    let emax = if e4m3 { 15 } else { 31 };
    let v = if e4m3 && e == emax && m == 7 {
        f64::NAN
    } else if !e4m3 && e == emax {
        if m == 0 {
            f64::INFINITY
        } else {
            f64::NAN
        }
    } else if e == 0 {
        m as f64 * pow2(1 - bias - mb as i32)
    } else {
        ((1u32 << mb) + m) as f64 * pow2(e - bias - mb as i32)
    };
    if b & 0x80 != 0 {
        -v
    } else {
        v
    }
}

const fn f8_table(e4m3: bool) -> [f64; 256] {
    let mut t = [0f64; 256];
    let mut c = 0;
    while c < 256 {
        t[c] = f8_decode(c as u8, e4m3);
        c += 1;
    }
    t
}

static E4M3: [f64; 256] = f8_table(true);
static E5M2: [f64; 256] = f8_table(false);

/// The value of fp8 `b` (e4m3 or e5m2), exactly (a table: wgmma decodes every operand element).
#[inline(always)]
pub(super) fn f8_f64(b: u8, e4m3: bool) -> f64 {
    if e4m3 {
        E4M3[b as usize]
    } else {
        E5M2[b as usize]
    }
}

/// `x` rounded to nearest even in e4m3 / e5m2 with `.satfinite` (finite values and infinities
/// beyond the largest finite value give the largest finite value of that sign; NaN gives
/// [`F8_NAN`]); `.relu` turns negative results (and -0) into +0.
pub(super) fn f64_f8(x: f64, e4m3: bool, relu: bool) -> u8 {
    let (mb, bias, maxv, maxcode) = if e4m3 { (3i32, 7i32, 448.0, 0x7eu8) } else { (2, 15, 57344.0, 0x7b) };
    if x.is_nan() {
        return F8_NAN;
    }
    let x = if relu && x.is_sign_negative() { 0.0 } else { x };
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let a = x.abs();
    if a == 0.0 {
        return sign;
    }
    if a >= maxv {
        return sign | maxcode;
    }
    // a is normal in f64 (it came from an f32 or f16): its exponent from the bits.
    let e = ((a.to_bits() >> 52) as i32) - 1023;
    let q = e.max(1 - bias) - mb; // exponent of one unit in the last place
    let n = (a * pow2(-q)).round_ties_even(); // exact scaling, then RNE
    if n * pow2(q) > maxv {
        return sign | maxcode;
    }
    let n = n as u32;
    // n < 2^mb only for subnormals (q is then the subnormal quantum); rounding up may carry into
    // the next binade (n = 2^(mb+1)).
    let (ef, m) = if n < (1 << mb) {
        (0u32, n)
    } else if n == 1 << (mb + 1) {
        ((q + mb + 1 + bias) as u32, 0)
    } else {
        ((q + mb + bias) as u32, n - (1 << mb))
    };
    sign | (ef << mb | m) as u8
}

/// fp8 `b` as f16 bits (exact; NaN as [`F16_NAN`]), `.relu`: negative to +0.
fn f8_f16(b: u8, e4m3: bool, relu: bool) -> u16 {
    let v = f8_f64(b, e4m3);
    if v.is_nan() {
        return F16_NAN;
    }
    if relu && v.is_sign_negative() {
        return 0;
    }
    f16::from_f64(v).to_bits()
}

/// The single-source fp8 conversions: {e4m3x2,e5m2x2} <- f16x2 and f16x2 <- {e4m3x2,e5m2x2},
/// each half (byte) converted on its own, upper to upper.
fn cvt_fp8(v: u64, dst: Ty, src: Ty, relu: bool) -> u64 {
    match (dst, src) {
        (Ty::F16x2, s) => {
            let e4 = s == Ty::E4m3x2;
            (f8_f16((v >> 8) as u8, e4, relu) as u64) << 16 | f8_f16(v as u8, e4, relu) as u64
        }
        (d, _) => {
            let e4 = d == Ty::E4m3x2;
            let h = |x: u64| f64_f8(f16_f64(x as u16), e4, relu) as u64;
            h(v >> 16) << 8 | h(v)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mma operand conversions agree with the `half` crate bit for bit on every input.
    #[test]
    fn half_conversions_match_half_crate() {
        for h in 0..=u16::MAX {
            assert_eq!(f16_f64(h).to_bits(), f16::from_bits(h).to_f64().to_bits(), "f16 {h:#06x}");
            assert_eq!(bf16_f64(h).to_bits(), bf16::from_bits(h).to_f64().to_bits(), "bf16 {h:#06x}");
        }
    }
}
