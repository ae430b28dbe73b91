//! A small hand-written parser for the PTX nvcc emits, lowering each `.entry` straight to the
//! [`ir`](super::ir) form. nvcc's output is regular (one statement per `;`, labels on their own,
//! `.loc`/`.file` lines without `;`, inline-asm scopes in braces), so a statement splitter plus an
//! opcode table covers it; anything unknown is reported with its line, never skipped.
//!
//! - this file: the module (its variables, functions and entries), then one entry's body:
//!   parameters, shared-memory layout, `{ }` blocks, declarations, labels and branch targets,
//!   every unsupported line collected, then register allocation;
//! - [`decl`]: variable declarations with their initializers, `.func` headers;
//! - [`call`]: `.func` calls, inlined (parameters and return values through local memory);
//! - [`text`]: comments, statements, labels, operand lists, immediates;
//! - [`operands`]: register names, special registers and symbols resolved to register indices,
//!   in the scope of the `{ }` block they appear in;
//! - [`inst`]: one instruction's guard and modifiers, dispatched by mnemonic to its family:
//!   [`alu`] (integer, bit, compare, move), [`float`] (float arithmetic, conversions),
//!   [`memory`] (ld/st, atomics, ldmatrix, cp.async), [`warp`] (shfl, vote, redux, match),
//!   [`sync`] (barriers), [`tensor`] (mma), [`wmma`] (wmma load/store/mma), [`control`]
//!   (branches, exit, trap, hints).

mod alu;
mod call;
mod control;
mod decl;
mod float;
mod inst;
mod memory;
mod operands;
mod sync;
mod tensor;
mod text;
mod warp;
mod wmma;

use super::ir::*;
use super::regalloc;
use decl::{init_bytes, parse_decl, parse_func_header, Decl};
use inst::lower_inst;
use operands::{FnCtx, Scope, Sym, RESERVED_SMEM};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use text::{body_items, split_operands, strip_comments, BodyItem, Cursor, Stmt};

/// Lowered kernels of one module, by entry name; an entry that failed to lower keeps its error
/// (reported when it is launched, so one unsupported kernel does not block its neighbours).
pub type LoweredModule = HashMap<String, Result<Arc<Kernel>, String>>;

/// Where a module's `.global` variables live: a device's global memory. The emulator places
/// each variable an entry uses once per module and device (as CUDA does per context), writes its
/// initializer, and bakes its address into the kernels.
pub trait ModuleGlobals {
    /// Allocates `bytes` (at least 1) aligned to `align`; returns the address.
    fn alloc(&mut self, bytes: usize, align: u32) -> Result<u64, String>;
    /// Writes the initial value at `addr` (counts as initialized for the sanitizer).
    fn write(&mut self, addr: u64, data: &[u8]) -> Result<(), String>;
}

fn align_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a.max(1)).saturating_mul(a.max(1))
}

/// Hopper's limits on what an entry declares (a declaration beyond them is no PTX ptxas takes;
/// bounding them keeps the sums below in range and the emulator's memory small): kernel
/// parameters, static shared memory per block, local memory per thread, the constant bank.
/// Sizes add saturating, then are checked against these.
const MAX_PARAM_BYTES: u32 = 32764;
const MAX_SHARED_BYTES: u32 = 227 << 10;
const MAX_LOCAL_BYTES: u32 = 512 << 10;
const MAX_CONST_BYTES: usize = 64 << 10;

/// A `.func` of the module: its header and body (`None`: declared `.extern`, no body here).
struct FuncDef {
    header: String,
    body: Option<(usize, usize, u32)>,
}

/// Module-level declarations, visible to every entry.
struct ModDecls {
    /// `.shared` variables with a size, in declaration order; `extern` ones without (all of them
    /// alias the start of dynamic shared memory).
    shared_static: Vec<Decl>,
    shared_dyn: Vec<Decl>,
    /// `.const` and `.global` variables by name (index into `errors` for those that cannot be used).
    syms: HashMap<String, Sym>,
    errors: Vec<String>,
    const_data: Vec<u8>,
    funcs: HashMap<String, FuncDef>,
}

