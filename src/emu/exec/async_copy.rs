//! Asynchronous copies.
//!
//! `cp.async`: a copy reads global memory when it is issued and writes shared memory when its
//! group completes (`cp.async.wait_group` / `wait_all`, `cp.async.mbarrier.arrive`, or when the
//! warp exits), which is where the race checker sees the write. Groups are per warp.
//!
//! Bulk and tensor (TMA) copies (`cp.async.bulk{.tensor}`, PTX ISA 9.7.9.25.4 and 9.7.9.27) are
//! performed whole when they are issued: a load reads global memory, writes the box into shared
//! memory (swizzled, out-of-bounds elements zero) and then performs its complete-tx on the
//! mbarrier with the box's full byte count; a store reads shared memory and writes the part of
//! the box inside the tensor. What makes this exact for correct programs is the sanitizer: bytes
//! a load wrote may be read only by a warp that has observed the mbarrier phase the load
//! completes on (checked on every shared read), so a program that reads them early is reported
//! rather than silently given data that would not have arrived yet. A store's bulk group only
//! records, for the happens-before checker, when its reads of shared memory retire.

use super::super::ir::*;
use super::super::sanitizer::{track, track_async_write, w_tid, Access, SharedHazard, ASYNC_TID, W_CLK};
use super::super::tensor_map::{decode, Tmap};
use super::lanes::{ix, lanes};
use super::memory::Resolved;
use super::sched::Warp;
use super::sync::shared_off;
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::Result;

/// A bulk or tensor store issued by one lane and not yet retired by `cp.async.bulk.wait_group`.
#[derive(Clone, Copy)]
pub(super) struct BulkRec {
    lane: u8,
    /// The lane's bulk async-group ([`OPEN`] until committed).
    group: u32,
}

const OPEN: u32 = u32::MAX;

/// The shared address of the 16-byte chunk at `addr` after the swizzle of `span` bytes: bits
/// [4, 4 + log2(span / 16)) XOR bits [7, ...) of the absolute shared address (PTX ISA 5.5.7; the
/// CUDA programming guide's TMA swizzle tables give the same pattern with its base offset).
#[inline(always)]
fn swizzle(addr: u64, span: u32) -> u64 {
    match span {
        32 => addr ^ ((addr >> 3) & 0x10),
        64 => addr ^ ((addr >> 3) & 0x30),
        128 => addr ^ ((addr >> 3) & 0x70),
        _ => addr,
    }
}

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

impl Blk<'_, '_> {
    /// Completes lane `lane`'s cp.async copies now (`cp.async.mbarrier.arrive`): they leave the
    /// groups they were in, which stay (as empty groups) for `wait_group`'s count.
    pub(super) fn cp_flush_lane(&mut self, warp: &mut Warp, lane: usize, w: u32) {
        let mut mine: Vec<CpReq> = Vec::new();
        for g in warp.cp_groups.iter_mut().chain(std::iter::once(&mut warp.cp_open)) {
            mine.extend(g.iter().filter(|q| q.lane as usize == lane));
            g.retain(|q| q.lane as usize != lane);
        }
        self.complete_cp(&mine, w);
    }

    /// Reads `out.len()` bytes of global memory at `addr` for a bulk copy: one allocation lookup
    /// and word reads when the range is inside one allocation (and, with the sanitizer, written);
    /// byte by byte through [`Blk::access`] (which reports the first bad byte) otherwise.
    fn global_read(&mut self, addr: u64, out: &mut [u8], w: u32, lane: usize, line: u32) -> Result<()> {
        let len = out.len() as u64;
        if len == 0 {
            return Ok(());
        }
        if let Resolved::Global(a, off) = self.resolve(Space::Global, addr, w, lane) {
            if a.contains(addr, len) && (!self.l.sanitize || a.is_init(off, len)) {
                if self.l.counters {
                    self.sectors.extend((addr >> 5)..=((addr + len - 1) >> 5));
                    self.out.counters.global_load_bytes += len;
                }
                let mut o = 0usize;
                while o < out.len() {
                    let step = if (off + o as u64).is_multiple_of(4) && out.len() - o >= 4 { 4 } else { 1 };
                    let v = a.read(off + o as u64, step);
                    out[o..o + step as usize].copy_from_slice(&v.to_le_bytes()[..step as usize]);
                    o += step as usize;
                }
                return Ok(());
            }
        }
        for (k, b) in out.iter_mut().enumerate() {
            *b = self.access(Space::Global, addr + k as u64, 1, None, w, lane, line)? as u8;
        }
        Ok(())
    }

