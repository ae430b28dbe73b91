//! Lowering of barriers: `bar.sync` / `barrier.sync` / `bar.arrive` (CTA-wide or named, with an
//! optional thread count) and `bar.warp.sync`.

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

pub(super) fn barrier(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let arrive = p.rest.contains(&"arrive");
    let red = p.rest.iter().any(|m| matches!(*m, "red" | "popc" | "and" | "or"));
    if red {
        return Err(p.bad("barrier reduction"));
    }
    if p.rest.contains(&"warp") {
        inst.op = Op::WarpSync;
        p.nops(1)?;
        inst.a = f.reg(&p.ops[0])?;
    } else {
        p.only(&["arrive", "cta"])?;
        inst.op = Op::Bar { arrive };
        if p.ops.is_empty() || p.ops.len() > 2 {
            return Err(p.bad("barrier operands"));
        }
        inst.a = f.reg(&p.ops[0])?;
        if let Some(b) = p.ops.get(1) {
            inst.b = f.reg(b)?;
        }
    }
    Ok(())
}
