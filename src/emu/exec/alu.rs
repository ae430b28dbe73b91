//! The integer ALU: moves and vector pack/unpack, integer arithmetic, bit manipulation
//! (bfe, bfi, prmt, lop3, shf), comparisons (setp, set) and selp; and the scalar integer
//! operations that atomics and warp reductions share.

use super::super::ir::*;
use super::float::half_to_f64;
use super::lanes::{ix, lanes, map1, map2, map3, sx, wmask};

/// Compares `a` and `b` of type `t` (floats: ordered and unordered comparisons).
pub(super) fn cmp(c: Cmp, t: Ty, a: u64, b: u64) -> bool {
    if t.is_float() {
        let (x, y) = (half_to_f64(a, t), half_to_f64(b, t));
        let un = x.is_nan() || y.is_nan();
        return match c {
            Cmp::Eq => x == y,
            Cmp::Ne => x != y && !un,
            Cmp::Lt => x < y,
            Cmp::Le => x <= y,
            Cmp::Gt => x > y,
            Cmp::Ge => x >= y,
            Cmp::Equ => un || x == y,
            Cmp::Neu => un || x != y,
            Cmp::Ltu => un || x < y,
            Cmp::Leu => un || x <= y,
            Cmp::Gtu => un || x > y,
            Cmp::Geu => un || x >= y,
            Cmp::Num => !un,
            Cmp::Nan => un,
            Cmp::Lo | Cmp::Ls | Cmp::Hi | Cmp::Hs => false,
        };
    }
    let w = t.bits();
    let (ua, ub) = (a & wmask(w), b & wmask(w));
    let (sa, sb) = (sx(a, w), sx(b, w));
    let s = t.signed();
    match c {
        Cmp::Eq | Cmp::Equ => ua == ub,
        Cmp::Ne | Cmp::Neu => ua != ub,
        Cmp::Lt | Cmp::Ltu => {
            if s {
                sa < sb
            } else {
                ua < ub
            }
        }
        Cmp::Le | Cmp::Leu => {
            if s {
                sa <= sb
            } else {
                ua <= ub
            }
        }
        Cmp::Gt | Cmp::Gtu => {
            if s {
                sa > sb
            } else {
                ua > ub
            }
        }
        Cmp::Ge | Cmp::Geu => {
            if s {
                sa >= sb
            } else {
                ua >= ub
            }
        }
        Cmp::Lo => ua < ub,
        Cmp::Ls => ua <= ub,
        Cmp::Hi => ua > ub,
        Cmp::Hs => ua >= ub,
        Cmp::Num => true,
        Cmp::Nan => false,
    }
}

/// One integer operation on values of type `t`, masked to its width (`.wide`: twice it).
pub(super) fn ibin(op: IBin, t: Ty, a: u64, b: u64) -> u64 {
    let w = t.bits();
    let m = wmask(w);
    let s = t.signed();
    match op {
        IBin::Add => a.wrapping_add(b) & m,
        IBin::Sub => a.wrapping_sub(b) & m,
        IBin::MulLo => a.wrapping_mul(b) & m,
        IBin::MulHi => {
            if s {
                ((sx(a, w) as i128 * sx(b, w) as i128) >> w) as u64 & m
            } else {
                (((a & m) as u128 * (b & m) as u128) >> w) as u64 & m
            }
        }
        IBin::MulWide => {
            if s {
                (sx(a, w) as i128 * sx(b, w) as i128) as u64 & wmask(2 * w)
            } else {
                ((a & m) as u128 * (b & m) as u128) as u64 & wmask(2 * w)
            }
        }
        IBin::Div => {
            if s {
                let (x, y) = (sx(a, w), sx(b, w));
                if y == 0 {
                    m
                } else {
                    x.wrapping_div(y) as u64 & m
                }
            } else {
                let (x, y) = (a & m, b & m);
                x.checked_div(y).unwrap_or(m)
            }
        }
        IBin::Rem => {
            if s {
                let (x, y) = (sx(a, w), sx(b, w));
                if y == 0 {
                    a & m
                } else {
                    x.wrapping_rem(y) as u64 & m
                }
            } else {
                let (x, y) = (a & m, b & m);
                x.checked_rem(y).unwrap_or(x)
            }
        }
        IBin::Min => {
            if s {
                sx(a, w).min(sx(b, w)) as u64 & m
            } else {
                (a & m).min(b & m)
            }
        }
        IBin::Max => {
            if s {
                sx(a, w).max(sx(b, w)) as u64 & m
            } else {
                (a & m).max(b & m)
            }
        }
        IBin::And => a & b & m,
        IBin::Or => (a | b) & m,
        IBin::Xor => (a ^ b) & m,
        IBin::Shl => {
            let n = b as u32;
            if n >= w {
                0
            } else {
                (a << n) & m
            }
        }
        IBin::Shr => {
            let n = b as u32;
            if s {
                (sx(a, w) >> n.min(w - 1)) as u64 & m
            } else if n >= w {
                0
            } else {
                (a & m) >> n
            }
        }
    }
}

