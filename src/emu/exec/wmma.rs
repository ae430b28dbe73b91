//! `wmma` (PTX ISA 9.7.14.4): warp-wide loads and stores of matrix fragments and their
//! multiply-accumulate, in the fragment layout of [`crate::emu::ir::wmma_elem`]. The products are
//! exact in f64 and accumulated in k order, rounded once to the accumulator type, as for mma.sync.
//!
//! Sanitizer: the instructions need the whole warp (member mask = all 32 lanes), one address and
//! stride for every lane (CUDA: "mptr, ldm ... must be the same for all threads in the warp"),
//! the address aligned to the per-thread fragment size (at most 32 bytes) and a stride of a
//! multiple of 16 bytes; each element is one access with the usual memory checks.

use super::super::ir::*;
use super::float::{bf16_f64, f16_f64};
use super::lanes::{ix, lanes};
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::Result;
use half::f16;

/// One element of a fragment register: the 16-bit half `e % 2` or the whole f32.
#[inline]
fn get(v: u64, ty: Ty, e: usize) -> u64 {
    if ty == Ty::F32 {
        v & 0xffff_ffff
    } else {
        (v >> (16 * (e % 2))) & 0xffff
    }
}

fn to_f64(bits: u64, ty: Ty) -> f64 {
    match ty {
        Ty::F32 => f32::from_bits(bits as u32) as f64,
        Ty::Bf16 => bf16_f64(bits as u16),
        _ => f16_f64(bits as u16),
    }
}

impl Blk<'_, '_> {
    /// The warp's address and stride (elements), checked for agreement and alignment.
    #[allow(clippy::too_many_arguments)]
    fn wmma_addr(
        &mut self,
        r: &[u64],
        m: u32,
        i: &Inst,
        rows_cols: (usize, usize),
        col: bool,
        ty: Ty,
        frag_bytes: u64,
        w: u32,
    ) -> Result<(u64, u64)> {
        let first = m.trailing_zeros() as usize;
        let addr_of = |lane: usize| (if i.a == NOREG { 0 } else { r[ix(i.a, lane)] }).wrapping_add(i.imm as u64);
        let default = if col { rows_cols.0 } else { rows_cols.1 } as u64;
        let stride_of = |lane: usize| if i.b == NOREG { default } else { r[ix(i.b, lane)] & 0xffff_ffff };
        let (p, s) = (addr_of(first), stride_of(first));
        let mut odd = None;
        lanes!(m, lane, {
            if odd.is_none() && (addr_of(lane) != p || stride_of(lane) != s) {
                odd = Some(lane);
            }
        });
        if let Some(lane) = odd {
            if self.l.sanitize && !self.flagged {
                self.flagged = true;
                self.finding(
                    FindingKind::InvalidWarpMask,
                    w,
                    lane,
                    i.line,
                    Some(addr_of(lane)),
                    format!("wmma: lanes disagree on the matrix address or stride (lane {first}: {p:#x}, stride {s})"),
                );
            }
        }
        self.check_align(p, frag_bytes.min(32), w, first, i.line)?;
        if !(s * ty.bytes() as u64).is_multiple_of(16) {
            let msg = format!("wmma: a stride of {s} elements is not a multiple of 16 bytes");
            if !self.l.sanitize {
                return Err(err_at(self.l.k, i.line, msg));
            }
            if !self.flagged {
                self.flagged = true;
                self.finding(FindingKind::Misaligned, w, first, i.line, Some(p), msg);
            }
        }
        Ok((p, s))
    }

