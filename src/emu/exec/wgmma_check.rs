//! The sanitizer's wgmma rules (PTX ISA 9.7.15.5.2, wgmma.mma_async; 9.7.15.7, wgmma.fence,
//! commit_group, wait_group), and the records a happens-before race checker can build on.
//!
//! [`super::wgmma`] executes a wgmma when a warp issues it; what is asynchronous in PTX is kept
//! here as state, per warp: the wgmmas issued and not yet committed, the committed groups not yet
//! retired by `wgmma.wait_group`, and for each D / register-A fragment register (by virtual
//! register, [`WgInfo`]: register allocation reuses slots) how many in-flight wgmmas use it and
//! when another instruction last touched it. Checks, each a [`FindingKind::WgmmaHazard`]:
//!
//! 1. a fragment register read or written by another instruction while a wgmma that uses it is
//!    in flight (issued, not retired by `wgmma.wait_group`);
//! 2. a wgmma whose fragment registers were read or written by another instruction since the
//!    warp's last `wgmma.fence`, or with no `wgmma.fence` before the warp's first wgmma
//!    (accumulating into the registers of an in-flight wgmma of the same shape is allowed);
//! 3. the warps of a warpgroup disagreeing on their n-th wgmma (instruction, descriptors,
//!    scale-d), the lanes of a warp disagreeing on a descriptor or scale-d, or a warp of the
//!    warpgroup never reaching it; warps reach a wgmma at different times in this emulator, so
//!    the first warp's values are kept per warpgroup and sequence number;
//! 4. shared memory that an in-flight wgmma reads (its 16-byte chunks, counted per granule) being
//!    written by a generic store, `cp.async` or `stmatrix` of any warp of the block, before the
//!    `wgmma.wait_group` that retires the wgmma; and a warp exiting with wgmmas not retired.
//!
//! The operand reads are also recorded in the shared-memory shadow (initcheck, racecheck) when a
//! warp issues the wgmma; `wgmma.wait_group` then counts as a warp-level sync for racecheck (it
//! orders the retired reads before the warp's later accesses).

use super::super::ir::*;
use super::{Blk, LaunchCtx};
use crate::device::FindingKind;
use std::collections::VecDeque;

/// One issued wgmma, until retired.
struct InFlight {
    pc: u32,
    line: u32,
    /// 16-byte granules of shared memory it read.
    reads: Vec<u32>,
}

/// The first warp's view of a warpgroup's n-th wgmma.
struct Record {
    seq: u64,
    warp: u32,
    pc: u32,
    line: u32,
    cfg: u32,
    desc_a: u64,
    desc_b: u64,
    scale_d: bool,
    arrived: u8,
}

#[derive(Default)]
struct WgWarp {
    /// wgmma.fence instructions executed, and the line of the last one.
    fences: u32,
    fence_line: u32,
    /// Per fragment register: `fences + 1` when last touched by another instruction (0: never)
    /// and that instruction's line.
    touched: Vec<u32>,
    touch_line: Vec<u32>,
    /// Per fragment register: in-flight wgmmas using it, and the shape of the last one using it
    /// as its accumulator (u32::MAX: as A).
    busy: Vec<u16>,
    busy_shape: Vec<u32>,
    open: Vec<InFlight>,
    groups: VecDeque<Vec<InFlight>>,
    /// wgmmas issued.
    seq: u64,
}

/// Per-block wgmma state (sanitizer) and the operand scratch of the executor.
#[derive(Default)]
pub struct WgState {
    /// The kernel has a wgmma and the sanitizer is on.
    on: bool,
    warps: Vec<WgWarp>,
    /// Per warpgroup: wgmmas some but not all of its warps have issued, oldest first.
    records: Vec<VecDeque<Record>>,
    /// Per 16-byte granule of shared memory: reads by in-flight wgmmas; and per granule and
    /// warp, the warp's own time (racecheck clocks) at its last wait that retired a read there
    /// (0: none), for check 4: the store must be ordered after every such wait.
    busy: Vec<u16>,
    retired: Vec<u32>,
    nw: usize,
    pub(super) busy_total: u64,
    /// wgmmas retired in this block (store checks are needed once there is one).
    pub(super) retired_total: u64,
    /// Granules read by the wgmma being issued; recycled lists.
    reads: Vec<u32>,
    pool: Vec<Vec<u32>>,
    pub(super) bm: Vec<f64>,
    pub(super) acc: Vec<f64>,
}

