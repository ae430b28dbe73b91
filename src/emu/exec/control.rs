//! Control flow: branches (the taken and the falling-through lanes each move to their PC, which
//! the reconvergence rule of [`super::sched`] then orders), exit, trap, and the clock.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::memory::Resolved;
use super::sched::{WState, Warp};
use super::{err_at, Blk};
use crate::error::Error;

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

impl Blk<'_, '_> {
    /// trap (or a failed `assert`) in the lanes of `m`: the launch's error, naming the first
    /// lane's block and thread (and the assertion, its file, line and function).
    #[cold]
    pub(super) fn trap(&mut self, r: &[u64], m: u32, i: &Inst, assert: bool, w: u32) -> Error {
        let lane = m.trailing_zeros() as usize;
        let t = self.thread(w, lane);
        let what = if assert {
            let s = |reg: u32| self.c_string(r[ix(reg, lane)], w, lane);
            format!("trap: assertion `{}` failed at {}:{} in {}", s(i.a), s(i.b), r[ix(i.c, lane)] as u32, s(i.e))
        } else {
            "trap".to_string()
        };
        err_at(self.l.k, i.line, format!("{what}, in block {:?} thread {:?}", self.ctaid, t))
    }

    /// The NUL-terminated string at generic address `addr` (at most 512 bytes; `?` if unreadable).
    fn c_string(&self, addr: u64, w: u32, lane: usize) -> String {
        let mut out = Vec::new();
        for k in 0..512u64 {
            let b = match self.resolve(Space::Generic, addr + k, w, lane) {
                Resolved::Global(a, off) if a.contains(addr + k, 1) => a.read(off, 1) as u8,
                Resolved::Const(off) => match self.l.k.const_data.get(off as usize) {
                    Some(&b) => b,
                    None => break,
                },
                _ if k == 0 => return "?".into(),
                _ => break,
            };
            if b == 0 {
                break;
            }
            out.push(b);
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}
