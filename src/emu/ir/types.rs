//! Operand types and the modifier enums that instructions carry (decoded once at lowering).

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
    /// fp8 (OCP E4M3 / E5M2): single elements (wgmma operand types) and the packed pairs of cvt.
    E4m3,
    E5m2,
    E4m3x2,
    E5m2x2,
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
            "e4m3" => Ty::E4m3,
            "e5m2" => Ty::E5m2,
            "e4m3x2" => Ty::E4m3x2,
            "e5m2x2" => Ty::E5m2x2,
            _ => return None,
        })
    }
    pub fn bits(self) -> u32 {
        match self {
            Ty::B8 | Ty::U8 | Ty::S8 | Ty::E4m3 | Ty::E5m2 => 8,
            Ty::B16 | Ty::U16 | Ty::S16 | Ty::F16 | Ty::Bf16 | Ty::E4m3x2 | Ty::E5m2x2 => 16,
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
    /// An fp8 type, single or packed.
    pub fn is_fp8(self) -> bool {
        matches!(self, Ty::E4m3 | Ty::E5m2 | Ty::E4m3x2 | Ty::E5m2x2)
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
    /// Position of the most significant non-sign bit (`shiftamt`: the left shift that brings it
    /// to the top), 0xffffffff when there is none.
    Bfind {
        shiftamt: bool,
    },
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

/// Memory-order qualifier of ld / st / atom / red / fence / mbarrier operations, kept so that the
/// sanitizer can tell a synchronizing access from a data race (PTX ISA 8.4, memory consistency
/// model: operation types). `Weak` is the default of ld/st (no qualifier or `.weak`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Order {
    #[default]
    Weak,
    /// `.volatile`: relaxed at system scope for ld/st (PTX ISA 8.4 "volatile operations").
    Volatile,
    Relaxed,
    Acquire,
    Release,
    AcqRel,
    /// `fence.sc`
    Sc,
}

/// Scope qualifier (`.cta .cluster .gpu .sys`); `None` when the instruction names none.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scope {
    #[default]
    None,
    Cta,
    Cluster,
    Gpu,
    Sys,
}

/// Memory order and scope of one instruction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Sem {
    pub order: Order,
    pub scope: Scope,
}

impl Sem {
    /// Decodes one modifier into `self`; whether it was a memory-order or scope qualifier.
    pub fn decode(&mut self, m: &str) -> bool {
        match m {
            "weak" => self.order = Order::Weak,
            "volatile" => self.order = Order::Volatile,
            "relaxed" => self.order = Order::Relaxed,
            "acquire" => self.order = Order::Acquire,
            "release" => self.order = Order::Release,
            "acq_rel" => self.order = Order::AcqRel,
            "sc" => self.order = Order::Sc,
            "cta" => self.scope = Scope::Cta,
            "cluster" => self.scope = Scope::Cluster,
            "gpu" => self.scope = Scope::Gpu,
            "sys" => self.scope = Scope::Sys,
            _ => return false,
        }
        true
    }
    /// A load that may observe another thread's write without synchronization (a flag spin):
    /// volatile, relaxed or acquire. Weak loads of a location another thread writes are races.
    pub fn is_sync_load(self) -> bool {
        matches!(self.order, Order::Volatile | Order::Relaxed | Order::Acquire | Order::AcqRel)
    }
}

/// mbarrier operations (PTX ISA 9.7.13.15); the mbarrier address is `[a+imm]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MbarOp {
    /// mbarrier.init [a], b (expected arrival count)
    Init,
    /// mbarrier.arrive{.expect_tx}{_drop}{.noComplete} d (state, NOREG for `_`), [a]{, b}:
    /// b is the arrival count (NOREG: 1) or, with `expect_tx`, the transaction bytes.
    Arrive { expect_tx: bool, drop: bool, no_complete: bool, remote: bool },
    /// mbarrier.expect_tx [a], b
    ExpectTx,
    /// mbarrier.complete_tx [a], b
    CompleteTx,
    /// mbarrier.{test,try}_wait{.parity} d (pred), [a], b (state or parity); try_wait blocks.
    Wait { parity: bool, try_wait: bool },
    /// mbarrier.inval [a]
    Inval,
    /// mbarrier.pending_count d, a (state)
    PendingCount,
    /// cp.async.mbarrier.arrive{.noinc} [a]
    CpAsyncArrive { noinc: bool },
}

/// Bulk and tensor (TMA) copies (PTX ISA 9.7.9.25.4, 9.7.9.27).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOp {
    /// cp.async.bulk.tensor.Nd.shared::{cta,cluster}.global.tile.mbarrier::complete_tx::bytes
    /// [a+imm], [b, {ext}], [c]{, e ctaMask}: `dim` coordinates in the extra operands.
    TensorLoad { dim: u8, multicast: bool },
    /// cp.async.bulk.tensor.Nd.global.shared::cta.tile.bulk_group [b, {ext}], [a+imm]
    TensorStore { dim: u8 },
    /// cp.async.bulk.shared::{cta,cluster}.global.mbarrier::complete_tx::bytes
    /// [a+imm], [b+imm2], c (size), [e]{, ctaMask in d2}
    Load { multicast: bool },
    /// cp.async.bulk.global.shared::cta.bulk_group [a+imm], [b+imm2], c (size)
    Store,
    /// cp.async.bulk.commit_group
    Commit,
    /// cp.async.bulk.wait_group{.read} n
    Wait { n: u8, read: bool },
    /// prefetch.tensormap [b] / cp.async.bulk.prefetch.tensor [b, {ext}]: validates the map.
    PrefetchTensormap,
}

/// Fences (PTX ISA 9.7.13.4): they order nothing in this sequentially consistent emulator but
/// are kept for the sanitizer (proxy fences make generic writes visible to the async proxy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FenceKind {
    /// membar / fence.{sc,acq_rel} (scope in [`Sem`])
    Memory,
    /// fence.proxy.async{.shared::cta,.global,} (`None`: every state space)
    ProxyAsync(Option<Space>),
    /// fence.mbarrier_init.release.cluster
    MbarrierInit,
    /// fence.proxy.{alias,tensormap::generic...}
    ProxyOther,
}
