//! Lowering of memory instructions: address conversion, loads and stores, atomics and
//! reductions, ldmatrix, and cp.async with its groups.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};
use super::text::parse_imm;

pub(super) fn cvta(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    let to = p.rest.contains(&"to");
    p.only(&["to"])?;
    let sp = p.space.ok_or_else(|| p.bad("cvta space"))?;
    inst.op = Op::Cvta { to, space: sp };
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    Ok(())
}

/// ld / ldu / st, scalar or vector (`.v2 .v4 .v8`), in any state space (generic without one).
pub(super) fn ld_st(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    p.only(&[])?;
    let st = p.mn == "st";
    let sp = p.space.unwrap_or(Space::Generic);
    let (regop, addrop) = if st { (&p.ops[1], &p.ops[0]) } else { (&p.ops[0], &p.ops[1]) };
    let (base, off) = f.addr(addrop)?;
    inst.a = base;
    inst.imm = off;
    if p.vec > 1 {
        let regs = f.vec(regop)?;
        if regs.len() != p.vec as usize {
            return Err(p.bad("vector length"));
        }
        (inst.ext_start, inst.ext_len) = f.push_ext(&regs);
    } else if st {
        inst.b = f.reg(regop)?;
    } else {
        inst.d = f.reg(regop)?;
    }
    inst.op = if st { Op::St { space: sp, vec: p.vec } } else { Op::Ld { space: sp, vec: p.vec } };
    Ok(())
}

/// atom (with a destination) and red (without).
pub(super) fn atom(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let op = p
        .rest
        .iter()
        .find_map(|m| {
            Some(match *m {
                "add" => AtomOp::Add,
                "min" => AtomOp::Min,
                "max" => AtomOp::Max,
                "inc" => AtomOp::Inc,
                "dec" => AtomOp::Dec,
                "and" => AtomOp::And,
                "or" => AtomOp::Or,
                "xor" => AtomOp::Xor,
                "exch" => AtomOp::Exch,
                "cas" => AtomOp::Cas,
                _ => return None,
            })
        })
        .ok_or_else(|| p.bad("atomic operation"))?;
    p.only(&["add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas"])?;
    if p.vec > 1 || matches!(inst.ty, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
        return Err(p.bad("vector or half atomic"));
    }
    let sp = p.space.unwrap_or(Space::Generic);
    // atom has a destination, red does not.
    let k = usize::from(p.mn == "atom");
    let need = k + if op == AtomOp::Cas { 3 } else { 2 };
    p.nops(need)?;
    if k == 1 {
        inst.d = f.reg(&p.ops[0])?;
    }
    let (base, off) = f.addr(&p.ops[k])?;
    inst.a = base;
    inst.imm = off;
    inst.b = f.reg(&p.ops[k + 1])?;
    if op == AtomOp::Cas {
        inst.c = f.reg(&p.ops[k + 2])?;
    }
    inst.op = Op::Atom { space: sp, op };
    Ok(())
}

/// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
pub(super) fn ldmatrix(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    if !p.mods.contains(&"m8n8") || p.types.first() != Some(&Ty::B16) || p.space != Some(Space::Shared) {
        return Err(p.bad("ldmatrix shape/type/space"));
    }
    let num = if p.mods.contains(&"x4") {
        4
    } else if p.mods.contains(&"x2") {
        2
    } else if p.mods.contains(&"x1") {
        1
    } else {
        return Err(p.bad("ldmatrix count"));
    };
    let trans = p.mods.contains(&"trans");
    p.only(&["m8n8", "x1", "x2", "x4", "trans"])?;
    p.nops(2)?;
    let d = f.vec(&p.ops[0])?;
    if d.len() != num as usize {
        return Err(p.bad("ldmatrix destinations"));
    }
    (inst.ext_start, inst.ext_len) = f.push_ext(&d);
    let (base, off) = f.addr(&p.ops[1])?;
    inst.a = base;
    inst.imm = off;
    inst.op = Op::Ldmatrix { num, trans };
    Ok(())
}

/// cp.async (global to shared, 4/8/16 bytes, optional source size), commit_group, wait_group,
/// wait_all. The bulk and mbarrier forms are refused.
pub(super) fn cp_async(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    if p.mods.first() != Some(&"async") {
        return Err(p.bad("cp form"));
    }
    if p.mods.contains(&"commit_group") {
        inst.op = Op::CpCommit;
    } else if p.mods.contains(&"wait_group") {
        p.nops(1)?;
        let n = parse_imm(&p.ops[0]).ok_or_else(|| p.bad("wait_group count"))?;
        inst.op = Op::CpWait { n: n as u32, all: false };
    } else if p.mods.contains(&"wait_all") {
        inst.op = Op::CpWait { n: 0, all: true };
    } else {
        if p.mods.iter().any(|m| m.starts_with("bulk") || m.starts_with("mbarrier")) {
            return Err(p.bad("cp.async form"));
        }
        if p.mods.contains(&"L2::cache_hint") {
            return Err(p.bad("cp.async cache-policy operand"));
        }
        if p.ops.len() != 3 && p.ops.len() != 4 {
            return Err(p.bad("cp.async operands"));
        }
        let (db, doff) = f.addr(&p.ops[0])?;
        let (sb, soff) = f.addr(&p.ops[1])?;
        let size = parse_imm(&p.ops[2]).ok_or_else(|| p.bad("cp.async size"))?;
        if !matches!(size, 4 | 8 | 16) {
            return Err(p.bad("cp.async size"));
        }
        inst.a = db;
        inst.imm = doff;
        inst.b = sb;
        inst.imm2 = soff;
        if let Some(s) = p.ops.get(3) {
            inst.c = f.reg(s)?;
        }
        inst.op = Op::CpAsync { size: size as u8 };
    }
    Ok(())
}