    /// Writes `data` to global memory at `addr` for a bulk store (the fast and the checked path
    /// as in [`Blk::global_read`]).
    fn global_write(&mut self, addr: u64, data: &[u8], w: u32, lane: usize, line: u32) -> Result<()> {
        let len = data.len() as u64;
        if len == 0 {
            return Ok(());
        }
        if let Resolved::Global(a, off) = self.resolve(Space::Global, addr, w, lane) {
            if a.contains(addr, len) {
                if self.l.counters {
                    self.sectors.extend((addr >> 5)..=((addr + len - 1) >> 5));
                    self.out.counters.global_store_bytes += len;
                }
                let mut o = 0usize;
                while o < data.len() {
                    let step = if (off + o as u64).is_multiple_of(4) && data.len() - o >= 4 { 4 } else { 1 };
                    let mut v = [0u8; 8];
                    v[..step].copy_from_slice(&data[o..o + step]);
                    a.write(off + o as u64, step as u32, u64::from_le_bytes(v));
                    o += step;
                }
                if self.l.sanitize {
                    a.mark_init(off, len);
                }
                return Ok(());
            }
        }
        for (k, &b) in data.iter().enumerate() {
            self.access(Space::Global, addr + k as u64, 1, Some(b as u64), w, lane, line)?;
        }
        Ok(())
    }

    /// The tensor map at generic address `addr` (param, const or global memory), decoded; None
    /// after a finding (not readable, misaligned, not a map the emulator encoded).
    fn read_tmap(&mut self, addr: u64, w: u32, lane: usize, line: u32) -> Result<Option<Tmap>> {
        let mut b = [0u8; 128];
        let ok = match self.resolve(Space::Generic, addr, w, lane) {
            Resolved::Param(off) => self.l.params.get(off as usize..off as usize + 128).map(|s| b.copy_from_slice(s)),
            Resolved::Const(off) => {
                self.l.k.const_data.get(off as usize..off as usize + 128).map(|s| b.copy_from_slice(s))
            }
            Resolved::Global(a, off) if a.contains(addr, 128) => {
                a.host_read(off, &mut b);
                Some(())
            }
            _ => None,
        };
        let err = if ok.is_none() {
            Some(format!("tensor map operand {addr:#x} is not 128 bytes of param, const or global memory"))
        } else if !addr.is_multiple_of(64) {
            Some(format!("tensor map operand {addr:#x} is not 64-byte aligned"))
        } else {
            decode(&b).err().map(|e| format!("tensor map at {addr:#x}: {e}"))
        };
        if let Some(msg) = err {
            self.violation(FindingKind::InvalidTensorMap, w, lane, line, Some(addr), msg)?;
            return Ok(None);
        }
        Ok(decode(&b).ok())
    }

    /// A shared-memory operand of a bulk copy: its offset, checked in bounds for `len` bytes and
    /// aligned to `align`; None after a finding.
    #[allow(clippy::too_many_arguments)]
    fn bulk_smem(&mut self, addr: u64, len: u64, align: u64, w: u32, lane: usize, line: u32) -> Result<Option<u64>> {
        let Some(off) = shared_off(addr) else {
            self.fault(FindingKind::SharedOutOfBounds, w, lane, line, addr, len as u32, true)?;
            return Ok(None);
        };
        if !off.is_multiple_of(align) {
            self.violation(
                FindingKind::Misaligned,
                w,
                lane,
                line,
                Some(off),
                format!("bulk copy shared address {off:#x} is not {align}-byte aligned"),
            )?;
            return Ok(None);
        }
        if off + len > self.shared.len() as u64 {
            self.violation(
                FindingKind::SharedOutOfBounds,
                w,
                lane,
                line,
                Some(off),
                format!(
                    "bulk copy of {len} bytes at shared {off:#x} overruns the block's {} bytes of shared memory",
                    self.shared.len()
                ),
            )?;
            return Ok(None);
        }
        Ok(Some(off))
    }

