//! Lowering of synchronization: `bar.sync` / `barrier.sync` / `bar.arrive` (CTA-wide or named,
//! with an optional thread count), `bar.warp.sync`, `barrier.cluster.{arrive,wait}`, the
//! `mbarrier.*` family and `cp.async.mbarrier.arrive`, and the fences (`membar`, `fence.*`).

use super::super::ir::*;
use super::inst::Parts;
use super::operands::{FnCtx, R};

pub(super) fn barrier(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let arrive = p.rest.contains(&"arrive");
    let red = p.rest.iter().any(|m| matches!(*m, "red" | "popc" | "and" | "or"));
    if red {
        return Err(p.bad("barrier reduction"));
    }
    if p.mods.first() == Some(&"cluster") {
        // barrier.cluster.arrive{.release,.relaxed}{.aligned} / barrier.cluster.wait{.acquire}{.aligned}
        p.nops(0)?;
        let wait = p.rest.contains(&"wait");
        if wait == arrive {
            return Err(p.bad("barrier.cluster form"));
        }
        p.only(&["arrive", "wait"])?;
        inst.op = Op::BarCluster { wait };
        return Ok(());
    }
    if p.rest.contains(&"warp") {
        inst.op = Op::WarpSync;
        p.nops(1)?;
        inst.a = f.reg(&p.ops[0])?;
    } else {
        p.only(&["arrive"])?;
        inst.op = Op::Bar { arrive };
        if p.ops.is_empty() || p.ops.len() > 2 || (arrive && p.ops.len() != 2) {
            return Err(p.bad("barrier operands"));
        }
        inst.a = f.reg(&p.ops[0])?;
        if let Some(b) = p.ops.get(1) {
            inst.b = f.reg(b)?;
        }
    }
    Ok(())
}

/// `mbarrier.*` (PTX ISA 9.7.13.15.9-17).
pub(super) fn mbarrier(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let what = *p.mods.first().ok_or_else(|| p.bad("mbarrier operation"))?;
    if p.types.first() != Some(&Ty::B64) {
        return Err(p.bad("mbarrier type (.b64)"));
    }
    let remote = p.mods.contains(&"shared::cluster");
    let addr = |f: &mut FnCtx, inst: &mut Inst, s: &str| -> R<()> {
        let (base, off) = f.addr(s)?;
        inst.a = base;
        inst.imm = off;
        Ok(())
    };
    let op = match what {
        "init" => {
            p.nops(2)?;
            p.only(&["init"])?;
            addr(f, inst, &p.ops[0])?;
            inst.b = f.reg(&p.ops[1])?;
            MbarOp::Init
        }
        "arrive" | "arrive_drop" => {
            let expect_tx = p.rest.contains(&"expect_tx");
            let no_complete = p.rest.contains(&"noComplete");
            p.only(&["arrive", "arrive_drop", "expect_tx", "noComplete"])?;
            if p.ops.len() != 2 && p.ops.len() != 3 {
                return Err(p.bad("mbarrier.arrive operands"));
            }
            if (expect_tx || no_complete) && p.ops.len() != 3 {
                return Err(p.bad("mbarrier.arrive count operand"));
            }
            // A barrier in another CTA's shared memory returns no state (PTX ISA 9.7.13.15.13).
            if remote && p.ops[0].trim() != "_" {
                return Err(p.bad("mbarrier.arrive.shared::cluster destination (must be `_`)"));
            }
            if p.ops[0].trim() != "_" {
                inst.d = f.reg(&p.ops[0])?;
            }
            addr(f, inst, &p.ops[1])?;
            if let Some(b) = p.ops.get(2) {
                inst.b = f.reg(b)?;
            }
            MbarOp::Arrive { expect_tx, drop: what == "arrive_drop", no_complete, remote }
        }
        "expect_tx" | "complete_tx" => {
            p.nops(2)?;
            p.only(&[what])?;
            addr(f, inst, &p.ops[0])?;
            inst.b = f.reg(&p.ops[1])?;
            if what == "expect_tx" {
                MbarOp::ExpectTx
            } else {
                MbarOp::CompleteTx
            }
        }
        "test_wait" | "try_wait" => {
            let parity = p.rest.contains(&"parity");
            p.only(&[what, "parity"])?;
            let try_wait = what == "try_wait";
            // try_wait takes an optional suspend-time hint (ignored: the emulator never times out).
            if p.ops.len() != 3 && !(try_wait && p.ops.len() == 4) {
                return Err(p.bad("mbarrier wait operands"));
            }
            if remote {
                return Err(p.bad("mbarrier wait on .shared::cluster"));
            }
            inst.d = f.reg(&p.ops[0])?;
            addr(f, inst, &p.ops[1])?;
            inst.b = f.reg(&p.ops[2])?;
            MbarOp::Wait { parity, try_wait }
        }
        "inval" => {
            p.nops(1)?;
            p.only(&["inval"])?;
            addr(f, inst, &p.ops[0])?;
            MbarOp::Inval
        }
        "pending_count" => {
            p.nops(2)?;
            p.only(&["pending_count"])?;
            inst.d = f.reg(&p.ops[0])?;
            inst.b = f.reg(&p.ops[1])?;
            MbarOp::PendingCount
        }
        _ => return Err(p.bad("mbarrier operation")),
    };
    if remote && !matches!(op, MbarOp::Arrive { .. } | MbarOp::ExpectTx | MbarOp::CompleteTx) {
        return Err(p.bad("mbarrier operation on .shared::cluster"));
    }
    inst.op = Op::Mbar(op);
    Ok(())
}

