//! Executes one block of a lowered kernel: warps of 32 lanes run together under an active mask,
//! one warp instruction at a time.
//!
//! - this file: the launch and block state, findings, and [`Blk::run_warp`], the dispatcher: one
//!   `match` on the instruction's [`Op`] that calls the family's `#[inline(always)]` function;
//! - [`sched`]: the warps of a block, reconvergence, turns (yields, blocking), deadlock and
//!   livelock detection;
//! - families: [`alu`] (integer, bits, compare, move), [`float`] (float arithmetic, conversions,
//!   exact rounding), [`memory`] (address resolution, ld/st, atomics, cvta), [`async_copy`]
//!   (cp.async and its groups, bulk and tensor copies, mapa), [`matrix`] (ldmatrix, stmatrix),
//!   [`warp`] (shfl, vote, redux, match, elect, warp sync, member masks), [`sync`] (CTA, named and
//!   cluster barriers, fences, what wakes a blocked warp), [`mbarrier`] (mbarrier objects),
//!   [`tensor`] (mma), [`wgmma`] (wgmma and its descriptors) with [`wgmma_check`] (its sanitizer
//!   rules), [`wmma`] (wmma load, store and mma), [`control`] (branch, exit, trap, clock,
//!   setmaxnreg);
//! - [`lanes`]: the structure-of-arrays register file and the per-lane loops.

mod alu;
mod async_copy;
mod control;
mod float;
mod lanes;
mod matrix;
mod mbarrier;
mod memory;
mod sched;
mod sync;
mod tensor;
mod warp;
mod wgmma;
mod wgmma_check;
mod wmma;

pub use sched::run_block;
pub use wgmma::{fp8_error_bound, MatDesc};

use super::clocks::Clocks;
use super::ir::*;
use super::memory::Alloc;
use super::sanitizer::{AsyncShadow, SharedShadow};
use crate::device::{Counters, Finding, FindingKind};
use crate::error::{Error, Result};
use lanes::{ix, lanes};
use sched::{Flow, Warp, QUANTUM};
use std::sync::{Arc, Mutex};
use sync::BlockSync;
use wgmma_check::WgState;

/// Findings kept per block (all are counted).
pub const FINDINGS_PER_BLOCK: usize = 32;

/// One launch, shared (read-only) by the workers running its blocks.
pub struct LaunchCtx<'a> {
    pub k: &'a Kernel,
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub nthreads: u32,
    pub nwarps: u32,
    pub shared_bytes: u32,
    pub params: Vec<u8>,
    pub mem: Vec<Arc<Alloc>>,
    pub sanitize: bool,
    pub counters: bool,
    pub atomic64: &'a Mutex<()>,
    /// Per-thread registers of the kernel (ptxas), when known: the CTA's `setmaxnreg` pool.
    pub regs_per_thread: Option<u32>,
}

/// What one block produced: its counters and findings.
#[derive(Default)]
pub struct BlockOut {
    pub counters: Counters,
    pub findings: Vec<Finding>,
    pub findings_total: u64,
}

/// Per-worker reusable buffers (no allocation per block once warmed up).
#[derive(Default)]
pub struct Scratch {
    regs: Vec<u64>,
    shared: Vec<u8>,
    shadow: SharedShadow,
    asyncs: AsyncShadow,
    /// Racecheck's vector clocks (their times keep increasing across this worker's blocks).
    clocks: Clocks,
    local: Vec<u8>,
    warps: Vec<Warp>,
    words: Vec<u32>,
    sectors: Vec<u64>,
    wg: WgState,
}

/// One block in execution: its memories, barriers and per-instruction bookkeeping.
struct Blk<'a, 's> {
    l: &'a LaunchCtx<'a>,
    shared: &'s mut [u8],
    shadow: &'s mut SharedShadow,
    asyncs: &'s mut AsyncShadow,
    clocks: &'s mut Clocks,
    local: &'s mut [u8],
    /// Shared-memory words of the current warp request (bank model).
    words: &'s mut Vec<u32>,
    /// Global 32-byte sectors of the current warp request.
    sectors: &'s mut Vec<u64>,
    out: BlockOut,
    ctaid: [u32; 3],
    /// Warp instructions executed so far (`%clock`).
    clock: u64,
    /// `clock` when the current warp's turn began, and at the last progress (see [`sched`]).
    turn_start: u64,
    progress: u64,
    sync: BlockSync,
    /// Sanitizer: one finding per warp instruction.
    flagged: bool,
    /// Index of the allocation the last global access hit (most accesses hit the same one).
    last_alloc: std::cell::Cell<usize>,
    /// The current access is an atomic or strong: those do not race with each other (and
    /// release / acquire for racecheck).
    atomic: bool,
    /// The current shared read is by the async proxy (a wgmma operand): the bytes' generic
    /// writers need a `fence.proxy.async` ordered before it.
    proxy_read: bool,
    /// wgmma: the sanitizer's in-flight state and the executor's operand scratch.
    wg: &'s mut WgState,
}