impl WgState {
    /// Ready for a block of launch `l`.
    pub fn reset(&mut self, l: &LaunchCtx) {
        self.on = l.sanitize && l.k.wg.is_some();
        self.busy_total = 0;
        self.retired_total = 0;
        self.reads.clear();
        if !self.on {
            return;
        }
        let nregs = l.k.wg.as_ref().map_or(0, |g| g.nregs as usize);
        let nw = l.nwarps as usize;
        self.warps.resize_with(nw, WgWarp::default);
        for ww in &mut self.warps[..nw] {
            ww.fences = 0;
            ww.fence_line = 0;
            for v in [&mut ww.touched, &mut ww.touch_line, &mut ww.busy_shape] {
                v.clear();
                v.resize(nregs, 0);
            }
            ww.busy.clear();
            ww.busy.resize(nregs, 0);
            for f in ww.open.drain(..).chain(ww.groups.drain(..).flatten()) {
                self.pool.push(f.reads);
            }
            ww.seq = 0;
        }
        self.records.resize_with(nw.div_ceil(4), VecDeque::new);
        self.records.iter_mut().for_each(|q| q.clear());
        let ng = l.shared_bytes.div_ceil(16) as usize;
        self.busy.clear();
        self.busy.resize(ng, 0);
        self.nw = nw;
        self.retired.clear();
        self.retired.resize(ng * nw, 0);
    }

    /// Notes a 16-byte operand read at `addr` by the wgmma being issued.
    #[inline(always)]
    pub(super) fn note_read(&mut self, addr: u32) {
        if self.on {
            self.reads.push(addr / 16);
            if !addr.is_multiple_of(16) {
                self.reads.push(addr / 16 + 1);
            }
        }
    }

    fn retire(&mut self, info: &WgInfo, w: usize, f: InFlight, now: u32) {
        let ww = &mut self.warps[w];
        for &d in info.regs_of(f.pc as usize) {
            ww.busy[d as usize] -= 1;
        }
        for &g in &f.reads {
            let g = g as usize;
            self.busy[g] -= 1;
            self.retired[g * self.nw + w] = now;
        }
        self.busy_total -= f.reads.len() as u64;
        self.retired_total += 1;
        let mut v = f.reads;
        v.clear();
        self.pool.push(v);
    }

    /// The warp and line of an in-flight wgmma matching `pred`.
    fn find(&self, mut pred: impl FnMut(&InFlight) -> bool) -> Option<(usize, u32)> {
        self.warps
            .iter()
            .enumerate()
            .find_map(|(w, ww)| ww.open.iter().chain(ww.groups.iter().flatten()).find(|f| pred(f)).map(|f| (w, f.line)))
    }
}

impl Blk<'_, '_> {
    fn wg_finding(&mut self, w: u32, lane: usize, line: u32, addr: Option<u64>, msg: String) {
        if !self.flagged {
            self.flagged = true;
            self.finding(FindingKind::WgmmaHazard, w, lane, line, addr, msg);
        }
    }

    /// Check 1 and the bookkeeping of check 2 for instruction `pc` (not a wgmma), which reads or
    /// writes fragment registers `info.regs_of(pc)` in the lanes of `m`.
    #[cold]
    pub(super) fn wg_touch(&mut self, info: &WgInfo, pc: usize, w: u32, m: u32, line: u32) {
        if !self.wg.on {
            return;
        }
        let ww = &mut self.wg.warps[w as usize];
        let mut hit = None;
        for &d in info.regs_of(pc) {
            if ww.busy[d as usize] > 0 && hit.is_none() {
                hit = Some(d);
            }
            ww.touched[d as usize] = ww.fences + 1;
            ww.touch_line[d as usize] = line;
        }
        if let Some(d) = hit {
            let at = self.wg.find(|f| info.regs_of(f.pc as usize).contains(&d)).map_or(0, |x| x.1);
            self.wg_finding(
                w,
                m.trailing_zeros() as usize,
                line,
                None,
                format!(
                    "reads or writes a register of the wgmma at PTX line {at} while that wgmma is in flight \
                     (wait for it with wgmma.wait_group first)"
                ),
            );
        }
    }

