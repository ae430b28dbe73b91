//! Register-file layout and per-lane helpers shared by every instruction family: registers are
//! stored structure-of-arrays (`[u64; 32]` per register, lane fastest), so a full-warp
//! instruction is a plain loop over 32 values.

#[inline(always)]
pub(super) fn ix(reg: u32, l: usize) -> usize {
    ((reg as usize) << 5) | l
}

#[inline(always)]
pub(super) fn wmask(bits: u32) -> u64 {
    if bits >= 64 {
        !0
    } else {
        (1u64 << bits) - 1
    }
}

#[inline(always)]
pub(super) fn sx(v: u64, w: u32) -> i64 {
    if w >= 64 {
        v as i64
    } else {
        ((v << (64 - w)) as i64) >> (64 - w)
    }
}

/// Calls `$body` with `$l` bound to each lane of mask `$m`, lowest first.
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
pub(super) use lanes;

/// d = f(a, b) over the lanes of `m`; the full-warp case is a plain loop the compiler vectorizes.
#[inline(always)]
pub(super) fn map2(r: &mut [u64], m: u32, d: u32, a: u32, b: u32, f: impl Fn(u64, u64) -> u64) {
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
pub(super) fn map3(r: &mut [u64], m: u32, d: u32, a: u32, b: u32, c: u32, f: impl Fn(u64, u64, u64) -> u64) {
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
pub(super) fn map1(r: &mut [u64], m: u32, d: u32, a: u32, f: impl Fn(u64) -> u64) {
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
