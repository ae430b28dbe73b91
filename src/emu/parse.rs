//! A small hand-written parser for the PTX nvcc 13.0 emits, lowering each `.entry` straight to
//! the [`ir`](super::ir) form. nvcc's output is regular (one statement per `;`, labels on their
//! own, `.loc`/`.file` lines without `;`, inline-asm scopes in braces), so a statement splitter
//! plus an opcode table covers it; anything unknown is reported with its line, never skipped.

use super::ir::*;
use super::regalloc;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Lowered kernels of one module, by entry name; an entry that failed to lower keeps its error
/// (reported when it is launched, so one unsupported kernel does not block its neighbours).
pub type LoweredModule = HashMap<String, Result<Arc<Kernel>, String>>;

struct Stmt {
    text: String,
    line: u32,
}

enum BodyItem {
    Stmt(Stmt),
    Label(String),
    Open,
    Close,
}

/// Replaces comments with spaces, keeping newlines so that line numbers stay exact.
fn strip_comments(src: &str) -> Vec<u8> {
    let b = src.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'/' {
            while i < b.len() && b[i] != b'\n' {
                out.push(b' ');
                i += 1;
            }
        } else if b[i] == b'/' && i + 1 < b.len() && b[i + 1] == b'*' {
            while i < b.len() && !(b[i] == b'*' && i + 1 < b.len() && b[i + 1] == b'/') {
                out.push(if b[i] == b'\n' { b'\n' } else { b' ' });
                i += 1;
            }
            out.extend_from_slice(b"  ");
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

struct Cursor<'a> {
    b: &'a [u8],
    i: usize,
    line: u32,
}

impl<'a> Cursor<'a> {
    fn skip_ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            if self.b[self.i] == b'\n' {
                self.line += 1;
            }
            self.i += 1;
        }
    }
    fn eof(&self) -> bool {
        self.i >= self.b.len()
    }
    fn peek(&self) -> u8 {
        self.b[self.i]
    }
    fn bump(&mut self) -> u8 {
        let c = self.b[self.i];
        if c == b'\n' {
            self.line += 1;
        }
        self.i += 1;
        c
    }
    fn rest_of_line(&mut self) -> String {
        let s = self.i;
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.b[s..self.i]).into_owned()
    }
    /// Reads up to (not including) `;` at brace depth 0, or an opening brace at depth 0 when
    /// `stop_at_brace`; returns the text and the terminator.
    fn until_semi(&mut self, stop_at_brace: bool) -> (String, u8) {
        let s = self.i;
        let mut depth = 0i32;
        while self.i < self.b.len() {
            let c = self.b[self.i];
            match c {
                b';' if depth == 0 => {
                    let t = String::from_utf8_lossy(&self.b[s..self.i]).into_owned();
                    self.i += 1;
                    return (t, b';');
                }
                b'{' if depth == 0 && stop_at_brace => {
                    let t = String::from_utf8_lossy(&self.b[s..self.i]).into_owned();
                    self.i += 1;
                    return (t, b'{');
                }
                b'{' => depth += 1,
                b'}' => depth -= 1,
                b'\n' => self.line += 1,
                _ => {}
            }
            self.i += 1;
        }
        (String::from_utf8_lossy(&self.b[s..]).into_owned(), 0)
    }
    /// Skips to after the brace matching an already consumed `{`.
    fn skip_block(&mut self) -> usize {
        let mut depth = 1;
        while self.i < self.b.len() && depth > 0 {
            match self.bump() {
                b'{' => depth += 1,
                b'}' => depth -= 1,
                _ => {}
            }
        }
        self.i
    }
}

fn is_ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'.' || c == b'%'
}