/// Whether `text` mentions the identifier `name` (not as part of a longer one).
fn mentions(text: &[u8], name: &str) -> bool {
    let is = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'%';
    let n = name.as_bytes();
    if n.is_empty() || n.len() > text.len() {
        return false;
    }
    let mut i = 0;
    while i + n.len() <= text.len() {
        // Candidates start at the name's first byte.
        match text[i..=text.len() - n.len()].iter().position(|&c| c == n[0]) {
            None => return false,
            Some(j) => i += j,
        }
        if &text[i..i + n.len()] == n && (i == 0 || !is(text[i - 1])) && text.get(i + n.len()).is_none_or(|&c| !is(c)) {
            return true;
        }
        i += 1;
    }
    false
}

/// The bodies of an entry and of the functions it calls, directly or not.
fn reachable_bodies<'b>(b: &'b [u8], body: (usize, usize), md: &ModDecls) -> Vec<&'b [u8]> {
    let mut out = vec![&b[body.0..body.1]];
    let mut seen = HashSet::new();
    let mut k = 0;
    while k < out.len() {
        let text = out[k];
        for (n, f) in &md.funcs {
            if let Some((s, e, _)) = f.body {
                if !seen.contains(n) && mentions(text, n) {
                    seen.insert(n.clone());
                    out.push(&b[s..e]);
                }
            }
        }
        k += 1;
    }
    out
}

/// Module context of one entry's lowering.
struct Cx<'m> {
    b: &'m [u8],
    md: &'m ModDecls,
}

