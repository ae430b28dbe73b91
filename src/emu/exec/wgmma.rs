//! `wgmma.mma_async` (PTX ISA 9.7.15.5): D (64 x N) = A (64 x K) * B (K x N) [+ D], A from shared
//! memory through a matrix descriptor or from registers, B from shared memory, executed by the
//! four warps of a warpgroup together.
//!
//! Execution model: warp w of a warpgroup reads only rows 16(w%4)..+16 of A and writes only its
//! own D fragment (those rows), so each warp performs its part when it reaches the instruction:
//! at issue, it reads its A rows, all of B and (scale-d) its D, and writes its D. In PTX the
//! operation is asynchronous until the `wgmma.wait_group` that retires it; a program that obeys
//! the wgmma rules cannot tell the difference, and the sanitizer ([`super::wgmma_check`])
//! flags the programs that could. Executing at issue is also what keeps register allocation
//! sound: D and A are read and written at the instruction's own position, where liveness puts
//! them (`regalloc::wgmma_info`).
//!
//! Arithmetic: products are exact in f64 (bf16, f16, e4m3, e5m2 operands), each output is
//! accumulated in f64 in k order starting from D (or 0) and rounded once to f32 (or f16). The
//! tensor cores' accumulation order and intermediate precision are unspecified (PTX ISA
//! 9.7.15.5.2, "Precision and rounding"), and for fp8 they are measurably coarser: see
//! [`fp8_error_bound`].

use super::super::ir::*;
use super::float::{bf16_f64, f16_f64, f8_f64};
use super::lanes::ix;
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::Result;
use half::f16;

/// A decoded 64-bit shared-memory matrix descriptor (PTX ISA 9.7.15.5.1.2.2, "Matrix Descriptor
/// Format"): bits 0-13 start address >> 4, 16-29 leading dimension byte offset >> 4, 32-45 stride
/// dimension byte offset >> 4, 49-51 base offset, 62-63 swizzle (0 none, 1 128B, 2 64B, 3 32B).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MatDesc {
    /// Shared-memory byte address (18 bits).
    pub start: u32,
    pub lbo: u32,
    pub sbo: u32,
    pub base_offset: u32,
    /// Swizzle span in bytes: 0 (none), 32, 64 or 128.
    pub swizzle: u32,
}

impl MatDesc {
    pub fn decode(d: u64) -> MatDesc {
        let field = |s: u32| ((d >> s) & 0x3fff) as u32 * 16;
        MatDesc {
            start: field(0),
            lbo: field(16),
            sbo: field(32),
            base_offset: ((d >> 49) & 7) as u32,
            swizzle: match d >> 62 {
                0 => 0,
                1 => 128,
                2 => 64,
                _ => 32,
            },
        }
    }

    /// Shared-memory address of the 16-byte chunk of an operand (PTX ISA 9.7.15.5.1.2.1.3,
    /// "Canonical Layouts", in bytes; T elements make 16 bytes):
    ///
    /// - K-major (`mn_major` false), `mn` the row (M or N index), `k` the byte offset along K
    ///   (a multiple of 16, below 32): with no swizzle, 8-row x 16-byte core matrices, rows 16
    ///   bytes apart, the next 8 rows at SBO and the next 16 bytes of K at LBO; swizzled with span
    ///   W, rows W bytes apart (K contiguous within the row), the next 8 rows at SBO, LBO unused.
    /// - MN-major, `mn` the byte offset along M/N (a multiple of 16), `k` the K index: with no
    ///   swizzle, core matrices of 8 K-rows x 16 bytes, the next 16 bytes of M/N at SBO and the
    ///   next 8 K at LBO; swizzled, K-rows of W bytes along M/N, the next W bytes of M/N at LBO
    ///   and the next 8 K at SBO.
    ///
    /// The swizzle is Swizzle<B,4,3> on the address: bits [4, 4+B) ^= bits [7, 7+B), B = 3, 2, 1
    /// for 128, 64, 32 bytes, applied to the absolute shared address (base offset 0: the
    /// repeating pattern starts at a multiple of 8 W bytes).
    #[inline(always)]
    pub fn chunk_addr(&self, mn_major: bool, mn: u32, k: u32) -> u32 {
        let w = self.swizzle;
        let off = match (mn_major, w) {
            (false, 0) => (mn % 8) * 16 + (mn / 8) * self.sbo + (k / 16) * self.lbo,
            (false, _) => (mn % 8) * w + (mn / 8) * self.sbo + k,
            (true, 0) => (mn / 16) * self.sbo + (k % 8) * 16 + (k / 8) * self.lbo,
            (true, _) => mn % w + (mn / w) * self.lbo + (k % 8) * w + (k / 8) * self.sbo,
        };
        let a = self.start.wrapping_add(off);
        if w == 0 {
            a
        } else {
            a ^ (((a >> 7) & (w / 16 - 1)) << 4)
        }
    }
}