fn body_items(b: &[u8], start: usize, end: usize, line: u32) -> Vec<BodyItem> {
    let mut cur = Cursor { b: &b[..end], i: start, line };
    let mut items = Vec::new();
    loop {
        cur.skip_ws();
        if cur.eof() {
            break;
        }
        let c = cur.peek();
        if c == b'{' {
            cur.bump();
            items.push(BodyItem::Open);
            continue;
        }
        if c == b'}' {
            cur.bump();
            items.push(BodyItem::Close);
            continue;
        }
        let line = cur.line;
        if cur.b[cur.i..].starts_with(b".loc") || cur.b[cur.i..].starts_with(b".file") {
            cur.rest_of_line();
            continue;
        }
        // label?
        let mut j = cur.i;
        while j < cur.b.len() && is_ident_char(cur.b[j]) {
            j += 1;
        }
        if j < cur.b.len() && cur.b[j] == b':' && j > cur.i {
            let name = String::from_utf8_lossy(&cur.b[cur.i..j]).into_owned();
            cur.i = j + 1;
            items.push(BodyItem::Label(name));
            continue;
        }
        let (text, _) = cur.until_semi(false);
        let text = text.trim().to_string();
        if !text.is_empty() {
            items.push(BodyItem::Stmt(Stmt { text, line }));
        }
    }
    items
}

/// Splits `s` on commas at bracket/brace depth 0.
fn split_operands(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut cur = String::new();
    for ch in s.chars() {
        match ch {
            '{' | '[' | '(' => {
                depth += 1;
                cur.push(ch)
            }
            '}' | ']' | ')' => {
                depth -= 1;
                cur.push(ch)
            }
            ',' if depth == 0 => {
                out.push(cur.trim().to_string());
                cur.clear();
            }
            _ => cur.push(ch),
        }
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// Parses an integer or float immediate into raw bits (floats: `0f` f32 bits, `0d` f64 bits).
fn parse_imm(s: &str) -> Option<u64> {
    let s = s.trim();
    let (neg, t) = match s.strip_prefix('-') {
        Some(t) => (true, t),
        None => (false, s),
    };
    let t = t.trim_end_matches('U');
    let v: u64 = if let Some(h) = t.strip_prefix("0f").or_else(|| t.strip_prefix("0F")) {
        let bits = u32::from_str_radix(h, 16).ok()? as u64;
        return Some(if neg { bits ^ 0x8000_0000 } else { bits });
    } else if let Some(h) = t.strip_prefix("0d").or_else(|| t.strip_prefix("0D")) {
        let bits = u64::from_str_radix(h, 16).ok()?;
        return Some(if neg { bits ^ (1 << 63) } else { bits });
    } else if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        u64::from_str_radix(h, 16).ok()?
    } else if t.bytes().all(|c| c.is_ascii_digit()) && !t.is_empty() {
        t.parse::<u64>().ok()?
    } else {
        return None;
    };
    Some(if neg { v.wrapping_neg() } else { v })
}

/// Symbols visible to a kernel body: their address (a value placed in a constant register).
#[derive(Clone, Copy)]
enum Sym {
    Addr(u64),
    Unsupported,
}

struct FnCtx<'m> {
    name: String,
    regs: HashMap<String, u32>,
    declared: HashSet<String>,
    ranges: HashMap<String, u32>,
    nregs: u32,
    consts: Vec<(u32, ConstVal)>,
    const_map: HashMap<ConstVal, u32>,
    syms: HashMap<String, Sym>,
    module_syms: &'m HashMap<String, Sym>,
    labels: HashMap<String, u32>,
    insts: Vec<Inst>,
    ext: Vec<u32>,
    fixups: Vec<(usize, String)>,
}

type R<T> = std::result::Result<T, String>;

