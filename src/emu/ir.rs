//! The lowered form of a PTX kernel: instructions with resolved register indices, decoded types
//! and modifiers, and branch targets as instruction indices. Execution does no string work.
//!
//! Every operand is a register index: immediates, symbol addresses and special registers are
//! given their own read-only registers, initialized when a warp starts (see [`ConstVal`]), so
//! that the executor reads all sources the same way.

/// "No register" marker (absent operand, unguarded instruction).
pub const NOREG: u32 = u32::MAX;

/// Address windows of the generic address space. Global allocations live below `CONST_WINDOW`;
/// the other state spaces are mapped into generic space at these bases (cvta adds/subtracts them).
pub const CONST_WINDOW: u64 = 0x7b00_0000_0000;
pub const LOCAL_WINDOW: u64 = 0x7c00_0000_0000;
pub const SHARED_WINDOW: u64 = 0x7d00_0000_0000;
pub const PARAM_WINDOW: u64 = 0x7e00_0000_0000;
pub const WINDOW_SIZE: u64 = 0x0100_0000_0000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    B8,
    B16,
    B32,
    B64,
    U8,
    U16,
    U32,
    U64,
    S8,
    S16,
    S32,
    S64,
    F16,
    F16x2,
    Bf16,
    Bf16x2,
    F32,
    F64,
    Pred,
}

