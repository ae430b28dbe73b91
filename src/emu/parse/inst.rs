//! One instruction statement: its guard, opcode and modifiers decoded into [`Parts`], then handed
//! to the lowering of its family by mnemonic (one file per family, as in `exec/`).

use super::super::ir::*;
use super::operands::{FnCtx, R};
use super::text::{split_operands, Stmt};
use super::{alu, control, float, memory, sync, tensor, warp, wmma};

/// An instruction statement split into what every family needs.
pub(super) struct Parts<'t> {
    /// The whole statement (for error messages).
    pub(super) text: &'t str,
    /// The mnemonic: `add` of `add.rn.f32`.
    pub(super) mn: &'t str,
    /// Every modifier after the mnemonic, in order.
    pub(super) mods: Vec<&'t str>,
    /// The type modifiers in order (also decoded into [`Inst::ty`] and [`Inst::ty2`]).
    pub(super) types: Vec<Ty>,
    pub(super) space: Option<Space>,
    /// `.v2 .v4 .v8` (1 without).
    pub(super) vec: u8,
    /// Modifiers that are not a type, rounding, `.ftz`, `.sat`, space, vector width or hint: the
    /// family decides what they mean, and refuses the ones it does not know ([`Parts::only`]).
    pub(super) rest: Vec<&'t str>,
    pub(super) ops: Vec<String>,
}

impl Parts<'_> {
    pub(super) fn bad(&self, what: &str) -> String {
        format!("unsupported {what} in `{}`", self.text)
    }
    /// Exactly `n` operands.
    pub(super) fn nops(&self, n: usize) -> R<()> {
        if self.ops.len() == n {
            Ok(())
        } else {
            Err(format!("expected {n} operands in `{}`", self.text))
        }
    }
    /// No modifier in [`Parts::rest`] outside `allowed`.
    pub(super) fn only(&self, allowed: &[&str]) -> R<()> {
        match self.rest.iter().find(|m| !allowed.contains(m)) {
            Some(m) => Err(format!("unsupported modifier .{m} in `{}`", self.text)),
            None => Ok(()),
        }
    }
}

fn parse_space(m: &str) -> Option<Space> {
    Some(match m {
        "global" => Space::Global,
        // Clusters of one CTA: the cluster's shared window is the CTA's.
        "shared" | "shared::cta" | "shared::cluster" => Space::Shared,
        "local" => Space::Local,
        "param" | "param::entry" | "param::func" => Space::Param,
        "const" => Space::Const,
        _ => return None,
    })
}

/// Modifiers that change nothing in a sequentially consistent, cache-less emulator (memory-order
/// and scope qualifiers are not among them: they are kept in [`Inst::sem`]).
fn is_hint(m: &str) -> bool {
    m.starts_with("L1::")
        || m.starts_with("L2::")
        || matches!(
            m,
            "nc" | "ca"
                | "cg"
                | "cs"
                | "lu"
                | "cv"
                | "wb"
                | "wt"
                | "sync"
                | "aligned"
                | "uni"
                | "approx"
                | "full"
                | "noftz"
        )
}

fn rnd_of(m: &str) -> Option<Rnd> {
    Some(match m {
        "rn" => Rnd::Rn,
        "rz" => Rnd::Rz,
        "rm" => Rnd::Rm,
        "rp" => Rnd::Rp,
        "rni" => Rnd::Rni,
        "rzi" => Rnd::Rzi,
        "rmi" => Rnd::Rmi,
        "rpi" => Rnd::Rpi,
        _ => return None,
    })
}

