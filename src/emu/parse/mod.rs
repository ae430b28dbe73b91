//! A small hand-written parser for the PTX nvcc 13.0 emits, lowering each `.entry` straight to
//! the [`ir`](super::ir) form. nvcc's output is regular (one statement per `;`, labels on their
//! own, `.loc`/`.file` lines without `;`, inline-asm scopes in braces), so a statement splitter
//! plus an opcode table covers it; anything unknown is reported with its line, never skipped.
//!
//! - this file: module-level declarations (shared, const, global variables), entries and their
//!   parameters, the body's declarations, labels and branch targets, then register allocation;
//! - [`text`]: comments, statements, labels, operand lists, immediates;
//! - [`operands`]: register names, special registers and symbols resolved to register indices;
//! - [`inst`]: one instruction's guard and modifiers, dispatched by mnemonic to its family:
//!   [`alu`] (integer, bit, compare, move), [`float`] (float arithmetic, conversions),
//!   [`memory`] (ld/st, atomics, ldmatrix, cp.async), [`warp`] (shfl, vote, redux),
//!   [`sync`] (barriers), [`tensor`] (mma), [`control`] (branches, exit, hints).

mod alu;
mod control;
mod float;
mod inst;
mod memory;
mod operands;
mod sync;
mod tensor;
mod text;
mod warp;

use super::ir::*;
use super::regalloc;
use inst::lower_inst;
use operands::{FnCtx, Sym};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use text::{body_items, parse_imm, split_operands, strip_comments, BodyItem, Cursor};

/// Lowered kernels of one module, by entry name; an entry that failed to lower keeps its error
/// (reported when it is launched, so one unsupported kernel does not block its neighbours).
pub type LoweredModule = HashMap<String, Result<Arc<Kernel>, String>>;

/// A variable or parameter declaration: (alignment, element bytes, name, total bytes; `None` for
/// an unsized `[]` array).
fn parse_decl(s: &str) -> Option<(u32, u32, String, Option<u32>)> {
    // .shared .align 4 .b8 name[8448]   /  .extern .shared .align 16 .b8 smem[]  / .local .align 8 .b8 d[32]
    let toks: Vec<&str> = s.split_whitespace().collect();
    let mut align = 1u32;
    let mut elem = 1u32;
    let mut name = None;
    let mut i = 0;
    while i < toks.len() {
        let t = toks[i];
        if t == ".align" {
            align = toks.get(i + 1)?.parse().ok()?;
            i += 2;
            continue;
        }
        if let Some(ty) = t.strip_prefix('.').and_then(Ty::parse) {
            elem = ty.bytes();
        } else if !t.starts_with('.') {
            name = Some(toks[i..].join(""));
            break;
        }
        i += 1;
    }
    let name = name?;
    let name = name.split('=').next()?.trim().to_string();
    if align > MAX_ALIGN {
        return None;
    }
    if let Some((n, rest)) = name.split_once('[') {
        let cnt = rest.trim_end_matches(']');
        let count = if cnt.is_empty() {
            None
        } else {
            Some(cnt.parse::<u32>().ok()?.checked_mul(elem).filter(|&b| b <= MAX_DECL_BYTES)?)
        };
        Some((align, elem, n.to_string(), count))
    } else {
        Some((align, elem, name, Some(elem)))
    }
}

fn align_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a.max(1)).saturating_mul(a.max(1))
}

/// Hopper's limits on what an entry declares (a declaration beyond them is no PTX ptxas takes;
/// bounding them keeps the sums below in range and the emulator's memory small): kernel
/// parameters, static shared memory per block, local memory per thread, the constant bank, one
/// declaration, an alignment.
const MAX_PARAM_BYTES: u32 = 32764;
const MAX_SHARED_BYTES: u32 = 227 << 10;
const MAX_LOCAL_BYTES: u32 = 512 << 10;
const MAX_CONST_BYTES: usize = 64 << 10;
const MAX_DECL_BYTES: u32 = 1 << 20;
const MAX_ALIGN: u32 = 4096;

/// Module-level declarations, visible to every entry.
struct ModDecls {
    shared_static: Vec<(String, u32, u32)>,
    shared_dyn: Option<(String, u32)>,
    syms: HashMap<String, Sym>,
    const_data: Vec<u8>,
}

