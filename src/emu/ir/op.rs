//! The opcode ([`Op`]), grouped by instruction family, and each instruction's register operands
//! ([`Inst::for_each_reg`]). Every family has a lowering file in `parse/` and an execution file
//! in `exec/` of the same name; a new instruction is an [`Op`] variant here, an arm in
//! [`Inst::for_each_reg`], one in `parse/inst.rs`'s dispatch and one in `exec/mod.rs`'s.

use super::{
    AtomOp, BoolOp, BulkOp, Cmp, FBin, FUn, FenceKind, IBin, IUn, Inst, MbarOp, ShflMode, Space, VoteMode, WmmaFrag,
    WmmaShape, NOREG,
};
use std::sync::Arc;

/// What an instruction does. One flat enum, so that the executor dispatches with one `match`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    // ---- integer ALU, compare and move (parse/alu.rs, exec/alu.rs) ----
    Nop,
    /// d = a, masked to the type's width.
    Mov,
    /// d = concatenation of the extra operands' pieces of `ty` bits, lowest first.
    Pack,
    /// The extra operands = pieces of a, lowest first.
    Unpack,
    IBin(IBin),
    /// mad.lo / mad.hi / mad.wide: d = (a*b).part + c
    IMad(IBin),
    IUn(IUn),
    /// bfe d, a, pos=b, len=c
    Bfe,
    /// bfi d, a(insert), b(base), pos=c, len=e
    Bfi,
    Prmt,
    Lop3(u8),
    /// shf.l / shf.r, clamp or wrap
    Shf {
        left: bool,
        clamp: bool,
    },
    /// setp: d = cmp(a, b) bop c; d2 = !cmp(a,b) bop c
    Setp(Cmp, BoolOp),
    /// set: d = cmp(a, b) ? (int: all ones, float: 1.0) : 0, type of d in `ty2`
    Set(Cmp),
    /// d = c ? a : b
    Selp,

    // ---- floating point and conversion (parse/float.rs, exec/float.rs) ----
    FBin(FBin),
    /// fma / mad.f32: d = a*b + c
    Fma,
    FUn(FUn),
    /// cvt: d (ty) = a (ty2)
    Cvt {
        relu: bool,
    },
    /// cvt.{rn}.{bf16x2,f16x2}.f32 d, a, b: a in the upper half.
    CvtPack {
        relu: bool,
    },

    // ---- memory (parse/memory.rs; exec/memory.rs, exec/async_copy.rs, exec/matrix.rs) ----
    Cvta {
        to: bool,
        space: Space,
    },
    /// ld: d (or the extra operands, `vec` > 1) = [a+imm]
    Ld {
        space: Space,
        vec: u8,
    },
    /// st: [a+imm] = b (or the extra operands, `vec` > 1)
    St {
        space: Space,
        vec: u8,
    },
    /// atom (d != NOREG) / red: [a+imm] op= b (cas: compare b, new c)
    Atom {
        space: Space,
        op: AtomOp,
    },
    /// cp.async [a+imm] <- [b+imm2], size bytes, src-size in c (NOREG: size).
    CpAsync {
        size: u8,
    },
    CpCommit,
    /// cp.async.wait_group n (wait_all: n = 0 and also completes uncommitted copies).
    CpWait {
        n: u32,
        all: bool,
    },
    /// ldmatrix m8n8 .x{1,2,4} {.trans} [a+imm]: the extra operands are the destinations.
    Ldmatrix {
        num: u8,
        trans: bool,
    },
    /// Bulk and tensor (TMA) copies, their groups and tensor-map prefetch (exec/async_copy.rs).
    Bulk(BulkOp),
    /// mapa: d = the address a in the shared memory of cluster CTA b (clusters of one CTA).
    Mapa,
    /// stmatrix m8n8 .x{1,2,4} {.trans} [a+imm]: the extra operands are the sources; `generic`:
    /// no `.shared`, the address is generic (and must point into shared memory).
    Stmatrix {
        num: u8,
        trans: bool,
        generic: bool,
    },

    // ---- warp-level collectives (parse/warp.rs, exec/warp.rs) ----
    /// shfl.sync d|d2, a (value), b (lane or offset), c (clamp and segment mask), e (members)
    Shfl(ShflMode),
    /// vote.sync d, a (predicate, negated by `pneg`), e (members)
    Vote(VoteMode),
    /// redux.sync.op d, a, e (members): d = reduce(a) over the members
    Redux(AtomOp),
    /// d = mask of the lanes executing this instruction
    Activemask,
    /// bar.warp.sync mask(a)
    WarpSync,
    /// match.any.sync / match.all.sync d|d2, a (value), e (members)
    Match {
        all: bool,
    },
    /// elect.sync d|d2, e (members): d = the leader's lane, d2 = (lane == leader)
    Elect,

    // ---- block-level synchronization (parse/sync.rs, exec/sync.rs) ----
    /// bar.sync / barrier.sync: id in a, thread count in b (NOREG: whole block). `arrive`: no wait.
    Bar {
        arrive: bool,
    },
    /// mbarrier operations (exec/sync.rs).
    Mbar(MbarOp),
    /// barrier.cluster.arrive / barrier.cluster.wait (clusters of one CTA).
    BarCluster {
        wait: bool,
    },
    /// membar / fence.* (kept for the sanitizer).
    Fence(FenceKind),

    // ---- tensor core (parse/tensor.rs, exec/tensor.rs) ----
    /// mma.sync m16n8k{8,16}, f32 accumulate; the extra operands are d, a, b, c.
    Mma {
        k: u8,
        bf16: bool,
    },

    // ---- warpgroup tensor core (parse/tensor.rs, exec/wgmma.rs) ----
    /// wgmma.mma_async: the extra operands are the D fragment, then the four A registers when
    /// A is in registers; a = A descriptor (NOREG with A in registers), b = B descriptor,
    /// c = scale-d predicate.
    Wgmma(WgmmaCfg),
    WgFence,
    WgCommit,
    /// wgmma.wait_group n
    WgWait {
        n: u32,
    },

    // ---- warp matrix multiply-accumulate (parse/wmma.rs, exec/wmma.rs) ----
    /// wmma.load.{a,b,c} [a+imm], stride b (NOREG: the default): the extra operands are the
    /// fragment; element type `ty`.
    WmmaLoad {
        frag: WmmaFrag,
        shape: WmmaShape,
        col: bool,
        space: Space,
    },
    /// wmma.store.d [a+imm], fragment (the extra operands), stride b (NOREG: the default).
    WmmaStore {
        shape: WmmaShape,
        col: bool,
        space: Space,
    },
    /// wmma.mma: the extra operands are the d, a, b and c fragments; `ty` is the type of a and b
    /// (f16 or bf16), `ty2` of d; `c_f32` the type of c.
    WmmaMma {
        shape: WmmaShape,
        c_f32: bool,
    },

    // ---- control (parse/control.rs, exec/control.rs) ----
    Bra {
        target: u32,
    },
    Exit,
    /// d = the block's instruction clock (`%clock`, `%clock64`, `%globaltimer`)
    Clock,
    /// trap, or a failed `assert` (`__assertfail`: message a, file b, line c, function e).
    Trap {
        assert: bool,
    },
    /// nanosleep: the warp yields to the other warps of its block.
    Nanosleep,
    /// setmaxnreg.{inc,dec}.sync.aligned.u32 count
    SetMaxNReg {
        inc: bool,
        count: u16,
    },
}

