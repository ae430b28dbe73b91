//! [`MaskRecipe`]: a mask by name with every parameter, buildable for any `seq_q x seq_k`. One
//! spelling serves the command line, the sweep's point keys, the profiles, the estimator, `attnjoule
//! mask` and the peer script (`benches/peers`):
//!
//! | spelling | mask |
//! |---|---|
//! | `none` | every key |
//! | `causal` | keys at or before the query (bottom-right aligned) |
//! | `window:<keys>` | causal sliding window of `keys` keys ending at the query |
//! | `longformer:<block>:<local>:<global>` | [`BlockLayout::longformer`] |
//! | `bigbird:<block>:<local>:<global>:<random>:<seed>` | [`BlockLayout::bigbird`] |
//! | `strided:<block>:<local>:<stride>` | [`BlockLayout::strided`] |
//! | `csr:<path>#<hash>` | a block layout read from a JSON file ([`LayoutFile`]), pinned by the 64-bit FNV-1a hash of its content (16 hex digits) |
//!
//! `FromStr` never touches the file system: a `csr` recipe must carry its hash. The command line
//! takes `csr:<path>` and reads the file ([`MaskRecipe::from_arg`]); building the mask reads it
//! again and refuses a file whose content no longer has the recorded hash.

use super::{BlockLayout, Mask};
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Largest block grid (block rows x block columns) a layout recipe is built for: the builders visit
/// every (block row, block column) pair; 2^28 pairs take about a second, and the sweep's 1M-token
/// contexts need 2^26 at block 128.
pub const MAX_LAYOUT_BLOCKS: usize = 1 << 28;

/// Largest layout file read (bytes): a 2^28-entry CSR is about 3 GB of JSON, far beyond what a
/// sweep needs; a bound keeps `csr:/dev/zero` from reading until memory runs out.
const MAX_LAYOUT_FILE_BYTES: u64 = 1 << 30;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MaskRecipe {
    None,
    Causal,
    /// Causal sliding window of `keys` keys ending at the query.
    Window {
        keys: usize,
    },
    /// `local` blocks either side of the diagonal, the first `global` blocks global.
    Longformer {
        block: usize,
        local: usize,
        global: usize,
    },
    /// Longformer's band and global blocks plus `random` seeded random blocks per block row.
    BigBird {
        block: usize,
        local: usize,
        global: usize,
        random: usize,
        seed: u64,
    },
    /// The previous `local` blocks and every `stride`-th block column, causal.
    Strided {
        block: usize,
        local: usize,
        stride: usize,
    },
    /// A block layout from a JSON file, pinned by [`layout_hash`] of its content.
    Csr {
        path: String,
        hash: u64,
    },
}

/// Why a spelling is not a recipe (or a layout file not a layout): one line, naming the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", crate::error::one_line(.0))]
pub struct RecipeError(pub String);

impl From<RecipeError> for Error {
    fn from(e: RecipeError) -> Self {
        Error::Invalid(e.0)
    }
}

const SPELLINGS: &str = "none, causal, window:<keys>, longformer:<block>:<local>:<global>, \
                         bigbird:<block>:<local>:<global>:<random>:<seed>, strided:<block>:<local>:<stride> or \
                         csr:<path>";

