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

/// cvt.{bf16x2,f16x2}.f32 d, a, b: a in the upper half.
#[inline(always)]
pub(super) fn cvt_pack(r: &mut [u64], m: u32, i: &Inst, relu: bool) {
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