/// How an instruction is counted (Nsight-style classes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Arith,
    Memory,
    Tensor,
    Control,
    Sync,
}

impl Op {
    pub fn class(&self) -> Class {
        match self {
            Op::Ld { .. }
            | Op::St { .. }
            | Op::Atom { .. }
            | Op::Ldmatrix { .. }
            | Op::Stmatrix { .. }
            | Op::CpAsync { .. }
            | Op::WmmaLoad { .. }
            | Op::WmmaStore { .. }
            | Op::Bulk(_) => Class::Memory,
            Op::Mma { .. } | Op::Wgmma(_) | Op::WmmaMma { .. } => Class::Tensor,
            Op::Bra { .. } | Op::Exit | Op::Trap { .. } => Class::Control,
            Op::Bar { .. }
            | Op::WarpSync
            | Op::Shfl(_)
            | Op::Vote(_)
            | Op::CpCommit
            | Op::CpWait { .. }
            | Op::Redux(_)
            | Op::Mbar(_)
            | Op::BarCluster { .. }
            | Op::Fence(_)
            | Op::Elect
            | Op::SetMaxNReg { .. }
            | Op::WgFence
            | Op::WgCommit
            | Op::WgWait { .. }
            | Op::Match { .. } => Class::Sync,
            _ => Class::Arith,
        }
    }
}

/// How an instruction touches one of its register operands (see [`Inst::for_each_reg`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read by the executing lane (or, for warp collectives, by the participating lanes).
    Use,
    /// Written by the executing lane. A guarded instruction's writes leave the old value in
    /// lanes whose guard is false; register allocation treats those as use + def.
    Def,
}

