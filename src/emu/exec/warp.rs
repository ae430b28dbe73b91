//! Warp-level collectives: shuffles, votes, reductions, match, `activemask`, `bar.warp.sync`,
//! and the sanitizer's checks of their member masks (and of the lanes a shuffle reads).

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
            self.flagged = true;
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

    /// The groups of a warp collective with a per-lane member mask (register `e`): the executing
    /// lanes by the mask they give. Each lane names the lanes it synchronizes with, so lanes of
    /// one cooperative-groups tile give the tile's mask and several tiles of a warp run one
    /// instruction side by side. Returns `(mask, lanes giving it)` pairs; the sanitizer checks
    /// that each mask names exactly the lanes giving it.
    #[inline(always)]
    #[allow(clippy::too_many_arguments)]
    fn groups(&mut self, r: &[u64], m: u32, e: u32, live: u32, w: u32, line: u32, what: &str) -> Groups {
        let mut g = Groups { n: 0, masks: [(0, 0); 32] };
        if m == 0 {
            return g;
        }
        let first = r[ix(e, m.trailing_zeros() as usize)] as u32;
        let mut same = true;
        lanes!(m, lane, {
            same &= r[ix(e, lane)] as u32 == first;
        });
        if same {
            g.masks[0] = (first, m);
            g.n = 1;
        } else {
            lanes!(m, lane, {
                let k = r[ix(e, lane)] as u32;
                match g.masks[..g.n].iter_mut().find(|(x, _)| *x == k) {
                    Some((_, l)) => *l |= 1 << lane,
                    None => {
                        g.masks[g.n] = (k, 1 << lane);
                        g.n += 1;
                    }
                }
            });
        }
        if self.l.sanitize {
            for &(members, lanes) in &g.masks[..g.n] {
                if members != lanes {
                    self.group_finding(members, lanes, m, live, w, line, what);
                }
            }
        }
        g
    }

    #[cold]
    #[allow(clippy::too_many_arguments)]
    fn group_finding(&mut self, members: u32, lanes: u32, m: u32, live: u32, w: u32, line: u32, what: &str) {
        if self.flagged {
            return;
        }
        self.flagged = true;
        let bad = members ^ lanes;
        let lane = bad.trailing_zeros() as usize;
        let why = if members & !live != 0 {
            "names exited or absent lanes".to_string()
        } else if members & !m != 0 {
            "names lanes that are not executing it".to_string()
        } else if members & !lanes != 0 {
            format!("names lanes {:#010x} that execute it with another member mask", members & !lanes)
        } else {
            format!("does not name lanes {:#010x} that execute it with this mask", lanes & !members)
        };
        self.finding(
            FindingKind::InvalidWarpMask,
            w,
            lane,
            line,
            None,
            format!("{what} member mask {members:#010x} {why} (executing lanes {m:#010x})"),
        );
    }

    /// bar.warp.sync: orders the lanes of this warp for the race checker.
    #[inline(always)]
    pub(super) fn warp_sync(&mut self, r: &[u64], m: u32, i: &Inst, live: u32, w: u32) {
        self.groups(r, m, i.a, live, w, i.line, "bar.warp.sync");
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
        let g = self.groups(r, m, i.e, live, w, i.line, "shfl.sync");
        let mut vals = [0u64; 32];
        for (lane, v) in vals.iter_mut().enumerate() {
            *v = r[ix(i.a, lane)];
        }
        // A source lane outside the reader's group (not in its member mask, or not executing with
        // it) has no defined value to give.
        let mut sources = [0u32; 32];
        for &(members, lanes) in g.all() {
            lanes!(lanes, lane, {
                sources[lane] = members & lanes;
            });
        }
        let mut stray: Option<(usize, usize, u32)> = None;
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
            let src = if ok { j as usize & 31 } else { lane };
            if sources[lane] >> src & 1 == 0 && stray.is_none() {
                stray = Some((lane, src, r[ix(i.e, lane)] as u32));
            }
            r[ix(i.d, lane)] = vals[src] & 0xffff_ffff;
            if i.d2 != NOREG {
                r[ix(i.d2, lane)] = ok as u64;
            }
        });
        if let Some((lane, src, members)) = stray {
            if self.l.sanitize && !self.flagged {
                self.flagged = true;
                self.finding(
                    FindingKind::InvalidWarpMask,
                    w,
                    lane,
                    i.line,
                    None,
                    format!(
                        "shfl.sync: lane {lane} reads lane {src}, which is not in its member mask {members:#010x} \
                         (executing lanes {m:#010x}): the value is undefined"
                    ),
                );
            }
        }
    }

    #[inline(always)]
    pub(super) fn vote(&mut self, r: &mut [u64], m: u32, i: &Inst, mode: VoteMode, live: u32, w: u32) {
        let g = self.groups(r, m, i.e, live, w, i.line, "vote.sync");
        for &(members, lanes) in g.all() {
            let part = lanes & members;
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
            lanes!(lanes, lane, {
                r[ix(i.d, lane)] = v;
            });
        }
    }

    #[inline(always)]
    pub(super) fn redux(&mut self, r: &mut [u64], m: u32, i: &Inst, op: AtomOp, live: u32, w: u32) {
        let g = self.groups(r, m, i.e, live, w, i.line, "redux.sync");
        let t = i.ty;
        for &(members, lanes) in g.all() {
            let mut acc: Option<u64> = None;
            lanes!(lanes & members, lane, {
                let v = r[ix(i.a, lane)] & 0xffff_ffff;
                acc = Some(match acc {
                    None => v,
                    Some(x) => atom_apply(op, t, x, v, 0),
                });
            });
            let v = acc.unwrap_or(0);
            lanes!(lanes, lane, {
                r[ix(i.d, lane)] = v;
            });
        }
    }

    /// match.any.sync: d = the members whose `a` equals this lane's; match.all.sync: d = the
    /// member mask if every member's `a` is equal (d2 = true), else 0 (d2 = false).
    #[inline(always)]
    pub(super) fn match_sync(&mut self, r: &mut [u64], m: u32, i: &Inst, all: bool, live: u32, w: u32) {
        let g = self.groups(r, m, i.e, live, w, i.line, "match.sync");
        let mk = if i.ty == Ty::B64 { u64::MAX } else { 0xffff_ffff };
        for &(members, lanes) in g.all() {
            let part = lanes & members;
            let mut out = [0u32; 32];
            let mut same = true;
            if all {
                let first = if part != 0 { r[ix(i.a, part.trailing_zeros() as usize)] & mk } else { 0 };
                lanes!(part, lane, {
                    same &= r[ix(i.a, lane)] & mk == first;
                });
            } else {
                lanes!(lanes, lane, {
                    let v = r[ix(i.a, lane)] & mk;
                    lanes!(part, o, {
                        if r[ix(i.a, o)] & mk == v {
                            out[lane] |= 1 << o;
                        }
                    });
                });
            }
            lanes!(lanes, lane, {
                r[ix(i.d, lane)] = if !all {
                    out[lane] as u64
                } else if same {
                    members as u64
                } else {
                    0
                };
                if all && i.d2 != NOREG {
                    r[ix(i.d2, lane)] = same as u64;
                }
            });
        }
    }
}

/// The member-mask groups of one warp collective (see [`Blk::groups`]).
pub(super) struct Groups {
    n: usize,
    masks: [(u32, u32); 32],
}

impl Groups {
    fn all(&self) -> &[(u32, u32)] {
        &self.masks[..self.n]
    }
}