impl MaskRecipe {
    /// The recipe's name, the spelling's first word.
    pub fn kind(&self) -> &'static str {
        match self {
            MaskRecipe::None => "none",
            MaskRecipe::Causal => "causal",
            MaskRecipe::Window { .. } => "window",
            MaskRecipe::Longformer { .. } => "longformer",
            MaskRecipe::BigBird { .. } => "bigbird",
            MaskRecipe::Strided { .. } => "strided",
            MaskRecipe::Csr { .. } => "csr",
        }
    }

    /// A command-line argument: the spelling of [`FromStr`], except that a `csr` recipe names a
    /// file, read here (a `#<hash>` given with it must match the file).
    pub fn from_arg(s: &str) -> std::result::Result<MaskRecipe, RecipeError> {
        let Some(rest) = s.strip_prefix("csr:") else { return s.parse() };
        let (path, pinned) = split_hash(rest);
        if path.is_empty() {
            return Err(RecipeError(format!("mask {s:?}: csr:<path> names a block layout file")));
        }
        let (_, hash) = read_layout_file(path)?;
        if let Some(want) = pinned.filter(|&w| w != hash) {
            return Err(RecipeError(format!(
                "mask {s:?}: {path} has content hash {hash:016x}, not the {want:016x} given"
            )));
        }
        Ok(MaskRecipe::Csr { path: path.to_string(), hash })
    }

    /// The block grid a layout recipe builds for `seq_q x seq_k`, if it is one.
    fn block(&self) -> Option<usize> {
        match *self {
            MaskRecipe::Longformer { block, .. }
            | MaskRecipe::BigBird { block, .. }
            | MaskRecipe::Strided { block, .. } => Some(block),
            _ => None,
        }
    }

    /// Whether this recipe can be built for `seq_q x seq_k`, without building it: a layout
    /// builder's block grid is bounded ([`MAX_LAYOUT_BLOCKS`]; a bigger block keeps long sequences
    /// in range); a `csr` file is read and must fit the call's block grid.
    pub fn validate(&self, seq_q: usize, seq_k: usize) -> Result<()> {
        if let Some(block) = self.block() {
            let (nq, nk) = (seq_q.div_ceil(block), seq_k.div_ceil(block));
            if nq.checked_mul(nk).is_none_or(|n| n > MAX_LAYOUT_BLOCKS) {
                return Err(Error::Invalid(format!(
                    "{} block {block} at {seq_q} x {seq_k} tokens makes {nq} x {nk} blocks (at most \
                     {MAX_LAYOUT_BLOCKS}); use a larger block",
                    self.kind()
                )));
            }
            // BigBird draws `random` blocks per block row: bounded like the grid.
            if let MaskRecipe::BigBird { random, .. } = *self {
                if nq.checked_mul(random).is_none_or(|n| n > MAX_LAYOUT_BLOCKS) {
                    return Err(Error::Invalid(format!(
                        "bigbird: {random} random blocks per block row x {nq} block rows is more than \
                         {MAX_LAYOUT_BLOCKS} draws; use fewer random blocks or a larger block"
                    )));
                }
            }
        }
        if let MaskRecipe::Csr { .. } = self {
            self.mask(seq_q, seq_k)?;
        }
        Ok(())
    }

    /// The mask for a `seq_q x seq_k` call.
    pub fn mask(&self, seq_q: usize, seq_k: usize) -> Result<Mask> {
        Ok(match *self {
            MaskRecipe::None => Mask::None,
            MaskRecipe::Causal => Mask::Causal,
            MaskRecipe::Window { keys } => Mask::causal_window(keys),
            MaskRecipe::Longformer { block, local, global } => {
                self.validate(seq_q, seq_k)?;
                Mask::BlockSparse(BlockLayout::longformer(seq_q, seq_k, block, local, global))
            }
            MaskRecipe::BigBird { block, local, global, random, seed } => {
                self.validate(seq_q, seq_k)?;
                Mask::BlockSparse(BlockLayout::bigbird(seq_q, seq_k, block, local, global, random, seed))
            }
            MaskRecipe::Strided { block, local, stride } => {
                self.validate(seq_q, seq_k)?;
                Mask::BlockSparse(BlockLayout::strided(seq_q, seq_k, block, local, stride))
            }
            MaskRecipe::Csr { ref path, hash } => {
                let (layout, now) = read_layout_file(path)?;
                if now != hash {
                    return Err(Error::Invalid(format!(
                        "{path}: the layout's content hash is now {now:016x}, not the {hash:016x} recorded \
                         (the file changed)"
                    )));
                }
                layout.validate(seq_q, seq_k).map_err(|e| match e {
                    Error::Invalid(m) => Error::Invalid(format!("{path}: {m}")),
                    e => e,
                })?;
                Mask::BlockSparse(layout)
            }
        })
    }
}

