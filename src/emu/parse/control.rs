//! Lowering of control flow (`bra`, `ret`, `exit`) and of the instructions that only order
//! memory or give hints, which have no effect in a sequentially consistent, cache-less emulator.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

/// bra LABEL: the target is resolved when the whole body has been lowered.
pub(super) fn bra(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(1)?;
    p.only(&[])?;
    inst.op = Op::Bra { target: 0 };
    f.fixups.push((f.insts.len(), p.ops[0].clone()));
    Ok(())
}

/// ret / exit (an entry's `ret` ends the thread).
pub(super) fn exit(inst: &mut Inst) {
    inst.op = Op::Exit;
}

/// membar, fence, prefetch, nanosleep, griddepcontrol.
pub(super) fn hint(inst: &mut Inst) {
    inst.op = Op::Nop;
}