fn lower_entry(header: &str, cx: &Cx, body: (usize, usize, u32), alloc: bool) -> Result<Kernel, (String, String)> {
    let md = cx.md;
    let name = header
        .split(".entry")
        .nth(1)
        .and_then(|t| t.split('(').next())
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let err = |e: String| (name.clone(), e);
    // PTX is ASCII text (comments, stripped before, aside); the lowering slices it by bytes.
    let text = cx.b.get(body.0..body.1).unwrap_or(&[]);
    if let Some(at) = text.iter().chain(header.as_bytes()).position(|c| !c.is_ascii()) {
        let line = body.2 as usize + text[..at.min(text.len())].iter().filter(|&&c| c == b'\n').count();
        return Err(err(format!("line {line}: a byte that is not ASCII (PTX is ASCII text)")));
    }
    let explicit_cluster = sync::cluster_directives(header).map_err(err)?;
    // Parameters: the kernel's parameter buffer, laid out in declaration order.
    let mut params = Vec::new();
    let mut root = Scope::default();
    let mut off = 0u32;
    if let Some((l, r)) = header.find('(').zip(header.rfind(')')).filter(|(l, r)| l < r) {
        for p in split_operands(&header[l + 1..r]) {
            let p = p.replace(".param", "");
            let d = parse_decl(&p).ok_or_else(|| err(format!("cannot parse parameter `{p}`")))?;
            let size = d.size.unwrap_or(d.elem);
            off = align_up(off, d.align.max(d.elem));
            let ty =
                p.split_whitespace().find(|t| t.starts_with('.') && *t != ".align" && Ty::parse(&t[1..]).is_some());
            let ty = match (ty, size == d.elem) {
                (Some(t), true) => t.to_string(),
                (t, _) => format!("{}[{}]", t.unwrap_or(".b8"), size / d.elem),
            };
            params.push(ParamDecl { offset: off, size, name: d.name.clone(), ty });
            root.syms.insert(d.name, Sym::Addr(PARAM_WINDOW + off as u64));
            off = off.saturating_add(size);
        }
    }
    if off > MAX_PARAM_BYTES {
        return Err(err(format!("{off} bytes of parameters, more than the {MAX_PARAM_BYTES} a kernel takes")));
    }
    let items = body_items(cx.b, body.0, body.1, body.2);
    // Shared memory: the runtime's reserved region (if read), the module's static variables this
    // entry (or a function it calls) uses, the body's own, then dynamic shared memory, where
    // every `extern` array starts.
    let bodies = reachable_bodies(cx.b, (body.0, body.1), md);
    let used = |name: &str| bodies.iter().any(|t| mentions(t, name));
    let mut kernel_syms = HashMap::new();
    let pat: &[u8] = b"%reserved_smem_offset";
    let reserved = if bodies.iter().any(|t| t.windows(pat.len()).any(|w| w == pat)) { RESERVED_SMEM } else { 0 };
    let mut shared = reserved;
    let mut dyn_decls: Vec<&Decl> = md.shared_dyn.iter().filter(|d| used(&d.name)).collect();
    let body_decls: Vec<Decl> = items
        .iter()
        .filter_map(|it| match it {
            BodyItem::Stmt(st) if st.text.starts_with(".shared") || st.text.starts_with(".extern .shared") => {
                Some(parse_decl(&st.text).ok_or_else(|| err(format!("line {}: cannot parse `{}`", st.line, st.text))))
            }
            _ => None,
        })
        .collect::<Result<_, _>>()?;
    for d in md.shared_static.iter().filter(|d| used(&d.name)).chain(body_decls.iter()) {
        match d.size {
            Some(sz) => {
                shared = align_up(shared, d.align);
                kernel_syms.insert(d.name.clone(), Sym::Addr(shared as u64));
                shared = shared.saturating_add(sz);
            }
            None => dyn_decls.push(d),
        }
    }
    if shared > MAX_SHARED_BYTES {
        return Err(err(format!(
            "{shared} bytes of static shared memory, more than the {MAX_SHARED_BYTES} a block has"
        )));
    }
    let dyn_align = dyn_decls.iter().map(|d| d.align).max().unwrap_or(16).max(16);
    let shared_static = align_up(shared, dyn_align);
    for d in dyn_decls {
        kernel_syms.insert(d.name.clone(), Sym::Addr(shared_static as u64));
    }
    let mut f = FnCtx {
        scopes: vec![root],
        cur: 0,
        nregs: 0,
        consts: Vec::new(),
        const_map: HashMap::new(),
        kernel_syms,
        module_syms: &md.syms,
        module_errors: &md.errors,
        insts: Vec::new(),
        ext: Vec::new(),
        fixups: Vec::new(),
        local: 0,
    };
    let mut errors = Vec::new();
    let mut stack = Vec::new();
    lower_block(&mut f, cx, &items, &mut Frame { rets: None, stack: &mut stack }, &mut errors);
    // A kernel that falls off its end exits.
    let last_line = f.insts.last().map_or(body.2, |i| i.line);
    f.insts.push(Inst::new(Op::Exit, last_line));
    for (i, label, scope) in std::mem::take(&mut f.fixups) {
        match f.label(label.trim(), scope) {
            Some(t) => f.insts[i].op = Op::Bra { target: t },
            None => errors.push(format!("line {}: unknown label `{label}`", f.insts[i].line)),
        }
    }
    if f.local > MAX_LOCAL_BYTES {
        errors.push(format!(
            "{} bytes of local memory per thread, more than the {MAX_LOCAL_BYTES} a thread has",
            f.local
        ));
    }
    if !errors.is_empty() {
        let n = errors.len();
        let lines = if n == 1 { "1 line".to_string() } else { format!("{n} lines") };
        return Err(err(format!("{lines} cannot be lowered:\n  {}", errors.join("\n  "))));
    }
    let mut k = Kernel {
        name,
        insts: f.insts,
        ext: f.ext,
        nregs: f.nregs,
        vregs: f.nregs,
        consts: f.consts,
        params,
        param_bytes: off,
        shared_static,
        reserved_smem: reserved,
        local_bytes: align_up(f.local, 16),
        const_data: Arc::new(md.const_data.clone()),
        explicit_cluster,
        wg: None,
    };
    if alloc {
        regalloc::allocate(&mut k).map_err(|e| (k.name.clone(), e))?;
    }
    Ok(k)
}

/// What the block being lowered belongs to: an inlined function (its `ret`s, to point at its
/// end) and the chain of functions being inlined (to refuse recursion).
struct Frame<'a> {
    rets: Option<&'a mut Vec<usize>>,
    stack: &'a mut Vec<String>,
}

