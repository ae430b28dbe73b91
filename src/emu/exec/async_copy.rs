//! `cp.async`: a copy reads global memory when it is issued and writes shared memory when its
//! group completes (`cp.async.wait_group` / `wait_all`, or when the warp exits), which is where
//! the race checker sees the write. Groups are per warp.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::memory::Resolved;
use super::sched::Warp;
use super::Blk;
use crate::device::FindingKind;
use crate::error::Result;

/// One lane's copy in flight: the bytes read at issue, for shared offset `dst`.
#[derive(Clone, Copy)]
pub(super) struct CpReq {
    lane: u8,
    len: u8,
    dst: u32,
    data: [u8; 16],
    line: u32,
}

impl Blk<'_, '_> {
    /// cp.async [dst], [src], size{, src_size}: reads now, adds the copy to the open group.
    #[inline(always)]
    pub(super) fn cp_async(&mut self, warp: &mut Warp, r: &[u64], m: u32, i: &Inst, size: u8, w: u32) -> Result<()> {
        lanes!(m, lane, {
            let dbase = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
            let dst = dbase.wrapping_add(i.imm as u64);
            let sbase = if i.b == NOREG { 0 } else { r[ix(i.b, lane)] };
            let src = sbase.wrapping_add(i.imm2 as u64);
            let src_size = if i.c == NOREG { size as u32 } else { (r[ix(i.c, lane)] as u32).min(size as u32) };
            self.check_align(dst, size as u64, w, lane, i.line)?;
            self.check_align(src, size as u64, w, lane, i.line)?;
            let mut data = [0u8; 16];
            let mut o = 0u32;
            // Whole 4-byte-aligned source inside one allocation and (sanitizer) written:
            // one lookup and word reads, with the same bytes and distinct sectors counted
            // as the 4-byte accesses below, which handle every other case (and findings).
            if src_size > 0 && src_size.is_multiple_of(4) && src.is_multiple_of(4) {
                if let Resolved::Global(a, off) = self.resolve(Space::Global, src, w, lane) {
                    if a.contains(src, src_size as u64) && (!self.l.sanitize || a.is_init(off, src_size as u64)) {
                        if self.l.counters {
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
            let d = if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&dst) { dst - SHARED_WINDOW } else { dst };
            warp.cp_open.push(CpReq { lane: lane as u8, len: size, dst: d as u32, data, line: i.line });
        });
        self.finish_global_request(false);
        Ok(())
    }

    #[inline(always)]
    pub(super) fn cp_commit(&mut self, warp: &mut Warp) {
        let g = std::mem::take(&mut warp.cp_open);
        warp.cp_groups.push_back(g);
    }

    /// Completes groups until at most `n` are pending (`all`: the open group first becomes one).
    #[inline(always)]
    pub(super) fn cp_wait(&mut self, warp: &mut Warp, n: u32, all: bool, w: u32) {
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

    /// A warp that exits completes every copy it issued.
    pub(super) fn cp_drain(&mut self, warp: &mut Warp, w: u32) {
        let mut all: Vec<CpReq> = warp.cp_groups.drain(..).flatten().collect();
        all.append(&mut warp.cp_open);
        self.complete_cp(&all, w);
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
}
