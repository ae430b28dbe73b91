//! Lowering of control flow (`bra`, `ret`, `exit`, `trap`) and of the instructions that only order
//! memory or give hints, which have no effect in a sequentially consistent, cache-less emulator.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

/// bra LABEL: the target is resolved when the whole body has been lowered.
pub(super) fn bra(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(1)?;
    p.only(&[])?;
    inst.op = Op::Bra { target: 0 };
    f.fixups.push((f.insts.len(), p.ops[0].clone(), f.cur));
    Ok(())
}

/// ret / exit (an entry's `ret` ends the thread).
pub(super) fn exit(inst: &mut Inst) {
    inst.op = Op::Exit;
}

/// trap: the launch fails, naming the thread and line.
pub(super) fn trap(p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(0)?;
    inst.op = Op::Trap { assert: false };
    Ok(())
}

/// griddepcontrol (no dependent grids in the emulator).
pub(super) fn hint(inst: &mut Inst) {
    inst.op = Op::Nop;
}

/// nanosleep t: the warp yields (a spin loop's back-off); the duration is not modelled.
pub(super) fn nanosleep(inst: &mut Inst) {
    inst.op = Op::Nanosleep;
}

/// setmaxnreg.{inc,dec}.sync.aligned.u32 count: count in 24..=256, a multiple of 8 (PTX ISA
/// 9.7.19.5).
pub(super) fn setmaxnreg(p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(1)?;
    let inc = p.rest.contains(&"inc");
    if inc == p.rest.contains(&"dec") || !p.mods.contains(&"sync") || !p.mods.contains(&"aligned") {
        return Err(p.bad("setmaxnreg form (needs .inc or .dec, .sync.aligned)"));
    }
    p.only(&["inc", "dec"])?;
    let n = super::text::parse_imm(&p.ops[0]).ok_or_else(|| p.bad("setmaxnreg count (an immediate)"))?;
    if !(24..=256).contains(&n) || n % 8 != 0 {
        return Err(format!("setmaxnreg count {n} is not a multiple of 8 in 24..=256 in `{}`", p.text));
    }
    inst.op = Op::SetMaxNReg { inc, count: n as u16 };
    Ok(())
}
