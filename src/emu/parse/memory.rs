//! Lowering of memory instructions: address conversion, loads and stores, atomics and
//! reductions, ldmatrix, cp.async with its groups, bulk and tensor (TMA) copies, mapa and
//! prefetch.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};
use super::text::{parse_imm, split_operands};

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
/// wait_all; cp.async.mbarrier.arrive ([`super::sync`]); cp.async.bulk ([`bulk`]).
pub(super) fn cp_async(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    if p.mods.first() != Some(&"async") {
        return Err(p.bad("cp form"));
    }
    if p.mods.get(1) == Some(&"bulk") {
        return bulk(f, p, inst);
    }
    if p.mods.get(1) == Some(&"mbarrier") {
        return super::sync::cp_async_mbarrier_arrive(f, p, inst);
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

/// A memory operand `[base+off]` as one register: the base itself, or a new register holding
/// base + off computed by an add inserted before the instruction (for the third and fourth
/// memory operands of bulk copies, which have no offset field in [`Inst`]).
fn addr_reg(f: &mut FnCtx, s: &str, line: u32) -> R<u32> {
    let (base, off) = f.addr(s)?;
    if base != NOREG && off == 0 {
        return Ok(base);
    }
    if base == NOREG {
        return Ok(f.konst(ConstVal::Imm(off as u64)));
    }
    let d = f.fresh();
    let mut add = Inst::new(Op::IBin(IBin::Add), line);
    add.ty = Ty::U64;
    add.ty2 = Ty::U64;
    add.d = d;
    add.a = base;
    add.b = f.konst(ConstVal::Imm(off as u64));
    f.insts.push(add);
    Ok(d)
}

/// `[tensorMap, {c0, ...}]`: the map's generic address and the coordinate registers.
fn tensor_operand(f: &mut FnCtx, p: &Parts, s: &str, dim: u8, line: u32) -> R<(u32, Vec<u32>)> {
    let inner = s
        .trim()
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| p.bad("tensor operand (expected [map, {coordinates}])"))?;
    let parts = split_operands(inner);
    if parts.len() != 2 {
        return Err(p.bad("tensor operand (expected [map, {coordinates}])"));
    }
    let map = addr_reg(f, &format!("[{}]", parts[0]), line)?;
    let coords = f.vec(&parts[1])?;
    if coords.len() != dim as usize {
        return Err(p.bad("tensor coordinate count"));
    }
    Ok((map, coords))
}

/// cp.async.bulk{.tensor}{.prefetch}, commit_group, wait_group (PTX ISA 9.7.9.25.4, 9.7.9.27).
/// Clusters of one CTA: `.shared::cluster` destinations are this CTA's shared memory, a
/// multicast must name only CTA 0 (checked when it runs), shared-to-remote-shared copies and
/// the im2col / gather / scatter modes are refused.
fn bulk(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let line = inst.line;
    if p.mods.contains(&"commit_group") {
        p.nops(0)?;
        inst.op = Op::Bulk(BulkOp::Commit);
        return Ok(());
    }
    if p.mods.contains(&"wait_group") {
        p.nops(1)?;
        let n = parse_imm(&p.ops[0]).filter(|&n| n < 256).ok_or_else(|| p.bad("wait_group count"))?;
        let read = p.rest.contains(&"read");
        p.only(&["async", "bulk", "wait_group", "read"])?;
        inst.op = Op::Bulk(BulkOp::Wait { n: n as u8, read });
        return Ok(());
    }
    let tensor = p.mods.get(2) == Some(&"tensor") || p.mods.get(3) == Some(&"tensor");
    let dim = match p.mods.iter().find(|m| matches!(**m, "1d" | "2d" | "3d" | "4d" | "5d")) {
        Some(d) => d.as_bytes()[0] - b'0',
        None if tensor => return Err(p.bad("tensor dimension")),
        None => 0,
    };
    let hint = p.mods.contains(&"L2::cache_hint");
    let multicast = p.mods.contains(&"multicast::cluster");
    let known = [
        "async",
        "bulk",
        "tensor",
        "prefetch",
        "1d",
        "2d",
        "3d",
        "4d",
        "5d",
        "tile",
        "mbarrier::complete_tx::bytes",
        "bulk_group",
        "multicast::cluster",
        "L2",
    ];
    p.only(&known)?;
    // State spaces in order: destination first, then source.
    let spaces: Vec<&str> = p
        .mods
        .iter()
        .copied()
        .filter(|m| matches!(*m, "global" | "shared::cta" | "shared::cluster" | "shared"))
        .collect();
    if p.mods.contains(&"prefetch") {
        // cp.async.bulk.prefetch{.tensor.Nd}.L2.global: L2 prefetch, a no-op here (the tensor
        // form validates its map).
        if !p.mods.contains(&"L2") {
            return Err(p.bad("bulk prefetch form"));
        }
        let nops = if tensor { 1 } else { 2 } + usize::from(hint);
        p.nops(nops)?;
        if tensor {
            let (map, coords) = tensor_operand(f, p, &p.ops[0], dim, line)?;
            inst.b = map;
            (inst.ext_start, inst.ext_len) = f.push_ext(&coords);
            inst.op = Op::Bulk(BulkOp::PrefetchTensormap);
        } else {
            inst.op = Op::Nop;
        }
        return Ok(());
    }
    let to_shared = spaces.first().is_some_and(|s| s.starts_with("shared")) && spaces.get(1) == Some(&"global");
    let to_global = spaces.first() == Some(&"global") && spaces.get(1).is_some_and(|s| s.starts_with("shared"));
    let mbar = p.mods.contains(&"mbarrier::complete_tx::bytes");
    let group = p.mods.contains(&"bulk_group");
    if to_shared && mbar && !group {
        // loads: [dst], src, (size,) [mbar] {, ctaMask} {, policy}
        let fixed = if tensor { 3 } else { 4 };
        p.nops(fixed + usize::from(multicast) + usize::from(hint))?;
        let (db, doff) = f.addr(&p.ops[0])?;
        inst.a = db;
        inst.imm = doff;
        if tensor {
            let (map, coords) = tensor_operand(f, p, &p.ops[1], dim, line)?;
            inst.b = map;
            (inst.ext_start, inst.ext_len) = f.push_ext(&coords);
        } else {
            let (sb, soff) = f.addr(&p.ops[1])?;
            inst.b = sb;
            inst.imm2 = soff;
            inst.c = f.reg(&p.ops[2])?;
        }
        let mb = addr_reg(f, &p.ops[fixed - 1], line)?;
        let mask = if multicast { f.reg(&p.ops[fixed])? } else { NOREG };
        if tensor {
            inst.c = mb;
            inst.e = mask;
            inst.op = Op::Bulk(BulkOp::TensorLoad { dim, multicast });
        } else {
            inst.e = mb;
            inst.d2 = mask;
            inst.op = Op::Bulk(BulkOp::Load { multicast });
        }
        return Ok(());
    }
    if to_global && group && !mbar && !multicast && spaces.get(1) != Some(&"shared::cluster") {
        // stores: tensor [map, {coords}], [src] {, policy}; plain [dst], [src], size {, policy}
        if tensor {
            p.nops(2 + usize::from(hint))?;
            let (map, coords) = tensor_operand(f, p, &p.ops[0], dim, line)?;
            inst.b = map;
            (inst.ext_start, inst.ext_len) = f.push_ext(&coords);
            let (sb, soff) = f.addr(&p.ops[1])?;
            inst.a = sb;
            inst.imm = soff;
            inst.op = Op::Bulk(BulkOp::TensorStore { dim });
        } else {
            p.nops(3 + usize::from(hint))?;
            let (db, doff) = f.addr(&p.ops[0])?;
            inst.a = db;
            inst.imm = doff;
            let (sb, soff) = f.addr(&p.ops[1])?;
            inst.b = sb;
            inst.imm2 = soff;
            inst.c = f.reg(&p.ops[2])?;
            inst.op = Op::Bulk(BulkOp::Store);
        }
        return Ok(());
    }
    Err(p.bad("cp.async.bulk direction or completion (clusters of one CTA: no shared-to-shared copies)"))
}

/// mapa{.shared::cluster}.{u32,u64} d, a, rank: a's address in cluster CTA `rank` (clusters of
/// one CTA: rank 0 only, checked when it runs).
pub(super) fn mapa(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(3)?;
    p.only(&[])?;
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    inst.op = Op::Mapa;
    Ok(())
}

/// prefetch{.space}.{L1,L2} / prefetchu.L1: no effect; prefetch{.space}.tensormap [a]: validates
/// the tensor map at a (PTX ISA 9.7.9.15).
pub(super) fn prefetch(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(1)?;
    if p.rest.contains(&"tensormap") {
        p.only(&["tensormap"])?;
        inst.b = addr_reg(f, &p.ops[0], inst.line)?;
        inst.op = Op::Bulk(BulkOp::PrefetchTensormap);
    } else {
        inst.op = Op::Nop;
    }
    Ok(())
}