fn lower_entry(
    header: &str,
    b: &[u8],
    body: (usize, usize, u32),
    md: &ModDecls,
    alloc: bool,
) -> std::result::Result<Kernel, (String, String)> {
    let name = header
        .split(".entry")
        .nth(1)
        .and_then(|t| t.split('(').next())
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    let err = |e: String| (name.clone(), e);
    // PTX is ASCII text (comments, stripped before, aside); the lowering slices it by bytes.
    let text = b.get(body.0..body.1).unwrap_or(&[]);
    if let Some(at) = text.iter().chain(header.as_bytes()).position(|c| !c.is_ascii()) {
        let line = body.2 as usize + text[..at.min(text.len())].iter().filter(|&&c| c == b'\n').count();
        return Err(err(format!("line {line}: a byte that is not ASCII (PTX is ASCII text)")));
    }
    let explicit_cluster = sync::cluster_directives(header).map_err(err)?;
    // params
    let mut params = Vec::new();
    let mut syms: HashMap<String, Sym> = HashMap::new();
    let mut off = 0u32;
    if let Some((l, r)) = header.find('(').zip(header.rfind(')')).filter(|(l, r)| l < r) {
        for p in split_operands(&header[l + 1..r]) {
            let p = p.replace(".param", "");
            let (align, elem, pname, count) =
                parse_decl(&p).ok_or_else(|| err(format!("cannot parse parameter `{p}`")))?;
            let size = count.unwrap_or(elem);
            off = align_up(off, align.max(elem));
            params.push(ParamDecl { offset: off, size });
            syms.insert(pname, Sym::Addr(PARAM_WINDOW + off as u64));
            off = off.saturating_add(size);
        }
    }
    if off > MAX_PARAM_BYTES {
        return Err(err(format!("{off} bytes of parameters, more than the {MAX_PARAM_BYTES} a kernel takes")));
    }
    let items = body_items(b, body.0, body.1, body.2);
    // Declarations first (shared/local layout, register names), then instructions.
    let mut shared = 0u32;
    for (n, a, sz) in &md.shared_static {
        shared = align_up(shared, *a);
        syms.insert(n.clone(), Sym::Addr(shared as u64));
        shared = shared.saturating_add(*sz);
    }
    let mut local = 0u32;
    let mut declared = HashSet::new();
    let mut ranges = HashMap::new();
    let mut dyn_sym = md.shared_dyn.clone();
    for it in &items {
        let BodyItem::Stmt(st) = it else { continue };
        let t = st.text.as_str();
        if t.starts_with(".reg") {
            let names = t.split_whitespace().skip(2).collect::<Vec<_>>().join(" ");
            for n in names.split(',') {
                let n = n.trim();
                if let Some((p, cnt)) = n.split_once('<') {
                    let c: u32 = cnt.trim_end_matches('>').parse().map_err(|_| err(format!("bad .reg `{t}`")))?;
                    ranges.insert(p.to_string(), c);
                } else if !n.is_empty() {
                    declared.insert(n.to_string());
                }
            }
        } else if t.starts_with(".shared") || t.starts_with(".extern .shared") {
            let (a, _, n, sz) = parse_decl(t).ok_or_else(|| err(format!("cannot parse `{t}`")))?;
            match sz {
                Some(sz) => {
                    shared = align_up(shared, a);
                    syms.insert(n, Sym::Addr(shared as u64));
                    shared = shared.saturating_add(sz);
                }
                None => dyn_sym = Some((n, a)),
            }
        } else if t.starts_with(".local") {
            let (a, _, n, sz) = parse_decl(t).ok_or_else(|| err(format!("cannot parse `{t}`")))?;
            local = align_up(local, a);
            syms.insert(n, Sym::Addr(local as u64));
            local = local.saturating_add(sz.unwrap_or(0));
        }
    }
    if shared > MAX_SHARED_BYTES || local > MAX_LOCAL_BYTES {
        return Err(err(format!(
            "{shared} bytes of static shared and {local} of local memory: at most {MAX_SHARED_BYTES} and \
             {MAX_LOCAL_BYTES}"
        )));
    }
    let mut shared_static = align_up(shared, 16);
    if let Some((n, a)) = dyn_sym {
        // Dynamic shared memory starts at its declared alignment (TMA boxes need 128 or 1024).
        shared_static = align_up(shared_static, a);
        syms.insert(n, Sym::Addr(shared_static as u64));
    }
    let mut f = FnCtx {
        regs: HashMap::new(),
        declared,
        ranges,
        nregs: 0,
        consts: Vec::new(),
        const_map: HashMap::new(),
        syms,
        module_syms: &md.syms,
        labels: HashMap::new(),
        insts: Vec::new(),
        ext: Vec::new(),
        fixups: Vec::new(),
    };
    for it in &items {
        match it {
            BodyItem::Label(l) => {
                f.labels.insert(l.clone(), f.insts.len() as u32);
            }
            BodyItem::Open | BodyItem::Close => {}
            BodyItem::Stmt(st) => {
                if st.text.starts_with('.') {
                    let d = st.text.split_whitespace().next().unwrap_or("");
                    if matches!(d, ".reg" | ".shared" | ".local" | ".extern" | ".pragma") {
                        continue;
                    }
                    return Err(err(format!("line {}: unsupported directive `{}`", st.line, st.text)));
                }
                if st.text.starts_with("call") {
                    return Err(err(format!(
                        "line {}: unsupported instruction `call` (non-inlined .func calls)",
                        st.line
                    )));
                }
                match lower_inst(&mut f, st) {
                    Ok(Some(i)) => f.insts.push(i),
                    Ok(None) => {}
                    Err(e) => return Err(err(format!("line {}: {e}", st.line))),
                }
            }
        }
    }
    // A kernel that falls off its end exits.
    let last_line = f.insts.last().map_or(body.2, |i| i.line);
    f.insts.push(Inst::new(Op::Exit, last_line));
    for (i, label) in std::mem::take(&mut f.fixups) {
        let t = *f
            .labels
            .get(label.trim())
            .ok_or_else(|| err(format!("line {}: unknown label `{label}`", f.insts[i].line)))?;
        f.insts[i].op = Op::Bra { target: t };
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
        local_bytes: align_up(local, 16),
        const_data: Arc::new(md.const_data.clone()),
        explicit_cluster,
        wg: None,
    };
    if alloc {
        regalloc::allocate(&mut k).map_err(|e| (k.name.clone(), e))?;
    }
    Ok(k)
}

