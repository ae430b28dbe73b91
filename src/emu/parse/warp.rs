//! Lowering of warp-level collectives: shuffles, votes, reductions, match, activemask.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

/// shfl.sync.{up,down,bfly,idx}.b32 d[|p], a, b, c, membermask
pub(super) fn shfl(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let mode = match p.rest.first() {
        Some(&"up") => ShflMode::Up,
        Some(&"down") => ShflMode::Down,
        Some(&"bfly") => ShflMode::Bfly,
        Some(&"idx") => ShflMode::Idx,
        _ => return Err(p.bad("shfl mode")),
    };
    if !p.mods.contains(&"sync") {
        return Err(p.bad("shfl without .sync"));
    }
    p.nops(5)?;
    inst.op = Op::Shfl(mode);
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
    inst.c = f.reg(&p.ops[3])?;
    inst.e = f.reg(&p.ops[4])?;
    Ok(())
}

/// vote.sync.{all,any,uni,ballot} d, [!]pred, membermask
pub(super) fn vote(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let mode = match p.rest.first() {
        Some(&"all") => VoteMode::All,
        Some(&"any") => VoteMode::Any,
        Some(&"uni") => VoteMode::Uni,
        Some(&"ballot") => VoteMode::Ballot,
        _ => return Err(p.bad("vote mode")),
    };
    if !p.mods.contains(&"sync") {
        return Err(p.bad("vote without .sync"));
    }
    p.nops(3)?;
    inst.op = Op::Vote(mode);
    inst.d = f.reg(&p.ops[0])?;
    let (neg, q) = match p.ops[1].strip_prefix('!') {
        Some(q) => (true, q),
        None => (false, p.ops[1].as_str()),
    };
    inst.pneg = neg;
    inst.a = f.reg(q)?;
    inst.e = f.reg(&p.ops[2])?;
    Ok(())
}

/// redux.sync.{add,min,max,and,or,xor} d, a, membermask (integer types)
pub(super) fn redux(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let op = match p.rest.first() {
        Some(&"add") => AtomOp::Add,
        Some(&"min") => AtomOp::Min,
        Some(&"max") => AtomOp::Max,
        Some(&"and") => AtomOp::And,
        Some(&"or") => AtomOp::Or,
        Some(&"xor") => AtomOp::Xor,
        _ => return Err(p.bad("redux operation")),
    };
    if inst.ty.is_float() {
        return Err(p.bad("float redux"));
    }
    p.nops(3)?;
    inst.op = Op::Redux(op);
    inst.d = f.reg(&p.ops[0])?;
    inst.a = f.reg(&p.ops[1])?;
    inst.e = f.reg(&p.ops[2])?;
    Ok(())
}

pub(super) fn activemask(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(1)?;
    inst.op = Op::Activemask;
    inst.d = f.reg(&p.ops[0])?;
    Ok(())
}

/// match.any.sync.b32/b64 d, a, membermask; match.all.sync.b32/b64 d[|p], a, membermask
pub(super) fn match_sync(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let all = match p.rest.first() {
        Some(&"any") => false,
        Some(&"all") => true,
        _ => return Err(p.bad("match mode")),
    };
    p.only(&["any", "all"])?;
    if !p.mods.contains(&"sync") || !matches!(inst.ty, Ty::B32 | Ty::B64) {
        return Err(p.bad("match form (match.{any,all}.sync.{b32,b64})"));
    }
    p.nops(3)?;
    inst.op = Op::Match { all };
    let (d0, d1) = match p.ops[0].split_once('|') {
        Some((a, b)) => (a, Some(b)),
        None => (p.ops[0].as_str(), None),
    };
    if d1.is_some() && !all {
        return Err(p.bad("predicate destination of match.any"));
    }
    inst.d = f.reg(d0)?;
    if let Some(q) = d1 {
        inst.d2 = f.reg(q)?;
    }
    inst.a = f.reg(&p.ops[1])?;
    inst.e = f.reg(&p.ops[2])?;
    Ok(())
}

/// elect.sync d|p, membermask (PTX ISA 9.7.13.14); `_` as d is a sink.
pub(super) fn elect(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(2)?;
    p.only(&[])?;
    if !p.mods.contains(&"sync") {
        return Err(p.bad("elect without .sync"));
    }
    let (d, q) = p.ops[0].split_once('|').ok_or_else(|| p.bad("elect destinations (d|p)"))?;
    inst.d = f.reg(d)?;
    inst.d2 = f.reg(q)?;
    inst.e = f.reg(&p.ops[1])?;
    inst.op = Op::Elect;
    Ok(())
}