/// The value an atomic or a warp reduction stores: `op` applied to the old value `old` and `b`
/// (cas: compare with `b`, store `c`).
pub(super) fn atom_apply(op: AtomOp, t: Ty, old: u64, b: u64, c: u64) -> u64 {
    let w = t.bits();
    let m = wmask(w);
    match op {
        AtomOp::Add => match t {
            Ty::F32 => (f32::from_bits(old as u32) + f32::from_bits(b as u32)).to_bits() as u64,
            Ty::F64 => (f64::from_bits(old) + f64::from_bits(b)).to_bits(),
            _ => old.wrapping_add(b) & m,
        },
        AtomOp::Min => ibin(IBin::Min, t, old, b),
        AtomOp::Max => ibin(IBin::Max, t, old, b),
        AtomOp::Inc => {
            if (old & m) >= (b & m) {
                0
            } else {
                (old + 1) & m
            }
        }
        AtomOp::Dec => {
            if (old & m) == 0 || (old & m) > (b & m) {
                b & m
            } else {
                (old - 1) & m
            }
        }
        AtomOp::And => old & b & m,
        AtomOp::Or => (old | b) & m,
        AtomOp::Xor => (old ^ b) & m,
        AtomOp::Exch => b & m,
        AtomOp::Cas => {
            if (old & m) == (b & m) {
                c & m
            } else {
                old & m
            }
        }
    }
}

// ---- execution, one warp instruction over the lanes of `m` ----------------------------------

#[inline(always)]
pub(super) fn mov(r: &mut [u64], m: u32, i: &Inst) {
    let mk = wmask(i.ty.bits());
    map1(r, m, i.d, i.a, |x| x & mk);
}

/// d = the extra operands' `ty`-bit pieces, lowest first.
#[inline(always)]
pub(super) fn pack(r: &mut [u64], m: u32, i: &Inst, ext: &[u32]) {
    let pb = i.ty.bits();
    lanes!(m, lane, {
        let mut v = 0u64;
        for (j, &e) in ext.iter().enumerate() {
            v |= (r[ix(e, lane)] & wmask(pb)) << (j as u32 * pb);
        }
        r[ix(i.d, lane)] = v;
    });
}

/// The extra operands = `ty`-bit pieces of a, lowest first.
#[inline(always)]
pub(super) fn unpack(r: &mut [u64], m: u32, i: &Inst, ext: &[u32]) {
    let pb = i.ty.bits();
    lanes!(m, lane, {
        let v = r[ix(i.a, lane)];
        for (j, &e) in ext.iter().enumerate() {
            r[ix(e, lane)] = (v >> (j as u32 * pb)) & wmask(pb);
        }
    });
}

