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

mod op;
mod types;
mod wmma;

pub use op::*;
pub use types::*;
pub use wmma::*;

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
    /// Memory order and scope (ld / st / atom / red / fence / mbarrier).
    pub sem: Sem,
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
    /// Extra register operands (vectors, fragments): `ext_len` registers of [`Kernel::ext`]
    /// from `ext_start`; see [`Inst::ext_regs`].
    pub ext_start: u32,
    pub ext_len: u16,
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
            sem: Sem { order: Order::Weak, scope: Scope::None },
            d: NOREG,
            d2: NOREG,
            a: NOREG,
            b: NOREG,
            c: NOREG,
            e: NOREG,
            imm: 0,
            imm2: 0,
            ext_start: 0,
            ext_len: 0,
            line,
        }
    }

    /// This instruction's extra register operands, given its kernel's [`Kernel::ext`].
    #[inline(always)]
    pub fn ext_regs<'k>(&self, ext: &'k [u32]) -> &'k [u32] {
        &ext[self.ext_start as usize..self.ext_start as usize + self.ext_len as usize]
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
    /// `%is_explicit_cluster` ([`Kernel::explicit_cluster`]).
    ExplicitCluster,
}

/// One `.param` of an entry, as the PTX declares it.
#[derive(Debug, Clone)]
pub struct ParamDecl {
    pub offset: u32,
    pub size: u32,
    pub name: String,
    /// The declared type: `.u64`, `.f32`, `.b8[232]` (an array, e.g. a struct by value).
    pub ty: String,
}

/// A lowered `.entry`.
#[derive(Debug, Clone)]
pub struct Kernel {
    pub name: String,
    pub insts: Vec<Inst>,
    /// The extra register operands of all instructions ([`Inst::ext_regs`]).
    pub ext: Vec<u32>,
    /// Register slots per lane after allocation (`regalloc`): read-only registers first, then
    /// the slots shared by virtual registers whose live ranges do not overlap.
    pub nregs: u32,
    /// Virtual registers the PTX used (read-only ones included), before allocation.
    pub vregs: u32,
    pub consts: Vec<(u32, ConstVal)>,
    pub params: Vec<ParamDecl>,
    pub param_bytes: u32,
    /// Bytes of static shared memory (16-byte aligned); dynamic shared memory follows it.
    pub shared_static: u32,
    /// The first bytes of shared memory reserved for the CUDA runtime (cooperative groups),
    /// 0 unless the kernel reads `%reserved_smem_offset_*`. Not tracked by the sanitizer.
    pub reserved_smem: u32,
    /// Local memory bytes per thread (16-byte aligned).
    pub local_bytes: u32,
    /// Module `.const` data (const space).
    pub const_data: std::sync::Arc<Vec<u8>>,
    /// Declared `.explicitcluster` (or `.reqnctapercluster 1, 1, 1`): `%is_explicit_cluster`.
    pub explicit_cluster: bool,
    /// wgmma fragment registers by virtual register, for the sanitizer (None without wgmma).
    pub wg: WgInfoRef,
}