/// Parses a module's PTX and lowers every `.entry`, with register reuse ([`regalloc`]).
pub fn lower_module(src: &str) -> LoweredModule {
    lower_module_with(src, true)
}

/// [`lower_module`], optionally keeping one slot per virtual register (`allocate: false`, for
/// checking the allocation against the unallocated kernel).
pub fn lower_module_with(src: &str, allocate: bool) -> LoweredModule {
    let b = strip_comments(src);
    let mut cur = Cursor { b: &b, i: 0, line: 1 };
    let mut md = ModDecls { shared_static: Vec::new(), shared_dyn: None, syms: HashMap::new(), const_data: Vec::new() };
    let mut entries = Vec::new();
    let mut out = LoweredModule::new();
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
        if term == b'{' {
            if t.contains(".entry") || t.contains(".func") {
                let start = cur.i;
                let end = cur.skip_block();
                if t.contains(".entry") {
                    entries.push((t, start, end - 1, line + text.matches('\n').count() as u32));
                }
                continue;
            }
            // initializer: consume the rest of the statement
            let mut depth = 1;
            while !cur.eof() && depth > 0 {
                match cur.bump() {
                    b'{' => depth += 1,
                    b'}' => depth -= 1,
                    _ => {}
                }
            }
            let (more, _) = cur.until_semi(false);
            let full = format!("{t} {{{}", more);
            module_decl(&full, &mut md);
            continue;
        }
        module_decl(&t, &mut md);
    }
    for (h, s, e, line) in entries {
        match lower_entry(&h, &b, (s, e, line), &md, allocate) {
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

fn module_decl(t: &str, md: &mut ModDecls) {
    let t = t.trim();
    let is = |k: &str| t.split_whitespace().any(|w| w == k);
    if is(".shared") {
        if let Some((a, _, n, sz)) = parse_decl(&t.replace(".extern", "").replace(".visible", "")) {
            match sz {
                Some(sz) => md.shared_static.push((n, a, sz)),
                None => md.shared_dyn = Some((n, a)),
            }
        }
    } else if is(".const") {
        if let Some((a, elem, n, sz)) = parse_decl(t) {
            let off = align_up(md.const_data.len() as u32, a);
            // Beyond the constant bank: not declared (a use of it is an unknown symbol).
            if off as usize + sz.unwrap_or(elem) as usize > MAX_CONST_BYTES {
                return;
            }
            md.const_data.resize(off as usize, 0);
            let size = sz.unwrap_or(elem) as usize;
            let mut bytes = vec![0u8; size];
            if let Some((_, init)) = t.split_once('=') {
                let vals = init.trim().trim_start_matches('{').trim_end_matches('}');
                for (i, v) in vals.split(',').enumerate() {
                    if let Some(x) = parse_imm(v) {
                        let at = i * elem as usize;
                        if at + elem as usize <= size {
                            bytes[at..at + elem as usize].copy_from_slice(&x.to_le_bytes()[..elem as usize]);
                        }
                    }
                }
            }
            md.const_data.extend_from_slice(&bytes);
            md.syms.insert(n, Sym::Addr(CONST_WINDOW + off as u64));
        }
    } else if is(".global") {
        if let Some((_, _, n, _)) = parse_decl(t) {
            md.syms.insert(n, Sym::Unsupported);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel build.rs embedded lowers without an unsupported instruction.
    #[test]
    fn all_embedded_modules_lower() {
        for m in crate::kernels::MODULES {
            for (name, k) in lower_module(m.ptx) {
                if name == "emu_unsupported" {
                    assert!(k.is_err(), "emu_unsupported must not lower");
                    continue;
                }
                if let Err(e) = k {
                    panic!("{}::{name}: {e}", m.name);
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
}