    /// wmma.load.{a,b,c}: every lane reads the elements of its fragment.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wmma_load(
        &mut self,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        frag: WmmaFrag,
        shape: WmmaShape,
        col: bool,
        space: Space,
        live: u32,
        w: u32,
    ) -> Result<()> {
        self.check_members(u32::MAX, m, live, w, i.line, "wmma.load");
        if m == 0 {
            return Ok(());
        }
        let ty = i.ty;
        let regs = i.ext_regs(&self.l.k.ext);
        let n = regs.len() * wmma_per_reg(ty);
        let dims = wmma_dims(frag, shape);
        let (p, s) = self.wmma_addr(r, m, i, dims, col, ty, regs.len() as u64 * 4, w)?;
        let eb = ty.bytes();
        let mut vals = [[0u64; 8]; 32];
        lanes!(m, lane, {
            for e in 0..n {
                let (row, c) = wmma_elem(frag, shape, ty, lane, e);
                let idx = if col { row as u64 + c as u64 * s } else { row as u64 * s + c as u64 };
                let v = self.access(space, p.wrapping_add(idx * eb as u64), eb, None, w, lane, i.line)?;
                let reg = e / wmma_per_reg(ty);
                vals[lane][reg] |= if ty == Ty::F32 { v } else { v << (16 * (e % 2)) };
            }
        });
        lanes!(m, lane, {
            for (j, &reg) in regs.iter().enumerate() {
                r[ix(reg, lane)] = vals[lane][j];
            }
        });
        self.finish_shared_request(false);
        self.finish_global_request(false);
        Ok(())
    }

    /// wmma.store.d: every lane writes the elements of its fragment.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wmma_store(
        &mut self,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        shape: WmmaShape,
        col: bool,
        space: Space,
        live: u32,
        w: u32,
    ) -> Result<()> {
        self.check_members(u32::MAX, m, live, w, i.line, "wmma.store");
        if m == 0 {
            return Ok(());
        }
        let ty = i.ty;
        let regs = i.ext_regs(&self.l.k.ext);
        let n = regs.len() * wmma_per_reg(ty);
        let dims = wmma_dims(WmmaFrag::D, shape);
        let (p, s) = self.wmma_addr(r, m, i, dims, col, ty, regs.len() as u64 * 4, w)?;
        let eb = ty.bytes();
        lanes!(m, lane, {
            for e in 0..n {
                let (row, c) = wmma_elem(WmmaFrag::D, shape, ty, lane, e);
                let idx = if col { row as u64 + c as u64 * s } else { row as u64 * s + c as u64 };
                let v = get(r[ix(regs[e / wmma_per_reg(ty)], lane)], ty, e);
                self.access(space, p.wrapping_add(idx * eb as u64), eb, Some(v), w, lane, i.line)?;
            }
        });
        self.finish_shared_request(false);
        self.finish_global_request(true);
        Ok(())
    }

    /// wmma.mma: D = A * B + C over the warp's fragments.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wmma_mma(
        &mut self,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        shape: WmmaShape,
        c_f32: bool,
        live: u32,
        w: u32,
    ) {
        self.check_members(u32::MAX, m, live, w, i.line, "wmma.mma");
        let (at, dt) = (i.ty, i.ty2);
        let ct = if c_f32 { Ty::F32 } else { Ty::F16 };
        let (mm, nn, kk) = shape.mnk();
        let ext = i.ext_regs(&self.l.k.ext);
        let (nd, na, nb) =
            (wmma_regs(WmmaFrag::D, shape, dt), wmma_regs(WmmaFrag::A, shape, at), wmma_regs(WmmaFrag::B, shape, at));
        let (dr, rest) = ext.split_at(nd);
        let (ar, rest) = rest.split_at(na);
        let (br, cr) = rest.split_at(nb);
        // The matrices, from the first lane holding each element.
        let gather = |frag: WmmaFrag, ty: Ty, regs: &[u32], out: &mut [f64]| {
            let cols = wmma_dims(frag, shape).1;
            let n = regs.len() * wmma_per_reg(ty);
            let mut have = vec![false; out.len()];
            lanes!(m, lane, {
                for e in 0..n {
                    let (row, c) = wmma_elem(frag, shape, ty, lane, e);
                    if !have[row * cols + c] {
                        have[row * cols + c] = true;
                        out[row * cols + c] = to_f64(get(r[ix(regs[e / wmma_per_reg(ty)], lane)], ty, e), ty);
                    }
                }
            });
        };
        let (mut a, mut b, mut d) = (vec![0f64; mm * kk], vec![0f64; kk * nn], vec![0f64; mm * nn]);
        gather(WmmaFrag::A, at, ar, &mut a);
        gather(WmmaFrag::B, at, br, &mut b);
        gather(WmmaFrag::C, ct, cr, &mut d);
        for row in 0..mm {
            for c in 0..nn {
                let mut acc = d[row * nn + c];
                for k in 0..kk {
                    acc += a[row * kk + k] * b[k * nn + c];
                }
                d[row * nn + c] = acc;
            }
        }
        let n = nd * wmma_per_reg(dt);
        lanes!(m, lane, {
            let mut vals = [0u64; 8];
            for e in 0..n {
                let (row, c) = wmma_elem(WmmaFrag::D, shape, dt, lane, e);
                let x = d[row * nn + c];
                if dt == Ty::F32 {
                    vals[e] = (x as f32).to_bits() as u64;
                } else {
                    vals[e / 2] |= (f16::from_f64(x).to_bits() as u64) << (16 * (e % 2));
                }
            }
            for (j, &reg) in dr.iter().enumerate() {
                r[ix(reg, lane)] = vals[j];
            }
        });
        if self.l.counters {
            self.out.counters.mma_instructions += 1;
            self.out.counters.tensor_flops += 2 * (mm * nn * kk) as u64;
        }
    }
}
