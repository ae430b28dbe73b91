//! Executes one block of a lowered kernel: warps of 32 lanes run together under an active mask.
//!
//! Reconvergence rule: every lane has its own PC; a warp executes the instruction at the
//! smallest PC among its live lanes, with exactly the lanes at that PC active. Structured code
//! (if/else, loops, early exits) reconverges because its join points lie at higher addresses
//! than the branches that reach them, and a loop's back edge runs the lanes still looping first.
//! This is a fixed, deterministic schedule: it assumes the kernel does not rely on independent
//! thread scheduling for progress (no intra-warp spin-waits on another lane), and intra-warp
//! memory ordering is that of this lockstep schedule.
//!
//! Barriers: each warp runs until it waits at a barrier or exits, then barriers whose arrival
//! count is complete are released (bar.sync without a count waits for every thread that has not
//! exited).

use super::counters;
use super::ir::*;
use super::memory::{find_in, Alloc};
use super::sanitizer::{track, SharedHazard, SharedShadow, MULTI};
use crate::device::{Counters, Finding, FindingKind};
use crate::error::{Error, Result};
use half::{bf16, f16};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Findings kept per block (all are counted).
pub const FINDINGS_PER_BLOCK: usize = 32;

pub struct LaunchCtx<'a> {
    pub k: &'a Kernel,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub nthreads: u32,
    pub nwarps: u32,
    pub shared_bytes: u32,
    pub params: Vec<u8>,
    pub mem: Vec<Arc<Alloc>>,
    pub sanitize: bool,
    pub counters: bool,
    pub atomic64: &'a Mutex<()>,
}

#[derive(Default)]
pub struct BlockOut {
    pub counters: Counters,
    pub findings: Vec<Finding>,
    pub findings_total: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum WState {
    Run,
    Bar(u32),
    Done,
}

#[derive(Clone, Copy)]
struct CpReq {
    lane: u8,
    len: u8,
    dst: u32,
    data: [u8; 16],
    line: u32,
}

struct Warp {
    pcs: [u32; 32],
    upc: u32,
    uniform: bool,
    live: u32,
    nthreads: u32,
    state: WState,
    cp_open: Vec<CpReq>,
    cp_groups: VecDeque<Vec<CpReq>>,
}

/// Per-worker reusable buffers (no allocation per block once warmed up).
#[derive(Default)]
pub struct Scratch {
    regs: Vec<u64>,
    shared: Vec<u8>,
    shadow: SharedShadow,
    local: Vec<u8>,
    epoch: u32,
    warps: Vec<Warp>,
    words: Vec<u32>,
    sectors: Vec<u64>,
}

struct Blk<'a, 's> {
    l: &'a LaunchCtx<'a>,
    shared: &'s mut [u8],
    shadow: &'s mut SharedShadow,
    local: &'s mut [u8],
    words: &'s mut Vec<u32>,
    sectors: &'s mut Vec<u64>,
    out: BlockOut,
    epoch: u32,
    block_start: u32,
    ctaid: [u32; 3],
    clock: u64,
    bar_arrived: [u32; 16],
    bar_expected: [u32; 16],
    /// Sanitizer: one finding per warp instruction.
    flagged: bool,
    /// bar.warp.sync count of each warp (orders the lanes of one warp for racecheck).
    wsync: [u32; 32],
    /// Index of the allocation the last global access hit (most accesses hit the same one).
    last_alloc: std::cell::Cell<usize>,
    /// The current access is an atomic: atomics do not race with each other.
    atomic: bool,
}

#[inline(always)]
fn ix(reg: u32, l: usize) -> usize {
    ((reg as usize) << 5) | l
}

#[inline(always)]
fn wmask(bits: u32) -> u64 {
    if bits >= 64 {
        !0
    } else {
        (1u64 << bits) - 1
    }
}

#[inline(always)]
fn sx(v: u64, w: u32) -> i64 {
    if w >= 64 {
        v as i64
    } else {
        ((v << (64 - w)) as i64) >> (64 - w)
    }
}

macro_rules! lanes {
    ($m:expr, $l:ident, $body:block) => {{
        let mut mm: u32 = $m;
        while mm != 0 {
            let $l = mm.trailing_zeros() as usize;
            mm &= mm - 1;
            $body
        }
    }};
}

/// Reads (write None) or writes `size` bytes little-endian at `o` (in bounds).
#[inline(always)]
fn rw_bytes(mem: &mut [u8], o: usize, size: u32, write: Option<u64>) -> u64 {
    match (size, write) {
        (4, None) => u32::from_le_bytes(mem[o..o + 4].try_into().unwrap_or([0; 4])) as u64,
        (4, Some(v)) => {
            mem[o..o + 4].copy_from_slice(&(v as u32).to_le_bytes());
            0
        }
        (2, None) => u16::from_le_bytes(mem[o..o + 2].try_into().unwrap_or([0; 2])) as u64,
        (2, Some(v)) => {
            mem[o..o + 2].copy_from_slice(&(v as u16).to_le_bytes());
            0
        }
        (8, None) => u64::from_le_bytes(mem[o..o + 8].try_into().unwrap_or([0; 8])),
        (8, Some(v)) => {
            mem[o..o + 8].copy_from_slice(&v.to_le_bytes());
            0
        }
        (_, None) => {
            let mut b = [0u8; 8];
            b[..size as usize].copy_from_slice(&mem[o..o + size as usize]);
            u64::from_le_bytes(b)
        }
        (_, Some(v)) => {
            mem[o..o + size as usize].copy_from_slice(&v.to_le_bytes()[..size as usize]);
            0
        }
    }
}

/// d = f(a, b) over the lanes of `m`; the full-warp case is a plain loop the compiler vectorizes.
#[inline(always)]
fn map2(r: &mut [u64], m: u32, d: u32, a: u32, b: u32, f: impl Fn(u64, u64) -> u64) {
    let (a0, b0, d0) = (ix(a, 0), ix(b, 0), ix(d, 0));
    let av: [u64; 32] = r[a0..a0 + 32].try_into().unwrap_or([0; 32]);
    let bv: [u64; 32] = r[b0..b0 + 32].try_into().unwrap_or([0; 32]);
    let dst = &mut r[d0..d0 + 32];
    if m == u32::MAX {
        for l in 0..32 {
            dst[l] = f(av[l], bv[l]);
        }
    } else {
        lanes!(m, l, {
            dst[l] = f(av[l], bv[l]);
        });
    }
}

/// d = f(a, b, c) over the lanes of `m`.
#[inline(always)]
fn map3(r: &mut [u64], m: u32, d: u32, a: u32, b: u32, c: u32, f: impl Fn(u64, u64, u64) -> u64) {
    let (a0, b0, c0, d0) = (ix(a, 0), ix(b, 0), ix(c, 0), ix(d, 0));
    let av: [u64; 32] = r[a0..a0 + 32].try_into().unwrap_or([0; 32]);
    let bv: [u64; 32] = r[b0..b0 + 32].try_into().unwrap_or([0; 32]);
    let cv: [u64; 32] = r[c0..c0 + 32].try_into().unwrap_or([0; 32]);
    let dst = &mut r[d0..d0 + 32];
    if m == u32::MAX {
        for l in 0..32 {
            dst[l] = f(av[l], bv[l], cv[l]);
        }
    } else {
        lanes!(m, l, {
            dst[l] = f(av[l], bv[l], cv[l]);
        });
    }
}

/// d = f(a) over the lanes of `m`.
#[inline(always)]
fn map1(r: &mut [u64], m: u32, d: u32, a: u32, f: impl Fn(u64) -> u64) {
    let (a0, d0) = (ix(a, 0), ix(d, 0));
    let av: [u64; 32] = r[a0..a0 + 32].try_into().unwrap_or([0; 32]);
    let dst = &mut r[d0..d0 + 32];
    if m == u32::MAX {
        for l in 0..32 {
            dst[l] = f(av[l]);
        }
    } else {
        lanes!(m, l, {
            dst[l] = f(av[l]);
        });
    }
}

#[inline(always)]
fn find_cached<'x>(v: &'x [Arc<Alloc>], addr: u64, last: &std::cell::Cell<usize>) -> Option<&'x Arc<Alloc>> {
    if let Some(a) = v.get(last.get()) {
        if a.contains(addr, 1) {
            return Some(a);
        }
    }
    let i = v.partition_point(|a| a.base <= addr);
    if i == 0 {
        return None;
    }
    last.set(i - 1);
    find_in(v, addr, 1)
}