/// The value of element `j` of a 16-byte chunk of `t` elements.
#[inline(always)]
fn elem(t: WgElem, c: &[u8; 16], j: usize) -> f64 {
    match t {
        WgElem::Bf16 => bf16_f64(u16::from_le_bytes([c[2 * j], c[2 * j + 1]])),
        WgElem::F16 => f16_f64(u16::from_le_bytes([c[2 * j], c[2 * j + 1]])),
        WgElem::E4m3 => f8_f64(c[j], true),
        WgElem::E5m2 => f8_f64(c[j], false),
    }
}

/// The value of element `j` of a 32-bit A-fragment register.
#[inline(always)]
fn reg_elem(t: WgElem, v: u64, j: usize) -> f64 {
    match t {
        WgElem::Bf16 => bf16_f64((v >> (16 * j)) as u16),
        WgElem::F16 => f16_f64((v >> (16 * j)) as u16),
        WgElem::E4m3 => f8_f64((v >> (8 * j)) as u8, true),
        WgElem::E5m2 => f8_f64((v >> (8 * j)) as u8, false),
    }
}

/// Position (row within the warp's 16, column) of element `i` of a lane's D fragment (PTX ISA
/// 9.7.15.5.1.1.1, Figure 149): row g + 8((i>>1)&1), column 8(i>>2) + 2q + (i&1), with g = lane/4
/// and q = lane%4 (the mma.sync m16n8 C layout repeated over N/8 column blocks).
#[inline(always)]
fn d_pos(lane: usize, i: usize) -> (usize, usize) {
    (lane / 4 + 8 * ((i >> 1) & 1), 8 * (i >> 2) + 2 * (lane % 4) + (i & 1))
}

/// Position of element `e` (0..8 for 16-bit, 0..16 for 8-bit types) of a lane's A fragment
/// (Figures 148 and 152): 16-bit as D over 16 columns; 8-bit: row g + 8((e>>2)&1), column
/// 16(e>>3) + 4q + (e&3).
#[inline(always)]
fn a_pos(lane: usize, e: usize, bytes: u32) -> (usize, usize) {
    let (g, q) = (lane / 4, lane % 4);
    if bytes == 2 {
        (g + 8 * ((e >> 1) & 1), 8 * (e >> 2) + 2 * q + (e & 1))
    } else {
        (g + 8 * ((e >> 2) & 1), 16 * (e >> 3) + 4 * q + (e & 3))
    }
}

/// Worst-case error bound for an fp8 wgmma chain that kernels' tolerances must be derived from,
/// rather than from the emulator's exact accumulation. DeepSeek-V3's report (arXiv 2412.19437,
/// section 3.3.2) measured that Hopper's fp8 tensor-core GEMM keeps about 14 bits of the
/// accumulation (maximum relative error near 2% for K = 4096); modelled here as each k32 wgmma
/// adding its products to the f32 accumulator with an error up to 2^-13 of the magnitudes
/// involved, so after `k` total products (k/32 chained wgmmas) an output whose products and
/// starting value have absolute sum `abs_sum` is off by at most ceil(k/32) * 2^-13 * abs_sum
/// (1.6% of abs_sum for K = 4096). The emulator's result is within 2^-24 of the exact sum.
pub fn fp8_error_bound(k: usize, abs_sum: f64) -> f64 {
    k.div_ceil(32) as f64 * 2f64.powi(-13) * abs_sum
}

impl Blk<'_, '_> {
    /// 16 bytes of shared memory at `addr` read by a wgmma (zeros and a finding when out of
    /// bounds); with the sanitizer on, the read is recorded (initcheck, racecheck, and the
    /// in-flight operand bytes).
    #[inline(always)]
    fn wg_chunk(&mut self, addr: u32, w: u32, lane: usize, line: u32) -> Result<[u8; 16]> {
        let o = addr as usize;
        if o + 16 > self.shared.len() {
            let msg = format!(
                "wgmma operand read of 16 bytes at shared address {addr:#x}, outside the block's shared memory"
            );
            if !self.l.sanitize {
                return Err(err_at(self.l.k, line, msg));
            }
            if !self.flagged {
                self.flagged = true;
                self.finding(FindingKind::SharedOutOfBounds, w, lane, line, Some(addr as u64), msg);
            }
            return Ok([0; 16]);
        }
        if self.l.sanitize {
            self.proxy_read = true;
            self.shadow_access(addr as u64, 16, 16, false, w, lane, line);
            self.proxy_read = false;
            self.wg.note_read(addr);
        }
        let mut c = [0u8; 16];
        c.copy_from_slice(&self.shared[o..o + 16]);
        Ok(c)
    }