    /// Shared bytes a TMA / bulk load issued by lane `lane` of warp `w` wrote: the issue must be
    /// ordered after every earlier access of those bytes (racecheck, with the issuing thread's
    /// clock; and no bulk store may still read them); then they are initialized for initcheck,
    /// written by the async proxy, visible once phase `phase` of mbarrier `slot` is observed.
    #[allow(clippy::too_many_arguments)]
    fn land_async(&mut self, off: u64, len: u64, slot: usize, phase: u32, w: u32, lane: usize, line: u32) {
        if !self.l.sanitize {
            return;
        }
        if self.asyncs.active() {
            if let Some(h) = self.asyncs.generic_write(w as usize, &self.clocks.vc[w as usize], off, len) {
                self.async_write_hazard(h, w, lane, line);
            }
        }
        if (self.wg.busy_total | self.wg.retired_total) != 0 {
            // A copy into a wgmma's operands: in flight, or retired by a wait not ordered before
            // this issue (wgmma rule 4, as for a generic store).
            self.wg_store(off, len as u32, w, lane, line);
        }
        let a = Access::new((w * 32 + lane as u32) as u16, &self.clocks.vc[w as usize], self.clocks.block_start);
        let now = a.now;
        let mut first = None;
        self.shadow.for_each(off, len, |s, b| {
            let h = track(s, &a, true);
            if h != SharedHazard::None && first.is_none() {
                first = Some((b, h));
            }
            track_async_write(s, now);
        });
        if let Some((b, h)) = first {
            self.shared_hazard(b, b, 1, h, true, w, lane, line);
        }
        self.asyncs.async_write(off as usize, len as usize, slot, phase);
    }

    /// Shared bytes a TMA / bulk store reads: a finding if some were never written (initcheck),
    /// or written by generic stores without a `fence.proxy.async` ordered before the store.
    fn read_async(&mut self, off: u64, len: u64, w: u32, lane: usize, line: u32) -> Result<()> {
        if !self.l.sanitize {
            return Ok(());
        }
        let start = self.clocks.block_start;
        let mut first = None;
        let mut generic = None;
        let clocks = &*self.clocks;
        self.shadow.for_each(off, len, |s, b| {
            let (clk, tid) = (s[W_CLK], w_tid(s));
            if clk < start {
                first = first.or(Some(b));
            } else if tid != ASYNC_TID
                && generic.is_none()
                && clocks.fenced((tid / 32) as usize, clk, w as usize).is_err()
            {
                generic = Some((b, tid, clk));
            }
        });
        if let Some((b, v, t)) = generic {
            self.check_fenced(b, v, t, w, lane, line, "a bulk/tensor store reads it as its source");
            self.flagged = false;
        }
        if let Some(b) = first {
            self.violation(
                FindingKind::UninitShared,
                w,
                lane,
                line,
                Some(b),
                "bulk store reads shared memory never written in this launch".to_string(),
            )?;
        }
        Ok(())
    }

    /// The mbarrier a bulk load completes on: its slot and current phase, or None after a finding.
    fn bulk_mbar(&mut self, addr: u64, w: u32, lane: usize, line: u32) -> Result<Option<(usize, u32)>> {
        let valid = shared_off(addr).and_then(|off| self.sync.slot(off)).filter(|&s| self.sync.mbars[s].valid);
        match valid {
            Some(s) => Ok(Some((s, self.sync.mbars[s].phase))),
            None => {
                self.violation(
                    FindingKind::MbarrierMisuse,
                    w,
                    lane,
                    line,
                    Some(addr),
                    format!("bulk copy completes on {addr:#x}, which holds no initialized mbarrier"),
                )?;
                Ok(None)
            }
        }
    }