enum Resolved<'x> {
    Global(&'x Alloc, u64),
    Shared(u64),
    Local(u64),
    Param(u64),
    Const(u64),
    Fault,
}

fn err_at(k: &Kernel, line: u32, msg: impl std::fmt::Display) -> Error {
    Error::Emu(format!("{} (kernel {}, PTX line {line})", msg, k.name))
}

// ---- floating point helpers -------------------------------------------------------------

#[inline]
fn ftz32(x: f32, ftz: bool) -> f32 {
    if ftz && x.is_subnormal() {
        0.0f32.copysign(x)
    } else {
        x
    }
}

#[inline]
fn out32(x: f32, ftz: bool, sat: bool) -> u64 {
    let mut x = ftz32(x, ftz);
    if sat {
        x = if x.is_nan() { 0.0 } else { x.clamp(0.0, 1.0) };
    }
    x.to_bits() as u64
}

/// The next f32 above / below `x` (f32::next_up/next_down need Rust 1.86; MSRV is 1.85).
fn next_up(x: f32) -> f32 {
    if x.is_nan() || x == f32::INFINITY {
        return x;
    }
    if x == 0.0 {
        return f32::from_bits(1);
    }
    let b = x.to_bits();
    f32::from_bits(if x > 0.0 { b + 1 } else { b - 1 })
}
fn next_down(x: f32) -> f32 {
    -next_up(-x)
}

/// Error of the f64 sum `s = a + b` (Knuth's two-sum): `a + b == s + err` exactly.
#[inline]
fn two_sum_err(a: f64, b: f64, s: f64) -> f64 {
    let bb = s - a;
    (a - (s - bb)) + (b - bb)
}