impl fmt::Display for MaskRecipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MaskRecipe::None => write!(f, "none"),
            MaskRecipe::Causal => write!(f, "causal"),
            MaskRecipe::Window { keys } => write!(f, "window:{keys}"),
            MaskRecipe::Longformer { block, local, global } => write!(f, "longformer:{block}:{local}:{global}"),
            MaskRecipe::BigBird { block, local, global, random, seed } => {
                write!(f, "bigbird:{block}:{local}:{global}:{random}:{seed}")
            }
            MaskRecipe::Strided { block, local, stride } => write!(f, "strided:{block}:{local}:{stride}"),
            MaskRecipe::Csr { path, hash } => write!(f, "csr:{path}#{hash:016x}"),
        }
    }
}

/// `path#<16 hex digits>` -> (path, Some(hash)); anything else is all path.
fn split_hash(s: &str) -> (&str, Option<u64>) {
    match s.rsplit_once('#') {
        Some((p, h)) if h.len() == 16 && h.bytes().all(|b| b.is_ascii_hexdigit()) => {
            (p, u64::from_str_radix(h, 16).ok())
        }
        _ => (s, None),
    }
}

impl FromStr for MaskRecipe {
    type Err = RecipeError;

    fn from_str(s: &str) -> std::result::Result<MaskRecipe, RecipeError> {
        let bad = |why: String| RecipeError(format!("mask {s:?}: {why}"));
        let (name, params) = match s.split_once(':') {
            Some((n, p)) => (n, Some(p)),
            None => (s, None),
        };
        if name == "csr" {
            let rest = params.unwrap_or("");
            return match split_hash(rest) {
                (path, Some(hash)) if !path.is_empty() => Ok(MaskRecipe::Csr { path: path.to_string(), hash }),
                _ => Err(bad("a recorded csr recipe is csr:<path>#<16 hex digits of its content hash> (on the \
                              command line, csr:<path> reads the file)"
                    .into())),
            };
        }
        let (arity, form) = match name {
            "none" | "causal" => (0, name),
            "window" => (1, "window:<keys>"),
            "longformer" => (3, "longformer:<block>:<local>:<global>"),
            "bigbird" => (5, "bigbird:<block>:<local>:<global>:<random>:<seed>"),
            "strided" => (3, "strided:<block>:<local>:<stride>"),
            _ => return Err(bad(format!("unknown mask; expected {SPELLINGS}"))),
        };
        let fields: Vec<&str> = params.map_or(vec![], |p| p.split(':').collect());
        if fields.len() != arity {
            return Err(bad(format!("expected {form} ({arity} numbers, got {})", fields.len())));
        }
        let mut nums = Vec::with_capacity(arity);
        for f in &fields {
            // Digits only: one number has one spelling (no sign, no blanks), so keys compare.
            if f.is_empty() || !f.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("{f:?} is not a non-negative integer (expected {form})")));
            }
            nums.push(f.parse::<u64>().map_err(|_| bad(format!("{f} is too large")))?);
        }
        let size = |i: usize, what: &str| -> std::result::Result<usize, RecipeError> {
            let v = usize::try_from(nums[i]).map_err(|_| bad(format!("{what} {} is too large", nums[i])))?;
            if v == 0 && matches!(what, "block" | "window" | "stride") {
                return Err(bad(format!("{what} must be at least 1")));
            }
            Ok(v)
        };
        Ok(match name {
            "none" => MaskRecipe::None,
            "causal" => MaskRecipe::Causal,
            "window" => MaskRecipe::Window { keys: size(0, "window")? },
            "longformer" => MaskRecipe::Longformer {
                block: size(0, "block")?,
                local: size(1, "local")?,
                global: size(2, "global")?,
            },
            "bigbird" => MaskRecipe::BigBird {
                block: size(0, "block")?,
                local: size(1, "local")?,
                global: size(2, "global")?,
                random: size(3, "random")?,
                seed: nums[4],
            },
            _ => MaskRecipe::Strided { block: size(0, "block")?, local: size(1, "local")?, stride: size(2, "stride")? },
        })
    }
}

