//! `ldmatrix` and `stmatrix`: each lane supplies the address of one 16-byte row of shared memory;
//! the rows are read (written) whole (one bounds check, one pass of the shadow, the bank model on
//! 4-word blocks for ldmatrix), element by element only when a row is out of bounds so that a
//! finding names the element.

use super::super::ir::*;
use super::lanes::ix;
use super::memory::Resolved;
use super::Blk;
use crate::error::Result;

impl Blk<'_, '_> {
    /// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn ldmatrix(
        &mut self,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        num: u8,
        trans: bool,
        live: u32,
        w: u32,
    ) -> Result<()> {
        let l = self.l;
        let kext = &l.k.ext;
        self.check_members(u32::MAX, m, live, w, i.line, "ldmatrix.sync");
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
                        *x = self.access(Space::Shared, addr + 2 * e as u64, 2, None, w, src, i.line)? as u16;
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
                let reg = kext[i.ext_start as usize + mat];
                if m & (1 << lane) != 0 {
                    r[ix(reg, lane)] = v0 as u64 | (v1 as u64) << 16;
                }
            }
        }
        Ok(())
    }
}

impl Blk<'_, '_> {
    /// stmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}{.shared}.b16 (`f`: num, trans, generic): the
    /// inverse of ldmatrix. Register j of lane l holds elements (l/4, 2(l%4)) and (l/4, 2(l%4)+1)
    /// of matrix j, low half first (with .trans, elements (2(l%4), l/4) and (2(l%4)+1, l/4));
    /// lane 8j+i gives the address of row i of matrix j. Each row is one 16-byte store (counted
    /// as one shared store request for the whole instruction, with the bank model over all its
    /// rows' words). A generic address outside the shared window is a shared out-of-bounds fault.
    /// Not inlined: it is rare, and the dispatcher's loop stays small.
    #[inline(never)]
    pub(super) fn stmatrix(
        &mut self,
        r: &[u64],
        m: u32,
        i: &Inst,
        f: (u8, bool, bool),
        live: u32,
        w: u32,
    ) -> Result<()> {
        let (num, trans, generic) = f;
        let l = self.l;
        self.check_members(u32::MAX, m, live, w, i.line, "stmatrix.sync");
        let src = &l.k.ext[i.ext_start as usize..i.ext_start as usize + num as usize];
        let mut rows = [[0u16; 8]; 32];
        for lane in 0..32usize {
            let (g, q) = (lane / 4, lane % 4);
            for (j, &reg) in src.iter().enumerate() {
                let v = r[ix(reg, lane)];
                let (v0, v1) = (v as u16, (v >> 16) as u16);
                let mat = &mut rows[8 * j..8 * j + 8];
                if trans {
                    mat[2 * q][g] = v0;
                    mat[2 * q + 1][g] = v1;
                } else {
                    mat[g][2 * q] = v0;
                    mat[g][2 * q + 1] = v1;
                }
            }
        }
        for (lane, row) in rows.iter().enumerate().take(8 * num as usize) {
            let base = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
            let addr = base.wrapping_add(i.imm as u64);
            self.check_align(addr, 16, w, lane, i.line)?;
            let sp = if generic { Space::Generic } else { Space::Shared };
            match self.resolve(sp, addr, w, lane) {
                Resolved::Shared(off) if off + 16 <= self.shared.len() as u64 => {
                    if l.counters {
                        self.words.extend((off >> 2) as u32..=((off + 15) >> 2) as u32);
                    }
                    if l.sanitize {
                        self.shadow_access(off, 16, 2, true, w, lane, i.line);
                    }
                    let o = off as usize;
                    for (e, x) in row.iter().enumerate() {
                        self.shared[o + 2 * e..o + 2 * e + 2].copy_from_slice(&x.to_le_bytes());
                    }
                }
                _ => {
                    // Out of bounds: element by element, so the finding names the element.
                    for (e, &x) in row.iter().enumerate() {
                        self.access(Space::Shared, addr + 2 * e as u64, 2, Some(x as u64), w, lane, i.line)?;
                    }
                }
            }
        }
        self.finish_shared_request(false);
        Ok(())
    }
}