/// Rounds the exact value `hi + lo` (hi = its f64 rounding) to f32 with mode `r`.
#[inline]
pub fn round_f32(hi: f64, lo: f64, r: Rnd) -> f32 {
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
        Rnd::Rm if sign < 0.0 => next_down(x),
        Rnd::Rp if sign > 0.0 => next_up(x),
        Rnd::Rz if sign < 0.0 && x > 0.0 => next_down(x),
        Rnd::Rz if sign > 0.0 && x < 0.0 => next_up(x),
        Rnd::Rm | Rnd::Rp | Rnd::Rz => x,
        _ => {
            // Round to nearest: hi may sit exactly on an f32 midpoint that lo breaks.
            if lo != 0.0 && d != 0.0 {
                let other = if d > 0.0 { next_up(x) } else { next_down(x) };
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
fn f32_fma(a: f32, b: f32, c: f32, r: Rnd) -> f32 {
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
fn f16_f64(h: u16) -> f64 {
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
fn bf16_f64(h: u16) -> f64 {
    if h & 0x7f80 == 0x7f80 && h & 0x7f != 0 {
        return bf16::from_bits(h).to_f64();
    }
    f32::from_bits((h as u32) << 16) as f64
}

fn half_to_f64(v: u64, t: Ty) -> f64 {
    match t {
        Ty::F16 => f16::from_bits(v as u16).to_f64(),
        Ty::Bf16 => bf16::from_bits(v as u16).to_f64(),
        Ty::F32 => f32::from_bits(v as u32) as f64,
        _ => f64::from_bits(v),
    }
}

fn cvt(v: u64, i: &Inst, relu: bool) -> u64 {
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

fn cmp(c: Cmp, t: Ty, a: u64, b: u64) -> bool {
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

fn ibin(op: IBin, t: Ty, a: u64, b: u64) -> u64 {
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

fn atom_apply(op: AtomOp, t: Ty, old: u64, b: u64, c: u64) -> u64 {
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

impl Warp {
    fn new() -> Warp {
        Warp {
            pcs: [0; 32],
            upc: 0,
            uniform: true,
            live: 0,
            nthreads: 0,
            state: WState::Run,
            cp_open: Vec::new(),
            cp_groups: VecDeque::new(),
        }
    }
    /// The PC to execute and the lanes at it.
    #[inline]
    fn select(&mut self) -> (u32, u32) {
        if self.uniform {
            return (self.upc, self.live);
        }
        let mut minpc = u32::MAX;
        lanes!(self.live, l, {
            minpc = minpc.min(self.pcs[l]);
        });
        let mut act = 0u32;
        lanes!(self.live, l, {
            if self.pcs[l] == minpc {
                act |= 1 << l;
            }
        });
        if act == self.live {
            self.uniform = true;
            self.upc = minpc;
        }
        (minpc, act)
    }
    #[inline]
    fn advance(&mut self, active: u32, to: u32) {
        if self.uniform && active == self.live {
            self.upc = to;
            return;
        }
        if self.uniform {
            let u = self.upc;
            lanes!(self.live, l, {
                self.pcs[l] = u;
            });
            self.uniform = false;
        }
        lanes!(active, l, {
            self.pcs[l] = to;
        });
    }
}

/// Runs block `bid` (linear index, x fastest) to completion.
pub fn run_block(l: &LaunchCtx, bid: u64, s: &mut Scratch) -> Result<BlockOut> {
    let k = l.k;
    let stride = k.nregs as usize * 32;
    let nw = l.nwarps as usize;
    s.regs.resize(stride * nw, 0);
    if s.shared.len() < l.shared_bytes as usize {
        s.shared.resize(l.shared_bytes as usize, 0);
    }
    s.shared[..l.shared_bytes as usize].fill(0);
    if l.sanitize {
        s.shadow.ensure(l.shared_bytes as usize);
    }
    let local_len = k.local_bytes as usize * nw * 32;
    if s.local.len() < local_len {
        s.local.resize(local_len, 0);
    }
    let g = l.grid;
    let ctaid = [
        (bid % g[0] as u64) as u32,
        ((bid / g[0] as u64) % g[1] as u64) as u32,
        (bid / (g[0] as u64 * g[1] as u64)) as u32,
    ];
    s.warps.truncate(nw);
    while s.warps.len() < nw {
        s.warps.push(Warp::new());
    }
    for (w, warp) in s.warps.iter_mut().enumerate() {
        let n = (l.nthreads - (w as u32 * 32).min(l.nthreads)).min(32);
        warp.nthreads = n;
        warp.live = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
        warp.uniform = true;
        warp.upc = 0;
        warp.state = WState::Run;
        warp.cp_open.clear();
        warp.cp_groups.clear();
        let r = &mut s.regs[w * stride..(w + 1) * stride];
        let tids: [[u32; 3]; 32] = std::array::from_fn(|lane| {
            let t = w as u32 * 32 + lane as u32;
            [t % l.block[0], (t / l.block[0]) % l.block[1], t / (l.block[0] * l.block[1])]
        });
        for &(reg, cv) in &k.consts {
            if let ConstVal::Imm(v) = cv {
                r[ix(reg, 0)..ix(reg, 0) + 32].fill(v);
                continue;
            }
            for (lane, tid) in tids.iter().enumerate() {
                let lb = 1u64 << lane;
                r[ix(reg, lane)] = match cv {
                    ConstVal::Imm(v) => v,
                    ConstVal::Tid(d) => tid[d as usize] as u64,
                    ConstVal::Ntid(d) => l.block[d as usize] as u64,
                    ConstVal::Ctaid(d) => ctaid[d as usize] as u64,
                    ConstVal::Nctaid(d) => l.grid[d as usize] as u64,
                    ConstVal::LaneId => lane as u64,
                    ConstVal::WarpId => w as u64,
                    ConstVal::NWarpId => nw as u64,
                    ConstVal::LaneMaskEq => lb,
                    ConstVal::LaneMaskLt => lb - 1,
                    ConstVal::LaneMaskLe => (lb << 1) - 1,
                    ConstVal::LaneMaskGt => !((lb << 1) - 1) & 0xffff_ffff,
                    ConstVal::LaneMaskGe => !(lb - 1) & 0xffff_ffff,
                    ConstVal::Zero => 0,
                };
            }
        }
    }
    s.epoch += 1;
    let mut b = Blk {
        l,
        shared: &mut s.shared[..l.shared_bytes as usize],
        shadow: &mut s.shadow,
        local: &mut s.local[..],
        words: &mut s.words,
        sectors: &mut s.sectors,
        out: BlockOut::default(),
        epoch: s.epoch,
        block_start: s.epoch,
        ctaid,
        clock: 0,
        bar_arrived: [0; 16],
        bar_expected: [0; 16],
        flagged: false,
        atomic: false,
        wsync: [0; 32],
        last_alloc: std::cell::Cell::new(0),
    };
    let warps = &mut s.warps;
    loop {
        let mut ran = false;
        for (w, warp) in warps.iter_mut().enumerate() {
            if warp.state == WState::Run {
                ran = true;
                let r = &mut s.regs[w * stride..(w + 1) * stride];
                b.run_warp(warp, r, w as u32)?;
            }
        }
        if warps.iter().all(|w| w.state == WState::Done) {
            break;
        }
        // Release complete barriers.
        let live_threads: u32 = warps.iter().filter(|w| w.state != WState::Done).map(|w| w.nthreads).sum();
        let mut released = false;
        for id in 0..16u32 {
            let waiting = warps.iter().any(|w| w.state == WState::Bar(id));
            if !waiting {
                continue;
            }
            let expected = if b.bar_expected[id as usize] > 0 { b.bar_expected[id as usize] } else { live_threads };
            if b.bar_arrived[id as usize] >= expected {
                for w in warps.iter_mut() {
                    if w.state == WState::Bar(id) {
                        w.state = WState::Run;
                    }
                }
                b.bar_arrived[id as usize] = 0;
                b.bar_expected[id as usize] = 0;
                released = true;
            }
        }
        if released {
            b.epoch += 1;
            continue;
        }
        if !ran || !released {
            // Nothing runnable and no barrier complete: the block is stuck.
            let (wi, id) = warps
                .iter()
                .enumerate()
                .find_map(|(i, w)| if let WState::Bar(id) = w.state { Some((i, id)) } else { None })
                .unwrap_or((0, 0));
            let msg = format!(
                "deadlock: warp {wi} waits at barrier {id} ({} of {} threads arrived) and no other warp can run",
                b.bar_arrived[id as usize],
                if b.bar_expected[id as usize] > 0 { b.bar_expected[id as usize] } else { live_threads }
            );
            if l.sanitize {
                let pc = warps[wi].select().0.saturating_sub(1) as usize;
                let line = k.insts.get(pc).map_or(0, |i| i.line);
                b.finding(
                    FindingKind::BarrierDivergence,
                    wi as u32,
                    warps[wi].live.trailing_zeros() as usize,
                    line,
                    None,
                    msg,
                );
                break;
            }
            return Err(err_at(k, 0, msg));
        }
    }
    s.epoch = b.epoch;
    Ok(b.out)
}

impl<'a> Blk<'a, '_> {
    fn thread(&self, w: u32, lane: usize) -> [u32; 3] {
        let t = w * 32 + lane as u32;
        let bd = self.l.block;
        [t % bd[0], (t / bd[0]) % bd[1], t / (bd[0] * bd[1])]
    }

    fn finding(&mut self, kind: FindingKind, w: u32, lane: usize, line: u32, addr: Option<u64>, message: String) {
        self.out.findings_total += 1;
        if self.out.findings.len() < FINDINGS_PER_BLOCK {
            let thread = self.thread(w, lane);
            self.out.findings.push(Finding {
                kind,
                kernel: self.l.k.name.clone(),
                block: self.ctaid,
                thread,
                ptx_line: line,
                address: addr,
                message,
            });
        }
    }

    fn resolve(&self, sp: Space, addr: u64, w: u32, lane: usize) -> Resolved<'a> {
        let l = self.l;
        let sp = if sp == Space::Generic {
            if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&addr) {
                return Resolved::Shared(addr - SHARED_WINDOW);
            } else if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&addr) {
                Space::Local
            } else if (PARAM_WINDOW..PARAM_WINDOW + WINDOW_SIZE).contains(&addr) {
                Space::Param
            } else if (CONST_WINDOW..CONST_WINDOW + WINDOW_SIZE).contains(&addr) {
                Space::Const
            } else {
                Space::Global
            }
        } else {
            sp
        };
        let strip = |win: u64| if addr >= win && addr < win + WINDOW_SIZE { addr - win } else { addr };
        match sp {
            Space::Global => match find_cached(&l.mem, addr, &self.last_alloc) {
                Some(a) => Resolved::Global(a, addr - a.base),
                None => Resolved::Fault,
            },
            Space::Shared => Resolved::Shared(strip(SHARED_WINDOW)),
            Space::Local => {
                let off = strip(LOCAL_WINDOW);
                let t = (w as u64 * 32 + lane as u64) * l.k.local_bytes as u64;
                Resolved::Local(t + off)
            }
            Space::Param => Resolved::Param(strip(PARAM_WINDOW)),
            Space::Const => Resolved::Const(strip(CONST_WINDOW)),
            Space::Generic => Resolved::Fault,
        }
    }

    /// One element access (size 1..=8 bytes). `val` is the value to store; returns the loaded value.
    #[allow(clippy::too_many_arguments)]
    fn access(
        &mut self,
        sp: Space,
        addr: u64,
        size: u32,
        write: Option<u64>,
        w: u32,
        lane: usize,
        line: u32,
    ) -> Result<u64> {
        let l = self.l;
        match self.resolve(sp, addr, w, lane) {
            Resolved::Global(a, off) => {
                if !a.contains(addr, size as u64) {
                    return self.fault(FindingKind::GlobalOutOfBounds, w, lane, line, addr, size, write.is_some());
                }
                if l.counters {
                    self.sectors.push(addr >> 5);
                    if (addr + size as u64 - 1) >> 5 != addr >> 5 {
                        self.sectors.push((addr + size as u64 - 1) >> 5);
                    }
                }
                match write {
                    Some(v) => {
                        a.write(off, size, v);
                        if l.sanitize {
                            a.mark_init(off, size as u64);
                        }
                        if l.counters {
                            self.out.counters.global_store_bytes += size as u64;
                        }
                        Ok(0)
                    }
                    None => {
                        if l.counters {
                            self.out.counters.global_load_bytes += size as u64;
                        }
                        if l.sanitize && !a.is_init(off, size as u64) && !self.flagged {
                            self.flagged = true;
                            self.finding(
                                FindingKind::UninitGlobal,
                                w,
                                lane,
                                line,
                                Some(addr),
                                format!("read of {size} bytes of global memory never written since allocation"),
                            );
                        }
                        Ok(a.read(off, size))
                    }
                }
            }
            Resolved::Shared(off) => {
                if off + size as u64 > self.shared.len() as u64 {
                    return self.fault(FindingKind::SharedOutOfBounds, w, lane, line, off, size, write.is_some());
                }
                if l.counters {
                    self.words.push((off >> 2) as u32);
                    if (off + size as u64 - 1) >> 2 != off >> 2 {
                        for wd in (off >> 2) + 1..=((off + size as u64 - 1) >> 2) {
                            self.words.push(wd as u32);
                        }
                    }
                }
                if l.sanitize {
                    self.shadow_access(off, size, size, write.is_some(), w, lane, line);
                }
                Ok(rw_bytes(self.shared, off as usize, size, write))
            }
            Resolved::Local(off) => {
                let end = (w as u64 * 32 + lane as u64 + 1) * l.k.local_bytes as u64;
                if off + size as u64 > end {
                    return Err(err_at(l.k, line, format!("local memory access out of bounds at {off:#x}")));
                }
                Ok(rw_bytes(self.local, off as usize, size, write))
            }
            Resolved::Param(off) => self.read_const(true, off, size, write.is_some(), line),
            Resolved::Const(off) => self.read_const(false, off, size, write.is_some(), line),
            Resolved::Fault => self.fault(FindingKind::GlobalOutOfBounds, w, lane, line, addr, size, write.is_some()),
        }
    }

    fn read_const(&self, param: bool, off: u64, size: u32, write: bool, line: u32) -> Result<u64> {
        let l = self.l;
        if write {
            return Err(err_at(l.k, line, "store to param/const space"));
        }
        let data: &[u8] = if param { &l.params } else { &l.k.const_data };
        let o = off as usize;
        if o + size as usize > data.len() {
            return Err(err_at(l.k, line, format!("param/const read out of bounds at offset {off}")));
        }
        let mut b = [0u8; 8];
        b[..size as usize].copy_from_slice(&data[o..o + size as usize]);
        Ok(u64::from_le_bytes(b))
    }

    #[allow(clippy::too_many_arguments)]
    fn fault(
        &mut self,
        kind: FindingKind,
        w: u32,
        lane: usize,
        line: u32,
        addr: u64,
        size: u32,
        write: bool,
    ) -> Result<u64> {
        let what = if write { "write" } else { "read" };
        let space = if kind == FindingKind::SharedOutOfBounds { "shared" } else { "global" };
        let msg = format!("invalid {space} {what} of {size} bytes at {addr:#x}");
        if !self.l.sanitize {
            return Err(err_at(self.l.k, line, msg));
        }
        if !self.flagged {
            self.flagged = true;
            self.finding(kind, w, lane, line, Some(addr), msg);
        }
        Ok(0)
    }

    /// Sanitizer bookkeeping of `size` bytes at `off`, one access of `elem`-byte elements (a finding
    /// names the element that holds the first byte in conflict).
    #[allow(clippy::too_many_arguments)]
    fn shadow_access(&mut self, off: u64, size: u32, elem: u32, write: bool, w: u32, lane: usize, line: u32) {
        let tid = (w * 32 + lane as u32) as u16;
        let (epoch, start, ws, atomic) = (self.epoch, self.block_start, self.wsync[w as usize], self.atomic);
        // One finding per warp instruction: only the first byte in conflict is reported, so the
        // walk keeps the first hazard and reports it afterwards (every byte's state still updates).
        let mut first: Option<(u64, SharedHazard)> = None;
        self.shadow.for_each(off, size as u64, |sh, bo| {
            if atomic {
                if sh.w_epoch < start {
                    sh.w_epoch = epoch;
                    sh.w_tid = tid;
                    if !write && first.is_none() {
                        first = Some((bo, SharedHazard::Uninit));
                    }
                }
                return;
            }
            let h = track(sh, tid, write, epoch, start, ws);
            if h != SharedHazard::None && first.is_none() {
                first = Some((bo, h));
            }
        });
        let Some((bo, h)) = first else { return };
        if self.flagged {
            return;
        }
        self.flagged = true;
        let at = off + (bo - off) / elem as u64 * elem as u64;
        let (kind, msg) = match h {
            SharedHazard::Uninit if atomic => {
                (FindingKind::UninitShared, "atomic on shared memory never written in this launch".to_string())
            }
            SharedHazard::Uninit => {
                (FindingKind::UninitShared, "read of shared memory never written in this launch".to_string())
            }
            SharedHazard::Race(other, wr) => (
                FindingKind::SharedRace,
                format!(
                    "{} by thread {} races with a {} by {} in the same barrier interval",
                    if write { "write" } else { "read" },
                    tid,
                    if wr { "write" } else { "read" },
                    if other == MULTI { "threads of other warps".to_string() } else { format!("thread {other}") }
                ),
            ),
            SharedHazard::None => return,
        };
        self.finding(kind, w, lane, line, Some(at), msg);
    }

    #[inline(always)]
    fn check_align(&mut self, addr: u64, size: u64, w: u32, lane: usize, line: u32) -> Result<()> {
        if addr.is_multiple_of(size) {
            return Ok(());
        }
        self.misaligned(addr, size, w, lane, line)
    }

    #[cold]
    fn misaligned(&mut self, addr: u64, size: u64, w: u32, lane: usize, line: u32) -> Result<()> {
        {
            let msg = format!("misaligned {size}-byte access at {addr:#x}");
            if !self.l.sanitize {
                return Err(err_at(self.l.k, line, msg));
            }
            if !self.flagged {
                self.flagged = true;
                self.finding(FindingKind::Misaligned, w, lane, line, Some(addr), msg);
            }
        }
        Ok(())
    }

    /// Sanitizer check of a warp collective's member mask against the lanes present.
    fn check_members(&mut self, members: u32, active: u32, live: u32, w: u32, line: u32, what: &str) {
        if !self.l.sanitize {
            return;
        }
        let bad = (members & !active) | (active & !members);
        if bad != 0 {
            let lane = bad.trailing_zeros() as usize;
            let why = if members & !live != 0 {
                "names exited or absent lanes"
            } else if members & !active != 0 {
                "names lanes that are not executing it"
            } else {
                "does not name every lane executing it"
            };
            self.finding(
                FindingKind::InvalidWarpMask,
                w,
                lane,
                line,
                None,
                format!("{what} member mask {members:#010x} {why} (executing lanes {active:#010x})"),
            );
        }
    }

    fn finish_shared_request(&mut self, ldmatrix: bool) {
        if !self.l.counters || self.words.is_empty() {
            return;
        }
        let (wf, ideal) = counters::bank_wavefronts(self.words);
        let c = &mut self.out.counters;
        if ldmatrix {
            c.ldmatrix_wavefronts += wf;
        } else {
            c.shared_requests += 1;
            c.shared_wavefronts += wf;
            c.shared_bank_conflicts += wf - ideal.min(wf);
        }
        self.words.clear();
    }

    fn finish_global_request(&mut self, store: bool) {
        if !self.l.counters || self.sectors.is_empty() {
            return;
        }
        let n = counters::distinct(self.sectors);
        if store {
            self.out.counters.global_store_sectors += n;
        } else {
            self.out.counters.global_load_sectors += n;
        }
        self.sectors.clear();
    }

    fn complete_cp(&mut self, reqs: &[CpReq], w: u32) {
        for q in reqs {
            let off = q.dst as u64;
            if off + q.len as u64 > self.shared.len() as u64 {
                let _ = self.fault(FindingKind::SharedOutOfBounds, w, q.lane as usize, q.line, off, q.len as u32, true);
                continue;
            }
            if self.l.sanitize {
                self.shadow_access(off, q.len as u32, q.len as u32, true, w, q.lane as usize, q.line);
            }
            self.shared[off as usize..off as usize + q.len as usize].copy_from_slice(&q.data[..q.len as usize]);
        }
    }

    fn run_warp(&mut self, warp: &mut Warp, r: &mut [u64], w: u32) -> Result<()> {
        let l = self.l;
        let k = l.k;
        let insts = &k.insts[..];
        loop {
            let (pc, active) = warp.select();
            let i = &insts[pc as usize];
            self.clock += 1;
            self.flagged = false;
            let mut m = active;
            if i.guard != NOREG {
                let mut pm = 0u32;
                lanes!(active, lane, {
                    if ((r[ix(i.guard, lane)] & 1) != 0) != i.guard_neg {
                        pm |= 1 << lane;
                    }
                });
                m = pm;
            }
            if l.counters {
                let n = m.count_ones() as u64;
                let c = &mut self.out.counters;
                c.warp_instructions += 1;
                match i.op.class() {
                    Class::Arith => c.inst_arith += n,
                    Class::Memory => c.inst_memory += n,
                    Class::Tensor => c.inst_tensor += n,
                    Class::Control => c.inst_control += n,
                    Class::Sync => c.inst_sync += n,
                }
            }
            let mut next = pc + 1;
            match i.op {
                Op::Nop => {}
                Op::Mov => {
                    let mk = wmask(i.ty.bits());
                    map1(r, m, i.d, i.a, |x| x & mk);
                }
                Op::Pack => {
                    let pb = i.ty.bits();
                    let ext = &k.ext[i.ext as usize..i.ext as usize + i.next as usize];
                    lanes!(m, lane, {
                        let mut v = 0u64;
                        for (j, &e) in ext.iter().enumerate() {
                            v |= (r[ix(e, lane)] & wmask(pb)) << (j as u32 * pb);
                        }
                        r[ix(i.d, lane)] = v;
                    });
                }
                Op::Unpack => {
                    let pb = i.ty.bits();
                    let ext = &k.ext[i.ext as usize..i.ext as usize + i.next as usize];
                    lanes!(m, lane, {
                        let v = r[ix(i.a, lane)];
                        for (j, &e) in ext.iter().enumerate() {
                            r[ix(e, lane)] = (v >> (j as u32 * pb)) & wmask(pb);
                        }
                    });
                }
                Op::IBin(op) => {
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
                        (IBin::Shl, 32) => {
                            map2(r, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { (x << y as u32) & mk })
                        }
                        (IBin::Shr, 32) if !t.signed() => {
                            map2(r, m, d, a, b, |x, y| if y as u32 >= 32 { 0 } else { (x & mk) >> y as u32 })
                        }
                        (IBin::Shr, 32) => {
                            map2(r, m, d, a, b, |x, y| (((x as u32 as i32) >> (y as u32).min(31)) as u32) as u64)
                        }
                        (IBin::MulWide, 32) if t.signed() => {
                            map2(r, m, d, a, b, |x, y| ((x as u32 as i32 as i64) * (y as u32 as i32 as i64)) as u64)
                        }
                        _ => map2(r, m, d, a, b, |x, y| ibin(op, t, x, y)),
                    }
                }
                Op::IMad(op) => {
                    let t = i.ty;
                    let wide = if op == IBin::MulWide { 2 * t.bits() } else { t.bits() };
                    lanes!(m, lane, {
                        let p = ibin(op, t, r[ix(i.a, lane)], r[ix(i.b, lane)]);
                        r[ix(i.d, lane)] = p.wrapping_add(r[ix(i.c, lane)]) & wmask(wide);
                    });
                }
                Op::IUn(op) => {
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
                        };
                    });
                }
                Op::Bfe => {
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
                Op::Bfi => {
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
                Op::Prmt => {
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
                Op::Lop3(lut) => {
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
                Op::Shf { left, clamp } => {
                    lanes!(m, lane, {
                        let v = (r[ix(i.a, lane)] & 0xffff_ffff) | (r[ix(i.b, lane)] << 32);
                        let c = r[ix(i.c, lane)] as u32;
                        let n = if clamp { c.min(32) } else { c & 31 };
                        r[ix(i.d, lane)] = if left { (v << n) >> 32 } else { (v >> n) & 0xffff_ffff };
                    });
                }
                Op::FBin(op) => {
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
                Op::Fma => {
                    if i.ty == Ty::F64 {
                        lanes!(m, lane, {
                            let (a, b, c) = (
                                f64::from_bits(r[ix(i.a, lane)]),
                                f64::from_bits(r[ix(i.b, lane)]),
                                f64::from_bits(r[ix(i.c, lane)]),
                            );
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
                Op::FUn(op) => {
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
                Op::Setp(c, bop) => {
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
                Op::Set(c) => {
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
                Op::Selp => {
                    let mk = wmask(i.ty.bits());
                    map3(r, m, i.d, i.a, i.b, i.c, |x, y, p| if p & 1 != 0 { x & mk } else { y & mk });
                }
                Op::Cvt { relu } => {
                    lanes!(m, lane, {
                        r[ix(i.d, lane)] = cvt(r[ix(i.a, lane)], i, relu);
                    });
                }
                Op::CvtPack { relu } => {
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
                Op::Cvta { to, space } => {
                    let win = match space {
                        Space::Shared => SHARED_WINDOW,
                        Space::Local => LOCAL_WINDOW,
                        _ => 0,
                    };
                    let mk = wmask(i.ty.bits());
                    lanes!(m, lane, {
                        let a = r[ix(i.a, lane)];
                        r[ix(i.d, lane)] = if win == 0 {
                            a & mk
                        } else if to {
                            (if a >= win { a - win } else { a }) & mk
                        } else {
                            (a & 0xffff_ffff) + win
                        };
                    });
                }
                Op::Ld { space, vec } | Op::St { space, vec } => {
                    let store = matches!(i.op, Op::St { .. });
                    let size = i.ty.bytes();
                    let sign = i.ty.signed();
                    lanes!(m, lane, {
                        let base = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
                        let addr = base.wrapping_add(i.imm as u64);
                        if size * vec as u32 > 1 {
                            self.check_align(addr, (size * vec as u32) as u64, w, lane, i.line)?;
                        }
                        for j in 0..vec as usize {
                            let reg = if vec == 1 {
                                if store {
                                    i.b
                                } else {
                                    i.d
                                }
                            } else {
                                k.ext[i.ext as usize + j]
                            };
                            let ea = addr.wrapping_add(j as u64 * size as u64);
                            if store {
                                let v = r[ix(reg, lane)];
                                self.access(space, ea, size, Some(v), w, lane, i.line)?;
                            } else {
                                let v = self.access(space, ea, size, None, w, lane, i.line)?;
                                r[ix(reg, lane)] = if sign { sx(v, size * 8) as u64 } else { v };
                            }
                        }
                    });
                    self.finish_shared_request(false);
                    self.finish_global_request(store);
                }
                Op::Atom { space, op } => {
                    let t = i.ty;
                    let size = t.bytes();
                    lanes!(m, lane, {
                        let base = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
                        let addr = base.wrapping_add(i.imm as u64);
                        self.check_align(addr, size as u64, w, lane, i.line)?;
                        let b = r[ix(i.b, lane)];
                        let c = if i.c == NOREG { 0 } else { r[ix(i.c, lane)] };
                        let old = match self.resolve(space, addr, w, lane) {
                            Resolved::Global(a, off) if a.contains(addr, size as u64) => {
                                if l.counters {
                                    self.out.counters.global_store_bytes += size as u64;
                                    self.sectors.push(addr >> 5);
                                }
                                if l.sanitize {
                                    a.mark_init(off, size as u64);
                                }
                                if size == 4 && off % 4 == 0 {
                                    a.rmw32(off, |o| atom_apply(op, t, o as u64, b, c) as u32) as u64
                                } else {
                                    let _g =
                                        l.atomic64.lock().map_err(|_| Error::Emu("atomic lock poisoned".into()))?;
                                    let o = a.read(off, size);
                                    a.write(off, size, atom_apply(op, t, o, b, c));
                                    o
                                }
                            }
                            Resolved::Shared(_) | Resolved::Global(..) | Resolved::Fault => {
                                self.atomic = true;
                                let o = self.access(space, addr, size, None, w, lane, i.line);
                                let o = o.and_then(|o| {
                                    self.access(space, addr, size, Some(atom_apply(op, t, o, b, c)), w, lane, i.line)
                                        .map(|_| o)
                                });
                                self.atomic = false;
                                o?
                            }
                            _ => return Err(err_at(k, i.line, "atomic on param/const/local space")),
                        };
                        if i.d != NOREG {
                            r[ix(i.d, lane)] = old;
                        }
                    });
                    self.finish_shared_request(false);
                    self.finish_global_request(true);
                }
                Op::Bra { target } => {
                    let taken = m;
                    let not = active & !m;
                    if taken != 0 {
                        warp.advance(taken, target);
                    }
                    if not != 0 {
                        warp.advance(not, pc + 1);
                    }
                    continue;
                }
                Op::Exit => {
                    warp.live &= !m;
                    if active & !m != 0 {
                        warp.advance(active & !m, pc + 1);
                    }
                    if warp.live == 0 {
                        warp.state = WState::Done;
                        let mut all: Vec<CpReq> = warp.cp_groups.drain(..).flatten().collect();
                        all.append(&mut warp.cp_open);
                        self.complete_cp(&all, w);
                        return Ok(());
                    }
                    if !warp.uniform {
                        continue;
                    }
                    // uniform with some lanes exited: remaining lanes continue at pc+1
                    continue;
                }
                Op::Bar { arrive } => {
                    if l.counters {
                        self.out.counters.barriers += 1;
                    }
                    let first = m.trailing_zeros() as usize;
                    if m != 0 {
                        if l.sanitize && m != warp.live {
                            let lane = (warp.live & !m).trailing_zeros() as usize;
                            self.finding(
                                FindingKind::BarrierDivergence,
                                w,
                                lane,
                                i.line,
                                None,
                                format!(
                                    "barrier reached by lanes {m:#010x} of warp {w} while lanes {:#010x} did not reach it",
                                    warp.live & !m
                                ),
                            );
                        }
                        let id = (r[ix(i.a, first)] & 15) as usize;
                        if i.b != NOREG {
                            self.bar_expected[id] = r[ix(i.b, first)] as u32;
                        }
                        self.bar_arrived[id] += warp.nthreads;
                        warp.advance(active, pc + 1);
                        if !arrive {
                            warp.state = WState::Bar(id as u32);
                            return Ok(());
                        }
                        continue;
                    }
                }
                Op::WarpSync => {
                    let members = if m != 0 { r[ix(i.a, m.trailing_zeros() as usize)] as u32 } else { 0 };
                    self.check_members(members, m, warp.live, w, i.line, "bar.warp.sync");
                    self.wsync[w as usize] += 1;
                }
                Op::Shfl(mode) => {
                    let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
                    self.check_members(members, m, warp.live, w, i.line, "shfl.sync");
                    let mut vals = [0u64; 32];
                    for (lane, v) in vals.iter_mut().enumerate() {
                        *v = r[ix(i.a, lane)];
                    }
                    lanes!(m, lane, {
                        let bv = (r[ix(i.b, lane)] & 0x1f) as i32;
                        let c = r[ix(i.c, lane)] as u32;
                        let cval = (c & 0x1f) as i32;
                        let seg = ((c >> 8) & 0x1f) as i32;
                        let ln = lane as i32;
                        let max_lane = (ln & seg) | (cval & !seg);
                        let min_lane = ln & seg;
                        let (j, ok) = match mode {
                            ShflMode::Up => (ln - bv, ln - bv >= max_lane),
                            ShflMode::Down => (ln + bv, ln + bv <= max_lane),
                            ShflMode::Bfly => (ln ^ bv, (ln ^ bv) <= max_lane),
                            ShflMode::Idx => {
                                let j = min_lane | (bv & !seg);
                                (j, j <= max_lane)
                            }
                        };
                        let src = if ok { j as usize } else { lane };
                        r[ix(i.d, lane)] = vals[src & 31] & 0xffff_ffff;
                        if i.d2 != NOREG {
                            r[ix(i.d2, lane)] = ok as u64;
                        }
                    });
                }
                Op::Vote(mode) => {
                    let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
                    self.check_members(members, m, warp.live, w, i.line, "vote.sync");
                    let part = m & members;
                    let mut ballot = 0u32;
                    lanes!(part, lane, {
                        if ((r[ix(i.a, lane)] & 1) != 0) != i.pneg {
                            ballot |= 1 << lane;
                        }
                    });
                    let v = match mode {
                        VoteMode::Ballot => ballot as u64,
                        VoteMode::All => (ballot == part) as u64,
                        VoteMode::Any => (ballot != 0) as u64,
                        VoteMode::Uni => (ballot == part || ballot == 0) as u64,
                    };
                    lanes!(m, lane, {
                        r[ix(i.d, lane)] = v;
                    });
                }
                Op::Redux(op) => {
                    let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
                    self.check_members(members, m, warp.live, w, i.line, "redux.sync");
                    let t = i.ty;
                    let mut acc: Option<u64> = None;
                    lanes!(m & members, lane, {
                        let v = r[ix(i.a, lane)] & 0xffff_ffff;
                        acc = Some(match acc {
                            None => v,
                            Some(x) => atom_apply(op, t, x, v, 0),
                        });
                    });
                    let v = acc.unwrap_or(0);
                    lanes!(m, lane, {
                        r[ix(i.d, lane)] = v;
                    });
                }
                Op::Mma { k: kk, bf16: isbf } => {
                    self.check_members(u32::MAX, m, warp.live, w, i.line, "mma.sync");
                    let na = if kk == 16 { 4 } else { 2 };
                    let nb = na / 2;
                    let ext = &k.ext[i.ext as usize..i.ext as usize + i.next as usize];
                    let (dr, rest) = ext.split_at(4);
                    let (ar, rest) = rest.split_at(na);
                    let (br, cr) = rest.split_at(nb);
                    let el = |v: u64| -> f64 {
                        if isbf {
                            bf16_f64(v as u16)
                        } else {
                            f16_f64(v as u16)
                        }
                    };
                    let mut am = [[0f64; 16]; 16];
                    let mut bm = [[0f64; 8]; 16];
                    // D (16 x 8), starting from C.
                    let mut dm = [[0f64; 8]; 16];
                    for lane in 0..32usize {
                        let (g, t) = (lane >> 2, lane & 3);
                        for (j, &reg) in ar.iter().enumerate() {
                            let v = r[ix(reg, lane)];
                            let row = g + 8 * (j & 1);
                            let col = 2 * t + 8 * (j >> 1);
                            am[row][col] = el(v);
                            am[row][col + 1] = el(v >> 16);
                        }
                        for (j, &reg) in br.iter().enumerate() {
                            let v = r[ix(reg, lane)];
                            let kr = 2 * t + 8 * j;
                            bm[kr][g] = el(v);
                            bm[kr + 1][g] = el(v >> 16);
                        }
                        for (j, &reg) in cr.iter().enumerate() {
                            let row = g + 8 * (j >> 1);
                            let col = 2 * t + (j & 1);
                            dm[row][col] = f32::from_bits(r[ix(reg, lane)] as u32) as f64;
                        }
                    }
                    // Each output accumulates c + a0*b0 + a1*b1 + ... in k order (the same f64
                    // operations as one dot product per output), a row's 8 outputs side by side so
                    // that the loop vectorizes; products of f16/bf16 values are exact in f64.
                    for (drow, arow) in dm.iter_mut().zip(am.iter()) {
                        let mut acc = *drow;
                        for (&a, brow) in arow.iter().zip(bm.iter()).take(kk as usize) {
                            for (x, &b) in acc.iter_mut().zip(brow.iter()) {
                                *x += a * b;
                            }
                        }
                        *drow = acc;
                    }
                    for lane in 0..32usize {
                        let (g, t) = (lane >> 2, lane & 3);
                        for (j, &reg) in dr.iter().enumerate() {
                            let row = g + 8 * (j >> 1);
                            let col = 2 * t + (j & 1);
                            r[ix(reg, lane)] = (dm[row][col] as f32).to_bits() as u64;
                        }
                    }
                    if l.counters {
                        self.out.counters.mma_instructions += 1;
                        self.out.counters.tensor_flops += 2 * 16 * 8 * kk as u64;
                    }
                }
                Op::Ldmatrix { num, trans } => {
                    self.check_members(u32::MAX, m, warp.live, w, i.line, "ldmatrix.sync");
                    let mut rows = [[0u16; 8]; 32];
                    // Bank model shortcut: while every row is a 16-byte-aligned in-bounds row, the
                    // request's words are whole 4-word blocks, kept as block numbers (`blocks`);
                    // any other row turns them into words for the general path.
                    let mut blocks = [0u32; 32];
                    let mut nblocks = 0usize;
                    let mut aligned = true;
                    for (src, row) in rows.iter_mut().enumerate().take(8 * num as usize) {
                        let base = if i.a == NOREG { 0 } else { r[ix(i.a, src)] };
                        let addr = base.wrapping_add(i.imm as u64);
                        self.check_align(addr, 16, w, src, i.line)?;
                        let off = match self.resolve(Space::Shared, addr, w, src) {
                            Resolved::Shared(off) if off + 16 <= self.shared.len() as u64 => off,
                            _ => {
                                if aligned && l.counters {
                                    aligned = false;
                                    self.words.extend(blocks[..nblocks].iter().flat_map(|&b| 4 * b..4 * b + 4));
                                }
                                // Out of bounds: element by element, so the finding names the element.
                                for (e, x) in row.iter_mut().enumerate() {
                                    *x = self.access(Space::Shared, addr + 2 * e as u64, 2, None, w, src, i.line)?
                                        as u16;
                                }
                                continue;
                            }
                        };
                        // The whole 16-byte row in one go (the same bytes, words and shadow checks, in
                        // the same order, as eight 2-byte accesses): ldmatrix dominated flash/decode time.
                        if l.counters {
                            if aligned && off.is_multiple_of(16) {
                                blocks[nblocks] = (off >> 4) as u32;
                                nblocks += 1;
                            } else {
                                if aligned {
                                    aligned = false;
                                    self.words.extend(blocks[..nblocks].iter().flat_map(|&b| 4 * b..4 * b + 4));
                                }
                                self.words.extend((off >> 2) as u32..=((off + 15) >> 2) as u32);
                            }
                        }
                        if l.sanitize {
                            self.shadow_access(off, 16, 2, false, w, src, i.line);
                        }
                        let o = off as usize;
                        for (e, x) in row.iter_mut().enumerate() {
                            *x = u16::from_le_bytes([self.shared[o + 2 * e], self.shared[o + 2 * e + 1]]);
                        }
                    }
                    if l.counters && aligned {
                        // Block b's words 4b..4b+3 lie in banks 4(b % 8)..4(b % 8)+3: the most distinct
                        // words in one bank is the most distinct blocks with one b % 8, exactly what
                        // `counters::bank_wavefronts` finds from the words.
                        let bl = &mut blocks[..nblocks];
                        bl.sort_unstable();
                        let mut per = [0u64; 8];
                        for (x, &b) in bl.iter().enumerate() {
                            if x == 0 || bl[x - 1] != b {
                                per[(b % 8) as usize] += 1;
                            }
                        }
                        self.out.counters.ldmatrix_instructions += 1;
                        self.out.counters.ldmatrix_wavefronts += per.iter().copied().max().unwrap_or(0);
                    } else if l.counters {
                        // One request's words (each row counted once per 4 bytes).
                        let mut ws = std::mem::take(self.words);
                        ws.sort_unstable();
                        ws.dedup();
                        *self.words = ws;
                        self.out.counters.ldmatrix_instructions += 1;
                    }
                    self.finish_shared_request(true);
                    for lane in 0..32usize {
                        for mat in 0..num as usize {
                            let rm = &rows[mat * 8..mat * 8 + 8];
                            let (v0, v1) = if trans {
                                (rm[2 * (lane % 4)][lane / 4], rm[2 * (lane % 4) + 1][lane / 4])
                            } else {
                                (rm[lane / 4][2 * (lane % 4)], rm[lane / 4][2 * (lane % 4) + 1])
                            };
                            let reg = k.ext[i.ext as usize + mat];
                            if m & (1 << lane) != 0 {
                                r[ix(reg, lane)] = v0 as u64 | (v1 as u64) << 16;
                            }
                        }
                    }
                }
                Op::CpAsync { size } => {
                    lanes!(m, lane, {
                        let dbase = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
                        let dst = dbase.wrapping_add(i.imm as u64);
                        let sbase = if i.b == NOREG { 0 } else { r[ix(i.b, lane)] };
                        let src = sbase.wrapping_add(i.imm2 as u64);
                        let src_size =
                            if i.c == NOREG { size as u32 } else { (r[ix(i.c, lane)] as u32).min(size as u32) };
                        self.check_align(dst, size as u64, w, lane, i.line)?;
                        self.check_align(src, size as u64, w, lane, i.line)?;
                        let mut data = [0u8; 16];
                        let mut o = 0u32;
                        // Whole 4-byte-aligned source inside one allocation and (sanitizer) written:
                        // one lookup and word reads, with the same bytes and distinct sectors counted
                        // as the 4-byte accesses below, which handle every other case (and findings).
                        if src_size > 0 && src_size.is_multiple_of(4) && src.is_multiple_of(4) {
                            if let Resolved::Global(a, off) = self.resolve(Space::Global, src, w, lane) {
                                if a.contains(src, src_size as u64) && (!l.sanitize || a.is_init(off, src_size as u64))
                                {
                                    if l.counters {
                                        self.sectors.push(src >> 5);
                                        if (src + src_size as u64 - 1) >> 5 != src >> 5 {
                                            self.sectors.push((src + src_size as u64 - 1) >> 5);
                                        }
                                        self.out.counters.global_load_bytes += src_size as u64;
                                    }
                                    for (x, d) in data[..src_size as usize].chunks_exact_mut(4).enumerate() {
                                        d.copy_from_slice(&(a.read(off + 4 * x as u64, 4) as u32).to_le_bytes());
                                    }
                                    o = src_size;
                                }
                            }
                        }
                        while o < src_size {
                            let step = if src_size - o >= 4 && (src + o as u64).is_multiple_of(4) { 4 } else { 1 };
                            let v = self.access(Space::Global, src + o as u64, step, None, w, lane, i.line)?;
                            data[o as usize..(o + step) as usize].copy_from_slice(&v.to_le_bytes()[..step as usize]);
                            o += step;
                        }
                        let d = if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&dst) {
                            dst - SHARED_WINDOW
                        } else {
                            dst
                        };
                        warp.cp_open.push(CpReq { lane: lane as u8, len: size, dst: d as u32, data, line: i.line });
                    });
                    self.finish_global_request(false);
                }
                Op::CpCommit => {
                    let g = std::mem::take(&mut warp.cp_open);
                    warp.cp_groups.push_back(g);
                }
                Op::CpWait { n, all } => {
                    if all {
                        let g = std::mem::take(&mut warp.cp_open);
                        warp.cp_groups.push_back(g);
                    }
                    while warp.cp_groups.len() > n as usize {
                        if let Some(g) = warp.cp_groups.pop_front() {
                            self.complete_cp(&g, w);
                        }
                    }
                }
                Op::Activemask => {
                    lanes!(m, lane, {
                        r[ix(i.d, lane)] = active as u64;
                    });
                }
                Op::Clock => {
                    let c = self.clock;
                    lanes!(m, lane, {
                        r[ix(i.d, lane)] = c;
                    });
                }
            }
            let _ = &mut next;
            warp.advance(active, next);
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
