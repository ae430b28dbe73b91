//! Lowering of tensor-core instructions: `mma.sync`, the warpgroup `wgmma` family, and
//! `stmatrix` (which stores wgmma/mma accumulators to shared memory).

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};
use super::text::parse_imm;

/// mma.sync.aligned.m16n8k{8,16}.row.col.f32.{bf16,f16}.{bf16,f16}.f32 {d}, {a}, {b}, {c}
pub(super) fn mma(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let k = if p.mods.contains(&"m16n8k16") {
        16
    } else if p.mods.contains(&"m16n8k8") {
        8
    } else {
        return Err(p.bad("mma shape"));
    };
    if !(p.mods.contains(&"row") && p.mods.contains(&"col")) {
        return Err(p.bad("mma layout"));
    }
    let bf16 = match (p.types.first(), p.types.get(1), p.types.get(2), p.types.get(3)) {
        (Some(Ty::F32), Some(Ty::Bf16), Some(Ty::Bf16), Some(Ty::F32)) => true,
        (Some(Ty::F32), Some(Ty::F16), Some(Ty::F16), Some(Ty::F32)) => false,
        _ => return Err(p.bad("mma types (f32 accumulate from bf16/f16 only)")),
    };
    p.nops(4)?;
    let d = f.vec(&p.ops[0])?;
    let a = f.vec(&p.ops[1])?;
    let b = f.vec(&p.ops[2])?;
    let c = f.vec(&p.ops[3])?;
    let (na, nb) = if k == 16 { (4, 2) } else { (2, 1) };
    if d.len() != 4 || a.len() != na || b.len() != nb || c.len() != 4 {
        return Err(p.bad("mma fragment sizes"));
    }
    let all: Vec<u32> = d.iter().chain(&a).chain(&b).chain(&c).copied().collect();
    (inst.ext_start, inst.ext_len) = f.push_ext(&all);
    inst.op = Op::Mma { k, bf16 };
    Ok(())
}

/// The value of an immediate operand of wgmma (imm-scale-a/b, imm-trans-a/b).
fn imm_of(p: &Parts, s: &str, allowed: &[i64], what: &str) -> R<i64> {
    let v = parse_imm(s).map(|v| v as i64).ok_or_else(|| p.bad(&format!("{what} (not an immediate)")))?;
    if allowed.contains(&v) {
        Ok(v)
    } else {
        Err(p.bad(&format!("{what} value {v}")))
    }
}