/// The common 32-bit cases are closures the full-warp loop vectorizes; the rest go through
/// [`ibin`].
#[inline(always)]
pub(super) fn binary(r: &mut [u64], m: u32, i: &Inst, op: IBin) {
    let t = i.ty;
    let (d, a, b) = (i.d, i.a, i.b);
    let mk = wmask(t.bits());
    match (op, t.bits()) {
        (IBin::Add, _) => map2(r, m, d, a, b, |x, y| x.wrapping_add(y) & mk),
        (IBin::Sub, _) => map2(r, m, d, a, b, |x, y| x.wrapping_sub(y) & mk),
        (IBin::MulLo, _) => map2(r, m, d, a, b, |x, y| x.wrapping_mul(y) & mk),
        (IBin::And, _) => map2(r, m, d, a, b, |x, y| x & y & mk),
        (IBin::Or, _) => map2(r, m, d, a, b, |x, y| (x | y) & mk),
        (IBin::Xor, _) => map2(r, m, d, a, b, |x, y| (x ^ y) & mk),
        (IBin::Shl, 32) => map2(r, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { (x << y as u32) & mk }),
        (IBin::Shr, 32) if !t.signed() => {
            map2(r, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { (x & mk) >> y as u32 })
        }
        (IBin::Shr, 32) => map2(r, m, d, a, b, |x, y| (((x as u32 as i32) >> (y as u32).min(31)) as u32) as u64),
        (IBin::MulWide, 32) if t.signed() => {
            map2(r, m, d, a, b, |x, y| ((x as u32 as i32 as i64) * (y as u32 as i32 as i64)) as u64)
        }
        _ => map2(r, m, d, a, b, |x, y| ibin(op, t, x, y)),
    }
}

#[inline(always)]
pub(super) fn mad(r: &mut [u64], m: u32, i: &Inst, op: IBin) {
    let t = i.ty;
    let wide = if op == IBin::MulWide { 2 * t.bits() } else { t.bits() };
    lanes!(m, lane, {
        let p = ibin(op, t, r[ix(i.a, lane)], r[ix(i.b, lane)]);
        r[ix(i.d, lane)] = p.wrapping_add(r[ix(i.c, lane)]) & wmask(wide);
    });
}

#[inline(always)]
pub(super) fn unary(r: &mut [u64], m: u32, i: &Inst, op: IUn) {
    let wd = i.ty.bits();
    let mk = wmask(wd);
    lanes!(m, lane, {
        let a = r[ix(i.a, lane)];
        r[ix(i.d, lane)] = match op {
            IUn::Abs => sx(a, wd).wrapping_abs() as u64 & mk,
            IUn::Neg => 0u64.wrapping_sub(a) & mk,
            IUn::Not => !a & mk,
            IUn::Popc => (a & mk).count_ones() as u64,
            IUn::Clz => ((a & mk).leading_zeros() - (64 - wd)) as u64,
            IUn::Brev => (a & mk).reverse_bits() >> (64 - wd),
            IUn::Bfind { shiftamt } => {
                // PTX ISA, integer arithmetic `bfind`: the most significant bit that differs from the sign (signed
                // types) or is set (unsigned); 0xffffffff when there is none.
                let v = if i.ty.signed() && sx(a, wd) < 0 { !a & mk } else { a & mk };
                if v == 0 {
                    0xffff_ffff
                } else {
                    let pos = 63 - v.leading_zeros();
                    if shiftamt {
                        (wd - 1 - pos) as u64
                    } else {
                        pos as u64
                    }
                }
            }
        };
    });
}

#[inline(always)]
pub(super) fn bfe(r: &mut [u64], m: u32, i: &Inst) {
    let wd = i.ty.bits();
    let mk = wmask(wd);
    let s = i.ty.signed();
    lanes!(m, lane, {
        let a = r[ix(i.a, lane)] & mk;
        let pos = (r[ix(i.b, lane)] & 0xff) as u32;
        let len = (r[ix(i.c, lane)] & 0xff) as u32;
        let v = if len == 0 {
            0
        } else {
            let msb = (pos + len - 1).min(wd - 1);
            let sbit = s && (a >> msb) & 1 == 1;
            let f = if pos >= wd { 0 } else { a >> pos };
            let f = if len >= 64 { f } else { f & wmask(len) };
            if sbit && len < wd {
                (f | !wmask(len)) & mk
            } else if sbit {
                mk
            } else {
                f & mk
            }
        };
        r[ix(i.d, lane)] = v;
    });
}