impl FnCtx<'_> {
    fn konst(&mut self, v: ConstVal) -> u32 {
        if let Some(&r) = self.const_map.get(&v) {
            return r;
        }
        let r = self.nregs;
        self.nregs += 1;
        self.consts.push((r, v));
        self.const_map.insert(v, r);
        r
    }
    fn fresh(&mut self) -> u32 {
        let r = self.nregs;
        self.nregs += 1;
        r
    }
    fn is_reg_name(&self, s: &str) -> bool {
        if self.declared.contains(s) {
            return true;
        }
        // %r<516> declares %r0..%r515
        let p = s.trim_end_matches(|c: char| c.is_ascii_digit());
        if p.len() < s.len() {
            if let (Some(&n), Ok(i)) = (self.ranges.get(p), s[p.len()..].parse::<u32>()) {
                return i < n;
            }
        }
        false
    }
    fn special(&mut self, s: &str) -> Option<u32> {
        let dim = |t: &str| match t {
            "x" => Some(0u8),
            "y" => Some(1),
            "z" => Some(2),
            _ => None,
        };
        let v = if let Some((base, d)) = s.split_once('.') {
            let d = dim(d)?;
            match base {
                "%tid" => ConstVal::Tid(d),
                "%ntid" => ConstVal::Ntid(d),
                "%ctaid" => ConstVal::Ctaid(d),
                "%nctaid" => ConstVal::Nctaid(d),
                _ => return None,
            }
        } else {
            match s {
                "%laneid" => ConstVal::LaneId,
                "%warpid" => ConstVal::WarpId,
                "%nwarpid" => ConstVal::NWarpId,
                "%lanemask_eq" => ConstVal::LaneMaskEq,
                "%lanemask_lt" => ConstVal::LaneMaskLt,
                "%lanemask_le" => ConstVal::LaneMaskLe,
                "%lanemask_gt" => ConstVal::LaneMaskGt,
                "%lanemask_ge" => ConstVal::LaneMaskGe,
                "%smid" | "%gridid" => ConstVal::Zero,
                _ => return None,
            }
        };
        Some(self.konst(v))
    }
    /// A source or destination operand as a register index.
    fn reg(&mut self, s: &str) -> R<u32> {
        let s = s.trim();
        if s == "_" {
            return Ok(self.fresh());
        }
        if let Some(&r) = self.regs.get(s) {
            return Ok(r);
        }
        if self.is_reg_name(s) {
            let r = self.fresh();
            self.regs.insert(s.to_string(), r);
            return Ok(r);
        }
        if s.starts_with('%') {
            if let Some(r) = self.special(s) {
                return Ok(r);
            }
            return Err(format!("unknown register or special register `{s}`"));
        }
        if let Some(v) = parse_imm(s) {
            return Ok(self.konst(ConstVal::Imm(v)));
        }
        if let Some(sym) = self.syms.get(s).or_else(|| self.module_syms.get(s)).copied() {
            return match sym {
                Sym::Addr(a) => Ok(self.konst(ConstVal::Imm(a))),
                Sym::Unsupported => Err(format!("symbol `{s}` (module .global variable) is not supported")),
            };
        }
        Err(format!("unknown operand `{s}`"))
    }
    /// `[base+off]` → (base register or NOREG, offset).
    fn addr(&mut self, s: &str) -> R<(u32, i64)> {
        let inner = s
            .trim()
            .strip_prefix('[')
            .and_then(|t| t.strip_suffix(']'))
            .ok_or_else(|| format!("expected an address operand, got `{s}`"))?
            .trim();
        let (base, off) = match inner.find('+').or_else(|| inner[1..].find('-').map(|i| i + 1)) {
            Some(i) => {
                let (b, o) = inner.split_at(i);
                let o = o.trim_start_matches('+').trim();
                let ov = parse_imm(o).ok_or_else(|| format!("bad address offset `{o}`"))? as i64;
                (b.trim(), ov)
            }
            None => (inner, 0),
        };
        if let Some(v) = parse_imm(base) {
            return Ok((NOREG, v as i64 + off));
        }
        Ok((self.reg(base)?, off))
    }
    fn vec(&mut self, s: &str) -> R<Vec<u32>> {
        let inner = s
            .trim()
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .ok_or_else(|| format!("expected a vector operand, got `{s}`"))?;
        split_operands(inner).iter().map(|x| self.reg(x)).collect()
    }
    fn push_ext(&mut self, regs: &[u32]) -> (u32, u16) {
        let s = self.ext.len() as u32;
        self.ext.extend_from_slice(regs);
        (s, regs.len() as u16)
    }
}

fn parse_space(m: &str) -> Option<Space> {
    Some(match m {
        "global" => Space::Global,
        "shared" | "shared::cta" => Space::Shared,
        "local" => Space::Local,
        "param" | "param::entry" | "param::func" => Space::Param,
        "const" => Space::Const,
        _ => return None,
    })
}

/// Modifiers that change nothing in a sequentially consistent, cache-less emulator.
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
                | "volatile"
                | "relaxed"
                | "acquire"
                | "release"
                | "acq_rel"
                | "weak"
                | "cta"
                | "gpu"
                | "sys"
                | "cluster"
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

