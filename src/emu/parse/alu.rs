//! Lowering of the integer ALU, bit manipulation, compare/select and move instructions.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};
use super::text::parse_imm;

/// `.lo` (default), `.hi` or `.wide` of mul / mad.
fn mul_part(p: &Parts) -> IBin {
    if p.rest.contains(&"hi") {
        IBin::MulHi
    } else if p.rest.contains(&"wide") {
        IBin::MulWide
    } else {
        IBin::MulLo
    }
}

/// add sub mul div rem min max and or xor shl shr on integer types.
pub(super) fn binary(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(3)?;
    if p.mn == "mul" {
        p.only(&["lo", "hi", "wide"])?;
        inst.op = Op::IBin(mul_part(p));
    } else {
        p.only(&[])?;
        if inst.sat {
            return Err(p.bad(".sat integer arithmetic"));
        }
        let op = match p.mn {
            "add" => IBin::Add,
            "sub" => IBin::Sub,
            "div" => IBin::Div,
            "rem" => IBin::Rem,
            "min" => IBin::Min,
            "max" => IBin::Max,
            "and" => IBin::And,
            "or" => IBin::Or,
            "xor" => IBin::Xor,
            "shl" => IBin::Shl,
            "shr" => IBin::Shr,
            _ => return Err(p.bad("operation")),
        };
        inst.op = Op::IBin(op);
    }
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    Ok(())
}

/// mad.lo / mad.hi / mad.wide on integer types.
pub(super) fn mad(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(4)?;
    p.only(&["lo", "hi", "wide"])?;
    inst.op = Op::IMad(mul_part(p));
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    inst.c = f.reg(&p.ops[3])?;
    Ok(())
}

/// abs neg not popc clz brev bfind{.shiftamt} on integer types.
pub(super) fn unary(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    p.only(if p.mn == "bfind" { &["shiftamt"] } else { &[] })?;
    inst.op = Op::IUn(match p.mn {
        "bfind" => IUn::Bfind { shiftamt: p.rest.contains(&"shiftamt") },
        "abs" => IUn::Abs,
        "neg" => IUn::Neg,
        "not" => IUn::Not,
        "popc" => IUn::Popc,
        "clz" => IUn::Clz,
        "brev" => IUn::Brev,
        _ => return Err(p.bad("integer operation")),
    });
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    Ok(())
}

/// bfe bfi prmt lop3 shf.
pub(super) fn bits(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    match p.mn {
        "bfe" => {
            p.nops(4)?;
            inst.op = Op::Bfe;
        }
        "bfi" => {
            p.nops(5)?;
            inst.op = Op::Bfi;
        }
        "prmt" => {
            p.only(&[])?;
            p.nops(4)?;
            inst.op = Op::Prmt;
        }
        "lop3" => {
            p.nops(5)?;
            let lut = parse_imm(&p.ops[4]).ok_or_else(|| p.bad("lop3 LUT"))?;
            inst.op = Op::Lop3(lut as u8);
        }
        "shf" => {
            p.nops(4)?;
            let left = p.rest.contains(&"l");
            let clamp = p.rest.contains(&"clamp");
            p.only(&["l", "r", "clamp", "wrap"])?;
            inst.op = Op::Shf { left, clamp };
        }
        _ => return Err(p.bad("bit operation")),
    }
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    inst.c = f.reg(&p.ops[3])?;
    if p.mn == "bfi" {
        inst.e = f.reg(&p.ops[4])?;
    }
    Ok(())
}

/// setp (with an optional second destination and boolean combination) and set.
pub(super) fn compare(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let cmp = p.rest.first().and_then(|m| Cmp::parse(m)).ok_or_else(|| p.bad("comparison"))?;
    let bop = match p.rest.get(1) {
        None => BoolOp::None,
        Some(&"and") => BoolOp::And,
        Some(&"or") => BoolOp::Or,
        Some(&"xor") => BoolOp::Xor,
        Some(_) => return Err(p.bad("boolean operation")),
    };
    if p.rest.len() > 2 {
        return Err(p.bad("modifier"));
    }
    if p.mn == "set" {
        if bop != BoolOp::None {
            return Err(p.bad("set with boolean op"));
        }
        // set.cmp.dtype.stype: first type is the destination
        inst.op = Op::Set(cmp);
        let (dt, sty) = (inst.ty, inst.ty2);
        inst.ty = sty;
        inst.ty2 = dt;
        p.nops(3)?;
    } else {
        inst.op = Op::Setp(cmp, bop);
        if p.ops.len() != 3 && p.ops.len() != 4 {
            return Err(p.bad("operand count"));
        }
    }
    let (d0, d1) = match p.ops[0].split_once('|') {
        Some((a, b)) => (a, Some(b)),
        None => (p.ops[0].as_str(), None),
    };
    inst.d = f.reg(d0)?;
    if let Some(q) = d1 {
        inst.d2 = f.reg(q)?;
    }
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    if let Some(c) = p.ops.get(3) {
        let (neg, c) = match c.strip_prefix('!') {
            Some(c) => (true, c),
            None => (false, c.as_str()),
        };
        inst.pneg = neg;
        inst.c = f.reg(c)?;
    }
    Ok(())
}

pub(super) fn selp(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(4)?;
    inst.op = Op::Selp;
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.b = f.reg(&p.ops[2])?;
    inst.c = f.reg(&p.ops[3])?;
    Ok(())
}

/// Pieces of a vector pack / unpack: `bits` split into `n` registers.
fn piece_type(p: &Parts, bits: u32, n: usize, what: &str) -> R<Ty> {
    Ok(match bits.checked_div(n as u32) {
        Some(8) => Ty::B8,
        Some(16) => Ty::B16,
        Some(32) => Ty::B32,
        _ => return Err(p.bad(what)),
    })
}

/// mov: a register copy, a vector pack or unpack, or a read of the clock.
pub(super) fn mov(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    p.only(&[])?;
    let src = p.ops[1].trim();
    if src == "%clock" || src == "%clock64" || src == "%globaltimer" {
        inst.op = Op::Clock;
        inst.d = f.reg(&p.ops[0])?;
    } else if p.ops[0].starts_with('{') {
        let regs = f.vec(&p.ops[0])?;
        inst.op = Op::Unpack;
        inst.ty = piece_type(p, inst.ty.bits(), regs.len(), "vector unpack")?;
        (inst.ext_start, inst.ext_len) = f.push_ext(&regs);
        inst.a = f.reg(src)?;
    } else if src.starts_with('{') {
        let regs = f.vec(src)?;
        inst.op = Op::Pack;
        inst.ty = piece_type(p, inst.ty.bits(), regs.len(), "vector pack")?;
        (inst.ext_start, inst.ext_len) = f.push_ext(&regs);
        inst.d = f.reg(&p.ops[0])?;
    } else {
        inst.op = Op::Mov;
        inst.d = f.reg(&p.ops[0])?;
        inst.a = f.reg(src)?;
    }
    Ok(())
}
