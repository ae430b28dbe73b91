//! Control flow: branches (the taken and the falling-through lanes each move to their PC, which
//! the reconvergence rule of [`super::sched`] then orders), exit, and the clock.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::sched::{WState, Warp};
use super::Blk;

/// bra: the lanes of `m` (the guard's true lanes) jump to `target`, the other active lanes fall
/// through.
#[inline(always)]
pub(super) fn bra(warp: &mut Warp, pc: u32, active: u32, m: u32, target: u32) {
    let taken = m;
    let not = active & !m;
    if taken != 0 {
        warp.advance(taken, target);
    }
    if not != 0 {
        warp.advance(not, pc + 1);
    }
}

/// d = the block's instruction clock.
#[inline(always)]
pub(super) fn clock(r: &mut [u64], m: u32, i: &Inst, clock: u64) {
    lanes!(m, lane, {
        r[ix(i.d, lane)] = clock;
    });
}

impl Blk<'_, '_> {
    /// exit / ret: the lanes of `m` end, the other active lanes fall through. Returns whether the
    /// warp is done (then its outstanding cp.async copies complete).
    #[inline(always)]
    pub(super) fn exit(&mut self, warp: &mut Warp, pc: u32, active: u32, m: u32, w: u32) -> bool {
        warp.live &= !m;
        if active & !m != 0 {
            warp.advance(active & !m, pc + 1);
        }
        if warp.live != 0 {
            return false;
        }
        warp.state = WState::Done;
        self.cp_drain(warp, w);
        true
    }
}
