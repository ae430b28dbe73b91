//! Memory: address resolution over the state spaces (generic windows, global allocations,
//! shared, local, param, const), one element access with its sanitizer checks and counters, and
//! the ld / st / atom / red / cvta instructions built on it.

use super::super::counters;
use super::super::ir::*;
use super::super::memory::{find_in, Alloc};
use super::super::sanitizer::{set_write, Access, AsyncWriteHazard, SharedHazard, W_CLK};
use super::alu::atom_apply;
use super::lanes::{ix, lanes, sx, wmask};
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::{Error, Result};
use std::sync::Arc;

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

pub(super) enum Resolved<'x> {
    Global(&'x Alloc, u64),
    Shared(u64),
    Local(u64),
    Param(u64),
    Const(u64),
    Fault,
}

/// Reads (write None) or writes `size` bytes little-endian at `o` (in bounds).
#[inline(always)]
pub(super) fn rw_bytes(mem: &mut [u8], o: usize, size: u32, write: Option<u64>) -> u64 {
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

/// d = a converted between generic and `space` addresses (`to`: generic to `space`).
#[inline(always)]
pub(super) fn cvta(r: &mut [u64], m: u32, i: &Inst, to: bool, space: Space) {
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

impl<'a> Blk<'a, '_> {
    pub(super) fn resolve(&self, sp: Space, addr: u64, w: u32, lane: usize) -> Resolved<'a> {
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
    pub(super) fn access(
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
                if self.atomic && l.sanitize {
                    // A flag in global memory orders the block's warps too (racecheck).
                    self.strong_sync(addr & !3, write.is_some(), w);
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
                    self.push_words(off, size);
                }
                // The runtime's reserved region (cooperative groups' barrier words) is not tracked,
                // but its atomics still synchronize (racecheck: a spin barrier orders the warps).
                if l.sanitize && off >= l.k.reserved_smem as u64 {
                    self.shadow_access(off, size, size, write.is_some(), w, lane, line);
                } else if l.sanitize && self.atomic {
                    self.strong_sync(off & !3, write.is_some(), w);
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

    /// Counts the shared words of `size` bytes at `off` for bank conflicts.
    #[inline(always)]
    fn push_words(&mut self, off: u64, size: u32) {
        self.words.push((off >> 2) as u32);
        if (off + size as u64 - 1) >> 2 != off >> 2 {
            for wd in (off >> 2) + 1..=((off + size as u64 - 1) >> 2) {
                self.words.push(wd as u32);
            }
        }
    }

    /// The shared offset of `len` bytes at `addr` in `sp` when they all lie in the block's
    /// shared memory, outside the runtime's reserved region when the sanitizer tracks them (the
    /// elements of such an access resolve to consecutive shared offsets, in bounds).
    #[inline(always)]
    fn shared_span(&self, sp: Space, addr: u64, len: u32) -> Option<u64> {
        let in_window = (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&addr);
        let off = match sp {
            Space::Shared if in_window => addr - SHARED_WINDOW,
            Space::Shared => addr,
            Space::Generic if in_window => addr - SHARED_WINDOW,
            _ => return None,
        };
        let end = off.checked_add(len as u64)?;
        let tracked = !self.l.sanitize || off >= self.l.k.reserved_smem as u64;
        (end <= self.shared.len() as u64 && end <= WINDOW_SIZE && tracked).then_some(off)
    }

    pub(super) fn read_const(&self, param: bool, off: u64, size: u32, write: bool, line: u32) -> Result<u64> {
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
    pub(super) fn fault(
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
    pub(super) fn shadow_access(
        &mut self,
        off: u64,
        size: u32,
        elem: u32,
        write: bool,
        w: u32,
        lane: usize,
        line: u32,
    ) {
        if self.sync.touches_mbarriers(off, size as u64) {
            self.plain_mbar_access(off, size, write, w, lane, line);
        }
        if self.asyncs.active() {
            if write {
                if let Some(h) = self.asyncs.generic_write(w as usize, &self.clocks.vc[w as usize], off, size as u64) {
                    self.async_write_hazard(h, w, lane, line);
                }
            } else if let Some((slot, phase, at)) = self.asyncs.generic_read(w as usize, off, size as u64) {
                self.unobserved_async(slot, phase, at.max(off), w, lane, line);
            }
        }
        if write && (self.wg.busy_total | self.wg.retired_total) != 0 {
            self.wg_store(off, size, w, lane, line); // wgmma operands in flight (exec/wgmma_check.rs)
        }
        let tid = (w * 32 + lane as u32) as u16;
        let atomic = self.atomic;
        if atomic {
            self.strong_shared(off, size, write, w, lane, line);
            return;
        }
        let a = Access::new(tid, &self.clocks.vc[w as usize], self.clocks.block_start);
        // One finding per warp instruction: only the first byte in conflict is reported, so the
        // walk keeps the first hazard and reports it afterwards (every byte's state still updates).
        let t = self.shadow.track_range(off, size as u64, &a, write, self.proxy_read);
        if let Some((bo, v, clk)) = t.generic {
            self.check_fenced(bo, v, clk, w, lane, line, "a wgmma reads it as an operand");
        }
        let first = t.first;
        let Some((bo, h)) = first else { return };
        self.shared_hazard(off, bo, elem, h, write, w, lane, line);
    }

    /// Reports what [`track`] found at byte `bo` of an access at `off` of `elem`-byte elements.
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn shared_hazard(
        &mut self,
        off: u64,
        bo: u64,
        elem: u32,
        h: SharedHazard,
        write: bool,
        w: u32,
        lane: usize,
        line: u32,
    ) {
        if self.flagged {
            return;
        }
        self.flagged = true;
        let tid = w * 32 + lane as u32;
        let at = off + (bo - off) / elem as u64 * elem as u64;
        let (kind, msg) = match h {
            SharedHazard::Uninit => {
                (FindingKind::UninitShared, "read of shared memory never written in this launch".to_string())
            }
            SharedHazard::Race { tid: other, several, write: wr } => (
                FindingKind::SharedRace,
                format!(
                    "{} by thread {} races with a {} by {}: no synchronization orders them (happens-before)",
                    if write { "write" } else { "read" },
                    tid,
                    if wr { "write" } else { "read" },
                    if several { format!("several lanes of warp {}", other / 32) } else { format!("thread {other}") }
                ),
            ),
            SharedHazard::None => return,
        };
        self.finding(kind, w, lane, line, Some(at), msg);
    }

    /// An atomic or strong access to shared bytes: initcheck, and release (write) / acquire
    /// (read) on the location for racecheck. Atomics and strong accesses do not race with each
    /// other and are not checked against plain accesses.
    #[cold]
    fn strong_shared(&mut self, off: u64, size: u32, write: bool, w: u32, lane: usize, line: u32) {
        let tid = (w * 32 + lane as u32) as u16;
        let (now, start) = (self.clocks.now(w as usize), self.clocks.block_start);
        let mut uninit = None;
        self.shadow.for_each(off, size as u64, |sh, bo| {
            if sh[W_CLK] < start {
                set_write(sh, now, tid);
                if !write && uninit.is_none() {
                    uninit = Some(bo);
                }
            }
        });
        self.strong_sync(off & !3, write, w);
        if let Some(bo) = uninit {
            if !self.flagged {
                self.flagged = true;
                self.finding(
                    FindingKind::UninitShared,
                    w,
                    lane,
                    line,
                    Some(bo),
                    "atomic or strong (volatile, relaxed, acquire) access to shared memory never written in this launch"
                        .to_string(),
                );
            }
        }
    }

    /// A strong write (release) or read (acquire) of the word at `key` (a shared offset or a
    /// global address) by warp `w`.
    #[inline]
    pub(super) fn strong_sync(&mut self, key: u64, write: bool, w: u32) {
        if write {
            self.clocks.strong_release(key, w as usize);
        } else {
            self.clocks.strong_acquire(key, w as usize);
        }
    }

    /// The async proxy reads shared byte `bo`, last written by thread `v` (generic proxy) at
    /// time `t`, on behalf of warp `w`: the writer must have executed `fence.proxy.async` after
    /// the write, ordered before `w`'s read (PTX ISA 8.6 "Proxies", 9.7.13.4 membar/fence).
    #[cold]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn check_fenced(&mut self, bo: u64, v: u16, t: u32, w: u32, lane: usize, line: u32, what: &str) {
        let Err(fence) = self.clocks.fenced((v / 32) as usize, t, w as usize) else { return };
        if self.flagged {
            return;
        }
        self.flagged = true;
        let why = match fence {
            None => format!("thread {v} wrote it with generic stores and executed no fence.proxy.async after that"),
            Some(_) => format!(
                "thread {v} wrote it with generic stores and executed fence.proxy.async, but that fence is not ordered \
                 before this read (no barrier or mbarrier between them)"
            ),
        };
        self.finding(
            FindingKind::AsyncRace,
            w,
            lane,
            line,
            Some(bo),
            format!("the async proxy reads shared memory at {bo:#x} ({what}) that the generic proxy wrote: {why}"),
        );
    }

    /// Reports a hazard of a generic write (or a copy's write) found by the async shadow.
    #[cold]
    pub(super) fn async_write_hazard(&mut self, h: AsyncWriteHazard, w: u32, lane: usize, line: u32) {
        if self.flagged {
            return;
        }
        self.flagged = true;
        let (at, msg) = match h {
            AsyncWriteHazard::StoreSource { tid, line: sl, at } => (
                at,
                format!(
                    "overwrites shared memory at {at:#x} that the bulk/tensor store of thread {tid} at PTX line {sl} \
                     still reads: no cp.async.bulk.wait_group.read has retired that store yet"
                ),
            ),
            AsyncWriteHazard::StoreRetired { warp, at } => (
                at,
                format!(
                    "overwrites shared memory at {at:#x} that a bulk/tensor store read: the cp.async.bulk.wait_group \
                     of warp {warp} that retired it is not ordered before this write"
                ),
            ),
            AsyncWriteHazard::Unobserved { slot, phase, at } => (
                at,
                format!(
                    "writes shared memory at {at:#x} that a bulk/tensor copy completing on phase {phase} of the \
                     mbarrier at shared {:#x} also writes, before this warp observed that phase",
                    self.sync.mbars[slot].off
                ),
            ),
        };
        self.finding(FindingKind::AsyncRace, w, lane, line, Some(at), msg);
    }

    /// A plain load or store touching a live mbarrier object (mbarrier misuse).
    #[cold]
    fn plain_mbar_access(&mut self, off: u64, size: u32, write: bool, w: u32, lane: usize, line: u32) {
        let Some(mb) = self.sync.live_overlap(off, size as u64) else { return };
        let at = mb.off;
        if !self.flagged {
            self.flagged = true;
            self.finding(
                FindingKind::MbarrierMisuse,
                w,
                lane,
                line,
                Some(off),
                format!(
                    "plain {} of {size} bytes at shared {off:#x} touches the live mbarrier at {at:#x} (mbarrier objects are accessed only by mbarrier instructions until mbarrier.inval)",
                    if write { "write" } else { "read" }
                ),
            );
        }
    }

    /// A read of shared bytes a TMA / bulk load wrote, by a warp that has not observed the
    /// completion of the mbarrier phase the load completes on.
    #[cold]
    fn unobserved_async(&mut self, slot: usize, phase: u32, at: u64, w: u32, lane: usize, line: u32) {
        if self.flagged {
            return;
        }
        self.flagged = true;
        let (mb, cur) = self.sync.mbars.get(slot).map_or((0, 0), |m| (m.off, m.phase));
        self.finding(
            FindingKind::AsyncRace,
            w,
            lane,
            line,
            Some(at),
            format!(
                "read of shared {at:#x}, written by a bulk/tensor copy that completes phase {phase} of the mbarrier at shared {mb:#x} (now in phase {cur}), before warp {w} observed that phase complete (mbarrier.try_wait / test_wait, or a barrier after a warp that did)"
            ),
        );
    }

    #[inline(always)]
    pub(super) fn check_align(&mut self, addr: u64, size: u64, w: u32, lane: usize, line: u32) -> Result<()> {
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

    pub(super) fn finish_shared_request(&mut self, ldmatrix: bool) {
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

    pub(super) fn finish_global_request(&mut self, store: bool) {
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

    /// ld / st, scalar or vector, element by element (each one checked and counted).
    #[inline(always)]
    pub(super) fn ld_st(&mut self, r: &mut [u64], m: u32, i: &Inst, space: Space, vec: u8, w: u32) -> Result<()> {
        let kext = &self.l.k.ext;
        let store = matches!(i.op, Op::St { .. });
        let size = i.ty.bytes();
        let sign = i.ty.signed();
        // Strong accesses (volatile, relaxed, acquire, release) do not race with each other (PTX
        // ISA memory model: morally strong operations), like atomics.
        self.atomic = i.sem.order != Order::Weak;
        let l = self.l;
        let total = size * vec as u32;
        // Whether the sanitizer checks this instruction's shared accesses by `track` alone (no
        // async proxy, wgmma operand or strong access in play; live mbarriers are tested per
        // lane): then one walk of the shadow per lane covers the whole vector (the same bytes,
        // hazards and state as one walk per element: the first hazard's byte names its element).
        let wg_operands = store && (self.wg.busy_total | self.wg.retired_total) != 0;
        let plain = l.sanitize && !self.atomic && !self.proxy_read && !self.asyncs.active() && !wg_operands;
        // The register of element `j`: the operand itself, or the vector's j-th.
        let reg_of = |j: usize| match (vec, store) {
            (1, true) => i.b,
            (1, false) => i.d,
            _ => kext[i.ext_start as usize + j],
        };
        lanes!(m, lane, {
            let base = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
            let addr = base.wrapping_add(i.imm as u64);
            if total > 1 {
                self.check_align(addr, total as u64, w, lane, i.line)?;
            }
            if let Some(off) = self.shared_span(space, addr, total) {
                // Shared and in bounds: the accesses of `access`, without resolving each element.
                if l.counters {
                    for j in 0..vec as u32 {
                        self.push_words(off + (j * size) as u64, size);
                    }
                }
                if plain && !self.sync.touches_mbarriers(off, total as u64) {
                    let tid = (w * 32 + lane as u32) as u16;
                    let a = Access::new(tid, &self.clocks.vc[w as usize], self.clocks.block_start);
                    let t = self.shadow.track_range(off, total as u64, &a, store, false);
                    if let Some((bo, h)) = t.first {
                        self.shared_hazard(off, bo, size, h, store, w, lane, i.line);
                    }
                } else if l.sanitize {
                    for j in 0..vec as u32 {
                        self.shadow_access(off + (j * size) as u64, size, size, store, w, lane, i.line);
                    }
                }
                for j in 0..vec as usize {
                    let reg = reg_of(j);
                    let o = (off + (j as u32 * size) as u64) as usize;
                    if store {
                        rw_bytes(self.shared, o, size, Some(r[ix(reg, lane)]));
                    } else {
                        let v = rw_bytes(self.shared, o, size, None);
                        r[ix(reg, lane)] = if sign { sx(v, size * 8) as u64 } else { v };
                    }
                }
                continue;
            }
            for j in 0..vec as usize {
                let reg = reg_of(j);
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
        self.atomic = false;
        // Progress for livelock detection: a store or a plain load (a spin loop polls with
        // volatile / relaxed / acquire loads).
        if store || !i.sem.is_sync_load() {
            self.progress = self.clock;
        }
        self.finish_shared_request(false);
        self.finish_global_request(store);
        Ok(())
    }

    /// atom / red: global words with a 4-byte compare-exchange, wider ones under the launch's lock;
    /// shared memory through [`Blk::access`] (atomics do not race with each other).
    #[inline(always)]
    pub(super) fn atom(&mut self, r: &mut [u64], m: u32, i: &Inst, space: Space, op: AtomOp, w: u32) -> Result<()> {
        let l = self.l;
        let k = l.k;
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
                        self.strong_sync(addr & !3, false, w);
                        self.strong_sync(addr & !3, true, w);
                    }
                    if size == 4 && off % 4 == 0 {
                        a.rmw32(off, |o| atom_apply(op, t, o as u64, b, c) as u32) as u64
                    } else {
                        let _g = l.atomic64.lock().map_err(|_| Error::Emu("atomic lock poisoned".into()))?;
                        let o = a.read(off, size);
                        a.write(off, size, atom_apply(op, t, o, b, c));
                        o
                    }
                }
                Resolved::Shared(_) | Resolved::Global(..) | Resolved::Fault => {
                    self.atomic = true;
                    let o = self.access(space, addr, size, None, w, lane, i.line);
                    let o = o.and_then(|o| {
                        self.access(space, addr, size, Some(atom_apply(op, t, o, b, c)), w, lane, i.line).map(|_| o)
                    });
                    self.atomic = false;
                    o?
                }
                _ => return Err(err_at(k, i.line, "atomic on param/const/local space")),
            };
            if i.d == NOREG || atom_apply(op, t, old, b, c) & wmask(t.bits()) != old & wmask(t.bits()) {
                self.progress = self.clock;
            }
            if i.d != NOREG {
                r[ix(i.d, lane)] = old;
            }
        });
        self.finish_shared_request(false);
        self.finish_global_request(true);
        Ok(())
    }
}