/// Lowers one instruction statement (`None`: it lowers to nothing, e.g. `.pragma`).
pub(super) fn lower_inst(f: &mut FnCtx, st: &Stmt) -> R<Option<Inst>> {
    let mut text = st.text.as_str();
    let mut guard = None;
    if let Some(t) = text.strip_prefix('@') {
        let (g, rest) = t.split_once(char::is_whitespace).ok_or("guard without instruction")?;
        guard = Some(g.to_string());
        text = rest.trim_start();
    }
    let (opcode, ops) = match text.find(char::is_whitespace) {
        Some(i) => (&text[..i], text[i..].trim()),
        None => (text, ""),
    };
    let ops = split_operands(ops);
    let mut pieces = opcode.split('.');
    let mn = pieces.next().unwrap_or("");
    let mods: Vec<&str> = pieces.collect();
    let mut inst = Inst::new(Op::Nop, st.line);
    if let Some(g) = guard {
        let (neg, name) = match g.strip_prefix('!') {
            Some(n) => (true, n),
            None => (false, g.as_str()),
        };
        inst.guard = f.reg(name)?;
        inst.guard_neg = neg;
    }
    // Decode the common modifiers: types (first = ty, second = ty2), rounding, ftz, sat, space.
    let mut types = Vec::new();
    let mut space = None;
    let mut vec = 1u8;
    let mut rest: Vec<&str> = Vec::new();
    for &m in &mods {
        if let Some(t) = Ty::parse(m) {
            types.push(t);
        } else if let Some(r) = rnd_of(m) {
            inst.rnd = r;
        } else if m == "ftz" {
            inst.ftz = true;
        } else if m == "sat" || m == "satfinite" {
            inst.sat = true;
        } else if let Some(s) = parse_space(m) {
            space = Some(s);
        } else if m == "v2" || m == "v4" || m == "v8" {
            vec = m[1..].parse().unwrap_or(1);
        } else if inst.sem.decode(m) {
            // memory order / scope: kept in the instruction
        } else if !is_hint(m) {
            rest.push(m);
        }
    }
    if let Some(&t) = types.first() {
        inst.ty = t;
        inst.ty2 = t;
    }
    if let Some(&t) = types.get(1) {
        inst.ty2 = t;
    }
    let p = Parts { text: st.text.as_str(), mn, mods, types, space, vec, rest, ops };
    let i = &mut inst;
    let float = i.ty.is_float();
    match mn {
        // Mnemonics shared by integer and float types go by the (first) type.
        "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" if float => {
            float::binary(f, &p, i)?
        }
        "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" => {
            alu::binary(f, &p, i)?
        }
        "mad" | "fma" if float => float::fma(f, &p, i)?,
        "mad" | "fma" => alu::mad(f, &p, i)?,
        "abs" | "neg" | "not" | "popc" | "clz" | "brev" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos"
        | "tanh"
            if float =>
        {
            float::unary(f, &p, i)?
        }
        "abs" | "neg" | "not" | "popc" | "clz" | "brev" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos"
        | "tanh" | "bfind" => alu::unary(f, &p, i)?,
        "bfe" | "bfi" | "prmt" | "lop3" | "shf" => alu::bits(f, &p, i)?,
        "setp" | "set" => alu::compare(f, &p, i)?,
        "selp" => alu::selp(f, &p, i)?,
        "mov" => alu::mov(f, &p, i)?,
        "cvt" => float::cvt(f, &p, i)?,
        "cvta" => memory::cvta(f, &p, i)?,
        "ld" | "ldu" | "st" => memory::ld_st(f, &p, i)?,
        "atom" | "red" => memory::atom(f, &p, i)?,
        "ldmatrix" => memory::ldmatrix(f, &p, i)?,
        "cp" => memory::cp_async(f, &p, i)?,
        "mapa" => memory::mapa(f, &p, i)?,
        "prefetch" | "prefetchu" => memory::prefetch(f, &p, i)?,
        "mbarrier" => sync::mbarrier(f, &p, i)?,
        "membar" | "fence" => sync::fence(&p, i)?,
        "elect" => warp::elect(f, &p, i)?,
        "setmaxnreg" => control::setmaxnreg(&p, i)?,
        "nanosleep" => control::nanosleep(i),
        "shfl" => warp::shfl(f, &p, i)?,
        "vote" => warp::vote(f, &p, i)?,
        "redux" => warp::redux(f, &p, i)?,
        "activemask" => warp::activemask(f, &p, i)?,
        "match" => warp::match_sync(f, &p, i)?,
        "bar" | "barrier" => sync::barrier(f, &p, i)?,
        "mma" => tensor::mma(f, &p, i)?,
        "wmma" => wmma::wmma(f, &p, i)?,
        "wgmma" => tensor::wgmma(f, &p, i)?,
        "stmatrix" => tensor::stmatrix(f, &p, i)?,
        "bra" => control::bra(f, &p, i)?,
        "ret" | "exit" => control::exit(i),
        "trap" => control::trap(&p, i)?,
        "griddepcontrol" => control::hint(i),
        "pragma" | "" => return Ok(None),
        _ => return Err(format!("unsupported instruction `{opcode}`")),
    }
    Ok(Some(inst))
}