    /// complete-tx of `bytes` on mbarrier `slot` (the end of a bulk load).
    fn complete_tx(&mut self, slot: usize, bytes: u64, w: u32, lane: usize, line: u32) -> Result<()> {
        self.sync.mbars[slot].tx -= bytes as i64;
        let mb = &self.sync.mbars[slot];
        if mb.tx.abs() > super::mbarrier::MBAR_MAX {
            let (off, tx) = (mb.off, mb.tx);
            self.violation(
                FindingKind::MbarrierMisuse,
                w,
                lane,
                line,
                Some(off),
                format!("a bulk copy of {bytes} bytes takes the tx-count of the mbarrier at shared {off:#x} to {tx}, outside ±(2^20-1)"),
            )?;
        }
        self.mbar_maybe_complete(slot);
        Ok(())
    }

    /// A multicast mask must name only this CTA (clusters of one CTA).
    fn check_multicast(&self, mask: u64, line: u32) -> Result<()> {
        if mask & 0xffff != 1 {
            return Err(err_at(
                self.l.k,
                line,
                format!("multicast to CTA mask {mask:#x}: the emulator runs clusters of one CTA (mask 1 only)"),
            ));
        }
        Ok(())
    }

    /// cp.async.bulk{.tensor}, its groups and the tensor-map prefetch, lane by lane.
    #[inline(never)]
    pub(super) fn bulk(&mut self, warp: &mut Warp, r: &[u64], m: u32, i: &Inst, op: BulkOp, w: u32) -> Result<()> {
        if m == 0 {
            return Ok(());
        }
        self.progress = self.clock;
        let reg = |x: u32, lane: usize| if x == NOREG { 0 } else { r[ix(x, lane)] };
        lanes!(m, lane, {
            match op {
                BulkOp::TensorLoad { dim, multicast } => {
                    if multicast {
                        self.check_multicast(reg(i.e, lane), i.line)?;
                    }
                    let Some(map) = self.read_tmap(reg(i.b, lane), w, lane, i.line)? else { continue };
                    let coords = self.coords(r, i, lane);
                    if !self.check_rank(&map, dim, w, lane, i.line)? {
                        continue;
                    }
                    let Some((slot, phase)) = self.bulk_mbar(reg(i.c, lane), w, lane, i.line)? else { continue };
                    let bytes = map.box_bytes();
                    let dst = reg(i.a, lane).wrapping_add(i.imm as u64);
                    if let Some(dst) = self.bulk_smem(dst, bytes, 128, w, lane, i.line)? {
                        self.tensor_box(&map, &coords, dst, false, w, lane, i.line)?;
                        self.land_async(dst, bytes, slot, phase, w, lane, i.line);
                    }
                    self.complete_tx(slot, bytes, w, lane, i.line)?;
                }
                BulkOp::TensorStore { dim } => {
                    let Some(map) = self.read_tmap(reg(i.b, lane), w, lane, i.line)? else { continue };
                    let coords = self.coords(r, i, lane);
                    if !self.check_rank(&map, dim, w, lane, i.line)? {
                        continue;
                    }
                    let bytes = map.box_bytes();
                    let src = reg(i.a, lane).wrapping_add(i.imm as u64);
                    let Some(src) = self.bulk_smem(src, bytes, 128, w, lane, i.line)? else { continue };
                    if let Some(d) = coords[..map.rank].iter().position(|&c| c < 0) {
                        // PTX ISA 9.7.9.27.1.1: a store's box must start at non-negative coordinates.
                        self.violation(
                            FindingKind::GlobalOutOfBounds,
                            w,
                            lane,
                            i.line,
                            None,
                            format!("tensor store box starts at coordinate {} < 0 in dimension {d}", coords[d]),
                        )?;
                    }
                    self.read_async(src, bytes, w, lane, i.line)?;
                    self.tensor_box(&map, &coords, src, true, w, lane, i.line)?;
                    self.bulk_issued(warp, src, bytes, w, lane, i.line);
                }
                BulkOp::Load { multicast } => {
                    if multicast {
                        self.check_multicast(reg(i.d2, lane), i.line)?;
                    }
                    let size = reg(i.c, lane) as u32 as u64;
                    let src = reg(i.b, lane).wrapping_add(i.imm2 as u64);
                    if !self.bulk_size_ok(size, src, w, lane, i.line)? {
                        continue;
                    }
                    let Some((slot, phase)) = self.bulk_mbar(reg(i.e, lane), w, lane, i.line)? else { continue };
                    let dst = reg(i.a, lane).wrapping_add(i.imm as u64);
                    if let Some(dst) = self.bulk_smem(dst, size, 16, w, lane, i.line)? {
                        let mut buf = vec![0u8; size as usize];
                        self.global_read(src, &mut buf, w, lane, i.line)?;
                        self.shared[dst as usize..(dst + size) as usize].copy_from_slice(&buf);
                        if self.l.counters {
                            self.out.counters.bulk_load_bytes += size;
                        }
                        self.land_async(dst, size, slot, phase, w, lane, i.line);
                    }
                    self.complete_tx(slot, size, w, lane, i.line)?;
                }
                BulkOp::Store => {
                    let size = reg(i.c, lane) as u32 as u64;
                    let dst = reg(i.a, lane).wrapping_add(i.imm as u64);
                    if !self.bulk_size_ok(size, dst, w, lane, i.line)? {
                        continue;
                    }
                    let src = reg(i.b, lane).wrapping_add(i.imm2 as u64);
                    let Some(src) = self.bulk_smem(src, size, 16, w, lane, i.line)? else { continue };
                    self.read_async(src, size, w, lane, i.line)?;
                    let data = self.shared[src as usize..(src + size) as usize].to_vec();
                    self.global_write(dst, &data, w, lane, i.line)?;
                    if self.l.counters {
                        self.out.counters.bulk_store_bytes += size;
                    }
                    self.bulk_issued(warp, src, size, w, lane, i.line);
                }
                BulkOp::Commit => {
                    let g = warp.bulk_groups[lane];
                    warp.bulk_groups[lane] += 1;
                    if self.l.sanitize {
                        self.asyncs.bulk_commit((w * 32 + lane as u32) as u16, g);
                    }
                    for q in warp.bulk.iter_mut().filter(|q| q.lane as usize == lane && q.group == OPEN) {
                        q.group = g;
                    }
                }
                BulkOp::Wait { n, .. } => {
                    // Groups older than the newest n are complete (with `.read` only their reads
                    // of shared memory, which is all the emulator keeps: writes land at issue).
                    let done = warp.bulk_groups[lane].saturating_sub(n as u32);
                    warp.bulk.retain(|q| !(q.lane as usize == lane && q.group != OPEN && q.group < done));
                    if self.l.sanitize {
                        let now = self.clocks.now(w as usize);
                        self.asyncs.bulk_retired((w * 32 + lane as u32) as u16, done, now);
                    }
                }
                BulkOp::PrefetchTensormap => {
                    let Some(map) = self.read_tmap(reg(i.b, lane), w, lane, i.line)? else { continue };
                    if i.ext_len > 0 {
                        self.check_rank(&map, i.ext_len as u8, w, lane, i.line)?;
                    }
                }
            }
        });
        self.finish_global_request(matches!(op, BulkOp::TensorStore { .. } | BulkOp::Store));
        Ok(())
    }

