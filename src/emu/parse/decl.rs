//! Declarations: variables (`.shared`, `.local`, `.param`, `.const`, `.global`) with their
//! alignment, element type, size and initializer, and `.func` headers.

use super::super::ir::Ty;
use super::text::{parse_imm, split_operands};

/// One variable declaration.
#[derive(Debug, Clone)]
pub(super) struct Decl {
    pub(super) align: u32,
    /// Bytes of one element (`.b8 x[16]`: 1).
    pub(super) elem: u32,
    pub(super) name: String,
    /// Total bytes; `None` for an unsized `[]` array (`extern __shared__`).
    pub(super) size: Option<u32>,
    /// The text after `=`, if any.
    pub(super) init: Option<String>,
}

/// Parses `[.directives] [.align N] .type name[dims] [= init]`.
pub(super) fn parse_decl(s: &str) -> Option<Decl> {
    let (lhs, init) = match s.split_once('=') {
        Some((l, r)) => (l, Some(r.trim().to_string())),
        None => (s, None),
    };
    let toks: Vec<&str> = lhs.split_whitespace().collect();
    let mut align = 0u32;
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
    let align = if align == 0 { elem } else { align };
    match name.split_once('[') {
        Some((n, dims)) => {
            // name[4][8] (multi-dimensional) or name[] (unsized)
            let mut count = 1u32;
            for d in dims.trim_end_matches(']').split("][") {
                if d.is_empty() {
                    return Some(Decl { align, elem, name: n.to_string(), size: None, init });
                }
                count = count.checked_mul(d.trim().parse().ok()?)?;
            }
            Some(Decl { align, elem, name: n.to_string(), size: Some(count.checked_mul(elem)?), init })
        }
        None => Some(Decl { align, elem, name, size: Some(elem), init }),
    }
}

/// An initializer's values, flattened (`{{1, 2}, {3, 4}}` → 1, 2, 3, 4).
fn init_values(init: &str) -> Vec<String> {
    let t = init.trim();
    if let Some(inner) = t.strip_prefix('{').and_then(|x| x.strip_suffix('}')) {
        split_operands(inner).iter().flat_map(|v| init_values(v)).collect()
    } else if t.is_empty() {
        Vec::new()
    } else {
        vec![t.to_string()]
    }
}

/// The bytes of a variable of `d.size` bytes: its initializer's values, each `d.elem` bytes
/// little-endian, zero after the last (and everywhere without one). `addr` gives the address of
/// a symbol named in the initializer (`generic(x)`, `x`, `x+8`).
pub(super) fn init_bytes(d: &Decl, addr: &dyn Fn(&str) -> Option<u64>) -> Result<Vec<u8>, String> {
    let size = d.size.unwrap_or(0) as usize;
    let mut bytes = vec![0u8; size];
    let Some(init) = &d.init else { return Ok(bytes) };
    let e = d.elem as usize;
    for (i, v) in init_values(init).iter().enumerate() {
        let x = match parse_imm(v) {
            Some(x) => x,
            None => {
                let s = v.trim();
                let s = s.strip_prefix("generic(").and_then(|x| x.strip_suffix(')')).unwrap_or(s);
                let (sym, off) = match s.split_once('+') {
                    Some((a, b)) => (a.trim(), parse_imm(b).ok_or_else(|| bad_init(d, v))?),
                    None => (s, 0),
                };
                if e != 8 {
                    return Err(format!(
                        "initializer of `{}`: the address `{v}` in {e}-byte elements is not supported",
                        d.name
                    ));
                }
                addr(sym).ok_or_else(|| bad_init(d, v))?.wrapping_add(off)
            }
        };
        let at = i * e;
        if at + e > size {
            return Err(format!("initializer of `{}` has more values than its {size} bytes", d.name));
        }
        bytes[at..at + e].copy_from_slice(&x.to_le_bytes()[..e]);
    }
    Ok(bytes)
}

fn bad_init(d: &Decl, v: &str) -> String {
    format!("unsupported value `{v}` in the initializer of `{}`", d.name)
}

/// A `.func` header: name, return parameters and parameters.
#[derive(Debug, Clone)]
pub(super) struct FuncHeader {
    pub(super) name: String,
    pub(super) rets: Vec<Decl>,
    pub(super) params: Vec<Decl>,
}

/// Parses `[.visible|.weak|.extern] .func [(.param ... ret)] name [(.param ... , ...)] [attrs]`.
pub(super) fn parse_func_header(h: &str) -> Option<FuncHeader> {
    let rest = h.split_once(".func")?.1.trim();
    let (rets, rest) = if rest.starts_with('(') {
        let close = rest.find(')')?;
        (&rest[1..close], rest[close + 1..].trim())
    } else {
        ("", rest)
    };
    let (name, params) = match rest.find('(') {
        Some(o) => {
            let close = rest.rfind(')')?;
            (rest[..o].trim(), &rest[o + 1..close])
        }
        None => (rest.split_whitespace().next()?, ""),
    };
    let decls = |s: &str| -> Option<Vec<Decl>> {
        split_operands(s).iter().map(|p| parse_decl(&p.replace(".param", "").replace(".reg", ""))).collect()
    };
    Some(FuncHeader { name: name.to_string(), rets: decls(rets)?, params: decls(params)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declarations() {
        let d = parse_decl(".global .align 4 .b8 lut[16] = {10, 0, 0, 0, 20}").expect("decl");
        assert_eq!((d.align, d.elem, d.name.as_str(), d.size), (4, 1, "lut", Some(16)));
        let b = init_bytes(&d, &|_| None).expect("init");
        assert_eq!(b, [10, 0, 0, 0, 20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        let d = parse_decl(".shared .align 16 .f32 tile[4][8]").expect("decl");
        assert_eq!(d.size, Some(128));
        let d = parse_decl(".extern .shared .align 16 .b8 smem[]").expect("decl");
        assert_eq!(d.size, None);
        let d = parse_decl(".global .u64 ptrs[2] = {generic(a), b+8}").expect("decl");
        let b = init_bytes(&d, &|s| Some(if s == "a" { 0x1000 } else { 0x2000 })).expect("init");
        assert_eq!(u64::from_le_bytes(b[..8].try_into().unwrap()), 0x1000);
        assert_eq!(u64::from_le_bytes(b[8..].try_into().unwrap()), 0x2008);
        let d = parse_decl(".const .align 4 .f32 t[2] = {0f3F800000, 0fC0000000}").expect("decl");
        let b = init_bytes(&d, &|_| None).expect("init");
        assert_eq!(f32::from_le_bytes(b[4..].try_into().unwrap()), -2.0);
        let d = parse_decl(".global .u32 x[1] = {1, 2}").expect("decl");
        assert!(init_bytes(&d, &|_| None).is_err());
    }

    #[test]
    fn func_headers() {
        let h = parse_func_header(
            ".func  (.param .b32 func_retval0) _Z6helperfi(\n.param .b32 _Z6helperfi_param_0,\n.param .b32 p1\n)",
        )
        .expect("header");
        assert_eq!(h.name, "_Z6helperfi");
        assert_eq!(h.rets.len(), 1);
        assert_eq!(h.params.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(), ["_Z6helperfi_param_0", "p1"]);
        let h = parse_func_header(".extern .func __assertfail\n(\n.param .b64 a\n)\n").expect("header");
        assert_eq!((h.name.as_str(), h.rets.len(), h.params.len()), ("__assertfail", 0, 1));
        let h = parse_func_header(".func _Z3foov()").expect("header");
        assert_eq!((h.name.as_str(), h.params.len()), ("_Z3foov", 0));
    }
}
