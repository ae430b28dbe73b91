//! `.func` calls, inlined where they are made (PTX ISA 9.7.13.3 `call`, 7 "Abstracting the ABI"):
//! the callee's body is lowered again at each call site in a block of its own (fresh registers,
//! its own labels, no view of the caller's names), its parameters and return values are the
//! caller's `.param` variables, which live in the thread's local memory, and its `ret` jumps to
//! its end. The executor never sees a call. Recursion (direct or not) is refused, as are
//! indirect calls; of the external functions nvcc declares, `__assertfail` (a failed `assert`)
//! is a trap that reports the assertion, and `vprintf` (`printf`) is refused.

use super::super::ir::*;
use super::decl::parse_func_header;
use super::operands::{FnCtx, Sym, R};
use super::text::{body_items, split_operands, Stmt};
use super::{align_up, lower_block, Cx, Frame};

/// Nested calls deeper than this are refused (each level is a copy of the callee).
const MAX_DEPTH: usize = 32;

fn int_ty(size: u32) -> R<Ty> {
    Ok(match size {
        1 => Ty::B8,
        2 => Ty::B16,
        4 => Ty::B32,
        8 => Ty::B64,
        _ => return Err(format!("a {size}-byte parameter passed in a register")),
    })
}

/// `(a, b)` → [a, b].
fn list(s: &str) -> Option<Vec<String>> {
    let inner = s.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some(split_operands(inner))
}

/// The local-memory address of `name` if it is a `.param` variable of the caller.
fn param_var(f: &FnCtx, name: &str) -> Option<u64> {
    match f.sym(name.trim()) {
        Some(Sym::Addr(a)) if (LOCAL_WINDOW..LOCAL_WINDOW + WINDOW_SIZE).contains(&a) => Some(a),
        _ => None,
    }
}

/// A fresh slot of local memory for a parameter passed as a register or immediate.
fn slot(f: &mut FnCtx, align: u32, size: u32) -> u64 {
    f.local = align_up(f.local, align.max(size));
    let a = LOCAL_WINDOW + f.local as u64;
    f.local += size;
    a
}

fn local_access(f: &mut FnCtx, store: bool, addr: u64, reg: u32, size: u32, line: u32) -> R<()> {
    let mut i = Inst::new(
        if store { Op::St { space: Space::Local, vec: 1 } } else { Op::Ld { space: Space::Local, vec: 1 } },
        line,
    );
    i.ty = int_ty(size)?;
    i.ty2 = i.ty;
    i.a = f.konst(ConstVal::Imm(addr));
    if store {
        i.b = reg;
    } else {
        i.d = reg;
    }
    f.insts.push(i);
    Ok(())
}

/// The value of argument `arg` (`size` bytes) in a register: loaded from a `.param` variable,
/// or the register or immediate itself.
fn arg_value(f: &mut FnCtx, arg: &str, size: u32, line: u32) -> R<u32> {
    match param_var(f, arg) {
        Some(a) => {
            let r = f.fresh();
            local_access(f, false, a, r, size, line)?;
            Ok(r)
        }
        None => f.reg(arg),
    }
}