    /// Lane `lane`'s tensor coordinates (s32, innermost first; missing dimensions 0).
    fn coords(&self, r: &[u64], i: &Inst, lane: usize) -> [i64; 5] {
        let mut c = [0i64; 5];
        for (d, &x) in i.ext_regs(&self.l.k.ext).iter().enumerate().take(5) {
            c[d] = r[ix(x, lane)] as u32 as i32 as i64;
        }
        c
    }

    fn check_rank(&mut self, map: &Tmap, dim: u8, w: u32, lane: usize, line: u32) -> Result<bool> {
        if map.rank == dim as usize {
            return Ok(true);
        }
        self.violation(
            FindingKind::InvalidTensorMap,
            w,
            lane,
            line,
            None,
            format!("a {dim}d tensor copy with a rank-{} tensor map", map.rank),
        )?;
        Ok(false)
    }

    /// A plain bulk copy's size (a multiple of 16) and global address (16-byte aligned).
    fn bulk_size_ok(&mut self, size: u64, gaddr: u64, w: u32, lane: usize, line: u32) -> Result<bool> {
        if size.is_multiple_of(16) && gaddr.is_multiple_of(16) {
            return Ok(true);
        }
        self.violation(
            FindingKind::Misaligned,
            w,
            lane,
            line,
            Some(gaddr),
            format!("bulk copy of {size} bytes at global {gaddr:#x}: size and address must be multiples of 16"),
        )?;
        Ok(false)
    }

