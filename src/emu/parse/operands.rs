//! Operands of one kernel body: register names, special registers, immediates and symbols, all
//! resolved to register indices (read-only registers for everything but real registers).

use super::super::ir::*;
use super::text::{parse_imm, split_operands};
use std::collections::{HashMap, HashSet};

/// Symbols visible to a kernel body: their address (a value placed in a constant register).
#[derive(Clone, Copy)]
pub(super) enum Sym {
    Addr(u64),
    Unsupported,
}

/// Lowering state of one `.entry` body.
pub(super) struct FnCtx<'m> {
    pub(super) regs: HashMap<String, u32>,
    pub(super) declared: HashSet<String>,
    pub(super) ranges: HashMap<String, u32>,
    pub(super) nregs: u32,
    pub(super) consts: Vec<(u32, ConstVal)>,
    pub(super) const_map: HashMap<ConstVal, u32>,
    pub(super) syms: HashMap<String, Sym>,
    pub(super) module_syms: &'m HashMap<String, Sym>,
    pub(super) labels: HashMap<String, u32>,
    pub(super) insts: Vec<Inst>,
    pub(super) ext: Vec<u32>,
    pub(super) fixups: Vec<(usize, String)>,
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
    pub(super) fn is_reg_name(&self, s: &str) -> bool {
        if self.declared.contains(s) {
            return true;
        }
        // %r<516> declares %r0..%r515
        let p = s.trim_end_matches(|c: char| c.is_ascii_digit());
        if p.len() < s.len() {
            if let (Some(&n), Ok(i)) = (self.ranges.get(p), s[p.len()..].parse::<u32>()) {
                return i < n;
            }
        }
        false
    }
    pub(super) fn special(&mut self, s: &str) -> Option<u32> {
        let dim = |t: &str| match t {
            "x" => Some(0u8),
            "y" => Some(1),
            "z" => Some(2),
            _ => None,
        };
        let v = if let Some((base, d)) = s.split_once('.') {
            let d = dim(d)?;
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
                _ => return None,
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
                // Clusters of one CTA, launched without a cluster (PTX ISA 10.11, 10.16, 10.17).
                "%cluster_ctarank" => ConstVal::Zero,
                "%is_explicit_cluster" => ConstVal::ExplicitCluster,
                "%cluster_nctarank" => ConstVal::Imm(1),
                _ => return None,
            }
        };
        Some(self.konst(v))
    }
    /// A source or destination operand as a register index.
    pub(super) fn reg(&mut self, s: &str) -> R<u32> {
        let s = s.trim();
        if s == "_" {
            return Ok(self.fresh());
        }
        if let Some(&r) = self.regs.get(s) {
            return Ok(r);
        }
        if self.is_reg_name(s) {
            let r = self.fresh();
            self.regs.insert(s.to_string(), r);
            return Ok(r);
        }
        if s.starts_with('%') {
            if let Some(r) = self.special(s) {
                return Ok(r);
            }
            return Err(format!("unknown register or special register `{s}`"));
        }
        if let Some(v) = parse_imm(s) {
            return Ok(self.konst(ConstVal::Imm(v)));
        }
        if let Some(sym) = self.syms.get(s).or_else(|| self.module_syms.get(s)).copied() {
            return match sym {
                Sym::Addr(a) => Ok(self.konst(ConstVal::Imm(a))),
                Sym::Unsupported => Err(format!("symbol `{s}` (module .global variable) is not supported")),
            };
        }
        Err(format!("unknown operand `{s}`"))
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
