//! Text level: comments, statements, labels and braces of a body, operand lists, immediates.

/// One statement (up to its `;`) and the PTX line it starts on.
pub(super) struct Stmt {
    pub(super) text: String,
    pub(super) line: u32,
}

/// A kernel body as a sequence of statements, labels and `{ }` scopes.
pub(super) enum BodyItem {
    Stmt(Stmt),
    Label(String),
    Open,
    Close,
}

/// Replaces comments with spaces, keeping newlines so that line numbers stay exact.
pub(super) fn strip_comments(src: &str) -> Vec<u8> {
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

pub(super) struct Cursor<'a> {
    pub(super) b: &'a [u8],
    pub(super) i: usize,
    pub(super) line: u32,
}

impl<'a> Cursor<'a> {
    pub(super) fn skip_ws(&mut self) {
        while self.i < self.b.len() && self.b[self.i].is_ascii_whitespace() {
            if self.b[self.i] == b'\n' {
                self.line += 1;
            }
            self.i += 1;
        }
    }
    pub(super) fn eof(&self) -> bool {
        self.i >= self.b.len()
    }
    pub(super) fn peek(&self) -> u8 {
        self.b[self.i]
    }
    pub(super) fn bump(&mut self) -> u8 {
        let c = self.b[self.i];
        if c == b'\n' {
            self.line += 1;
        }
        self.i += 1;
        c
    }
    pub(super) fn rest_of_line(&mut self) -> String {
        let s = self.i;
        while self.i < self.b.len() && self.b[self.i] != b'\n' {
            self.i += 1;
        }
        String::from_utf8_lossy(&self.b[s..self.i]).into_owned()
    }
    /// Reads up to (not including) `;` at brace depth 0, or an opening brace at depth 0 when
    /// `stop_at_brace`; returns the text and the terminator.
    pub(super) fn until_semi(&mut self, stop_at_brace: bool) -> (String, u8) {
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
    pub(super) fn skip_block(&mut self) -> usize {
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

/// A character of a label: PTX identifiers are `[a-zA-Z0-9_$%]` (no `.`, so that an opcode
/// such as `ld.shared::cta` is never read as a label).
fn is_label_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c == b'%'
}

pub(super) fn body_items(b: &[u8], start: usize, end: usize, line: u32) -> Vec<BodyItem> {
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
        // `.loc` / `.file` directives (not `.local`, a declaration).
        let rest = &cur.b[cur.i..];
        let directive = |d: &[u8]| rest.starts_with(d) && rest.get(d.len()).is_some_and(|c| c.is_ascii_whitespace());
        if directive(b".loc") || directive(b".file") {
            cur.rest_of_line();
            continue;
        }
        // label?
        let mut j = cur.i;
        while j < cur.b.len() && is_label_char(cur.b[j]) {
            j += 1;
        }
        if j < cur.b.len() && cur.b[j] == b':' && cur.b.get(j + 1) != Some(&b':') && j > cur.i {
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
pub(super) fn split_operands(s: &str) -> Vec<String> {
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
pub(super) fn parse_imm(s: &str) -> Option<u64> {
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