/// cp.async.mbarrier.arrive{.noinc}{.shared{::cta}}.b64 [addr] (PTX ISA 9.7.13.15.15).
pub(super) fn cp_async_mbarrier_arrive(f: &mut FnCtx, p: &Parts, inst: &mut Inst) -> R<()> {
    let noinc = p.rest.contains(&"noinc");
    p.only(&["async", "mbarrier", "arrive", "noinc"])?;
    p.nops(1)?;
    let (base, off) = f.addr(&p.ops[0])?;
    inst.a = base;
    inst.imm = off;
    inst.op = Op::Mbar(MbarOp::CpAsyncArrive { noinc });
    Ok(())
}

/// membar.{cta,gl,sys}, fence.{sc,acq_rel}.scope, fence.proxy.*, fence.mbarrier_init.
pub(super) fn fence(p: &Parts, inst: &mut Inst) -> R<()> {
    p.nops(0)?;
    let kind = if p.mn == "membar" {
        p.only(&["gl"])?;
        FenceKind::Memory
    } else if p.rest.first() == Some(&"mbarrier_init") {
        p.only(&["mbarrier_init"])?;
        FenceKind::MbarrierInit
    } else if p.rest.first() == Some(&"proxy") {
        match p.rest.get(1) {
            Some(&"async") => {
                p.only(&["proxy", "async"])?;
                FenceKind::ProxyAsync(p.space)
            }
            Some(m) if *m == "alias" || m.starts_with("tensormap::") => FenceKind::ProxyOther,
            _ => return Err(p.bad("fence.proxy kind")),
        }
    } else {
        p.only(&[])?;
        FenceKind::Memory
    };
    inst.op = Op::Fence(kind);
    Ok(())
}

/// The cluster directives of an entry's header (PTX ISA 11.7): whether it is launched as an
/// explicit cluster; an error when it needs clusters of more than one CTA.
pub(super) fn cluster_directives(header: &str) -> R<bool> {
    let after = header.rfind(')').map_or("", |i| &header[i + 1..]);
    if let Some(i) = after.find(".reqnctapercluster") {
        let dims = after[i + ".reqnctapercluster".len()..].split('.').next().unwrap_or("");
        // Saturating: a hostile header's dimensions must not overflow.
        let n = dims.split(',').filter_map(|d| d.trim().parse::<u64>().ok()).fold(1u64, u64::saturating_mul);
        if n > 1 {
            return Err(format!(
                "the entry needs clusters of {n} CTAs (.reqnctapercluster{dims}); the emulator runs clusters of one CTA"
            ));
        }
    }
    Ok(after.contains(".explicitcluster") || after.contains(".reqnctapercluster"))
}