impl Blk<'_, '_> {
    /// Applies an instruction's [`Flow`]: moves the warp past it unless it blocked; whether the
    /// warp's turn ends.
    #[inline(always)]
    fn flow(&mut self, warp: &mut Warp, f: Flow, active: u32, pc: u32) -> bool {
        match f {
            Flow::Next => {
                warp.advance(active, pc + 1);
                false
            }
            Flow::Yield => {
                warp.advance(active, pc + 1);
                true
            }
            Flow::Park => false,
            Flow::Block => true,
        }
    }
}

fn err_at(k: &Kernel, line: u32, msg: impl std::fmt::Display) -> Error {
    Error::Emu(format!("{} (kernel {}, PTX line {line})", msg, k.name))
}

impl Blk<'_, '_> {
    fn thread(&self, w: u32, lane: usize) -> [u32; 3] {
        let t = w * 32 + lane as u32;
        let bd = self.l.block;
        [t % bd[0], (t / bd[0]) % bd[1], t / (bd[0] * bd[1])]
    }

    fn finding(&mut self, kind: FindingKind, w: u32, lane: usize, line: u32, addr: Option<u64>, message: String) {
        self.out.findings_total += 1;
        if self.out.findings.len() < FINDINGS_PER_BLOCK {
            let thread = self.thread(w, lane);
            self.out.findings.push(Finding {
                kind,
                kernel: self.l.k.name.clone(),
                block: self.ctaid,
                thread,
                ptx_line: line,
                address: addr,
                message,
            });
        }
    }

