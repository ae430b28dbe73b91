//! Block-level synchronization: CTA and named barriers (`bar.sync` / `barrier.sync` /
//! `bar.arrive`, ids 0..15, optional thread count), the cluster barrier of a one-CTA cluster,
//! mbarrier objects (PTX ISA 9.7.13.15) and fences.
//!
//! A CTA barrier completes at the arrival that meets its count (no count: every thread that has
//! not exited); arrivals after that belong to its next phase. Every arrival of one phase must
//! name the same thread count (a synccheck finding otherwise). A waiting warp blocks until the
//! barrier's generation moves on.
//!
//! An mbarrier is kept beside shared memory, keyed by its shared offset: current phase, expected
//! and pending arrival counts, tx-count. Arrivals of a warp's lanes are applied lowest lane
//! first; a phase completes when pending arrivals and tx-count are both zero, then the phase
//! number moves on and pending is reloaded with the expected count. `try_wait` on an incomplete
//! phase blocks the warp (it never times out: a wait that can never succeed is a deadlock, not a
//! spin); `test_wait` returns false and the warp yields. The opaque state `arrive` returns is
//! the phase number and the pending count before the arrival, under a tag.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::sched::{Flow, WState, Warp};
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::Result;

/// Largest expected / pending arrival count and |tx-count| of an mbarrier (PTX ISA 9.7.13.15.2).
pub(super) const MBAR_MAX: i64 = (1 << 20) - 1;

/// Tag in the top 12 bits of an mbarrier state token.
const TOKEN_TAG: u64 = 0xa7b;

/// Arrivals at the block's 16 barriers in their current phase.
#[derive(Default)]
pub(super) struct CtaBarriers {
    /// Threads arrived (a warp counts all its threads).
    arrived: [u32; 16],
    /// The thread count the phase's first arrival named (None: the whole CTA).
    count: [Option<u32>; 16],
    /// PTX line of the phase's first arrival.
    first_line: [u32; 16],
    /// Completed phases.
    gen: [u32; 16],
    /// Warps arrived in this phase.
    members: [u64; 16],
}

/// One mbarrier object.
pub(super) struct Mbar {
    pub(super) off: u64,
    /// Initialized and not invalidated.
    pub(super) valid: bool,
    expected: u32,
    pending: u32,
    pub(super) tx: i64,
    /// The current phase's number (phases completed since init).
    pub(super) phase: u32,
    line: u32,
}

/// The synchronization state of one block.
pub(super) struct BlockSync {
    pub(super) bars: CtaBarriers,
    pub(super) mbars: Vec<Mbar>,
    /// Byte range covering every valid mbarrier (a plain access inside it is checked).
    pub(super) mb_lo: u64,
    pub(super) mb_hi: u64,
    cluster_arrived: u32,
    cluster_gen: u32,
    cluster_members: u64,
    /// Threads of the warps that have not exited.
    pub(super) live_threads: u32,
    /// The CTA's registers (`setmaxnreg` pool; None when the kernel's count is unknown) and
    /// those its warps own.
    pub(super) reg_pool: Option<u32>,
    pub(super) regs_used: u32,
}

impl BlockSync {
    pub(super) fn new(nthreads: u32, reg_pool: Option<u32>) -> BlockSync {
        BlockSync {
            bars: CtaBarriers::default(),
            mbars: Vec::new(),
            mb_lo: 0,
            mb_hi: 0,
            cluster_arrived: 0,
            cluster_gen: 0,
            cluster_members: 0,
            live_threads: nthreads,
            reg_pool,
            regs_used: reg_pool.unwrap_or(0),
        }
    }

    /// Whether `warp`, blocked, can run again.
    pub(super) fn wakes(&self, warp: &Warp, _warps: &[Warp]) -> bool {
        match warp.state {
            WState::Bar { id, gen } => self.bars.gen[id as usize] != gen,
            WState::Mbar { .. } => warp.parks.iter().any(|&(_, slot, phase)| self.park_over(slot, phase)),
            WState::Cluster { gen } => self.cluster_gen != gen,
            WState::Regs { need } => self.reg_pool.is_some_and(|p| p - self.regs_used >= need),
            WState::Run | WState::Done => false,
        }
    }

