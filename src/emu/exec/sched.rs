//! Block scheduling: the warps of one block, each lane's PC and the reconvergence rule, and the
//! loop that gives the warps turns until they all exit, with deadlock and livelock detection.
//!
//! Reconvergence rule: every lane has its own PC; a warp executes the instruction at the
//! smallest PC among its live lanes, with exactly the lanes at that PC active. Structured code
//! (if/else, loops, early exits) reconverges because its join points lie at higher addresses
//! than the branches that reach them, and a loop's back edge runs the lanes still looping first.
//! This is a fixed, deterministic schedule: it assumes the kernel does not rely on independent
//! thread scheduling for progress (no intra-warp spin-waits on another lane), and intra-warp
//! memory ordering is that of this lockstep schedule.
//!
//! Turns: warps take turns round-robin in warp order. A warp runs until it blocks (a CTA or named
//! barrier, `mbarrier.try_wait` on an incomplete phase, `barrier.cluster.wait`, `setmaxnreg.inc`
//! without free registers), exits, or yields: at a taken backward branch once its turn has lasted
//! [`QUANTUM`] warp instructions, after a `mbarrier.test_wait` that returned false for some lane,
//! and at `nanosleep`. So a warp spinning on a flag another warp sets (a volatile / relaxed /
//! acquire load or an atomic in a loop) lets that warp run, while straight-line work and long
//! loops still run in long stretches. Every choice depends only on instruction counts, so the
//! schedule (and every result) is the same for any number of worker threads.
//!
//! A `try_wait` on an incomplete phase parks the lanes executing it, not the warp: the warp goes
//! on with its other lanes (nvcc often places the elected thread's TMA issue after the other
//! threads' wait loop, which the lockstep min-PC rule would otherwise never reach), and blocks
//! only when every live lane is parked. Parked lanes execute the `try_wait` again once their
//! mbarrier leaves the phase they waited in (checked at the start of each turn and after the
//! warp's own mbarrier and bulk-copy instructions). A blocked warp resumes when what it waits for
//! happens: a barrier's generation moves on, a parked lane's mbarrier phase completes, the
//! register pool has room. A round in which no warp could run is a deadlock; a block in which no
//! warp made progress for [`LIVELOCK`] warp instructions is a livelock (warps spinning forever).
//! Progress: a store, a weak (plain) load, an atomic that changed memory, a barrier arrival, an
//! mbarrier update or successful wait, a copy, an exit. Both are reported with every warp's
//! state and every barrier's and mbarrier's phase, pending arrivals and transaction count.

use super::super::ir::ConstVal;
use super::async_copy::{BulkRec, CpReq};
use super::lanes::{ix, lanes};
use super::sync::BlockSync;
use super::{err_at, Blk, BlockOut, LaunchCtx, Scratch};
use crate::device::FindingKind;
use crate::error::Result;
use std::collections::VecDeque;

/// A warp yields at a taken backward branch once its turn has lasted this many warp
/// instructions.
pub(super) const QUANTUM: u64 = 1 << 12;

/// Warp instructions without progress by any warp of the block after which it is a livelock
/// (~2-5 s of emulation).
pub(super) const LIVELOCK: u64 = 1 << 24;

/// What a warp is doing between two turns.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum WState {
    Run,
    /// Waiting at CTA barrier `id` until its generation moves past `gen`.
    Bar {
        id: u8,
        gen: u32,
    },
    /// Every live lane is parked in `mbarrier.try_wait` (see [`Warp::parks`]); `slot` and
    /// `phase` are the first park's, for reports.
    Mbar {
        slot: u32,
        phase: u32,
    },
    /// Blocked in `barrier.cluster.wait` until the cluster barrier's generation passes `gen`.
    Cluster {
        gen: u32,
    },
    /// Blocked in `setmaxnreg.inc` until the CTA's register pool has `need` registers.
    Regs {
        need: u32,
    },
    Done,
}