    /// Runs warp `w` until it blocks, exits or yields ([`sched`]): the guard, the counters, then
    /// one `match` on the opcode calling the instruction's family.
    fn run_warp(&mut self, warp: &mut Warp, r: &mut [u64], w: u32) -> Result<()> {
        let l = self.l;
        let k = l.k;
        let insts = &k.insts[..];
        // wgmma fragment registers, for the sanitizer's register rules (wgmma kernels only).
        let wg = if l.sanitize { k.wg.as_deref() } else { None };
        loop {
            let (pc, active) = warp.select();
            let i = &insts[pc as usize];
            self.clock += 1;
            self.flagged = false;
            let mut m = active;
            if i.guard != NOREG {
                let mut pm = 0u32;
                lanes!(active, lane, {
                    if ((r[ix(i.guard, lane)] & 1) != 0) != i.guard_neg {
                        pm |= 1 << lane;
                    }
                });
                m = pm;
            }
            if l.counters {
                let n = m.count_ones() as u64;
                let c = &mut self.out.counters;
                c.warp_instructions += 1;
                match i.op.class() {
                    Class::Arith => c.inst_arith += n,
                    Class::Memory => c.inst_memory += n,
                    Class::Tensor => c.inst_tensor += n,
                    Class::Control => c.inst_control += n,
                    Class::Sync => c.inst_sync += n,
                }
            }
            if let Some(info) = wg {
                let p = pc as usize;
                if m != 0 && info.start[p] != info.start[p + 1] && !matches!(i.op, Op::Wgmma(_)) {
                    self.wg_touch(info, p, w, m, i.line);
                }
            }
            match i.op {
                // Integer ALU, compare, move.
                Op::Nop => {}
                Op::Mov => alu::mov(r, m, i),
                Op::Pack => alu::pack(r, m, i, i.ext_regs(&k.ext)),
                Op::Unpack => alu::unpack(r, m, i, i.ext_regs(&k.ext)),
                Op::IBin(op) => alu::binary(r, m, i, op),
                Op::IMad(op) => alu::mad(r, m, i, op),
                Op::IUn(op) => alu::unary(r, m, i, op),
                Op::Bfe => alu::bfe(r, m, i),
                Op::Bfi => alu::bfi(r, m, i),
                Op::Prmt => alu::prmt(r, m, i),
                Op::Lop3(lut) => alu::lop3(r, m, i, lut),
                Op::Shf { left, clamp } => alu::shf(r, m, i, left, clamp),
                Op::Setp(c, bop) => alu::setp(r, m, i, c, bop),
                Op::Set(c) => alu::set(r, m, i, c),
                Op::Selp => alu::selp(r, m, i),
                // Floating point and conversion.
                Op::FBin(op) => float::binary(r, m, i, op),
                Op::Fma => float::fma(r, m, i),
                Op::FUn(op) => float::unary(r, m, i, op),
                Op::Cvt { relu } => float::convert(r, m, i, relu),
                Op::CvtPack { relu } => float::cvt_pack(r, m, i, relu),
                // Memory.
                Op::Cvta { to, space } => memory::cvta(r, m, i, to, space),
                Op::Ld { space, vec } | Op::St { space, vec } => self.ld_st(r, m, i, space, vec, w)?,
                Op::Atom { space, op } => self.atom(r, m, i, space, op, w)?,
                Op::CpAsync { size } => self.cp_async(warp, r, m, i, size, w)?,
                Op::CpCommit => self.cp_commit(warp),
                Op::CpWait { n, all } => self.cp_wait(warp, n, all, w),
                Op::Ldmatrix { num, trans } => {
                    self.ldmatrix(r, m, i, num, trans, warp.live, w)?;
                    self.progress = self.clock;
                }
                Op::Stmatrix { num, trans, generic } => {
                    self.stmatrix(r, m, i, (num, trans, generic), warp.live, w)?;
                    self.progress = self.clock;
                }
                Op::Bulk(op) => {
                    self.bulk(warp, r, m, i, op, w)?;
                    if warp.parked != 0 {
                        self.sync.unpark(warp);
                    }
                }
                Op::Mapa => self.mapa(r, m, i)?,
                // Warp-level collectives.
                Op::Shfl(mode) => self.shfl(r, m, i, mode, warp.live, w),
                Op::Vote(mode) => self.vote(r, m, i, mode, warp.live, w),
                Op::Redux(op) => self.redux(r, m, i, op, warp.live, w),
                Op::Activemask => warp::activemask(r, m, i, active),
                Op::WarpSync => self.warp_sync(r, m, i, warp.live, w),
                Op::Match { all } => self.match_sync(r, m, i, all, warp.live, w),
                Op::Elect => self.elect(r, m, i, warp.live, w),
                // Block-level synchronization: a waiting warp yields to the block loop.
                Op::Bar { arrive } => {
                    let wait = self.bar(warp, r, m, i, arrive, w)?;
                    warp.advance(active, pc + 1);
                    if wait {
                        return Ok(());
                    }
                    continue;
                }
                Op::Mbar(op) => {
                    let f = self.mbar(warp, r, m, i, op, w)?;
                    if warp.parked != 0 && f != Flow::Park {
                        self.sync.unpark(warp);
                    }
                    if self.flow(warp, f, active, pc) {
                        return Ok(());
                    }
                    continue;
                }
                Op::BarCluster { wait } => {
                    let f = self.bar_cluster(warp, m, i, wait, w)?;
                    if self.flow(warp, f, active, pc) {
                        return Ok(());
                    }
                    continue;
                }
                Op::Fence(kind) => self.fence(m, kind, w),
                // Tensor core.
                Op::Mma { k: kk, bf16 } => self.mma(r, m, i, kk, bf16, warp.live, w),
                // Warp matrix multiply-accumulate.
                Op::WmmaLoad { frag, shape, col, space } => {
                    self.wmma_load(r, m, i, frag, shape, col, space, warp.live, w)?;
                    self.progress = self.clock;
                }
                Op::WmmaStore { shape, col, space } => {
                    self.wmma_store(r, m, i, shape, col, space, warp.live, w)?;
                    self.progress = self.clock;
                }
                Op::WmmaMma { shape, c_f32 } => self.wmma_mma(r, m, i, shape, c_f32, warp.live, w),
                Op::Wgmma(cfg) => {
                    self.wgmma(r, m, i, cfg, warp.live, w, pc)?;
                    self.progress = self.clock;
                }
                Op::WgFence => self.wg_fence(w, i.line),
                Op::WgCommit => self.wg_commit(w),
                Op::WgWait { n } => self.wg_wait(w, n),
                // Control: these move the PCs themselves.
                Op::Bra { target } => {
                    control::bra(warp, pc, active, m, target);
                    // A taken backward branch ends a turn that has lasted a quantum.
                    if target <= pc && m != 0 && self.clock - self.turn_start >= QUANTUM {
                        warp.wait_line = i.line;
                        return Ok(());
                    }
                    continue;
                }
                Op::Exit => {
                    if self.exit(warp, pc, active, m, w) {
                        return Ok(());
                    }
                    continue;
                }
                Op::Clock => control::clock(r, m, i, self.clock),
                Op::Trap { assert } => {
                    if m != 0 {
                        return Err(self.trap(r, m, i, assert, w));
                    }
                }
                Op::Nanosleep => {
                    warp.advance(active, pc + 1);
                    if m != 0 {
                        warp.wait_line = i.line;
                        return Ok(());
                    }
                    continue;
                }
                Op::SetMaxNReg { inc, count } => {
                    let f = self.setmaxnreg(warp, m, i, pc, inc, count, w)?;
                    if self.flow(warp, f, active, pc) {
                        return Ok(());
                    }
                    continue;
                }
            }
            warp.advance(active, pc + 1);
        }
    }
}