impl Inst {
    /// Calls `f` for every register operand of this instruction (NOREG skipped), with whether the
    /// executor reads or writes it. Register allocation derives liveness from this alone, so a
    /// missing operand here would let another value overwrite a live one: the match is exhaustive
    /// on purpose (no wildcard), so adding an [`Op`] forces deciding its operands here.
    /// `ext` is the kernel's [`Kernel::ext`].
    pub fn for_each_reg(&self, ext: &[u32], mut f: impl FnMut(u32, Access)) {
        let mut g = |r: u32, a: Access| {
            if r != NOREG {
                f(r, a)
            }
        };
        use Access::{Def, Use};
        let xs = self.ext_regs(ext);
        g(self.guard, Use);
        match self.op {
            Op::Nop
            | Op::Exit
            | Op::Bra { .. }
            | Op::CpCommit
            | Op::CpWait { .. }
            | Op::BarCluster { .. }
            | Op::Fence(_)
            | Op::Nanosleep
            | Op::SetMaxNReg { .. }
            | Op::WgFence
            | Op::WgCommit
            | Op::WgWait { .. } => {}
            Op::Mov | Op::IUn(_) | Op::FUn(_) | Op::Cvt { .. } | Op::Cvta { .. } => {
                g(self.a, Use);
                g(self.d, Def);
            }
            Op::IBin(_) | Op::FBin(_) | Op::Set(_) | Op::CvtPack { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.d, Def);
            }
            Op::IMad(_) | Op::Bfe | Op::Prmt | Op::Lop3(_) | Op::Shf { .. } | Op::Fma | Op::Selp => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.d, Def);
            }
            Op::Bfi => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.e, Use);
                g(self.d, Def);
            }
            Op::Setp(..) => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.d, Def);
                g(self.d2, Def);
            }
            Op::Pack => {
                xs.iter().for_each(|&r| g(r, Use));
                g(self.d, Def);
            }
            Op::Unpack => {
                g(self.a, Use);
                xs.iter().for_each(|&r| g(r, Def));
            }
            Op::Ld { vec, .. } => {
                g(self.a, Use);
                if vec == 1 {
                    g(self.d, Def);
                } else {
                    xs.iter().for_each(|&r| g(r, Def));
                }
            }
            Op::St { vec, .. } => {
                g(self.a, Use);
                if vec == 1 {
                    g(self.b, Use);
                } else {
                    xs.iter().for_each(|&r| g(r, Use));
                }
            }
            Op::Atom { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.d, Def);
            }
            Op::Bar { .. } => {
                g(self.a, Use);
                g(self.b, Use);
            }
            Op::WarpSync => g(self.a, Use),
            Op::Shfl(_) => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.e, Use);
                g(self.d, Def);
                g(self.d2, Def);
            }
            Op::Vote(_) | Op::Redux(_) => {
                g(self.a, Use);
                g(self.e, Use);
                g(self.d, Def);
            }
            Op::Match { .. } => {
                g(self.a, Use);
                g(self.e, Use);
                g(self.d, Def);
                g(self.d2, Def);
            }
            Op::WmmaLoad { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                xs.iter().for_each(|&r| g(r, Def));
            }
            Op::WmmaStore { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                xs.iter().for_each(|&r| g(r, Use));
            }
            Op::WmmaMma { shape, .. } => {
                // ext: the d fragment, then a, b and c (all read).
                let nd = super::wmma_regs(WmmaFrag::D, shape, self.ty2);
                let (d, src) = xs.split_at(nd.min(xs.len()));
                src.iter().for_each(|&r| g(r, Use));
                d.iter().for_each(|&r| g(r, Def));
            }
            Op::Trap { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.e, Use);
            }
            Op::Mma { .. } => {
                // ext: 4 destinations, then the a, b and c fragments (all read).
                let (d, src) = xs.split_at(xs.len().min(4));
                src.iter().for_each(|&r| g(r, Use));
                d.iter().for_each(|&r| g(r, Def));
            }
            Op::Ldmatrix { .. } => {
                g(self.a, Use);
                xs.iter().for_each(|&r| g(r, Def));
            }
            Op::Stmatrix { .. } => {
                g(self.a, Use);
                xs.iter().for_each(|&r| g(r, Use));
            }
            Op::Wgmma(cfg) => {
                // Executed at issue (see exec/wgmma.rs): D is read (scale-d) and written there.
                let nd = cfg.d_regs() as usize;
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                xs[nd.min(xs.len())..].iter().for_each(|&r| g(r, Use));
                xs[..nd.min(xs.len())].iter().for_each(|&r| {
                    g(r, Use);
                    g(r, Def);
                });
            }
            Op::CpAsync { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
            }
            Op::Clock | Op::Activemask => g(self.d, Def),
            Op::Mbar(_) => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.d, Def);
            }
            Op::Bulk(_) => {
                // a, b, c, e: addresses, size, mbarrier; d2: multicast mask; ext: coordinates.
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
                g(self.e, Use);
                g(self.d2, Use);
                xs.iter().for_each(|&r| g(r, Use));
            }
            Op::Mapa => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.d, Def);
            }
            Op::Elect => {
                g(self.e, Use);
                g(self.d, Def);
                g(self.d2, Def);
            }
        }
    }
}