impl Serialize for MaskRecipe {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MaskRecipe {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A block layout file (`csr:<path>`): JSON with the block sizes and the CSR arrays; see
/// `profiles/README.md` ("Block layout files"). The layout fits exactly one block grid: a call of
/// `seq_q x seq_k` needs `ceil(seq_q / block_q)` block rows and columns below
/// `ceil(seq_k / block_k)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LayoutFile {
    pub block_q: usize,
    pub block_k: usize,
    pub row_ptr: Vec<i32>,
    pub col_idx: Vec<i32>,
    /// Free-form description (ignored).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// The content hash a `csr` recipe records: 64-bit FNV-1a over the block sizes and the CSR arrays
/// (little-endian), so reformatting the JSON keeps it. It tells layouts apart; it does not
/// authenticate them (not cryptographic).
pub fn layout_hash(l: &BlockLayout) -> u64 {
    let mut h = 0xcbf29ce484222325u64;
    let mut eat = |bytes: &[u8]| {
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x100000001b3);
        }
    };
    eat(&(l.block_q as u64).to_le_bytes());
    eat(&(l.block_k as u64).to_le_bytes());
    eat(&(l.row_ptr.len() as u64).to_le_bytes());
    l.row_ptr.iter().for_each(|v| eat(&v.to_le_bytes()));
    eat(&(l.col_idx.len() as u64).to_le_bytes());
    l.col_idx.iter().for_each(|v| eat(&v.to_le_bytes()));
    h
}

