//! Block-level synchronization: the block's synchronization state ([`BlockSync`]: what wakes a
//! blocked warp, the deadlock report), CTA and named barriers (`bar.sync` / `barrier.sync` /
//! `bar.arrive`, ids 0..15, optional thread count; PTX ISA 9.7.13.1), the cluster barrier of a
//! one-CTA cluster (9.7.13.3) and fences (9.7.13.4). mbarriers are in [`super::mbarrier`].
//!
//! A CTA barrier completes at the arrival that meets its count (no count: every thread that has
//! not exited); arrivals after that belong to its next phase. Every arrival of one phase must
//! name the same thread count (a synccheck finding otherwise). A waiting warp blocks until the
//! barrier's generation moves on.

use super::super::ir::*;
use super::lanes::ix;
use super::mbarrier::Mbar;
use super::sched::{Flow, WState, Warp};
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::Result;

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
    /// Warps arrived in this phase, and those of them that wait (not `bar.arrive`).
    members: [u64; 16],
    waiters: [u64; 16],
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

    /// Whether `len` bytes at `off` overlap the range of the valid mbarriers (a plain access
    /// there is checked against them).
    #[inline(always)]
    pub(super) fn touches_mbarriers(&self, off: u64, len: u64) -> bool {
        off < self.mb_hi && off + len > self.mb_lo
    }

    /// Whether `warp`, blocked, can run again.
    pub(super) fn wakes(&self, warp: &Warp) -> bool {
        match warp.state {
            WState::Bar { id, gen } => self.bars.gen[id as usize] != gen,
            WState::Mbar { .. } => warp.parks.iter().any(|&(_, slot, phase)| self.park_over(slot, phase)),
            WState::Cluster { gen } => self.cluster_gen != gen,
            WState::Regs { need } => self.reg_pool.is_some_and(|p| p - self.regs_used >= need),
            WState::Run | WState::Done => false,
        }
    }

    /// Every blocked warp, barrier with arrivals and mbarrier, for deadlock and livelock reports.
    pub(super) fn describe(&self, warps: &[Warp]) -> String {
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
                WState::Run if warp.parked != 0 => {
                    format!("is running lanes {:#010x}, {}", warp.live & !warp.parked, parked(warp))
                }
                WState::Run => "is running (spinning)".to_string(),
                WState::Bar { id, .. } => format!("waits at barrier {id}"),
                WState::Mbar { .. } if warp.parked == warp.live => {
                    format!(
                        "waits in mbarrier.try_wait on the mbarrier at shared {:#x} for phase {} to complete",
                        self.mbars[warp.parks[0].1 as usize].off, warp.parks[0].2
                    )
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
            let say =
                |c: Option<u32>| c.map_or("no thread count (the whole CTA)".to_string(), |c| format!("{c} threads"));
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
        if !arrive {
            bars.waiters[id] |= 1 << w;
        }
        if self.l.sanitize {
            self.clocks.bar_arrive(id, w as usize);
        }
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
        let waiters = std::mem::take(&mut bars.waiters[id]);
        if self.l.sanitize {
            self.asyncs.barrier(members);
            self.clocks.bar_complete(id, waiters);
        }
    }

    /// Whole-CTA barriers (and the cluster barrier) whose remaining threads have all arrived
    /// once others exited; whether any completed.
    pub(super) fn release_exited(&mut self) -> bool {
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
            self.clocks.cluster_complete(members);
        }
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
            if self.l.sanitize {
                self.clocks.cluster_arrive(w as usize);
            }
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
    /// recorded for racecheck (the async proxy's reads of generic writes).
    #[inline(always)]
    pub(super) fn fence(&mut self, m: u32, kind: FenceKind, w: u32) {
        if m != 0 && self.l.sanitize {
            if let FenceKind::ProxyAsync(None | Some(Space::Shared)) = kind {
                self.clocks.proxy_fence(w as usize);
            }
        }
    }
}