/// Element type of a wgmma operand.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WgElem {
    Bf16,
    F16,
    E4m3,
    E5m2,
}

impl WgElem {
    pub fn bytes(self) -> u32 {
        match self {
            WgElem::Bf16 | WgElem::F16 => 2,
            WgElem::E4m3 | WgElem::E5m2 => 1,
        }
    }
    fn code(self) -> u32 {
        self as u32
    }
    fn from_code(c: u32) -> WgElem {
        match c & 3 {
            0 => WgElem::Bf16,
            1 => WgElem::F16,
            2 => WgElem::E4m3,
            _ => WgElem::E5m2,
        }
    }
}

/// The static part of a `wgmma.mma_async` (shape, types, immediates), packed into 32 bits so that
/// [`Op`] stays small: bits 0..6 N/8, 6..8 A type, 8..10 B type, 10 f16 accumulator, 11 A in
/// registers, 12/13 imm-scale-a/b = -1, 14/15 imm-trans-a/b = 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WgmmaCfg(pub u32);

impl WgmmaCfg {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        n: u32,
        at: WgElem,
        bt: WgElem,
        f16_acc: bool,
        a_regs: bool,
        neg_a: bool,
        neg_b: bool,
        tnsp_a: bool,
        tnsp_b: bool,
    ) -> WgmmaCfg {
        WgmmaCfg(
            (n / 8)
                | at.code() << 6
                | bt.code() << 8
                | (f16_acc as u32) << 10
                | (a_regs as u32) << 11
                | (neg_a as u32) << 12
                | (neg_b as u32) << 13
                | (tnsp_a as u32) << 14
                | (tnsp_b as u32) << 15,
        )
    }
    pub fn n(self) -> u32 {
        (self.0 & 63) * 8
    }
    pub fn a_type(self) -> WgElem {
        WgElem::from_code(self.0 >> 6)
    }
    pub fn b_type(self) -> WgElem {
        WgElem::from_code(self.0 >> 8)
    }
    /// K of one instruction: 32 bytes of each operand row (k16 for 16-bit types, k32 for fp8).
    pub fn k(self) -> u32 {
        32 / self.a_type().bytes()
    }
    pub fn f16_acc(self) -> bool {
        self.0 >> 10 & 1 != 0
    }
    pub fn a_regs(self) -> bool {
        self.0 >> 11 & 1 != 0
    }
    pub fn neg_a(self) -> bool {
        self.0 >> 12 & 1 != 0
    }
    pub fn neg_b(self) -> bool {
        self.0 >> 13 & 1 != 0
    }
    /// A is MN-major (imm-trans-a = 1).
    pub fn tnsp_a(self) -> bool {
        self.0 >> 14 & 1 != 0
    }
    /// B is MN-major (imm-trans-b = 1).
    pub fn tnsp_b(self) -> bool {
        self.0 >> 15 & 1 != 0
    }
    /// Registers of the D fragment per thread: N/2 f32, or N/4 f16x2.
    pub fn d_regs(self) -> u32 {
        if self.f16_acc() {
            self.n() / 4
        } else {
            self.n() / 2
        }
    }
    /// The shape and types: two wgmmas chaining on one accumulator must agree on these.
    pub fn shape(self) -> u32 {
        self.0 & 0x7ff
    }
}

/// What the sanitizer needs to check wgmma's register rules by virtual register (register
/// allocation lets values whose live ranges do not overlap share a slot, so slots cannot tell a
/// wgmma fragment from a later value that reuses its slot). Built by `regalloc::allocate` from the
/// unallocated kernel when it has a wgmma.
#[derive(Debug, Clone, Default)]
pub struct WgInfo {
    /// Virtual registers that are a wgmma D or register-A fragment somewhere, numbered 0..nregs.
    pub nregs: u32,
    /// Per instruction, `regs[start[p]..start[p + 1]]`: for a wgmma its D then A registers, for
    /// any other instruction the fragment registers it reads or writes.
    pub start: Vec<u32>,
    pub regs: Vec<u32>,
}

impl WgInfo {
    #[inline(always)]
    pub fn regs_of(&self, pc: usize) -> &[u32] {
        &self.regs[self.start[pc] as usize..self.start[pc + 1] as usize]
    }
}

/// Shared handle on a kernel's [`WgInfo`].
pub type WgInfoRef = Option<Arc<WgInfo>>;