fn lower_inst(f: &mut FnCtx, st: &Stmt) -> R<Option<Inst>> {
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
    let mut parts = opcode.split('.');
    let mn = parts.next().unwrap_or("");
    let mods: Vec<&str> = parts.collect();
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
    let bad = |what: &str| -> String { format!("unsupported {what} in `{}`", st.text) };
    let nops = |n: usize| -> R<()> {
        if ops.len() == n {
            Ok(())
        } else {
            Err(format!("expected {n} operands in `{}`", st.text))
        }
    };
    let only = |allowed: &[&str]| -> R<()> {
        match rest.iter().find(|m| !allowed.contains(m)) {
            Some(m) => Err(format!("unsupported modifier .{m} in `{}`", st.text)),
            None => Ok(()),
        }
    };
    let ibin = |m: &str| -> Option<IBin> {
        Some(match m {
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
            _ => return None,
        })
    };
    match mn {
        "add" | "sub" | "mul" | "div" | "rem" | "min" | "max" | "and" | "or" | "xor" | "shl" | "shr" => {
            nops(3)?;
            if inst.ty.is_float() {
                if matches!(inst.ty, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
                    return Err(bad("half-precision arithmetic"));
                }
                only(&["NaN"]).map_err(|_| bad("modifier"))?;
                if rest.contains(&"NaN") {
                    return Err(bad(".NaN min/max"));
                }
                let op = match mn {
                    "add" => FBin::Add,
                    "sub" => FBin::Sub,
                    "mul" => FBin::Mul,
                    "div" => FBin::Div,
                    "min" => FBin::Min,
                    "max" => FBin::Max,
                    _ => return Err(bad("float operation")),
                };
                inst.op = Op::FBin(op);
            } else if mn == "mul" {
                only(&["lo", "hi", "wide"])?;
                inst.op = Op::IBin(if rest.contains(&"hi") {
                    IBin::MulHi
                } else if rest.contains(&"wide") {
                    IBin::MulWide
                } else {
                    IBin::MulLo
                });
            } else {
                only(&[])?;
                if inst.sat {
                    return Err(bad(".sat integer arithmetic"));
                }
                inst.op = Op::IBin(ibin(mn).ok_or_else(|| bad("operation"))?);
            }
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
        }
        "mad" | "fma" => {
            nops(4)?;
            if inst.ty.is_float() {
                if inst.ty != Ty::F32 && inst.ty != Ty::F64 {
                    return Err(bad("half-precision fma"));
                }
                only(&[])?;
                inst.op = Op::Fma;
            } else {
                only(&["lo", "hi", "wide"])?;
                inst.op = Op::IMad(if rest.contains(&"hi") {
                    IBin::MulHi
                } else if rest.contains(&"wide") {
                    IBin::MulWide
                } else {
                    IBin::MulLo
                });
            }
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "abs" | "neg" | "not" | "popc" | "clz" | "brev" | "rcp" | "sqrt" | "rsqrt" | "ex2" | "lg2" | "sin" | "cos"
        | "tanh" => {
            nops(2)?;
            only(&[])?;
            if inst.ty.is_float() {
                if inst.ty != Ty::F32 && inst.ty != Ty::F64 {
                    return Err(bad("half-precision operation"));
                }
                inst.op = Op::FUn(match mn {
                    "abs" => FUn::Abs,
                    "neg" => FUn::Neg,
                    "rcp" => FUn::Rcp,
                    "sqrt" => FUn::Sqrt,
                    "rsqrt" => FUn::Rsqrt,
                    "ex2" => FUn::Ex2,
                    "lg2" => FUn::Lg2,
                    "sin" => FUn::Sin,
                    "cos" => FUn::Cos,
                    "tanh" => FUn::Tanh,
                    _ => return Err(bad("float operation")),
                });
            } else {
                inst.op = Op::IUn(match mn {
                    "abs" => IUn::Abs,
                    "neg" => IUn::Neg,
                    "not" => IUn::Not,
                    "popc" => IUn::Popc,
                    "clz" => IUn::Clz,
                    "brev" => IUn::Brev,
                    _ => return Err(bad("integer operation")),
                });
            }
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
        }
        "bfe" => {
            nops(4)?;
            inst.op = Op::Bfe;
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "bfi" => {
            nops(5)?;
            inst.op = Op::Bfi;
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
            inst.e = f.reg(&ops[4])?;
        }
        "prmt" => {
            only(&[])?;
            nops(4)?;
            inst.op = Op::Prmt;
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "lop3" => {
            nops(5)?;
            let lut = parse_imm(&ops[4]).ok_or_else(|| bad("lop3 LUT"))?;
            inst.op = Op::Lop3(lut as u8);
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "shf" => {
            nops(4)?;
            let left = rest.contains(&"l");
            let clamp = rest.contains(&"clamp");
            only(&["l", "r", "clamp", "wrap"])?;
            inst.op = Op::Shf { left, clamp };
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "setp" | "set" => {
            let cmp = rest.first().and_then(|m| Cmp::parse(m)).ok_or_else(|| bad("comparison"))?;
            let bop = match rest.get(1) {
                None => BoolOp::None,
                Some(&"and") => BoolOp::And,
                Some(&"or") => BoolOp::Or,
                Some(&"xor") => BoolOp::Xor,
                Some(_) => return Err(bad("boolean operation")),
            };
            if rest.len() > 2 {
                return Err(bad("modifier"));
            }
            if mn == "set" {
                if bop != BoolOp::None {
                    return Err(bad("set with boolean op"));
                }
                // set.cmp.dtype.stype: first type is the destination
                inst.op = Op::Set(cmp);
                let (dt, sty) = (inst.ty, inst.ty2);
                inst.ty = sty;
                inst.ty2 = dt;
                nops(3)?;
            } else {
                inst.op = Op::Setp(cmp, bop);
                if ops.len() != 3 && ops.len() != 4 {
                    return Err(bad("operand count"));
                }
            }
            let (d0, d1) = match ops[0].split_once('|') {
                Some((a, b)) => (a, Some(b)),
                None => (ops[0].as_str(), None),
            };
            inst.d = f.reg(d0)?;
            if let Some(q) = d1 {
                inst.d2 = f.reg(q)?;
            }
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            if let Some(c) = ops.get(3) {
                let (neg, c) = match c.strip_prefix('!') {
                    Some(c) => (true, c),
                    None => (false, c.as_str()),
                };
                inst.pneg = neg;
                inst.c = f.reg(c)?;
            }
        }
        "selp" => {
            nops(4)?;
            inst.op = Op::Selp;
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
        }
        "mov" => {
            nops(2)?;
            only(&[])?;
            let src = ops[1].trim();
            if src == "%clock" || src == "%clock64" || src == "%globaltimer" {
                inst.op = Op::Clock;
                inst.d = f.reg(&ops[0])?;
            } else if ops[0].starts_with('{') {
                let regs = f.vec(&ops[0])?;
                inst.op = Op::Unpack;
                inst.ty = match inst.ty.bits() / regs.len() as u32 {
                    8 => Ty::B8,
                    16 => Ty::B16,
                    32 => Ty::B32,
                    _ => return Err(bad("vector unpack")),
                };
                (inst.ext, inst.next) = f.push_ext(&regs);
                inst.a = f.reg(src)?;
            } else if src.starts_with('{') {
                let regs = f.vec(src)?;
                inst.op = Op::Pack;
                inst.ty = match inst.ty.bits() / regs.len() as u32 {
                    8 => Ty::B8,
                    16 => Ty::B16,
                    32 => Ty::B32,
                    _ => return Err(bad("vector pack")),
                };
                (inst.ext, inst.next) = f.push_ext(&regs);
                inst.d = f.reg(&ops[0])?;
            } else {
                inst.op = Op::Mov;
                inst.d = f.reg(&ops[0])?;
                inst.a = f.reg(src)?;
            }
        }
        "cvt" => {
            let relu = rest.contains(&"relu");
            only(&["relu"])?;
            if matches!(inst.ty, Ty::Bf16x2 | Ty::F16x2) && inst.ty2 == Ty::F32 {
                nops(3)?;
                inst.op = Op::CvtPack { relu };
                inst.d = f.reg(&ops[0])?;
                inst.a = f.reg(&ops[1])?;
                inst.b = f.reg(&ops[2])?;
            } else {
                nops(2)?;
                if types.len() != 2 {
                    return Err(bad("cvt types"));
                }
                inst.op = Op::Cvt { relu };
                inst.d = f.reg(&ops[0])?;
                inst.a = f.reg(&ops[1])?;
            }
        }
        "cvta" => {
            nops(2)?;
            let to = rest.contains(&"to");
            only(&["to"])?;
            let sp = space.ok_or_else(|| bad("cvta space"))?;
            inst.op = Op::Cvta { to, space: sp };
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
        }
        "ld" | "ldu" | "st" => {
            nops(2)?;
            only(&[])?;
            let sp = space.unwrap_or(Space::Generic);
            let (regop, addrop) = if mn == "st" { (&ops[1], &ops[0]) } else { (&ops[0], &ops[1]) };
            let (base, off) = f.addr(addrop)?;
            inst.a = base;
            inst.imm = off;
            if vec > 1 {
                let regs = f.vec(regop)?;
                if regs.len() != vec as usize {
                    return Err(bad("vector length"));
                }
                (inst.ext, inst.next) = f.push_ext(&regs);
            } else if mn == "st" {
                inst.b = f.reg(regop)?;
            } else {
                inst.d = f.reg(regop)?;
            }
            inst.op = if mn == "st" { Op::St { space: sp, vec } } else { Op::Ld { space: sp, vec } };
        }
        "atom" | "red" => {
            let op = rest
                .iter()
                .find_map(|m| {
                    Some(match *m {
                        "add" => AtomOp::Add,
                        "min" => AtomOp::Min,
                        "max" => AtomOp::Max,
                        "inc" => AtomOp::Inc,
                        "dec" => AtomOp::Dec,
                        "and" => AtomOp::And,
                        "or" => AtomOp::Or,
                        "xor" => AtomOp::Xor,
                        "exch" => AtomOp::Exch,
                        "cas" => AtomOp::Cas,
                        _ => return None,
                    })
                })
                .ok_or_else(|| bad("atomic operation"))?;
            only(&["add", "min", "max", "inc", "dec", "and", "or", "xor", "exch", "cas"])?;
            if vec > 1 || matches!(inst.ty, Ty::F16 | Ty::F16x2 | Ty::Bf16 | Ty::Bf16x2) {
                return Err(bad("vector or half atomic"));
            }
            let sp = space.unwrap_or(Space::Generic);
            let mut k = 0;
            if mn == "atom" {
                inst.d = f.reg(&ops[0])?;
                k = 1;
            }
            let need = k + if op == AtomOp::Cas { 3 } else { 2 };
            nops(need)?;
            let (base, off) = f.addr(&ops[k])?;
            inst.a = base;
            inst.imm = off;
            inst.b = f.reg(&ops[k + 1])?;
            if op == AtomOp::Cas {
                inst.c = f.reg(&ops[k + 2])?;
            }
            inst.op = Op::Atom { space: sp, op };
        }
        "bra" => {
            nops(1)?;
            only(&[])?;
            inst.op = Op::Bra { target: 0 };
            f.fixups.push((f.insts.len(), ops[0].clone()));
        }
        "ret" | "exit" => {
            inst.op = Op::Exit;
        }
        "bar" | "barrier" => {
            let arrive = rest.contains(&"arrive");
            let red = rest.iter().any(|m| matches!(*m, "red" | "popc" | "and" | "or"));
            if red {
                return Err(bad("barrier reduction"));
            }
            if rest.contains(&"warp") {
                inst.op = Op::WarpSync;
                nops(1)?;
                inst.a = f.reg(&ops[0])?;
            } else {
                only(&["arrive", "cta"])?;
                inst.op = Op::Bar { arrive };
                if ops.is_empty() || ops.len() > 2 {
                    return Err(bad("barrier operands"));
                }
                inst.a = f.reg(&ops[0])?;
                if let Some(b) = ops.get(1) {
                    inst.b = f.reg(b)?;
                }
            }
        }
        // Ordering, prefetch and scheduling hints have no effect in a sequentially consistent,
        // cache-less emulator.
        "membar" | "fence" | "prefetch" | "prefetchu" | "nanosleep" | "griddepcontrol" => {
            inst.op = Op::Nop;
        }
        "activemask" => {
            nops(1)?;
            inst.op = Op::Activemask;
            inst.d = f.reg(&ops[0])?;
        }
        "shfl" => {
            let mode = match rest.first() {
                Some(&"up") => ShflMode::Up,
                Some(&"down") => ShflMode::Down,
                Some(&"bfly") => ShflMode::Bfly,
                Some(&"idx") => ShflMode::Idx,
                _ => return Err(bad("shfl mode")),
            };
            if !mods.contains(&"sync") {
                return Err(bad("shfl without .sync"));
            }
            nops(5)?;
            inst.op = Op::Shfl(mode);
            let (d0, d1) = match ops[0].split_once('|') {
                Some((a, b)) => (a, Some(b)),
                None => (ops[0].as_str(), None),
            };
            inst.d = f.reg(d0)?;
            if let Some(p) = d1 {
                inst.d2 = f.reg(p)?;
            }
            inst.a = f.reg(&ops[1])?;
            inst.b = f.reg(&ops[2])?;
            inst.c = f.reg(&ops[3])?;
            inst.e = f.reg(&ops[4])?;
        }
        "vote" => {
            let mode = match rest.first() {
                Some(&"all") => VoteMode::All,
                Some(&"any") => VoteMode::Any,
                Some(&"uni") => VoteMode::Uni,
                Some(&"ballot") => VoteMode::Ballot,
                _ => return Err(bad("vote mode")),
            };
            if !mods.contains(&"sync") {
                return Err(bad("vote without .sync"));
            }
            nops(3)?;
            inst.op = Op::Vote(mode);
            inst.d = f.reg(&ops[0])?;
            let (neg, p) = match ops[1].strip_prefix('!') {
                Some(p) => (true, p),
                None => (false, ops[1].as_str()),
            };
            inst.pneg = neg;
            inst.a = f.reg(p)?;
            inst.e = f.reg(&ops[2])?;
        }
        "redux" => {
            let op = match rest.first() {
                Some(&"add") => AtomOp::Add,
                Some(&"min") => AtomOp::Min,
                Some(&"max") => AtomOp::Max,
                Some(&"and") => AtomOp::And,
                Some(&"or") => AtomOp::Or,
                Some(&"xor") => AtomOp::Xor,
                _ => return Err(bad("redux operation")),
            };
            if inst.ty.is_float() {
                return Err(bad("float redux"));
            }
            nops(3)?;
            inst.op = Op::Redux(op);
            inst.d = f.reg(&ops[0])?;
            inst.a = f.reg(&ops[1])?;
            inst.e = f.reg(&ops[2])?;
        }
        "mma" => {
            // mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
            let k = if mods.contains(&"m16n8k16") {
                16
            } else if mods.contains(&"m16n8k8") {
                8
            } else {
                return Err(bad("mma shape"));
            };
            if !(mods.contains(&"row") && mods.contains(&"col")) {
                return Err(bad("mma layout"));
            }
            let bf16 = match (types.first(), types.get(1), types.get(2), types.get(3)) {
                (Some(Ty::F32), Some(Ty::Bf16), Some(Ty::Bf16), Some(Ty::F32)) => true,
                (Some(Ty::F32), Some(Ty::F16), Some(Ty::F16), Some(Ty::F32)) => false,
                _ => return Err(bad("mma types (f32 accumulate from bf16/f16 only)")),
            };
            nops(4)?;
            let d = f.vec(&ops[0])?;
            let a = f.vec(&ops[1])?;
            let b = f.vec(&ops[2])?;
            let c = f.vec(&ops[3])?;
            let (na, nb) = if k == 16 { (4, 2) } else { (2, 1) };
            if d.len() != 4 || a.len() != na || b.len() != nb || c.len() != 4 {
                return Err(bad("mma fragment sizes"));
            }
            let all: Vec<u32> = d.iter().chain(&a).chain(&b).chain(&c).copied().collect();
            (inst.ext, inst.next) = f.push_ext(&all);
            inst.op = Op::Mma { k, bf16 };
        }
        "ldmatrix" => {
            if !mods.contains(&"m8n8") || types.first() != Some(&Ty::B16) || space != Some(Space::Shared) {
                return Err(bad("ldmatrix shape/type/space"));
            }
            let num = if mods.contains(&"x4") {
                4
            } else if mods.contains(&"x2") {
                2
            } else if mods.contains(&"x1") {
                1
            } else {
                return Err(bad("ldmatrix count"));
            };
            let trans = mods.contains(&"trans");
            only(&["m8n8", "x1", "x2", "x4", "trans"])?;
            nops(2)?;
            let d = f.vec(&ops[0])?;
            if d.len() != num as usize {
                return Err(bad("ldmatrix destinations"));
            }
            (inst.ext, inst.next) = f.push_ext(&d);
            let (base, off) = f.addr(&ops[1])?;
            inst.a = base;
            inst.imm = off;
            inst.op = Op::Ldmatrix { num, trans };
        }
        "cp" => {
            if mods.first() != Some(&"async") {
                return Err(bad("cp form"));
            }
            if mods.contains(&"commit_group") {
                inst.op = Op::CpCommit;
            } else if mods.contains(&"wait_group") {
                nops(1)?;
                let n = parse_imm(&ops[0]).ok_or_else(|| bad("wait_group count"))?;
                inst.op = Op::CpWait { n: n as u32, all: false };
            } else if mods.contains(&"wait_all") {
                inst.op = Op::CpWait { n: 0, all: true };
            } else {
                if mods.iter().any(|m| m.starts_with("bulk") || m.starts_with("mbarrier")) {
                    return Err(bad("cp.async form"));
                }
                if mods.contains(&"L2::cache_hint") {
                    return Err(bad("cp.async cache-policy operand"));
                }
                if ops.len() != 3 && ops.len() != 4 {
                    return Err(bad("cp.async operands"));
                }
                let (db, doff) = f.addr(&ops[0])?;
                let (sb, soff) = f.addr(&ops[1])?;
                let size = parse_imm(&ops[2]).ok_or_else(|| bad("cp.async size"))?;
                if !matches!(size, 4 | 8 | 16) {
                    return Err(bad("cp.async size"));
                }
                inst.a = db;
                inst.imm = doff;
                inst.b = sb;
                inst.imm2 = soff;
                if let Some(s) = ops.get(3) {
                    inst.c = f.reg(s)?;
                }
                inst.op = Op::CpAsync { size: size as u8 };
            }
        }
        "pragma" | "" => return Ok(None),
        _ => return Err(format!("unsupported instruction `{opcode}`")),
    }
    Ok(Some(inst))
}

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
    if let Some((n, rest)) = name.split_once('[') {
        let cnt = rest.trim_end_matches(']');
        let count = if cnt.is_empty() { None } else { Some(cnt.parse::<u32>().ok()? * elem) };
        Some((align, elem, n.to_string(), count))
    } else {
        Some((align, elem, name, Some(elem)))
    }
}

fn align_up(x: u32, a: u32) -> u32 {
    x.div_ceil(a.max(1)) * a.max(1)
}

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
    // params
    let mut params = Vec::new();
    let mut syms: HashMap<String, Sym> = HashMap::new();
    let mut off = 0u32;
    if let (Some(l), Some(r)) = (header.find('('), header.rfind(')')) {
        for p in split_operands(&header[l + 1..r]) {
            let p = p.replace(".param", "");
            let (align, elem, pname, count) =
                parse_decl(&p).ok_or_else(|| err(format!("cannot parse parameter `{p}`")))?;
            let size = count.unwrap_or(elem);
            off = align_up(off, align.max(elem));
            params.push(ParamDecl { offset: off, size });
            syms.insert(pname, Sym::Addr(PARAM_WINDOW + off as u64));
            off += size;
        }
    }
    let items = body_items(b, body.0, body.1, body.2);
    // Declarations first (shared/local layout, register names), then instructions.
    let mut shared = 0u32;
    for (n, a, sz) in &md.shared_static {
        shared = align_up(shared, *a);
        syms.insert(n.clone(), Sym::Addr(shared as u64));
        shared += sz;
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
                    shared += sz;
                }
                None => dyn_sym = Some((n, a)),
            }
        } else if t.starts_with(".local") {
            let (a, _, n, sz) = parse_decl(t).ok_or_else(|| err(format!("cannot parse `{t}`")))?;
            local = align_up(local, a);
            syms.insert(n, Sym::Addr(local as u64));
            local += sz.unwrap_or(0);
        }
    }
    let shared_static = align_up(shared, 16);
    if let Some((n, a)) = dyn_sym {
        syms.insert(n, Sym::Addr(align_up(shared_static, a) as u64));
    }
    let mut f = FnCtx {
        name: name.clone(),
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
    let _ = &f.name;
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