/// One warp's control state (its registers live in [`Scratch`]).
pub(super) struct Warp {
    /// Each lane's PC, valid while not `uniform`.
    pcs: [u32; 32],
    /// The PC of every live lane while `uniform`.
    upc: u32,
    uniform: bool,
    /// Lanes that have not exited.
    pub(super) live: u32,
    /// Lanes parked in `mbarrier.try_wait` (live, not selected to run), and for each group of
    /// them: (lanes, mbarrier slot, the phase they wait to see completed).
    pub(super) parked: u32,
    pub(super) parks: Vec<(u32, u32, u32)>,
    /// Threads of the block in this warp (32 but in a partial last warp).
    pub(super) nthreads: u32,
    pub(super) state: WState,
    /// PTX line of the instruction the warp blocks at (deadlock reports).
    pub(super) wait_line: u32,
    /// cp.async copies not yet committed, and the committed groups, oldest first.
    pub(super) cp_open: Vec<CpReq>,
    pub(super) cp_groups: VecDeque<Vec<CpReq>>,
    /// Bulk (TMA) stores not yet retired by `cp.async.bulk.wait_group`, and each lane's count of
    /// committed bulk async-groups.
    pub(super) bulk: Vec<BulkRec>,
    pub(super) bulk_groups: [u32; 32],
    /// The cluster barrier generation this warp arrived in and has not waited for yet.
    pub(super) cluster_arrived: Option<u32>,
    /// Per-thread registers the warp owns (`setmaxnreg`), 0 when the kernel's count is unknown.
    pub(super) regs: u32,
    /// PCs of the `setmaxnreg` instructions the warp executed (warpgroup consistency).
    pub(super) setmaxnreg: Vec<u32>,
    /// The warp executes a `try_wait` again after it blocked (counted once).
    pub(super) resumed: bool,
}

impl Warp {
    pub(super) fn new() -> Warp {
        Warp {
            pcs: [0; 32],
            upc: 0,
            uniform: true,
            live: 0,
            parked: 0,
            parks: Vec::new(),
            nthreads: 0,
            state: WState::Run,
            wait_line: 0,
            cp_open: Vec::new(),
            cp_groups: VecDeque::new(),
            bulk: Vec::new(),
            bulk_groups: [0; 32],
            cluster_arrived: None,
            regs: 0,
            setmaxnreg: Vec::new(),
            resumed: false,
        }
    }
    /// The PC to execute and the lanes at it (live lanes that are not parked).
    #[inline]
    pub(super) fn select(&mut self) -> (u32, u32) {
        if self.uniform {
            return (self.upc, self.live & !self.parked);
        }
        let run = self.live & !self.parked;
        let mut minpc = u32::MAX;
        lanes!(run, l, {
            minpc = minpc.min(self.pcs[l]);
        });
        let mut act = 0u32;
        lanes!(run, l, {
            if self.pcs[l] == minpc {
                act |= 1 << l;
            }
        });
        if act == self.live {
            self.uniform = true;
            self.upc = minpc;
        }
        (minpc, act)
    }
    #[inline]
    pub(super) fn advance(&mut self, active: u32, to: u32) {
        if self.uniform && active == self.live {
            self.upc = to;
            return;
        }
        if self.uniform {
            let u = self.upc;
            lanes!(self.live, l, {
                self.pcs[l] = u;
            });
            self.uniform = false;
        }
        lanes!(active, l, {
            self.pcs[l] = to;
        });
    }
}