    /// Check 3 for warp `w` issuing the wgmma at `pc`, and its lanes' uniformity.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn wg_agree(
        &mut self,
        r: &[u64],
        m: u32,
        i: &Inst,
        cfg: WgmmaCfg,
        w: u32,
        pc: u32,
        v: (u64, u64, bool),
    ) {
        if !self.wg.on {
            return;
        }
        let (desc_a, desc_b, scale_d) = v;
        let lane0 = m.trailing_zeros() as usize;
        let mut split = None;
        let mut mm = m;
        while mm != 0 {
            let lane = mm.trailing_zeros() as usize;
            mm &= mm - 1;
            let (a, b, c) = (
                if cfg.a_regs() { 0 } else { r[super::lanes::ix(i.a, lane)] },
                r[super::lanes::ix(i.b, lane)],
                r[super::lanes::ix(i.c, lane)] & 1 != 0,
            );
            if (a, b, c) != (desc_a, desc_b, scale_d) {
                split = Some(lane);
                break;
            }
        }
        if let Some(lane) = split {
            self.wg_finding(
                w,
                lane,
                i.line,
                None,
                format!("lanes {lane0} and {lane} of warp {w} give this wgmma different descriptors or scale-d"),
            );
        }
        let seq = self.wg.warps[w as usize].seq;
        let q = &mut self.wg.records[(w / 4) as usize];
        let Some(x) = q.iter().position(|rec| rec.seq == seq) else {
            q.push_back(Record { seq, warp: w, pc, line: i.line, cfg: cfg.0, desc_a, desc_b, scale_d, arrived: 1 });
            return;
        };
        let rec = &mut q[x];
        rec.arrived += 1;
        let what = if rec.pc != pc {
            Some(format!("its wgmma number {seq} is at PTX line {}, warp {}'s at line {}", i.line, rec.warp, rec.line))
        } else if rec.desc_a != desc_a || rec.desc_b != desc_b {
            Some(format!(
                "descriptors A {desc_a:#x} B {desc_b:#x} differ from warp {}'s A {:#x} B {:#x}",
                rec.warp, rec.desc_a, rec.desc_b
            ))
        } else if rec.scale_d != scale_d || rec.cfg != cfg.0 {
            Some(format!("scale-d {scale_d} differs from warp {}'s {}", rec.warp, rec.scale_d))
        } else {
            None
        };
        if rec.arrived == 4 {
            q.remove(x);
        }
        if let Some(what) = what {
            self.wg_finding(
                w,
                lane0,
                i.line,
                None,
                format!("warps of warpgroup {} disagree on a wgmma: {what}", w / 4),
            );
        }
    }

    /// Check 2 for warp `w` issuing the wgmma at `pc`, then its registers and the shared memory
    /// it read become in flight.
    pub(super) fn wg_issue(&mut self, pc: u32, cfg: WgmmaCfg, w: u32, lane: usize, line: u32) {
        let reads = std::mem::take(&mut self.wg.reads);
        if !self.wg.on {
            return;
        }
        let l = self.l;
        let Some(info) = l.k.wg.as_deref() else { return };
        let nd = cfg.d_regs() as usize;
        let ww = &mut self.wg.warps[w as usize];
        let mut msg = None;
        if ww.fences == 0 {
            msg = Some("no wgmma.fence before the warp's first wgmma".to_string());
        }
        for (j, &d) in info.regs_of(pc as usize).iter().enumerate() {
            let d = d as usize;
            let acc = j < nd;
            if msg.is_none() && ww.touched[d] == ww.fences + 1 {
                msg = Some(format!(
                    "its {} registers were accessed at PTX line {} after the warp's last wgmma.fence (line {}): \
                     PTX requires a wgmma.fence between them",
                    if acc { "accumulator" } else { "A" },
                    ww.touch_line[d],
                    ww.fence_line
                ));
            }
            if msg.is_none() && ww.busy[d] > 0 && !(acc && ww.busy_shape[d] == cfg.shape()) {
                msg =
                    Some("uses registers of an in-flight wgmma other than as an accumulator of the same shape".into());
            }
            ww.busy[d] += 1;
            ww.busy_shape[d] = if acc { cfg.shape() } else { u32::MAX };
        }
        ww.seq += 1;
        for &g in &reads {
            self.wg.busy[g as usize] += 1;
        }
        self.wg.busy_total += reads.len() as u64;
        let mut fresh = self.wg.pool.pop().unwrap_or_default();
        fresh.clear();
        self.wg.reads = fresh;
        self.wg.warps[w as usize].open.push(InFlight { pc, line, reads });
        if let Some(msg) = msg {
            self.wg_finding(w, lane, line, None, format!("wgmma: {msg}"));
        }
    }

    pub(super) fn wg_fence(&mut self, w: u32, line: u32) {
        if self.wg.on {
            let ww = &mut self.wg.warps[w as usize];
            ww.fences += 1;
            ww.fence_line = line;
        }
    }

    pub(super) fn wg_commit(&mut self, w: u32) {
        if self.wg.on {
            let ww = &mut self.wg.warps[w as usize];
            let g = std::mem::take(&mut ww.open);
            ww.groups.push_back(g);
        }
    }

    /// wgmma.wait_group n: retires all but the `n` most recent committed groups.
    pub(super) fn wg_wait(&mut self, w: u32, n: u32) {
        if !self.wg.on {
            return;
        }
        let l = self.l;
        let Some(info) = l.k.wg.as_deref() else { return };
        let now = self.clocks.now(w as usize);
        while self.wg.warps[w as usize].groups.len() > n as usize {
            let Some(g) = self.wg.warps[w as usize].groups.pop_front() else { break };
            for f in g {
                self.wg.retire(info, w as usize, f, now);
            }
        }
        // The retired reads are ordered before the warp's later accesses (racecheck).
        self.clocks.bump(w as usize);
    }

    /// Check 4: a write of shared bytes [off, off + size) by thread `lane` of warp `w`, while a
    /// wgmma reading them is in flight, or after another warp's wgmma.wait_group retired such a
    /// read with no barrier in between (the wait is then not ordered before this store).
    #[cold]
    pub(super) fn wg_store(&mut self, off: u64, size: u32, w: u32, lane: usize, line: u32) {
        let (g0, g1) = ((off / 16) as usize, ((off + size.max(1) as u64 - 1) / 16) as usize);
        let wg = &*self.wg;
        let busy = (g0..=g1).find(|&g| wg.busy.get(g).is_some_and(|&c| c > 0));
        let msg = if let Some(g) = busy {
            let (ow, oline) = wg.find(|f| f.reads.contains(&(g as u32))).unwrap_or((0, 0));
            format!(
                "writes shared memory that the wgmma of warp {ow} at PTX line {oline} still reads: the write comes \
                 before the wgmma.wait_group that retires it"
            )
        } else if let Some(v) = (g0..=g1).find_map(|g| {
            let vc = &self.clocks.vc[w as usize];
            (0..wg.nw).find(|&v| v != w as usize && wg.retired.get(g * wg.nw + v).is_some_and(|&t| vc[v] < t))
        }) {
            format!(
                "writes shared memory that a wgmma of warp {v} read: the wgmma.wait_group that retired it is not \
                 ordered before this write (no barrier or mbarrier between them), so the wgmma may still be reading"
            )
        } else {
            return;
        };
        self.wg_finding(w, lane, line, Some(off), msg);
    }

    /// End of the block: warps of a warpgroup that never reached a wgmma, and warps that exited
    /// with wgmmas not retired.
    pub(super) fn wg_finish(&mut self) {
        if !self.wg.on {
            return;
        }
        let mut msgs = Vec::new();
        for (g, q) in self.wg.records.iter().enumerate() {
            if let Some(rec) = q.front() {
                msgs.push((
                    rec.warp,
                    rec.line,
                    format!(
                        "only {} of the 4 warps of warpgroup {g} reached the wgmma that warp {} issued as its wgmma number {}",
                        rec.arrived, rec.warp, rec.seq
                    ),
                ));
            }
        }
        for (w, ww) in self.wg.warps.iter().enumerate().take(self.l.nwarps as usize) {
            if let Some(f) = ww.open.iter().chain(ww.groups.iter().flatten()).next() {
                msgs.push((
                    w as u32,
                    f.line,
                    "the warp exited with this wgmma not retired by wgmma.wait_group (committed or not)".into(),
                ));
            }
        }
        for (w, line, msg) in msgs {
            self.flagged = false;
            self.wg_finding(w, 0, line, None, msg);
        }
    }
}
