//! CTA barriers (`bar.sync` / `barrier.sync` / `bar.arrive`, ids 0..15, optional thread count):
//! arrivals are counted per barrier; a barrier is released when its count is met (no count: every
//! thread that has not exited), and the warps waiting at it run again.

use super::super::ir::*;
use super::lanes::ix;
use super::sched::{WState, Warp};
use super::Blk;
use crate::device::FindingKind;

/// Arrivals at the block's 16 barriers since their last release.
#[derive(Default)]
pub(super) struct CtaBarriers {
    /// Threads arrived (a warp counts all its threads).
    arrived: [u32; 16],
    /// The thread count the last arrival named (0: none, the whole block).
    expected: [u32; 16],
}

impl CtaBarriers {
    /// (threads arrived, threads expected) at barrier `id`, `live_threads` being the block's
    /// threads that have not exited.
    pub(super) fn count(&self, id: u32, live_threads: u32) -> (u32, u32) {
        let e = self.expected[id as usize];
        (self.arrived[id as usize], if e > 0 { e } else { live_threads })
    }

    /// Releases every barrier some warp waits at whose count is met; whether any was.
    pub(super) fn release(&mut self, warps: &mut [Warp], live_threads: u32) -> bool {
        let mut released = false;
        for id in 0..16u32 {
            let waiting = warps.iter().any(|w| w.state == WState::Bar(id));
            if !waiting {
                continue;
            }
            let (arrived, expected) = self.count(id, live_threads);
            if arrived >= expected {
                for w in warps.iter_mut() {
                    if w.state == WState::Bar(id) {
                        w.state = WState::Run;
                    }
                }
                self.arrived[id as usize] = 0;
                self.expected[id as usize] = 0;
                released = true;
            }
        }
        released
    }
}

impl Blk<'_, '_> {
    /// bar.sync / barrier.sync / bar.arrive by the lanes of `m`: counts the warp's arrival and,
    /// unless `arrive`, makes it wait; returns whether it waits. A barrier reached by only part
    /// of the warp's live lanes is a synccheck finding.
    #[inline(always)]
    pub(super) fn bar(&mut self, warp: &mut Warp, r: &[u64], m: u32, i: &Inst, arrive: bool, w: u32) -> bool {
        if self.l.counters {
            self.out.counters.barriers += 1;
        }
        if m == 0 {
            return false;
        }
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
        let id = (r[ix(i.a, first)] & 15) as usize;
        if i.b != NOREG {
            self.bars.expected[id] = r[ix(i.b, first)] as u32;
        }
        self.bars.arrived[id] += warp.nthreads;
        if arrive {
            return false;
        }
        warp.state = WState::Bar(id as u32);
        true
    }
}