/// Initializes warp `w` of block `ctaid` and its read-only registers.
fn init_warp(l: &LaunchCtx, warp: &mut Warp, r: &mut [u64], w: usize, ctaid: [u32; 3], nw: usize) {
    let k = l.k;
    let n = (l.nthreads - (w as u32 * 32).min(l.nthreads)).min(32);
    warp.nthreads = n;
    warp.live = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
    warp.parked = 0;
    warp.parks.clear();
    warp.uniform = true;
    warp.upc = 0;
    warp.state = WState::Run;
    warp.wait_line = 0;
    warp.cp_open.clear();
    warp.cp_groups.clear();
    warp.bulk.clear();
    warp.bulk_groups = [0; 32];
    warp.cluster_arrived = None;
    warp.regs = l.regs_per_thread.unwrap_or(0);
    warp.setmaxnreg.clear();
    warp.resumed = false;
    let tids: [[u32; 3]; 32] = std::array::from_fn(|lane| {
        let t = w as u32 * 32 + lane as u32;
        [t % l.block[0], (t / l.block[0]) % l.block[1], t / (l.block[0] * l.block[1])]
    });
    for &(reg, cv) in &k.consts {
        if let ConstVal::Imm(v) = cv {
            r[ix(reg, 0)..ix(reg, 0) + 32].fill(v);
            continue;
        }
        for (lane, tid) in tids.iter().enumerate() {
            let lb = 1u64 << lane;
            r[ix(reg, lane)] = match cv {
                ConstVal::Imm(v) => v,
                ConstVal::Tid(d) => tid[d as usize] as u64,
                ConstVal::Ntid(d) => l.block[d as usize] as u64,
                ConstVal::Ctaid(d) => ctaid[d as usize] as u64,
                ConstVal::Nctaid(d) => l.grid[d as usize] as u64,
                ConstVal::LaneId => lane as u64,
                ConstVal::WarpId => w as u64,
                ConstVal::NWarpId => nw as u64,
                ConstVal::LaneMaskEq => lb,
                ConstVal::LaneMaskLt => lb - 1,
                ConstVal::LaneMaskLe => (lb << 1) - 1,
                ConstVal::LaneMaskGt => !((lb << 1) - 1) & 0xffff_ffff,
                ConstVal::LaneMaskGe => !(lb - 1) & 0xffff_ffff,
                ConstVal::Zero => 0,
                ConstVal::ExplicitCluster => k.explicit_cluster as u64,
            };
        }
    }
}

/// Runs block `bid` (linear index, x fastest) to completion.
pub fn run_block(l: &LaunchCtx, bid: u64, s: &mut Scratch) -> Result<BlockOut> {
    let k = l.k;
    let stride = k.nregs as usize * 32;
    let nw = l.nwarps as usize;
    s.regs.resize(stride * nw, 0);
    if s.shared.len() < l.shared_bytes as usize {
        s.shared.resize(l.shared_bytes as usize, 0);
    }
    s.shared[..l.shared_bytes as usize].fill(0);
    if l.sanitize {
        s.shadow.ensure(l.shared_bytes as usize, nw);
        s.asyncs.reset(nw, l.shared_bytes as usize);
    }
    if s.clocks.start_block(nw) {
        // Times started again: stamps of earlier blocks would look recent.
        s.shadow.clear();
        s.shadow.ensure(l.shared_bytes as usize, nw);
    }
    let local_len = k.local_bytes as usize * nw * 32;
    if s.local.len() < local_len {
        s.local.resize(local_len, 0);
    }
    let g = l.grid;
    let ctaid = [
        (bid % g[0] as u64) as u32,
        ((bid / g[0] as u64) % g[1] as u64) as u32,
        (bid / (g[0] as u64 * g[1] as u64)) as u32,
    ];
    s.warps.truncate(nw);
    while s.warps.len() < nw {
        s.warps.push(Warp::new());
    }
    for (w, warp) in s.warps.iter_mut().enumerate() {
        init_warp(l, warp, &mut s.regs[w * stride..(w + 1) * stride], w, ctaid, nw);
    }
    s.wg.reset(l);
    let mut b = Blk {
        l,
        shared: &mut s.shared[..l.shared_bytes as usize],
        shadow: &mut s.shadow,
        asyncs: &mut s.asyncs,
        clocks: &mut s.clocks,
        local: &mut s.local[..],
        words: &mut s.words,
        sectors: &mut s.sectors,
        out: BlockOut::default(),
        ctaid,
        clock: 0,
        turn_start: 0,
        progress: 0,
        sync: BlockSync::new(l.nthreads, l.regs_per_thread.map(|r| r * 32 * l.nwarps)),
        flagged: false,
        atomic: false,
        proxy_read: false,
        last_alloc: std::cell::Cell::new(0),
        wg: &mut s.wg,
    };
    let warps = &mut s.warps;
    let mut stuck: Option<(usize, String)> = None;
    'turns: loop {
        let mut ran = false;
        for w in 0..nw {
            let woken = b.sync.wakes(&warps[w]);
            let warp = &mut warps[w];
            if woken {
                warp.state = WState::Run;
            }
            if warp.parked != 0 && warp.state == WState::Run {
                b.sync.unpark(warp);
            }
            if warp.state != WState::Run {
                continue;
            }
            ran = true;
            b.turn_start = b.clock;
            let r = &mut s.regs[w * stride..(w + 1) * stride];
            b.run_warp(warp, r, w as u32)?;
            if b.clock - b.progress > LIVELOCK {
                let msg = format!(
                    "livelock: no warp made progress in {} warp instructions (warps spinning without \
                     stores, plain loads, atomics that change memory, arrivals or exits); {}",
                    b.clock - b.progress,
                    b.sync.describe(warps)
                );
                stuck = Some((w, msg));
                break 'turns;
            }
        }
        if warps.iter().all(|w| w.state == WState::Done) {
            break;
        }
        // Exited warps no longer count towards whole-CTA barriers.
        if b.release_exited() {
            continue;
        }
        if !ran && !warps.iter().any(|w| b.sync.wakes(w)) {
            let msg = format!("deadlock: no warp can run; {}", b.sync.describe(warps));
            let wi = warps.iter().position(|w| w.state != WState::Done).unwrap_or(0);
            stuck = Some((wi, msg));
            break;
        }
    }
    match stuck {
        // A deadlock or livelock: a finding with the sanitizer on (the block stops there), an
        // error without.
        Some((w, msg)) if !l.sanitize => return Err(err_at(k, warps[w].wait_line, msg)),
        Some((w, msg)) => {
            let lane = warps[w].live.trailing_zeros().min(31) as usize;
            b.finding(FindingKind::Deadlock, w as u32, lane, warps[w].wait_line, None, msg);
        }
        None => {
            b.finish(warps)?;
            b.wg_finish();
        }
    }
    Ok(std::mem::take(&mut b.out))
}