    /// wgmma.mma_async, warp `w`'s part (see the module comment).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wgmma(
        &mut self,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        cfg: WgmmaCfg,
        live: u32,
        w: u32,
        pc: u32,
    ) -> Result<()> {
        let l = self.l;
        self.check_members(u32::MAX, m, live, w, i.line, "wgmma.mma_async");
        if m == 0 {
            return Ok(());
        }
        let wg = w / 4;
        if l.nthreads < 128 * (wg + 1) {
            return Err(err_at(
                l.k,
                i.line,
                format!(
                    "wgmma by warp {w} needs the whole warpgroup {wg} (warps {}..{}, 32 threads each); the block has {} threads",
                    4 * wg,
                    4 * wg + 3,
                    l.nthreads
                ),
            ));
        }
        let lane0 = m.trailing_zeros() as usize;
        let da = if cfg.a_regs() { 0 } else { r[ix(i.a, lane0)] };
        let db = r[ix(i.b, lane0)];
        let scale_d = r[ix(i.c, lane0)] & 1 != 0;
        if l.sanitize {
            self.wg_agree(r, m, i, cfg, w, pc, (da, db, scale_d));
        }
        let (desc_a, desc_b) = (MatDesc::decode(da), MatDesc::decode(db));
        for (d, what, used) in [(desc_a, "A", !cfg.a_regs()), (desc_b, "B", true)] {
            if used && d.base_offset != 0 && d.swizzle != 0 {
                return Err(err_at(
                    l.k,
                    i.line,
                    format!(
                        "wgmma {what} descriptor with a non-zero matrix base offset ({}) is not supported: its effect \
                         on the swizzle is not confirmed on a GPU (start the swizzle pattern at a multiple of {} bytes)",
                        d.base_offset,
                        8 * d.swizzle
                    ),
                ));
            }
        }
        let (n, k) = (cfg.n() as usize, cfg.k() as usize);
        let (at, bt) = (cfg.a_type(), cfg.b_type());
        let (sa, sb) = (if cfg.neg_a() { -1.0 } else { 1.0 }, if cfg.neg_b() { -1.0 } else { 1.0 });
        let row0 = 16 * (w % 4);
        let line = i.line;
        let kext = &l.k.ext;
        let ext = &kext[i.ext_start as usize..i.ext_start as usize + i.ext_len as usize];
        let (dregs, aregs) = ext.split_at(cfg.d_regs() as usize);

        // A: this warp's 16 rows x K.
        let mut am = [0f64; 16 * 32];
        if cfg.a_regs() {
            for lane in 0..32usize {
                for (j, &reg) in aregs.iter().enumerate() {
                    let v = r[ix(reg, lane)];
                    let per = 4 / at.bytes() as usize;
                    for h in 0..per {
                        let (row, col) = a_pos(lane, j * per + h, at.bytes());
                        am[row * 32 + col] = sa * reg_elem(at, v, h);
                    }
                }
            }
        } else if !cfg.tnsp_a() {
            let per = 16 / at.bytes() as usize;
            for row in 0..16usize {
                for kc in 0..2usize {
                    let c =
                        self.wg_chunk(desc_a.chunk_addr(false, row0 + row as u32, 16 * kc as u32), w, lane0, line)?;
                    for j in 0..per {
                        am[row * 32 + kc * per + j] = sa * elem(at, &c, j);
                    }
                }
            }
        } else {
            // MN-major A (16-bit types only): 16 rows of M are 32 bytes, two chunks per K row.
            for kk in 0..k {
                for mc in 0..2usize {
                    let mb = 2 * (row0 + 8 * mc as u32);
                    let c = self.wg_chunk(desc_a.chunk_addr(true, mb, kk as u32), w, lane0, line)?;
                    for j in 0..8usize {
                        am[(mc * 8 + j) * 32 + kk] = sa * elem(at, &c, j);
                    }
                }
            }
        }

        // B: K x N, row kk at bm[kk * n..].
        let mut bm = std::mem::take(&mut self.wg.bm);
        bm.clear();
        bm.resize(k * n, 0.0);
        if !cfg.tnsp_b() {
            let per = 16 / bt.bytes() as usize;
            for nn in 0..n {
                for kc in 0..2usize {
                    let c = self.wg_chunk(desc_b.chunk_addr(false, nn as u32, 16 * kc as u32), w, lane0, line)?;
                    for j in 0..per {
                        bm[(kc * per + j) * n + nn] = sb * elem(bt, &c, j);
                    }
                }
            }
        } else {
            for kk in 0..k {
                for nc in 0..n / 8 {
                    let c = self.wg_chunk(desc_b.chunk_addr(true, 16 * nc as u32, kk as u32), w, lane0, line)?;
                    for j in 0..8usize {
                        bm[kk * n + nc * 8 + j] = sb * elem(bt, &c, j);
                    }
                }
            }
        }

        // D = A B + (scale-d ? D : 0), row by row so that the inner loop over N vectorizes; each
        // output adds its products in k order.
        let f16_acc = cfg.f16_acc();
        let mut acc = std::mem::take(&mut self.wg.acc);
        acc.clear();
        acc.resize(16 * n, 0.0);
        if scale_d {
            for lane in 0..32usize {
                for e in 0..n / 2 {
                    let (row, col) = d_pos(lane, e);
                    acc[row * n + col] = if f16_acc {
                        f16_f64((r[ix(dregs[e / 2], lane)] >> (16 * (e % 2))) as u16)
                    } else {
                        f32::from_bits(r[ix(dregs[e], lane)] as u32) as f64
                    };
                }
            }
        }
        for (row, accrow) in acc.chunks_exact_mut(n).enumerate() {
            let arow = &am[row * 32..row * 32 + k];
            for (&a, brow) in arow.iter().zip(bm.chunks_exact(n)) {
                for (x, &b) in accrow.iter_mut().zip(brow) {
                    *x += a * b;
                }
            }
        }
        for lane in 0..32usize {
            if m & (1 << lane) == 0 {
                continue;
            }
            if f16_acc {
                for (j, &reg) in dregs.iter().enumerate() {
                    let h = |e: usize| {
                        let (row, col) = d_pos(lane, e);
                        f16::from_f64(acc[row * n + col]).to_bits() as u64
                    };
                    r[ix(reg, lane)] = h(2 * j) | h(2 * j + 1) << 16;
                }
            } else {
                for (e, &reg) in dregs.iter().enumerate() {
                    let (row, col) = d_pos(lane, e);
                    r[ix(reg, lane)] = (acc[row * n + col] as f32).to_bits() as u64;
                }
            }
        }
        self.wg.bm = bm;
        self.wg.acc = acc;
        if l.counters {
            let c = &mut self.out.counters;
            c.tensor_flops += 2 * 16 * (n * k) as u64;
            if w.is_multiple_of(4) {
                c.wgmma_instructions += 1;
            }
        }
        if l.sanitize {
            self.wg_issue(pc, cfg, w, lane0, line);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The descriptor fields land where PTX ISA 9.7.15.5.1.2.2 puts them.
    #[test]
    fn descriptor_fields() {
        let d = (0x1230u64 >> 4) | (256u64 >> 4) << 16 | (1024u64 >> 4) << 32 | 3u64 << 49 | 2u64 << 62;
        let m = MatDesc::decode(d);
        assert_eq!(m, MatDesc { start: 0x1230, lbo: 256, sbo: 1024, base_offset: 3, swizzle: 64 });
        assert_eq!(MatDesc::decode(1u64 << 62).swizzle, 128);
        assert_eq!(MatDesc::decode(3u64 << 62).swizzle, 32);
    }

    /// A K-major 128B-swizzled tile: row r's 16-byte chunk c lands at chunk c ^ (r % 8) of its
    /// 128-byte row (the layout TMA writes with its 128B swizzle).
    #[test]
    fn k_major_128b_swizzle_is_an_xor_of_chunks() {
        let d = MatDesc { start: 2048, lbo: 16, sbo: 1024, base_offset: 0, swizzle: 128 };
        for row in 0..64u32 {
            for kc in 0..2u32 {
                let want = 2048 + (row / 8) * 1024 + (row % 8) * 128 + ((kc ^ (row % 8)) * 16);
                assert_eq!(d.chunk_addr(false, row, 16 * kc), want);
            }
        }
    }
}