/// Lowers `[@g] call[.uni] [(rets,)] func[, (args)];` by inlining `func`.
pub(super) fn inline(f: &mut FnCtx, cx: &Cx, st: &Stmt, fr: &mut Frame, errors: &mut Vec<String>) -> R<()> {
    let line = st.line;
    let mut text = st.text.as_str();
    let mut guard = None;
    if let Some(t) = text.strip_prefix('@') {
        let (g, rest) = t.split_once(char::is_whitespace).ok_or("guard without instruction")?;
        guard = Some(g);
        text = rest.trim_start();
    }
    let (opcode, ops) = text.split_once(|c: char| c.is_whitespace()).unwrap_or((text, ""));
    if let Some(m) = opcode.split('.').skip(1).find(|m| *m != "uni") {
        return Err(format!("unsupported modifier .{m} in `call`"));
    }
    let ops = split_operands(ops);
    let mut it = ops.iter().peekable();
    let rets = match it.peek() {
        Some(o) if o.starts_with('(') => list(it.next().map_or("", |s| s.as_str())).ok_or("bad return list")?,
        _ => Vec::new(),
    };
    let name = it.next().ok_or("call without a function")?.trim().to_string();
    let args = match it.next() {
        Some(a) => list(a).ok_or("bad argument list")?,
        None => Vec::new(),
    };
    if it.next().is_some() || name.starts_with('%') {
        return Err("indirect calls (through a function pointer and a prototype) are not supported".into());
    }
    let def = cx.md.funcs.get(&name).ok_or_else(|| format!("call to unknown function `{name}`"))?;
    let h = parse_func_header(&def.header).ok_or_else(|| format!("cannot parse the header of `{name}`"))?;
    if rets.len() != h.rets.len() || args.len() != h.params.len() {
        return Err(format!(
            "`{name}` takes {} parameters and returns {} values; the call passes {} and expects {}",
            h.params.len(),
            h.rets.len(),
            args.len(),
            rets.len()
        ));
    }
    // A guarded call: the lanes whose guard is false jump over it.
    let skip = match guard {
        Some(g) => {
            let (neg, reg) = match g.strip_prefix('!') {
                Some(r) => (true, r),
                None => (false, g),
            };
            let mut b = Inst::new(Op::Bra { target: 0 }, line);
            b.guard = f.reg(reg)?;
            b.guard_neg = !neg;
            f.insts.push(b);
            Some(f.insts.len() - 1)
        }
        None => None,
    };
    let Some((s, e, body_line)) = def.body else {
        extern_call(f, &name, &args, line)?;
        if let Some(i) = skip {
            f.insts[i].op = Op::Bra { target: f.insts.len() as u32 };
        }
        return Ok(());
    };
    if let Some(at) = fr.stack.iter().position(|n| *n == name) {
        let chain = fr.stack[at..].iter().chain(std::iter::once(&name)).cloned().collect::<Vec<_>>().join(" -> ");
        return Err(format!("recursive call {chain}: recursion is not supported (calls are inlined)"));
    }
    if fr.stack.len() >= MAX_DEPTH {
        return Err(format!("calls nested deeper than {MAX_DEPTH} levels"));
    }
    // Bind the callee's parameters and return values to the caller's `.param` variables (or to
    // fresh slots holding a register argument), resolved in the caller's block.
    let mut binds = Vec::new();
    for (d, arg) in h.params.iter().zip(&args) {
        let a = match param_var(f, arg) {
            Some(a) => a,
            None => {
                let size = d.size.unwrap_or(d.elem);
                let a = slot(f, d.align, size);
                let r = f.reg(arg)?;
                local_access(f, true, a, r, size, line)?;
                a
            }
        };
        binds.push((d.name.clone(), a));
    }
    let mut after = Vec::new();
    for (d, ret) in h.rets.iter().zip(&rets) {
        let a = match param_var(f, ret) {
            Some(a) => a,
            None => {
                let size = d.size.unwrap_or(d.elem);
                let a = slot(f, d.align, size);
                after.push((f.reg(ret)?, a, size));
                a
            }
        };
        binds.push((d.name.clone(), a));
    }
    let items = body_items(cx.b, s, e, body_line);
    let caller = f.open(false);
    for (n, a) in binds {
        f.scopes[f.cur].syms.insert(n, Sym::Addr(a));
    }
    fr.stack.push(name);
    let mut ret_at = Vec::new();
    let mut sub = Frame { rets: Some(&mut ret_at), stack: fr.stack };
    lower_block(f, cx, &items, &mut sub, errors);
    fr.stack.pop();
    f.cur = caller;
    let end = f.insts.len() as u32;
    for i in ret_at {
        f.insts[i].op = Op::Bra { target: end };
    }
    for (r, a, size) in after {
        local_access(f, false, a, r, size, line)?;
    }
    if let Some(i) = skip {
        f.insts[i].op = Op::Bra { target: f.insts.len() as u32 };
    }
    Ok(())
}

/// A call to a function declared without a body in this module.
fn extern_call(f: &mut FnCtx, name: &str, args: &[String], line: u32) -> R<()> {
    match name {
        // __assertfail(message, file, line, function, char size)
        "__assertfail" if args.len() == 5 => {
            let mut t = Inst::new(Op::Trap { assert: true }, line);
            t.a = arg_value(f, &args[0], 8, line)?;
            t.b = arg_value(f, &args[1], 8, line)?;
            t.c = arg_value(f, &args[2], 4, line)?;
            t.e = arg_value(f, &args[3], 8, line)?;
            f.insts.push(t);
            Ok(())
        }
        "vprintf" => Err("printf (a call to vprintf) is not supported by the emulator".into()),
        "malloc" | "free" => Err(format!("device-side {name} is not supported by the emulator")),
        _ => Err(format!("call to external function `{name}`, which has no body in this module")),
    }
}