/// How an instruction leaves its warp.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    /// Go on with the next instruction.
    Next,
    /// The executing lanes parked (their PC stays); go on with the warp's other lanes.
    Park,
    /// Move past the instruction and give the other warps a turn.
    Yield,
    /// The warp blocked (its state says on what); the instruction executes again when it wakes.
    Block,
}

impl Blk<'_, '_> {
    /// End-of-block checks: mbarrier transaction counts, and that the warps of each warpgroup
    /// executed the same `setmaxnreg` instructions (PTX ISA 9.7.19.5).
    fn finish(&mut self, warps: &[Warp]) -> Result<()> {
        self.finish_mbarriers()?;
        for (g, group) in warps.chunks(4).enumerate() {
            if group.iter().all(|w| w.setmaxnreg.is_empty()) {
                continue;
            }
            let first = &group[0].setmaxnreg;
            if group.len() < 4 || group.iter().any(|w| &w.setmaxnreg != first) {
                let line =
                    group.iter().find_map(|w| w.setmaxnreg.first()).map_or(0, |&pc| self.l.k.insts[pc as usize].line);
                let seqs: Vec<String> = group
                    .iter()
                    .enumerate()
                    .map(|(j, w)| {
                        let lines: Vec<String> =
                            w.setmaxnreg.iter().map(|&pc| self.l.k.insts[pc as usize].line.to_string()).collect();
                        format!("warp {}: [{}]", 4 * g + j, lines.join(","))
                    })
                    .collect();
                self.violation(
                    FindingKind::RegisterReconfig,
                    4 * g as u32,
                    0,
                    line,
                    None,
                    format!(
                        "the warps of warpgroup {g} did not all execute the same setmaxnreg instructions (PTX lines per warp: {})",
                        seqs.join("; ")
                    ),
                )?;
                self.flagged = false;
            }
        }
        Ok(())
    }
}
