//! The opcode ([`Op`]), grouped by instruction family, and each instruction's register operands
//! ([`Inst::for_each_reg`]). Every family has a lowering file in `parse/` and an execution file
//! in `exec/` of the same name; a new instruction is an [`Op`] variant here, an arm in
//! [`Inst::for_each_reg`], one in `parse/inst.rs`'s dispatch and one in `exec/mod.rs`'s.

use super::{AtomOp, BoolOp, Cmp, FBin, FUn, IBin, IUn, Inst, ShflMode, Space, VoteMode, NOREG};

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

    // ---- block-level synchronization (parse/sync.rs, exec/sync.rs) ----
    /// bar.sync / barrier.sync: id in a, thread count in b (NOREG: whole block). `arrive`: no wait.
    Bar {
        arrive: bool,
    },

    // ---- tensor core (parse/tensor.rs, exec/tensor.rs) ----
    /// mma.sync m16n8k{8,16}, f32 accumulate; the extra operands are d, a, b, c.
    Mma {
        k: u8,
        bf16: bool,
    },

    // ---- control (parse/control.rs, exec/control.rs) ----
    Bra {
        target: u32,
    },
    Exit,
    /// d = the block's instruction clock (`%clock`, `%clock64`, `%globaltimer`)
    Clock,
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
            Op::Ld { .. } | Op::St { .. } | Op::Atom { .. } | Op::Ldmatrix { .. } | Op::CpAsync { .. } => Class::Memory,
            Op::Mma { .. } => Class::Tensor,
            Op::Bra { .. } | Op::Exit => Class::Control,
            Op::Bar { .. }
            | Op::WarpSync
            | Op::Shfl(_)
            | Op::Vote(_)
            | Op::CpCommit
            | Op::CpWait { .. }
            | Op::Redux(_) => Class::Sync,
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
            Op::Nop | Op::Exit | Op::Bra { .. } | Op::CpCommit | Op::CpWait { .. } => {}
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
            Op::CpAsync { .. } => {
                g(self.a, Use);
                g(self.b, Use);
                g(self.c, Use);
            }
            Op::Clock | Op::Activemask => g(self.d, Def),
        }
    }
}
