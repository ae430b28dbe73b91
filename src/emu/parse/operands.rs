//! Operands of one kernel body: register names, special registers, immediates and symbols, all
//! resolved to register indices (read-only registers for everything but real registers).

use super::super::ir::*;
use super::text::{parse_imm, split_operands};
use std::collections::{HashMap, HashSet};

/// Symbols visible to a kernel body: their address (a value placed in a constant register).
#[derive(Clone, Copy)]
pub(super) enum Sym {
    Addr(u64),
    /// A module variable that cannot be used (its error, an index into the module's errors).
    Error(u32),
}

/// Bytes of shared memory reserved for the CUDA runtime (cooperative groups' barriers) at the
/// start of a block's shared memory when a kernel reads `%reserved_smem_offset_*`: CUDA reserves
/// 1 KB per block on sm_80 and later (`cudaDevAttrReservedSharedMemoryPerBlock`).
pub const RESERVED_SMEM: u32 = 1024;

/// One `{ }` block of a body (the body itself, an inline-asm scope, a call sequence, an inlined
/// function): the registers, symbols and labels it declares. Names resolve in the innermost
/// block that declares them, then outwards; an inlined function's outermost block has no parent
/// (it sees only its own names and the module's).
#[derive(Default)]
pub(super) struct Scope {
    pub(super) parent: Option<usize>,
    /// Registers used so far, by name.
    pub(super) regs: HashMap<String, u32>,
    /// `.reg` names declared here (`%r<516>` declares `%r0..%r515`: `ranges`).
    pub(super) declared: HashSet<String>,
    pub(super) ranges: HashMap<String, u32>,
    pub(super) syms: HashMap<String, Sym>,
    /// Labels defined in this block, as instruction indices.
    pub(super) labels: HashMap<String, u32>,
}

/// Lowering state of one `.entry` body (with the functions inlined into it).
pub(super) struct FnCtx<'m> {
    pub(super) scopes: Vec<Scope>,
    /// The block being lowered.
    pub(super) cur: usize,
    pub(super) nregs: u32,
    pub(super) consts: Vec<(u32, ConstVal)>,
    pub(super) const_map: HashMap<ConstVal, u32>,
    /// Symbols of the kernel as a whole (its shared-memory layout), visible in every block.
    pub(super) kernel_syms: HashMap<String, Sym>,
    pub(super) module_syms: &'m HashMap<String, Sym>,
    pub(super) module_errors: &'m [String],
    pub(super) insts: Vec<Inst>,
    pub(super) ext: Vec<u32>,
    /// Branches to resolve once the body is lowered: instruction, label, block of the branch.
    pub(super) fixups: Vec<(usize, String, usize)>,
    /// Per-thread local memory laid out so far (`.local` variables, call parameters).
    pub(super) local: u32,
}

pub(super) type R<T> = std::result::Result<T, String>;