/// Lowers a body's items into `f`: `{ }` blocks open and close scopes, declarations declare in
/// the current one, calls are inlined. Every line that cannot be lowered is added to `errors`.
fn lower_block(f: &mut FnCtx, cx: &Cx, items: &[BodyItem], fr: &mut Frame, errors: &mut Vec<String>) {
    let mut outer = Vec::new();
    for it in items {
        match it {
            BodyItem::Label(l) => {
                let at = f.insts.len() as u32;
                if f.scopes[f.cur].labels.insert(l.clone(), at).is_some() {
                    errors.push(format!("label `{l}` defined twice in one block"));
                }
            }
            BodyItem::Open => outer.push(f.open(true)),
            BodyItem::Close => {
                if let Some(o) = outer.pop() {
                    f.cur = o;
                }
            }
            BodyItem::Stmt(st) => {
                if let Err(e) = lower_stmt(f, cx, st, fr, errors) {
                    errors.push(format!("line {}: {e}", st.line));
                }
            }
        }
    }
}

fn lower_stmt(
    f: &mut FnCtx,
    cx: &Cx,
    st: &Stmt,
    fr: &mut Frame,
    errors: &mut Vec<String>,
) -> std::result::Result<(), String> {
    let t = st.text.as_str();
    if t.starts_with('.') {
        return declare(f, t);
    }
    let unguarded = match t.strip_prefix('@') {
        Some(g) => g.split_once(char::is_whitespace).map_or("", |x| x.1).trim_start(),
        None => t,
    };
    let mn = unguarded.split(|c: char| c == '.' || c.is_whitespace()).next().unwrap_or("");
    if mn == "call" {
        return call::inline(f, cx, st, fr, errors);
    }
    let Some(mut inst) = lower_inst(f, st)? else { return Ok(()) };
    match inst.op {
        // A function's parameters and return values live in local memory (see `call`).
        Op::Ld { space: Space::Param, vec } | Op::St { space: Space::Param, vec } if f.is_local_param(inst.a) => {
            let st = matches!(inst.op, Op::St { .. });
            inst.op = if st { Op::St { space: Space::Local, vec } } else { Op::Ld { space: Space::Local, vec } };
        }
        // `ret` of an inlined function jumps to its end.
        Op::Exit if mn == "ret" => {
            if let Some(rets) = fr.rets.as_deref_mut() {
                rets.push(f.insts.len());
                inst.op = Op::Bra { target: 0 };
            }
        }
        _ => {}
    }
    f.insts.push(inst);
    Ok(())
}

/// A declaration inside a body.
fn declare(f: &mut FnCtx, t: &str) -> std::result::Result<(), String> {
    let d = t.split_whitespace().next().unwrap_or("");
    match d {
        ".reg" => {
            let names: Vec<&str> = t.split_whitespace().skip(1).skip_while(|w| w.starts_with('.')).collect();
            let sc = &mut f.scopes[f.cur];
            for n in names.join(" ").split(',') {
                let n = n.trim();
                if let Some((p, cnt)) = n.split_once('<') {
                    let c: u32 = cnt.trim_end_matches('>').parse().map_err(|_| format!("bad .reg `{t}`"))?;
                    sc.ranges.insert(p.to_string(), c);
                    sc.regs.retain(|k, _| !k.starts_with(p));
                } else if !n.is_empty() {
                    sc.declared.insert(n.to_string());
                    sc.regs.remove(n);
                }
            }
            Ok(())
        }
        // Per-thread local memory: `.local` arrays, and the `.param` variables of a call sequence.
        ".local" | ".param" => {
            let v = parse_decl(t).ok_or_else(|| format!("cannot parse `{t}`"))?;
            let size = v.size.ok_or_else(|| format!("unsized `{t}`"))?;
            f.local = align_up(f.local, v.align);
            let addr = if d == ".param" { LOCAL_WINDOW + f.local as u64 } else { f.local as u64 };
            f.scopes[f.cur].syms.insert(v.name, Sym::Addr(addr));
            f.local = f.local.saturating_add(size);
            Ok(())
        }
        // Laid out before the body (see `lower_entry`).
        ".shared" | ".extern" | ".pragma" => Ok(()),
        _ => Err(format!("unsupported directive `{t}`")),
    }
}

