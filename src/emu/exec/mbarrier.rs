//! mbarrier objects (PTX ISA 9.7.13.15), kept beside shared memory and keyed by their shared
//! offset: current phase, expected and pending arrival counts, tx-count. Arrivals of a warp's
//! lanes are applied lowest lane first; a phase completes when pending arrivals and tx-count are
//! both zero (9.7.13.15.6), then the phase number moves on and pending is reloaded with the
//! expected count. `try_wait` on an incomplete phase parks the executing lanes (it never times
//! out: a wait that can never succeed is a deadlock, not a spin); `test_wait` returns false and
//! the warp yields. The opaque state `arrive` returns is the phase number and the pending count
//! before the arrival, under a tag.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::sched::{Flow, WState, Warp};
use super::sync::{shared_off, BlockSync};
use super::Blk;
use crate::device::FindingKind;
use crate::error::Result;

/// Largest expected / pending arrival count and |tx-count| of an mbarrier (PTX ISA 9.7.13.15.2).
pub(super) const MBAR_MAX: i64 = (1 << 20) - 1;

/// Tag in the top 12 bits of an mbarrier state token.
const TOKEN_TAG: u64 = 0xa7b;

/// One mbarrier object.
pub(super) struct Mbar {
    pub(super) off: u64,
    /// Initialized and not invalidated.
    pub(super) valid: bool,
    pub(super) expected: u32,
    pub(super) pending: u32,
    pub(super) tx: i64,
    /// The current phase's number (phases completed since init).
    pub(super) phase: u32,
    line: u32,
}

impl BlockSync {
    /// A park on `slot` waiting for `phase` to complete is over (or its barrier was invalidated).
    pub(super) fn park_over(&self, slot: u32, phase: u32) -> bool {
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
}

impl Blk<'_, '_> {
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
                let why =
                    if s.is_some() { "an invalidated mbarrier" } else { "memory never initialized as an mbarrier" };
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
            self.clocks.mbar_complete(slot);
        }
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
            self.clocks.mbar_arrive(slot, w as usize);
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
    pub(super) fn mbar(
        &mut self,
        warp: &mut Warp,
        r: &mut [u64],
        m: u32,
        i: &Inst,
        op: MbarOp,
        w: u32,
    ) -> Result<Flow> {
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
                        self.mbar_misuse(w, lane, i.line, off, format!("mbarrier.init count {b} outside 1..=2^20-1"))?;
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
                        self.clocks.mbar_init(slot);
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
                        self.mbar_misuse(
                            w,
                            lane,
                            i.line,
                            off,
                            format!("mbarrier.arrive count {count} outside 1..=2^20-1"),
                        )?;
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
                    } else if self.l.sanitize {
                        // The arrive-on still happens (the count was raised first): it releases
                        // the copies' writes.
                        self.clocks.mbar_arrive(slot, w as usize);
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
            if self.l.sanitize && done != 0 {
                // Each lane whose wait succeeded acquires the phase it observed (racecheck).
                let mut last = usize::MAX;
                lanes!(done, lane, {
                    let slot = seen[lane].0;
                    if slot != usize::MAX && slot != last {
                        self.clocks.mbar_acquire(slot, w as usize);
                        last = slot;
                    }
                });
            }
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

    /// End-of-block check: mbarriers whose transaction bytes never matched.
    pub(super) fn finish_mbarriers(&mut self) -> Result<()> {
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