impl FnCtx<'_> {
    pub(super) fn konst(&mut self, v: ConstVal) -> u32 {
        if let Some(&r) = self.const_map.get(&v) {
            return r;
        }
        let r = self.nregs;
        self.nregs += 1;
        self.consts.push((r, v));
        self.const_map.insert(v, r);
        r
    }
    pub(super) fn fresh(&mut self) -> u32 {
        let r = self.nregs;
        self.nregs += 1;
        r
    }
    /// Opens a block inside the current one (`parent: false`: a block that sees no outer names).
    pub(super) fn open(&mut self, parent: bool) -> usize {
        let p = if parent { Some(self.cur) } else { None };
        self.scopes.push(Scope { parent: p, ..Default::default() });
        let prev = self.cur;
        self.cur = self.scopes.len() - 1;
        prev
    }
    /// The blocks from the current one outwards.
    pub(super) fn chain(&self, from: usize) -> impl Iterator<Item = usize> + '_ {
        std::iter::successors(Some(from), |&s| self.scopes[s].parent)
    }
    fn declares(sc: &Scope, s: &str) -> bool {
        if sc.declared.contains(s) {
            return true;
        }
        // %r<516> declares %r0..%r515
        let p = s.trim_end_matches(|c: char| c.is_ascii_digit());
        if p.len() < s.len() {
            if let (Some(&n), Ok(i)) = (sc.ranges.get(p), s[p.len()..].parse::<u32>()) {
                return i < n;
            }
        }
        false
    }
    /// The label `name` as seen from block `from`.
    pub(super) fn label(&self, name: &str, from: usize) -> Option<u32> {
        self.chain(from).find_map(|s| self.scopes[s].labels.get(name).copied())
    }
    pub(super) fn sym(&self, s: &str) -> Option<Sym> {
        self.chain(self.cur)
            .find_map(|i| self.scopes[i].syms.get(s).copied())
            .or_else(|| self.kernel_syms.get(s).copied())
            .or_else(|| self.module_syms.get(s).copied())
    }
    /// A special register (`None`: not one this emulator knows).
    pub(super) fn special(&mut self, s: &str) -> R<Option<u32>> {
        let dim = |t: &str| match t {
            "x" => Some(0u8),
            "y" => Some(1),
            "z" => Some(2),
            _ => None,
        };
        let v = if let Some((base, d)) = s.split_once('.') {
            let Some(d) = dim(d) else { return Ok(None) };
            match base {
                "%tid" => ConstVal::Tid(d),
                "%ntid" => ConstVal::Ntid(d),
                "%ctaid" => ConstVal::Ctaid(d),
                "%nctaid" => ConstVal::Nctaid(d),
                // Clusters of one CTA (PTX ISA 10.12-10.15): the cluster grid is the CTA grid.
                "%clusterid" => ConstVal::Ctaid(d),
                "%nclusterid" => ConstVal::Nctaid(d),
                "%cluster_ctaid" => ConstVal::Zero,
                "%cluster_nctaid" => ConstVal::Imm(1),
                _ => return Ok(None),
            }
        } else {
            match s {
                "%laneid" => ConstVal::LaneId,
                "%warpid" => ConstVal::WarpId,
                "%nwarpid" => ConstVal::NWarpId,
                "%lanemask_eq" => ConstVal::LaneMaskEq,
                "%lanemask_lt" => ConstVal::LaneMaskLt,
                "%lanemask_le" => ConstVal::LaneMaskLe,
                "%lanemask_gt" => ConstVal::LaneMaskGt,
                "%lanemask_ge" => ConstVal::LaneMaskGe,
                "%smid" | "%gridid" => ConstVal::Zero,
                // The reserved region is [0, RESERVED_SMEM) of the block's shared memory; the two
                // numbered offsets are distinct 8-byte words in it (their use is the runtime's).
                "%reserved_smem_offset_begin" | "%reserved_smem_offset_0" => ConstVal::Imm(0),
                "%reserved_smem_offset_1" => ConstVal::Imm(8),
                "%reserved_smem_offset_end" | "%reserved_smem_offset_cap" => ConstVal::Imm(RESERVED_SMEM as u64),
                _ if s.starts_with("%envreg") => {
                    return Err(format!(
                        "`{s}` (a driver environment register: grid-wide synchronization such as \
                         cooperative groups' this_grid().sync() needs a cooperative launch) is not supported: \
                         the emulator runs blocks independently"
                    ))
                }
                // Clusters of one CTA, launched without a cluster (PTX ISA 10.11, 10.16, 10.17).
                "%cluster_ctarank" => ConstVal::Zero,
                "%is_explicit_cluster" => ConstVal::ExplicitCluster,
                "%cluster_nctarank" => ConstVal::Imm(1),
                _ => return Ok(None),
            }
        };
        Ok(Some(self.konst(v)))
    }
    /// Whether `r` is the address of a call's parameter or return value (a `.param` variable
    /// declared in a body, or a function's parameter): those live in local memory.
    pub(super) fn is_local_param(&self, r: u32) -> bool {
        self.consts.iter().any(|&(c, v)| {
            c == r && matches!(v, ConstVal::Imm(a) if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&a))
        })
    }
    /// A source or destination operand as a register index.
    pub(super) fn reg(&mut self, s: &str) -> R<u32> {
        let s = s.trim();
        if s == "_" {
            return Ok(self.fresh());
        }
        let mut scope = Some(self.cur);
        while let Some(i) = scope {
            if let Some(&r) = self.scopes[i].regs.get(s) {
                return Ok(r);
            }
            if Self::declares(&self.scopes[i], s) {
                let r = self.fresh();
                self.scopes[i].regs.insert(s.to_string(), r);
                return Ok(r);
            }
            scope = self.scopes[i].parent;
        }
        if s.starts_with('%') {
            if let Some(r) = self.special(s)? {
                return Ok(r);
            }
            return Err(format!("unknown register or special register `{s}`"));
        }
        if s == "WARP_SZ" {
            return Ok(self.konst(ConstVal::Imm(32)));
        }
        if let Some(v) = parse_imm(s) {
            return Ok(self.konst(ConstVal::Imm(v)));
        }
        match self.sym(s) {
            Some(Sym::Addr(a)) => Ok(self.konst(ConstVal::Imm(a))),
            Some(Sym::Error(e)) => Err(self.module_errors[e as usize].clone()),
            None => Err(format!("unknown operand `{s}`")),
        }
    }
    /// `[base+off]` → (base register or NOREG, offset).
    pub(super) fn addr(&mut self, s: &str) -> R<(u32, i64)> {
        let inner = s
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| format!("expected an address operand, got `{s}`"))?
            .trim();
        let (base, off) = match inner.find('+').or_else(|| inner.get(1..).and_then(|t| t.find('-')).map(|i| i + 1)) {
            Some(i) => {
                let (b, o) = inner.split_at(i);
                let o = o.trim_start_matches('+').trim();
                let ov = parse_imm(o).ok_or_else(|| format!("bad address offset `{o}`"))? as i64;
                (b.trim(), ov)
            }
            None => (inner, 0),
        };
        if let Some(v) = parse_imm(base) {
            return Ok((NOREG, v as i64 + off));
        }
        Ok((self.reg(base)?, off))
    }
    pub(super) fn vec(&mut self, s: &str) -> R<Vec<u32>> {
        let inner = s
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| format!("expected a vector operand, got `{s}`"))?;
        split_operands(inner).iter().map(|x| self.reg(x)).collect()
    }
    /// Appends extra register operands; returns their (start, length) for the instruction.
    pub(super) fn push_ext(&mut self, regs: &[u32]) -> (u32, u16) {
        let s = self.ext.len() as u32;
        self.ext.extend_from_slice(regs);
        (s, regs.len() as u16)
    }
}
