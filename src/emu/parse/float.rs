//! Lowering of floating-point arithmetic (f32, f64) and conversions.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

/// add sub mul div min max on f32 / f64.
pub(super) fn binary(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(3)?;
    if matches!(inst.ty, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
        return Err(p.bad("half-precision arithmetic"));
    }
    p.only(&["NaN"]).map_err(|_| p.bad("modifier"))?;
    if p.rest.contains(&"NaN") {
        return Err(p.bad(".NaN min/max"));
    }
    let op = match p.mn {
        "add" => FBin::Add,
        "sub" => FBin::Sub,
        "mul" => FBin::Mul,
        "div" => FBin::Div,
        "min" => FBin::Min,
        "max" => FBin::Max,
        _ => return Err(p.bad("float operation")),
    };
    inst.op = Op::FBin(op);
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    Ok(())
}

/// fma / mad on f32 / f64.
pub(super) fn fma(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(4)?;
    if inst.ty != Ty::F32 && inst.ty != Ty::F64 {
        return Err(p.bad("half-precision fma"));
    }
    p.only(&[])?;
    inst.op = Op::Fma;
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    inst.c = f.reg(&p.ops[3])?;
    Ok(())
}

/// abs neg rcp sqrt rsqrt ex2 lg2 sin cos tanh on f32 / f64.
pub(super) fn unary(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    p.only(&[])?;
    if inst.ty != Ty::F32 && inst.ty != Ty::F64 {
        return Err(p.bad("half-precision operation"));
    }
    inst.op = Op::FUn(match p.mn {
        "abs" => FUn::Abs,
        "neg" => FUn::Neg,
        "rcp" => FUn::Rcp,
        "sqrt" => FUn::Sqrt,
        "rsqrt" => FUn::Rsqrt,
        "ex2" => FUn::Ex2,
        "lg2" => FUn::Lg2,
        "sin" => FUn::Sin,
        "cos" => FUn::Cos,
        "tanh" => FUn::Tanh,
        _ => return Err(p.bad("float operation")),
    });
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    Ok(())
}

/// cvt between any two types, and the packing cvt.{bf16x2,f16x2}.f32 d, a, b.
pub(super) fn cvt(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let relu = p.rest.contains(&"relu");
    p.only(&["relu"])?;
    if p.types.iter().any(|t| t.is_fp8()) {
        return cvt_fp8(f, p, inst, relu);
    }
    if matches!(inst.ty, Ty::Bf16x2 | Ty::F16x2) && inst.ty2 == Ty::F32 {
        p.nops(3)?;
        inst.op = Op::CvtPack { relu };
        inst.d = f.reg(&p.ops[0])?;
        inst.a = f.reg(&p.ops[1])?;
        inst.b = f.reg(&p.ops[2])?;
    } else {
        p.nops(2)?;
        if p.types.len() != 2 {
            return Err(p.bad("cvt types"));
        }
        inst.op = Op::Cvt { relu };
        inst.d = f.reg(&p.ops[0])?;
        inst.a = f.reg(&p.ops[1])?;
    }
    Ok(())
}

/// The fp8 conversions sm_90 has (PTX ISA 9.7.9.21, cvt): `cvt.rn.satfinite{.relu}.f8x2.f32 d, a, b`
/// (a in the upper byte), `cvt.rn.satfinite{.relu}.f8x2.f16x2 d, a` and `cvt.rn{.relu}.f16x2.f8x2
/// d, a`, with f8x2 one of e4m3x2 / e5m2x2. The bf16x2 forms need sm_100 and are refused.
fn cvt_fp8(f: &mut FnCtx, p: &Parts, inst: &mut Inst, relu: bool) -> R<()> {
    let f8 = |t: Ty| matches!(t, Ty::E4m3x2 | Ty::E5m2x2);
    if p.types.len() != 2 || inst.rnd != Rnd::Rn {
        return Err(p.bad("fp8 cvt (needs .rn and two types)"));
    }
    match (inst.ty, inst.ty2) {
        (d, Ty::F32) if f8(d) => {
            if !inst.sat {
                return Err(p.bad("fp8 cvt without .satfinite"));
            }
            p.nops(3)?;
            inst.op = Op::CvtPack { relu };
            inst.d = f.reg(&p.ops[0])?;
            inst.a = f.reg(&p.ops[1])?;
            inst.b = f.reg(&p.ops[2])?;
        }
        (d, Ty::F16x2) if f8(d) => {
            if !inst.sat {
                return Err(p.bad("fp8 cvt without .satfinite"));
            }
            p.nops(2)?;
            inst.op = Op::Cvt { relu };
            inst.d = f.reg(&p.ops[0])?;
            inst.a = f.reg(&p.ops[1])?;
        }
        (Ty::F16x2, s) if f8(s) => {
            if inst.sat {
                return Err(p.bad(".satfinite on a conversion from fp8"));
            }
            p.nops(2)?;
            inst.op = Op::Cvt { relu };
            inst.d = f.reg(&p.ops[0])?;
            inst.a = f.reg(&p.ops[1])?;
        }
        _ => return Err(p.bad("fp8 cvt types (bf16x2 forms need sm_100)")),
    }
    Ok(())
}