/// Reads and checks a layout file (structure only: the grid is checked against each call) and
/// returns it with its content hash. Errors are one line naming the file.
pub fn read_layout_file(path: &str) -> std::result::Result<(BlockLayout, u64), RecipeError> {
    use std::io::Read;
    let bad = |why: String| RecipeError(format!("{path}: {why}"));
    let file = std::fs::File::open(path).map_err(|e| bad(format!("cannot read the block layout: {e}")))?;
    let mut text = String::new();
    file.take(MAX_LAYOUT_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| bad(format!("cannot read the block layout: {e}")))?;
    if text.len() as u64 > MAX_LAYOUT_FILE_BYTES {
        return Err(bad(format!("a block layout file is at most {MAX_LAYOUT_FILE_BYTES} bytes")));
    }
    let f: LayoutFile = serde_json::from_str(&text).map_err(|e| {
        bad(format!("not a block layout ({e}); expected {{\"block_q\", \"block_k\", \"row_ptr\", \"col_idx\"}}"))
    })?;
    let layout = BlockLayout { block_q: f.block_q, block_k: f.block_k, row_ptr: f.row_ptr, col_idx: f.col_idx };
    layout.check_structure().map_err(|e| match e {
        Error::Invalid(m) => bad(m),
        e => bad(e.to_string()),
    })?;
    let hash = layout_hash(&layout);
    Ok((layout, hash))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all_kinds() -> Vec<MaskRecipe> {
        vec![
            MaskRecipe::None,
            MaskRecipe::Causal,
            MaskRecipe::Window { keys: 4096 },
            MaskRecipe::Longformer { block: 64, local: 1, global: 2 },
            MaskRecipe::BigBird { block: 64, local: 2, global: 2, random: 3, seed: u64::MAX },
            MaskRecipe::Strided { block: 128, local: 0, stride: 4 },
            MaskRecipe::Csr { path: "layouts/a#b:c.json".into(), hash: 0x0123_4567_89ab_cdef },
        ]
    }

    #[test]
    fn every_recipe_round_trips_through_its_spelling_and_serde() {
        for r in all_kinds() {
            let s = r.to_string();
            assert_eq!(s.parse::<MaskRecipe>(), Ok(r.clone()), "{s}");
            let json = serde_json::to_string(&r).unwrap();
            assert_eq!(json, format!("{s:?}"), "serialized as its spelling");
            assert_eq!(serde_json::from_str::<MaskRecipe>(&json).unwrap(), r);
        }
        assert_eq!("window:0128".parse::<MaskRecipe>().unwrap().to_string(), "window:128");
    }

    #[test]
    fn bad_spellings_are_one_line_errors_naming_the_input() {
        for (s, needle) in [
            ("", "unknown mask"),
            ("sparse", "unknown mask"),
            ("causal:1", "0 numbers, got 1"),
            ("window", "1 numbers, got 0"),
            ("window:", "not a non-negative integer"),
            ("window:0", "window must be at least 1"),
            ("window:-5", "not a non-negative integer"),
            ("window:+5", "not a non-negative integer"),
            ("window: 5", "not a non-negative integer"),
            ("window:99999999999999999999999", "too large"),
            ("longformer:0:1:1", "block must be at least 1"),
            ("longformer:64:1", "3 numbers, got 2"),
            ("bigbird:64:1:1:1", "5 numbers, got 4"),
            ("bigbird:64:1:1:1:18446744073709551616", "too large"),
            ("strided:64:1:0", "stride must be at least 1"),
            ("csr:layout.json", "content hash"),
            ("csr:#0123456789abcdef", "csr:<path>#"),
        ] {
            let e = s.parse::<MaskRecipe>().unwrap_err().to_string();
            assert!(e.contains(needle) && e.contains(&format!("{s:?}")) && !e.contains('\n'), "{s}: {e}");
        }
    }

    #[test]
    fn every_parameter_changes_the_recipe() {
        let base = MaskRecipe::BigBird { block: 64, local: 1, global: 1, random: 1, seed: 1 };
        let variants = [
            MaskRecipe::BigBird { block: 128, local: 1, global: 1, random: 1, seed: 1 },
            MaskRecipe::BigBird { block: 64, local: 2, global: 1, random: 1, seed: 1 },
            MaskRecipe::BigBird { block: 64, local: 1, global: 2, random: 1, seed: 1 },
            MaskRecipe::BigBird { block: 64, local: 1, global: 1, random: 2, seed: 1 },
            MaskRecipe::BigBird { block: 64, local: 1, global: 1, random: 1, seed: 2 },
        ];
        for v in variants {
            assert_ne!(v.to_string(), base.to_string());
        }
    }

    #[test]
    fn recipes_build_the_layout_builders_masks() {
        let m = |s: &str, q, k| s.parse::<MaskRecipe>().unwrap().mask(q, k).unwrap();
        assert_eq!(m("window:100", 4, 1000), Mask::causal_window(100));
        assert_eq!(m("longformer:64:1:2", 300, 300), Mask::BlockSparse(BlockLayout::longformer(300, 300, 64, 1, 2)));
        assert_eq!(m("bigbird:64:1:1:2:9", 1, 5000), Mask::BlockSparse(BlockLayout::bigbird(1, 5000, 64, 1, 1, 2, 9)));
        assert_eq!(m("strided:16:1:4", 100, 100), Mask::BlockSparse(BlockLayout::strided(100, 100, 16, 1, 4)));
        let e = "longformer:1:1:1".parse::<MaskRecipe>().unwrap().mask(1 << 20, 1 << 20).unwrap_err();
        assert!(e.to_string().contains("use a larger block"), "{e}");
        let e = "bigbird:64:1:1:1000000000000:0".parse::<MaskRecipe>().unwrap().mask(4096, 4096).unwrap_err();
        assert!(e.to_string().contains("fewer random blocks"), "{e}");
    }

    fn tmp(name: &str, text: &str) -> String {
        let dir = std::env::temp_dir().join(format!("attnjoule-recipe-{}-{}", std::process::id(), name));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("layout.json");
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }

    #[test]
    fn csr_files_are_read_hashed_and_checked() {
        // 128 x 192 tokens in 64-token blocks: 2 block rows, 3 block columns.
        let text = r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3], "col_idx": [0, 0, 2]}"#;
        let path = tmp("ok", text);
        let r = MaskRecipe::from_arg(&format!("csr:{path}")).unwrap();
        let MaskRecipe::Csr { hash, .. } = r else { panic!("{r:?}") };
        // The spelling pins the content: it parses back without the file system, and as an
        // argument it is checked against the file.
        assert_eq!(r.to_string().parse::<MaskRecipe>().unwrap(), r);
        assert_eq!(MaskRecipe::from_arg(&r.to_string()).unwrap(), r);
        let Mask::BlockSparse(l) = r.mask(128, 192).unwrap() else { panic!() };
        assert_eq!((l.row_ptr, l.col_idx), (vec![0, 1, 3], vec![0, 0, 2]));
        // Reformatting the file keeps the hash; another layout of the same name does not.
        let spaced = tmp("ok", &text.replace(", ", ",\n   "));
        assert_eq!(MaskRecipe::from_arg(&format!("csr:{spaced}")).unwrap(), r);
        let other = tmp("other", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3], "col_idx": [0, 1, 2]}"#);
        let MaskRecipe::Csr { hash: h2, .. } = MaskRecipe::from_arg(&format!("csr:{other}")).unwrap() else { panic!() };
        assert_ne!(hash, h2);
        // The file changing under a recorded recipe is refused.
        std::fs::write(&path, r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 2, 3], "col_idx": [0, 1, 2]}"#).unwrap();
        let e = r.mask(128, 192).unwrap_err().to_string();
        assert!(e.contains("the file changed"), "{e}");
        let e = MaskRecipe::from_arg(&r.to_string()).unwrap_err().to_string();
        assert!(e.contains("not the"), "{e}");
        // A call of another block grid.
        let r2 = MaskRecipe::from_arg(&format!("csr:{other}")).unwrap();
        let e = r2.validate(256, 192).unwrap_err().to_string();
        assert!(e.contains("block rows") && e.contains(&other), "{e}");
        let e = r2.validate(128, 128).unwrap_err().to_string();
        assert!(e.contains("column 2"), "{e}");
    }

    #[test]
    fn bad_csr_files_are_one_line_errors() {
        for (name, text, needle) in [
            ("notjson", "garbage", "not a block layout"),
            ("field", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0], "colidx": []}"#, "not a block layout"),
            ("block0", r#"{"block_q": 0, "block_k": 64, "row_ptr": [0], "col_idx": []}"#, "at least 1"),
            ("start", r#"{"block_q": 64, "block_k": 64, "row_ptr": [1, 1], "col_idx": [0]}"#, "start at 0"),
            ("end", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 2], "col_idx": [0]}"#, "end at"),
            ("down", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 2, 1, 2], "col_idx": [0, 1]}"#, "decreases"),
            ("order", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 2], "col_idx": [1, 1]}"#, "increasing"),
            ("neg", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1], "col_idx": [-1]}"#, "column -1"),
            ("empty", r#"{"block_q": 64, "block_k": 64, "row_ptr": [], "col_idx": []}"#, "row_ptr"),
            ("big", r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 3000000000], "col_idx": []}"#, "not a block"),
        ] {
            let path = tmp(name, text);
            let e = MaskRecipe::from_arg(&format!("csr:{path}")).unwrap_err().to_string();
            assert!(e.starts_with(&path) && e.contains(needle) && !e.contains('\n'), "{name}: {e}");
        }
        let e = MaskRecipe::from_arg("csr:/nonexistent/layout.json").unwrap_err().to_string();
        assert!(e.contains("cannot read") && e.contains("/nonexistent/layout.json"), "{e}");
        assert!(MaskRecipe::from_arg("csr:").unwrap_err().to_string().contains("names a block layout file"));
    }
}
