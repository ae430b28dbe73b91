//! Lowering of `wmma` (PTX ISA 9.7.14.4): wmma.load.{a,b,c}, wmma.store.d and wmma.mma for the
//! f16 and bf16 forms, shapes m16n16k16, m32n8k16 and m8n32k16. The fragment layout the emulator
//! uses is in [`crate::emu::ir::wmma_elem`]. Other element types (tf32, f64, s8/u8, sub-byte) are
//! refused.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

fn refuse(p: &Parts) -> String {
    format!(
        "unsupported wmma form in `{}` (the emulator implements wmma.load/store/mma with f16 or bf16 \
         multiplicands and f16 or f32 accumulators, shapes m16n16k16, m32n8k16, m8n32k16)",
        p.text
    )
}

pub(super) fn wmma(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let shape = p.rest.iter().find_map(|m| WmmaShape::parse(m)).ok_or_else(|| refuse(p))?;
    let space = match p.space {
        None => Space::Generic,
        Some(s @ (Space::Global | Space::Shared)) => s,
        Some(_) => return Err(p.bad("wmma state space")),
    };
    let sh = |m: &&str| WmmaShape::parse(m).is_some();
    let frag_len = |f: &mut FnCtx, op: &str, n: usize| -> R<Vec<u32>> {
        let v = f.vec(op)?;
        if v.len() != n {
            return Err(format!("expected a fragment of {n} registers in `{}`", p.text));
        }
        Ok(v)
    };
    match p.rest.first() {
        Some(&"load") | Some(&"store") => {
            let store = p.rest[0] == "store";
            let frag = match p.rest.get(1) {
                Some(&"a") if !store => WmmaFrag::A,
                Some(&"b") if !store => WmmaFrag::B,
                Some(&"c") if !store => WmmaFrag::C,
                Some(&"d") if store => WmmaFrag::D,
                _ => return Err(refuse(p)),
            };
            let col = p.rest.contains(&"col");
            if p.rest.iter().skip(2).any(|m| !(sh(m) || *m == "row" || *m == "col")) || p.types.len() != 1 {
                return Err(refuse(p));
            }
            let ty = p.types[0];
            let ok = match frag {
                WmmaFrag::A | WmmaFrag::B => matches!(ty, Ty::F16 | Ty::Bf16),
                _ => matches!(ty, Ty::F16 | Ty::F32),
            };
            if !ok || inst.sat {
                return Err(refuse(p));
            }
            if p.ops.len() != 2 && p.ops.len() != 3 {
                return Err(p.bad("wmma operands"));
            }
            let (fop, aop) = if store { (&p.ops[1], &p.ops[0]) } else { (&p.ops[0], &p.ops[1]) };
            let regs = frag_len(f, fop, wmma_regs(frag, shape, ty))?;
            (inst.ext_start, inst.ext_len) = f.push_ext(&regs);
            let (base, off) = f.addr(aop)?;
            inst.a = base;
            inst.imm = off;
            if let Some(s) = p.ops.get(2) {
                inst.b = f.reg(s)?;
            }
            inst.op =
                if store { Op::WmmaStore { shape, col, space } } else { Op::WmmaLoad { frag, shape, col, space } };
        }
        Some(&"mma") => {
            if p.rest.iter().skip(1).any(|m| !(sh(m) || *m == "row" || *m == "col")) || inst.sat {
                return Err(refuse(p));
            }
            // .dtype.ctype (f16 multiplicands) or .f32.bf16.bf16.f32
            let (at, dt, ct) = match p.types[..] {
                [d @ (Ty::F16 | Ty::F32), c @ (Ty::F16 | Ty::F32)] => (Ty::F16, d, c),
                [Ty::F32, Ty::Bf16, Ty::Bf16, Ty::F32] => (Ty::Bf16, Ty::F32, Ty::F32),
                _ => return Err(refuse(p)),
            };
            p.nops(4)?;
            let d = frag_len(f, &p.ops[0], wmma_regs(WmmaFrag::D, shape, dt))?;
            let a = frag_len(f, &p.ops[1], wmma_regs(WmmaFrag::A, shape, at))?;
            let b = frag_len(f, &p.ops[2], wmma_regs(WmmaFrag::B, shape, at))?;
            let c = frag_len(f, &p.ops[3], wmma_regs(WmmaFrag::C, shape, ct))?;
            let all: Vec<u32> = d.iter().chain(&a).chain(&b).chain(&c).copied().collect();
            (inst.ext_start, inst.ext_len) = f.push_ext(&all);
            inst.ty = at;
            inst.ty2 = dt;
            inst.op = Op::WmmaMma { shape, c_f32: ct == Ty::F32 };
        }
        _ => return Err(refuse(p)),
    }
    Ok(())
}
