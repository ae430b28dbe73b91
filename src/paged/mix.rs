//! The serving axes of a measurement point: KV dtype, page size and a named ragged mix of
//! sequence lengths. All three default to today's point (a contiguous bf16 cache, every sequence
//! of the same length), and the defaults are what older profiles and logs mean.

use super::{Allocation, BatchError, BatchResult, KvDtype, PagedBatch, SeqSpec};
use crate::problem::Shape;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Most sequences a named mix may have.
pub const MAX_MIX: usize = 4096;

/// A named ragged mix `mix<count>:<seed>`: `count` sequences whose lengths are drawn from `seed`
/// up to a point's context ([`Mix::lengths`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Mix {
    pub count: usize,
    pub seed: u64,
}

/// SplitMix64 (Steele, Lea, Flood 2014): a fixed generator, so a mix's name means the same
/// lengths on every build (std's and rand's generators may change between versions).
fn splitmix(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl Mix {
    /// Keys of each sequence at `context`: the first has exactly `context` (the point's context
    /// is its longest conversation); the others are log-uniform in [1, context] (`round(context^u)`
    /// for `u` uniform in [0, 1) from SplitMix64 seeded with `seed`): as many short conversations
    /// as long ones per factor of length, as a server holds them.
    pub fn lengths(&self, context: usize) -> Vec<usize> {
        let mut state = self.seed;
        let mut v = Vec::with_capacity(self.count);
        if self.count > 0 {
            v.push(context);
        }
        for _ in 1..self.count {
            let u = (splitmix(&mut state) >> 11) as f64 / (1u64 << 53) as f64;
            v.push(((context as f64).powf(u).round() as usize).clamp(1.min(context), context));
        }
        v
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mix{}:{}", self.count, self.seed)
    }
}

impl FromStr for Mix {
    type Err = BatchError;
    fn from_str(s: &str) -> BatchResult<Mix> {
        let bad = || {
            BatchError::Invalid(format!("mix {s:?}: expected mix<count>:<seed>, count 1..={MAX_MIX} (e.g. mix64:1)"))
        };
        let (count, seed) = s.strip_prefix("mix").and_then(|r| r.split_once(':')).ok_or_else(bad)?;
        let digits = |x: &str| !x.is_empty() && x.bytes().all(|b| b.is_ascii_digit());
        if !digits(count) || !digits(seed) {
            return Err(bad());
        }
        let count: usize = count.parse().map_err(|_| bad())?;
        let seed: u64 = seed.parse().map_err(|_| bad())?;
        if !(1..=MAX_MIX).contains(&count) {
            return Err(bad());
        }
        Ok(Mix { count, seed })
    }
}

impl Serialize for Mix {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Mix {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

fn is_bf16(d: &KvDtype) -> bool {
    *d == KvDtype::Bf16
}

/// How a decode point's cache is stored and batched. Flattened into profile points (`kv_dtype`,
/// `page_size`, `mix`), each omitted when it has its default: a contiguous bf16 cache, a uniform
/// batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ServingAxes {
    #[serde(default, skip_serializing_if = "is_bf16")]
    pub kv_dtype: KvDtype,
    /// Tokens per page; `None`: a contiguous cache (today's decode kernel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub page_size: Option<usize>,
    /// A ragged batch; `None`: `shape.batch` sequences of `shape.seq_k` keys.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mix: Option<Mix>,
}

impl ServingAxes {
    /// Today's contiguous bf16 uniform point.
    pub fn is_default(&self) -> bool {
        *self == ServingAxes::default()
    }
    /// What a point key appends: nothing for the default, else `/kv=fp8`, `/page=64`,
    /// `/mix=mix64:1` for the axes that differ from it.
    pub fn key_suffix(&self) -> String {
        let mut s = String::new();
        if self.kv_dtype != KvDtype::Bf16 {
            s += &format!("/kv={}", self.kv_dtype);
        }
        if let Some(p) = self.page_size {
            s += &format!("/page={p}");
        }
        if let Some(m) = self.mix {
            s += &format!("/mix={m}");
        }
        s
    }
    /// Words for a point's label (empty for the default).
    pub fn label(&self) -> String {
        self.key_suffix().replace('/', " ")
    }
    /// Every combination of the given values a kernel can run: a contiguous cache is bf16 and
    /// uniform (today's kernel), anything paged takes every dtype and mix. A value that ends in no
    /// combination (fp8 or a mix without a page size), or a bad page size, is an error.
    pub fn cross(kv: &[KvDtype], pages: &[Option<usize>], mixes: &[Option<Mix>]) -> BatchResult<Vec<ServingAxes>> {
        for &p in pages.iter().flatten() {
            if !(p.is_power_of_two() && (super::MIN_PAGE_SIZE..=super::MAX_PAGE_SIZE).contains(&p)) {
                return Err(BatchError::PageSize(p));
            }
        }
        let mut out = Vec::new();
        for &page_size in pages {
            for &kv_dtype in kv {
                for &mix in mixes {
                    let a = ServingAxes { kv_dtype, page_size, mix };
                    if (page_size.is_some() || a.is_default()) && !out.contains(&a) {
                        out.push(a);
                    }
                }
            }
        }
        let paged = pages.iter().any(|p| p.is_some());
        if !paged && (kv.iter().any(|&k| k != KvDtype::Bf16) || mixes.iter().any(|m| m.is_some())) {
            return Err(BatchError::Invalid(
                "an fp8 cache and a ragged mix live in pages: give a page size (--page-size 16..256)".into(),
            ));
        }
        if out.is_empty() {
            return Err(BatchError::Invalid("no serving combination: give a KV dtype, a page size and a mix".into()));
        }
        Ok(out)
    }

    /// Bytes of the K and V pools (scales included) a point of `shape` with these axes holds,
    /// computed without building the batch (a page size of `None` counts as contiguous).
    pub fn cache_bytes(&self, shape: &Shape) -> f64 {
        let page = self.page_size.unwrap_or(1).max(1) as f64;
        let keys: f64 = match self.mix {
            Some(m) => m.lengths(shape.seq_k).iter().map(|&k| (k as f64 / page).ceil() * page).sum(),
            None => shape.batch as f64 * (shape.seq_k as f64 / page).ceil() * page,
        };
        2.0 * keys * (shape.kv_heads * self.kv_dtype.row_bytes(shape.head_dim)) as f64
    }

    /// The paged batch a point of `shape` with these axes runs: the mix's lengths (or
    /// `shape.batch` of `shape.seq_k`), `shape.seq_q` new tokens each, pages in order.
    pub fn batch(&self, shape: &Shape) -> BatchResult<PagedBatch> {
        let page = self.page_size.ok_or(BatchError::PageSize(0))?;
        let lengths = match self.mix {
            Some(m) => m.lengths(shape.seq_k),
            None => vec![shape.seq_k; shape.batch],
        };
        let seqs: Vec<SeqSpec> = lengths.iter().map(|&keys| SeqSpec { keys, new_tokens: shape.seq_q }).collect();
        PagedBatch::allocate(
            shape.heads,
            shape.kv_heads,
            shape.head_dim,
            page,
            self.kv_dtype,
            &seqs,
            Allocation::default(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_spell_and_draw() {
        let m: Mix = "mix64:7".parse().unwrap();
        assert_eq!(m, Mix { count: 64, seed: 7 });
        assert_eq!(m.to_string(), "mix64:7");
        assert_eq!(serde_json::to_string(&m).unwrap(), "\"mix64:7\"");
        for bad in ["mix", "mix64", "mix:1", "mix0:1", "mix64:-1", "mix64: 1", "mix4097:1", "mixa:1", "max64:1", ""] {
            assert!(bad.parse::<Mix>().is_err(), "{bad}");
        }
        let l = m.lengths(40_000);
        assert_eq!((l.len(), l[0]), (64, 40_000));
        assert!(l.iter().all(|&x| (1..=40_000).contains(&x)));
        assert_eq!(l, m.lengths(40_000), "a name is its lengths");
        assert_ne!(l, Mix { count: 64, seed: 8 }.lengths(40_000));
        // Log-uniform: about half the draws below sqrt(context).
        let big = Mix { count: 4000, seed: 1 }.lengths(1 << 20);
        let below = big.iter().filter(|&&x| x < 1 << 10).count();
        assert!((1700..2300).contains(&below), "{below} of 4000 below 1K");
        assert_eq!(Mix { count: 3, seed: 0 }.lengths(1), vec![1, 1, 1]);
    }

    #[test]
    fn crossing_axes() {
        use KvDtype::*;
        let m = Some(Mix { count: 8, seed: 1 });
        let d = ServingAxes::default();
        assert_eq!(ServingAxes::cross(&[Bf16], &[None], &[None]).unwrap(), vec![d]);
        let all = ServingAxes::cross(&[Bf16, Fp8], &[None, Some(64)], &[None, m]).unwrap();
        // contiguous bf16 uniform, then page 64 x {bf16, fp8} x {uniform, mix}
        assert_eq!(all.len(), 5);
        assert_eq!(all[0], d);
        assert!(all[1..].iter().all(|a| a.page_size == Some(64)));
        assert!(ServingAxes::cross(&[Fp8], &[None], &[None]).is_err());
        assert!(ServingAxes::cross(&[Bf16], &[None], &[m]).is_err());
        assert_eq!(ServingAxes::cross(&[Bf16], &[Some(48)], &[None]).unwrap_err(), BatchError::PageSize(48));
        assert!(ServingAxes::cross(&[], &[None], &[None]).is_err());
    }

    #[test]
    fn axes_serialize_only_what_differs() {
        let d = ServingAxes::default();
        assert!(d.is_default() && d.key_suffix().is_empty());
        assert_eq!(serde_json::to_string(&d).unwrap(), "{}");
        let a = ServingAxes { kv_dtype: KvDtype::Fp8, page_size: Some(64), mix: Some(Mix { count: 64, seed: 3 }) };
        assert_eq!(a.key_suffix(), "/kv=fp8/page=64/mix=mix64:3");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, r#"{"kv_dtype":"fp8","page_size":64,"mix":"mix64:3"}"#);
        assert_eq!(serde_json::from_str::<ServingAxes>(&json).unwrap(), a);
        assert_eq!(serde_json::from_str::<ServingAxes>("{}").unwrap(), d);
        let s = Shape::decode(1, 4, 40_000, 8, 1, 128);
        let b = a.batch(&s).unwrap();
        assert_eq!((b.num_seqs(), b.seq_len(0), b.new_tokens(3)), (64, 40_000, 4));
        assert!(d.batch(&s).is_err(), "no page size: not a paged point");
        let b16 = ServingAxes { kv_dtype: KvDtype::Bf16, ..a };
        let pool = |b: &PagedBatch| {
            2.0 * (b.pool_elems() * b.kv_dtype.elem_bytes() + b.scale_elems() * b.kv_dtype.scale_bytes()) as f64
        };
        assert_eq!(a.cache_bytes(&s), pool(&b));
        assert_eq!(b16.cache_bytes(&s), pool(&b16.batch(&s).unwrap()));
    }
}