    /// A park on `slot` waiting for `phase` to complete is over (or its barrier was invalidated).
    fn park_over(&self, slot: u32, phase: u32) -> bool {
        let mb = &self.mbars[slot as usize];
        mb.phase != phase || !mb.valid
    }

    /// Unparks the lanes of `warp` whose mbarrier phase completed; whether any were.
    pub(super) fn unpark(&self, warp: &mut Warp) -> bool {
        let before = warp.parked;
        warp.parks.retain(|&(mask, slot, phase)| {
            let over = self.park_over(slot, phase);
            if over {
                warp.parked &= !mask;
            }
            !over
        });
        warp.parked != before
    }

    /// The slot of the mbarrier object at shared offset `off` (valid or not).
    #[inline]
    pub(super) fn slot(&self, off: u64) -> Option<usize> {
        self.mbars.iter().position(|m| m.off == off)
    }

    /// The valid mbarrier overlapping `[off, off + len)`, if any.
    pub(super) fn live_overlap(&self, off: u64, len: u64) -> Option<&Mbar> {
        self.mbars.iter().find(|m| m.valid && m.off < off + len && off < m.off + 8)
    }

    fn update_range(&mut self) {
        let valid = self.mbars.iter().filter(|m| m.valid);
        self.mb_lo = valid.clone().map(|m| m.off).min().unwrap_or(0);
        self.mb_hi = valid.map(|m| m.off + 8).max().unwrap_or(0);
    }

    /// Every blocked warp, barrier with arrivals and mbarrier, for deadlock and livelock reports.
    pub(super) fn describe(&self, warps: &[Warp], _insts: &[Inst]) -> String {
        let mut parts = Vec::new();
        for (w, warp) in warps.iter().enumerate() {
            let parked = |warp: &Warp| {
                let parts: Vec<String> = warp
                    .parks
                    .iter()
                    .map(|&(mask, slot, phase)| {
                        format!(
                            "lanes {mask:#010x} wait in mbarrier.try_wait on the mbarrier at shared {:#x} for phase {phase} to complete",
                            self.mbars[slot as usize].off
                        )
                    })
                    .collect();
                parts.join(", ")
            };
            let what = match warp.state {
                WState::Done => continue,
                WState::Run if warp.parked != 0 => format!("is running lanes {:#010x}, {}", warp.live & !warp.parked, parked(warp)),
                WState::Run => "is running (spinning)".to_string(),
                WState::Bar { id, .. } => format!("waits at barrier {id}"),
                WState::Mbar { .. } if warp.parked == warp.live => {
                    format!("waits in mbarrier.try_wait on the mbarrier at shared {:#x} for phase {} to complete", self.mbars[warp.parks[0].1 as usize].off, warp.parks[0].2)
                }
                WState::Mbar { .. } => format!("has all its lanes parked: {}", parked(warp)),
                WState::Cluster { .. } => "waits at barrier.cluster.wait".to_string(),
                WState::Regs { need } => format!(
                    "waits in setmaxnreg.inc for {need} registers ({} free in the CTA's pool)",
                    self.reg_pool.unwrap_or(0).saturating_sub(self.regs_used)
                ),
            };
            parts.push(format!("warp {w} {what} (PTX line {})", warp.wait_line));
        }
        for id in 0..16 {
            let b = &self.bars;
            if b.members[id] != 0 {
                let expected = b.count[id].unwrap_or(self.live_threads);
                parts.push(format!(
                    "barrier {id}: {} of {expected} threads arrived (warps {})",
                    b.arrived[id],
                    mask_list(b.members[id])
                ));
            }
        }
        if self.cluster_members != 0 {
            parts.push(format!(
                "cluster barrier: {} of {} threads arrived (warps {})",
                self.cluster_arrived,
                self.live_threads,
                mask_list(self.cluster_members)
            ));
        }
        for m in &self.mbars {
            parts.push(format!(
                "mbarrier at shared {:#x}{}: phase {} (parity {}), {} of {} arrivals pending, tx-count {}",
                m.off,
                if m.valid { "" } else { " (invalidated)" },
                m.phase,
                m.phase & 1,
                m.pending,
                m.expected,
                m.tx
            ));
        }
        parts.join("; ")
    }
}

fn mask_list(m: u64) -> String {
    (0..64).filter(|w| m >> w & 1 != 0).map(|w| w.to_string()).collect::<Vec<_>>().join(",")
}