/// Parses a module's PTX and lowers every `.entry`, with register reuse ([`regalloc`]).
/// Module `.global` variables cannot be used without a device to hold them (see
/// [`lower_module_in`]).
pub fn lower_module(src: &str) -> LoweredModule {
    lower_module_in(src, true, None)
}

/// [`lower_module`], optionally keeping one slot per virtual register (`allocate: false`, for
/// checking the allocation against the unallocated kernel).
pub fn lower_module_with(src: &str, allocate: bool) -> LoweredModule {
    lower_module_in(src, allocate, None)
}

/// Parses a module's PTX and lowers every `.entry`, placing the `.global` variables its entries
/// use in `globals`.
pub fn lower_module_in(src: &str, allocate: bool, globals: Option<&mut dyn ModuleGlobals>) -> LoweredModule {
    let b = strip_comments(src);
    let mut cur = Cursor { b: &b, i: 0, line: 1 };
    let mut md = ModDecls {
        shared_static: Vec::new(),
        shared_dyn: Vec::new(),
        syms: HashMap::new(),
        errors: Vec::new(),
        const_data: Vec::new(),
        funcs: HashMap::new(),
    };
    let mut entries = Vec::new();
    let mut vars = Vec::new();
    loop {
        cur.skip_ws();
        if cur.eof() {
            break;
        }
        let rest = &cur.b[cur.i..];
        if [".version", ".target", ".address_size", ".file", ".loc"].iter().any(|d| rest.starts_with(d.as_bytes())) {
            cur.rest_of_line();
            continue;
        }
        if rest.starts_with(b".section") {
            let _ = cur.until_semi(true);
            cur.skip_block();
            continue;
        }
        let line = cur.line;
        let (text, term) = cur.until_semi(true);
        let t = text.trim().to_string();
        let is_fn = t.contains(".entry") || t.split_whitespace().any(|w| w == ".func");
        if term == b'{' && is_fn {
            let start = cur.i;
            let end = cur.skip_block();
            // The body ends before its `}`; an unclosed one (a cut file) runs to the end.
            let end = if end > start && cur.b[end - 1] == b'}' { end - 1 } else { end };
            let at = (start, end, line + text.matches('\n').count() as u32);
            if t.contains(".entry") {
                entries.push((t, at));
            } else if let Some(h) = parse_func_header(&t) {
                md.funcs.insert(h.name, FuncDef { header: t, body: Some(at) });
            }
            continue;
        }
        if is_fn {
            // A prototype (`.extern .func vprintf(...)`): callable only if it is one we model.
            if let Some(h) = parse_func_header(&t) {
                md.funcs.entry(h.name).or_insert(FuncDef { header: t, body: None });
            }
            continue;
        }
        let full = if term == b'{' {
            // An initializer: the rest of the statement.
            let mut depth = 1;
            let s = cur.i;
            while !cur.eof() && depth > 0 {
                match cur.bump() {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
            }
            let inner = String::from_utf8_lossy(&cur.b[s..cur.i]).into_owned();
            let (more, _) = cur.until_semi(false);
            format!("{t} {{{inner}{more}")
        } else {
            t
        };
        vars.push(full);
    }
    module_vars(&vars, &b, &entries, &mut md, globals);
    let cx = Cx { b: &b, md: &md };
    let mut out = LoweredModule::new();
    for (h, at) in entries {
        match lower_entry(&h, &cx, at, allocate) {
            Ok(k) => {
                out.insert(k.name.clone(), Ok(Arc::new(k)));
            }
            Err((n, e)) => {
                out.insert(n, Err(e));
            }
        }
    }
    out
}

/// Module variables: shared ones are laid out per entry; `.const` ones go to the module's
/// constant bank; `.global` ones that some entry or function uses are placed in `globals` with
/// their initial values. A variable that cannot be placed keeps its error, reported by the
/// entries that use it.
fn module_vars(
    vars: &[String],
    b: &[u8],
    entries: &[(String, (usize, usize, u32))],
    md: &mut ModDecls,
    mut globals: Option<&mut dyn ModuleGlobals>,
) {
    let is = |t: &str, k: &str| t.split_whitespace().any(|w| w == k);
    // What the code (and the initializers) mention: unused globals (libcu++'s many one-byte
    // `_cpo` objects) are not placed.
    let mut texts: Vec<&[u8]> = entries.iter().map(|(_, (s, e, _))| &b[*s..*e]).collect();
    texts.extend(md.funcs.values().filter_map(|f| f.body.map(|(s, e, _)| &b[s..e])));
    let mut decls = Vec::new();
    for t in vars {
        let Some(d) = parse_decl(&t.replace(".extern", "").replace(".visible", "").replace(".weak", "")) else {
            continue;
        };
        if is(t, ".shared") {
            if d.size.is_some() {
                md.shared_static.push(d);
            } else {
                md.shared_dyn.push(d);
            }
            continue;
        }
        let space = if is(t, ".const") {
            Space::Const
        } else if is(t, ".global") {
            Space::Global
        } else {
            continue;
        };
        if t.contains(".texref") || t.contains(".surfref") || t.contains(".samplerref") {
            md.errors.push(format!("`{}`: texture and surface references are not supported", d.name));
            md.syms.insert(d.name.clone(), Sym::Error(md.errors.len() as u32 - 1));
            continue;
        }
        decls.push((space, is(t, ".extern"), d));
    }
    let inits: Vec<String> = decls.iter().filter_map(|(_, _, d): &(Space, bool, Decl)| d.init.clone()).collect();
    // Addresses first (initializers may hold the address of another variable), then values.
    let mut placed = Vec::new();
    for (space, ext, d) in decls {
        let fail = |md: &mut ModDecls, msg: String| {
            md.errors.push(msg);
            md.syms.insert(d.name.clone(), Sym::Error(md.errors.len() as u32 - 1));
        };
        let Some(size) = d.size.filter(|_| !ext) else {
            fail(md, format!("`{}` is declared `.extern` without a definition in this module", d.name));
            continue;
        };
        match space {
            Space::Const => {
                let off = align_up(md.const_data.len() as u32, d.align);
                if off as usize + size as usize > MAX_CONST_BYTES {
                    fail(md, format!("`{}` ends past the {MAX_CONST_BYTES}-byte constant bank", d.name));
                    continue;
                }
                md.const_data.resize((off + size) as usize, 0);
                md.syms.insert(d.name.clone(), Sym::Addr(CONST_WINDOW + off as u64));
                placed.push((space, CONST_WINDOW + off as u64, d));
            }
            _ if !texts.iter().any(|t| mentions(t, &d.name))
                && !inits.iter().any(|t| mentions(t.as_bytes(), &d.name)) => {}
            _ => match globals.as_deref_mut() {
                None => fail(
                    md,
                    format!("module variable `{}` lives in global memory: load the module on a device", d.name),
                ),
                Some(g) => match g.alloc(size.max(1) as usize, d.align) {
                    Ok(a) => {
                        md.syms.insert(d.name.clone(), Sym::Addr(a));
                        placed.push((space, a, d));
                    }
                    Err(e) => fail(md, format!("module variable `{}`: {e}", d.name)),
                },
            },
        }
    }
    for (space, addr, d) in placed {
        let lookup = |n: &str| match md.syms.get(n) {
            Some(Sym::Addr(a)) => Some(*a),
            _ => None,
        };
        let res = init_bytes(&d, &lookup).and_then(|bytes| match space {
            Space::Const => {
                let o = (addr - CONST_WINDOW) as usize;
                md.const_data[o..o + bytes.len()].copy_from_slice(&bytes);
                Ok(())
            }
            _ => globals.as_deref_mut().map_or(Ok(()), |g| g.write(addr, &bytes)),
        });
        if let Err(e) = res {
            md.errors.push(e);
            md.syms.insert(d.name.clone(), Sym::Error(md.errors.len() as u32 - 1));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::text::parse_imm;
    use super::*;

    /// Every kernel build.rs embedded lowers without an unsupported instruction.
    #[test]
    fn all_embedded_modules_lower() {
        // The deliberately broken Hopper test module (build.rs lets its serialization
        // diagnostics through) may use a form the emulator refuses: then with a named unsupported
        // instruction (the error `attnjoule emu` prints), never with anything else.
        const MAY_REFUSE: &[&str] = &["sm90_broken"];
        for m in crate::kernels::MODULES {
            for (name, k) in lower_module(m.ptx) {
                if name == "emu_unsupported" {
                    assert!(k.is_err(), "emu_unsupported must not lower");
                    continue;
                }
                match k {
                    Err(e) if MAY_REFUSE.contains(&m.name) => {
                        assert!(e.to_string().contains("unsupported"), "{}::{name}: {e}", m.name)
                    }
                    Err(e) => panic!("{}::{name}: {e}", m.name),
                    Ok(_) => {}
                }
            }
        }
    }

    /// Lowers the PTX file named by $EMU_PTX (checking a kernel from another branch).
    #[test]
    #[ignore = "manual: set EMU_PTX to a .ptx file"]
    fn lower_external_ptx() {
        let Ok(path) = std::env::var("EMU_PTX") else { return };
        let src = std::fs::read_to_string(path).expect("read");
        let m = lower_module(&src);
        for (name, k) in &m {
            match k {
                Ok(k) => println!("{name}: {} instructions, {} registers in {} slots", k.insts.len(), k.vregs, k.nregs),
                Err(e) => println!("{name}: ERROR {e}"),
            }
        }
        assert!(m.values().all(|k| k.is_ok()));
    }

    #[test]
    fn immediates() {
        assert_eq!(parse_imm("0f3F800000"), Some(0x3f80_0000));
        assert_eq!(parse_imm("-1"), Some(u64::MAX));
        assert_eq!(parse_imm("0xff"), Some(255));
        assert_eq!(parse_imm("0d3FF0000000000000"), Some(1f64.to_bits()));
        assert_eq!(parse_imm("%r1"), None);
    }

    /// Declarations beyond Hopper's limits, sizes that overflow 32 bits, non-ASCII text and a
    /// header with `)` before `(`: each an error naming it, never an overflow panic or a huge
    /// allocation.
    #[test]
    fn hostile_declarations_are_errors() {
        let entry = |params: &str, body: &str| {
            format!(
                ".version 8.0\n.target sm_90a\n.address_size 64\n.visible .entry k({params})\n{{\n{body}\nret;\n}}\n"
            )
        };
        let err = |ptx: &str| match lower_module(ptx).remove("k") {
            Some(Err(e)) => e,
            other => panic!("expected an error, got {other:?}"),
        };
        let e = err(&entry(".param .align 8 .b8 p[4000000000], .param .b8 q[4000000000]", ""));
        assert!(e.contains("bytes of parameters"), "{e}");
        let e =
            err(&entry(".param .u64 p", ".shared .align 16 .b8 s[300000];\n.shared .align 4096 .b8 t[4000000000];"));
        assert!(e.contains("static shared memory"), "{e}");
        let e = err(&entry(".param .u64 p", ".local .align 8 .b8 l[600000];"));
        assert!(e.contains("local memory per thread"), "{e}");
        let e = err(&entry(".param .u64 p", "mov.u32 %r1, 1; // é\nmov.u32 %r2, 2;é"));
        assert!(e.contains("not ASCII"), "{e}");
        let m = lower_module(".version 8.0\n.target sm_90a\n.visible .entry k)(.param .u64 p\n{\nret;\n}\n");
        // (was: a slice from after `(` to before `)`, a panic); the header has no parameter list.
        assert!(m.values().all(|r| r.as_ref().is_ok_and(|k| k.params.is_empty())), "{m:?}");
        // A file cut right after an entry's `{` (was: a slice ending before it started).
        let cut = lower_module(".version 8.0\n.target sm_90a\n.visible .entry k(.param .u64 p)\n{");
        assert_eq!(cut.len(), 1);
        // A constant beyond the 64 KiB bank: its uses name it, nothing is allocated.
        let c = format!(".const .align 4 .b8 big[4000000000];\n{}", entry(".param .u64 p", "ld.const.u32 %r1, [big];"));
        let c = c.replacen(".version 8.0\n.target sm_90a\n.address_size 64\n", "", 1);
        let e = err(&format!(".version 8.0\n.target sm_90a\n.address_size 64\n{c}"));
        assert!(e.contains("constant bank"), "{e}");
    }
}