#[inline(always)]
pub(super) fn bfi(r: &mut [u64], m: u32, i: &Inst) {
    let wd = i.ty.bits();
    let mk = wmask(wd);
    lanes!(m, lane, {
        let a = r[ix(i.a, lane)];
        let b = r[ix(i.b, lane)] & mk;
        let pos = (r[ix(i.c, lane)] & 0xff) as u32;
        let len = (r[ix(i.e, lane)] & 0xff) as u32;
        r[ix(i.d, lane)] = if len == 0 || pos >= wd {
            b
        } else {
            let n = len.min(wd - pos);
            let fm = wmask(n) << pos;
            ((b & !fm) | ((a << pos) & fm)) & mk
        };
    });
}

#[inline(always)]
pub(super) fn prmt(r: &mut [u64], m: u32, i: &Inst) {
    lanes!(m, lane, {
        let ab = (r[ix(i.a, lane)] & 0xffff_ffff) | (r[ix(i.b, lane)] << 32);
        let c = r[ix(i.c, lane)];
        let mut d = 0u64;
        for j in 0..4 {
            let sel = (c >> (4 * j)) & 0xf;
            let mut byte = (ab >> ((sel & 7) * 8)) & 0xff;
            if sel & 8 != 0 {
                byte = if byte & 0x80 != 0 { 0xff } else { 0 };
            }
            d |= byte << (8 * j);
        }
        r[ix(i.d, lane)] = d;
    });
}

#[inline(always)]
pub(super) fn lop3(r: &mut [u64], m: u32, i: &Inst, lut: u8) {
    lanes!(m, lane, {
        let (a, b, c) = (r[ix(i.a, lane)] as u32, r[ix(i.b, lane)] as u32, r[ix(i.c, lane)] as u32);
        let mut d = 0u32;
        for t in 0..8 {
            if (lut >> t) & 1 == 1 {
                d |= (if t & 4 != 0 { a } else { !a })
                    & (if t & 2 != 0 { b } else { !b })
                    & (if t & 1 != 0 { c } else { !c });
            }
        }
        r[ix(i.d, lane)] = d as u64;
    });
}

#[inline(always)]
pub(super) fn shf(r: &mut [u64], m: u32, i: &Inst, left: bool, clamp: bool) {
    lanes!(m, lane, {
        let v = (r[ix(i.a, lane)] & 0xffff_ffff) | (r[ix(i.b, lane)] << 32);
        let c = r[ix(i.c, lane)] as u32;
        let n = if clamp { c.min(32) } else { c & 31 };
        r[ix(i.d, lane)] = if left { (v << n) >> 32 } else { (v >> n) & 0xffff_ffff };
    });
}

#[inline(always)]
pub(super) fn setp(r: &mut [u64], m: u32, i: &Inst, c: Cmp, bop: BoolOp) {
    let t = i.ty;
    lanes!(m, lane, {
        let res = cmp(c, t, r[ix(i.a, lane)], r[ix(i.b, lane)]);
        let p = if i.c != NOREG { ((r[ix(i.c, lane)] & 1) != 0) != i.pneg } else { false };
        let f = |x: bool| match bop {
            BoolOp::None => x,
            BoolOp::And => x && p,
            BoolOp::Or => x || p,
            BoolOp::Xor => x ^ p,
        };
        r[ix(i.d, lane)] = f(res) as u64;
        if i.d2 != NOREG {
            r[ix(i.d2, lane)] = f(!res) as u64;
        }
    });
}

#[inline(always)]
pub(super) fn set(r: &mut [u64], m: u32, i: &Inst, c: Cmp) {
    let (t, dt) = (i.ty, i.ty2);
    lanes!(m, lane, {
        let res = cmp(c, t, r[ix(i.a, lane)], r[ix(i.b, lane)]);
        r[ix(i.d, lane)] = match (res, dt) {
            (false, _) => 0,
            (true, Ty::F32) => 1.0f32.to_bits() as u64,
            (true, _) => wmask(dt.bits()),
        };
    });
}

#[inline(always)]
pub(super) fn selp(r: &mut [u64], m: u32, i: &Inst) {
    let mk = wmask(i.ty.bits());
    map3(r, m, i.d, i.a, i.b, i.c, |x, y, p| if p & 1 != 0 { x & mk } else { y & mk });
}
