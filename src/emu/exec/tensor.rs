//! Tensor-core instructions: `mma.sync` m16n8k8 / m16n8k16 with bf16 or f16 operands and f32
//! accumulation, multiplied exactly and accumulated in f64, rounded once to f32.

use super::super::ir::*;
use super::float::{bf16_f64, f16_f64};
use super::lanes::ix;
use super::Blk;

impl Blk<'_, '_> {
    /// mma.sync.m16n8k{8,16}.row.col.f32.{bf16,f16}: the d, a, b and c fragments (the extra operands).
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn mma(&mut self, r: &mut [u64], m: u32, i: &Inst, kk: u8, isbf: bool, live: u32, w: u32) {
        self.check_members(u32::MAX, m, live, w, i.line, "mma.sync");
        let ext = i.ext_regs(&self.l.k.ext);
        let na = if kk == 16 { 4 } else { 2 };
        let nb = na / 2;
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
        if self.l.counters {
            self.out.counters.mma_instructions += 1;
            self.out.counters.tensor_flops += 2 * 16 * 8 * kk as u64;
        }
    }
}