    /// A bulk / tensor store joins its lane's open bulk async-group.
    fn bulk_issued(&mut self, warp: &mut Warp, src: u64, len: u64, w: u32, lane: usize, line: u32) {
        if self.l.sanitize {
            let tid = (w * 32 + lane as u32) as u16;
            self.asyncs.async_read(src as usize, len as usize, tid, line);
        }
        warp.bulk.push(BulkRec { lane: lane as u8, group: OPEN });
    }

    /// Moves one tensor box between global memory and shared memory at `smem` (`store`: shared to
    /// global). The box is dense in shared memory, dimension 0 fastest, each 16-byte chunk at its
    /// swizzled address; a load fills elements outside the tensor with zero, a store skips them.
    #[allow(clippy::too_many_arguments)]
    fn tensor_box(
        &mut self,
        map: &Tmap,
        c: &[i64; 5],
        smem: u64,
        store: bool,
        w: u32,
        lane: usize,
        line: u32,
    ) -> Result<()> {
        let es = map.esize as i64;
        let n: [u32; 5] = std::array::from_fn(|d| if d < map.rank { map.box_elems(d) } else { 1 });
        let row_bytes = n[0] as usize * es as usize;
        let rows: u64 = n[1..].iter().map(|&x| x as u64).product();
        // The dimension-0 elements inside the tensor: [lo, hi) of the row.
        let lo = (-c[0]).clamp(0, n[0] as i64);
        let hi = (map.dims[0] as i64 - c[0]).clamp(lo, n[0] as i64);
        let mut buf = vec![0u8; row_bytes];
        let mut moved = 0u64;
        for row in 0..rows {
            let mut rest = row;
            let mut gaddr = map.addr as i64 + (c[0] + lo) * es;
            let mut inside = hi > lo;
            for d in 1..map.rank {
                let j = (rest % n[d] as u64) as i64;
                rest /= n[d] as u64;
                let g = c[d] + j * map.elem_strides[d] as i64;
                inside &= g >= 0 && g < map.dims[d] as i64;
                gaddr += g * map.strides[d] as i64;
            }
            let base = smem + row * row_bytes as u64;
            let (a, b) = ((lo * es) as usize, (hi * es) as usize);
            if store {
                for k in (0..row_bytes).step_by(16) {
                    let s = swizzle(base + k as u64, map.swizzle) as usize;
                    buf[k..k + 16].copy_from_slice(&self.shared[s..s + 16]);
                }
                if inside {
                    self.global_write(gaddr as u64, &buf[a..b], w, lane, line)?;
                    moved += (b - a) as u64;
                }
            } else {
                buf.fill(0);
                if inside {
                    self.global_read(gaddr as u64, &mut buf[a..b], w, lane, line)?;
                    moved += (b - a) as u64;
                }
                for k in (0..row_bytes).step_by(16) {
                    let s = swizzle(base + k as u64, map.swizzle) as usize;
                    self.shared[s..s + 16].copy_from_slice(&buf[k..k + 16]);
                }
            }
        }
        if self.l.counters {
            let c = &mut self.out.counters;
            if store {
                c.tma_store_bytes += moved;
            } else {
                c.tma_load_bytes += moved;
            }
        }
        Ok(())
    }

    /// mapa: the same address in cluster CTA `b`; only CTA 0 exists.
    #[inline(never)]
    pub(super) fn mapa(&mut self, r: &mut [u64], m: u32, i: &Inst) -> Result<()> {
        lanes!(m, lane, {
            let rank = r[ix(i.b, lane)];
            if rank != 0 {
                return Err(err_at(
                    self.l.k,
                    i.line,
                    format!("mapa to cluster CTA {rank}: the emulator runs clusters of one CTA"),
                ));
            }
            r[ix(i.d, lane)] = r[ix(i.a, lane)];
        });
        Ok(())
    }
}
