//! Control flow: branches (the taken and the falling-through lanes each move to their PC, which
//! the reconvergence rule of [`super::sched`] then orders), exit, trap, and the clock.

use super::super::ir::*;
use super::lanes::{ix, lanes};
use super::memory::Resolved;
use super::sched::{Flow, WState, Warp};
use super::{err_at, Blk};
use crate::device::FindingKind;
use crate::error::{Error, Result};

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
    /// warp's turn ends: it is done (then its outstanding cp.async copies complete), or only
    /// lanes parked in `mbarrier.try_wait` are left (it blocks on them).
    #[inline(always)]
    pub(super) fn exit(&mut self, warp: &mut Warp, pc: u32, active: u32, m: u32, w: u32) -> bool {
        warp.live &= !m;
        if active & !m != 0 {
            warp.advance(active & !m, pc + 1);
        }
        self.progress = self.clock;
        if warp.live != 0 {
            if warp.live & !warp.parked == 0 {
                // Only parked lanes are left: the warp blocks on them.
                let (_, slot, phase) = warp.parks[0];
                warp.state = WState::Mbar { slot, phase };
                return true;
            }
            return false;
        }
        warp.state = WState::Done;
        self.sync.live_threads -= warp.nthreads;
        if self.sync.reg_pool.is_some() {
            self.sync.regs_used -= warp.regs * 32;
        }
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

    /// setmaxnreg.{inc,dec}: the warp's per-thread register count moves to `count`, taking
    /// registers from the CTA's pool or giving them back; an `inc` blocks until the pool has
    /// them (PTX ISA 9.7.19.5). Findings: executed by part of a warp, `inc` below / `dec` above
    /// the current count. With the kernel's register count unknown, only the warpgroup
    /// consistency is checked (at the end of the block).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn setmaxnreg(
        &mut self,
        warp: &mut Warp,
        m: u32,
        i: &Inst,
        pc: u32,
        inc: bool,
        count: u16,
        w: u32,
    ) -> Result<Flow> {
        if m == 0 {
            return Ok(Flow::Next);
        }
        let lane = m.trailing_zeros() as usize;
        if m != warp.live {
            self.violation(
                FindingKind::RegisterReconfig,
                w,
                lane,
                i.line,
                None,
                format!(
                    "setmaxnreg executed by lanes {m:#010x} of warp {w} only (the whole warpgroup must execute it)"
                ),
            )?;
        }
        let count = count as u32;
        if let Some(pool) = self.sync.reg_pool {
            let cur = warp.regs;
            if (inc && count < cur) || (!inc && count > cur) {
                self.violation(
                    FindingKind::RegisterReconfig,
                    w,
                    lane,
                    i.line,
                    None,
                    format!(
                        "setmaxnreg.{} {count} while warp {w} owns {cur} registers per thread",
                        if inc { "inc" } else { "dec" }
                    ),
                )?;
            }
            if inc && count > cur {
                let need = (count - cur) * 32;
                if pool - self.sync.regs_used < need {
                    warp.state = WState::Regs { need };
                    warp.wait_line = i.line;
                    return Ok(Flow::Block);
                }
            }
            self.sync.regs_used = self.sync.regs_used + count * 32 - cur * 32;
            warp.regs = count;
        }
        warp.setmaxnreg.push(pc);
        self.progress = self.clock;
        Ok(Flow::Next)
    }
}
