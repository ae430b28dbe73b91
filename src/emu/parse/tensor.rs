//! Lowering of tensor-core instructions: `mma.sync`.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

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