/// The shared offset of an mbarrier or shared-memory operand address (generic or shared window).
#[inline]
pub(super) fn shared_off(addr: u64) -> Option<u64> {
    if (SHARED_WINDOW..SHARED_WINDOW + WINDOW_SIZE).contains(&addr) {
        Some(addr - SHARED_WINDOW)
    } else if addr < 1 << 32 {
        Some(addr)
    } else {
        None
    }
}

impl Blk<'_, '_> {
    /// A sanitizer finding (one per warp instruction), or the launch's error without the sanitizer.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn violation(
        &mut self,
        kind: FindingKind,
        w: u32,
        lane: usize,
        line: u32,
        addr: Option<u64>,
        msg: String,
    ) -> Result<()> {
        if !self.l.sanitize {
            return Err(err_at(self.l.k, line, msg));
        }
        if !self.flagged {
            self.flagged = true;
            self.finding(kind, w, lane, line, addr, msg);
        }
        Ok(())
    }

    /// bar.sync / barrier.sync / bar.arrive by the lanes of `m`: counts the warp's arrival and,
    /// unless `arrive` or the arrival completes the barrier, makes it wait; returns whether it
    /// waits. A barrier reached by only part of the warp's live lanes, a bad thread count and
    /// arrivals of one phase naming different counts are synccheck findings.
    #[inline(always)]
    pub(super) fn bar(&mut self, warp: &mut Warp, r: &[u64], m: u32, i: &Inst, arrive: bool, w: u32) -> Result<bool> {
        if self.l.counters {
            self.out.counters.barriers += 1;
        }
        if m == 0 {
            return Ok(false);
        }
        self.progress = self.clock;
        if self.l.sanitize && m != warp.live {
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
        let first = m.trailing_zeros() as usize;
        let id = r[ix(i.a, first)];
        if id >= 16 {
            self.violation(
                FindingKind::BarrierDivergence,
                w,
                first,
                i.line,
                None,
                format!("barrier id {id} is outside 0..15"),
            )?;
            return Ok(false);
        }
        let id = id as usize;
        let count = (i.b != NOREG).then(|| r[ix(i.b, first)] as u32);
        if let Some(c) = count {
            if c == 0 || c % 32 != 0 || c > self.l.nthreads.next_multiple_of(32) {
                self.violation(
                    FindingKind::BarrierDivergence,
                    w,
                    first,
                    i.line,
                    None,
                    format!(
                        "barrier {id} thread count {c} is not a nonzero multiple of 32 within the block's {} threads",
                        self.l.nthreads
                    ),
                )?;
            }
        }
        let bars = &mut self.sync.bars;
        if bars.members[id] == 0 {
            bars.count[id] = count;
            bars.first_line[id] = i.line;
        } else if bars.count[id] != count {
            let (named, line) = (bars.count[id], bars.first_line[id]);
            let say = |c: Option<u32>| c.map_or("no thread count (the whole CTA)".to_string(), |c| format!("{c} threads"));
            self.violation(
                FindingKind::BarrierDivergence,
                w,
                first,
                i.line,
                None,
                format!(
                    "barrier {id}: warp {w} arrives naming {}, while this phase's first arrival (PTX line {line}) named {}",
                    say(count),
                    say(named)
                ),
            )?;
        }
        let bars = &mut self.sync.bars;
        bars.arrived[id] += warp.nthreads;
        bars.members[id] |= 1 << w;
        if !arrive && id != 0 && self.l.counters {
            self.out.counters.named_barrier_waits += 1;
        }
        let expected = bars.count[id].unwrap_or(self.sync.live_threads);
        if bars.arrived[id] >= expected {
            self.complete_bar(id);
            return Ok(false);
        }
        if arrive {
            return Ok(false);
        }
        warp.state = WState::Bar { id: id as u8, gen: self.sync.bars.gen[id] };
        warp.wait_line = i.line;
        Ok(true)
    }

    fn complete_bar(&mut self, id: usize) {
        let bars = &mut self.sync.bars;
        bars.gen[id] = bars.gen[id].wrapping_add(1);
        bars.arrived[id] = 0;
        bars.count[id] = None;
        let members = std::mem::take(&mut bars.members[id]);
        if self.l.sanitize {
            self.asyncs.barrier(members);
        }
        self.epoch += 1;
    }

    /// Whole-CTA barriers (and the cluster barrier) whose remaining threads have all arrived
    /// once others exited; whether any completed.
    pub(super) fn release_exited(&mut self, _warps: &[Warp]) -> bool {
        let mut any = false;
        for id in 0..16 {
            let b = &self.sync.bars;
            if b.members[id] != 0 && b.count[id].is_none() && b.arrived[id] >= self.sync.live_threads {
                self.complete_bar(id);
                any = true;
            }
        }
        if self.sync.cluster_members != 0 && self.sync.cluster_arrived >= self.sync.live_threads {
            self.complete_cluster();
            any = true;
        }
        any
    }

    fn complete_cluster(&mut self) {
        let s = &mut self.sync;
        s.cluster_gen = s.cluster_gen.wrapping_add(1);
        s.cluster_arrived = 0;
        let members = std::mem::take(&mut s.cluster_members);
        if self.l.sanitize {
            self.asyncs.barrier(members);
        }
        self.epoch += 1;
    }

    /// barrier.cluster.arrive / wait for a cluster of one CTA: every thread of the CTA that has
    /// not exited arrives, then waits (PTX ISA 9.7.13.3). A wait without an arrival, or a second
    /// arrival before the wait, is a synccheck finding.
    pub(super) fn bar_cluster(&mut self, warp: &mut Warp, m: u32, i: &Inst, wait: bool, w: u32) -> Result<Flow> {
        if m == 0 {
            return Ok(Flow::Next);
        }
        let lane = m.trailing_zeros() as usize;
        if m != warp.live {
            self.violation(
                FindingKind::BarrierDivergence,
                w,
                lane,
                i.line,
                None,
                format!("barrier.cluster reached by lanes {m:#010x} of warp {w} only (it is .aligned)"),
            )?;
        }
        if !wait {
            if warp.cluster_arrived.is_some() {
                self.violation(
                    FindingKind::BarrierDivergence,
                    w,
                    lane,
                    i.line,
                    None,
                    "barrier.cluster.arrive again before barrier.cluster.wait".to_string(),
                )?;
                return Ok(Flow::Next);
            }
            self.progress = self.clock;
            warp.cluster_arrived = Some(self.sync.cluster_gen);
            self.sync.cluster_arrived += warp.nthreads;
            self.sync.cluster_members |= 1 << w;
            if self.sync.cluster_arrived >= self.sync.live_threads {
                self.complete_cluster();
            }
            return Ok(Flow::Next);
        }
        match warp.cluster_arrived {
            None => {
                self.violation(
                    FindingKind::BarrierDivergence,
                    w,
                    lane,
                    i.line,
                    None,
                    "barrier.cluster.wait without a preceding barrier.cluster.arrive".to_string(),
                )?;
                Ok(Flow::Next)
            }
            Some(g) if g != self.sync.cluster_gen => {
                warp.cluster_arrived = None;
                self.progress = self.clock;
                Ok(Flow::Next)
            }
            Some(g) => {
                warp.state = WState::Cluster { gen: g };
                warp.wait_line = i.line;
                Ok(Flow::Block)
            }
        }
    }

    /// Fences order nothing here (execution is sequentially consistent); proxy fences are
    /// reported to the sanitizer.
    #[inline(always)]
    pub(super) fn fence(&mut self, m: u32, kind: FenceKind, w: u32) {
        if m != 0 && self.l.sanitize {
            if let FenceKind::ProxyAsync(None | Some(Space::Shared)) = kind {
                self.asyncs.proxy_fence(w as usize);
            }
        }
    }

    /// The shared offset of lane `lane`'s mbarrier operand, checked (in shared memory, 8-byte
    /// aligned); None after a finding.
    fn mbar_addr(&mut self, r: &[u64], i: &Inst, w: u32, lane: usize) -> Result<Option<u64>> {
        let base = if i.a == NOREG { 0 } else { r[ix(i.a, lane)] };
        let addr = base.wrapping_add(i.imm as u64);
        let Some(off) = shared_off(addr) else {
            self.violation(
                FindingKind::MbarrierMisuse,
                w,
                lane,
                i.line,
                Some(addr),
                format!("mbarrier operand {addr:#x} is not a shared-memory address"),
            )?;
            return Ok(None);
        };
        if off + 8 > self.shared.len() as u64 {
            self.fault(FindingKind::SharedOutOfBounds, w, lane, i.line, off, 8, true)?;
            return Ok(None);
        }
        if !off.is_multiple_of(8) {
            self.check_align(off, 8, w, lane, i.line)?;
            return Ok(None);
        }
        Ok(Some(off))
    }

    /// The valid mbarrier at `off`, or a misuse finding (operation on memory that holds no
    /// initialized mbarrier).
    fn mbar_slot(&mut self, off: u64, what: &str, w: u32, lane: usize, line: u32) -> Result<Option<usize>> {
        match self.sync.slot(off) {
            Some(s) if self.sync.mbars[s].valid => Ok(Some(s)),
            s => {
                let why = if s.is_some() { "an invalidated mbarrier" } else { "memory never initialized as an mbarrier" };
                self.violation(
                    FindingKind::MbarrierMisuse,
                    w,
                    lane,
                    line,
                    Some(off),
                    format!("{what} on {why} (shared {off:#x})"),
                )?;
                Ok(None)
            }
        }
    }

    fn mbar_misuse(&mut self, w: u32, lane: usize, line: u32, off: u64, msg: String) -> Result<()> {
        self.violation(FindingKind::MbarrierMisuse, w, lane, line, Some(off), msg)
    }

    /// Checks an mbarrier's tx-count after an update.
    fn mbar_tx_range(&mut self, slot: usize, w: u32, lane: usize, line: u32) -> Result<()> {
        let mb = &self.sync.mbars[slot];
        if mb.tx.abs() > MBAR_MAX {
            let (off, tx, phase) = (mb.off, mb.tx, mb.phase);
            return self.mbar_misuse(
                w,
                lane,
                line,
                off,
                format!("mbarrier at shared {off:#x} phase {phase}: tx-count {tx} outside ±(2^20-1)"),
            );
        }
        Ok(())
    }

    /// Completes the current phase of `slot` if its pending arrivals and tx-count are both zero;
    /// whether it did.
    pub(super) fn mbar_maybe_complete(&mut self, slot: usize) -> bool {
        let mb = &mut self.sync.mbars[slot];
        if mb.pending != 0 || mb.tx != 0 {
            return false;
        }
        mb.phase = mb.phase.wrapping_add(1);
        mb.pending = mb.expected;
        if self.l.sanitize {
            self.asyncs.mbar_complete(slot);
        }
        // Until a happens-before checker replaces the barrier-interval rule, an mbarrier phase
        // separates accesses like a CTA barrier (races across it are not reported).
        self.epoch += 1;
        self.progress = self.clock;
        true
    }

    /// One arrive-on operation of `count` by lane `lane` of warp `w`; returns the state token.
    #[allow(clippy::too_many_arguments)]
    fn mbar_arrive_one(
        &mut self,
        slot: usize,
        count: u32,
        no_complete: bool,
        w: u32,
        lane: usize,
        line: u32,
    ) -> Result<u64> {
        let mb = &mut self.sync.mbars[slot];
        let (off, phase, pending) = (mb.off, mb.phase, mb.pending);
        let token = (TOKEN_TAG << 52) | ((pending as u64) << 32) | phase as u64;
        if count > pending {
            mb.pending = 0;
            self.mbar_misuse(
                w,
                lane,
                line,
                off,
                format!(
                    "arrival underflow: {count} arrivals on the mbarrier at shared {off:#x} with {pending} pending in phase {phase}"
                ),
            )?;
        } else {
            mb.pending -= count;
        }
        if self.l.sanitize {
            self.asyncs.mbar_arrive(w as usize, slot);
        }
        if self.mbar_maybe_complete(slot) && no_complete {
            self.mbar_misuse(
                w,
                lane,
                line,
                off,
                format!("mbarrier.arrive.noComplete completed phase {phase} of the mbarrier at shared {off:#x}"),
            )?;
        }
        Ok(token)
    }

    /// The mbarrier operations (PTX ISA 9.7.13.15.9-17), lane by lane, lowest first.
    #[inline(never)]
    pub(super) fn mbar(&mut self, warp: &mut Warp, r: &mut [u64], m: u32, i: &Inst, op: MbarOp, w: u32) -> Result<Flow> {
        if m == 0 {
            return Ok(Flow::Next);
        }
        if let MbarOp::Wait { parity, try_wait } = op {
            return self.mbar_wait(warp, r, m, i, parity, try_wait, w);
        }
        if let MbarOp::PendingCount = op {
            lanes!(m, lane, {
                r[ix(i.d, lane)] = (r[ix(i.b, lane)] >> 32) & MBAR_MAX as u64;
            });
            return Ok(Flow::Next);
        }
        self.progress = self.clock;
        lanes!(m, lane, {
            let Some(off) = self.mbar_addr(r, i, w, lane)? else { continue };
            let b = if i.b == NOREG { 1 } else { r[ix(i.b, lane)] as u32 };
            match op {
                MbarOp::Init => {
                    if b == 0 || b as i64 > MBAR_MAX {
                        self.mbar_misuse(
                            w,
                            lane,
                            i.line,
                            off,
                            format!("mbarrier.init count {b} outside 1..=2^20-1"),
                        )?;
                        continue;
                    }
                    let slot = match self.sync.slot(off) {
                        Some(s) => {
                            if self.sync.mbars[s].valid {
                                let line = self.sync.mbars[s].line;
                                self.mbar_misuse(
                                    w,
                                    lane,
                                    i.line,
                                    off,
                                    format!(
                                        "mbarrier.init of the live mbarrier at shared {off:#x} (initialized at PTX line {line}, not invalidated)"
                                    ),
                                )?;
                            }
                            s
                        }
                        None => {
                            self.sync.mbars.push(Mbar {
                                off,
                                valid: false,
                                expected: 0,
                                pending: 0,
                                tx: 0,
                                phase: 0,
                                line: 0,
                            });
                            self.sync.mbars.len() - 1
                        }
                    };
                    self.sync.mbars[slot] =
                        Mbar { off, valid: true, expected: b, pending: b, tx: 0, phase: 0, line: i.line };
                    self.sync.update_range();
                    if self.l.sanitize {
                        self.asyncs.mbar_init(slot);
                    }
                }
                MbarOp::Inval => {
                    let Some(slot) = self.mbar_slot(off, "mbarrier.inval", w, lane, i.line)? else { continue };
                    self.sync.mbars[slot].valid = false;
                    self.sync.update_range();
                }
                MbarOp::Arrive { expect_tx, drop, no_complete, .. } => {
                    let Some(slot) = self.mbar_slot(off, "mbarrier.arrive", w, lane, i.line)? else { continue };
                    let count = if expect_tx { 1 } else { b };
                    if count == 0 || count as i64 > MBAR_MAX {
                        self.mbar_misuse(w, lane, i.line, off, format!("mbarrier.arrive count {count} outside 1..=2^20-1"))?;
                        continue;
                    }
                    if expect_tx {
                        self.sync.mbars[slot].tx += b as i64;
                        self.mbar_tx_range(slot, w, lane, i.line)?;
                    }
                    if drop {
                        let mb = &mut self.sync.mbars[slot];
                        if count > mb.expected {
                            let e = mb.expected;
                            self.mbar_misuse(
                                w,
                                lane,
                                i.line,
                                off,
                                format!("mbarrier.arrive_drop of {count} from an expected count of {e}"),
                            )?;
                        } else {
                            mb.expected -= count;
                        }
                    }
                    let token = self.mbar_arrive_one(slot, count, no_complete, w, lane, i.line)?;
                    if i.d != NOREG {
                        r[ix(i.d, lane)] = token;
                    }
                }
                MbarOp::ExpectTx | MbarOp::CompleteTx => {
                    let Some(slot) = self.mbar_slot(off, "mbarrier tx-count update", w, lane, i.line)? else {
                        continue;
                    };
                    let d = if op == MbarOp::ExpectTx { b as i64 } else { -(b as i64) };
                    self.sync.mbars[slot].tx += d;
                    self.mbar_tx_range(slot, w, lane, i.line)?;
                    self.mbar_maybe_complete(slot);
                }
                MbarOp::CpAsyncArrive { noinc } => {
                    let Some(slot) = self.mbar_slot(off, "cp.async.mbarrier.arrive", w, lane, i.line)? else {
                        continue;
                    };
                    // The lane's cp.async copies complete now; the arrive-on they trigger
                    // follows (without .noinc the pending count was raised by one first: no net
                    // change).
                    self.cp_flush_lane(warp, lane, w);
                    if noinc {
                        self.mbar_arrive_one(slot, 1, false, w, lane, i.line)?;
                    }
                }
                MbarOp::Wait { .. } | MbarOp::PendingCount => {}
            }
        });
        Ok(Flow::Next)
    }

    /// mbarrier.test_wait / try_wait{.parity}: true when the tested phase is complete. A
    /// `try_wait` on an incomplete phase parks the executing lanes (they run it again when the
    /// phase completes; the warp blocks when no lane is left to run); a `test_wait` returns false
    /// and the warp yields.
    #[allow(clippy::too_many_arguments)]
    fn mbar_wait(
        &mut self,
        warp: &mut Warp,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        parity: bool,
        try_wait: bool,
        w: u32,
    ) -> Result<Flow> {
        let mut done = 0u32;
        // (slot, phases observed complete) per lane; the first incomplete lane's (slot, phase).
        let mut seen = [(usize::MAX, 0u32); 32];
        let mut block: Option<(usize, u32)> = None;
        lanes!(m, lane, {
            let Some(off) = self.mbar_addr(r, i, w, lane)? else {
                done |= 1 << lane;
                continue;
            };
            let Some(slot) = self.mbar_slot(off, "mbarrier wait", w, lane, i.line)? else {
                done |= 1 << lane;
                continue;
            };
            let cur = self.sync.mbars[slot].phase;
            let b = r[ix(i.b, lane)];
            let complete = if parity {
                seen[lane] = (slot, cur);
                (cur & 1) as u64 != (b & 1)
            } else {
                let tp = b as u32;
                if b >> 52 != TOKEN_TAG || tp > cur || tp.wrapping_add(1) < cur {
                    self.mbar_misuse(
                        w,
                        lane,
                        i.line,
                        off,
                        format!(
                            "mbarrier wait with a state that is not from phase {cur} or {} of the mbarrier at shared {off:#x}",
                            cur.wrapping_sub(1)
                        ),
                    )?;
                    true
                } else {
                    seen[lane] = (slot, tp.wrapping_add(1));
                    tp < cur
                }
            };
            if complete {
                done |= 1 << lane;
            } else if block.is_none() {
                block = Some((slot, cur));
            }
        });
        if done == m || !try_wait {
            lanes!(m, lane, {
                r[ix(i.d, lane)] = (done >> lane & 1) as u64;
            });
            if self.l.counters {
                self.out.counters.mbarrier_waits += 1;
            }
            warp.resumed = false;
            if done != m {
                warp.wait_line = i.line;
                return Ok(Flow::Yield);
            }
            self.progress = self.clock;
            if self.l.sanitize {
                lanes!(m, lane, {
                    let (slot, phases) = seen[lane];
                    if slot != usize::MAX {
                        self.asyncs.mbar_observed(w as usize, slot, phases);
                    }
                });
            }
            return Ok(Flow::Next);
        }
        let (slot, phase) = block.unwrap_or((0, 0));
        warp.parked |= m;
        warp.parks.push((m, slot as u32, phase));
        warp.wait_line = i.line;
        warp.resumed = true;
        if warp.live & !warp.parked != 0 {
            return Ok(Flow::Park);
        }
        warp.state = WState::Mbar { slot: slot as u32, phase };
        Ok(Flow::Block)
    }

    /// End-of-block checks: mbarriers whose transaction bytes never matched.
    pub(super) fn finish_sync(&mut self) -> Result<()> {
        for slot in 0..self.sync.mbars.len() {
            let mb = &self.sync.mbars[slot];
            if mb.valid && mb.tx != 0 {
                let (off, tx, phase, line) = (mb.off, mb.tx, mb.phase, mb.line);
                self.violation(
                    FindingKind::MbarrierMisuse,
                    0,
                    0,
                    line,
                    Some(off),
                    format!(
                        "the mbarrier at shared {off:#x} (initialized at PTX line {line}) ended the block in phase {phase} with tx-count {tx}: the bytes expected (expect_tx) and delivered (complete_tx) never matched"
                    ),
                )?;
                self.flagged = false;
            }
        }
        Ok(())
    }
}
