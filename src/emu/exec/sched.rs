//! Block scheduling: the warps of one block, each lane's PC and the reconvergence rule, and the
//! loop that runs each warp until it waits at a barrier or exits, then releases barriers.
//!
//! Reconvergence rule: every lane has its own PC; a warp executes the instruction at the
//! smallest PC among its live lanes, with exactly the lanes at that PC active. Structured code
//! (if/else, loops, early exits) reconverges because its join points lie at higher addresses
//! than the branches that reach them, and a loop's back edge runs the lanes still looping first.
//! This is a fixed, deterministic schedule: it assumes the kernel does not rely on independent
//! thread scheduling for progress (no intra-warp spin-waits on another lane), and intra-warp
//! memory ordering is that of this lockstep schedule.
//!
//! Barriers: each warp runs until it waits at a barrier or exits, then barriers whose arrival
//! count is complete are released ([`super::sync`]); a block where no warp can run and no
//! barrier completes is a deadlock.

use super::super::ir::ConstVal;
use super::async_copy::CpReq;
use super::lanes::{ix, lanes};
use super::sync::CtaBarriers;
use super::{err_at, Blk, BlockOut, LaunchCtx, Scratch};
use crate::device::FindingKind;
use crate::error::Result;
use std::collections::VecDeque;

/// What a warp is doing between two turns of the block loop.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum WState {
    Run,
    /// Waiting at CTA barrier `id`.
    Bar(u32),
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
    /// Threads of the block in this warp (32 but in a partial last warp).
    pub(super) nthreads: u32,
    pub(super) state: WState,
    /// cp.async copies not yet committed, and the committed groups, oldest first.
    pub(super) cp_open: Vec<CpReq>,
    pub(super) cp_groups: VecDeque<Vec<CpReq>>,
}

impl Warp {
    pub(super) fn new() -> Warp {
        Warp {
            pcs: [0; 32],
            upc: 0,
            uniform: true,
            live: 0,
            nthreads: 0,
            state: WState::Run,
            cp_open: Vec::new(),
            cp_groups: VecDeque::new(),
        }
    }
    /// The PC to execute and the lanes at it.
    #[inline]
    pub(super) fn select(&mut self) -> (u32, u32) {
        if self.uniform {
            return (self.upc, self.live);
        }
        let mut minpc = u32::MAX;
        lanes!(self.live, l, {
            minpc = minpc.min(self.pcs[l]);
        });
        let mut act = 0u32;
        lanes!(self.live, l, {
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
        s.shadow.ensure(l.shared_bytes as usize);
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
        let n = (l.nthreads - (w as u32 * 32).min(l.nthreads)).min(32);
        warp.nthreads = n;
        warp.live = if n == 32 { u32::MAX } else { (1u32 << n) - 1 };
        warp.uniform = true;
        warp.upc = 0;
        warp.state = WState::Run;
        warp.cp_open.clear();
        warp.cp_groups.clear();
        let r = &mut s.regs[w * stride..(w + 1) * stride];
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
                };
            }
        }
    }
    s.epoch += 1;
    s.wg.reset(l);
    let mut b = Blk {
        l,
        shared: &mut s.shared[..l.shared_bytes as usize],
        shadow: &mut s.shadow,
        local: &mut s.local[..],
        words: &mut s.words,
        sectors: &mut s.sectors,
        out: BlockOut::default(),
        epoch: s.epoch,
        block_start: s.epoch,
        ctaid,
        clock: 0,
        bars: CtaBarriers::default(),
        flagged: false,
        atomic: false,
        wsync: [0; 32],
        last_alloc: std::cell::Cell::new(0),
        wg: &mut s.wg,
    };
    let warps = &mut s.warps;
    loop {
        for (w, warp) in warps.iter_mut().enumerate() {
            if warp.state == WState::Run {
                let r = &mut s.regs[w * stride..(w + 1) * stride];
                b.run_warp(warp, r, w as u32)?;
            }
        }
        if warps.iter().all(|w| w.state == WState::Done) {
            break;
        }
        // Every warp ran until it waited or exited: release the barriers that are complete.
        let live_threads: u32 = warps.iter().filter(|w| w.state != WState::Done).map(|w| w.nthreads).sum();
        if b.bars.release(warps, live_threads) {
            b.epoch += 1;
            continue;
        }
        // No warp can run and no barrier completed: the block is stuck.
        let (wi, id) = warps
            .iter()
            .enumerate()
            .find_map(|(i, w)| if let WState::Bar(id) = w.state { Some((i, id)) } else { None })
            .unwrap_or((0, 0));
        let (arrived, expected) = b.bars.count(id, live_threads);
        let msg = format!(
            "deadlock: warp {wi} waits at barrier {id} ({arrived} of {expected} threads arrived) and no other warp can run"
        );
        if l.sanitize {
            let pc = warps[wi].select().0.saturating_sub(1) as usize;
            let line = k.insts.get(pc).map_or(0, |i| i.line);
            b.finding(
                FindingKind::BarrierDivergence,
                wi as u32,
                warps[wi].live.trailing_zeros() as usize,
                line,
                None,
                msg,
            );
            break;
        }
        return Err(err_at(k, 0, msg));
    }
    b.wg_finish();
    s.epoch = b.epoch;
    Ok(b.out)
}
