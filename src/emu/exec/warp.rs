//! Warp-level collectives: shuffles, votes, reductions, `activemask`, `bar.warp.sync`, and the
//! sanitizer's check of their member masks.

use super::super::ir::*;
use super::alu::atom_apply;
use super::lanes::{ix, lanes};
use super::Blk;
use crate::device::FindingKind;

/// d = the mask of the lanes executing this instruction.
#[inline(always)]
pub(super) fn activemask(r: &mut [u64], m: u32, i: &Inst, active: u32) {
    lanes!(m, lane, {
        r[ix(i.d, lane)] = active as u64;
    });
}

impl Blk<'_, '_> {
    /// Sanitizer check of a warp collective's member mask against the lanes present.
    pub(super) fn check_members(&mut self, members: u32, active: u32, live: u32, w: u32, line: u32, what: &str) {
        if !self.l.sanitize {
            return;
        }
        let bad = (members & !active) | (active & !members);
        if bad != 0 {
            let lane = bad.trailing_zeros() as usize;
            let why = if members & !live != 0 {
                "names exited or absent lanes"
            } else if members & !active != 0 {
                "names lanes that are not executing it"
            } else {
                "does not name every lane executing it"
            };
            self.finding(
                FindingKind::InvalidWarpMask,
                w,
                lane,
                line,
                None,
                format!("{what} member mask {members:#010x} {why} (executing lanes {active:#010x})"),
            );
        }
    }

    /// bar.warp.sync: orders the lanes of this warp for the race checker.
    #[inline(always)]
    pub(super) fn warp_sync(&mut self, r: &[u64], m: u32, i: &Inst, live: u32, w: u32) {
        let members = if m != 0 { r[ix(i.a, m.trailing_zeros() as usize)] as u32 } else { 0 };
        self.check_members(members, m, live, w, i.line, "bar.warp.sync");
        if self.l.sanitize {
            self.clocks.bump(w as usize);
        }
    }

    /// elect.sync d|p, membermask: the leader is the lowest executing lane of the mask (the
    /// election is deterministic, PTX ISA 9.7.13.14); d = its lane id, p = whether this lane is it.
    #[inline(always)]
    pub(super) fn elect(&mut self, r: &mut [u64], m: u32, i: &Inst, live: u32, w: u32) {
        let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
        self.check_members(members, m, live, w, i.line, "elect.sync");
        let leader = (members & m).trailing_zeros();
        lanes!(m, lane, {
            r[ix(i.d, lane)] = leader as u64;
            r[ix(i.d2, lane)] = (lane as u32 == leader) as u64;
        });
    }

    /// shfl.sync: every lane reads the value `a` of its source lane as it was before the instruction.
    #[inline(always)]
    pub(super) fn shfl(&mut self, r: &mut [u64], m: u32, i: &Inst, mode: ShflMode, live: u32, w: u32) {
        let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
        self.check_members(members, m, live, w, i.line, "shfl.sync");
        let mut vals = [0u64; 32];
        for (lane, v) in vals.iter_mut().enumerate() {
            *v = r[ix(i.a, lane)];
        }
        lanes!(m, lane, {
            let bv = (r[ix(i.b, lane)] & 0x1f) as i32;
            let c = r[ix(i.c, lane)] as u32;
            let cval = (c & 0x1f) as i32;
            let seg = ((c >> 8) & 0x1f) as i32;
            let ln = lane as i32;
            let max_lane = (ln & seg) | (cval & !seg);
            let min_lane = ln & seg;
            let (j, ok) = match mode {
                ShflMode::Up => (ln - bv, ln - bv >= max_lane),
                ShflMode::Down => (ln + bv, ln + bv <= max_lane),
                ShflMode::Bfly => (ln ^ bv, (ln ^ bv) <= max_lane),
                ShflMode::Idx => {
                    let j = min_lane | (bv & !seg);
                    (j, j <= max_lane)
                }
            };
            let src = if ok { j as usize } else { lane };
            r[ix(i.d, lane)] = vals[src & 31] & 0xffff_ffff;
            if i.d2 != NOREG {
                r[ix(i.d2, lane)] = ok as u64;
            }
        });
    }

    #[inline(always)]
    pub(super) fn vote(&mut self, r: &mut [u64], m: u32, i: &Inst, mode: VoteMode, live: u32, w: u32) {
        let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
        self.check_members(members, m, live, w, i.line, "vote.sync");
        let part = m & members;
        let mut ballot = 0u32;
        lanes!(part, lane, {
            if ((r[ix(i.a, lane)] & 1) != 0) != i.pneg {
                ballot |= 1 << lane;
            }
        });
        let v = match mode {
            VoteMode::Ballot => ballot as u64,
            VoteMode::All => (ballot == part) as u64,
            VoteMode::Any => (ballot != 0) as u64,
            VoteMode::Uni => (ballot == part || ballot == 0) as u64,
        };
        lanes!(m, lane, {
            r[ix(i.d, lane)] = v;
        });
    }

    #[inline(always)]
    pub(super) fn redux(&mut self, r: &mut [u64], m: u32, i: &Inst, op: AtomOp, live: u32, w: u32) {
        let members = if m != 0 { r[ix(i.e, m.trailing_zeros() as usize)] as u32 } else { 0 };
        self.check_members(members, m, live, w, i.line, "redux.sync");
        let t = i.ty;
        let mut acc: Option<u64> = None;
        lanes!(m & members, lane, {
            let v = r[ix(i.a, lane)] & 0xffff_ffff;
            acc = Some(match acc {
                None => v,
                Some(x) => atom_apply(op, t, x, v, 0),
            });
        });
        let v = acc.unwrap_or(0);
        lanes!(m, lane, {
            r[ix(i.d, lane)] = v;
        });
    }
}