/// `wgmma.fence`, `wgmma.commit_group`, `wgmma.wait_group N`, and
/// `wgmma.mma_async.sync.aligned.m64nNk{16,32}.dtype.atype.btype` (PTX ISA 9.7.15.5.2):
/// f32 += bf16 x bf16, f32/f16 += f16 x f16, f32/f16 += e4m3/e5m2 x e4m3/e5m2; A from shared
/// memory (descriptor) or registers. The sparse, tf32, integer and single-bit forms are refused.
pub(super) fn wgmma(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    match p.rest.first() {
        Some(&"fence") => {
            p.only(&["fence"])?;
            p.nops(0)?;
            inst.op = Op::WgFence;
            return Ok(());
        }
        Some(&"commit_group") => {
            p.only(&["commit_group"])?;
            p.nops(0)?;
            inst.op = Op::WgCommit;
            return Ok(());
        }
        Some(&"wait_group") => {
            p.only(&["wait_group"])?;
            p.nops(1)?;
            let n = parse_imm(&p.ops[0]).ok_or_else(|| p.bad("wait_group count"))?;
            inst.op = Op::WgWait { n: n as u32 };
            return Ok(());
        }
        Some(&"mma_async") => {}
        _ => return Err(p.bad("wgmma form")),
    }
    if p.rest.contains(&"sp") {
        return Err(p.bad("sparse wgmma (.sp)"));
    }
    if inst.sat {
        return Err(p.bad("wgmma .satfinite (integer forms)"));
    }
    let shape = p.rest.get(1).copied().unwrap_or("");
    p.only(&["mma_async", shape])?;
    let (n, k) = shape
        .strip_prefix("m64n")
        .and_then(|t| t.split_once('k'))
        .and_then(|(n, k)| Some((n.parse::<u32>().ok()?, k.parse::<u32>().ok()?)))
        .ok_or_else(|| p.bad("wgmma shape"))?;
    if n == 0 || n > 256 || !n.is_multiple_of(8) {
        return Err(p.bad("wgmma N (a multiple of 8 up to 256)"));
    }
    let elem = |t: Option<&Ty>| match t {
        Some(Ty::Bf16) => Some(WgElem::Bf16),
        Some(Ty::F16) => Some(WgElem::F16),
        Some(Ty::E4m3) => Some(WgElem::E4m3),
        Some(Ty::E5m2) => Some(WgElem::E5m2),
        _ => None,
    };
    if p.types.len() != 3 {
        return Err(p.bad("wgmma types (tf32, integer and b1 forms are not supported)"));
    }
    let f16_acc = match p.types[0] {
        Ty::F32 => false,
        Ty::F16 => true,
        _ => return Err(p.bad("wgmma accumulator type")),
    };
    let (at, bt) = match (elem(p.types.get(1)), elem(p.types.get(2))) {
        (Some(a), Some(b)) => (a, b),
        _ => return Err(p.bad("wgmma operand types")),
    };
    let fp8 = |e: WgElem| matches!(e, WgElem::E4m3 | WgElem::E5m2);
    let ok = match (at, bt) {
        (WgElem::Bf16, WgElem::Bf16) => !f16_acc,
        (WgElem::F16, WgElem::F16) => true,
        (a, b) => fp8(a) && fp8(b),
    };
    if !ok {
        return Err(p.bad("wgmma type combination"));
    }
    if k != 32 / at.bytes() {
        return Err(p.bad("wgmma K (k16 for bf16/f16, k32 for e4m3/e5m2)"));
    }
    let a_regs = p.ops.get(1).is_some_and(|o| o.trim_start().starts_with('{'));
    // d, a, b-desc, scale-d, imm-scale-a, imm-scale-b, then imm-trans-a (A in shared memory) and
    // imm-trans-b for the 16-bit types only.
    let trans = if fp8(at) {
        0
    } else if a_regs {
        1
    } else {
        2
    };
    p.nops(6 + trans)?;
    let neg_a = imm_of(p, &p.ops[4], &[1, -1], "imm-scale-a")? < 0;
    let neg_b = imm_of(p, &p.ops[5], &[1, -1], "imm-scale-b")? < 0;
    let (tnsp_a, tnsp_b) = match trans {
        2 => (imm_of(p, &p.ops[6], &[0, 1], "imm-trans-a")? == 1, imm_of(p, &p.ops[7], &[0, 1], "imm-trans-b")? == 1),
        1 => (false, imm_of(p, &p.ops[6], &[0, 1], "imm-trans-b")? == 1),
        _ => (false, false),
    };
    let cfg = WgmmaCfg::new(n, at, bt, f16_acc, a_regs, neg_a, neg_b, tnsp_a, tnsp_b);
    let mut regs = f.vec(&p.ops[0])?;
    if regs.len() != cfg.d_regs() as usize {
        return Err(p.bad(&format!("wgmma D fragment ({} registers expected)", cfg.d_regs())));
    }
    if a_regs {
        let a = f.vec(&p.ops[1])?;
        if a.len() != 4 {
            return Err(p.bad("wgmma A fragment (4 registers expected)"));
        }
        regs.extend(a);
    } else {
        inst.a = f.reg(&p.ops[1])?;
    }
    inst.b = f.reg(&p.ops[2])?;
    inst.c = f.reg(&p.ops[3])?;
    (inst.ext_start, inst.ext_len) = f.push_ext(&regs);
    inst.op = Op::Wgmma(cfg);
    Ok(())
}

/// stmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}{.shared}.b16 [p], {r..} (PTX ISA 9.7.14.5.16);
/// the m16n8 .b8 shape (sm_100) is refused.
pub(super) fn stmatrix(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    if !p.mods.contains(&"m8n8") || p.types.first() != Some(&Ty::B16) || !matches!(p.space, None | Some(Space::Shared))
    {
        return Err(p.bad("stmatrix shape/type/space (m8n8 .b16, shared or generic address)"));
    }
    let num = if p.mods.contains(&"x4") {
        4
    } else if p.mods.contains(&"x2") {
        2
    } else if p.mods.contains(&"x1") {
        1
    } else {
        return Err(p.bad("stmatrix count"));
    };
    let trans = p.mods.contains(&"trans");
    p.only(&["m8n8", "x1", "x2", "x4", "trans"])?;
    p.nops(2)?;
    let (base, off) = f.addr(&p.ops[0])?;
    let src = f.vec(&p.ops[1])?;
    if src.len() != num as usize {
        return Err(p.bad("stmatrix sources"));
    }
    (inst.ext_start, inst.ext_len) = f.push_ext(&src);
    inst.a = base;
    inst.imm = off;
    inst.op = Op::Stmatrix { num, trans, generic: p.space.is_none() };
    Ok(())
}