impl Ty {
    pub fn parse(s: &str) -> Option<Ty> {
        Some(match s {
            "b8" => Ty::B8,
            "b16" => Ty::B16,
            "b32" => Ty::B32,
            "b64" => Ty::B64,
            "u8" => Ty::U8,
            "u16" => Ty::U16,
            "u32" => Ty::U32,
            "u64" => Ty::U64,
            "s8" => Ty::S8,
            "s16" => Ty::S16,
            "s32" => Ty::S32,
            "s64" => Ty::S64,
            "f16" => Ty::F16,
            "f16x2" => Ty::F16x2,
            "bf16" => Ty::Bf16,
            "bf16x2" => Ty::Bf16x2,
            "f32" => Ty::F32,
            "f64" => Ty::F64,
            "pred" => Ty::Pred,
            _ => return None,
        })
    }
    pub fn bits(self) -> u32 {
        match self {
            Ty::B8 | Ty::U8 | Ty::S8 => 8,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::Bf16 => 16,
            Ty::B32 | Ty::U32 | Ty::S32 | Ty::F32 | Ty::F16x2 | Ty::Bf16x2 => 32,
            Ty::B64 | Ty::U64 | Ty::S64 | Ty::F64 => 64,
            Ty::Pred => 1,
        }
    }
    pub fn bytes(self) -> u32 {
        self.bits().div_ceil(8)
    }
    pub fn signed(self) -> bool {
        matches!(self, Ty::S8 | Ty::S16 | Ty::S32 | Ty::S64)
    }
    pub fn is_float(self) -> bool {
        matches!(self, Ty::F16 | Ty::Bf16 | Ty::F32 | Ty::F64 | Ty::F16x2 | Ty::Bf16x2)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Space {
    Global,
    Shared,
    Local,
    Param,
    Const,
    Generic,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cmp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Lo,
    Ls,
    Hi,
    Hs,
    Equ,
    Neu,
    Ltu,
    Leu,
    Gtu,
    Geu,
    Num,
    Nan,
}

impl Cmp {
    pub fn parse(s: &str) -> Option<Cmp> {
        Some(match s {
            "eq" => Cmp::Eq,
            "ne" => Cmp::Ne,
            "lt" => Cmp::Lt,
            "le" => Cmp::Le,
            "gt" => Cmp::Gt,
            "ge" => Cmp::Ge,
            "lo" => Cmp::Lo,
            "ls" => Cmp::Ls,
            "hi" => Cmp::Hi,
            "hs" => Cmp::Hs,
            "equ" => Cmp::Equ,
            "neu" => Cmp::Neu,
            "ltu" => Cmp::Ltu,
            "leu" => Cmp::Leu,
            "gtu" => Cmp::Gtu,
            "geu" => Cmp::Geu,
            "num" => Cmp::Num,
            "nan" => Cmp::Nan,
            _ => return None,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BoolOp {
    None,
    And,
    Or,
    Xor,
}

/// Rounding modifier: `.rn .rz .rm .rp` for floats, `.rni .rzi .rmi .rpi` for integer rounding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rnd {
    Default,
    Rn,
    Rz,
    Rm,
    Rp,
    Rni,
    Rzi,
    Rmi,
    Rpi,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtomOp {
    Add,
    Min,
    Max,
    Inc,
    Dec,
    And,
    Or,
    Xor,
    Exch,
    Cas,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShflMode {
    Up,
    Down,
    Bfly,
    Idx,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoteMode {
    All,
    Any,
    Uni,
    Ballot,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FUn {
    Abs,
    Neg,
    Rcp,
    Sqrt,
    Rsqrt,
    Ex2,
    Lg2,
    Sin,
    Cos,
    Tanh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IBin {
    Add,
    Sub,
    MulLo,
    MulHi,
    MulWide,
    Div,
    Rem,
    Min,
    Max,
    And,
    Or,
    Xor,
    Shl,
    Shr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IUn {
    Abs,
    Neg,
    Not,
    Popc,
    Clz,
    Brev,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FBin {
    Add,
    Sub,
    Mul,
    Div,
    Min,
    Max,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Nop,
    /// d = a, masked to the type's width.
    Mov,
    /// d = concatenation of `ext[0..n]` pieces of `ty` bits, lowest first.
    Pack,
    /// `ext[0..n]` = pieces of a, lowest first.
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
    FBin(FBin),
    /// fma / mad.f32: d = a*b + c
    Fma,
    FUn(FUn),
    /// setp: d = cmp(a, b) bop c; d2 = !cmp(a,b) bop c
    Setp(Cmp, BoolOp),
    /// set: d = cmp(a, b) ? (int: all ones, float: 1.0) : 0, type of d in `ty2`
    Set(Cmp),
    /// d = c ? a : b
    Selp,
    /// cvt: d (ty) = a (ty2)
    Cvt {
        relu: bool,
    },
    /// cvt.{rn}.{bf16x2,f16x2}.f32 d, a, b: a in the upper half.
    CvtPack {
        relu: bool,
    },
    Cvta {
        to: bool,
        space: Space,
    },
    Ld {
        space: Space,
        vec: u8,
    },
    St {
        space: Space,
        vec: u8,
    },
    /// atom (d != NOREG) / red: [a+imm] op= b (cas: compare b, new c)
    Atom {
        space: Space,
        op: AtomOp,
    },
    Bra {
        target: u32,
    },
    Exit,
    /// bar.sync / barrier.sync: id in a, thread count in b (NOREG: whole block). `arrive`: no wait.
    Bar {
        arrive: bool,
    },
    /// bar.warp.sync mask(a)
    WarpSync,
    Shfl(ShflMode),
    Vote(VoteMode),
    /// mma.sync m16n8k{8,16}, f32 accumulate; ext holds d, a, b, c registers.
    Mma {
        k: u8,
        bf16: bool,
    },
    /// ldmatrix m8n8 .x{1,2,4} {.trans}: ext holds the destinations.
    Ldmatrix {
        num: u8,
        trans: bool,
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
    Clock,
    /// d = mask of the lanes executing this instruction
    Activemask,
    /// redux.sync.op: d = reduce(a) over members(b)
    Redux(AtomOp),
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

#[derive(Debug, Clone, Copy)]
pub struct Inst {
    pub op: Op,
    pub ty: Ty,
    /// Second type (source type of cvt, destination type of set).
    pub ty2: Ty,
    pub rnd: Rnd,
    pub ftz: bool,
    pub sat: bool,
    pub guard: u32,
    pub guard_neg: bool,
    /// Negated predicate source (setp's c, vote's a).
    pub pneg: bool,
    pub d: u32,
    pub d2: u32,
    pub a: u32,
    pub b: u32,
    pub c: u32,
    pub e: u32,
    /// Address offset of a memory operand (first memory operand).
    pub imm: i64,
    /// Address offset of cp.async's source.
    pub imm2: i64,
    /// Start and length of extra register operands in [`Kernel::ext`].
    pub ext: u32,
    pub next: u16,
    /// 1-based line in the module's PTX text.
    pub line: u32,
}

impl Inst {
    pub fn new(op: Op, line: u32) -> Inst {
        Inst {
            op,
            ty: Ty::B32,
            ty2: Ty::B32,
            rnd: Rnd::Default,
            ftz: false,
            sat: false,
            guard: NOREG,
            guard_neg: false,
            pneg: false,
            d: NOREG,
            d2: NOREG,
            a: NOREG,
            b: NOREG,
            c: NOREG,
            e: NOREG,
            imm: 0,
            imm2: 0,
            ext: 0,
            next: 0,
            line,
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
        let xs = ext.get(self.ext as usize..self.ext as usize + self.next as usize).unwrap_or(&[]);
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

/// Initial value of a read-only register.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConstVal {
    Imm(u64),
    Tid(u8),
    Ntid(u8),
    Ctaid(u8),
    Nctaid(u8),
    LaneId,
    WarpId,
    NWarpId,
    LaneMaskEq,
    LaneMaskLt,
    LaneMaskLe,
    LaneMaskGt,
    LaneMaskGe,
    Zero,
}

#[derive(Debug, Clone, Copy)]
pub struct ParamDecl {
    pub offset: u32,
    pub size: u32,
}

/// A lowered `.entry`.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub insts: Vec<Inst>,
    pub ext: Vec<u32>,
    /// Register slots per lane after allocation (`regalloc`): read-only registers first, then
    /// the slots shared by virtual registers whose live ranges do not overlap.
    pub nregs: u32,
    /// Virtual registers the PTX used (read-only ones included), before allocation.
    pub vregs: u32,
    pub consts: Vec<(u32, ConstVal)>,
    pub params: Vec<ParamDecl>,
    pub param_bytes: u32,
    pub shared_static: u32,
    /// Whether an `extern .shared` (dynamic) array exists; it starts at `shared_static` (aligned).
    pub local_bytes: u32,
    /// Module `.const` data (const space).
    pub const_data: std::sync::Arc<Vec<u8>>,
}
