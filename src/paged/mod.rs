//! Serving decode: one step of a server that decodes a ragged batch of conversations whose K/V
//! cache lives in fixed-size pages (vLLM's PagedAttention, FlashInfer, FlashAttention's paged KV).
//!
//! A [`PagedBatch`] is the whole step, in the form the kernel receives it
//! (`kernels/include/attn_paged.h`, bound by bindgen into [`params`]):
//! - **Sequences, varlen.** Sequence `s` brings `q_offsets[s+1] - q_offsets[s]` new query tokens
//!   (1..=[`MAX_NEW_TOKENS`]), rows `q_offsets[s]..` of Q and O (`[total_q, heads, head_dim]` bf16;
//!   LSE `[total_q, heads]` f32), against `seq_lens[s]` cached keys, the new tokens included (the
//!   last `new_tokens` keys are the new tokens' own, bottom-right aligned like [`crate::mask`]). A
//!   sequence may hold fewer keys than new tokens (its first rows then see no key, as a contiguous
//!   decode call with `seq_q > seq_k`), and even none (`seq_lens[s] = 0`: every row of it gives
//!   O = 0, LSE = -inf): a server's idle or preempted slot stays in the batch without a special case.
//! - **Block table, CSR.** Sequence `s` owns pages `block_table[block_offsets[s]..block_offsets[s+1]]`
//!   (int32 page ids, any order); key `j` lives in page `block_table[block_offsets[s] + j /
//!   page_size]`, slot `j % page_size`. A ragged table (not a `[seqs, max_pages]` matrix) because one
//!   1M-token conversation beside 63 short ones would pad every row to 16K entries. Pages past
//!   `ceil(seq_lens[s] / page_size)` are allowed (room to grow) and never read.
//! - **Pools.** K and V each live in a pool `[num_pages, kv_heads, page_size, head_dim]` (head-major
//!   inside a page, "HND"): one KV head's slice of a page is `page_size x head_dim` contiguous
//!   elements (16..256 rows of 64 or 128 B each for fp8, twice that for bf16: 1..64 KiB), so a
//!   kernel that serves one KV head fetches a page with one bulk copy, and a server appending a
//!   token writes `kv_heads` rows of `head_dim` elements. A token-major page (vLLM's
//!   `[page, slot, kv_head, d]`) would scatter one head's slice in `kv_heads`-strided rows.
//!   Element `(page, kv_head, slot, i)` is at `((page * kv_heads + kv_head) * page_size + slot) *
//!   head_dim + i`.
//! - **KV dtype** ([`KvDtype`]): bf16, or fp8 e4m3 with one bf16 scale per token and KV head
//!   (separately for K and V; pools `[num_pages, kv_heads, page_size]`, indexed like the elements
//!   without `i`). Why per token: a server appends one token at a time, and a per-token scale is
//!   fixed when the token is written, never revisited; a per-page scale would have to be chosen
//!   before the page's later tokens exist (clipping them when they are larger) or the whole page
//!   requantized on every append (a read-modify-write of up to 64 KiB and a second rounding of the
//!   tokens already there). What the kernel loads for it: 2 B per token and head next to 64 or 128 B
//!   of data (3.1% at head_dim 64, 1.6% at 128), one short contiguous run per page; a per-token
//!   scale multiplies a whole score column (K: `s_j = scale_k[j] * (q . k_j)`) or a whole
//!   probability column (V: `p_j * scale_v[j]`), one multiply per key, not per element. bf16 (not
//!   f32) because it has f32's range, halves the scale bytes, and the quantizer rounds the scale up
//!   so the largest element still fits ([`fp8`]).
//! - **Contiguous caches** are the special case of consecutive pages under an identity block table
//!   ([`PagedBatch::contiguous`]); the in-page layout stays the same, there is no second path.
//! - **Pages shared between sequences** are allowed (prefix sharing: a decode step only reads the
//!   cache); one page twice in the same sequence's table is refused (it cannot hold two positions).
//!
//! Submodules: [`fp8`] (the e4m3 quantizer), [`reference`] (f64 attention over a paged batch from
//! the dequantized cache, and the quantization error), [`plan`] (the load-balanced split-KV work
//! plan), [`mix`] (named ragged mixes and the point axes of the sweep), [`params`] (the kernel
//! struct).

pub mod fp8;
pub mod mix;
pub mod params;
pub mod plan;
pub mod reference;

use crate::error::Error;
use crate::mask::{Mask, MaskRecipe};
use crate::problem::{Shape, SUPPORTED_HEAD_DIMS};
use half::bf16;
use serde::{Deserialize, Serialize};

/// New query tokens a sequence may bring to one step (the decode kernel's row budget).
pub const MAX_NEW_TOKENS: usize = 16;
/// Page sizes: powers of two in this range (tokens).
pub const MIN_PAGE_SIZE: usize = 16;
pub const MAX_PAGE_SIZE: usize = 256;

/// How the K/V cache is stored.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize, clap::ValueEnum,
)]
#[serde(rename_all = "lowercase")]
pub enum KvDtype {
    /// bf16 elements, no scales.
    #[default]
    Bf16,
    /// fp8 e4m3 elements with one bf16 scale per token and KV head.
    Fp8,
}

impl KvDtype {
    pub fn name(self) -> &'static str {
        match self {
            KvDtype::Bf16 => "bf16",
            KvDtype::Fp8 => "fp8",
        }
    }
    /// Bytes of one cached element.
    pub fn elem_bytes(self) -> usize {
        match self {
            KvDtype::Bf16 => 2,
            KvDtype::Fp8 => 1,
        }
    }
    /// Bytes of the scale of one token's row (one KV head, K or V).
    pub fn scale_bytes(self) -> usize {
        match self {
            KvDtype::Bf16 => 0,
            KvDtype::Fp8 => 2,
        }
    }
    /// Bytes one token adds to one KV head's K (or V) cache, scale included.
    pub fn row_bytes(self, head_dim: usize) -> usize {
        head_dim * self.elem_bytes() + self.scale_bytes()
    }
    /// The kernel's code (`ATTN_KV_*` in attn_paged.h).
    pub fn code(self) -> i32 {
        match self {
            KvDtype::Bf16 => params::ATTN_KV_BF16 as i32,
            KvDtype::Fp8 => params::ATTN_KV_FP8_E4M3 as i32,
        }
    }
}

impl std::fmt::Display for KvDtype {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a batch cannot run; every input gives one of these, never a panic.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BatchError {
    #[error("the batch has no sequence")]
    Empty,
    #[error("heads ({heads}) must be a positive multiple of kv_heads ({kv_heads})")]
    Heads { heads: usize, kv_heads: usize },
    #[error("head_dim {0} is not compiled; the kernels take {SUPPORTED_HEAD_DIMS:?}")]
    HeadDim(usize),
    #[error("page size {0} must be a power of two in {MIN_PAGE_SIZE}..={MAX_PAGE_SIZE} tokens")]
    PageSize(usize),
    #[error("{what} has {len} entries; {want} sequences need {need}")]
    Length { what: &'static str, len: usize, want: usize, need: usize },
    #[error("{what} must start at 0, not {first}")]
    Start { what: &'static str, first: i32 },
    #[error("sequence {seq}: {tokens} new tokens; a step takes 1..={MAX_NEW_TOKENS} per sequence")]
    NewTokens { seq: usize, tokens: i64 },
    #[error("sequence {seq}: cache length {len} is negative")]
    SeqLen { seq: usize, len: i32 },
    #[error("sequence {seq}: block_offsets decrease ({from} to {to})")]
    BlockOffsets { seq: usize, from: i32, to: i32 },
    #[error("block_offsets end at {end}, but block_table has {len} entries")]
    BlockTableEnd { end: i32, len: usize },
    #[error("sequence {seq}: {len} keys need {need} pages of {page_size}; its table holds {pages}")]
    Capacity { seq: usize, len: usize, need: usize, pages: usize, page_size: usize },
    #[error("sequence {seq}: block table entry {entry} is page {page}, outside the pool's 0..{num_pages}")]
    PageOutOfRange { seq: usize, entry: usize, page: i32, num_pages: usize },
    #[error("sequence {seq}: page {page} appears twice in its block table")]
    PageRepeated { seq: usize, page: i32 },
    #[error("softmax scale must be positive and finite, got {0}")]
    Scale(f64),
    /// A size beyond the kernels' ranges or addressable memory.
    #[error("{0}")]
    TooLarge(String),
    /// A spelling or option that means nothing (a mix name, plan options, serving axes).
    #[error("{0}")]
    Invalid(String),
    #[error("{what} is {got}, the batch's cache is {want}")]
    Dtype { what: &'static str, got: KvDtype, want: KvDtype },
    #[error("{what} {index} holds a NaN or an infinity: it cannot be quantized")]
    NotFinite { what: &'static str, index: usize },
    #[error("{what}: {got} elements, the batch needs {want}")]
    Data { what: &'static str, got: usize, want: usize },
    #[error("sequence {seq}: {msg}")]
    Mask { seq: usize, msg: String },
}

impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        Error::Invalid(e.to_string())
    }
}

pub type BatchResult<T> = std::result::Result<T, BatchError>;

/// One step of a serving decode: the geometry, the ragged sequences and the block table, in the
/// kernel's form (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PagedBatch {
    pub heads: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
    /// Tokens per page.
    pub page_size: usize,
    /// Pages in each pool.
    pub num_pages: usize,
    pub kv_dtype: KvDtype,
    /// `[seqs + 1]`: sequence `s`'s query rows are `q_offsets[s]..q_offsets[s+1]`.
    pub q_offsets: Vec<i32>,
    /// `[seqs]`: keys in each sequence's cache, its new tokens included.
    pub seq_lens: Vec<i32>,
    /// `[seqs + 1]`: sequence `s`'s pages are `block_table[block_offsets[s]..block_offsets[s+1]]`.
    pub block_offsets: Vec<i32>,
    pub block_table: Vec<i32>,
    /// Softmax scale; `None` means 1/sqrt(head_dim).
    pub scale: Option<f64>,
}

/// One sequence of a batch being built: keys in the cache (new tokens included) and new tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeqSpec {
    pub keys: usize,
    pub new_tokens: usize,
}

/// How [`PagedBatch::allocate`] hands out pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Allocation {
    /// Extra table entries per sequence beyond what its keys need (room to grow, never read).
    pub spare_per_seq: usize,
    /// Pages in the pool that no sequence owns.
    pub unused_pages: usize,
    /// Shuffle page ids with this seed (out-of-order tables); `None`: consecutive ids.
    pub shuffle: Option<u64>,
}

impl PagedBatch {
    pub fn num_seqs(&self) -> usize {
        self.seq_lens.len()
    }
    /// Query rows of the whole batch.
    pub fn total_q(&self) -> usize {
        self.q_offsets.last().map_or(0, |&q| q.max(0) as usize)
    }
    /// New tokens of sequence `s` (valid batch).
    pub fn new_tokens(&self, s: usize) -> usize {
        (self.q_offsets[s + 1] - self.q_offsets[s]) as usize
    }
    /// First query row of sequence `s`.
    pub fn q_start(&self, s: usize) -> usize {
        self.q_offsets[s] as usize
    }
    /// Keys in sequence `s`'s cache.
    pub fn seq_len(&self, s: usize) -> usize {
        self.seq_lens[s] as usize
    }
    /// Sequence `s`'s block table (valid batch).
    pub fn pages(&self, s: usize) -> &[i32] {
        &self.block_table[self.block_offsets[s] as usize..self.block_offsets[s + 1] as usize]
    }
    pub fn group(&self) -> usize {
        self.heads / self.kv_heads.max(1)
    }
    pub fn scale(&self) -> f64 {
        self.scale.unwrap_or(1.0 / (self.head_dim as f64).sqrt())
    }
    /// Elements of one pool (K or V).
    pub fn pool_elems(&self) -> usize {
        self.num_pages * self.kv_heads * self.page_size * self.head_dim
    }
    /// Scales of one pool (fp8; K or V).
    pub fn scale_elems(&self) -> usize {
        self.num_pages * self.kv_heads * self.page_size
    }
    /// Index of the scale of (page, KV head, slot); the row's first element is this times head_dim.
    pub fn slot_index(&self, page: usize, kv_head: usize, slot: usize) -> usize {
        (page * self.kv_heads + kv_head) * self.page_size + slot
    }
    /// (page, slot) of key `j` of sequence `s` (valid batch, `j < seq_len(s)`).
    pub fn locate(&self, s: usize, j: usize) -> (usize, usize) {
        (self.pages(s)[j / self.page_size] as usize, j % self.page_size)
    }
    /// Element index of Q/O row `row` (a query token), head `h`.
    pub fn q_index(&self, row: usize, h: usize) -> usize {
        (row * self.heads + h) * self.head_dim
    }
    pub fn lse_index(&self, row: usize, h: usize) -> usize {
        row * self.heads + h
    }

    /// Checks everything a kernel relies on. Any input gives `Ok` or one [`BatchError`].
    pub fn validate(&self) -> BatchResult<()> {
        let n = self.seq_lens.len();
        if n == 0 {
            return Err(BatchError::Empty);
        }
        if self.kv_heads == 0 || self.heads == 0 || !self.heads.is_multiple_of(self.kv_heads) {
            return Err(BatchError::Heads { heads: self.heads, kv_heads: self.kv_heads });
        }
        if !SUPPORTED_HEAD_DIMS.contains(&self.head_dim) {
            return Err(BatchError::HeadDim(self.head_dim));
        }
        let ps = self.page_size;
        if !(ps.is_power_of_two() && (MIN_PAGE_SIZE..=MAX_PAGE_SIZE).contains(&ps)) {
            return Err(BatchError::PageSize(ps));
        }
        if let Some(s) = self.scale.filter(|s| !(s.is_finite() && *s > 0.0)) {
            return Err(BatchError::Scale(s));
        }
        for (what, len) in [("q_offsets", self.q_offsets.len()), ("block_offsets", self.block_offsets.len())] {
            if len != n + 1 {
                return Err(BatchError::Length { what, len, want: n, need: n + 1 });
            }
        }
        for (what, first) in [("q_offsets", self.q_offsets[0]), ("block_offsets", self.block_offsets[0])] {
            if first != 0 {
                return Err(BatchError::Start { what, first });
            }
        }
        // Sizes the kernel indexes with 32-bit rows and 64-bit element offsets.
        let too_large = |what: String| Err(BatchError::TooLarge(what));
        if self.num_pages > i32::MAX as usize || self.heads > i32::MAX as usize || n > i32::MAX as usize - 1 {
            return too_large(format!(
                "{} pages, {} heads, {n} sequences: each must stay in the kernels' 32-bit range",
                self.num_pages, self.heads
            ));
        }
        let pool = [self.num_pages, self.kv_heads, ps, self.head_dim].iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if pool.and_then(|e| e.checked_mul(2)).is_none_or(|b| b > isize::MAX as usize) {
            return too_large(format!(
                "a pool of {} pages x {} KV heads x {ps} tokens x {} is beyond addressable memory",
                self.num_pages, self.kv_heads, self.head_dim
            ));
        }
        for s in 0..n {
            let t = self.q_offsets[s + 1] as i64 - self.q_offsets[s] as i64;
            if !(1..=MAX_NEW_TOKENS as i64).contains(&t) {
                return Err(BatchError::NewTokens { seq: s, tokens: t });
            }
        }
        // Offsets increase from 0 by at most 16 per sequence: total_q < 2^31 by the check above.
        let q_elems = (self.total_q() as u128) * (self.heads as u128) * (self.head_dim as u128) * 4;
        if q_elems > isize::MAX as u128 {
            return too_large(format!(
                "{} query rows x {} heads is beyond addressable memory",
                self.total_q(),
                self.heads
            ));
        }
        for (s, &len) in self.seq_lens.iter().enumerate() {
            if len < 0 {
                return Err(BatchError::SeqLen { seq: s, len });
            }
            let (from, to) = (self.block_offsets[s], self.block_offsets[s + 1]);
            if to < from {
                return Err(BatchError::BlockOffsets { seq: s, from, to });
            }
        }
        let end = self.block_offsets[n];
        if end as usize != self.block_table.len() {
            return Err(BatchError::BlockTableEnd { end, len: self.block_table.len() });
        }
        // Range, then repeats within a sequence: by the last sequence that listed each page when
        // the pool is not much larger than the table (memory bounded by the input), else on a
        // sorted copy per sequence (a hostile `num_pages` must not size an allocation).
        let by_owner = self.num_pages <= 4 * self.block_table.len() + 4096;
        let mut owner = vec![u32::MAX; if by_owner { self.num_pages } else { 0 }];
        let mut sorted: Vec<i32> = Vec::new();
        for s in 0..n {
            let (len, pages) = (self.seq_len(s), self.pages(s));
            let need = len.div_ceil(ps);
            if need > pages.len() {
                return Err(BatchError::Capacity { seq: s, len, need, pages: pages.len(), page_size: ps });
            }
            for (e, &page) in pages.iter().enumerate() {
                if page < 0 || page as usize >= self.num_pages {
                    return Err(BatchError::PageOutOfRange { seq: s, entry: e, page, num_pages: self.num_pages });
                }
            }
            if by_owner {
                for &page in pages {
                    if std::mem::replace(&mut owner[page as usize], s as u32) == s as u32 {
                        return Err(BatchError::PageRepeated { seq: s, page });
                    }
                }
            } else {
                sorted.clear();
                sorted.extend_from_slice(pages);
                sorted.sort_unstable();
                if let Some(w) = sorted.windows(2).find(|w| w[0] == w[1]) {
                    return Err(BatchError::PageRepeated { seq: s, page: w[0] });
                }
            }
        }
        Ok(())
    }

    /// A batch of `seqs` with pages handed out by `alloc`: each sequence gets the pages its keys
    /// need plus `spare_per_seq`, the pool `unused_pages` more; ids consecutive or shuffled.
    #[allow(clippy::too_many_arguments)]
    pub fn allocate(
        heads: usize,
        kv_heads: usize,
        head_dim: usize,
        page_size: usize,
        kv_dtype: KvDtype,
        seqs: &[SeqSpec],
        alloc: Allocation,
    ) -> BatchResult<PagedBatch> {
        if page_size == 0 {
            return Err(BatchError::PageSize(0));
        }
        let mut q_offsets = vec![0i32];
        let mut block_offsets = vec![0i32];
        let mut seq_lens = Vec::with_capacity(seqs.len());
        let mut pages = 0usize;
        let big = |what: &str| BatchError::TooLarge(format!("{what} beyond the kernels' 32-bit range"));
        for (s, q) in seqs.iter().enumerate() {
            if !(1..=MAX_NEW_TOKENS).contains(&q.new_tokens) {
                return Err(BatchError::NewTokens { seq: s, tokens: q.new_tokens as i64 });
            }
            let keys = i32::try_from(q.keys).map_err(|_| big("a sequence's keys are"))?;
            seq_lens.push(keys);
            let next_q = q_offsets[s] as i64 + q.new_tokens as i64;
            q_offsets.push(i32::try_from(next_q).map_err(|_| big("the batch's query rows are"))?);
            pages = q
                .keys
                .div_ceil(page_size)
                .checked_add(alloc.spare_per_seq)
                .and_then(|p| p.checked_add(pages))
                .filter(|&p| p <= i32::MAX as usize)
                .ok_or_else(|| big("the block table is"))?;
            block_offsets.push(pages as i32);
        }
        let num_pages = pages
            .checked_add(alloc.unused_pages)
            .filter(|&p| p <= i32::MAX as usize)
            .ok_or_else(|| big("the pool is"))?;
        let mut ids: Vec<i32> = (0..num_pages as i32).collect();
        if let Some(seed) = alloc.shuffle {
            use rand::seq::SliceRandom;
            use rand::SeedableRng;
            ids.shuffle(&mut rand::rngs::StdRng::seed_from_u64(seed));
        }
        ids.truncate(pages);
        let b = PagedBatch {
            heads,
            kv_heads,
            head_dim,
            page_size,
            num_pages,
            kv_dtype,
            q_offsets,
            seq_lens,
            block_offsets,
            block_table: ids,
            scale: None,
        };
        b.validate()?;
        Ok(b)
    }

    /// A uniform contiguous decode call as a paged batch: sequence `b` owns pages `b * per ..
    /// (b + 1) * per` in order (an identity block table), `per = ceil(seq_k / page_size)`.
    pub fn contiguous(shape: &Shape, page_size: usize, kv_dtype: KvDtype) -> BatchResult<PagedBatch> {
        let seqs = vec![SeqSpec { keys: shape.seq_k, new_tokens: shape.seq_q }; shape.batch];
        PagedBatch::allocate(
            shape.heads,
            shape.kv_heads,
            shape.head_dim,
            page_size,
            kv_dtype,
            &seqs,
            Allocation::default(),
        )
    }

    /// The mask of every sequence: `recipe` built for that sequence's new tokens and keys.
    pub fn masks(&self, recipe: &MaskRecipe) -> BatchResult<Vec<Mask>> {
        self.validate()?;
        (0..self.num_seqs())
            .map(|s| {
                recipe
                    .mask(self.new_tokens(s), self.seq_len(s))
                    .map_err(|e| BatchError::Mask { seq: s, msg: e.to_string() })
            })
            .collect()
    }

    /// Checks one mask per sequence, each against its own new tokens and keys.
    pub fn check_masks(&self, masks: &[Mask]) -> BatchResult<()> {
        if masks.len() != self.num_seqs() {
            return Err(BatchError::Length {
                what: "masks",
                len: masks.len(),
                want: self.num_seqs(),
                need: self.num_seqs(),
            });
        }
        for (s, m) in masks.iter().enumerate() {
            m.validate(self.new_tokens(s), self.seq_len(s))
                .map_err(|e| BatchError::Mask { seq: s, msg: e.to_string() })?;
        }
        Ok(())
    }

    /// The per-sequence block-sparse table of the kernel (`sparse_offsets`, `sparse_blocks` in
    /// attn_paged.h): each sequence's decode block row, its key blocks ascending. Every mask must
    /// be block-sparse with one block row (`block_q >= ` the sequence's new tokens) and the same
    /// `block_k`.
    pub fn sparse_table(&self, masks: &[Mask]) -> BatchResult<(Vec<i32>, Vec<i32>)> {
        self.check_masks(masks)?;
        let (mut offsets, mut blocks) = (vec![0i32], Vec::new());
        let mut block_k = None;
        for (s, m) in masks.iter().enumerate() {
            let Mask::BlockSparse(l) = m else {
                return Err(BatchError::Mask { seq: s, msg: format!("a {} mask has no block table", m.name()) });
            };
            if l.rows() != 1 || *block_k.get_or_insert(l.block_k) != l.block_k {
                return Err(BatchError::Mask {
                    seq: s,
                    msg: format!(
                        "a decode step needs one block row (block_q {} >= {} new tokens) and one block_k for all sequences",
                        l.block_q,
                        self.new_tokens(s)
                    ),
                });
            }
            blocks.extend_from_slice(l.row(0));
            offsets.push(
                i32::try_from(blocks.len())
                    .map_err(|_| BatchError::TooLarge("sparse table beyond 2^31 blocks".into()))?,
            );
        }
        Ok((offsets, blocks))
    }

    /// Packs a BSHD cache (`[batch, seq_k, kv_heads, head_dim]`, as [`Shape::kv_index`]) into a
    /// pool of this batch (made by [`PagedBatch::contiguous`] from `shape`); every slot no key
    /// fills (page tails, unused pages) holds `fill`.
    pub fn pack_contiguous(&self, shape: &Shape, kv: &[bf16], fill: bf16) -> BatchResult<Vec<bf16>> {
        if kv.len() != shape.kv_elems() {
            return Err(BatchError::Data { what: "K/V", got: kv.len(), want: shape.kv_elems() });
        }
        if self.num_seqs() != shape.batch || self.seq_lens.iter().any(|&l| l as usize != shape.seq_k) {
            return Err(BatchError::Data { what: "sequences", got: self.num_seqs(), want: shape.batch });
        }
        let mut pool = vec![fill; self.pool_elems()];
        let d = self.head_dim;
        for b in 0..shape.batch {
            for j in 0..shape.seq_k {
                let (page, slot) = self.locate(b, j);
                for hk in 0..self.kv_heads {
                    let at = self.slot_index(page, hk, slot) * d;
                    pool[at..at + d].copy_from_slice(&kv[shape.kv_index(b, j, hk)..][..d]);
                }
            }
        }
        Ok(pool)
    }

    /// A pool of this batch with every cached key of every sequence drawn from `seed` (uniform in
    /// [-1, 1), bf16) and every other slot `fill` (tests fill them with NaN: never read).
    pub fn random_pool(&self, seed: u64, fill: bf16) -> Vec<bf16> {
        let mut pool = vec![fill; self.pool_elems()];
        let d = self.head_dim;
        let rows = self.used_rows();
        let data = crate::reference::random_bf16(rows.len() * d, seed);
        for (r, &at) in rows.iter().enumerate() {
            pool[at * d..(at + 1) * d].copy_from_slice(&data[r * d..(r + 1) * d]);
        }
        pool
    }

    /// Slot indices ([`Self::slot_index`]) of every cached token row of every sequence and KV
    /// head, in (sequence, key, KV head) order; a shared page's rows appear once per owner.
    pub fn used_rows(&self) -> Vec<usize> {
        let mut rows = Vec::new();
        for s in 0..self.num_seqs() {
            for j in 0..self.seq_len(s) {
                let (page, slot) = self.locate(s, j);
                rows.extend((0..self.kv_heads).map(|hk| self.slot_index(page, hk, slot)));
            }
        }
        rows
    }
}

/// Keys sequence `s`'s query rows see at least once, as sorted disjoint `[lo, hi)` runs (the
/// union of the rows' runs; O(new tokens x runs per row), not O(keys)).
pub fn key_runs(mask: &Mask, new_tokens: usize, keys: usize) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> =
        (0..new_tokens).flat_map(|i| mask.row_runs(i, new_tokens, keys)).filter(|r| r.0 < r.1).collect();
    runs.sort_unstable();
    let mut out: Vec<(usize, usize)> = Vec::with_capacity(runs.len());
    for (lo, hi) in runs {
        match out.last_mut() {
            Some(last) if lo <= last.1 => last.1 = last.1.max(hi),
            _ => out.push((lo, hi)),
        }
    }
    out
}

/// Key tiles of `tile_k` keys that hold a visible key, as sorted disjoint runs of tile ids: what a
/// decode kernel visits for one sequence and KV head.
pub fn tile_runs(runs: &[(usize, usize)], tile_k: usize) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for &(lo, hi) in runs {
        let (a, b) = (lo / tile_k, hi.div_ceil(tile_k));
        match out.last_mut() {
            Some(last) if a <= last.1 => last.1 = last.1.max(b),
            _ => out.push((a, b)),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn batch(seqs: &[(usize, usize)], page: usize) -> PagedBatch {
        let seqs: Vec<SeqSpec> = seqs.iter().map(|&(keys, new_tokens)| SeqSpec { keys, new_tokens }).collect();
        PagedBatch::allocate(8, 2, 64, page, KvDtype::Bf16, &seqs, Allocation::default()).unwrap()
    }

    #[test]
    fn allocation_and_locate() {
        let b = PagedBatch::allocate(
            8,
            2,
            128,
            16,
            KvDtype::Fp8,
            &[
                SeqSpec { keys: 40, new_tokens: 3 },
                SeqSpec { keys: 0, new_tokens: 1 },
                SeqSpec { keys: 16, new_tokens: 16 },
            ],
            Allocation { spare_per_seq: 1, unused_pages: 5, shuffle: None },
        )
        .unwrap();
        assert_eq!(b.q_offsets, vec![0, 3, 4, 20]);
        assert_eq!(b.block_offsets, vec![0, 4, 5, 7]);
        assert_eq!((b.num_pages, b.total_q()), (12, 20));
        assert_eq!(b.locate(0, 33), (2, 1));
        assert_eq!(b.slot_index(2, 1, 1), (2 * 2 + 1) * 16 + 1);
        // Shuffled ids: a permutation, still valid.
        let mut shuffled = b.clone();
        shuffled.block_table = {
            let s = PagedBatch::allocate(
                8,
                2,
                128,
                16,
                KvDtype::Fp8,
                &[
                    SeqSpec { keys: 40, new_tokens: 3 },
                    SeqSpec { keys: 0, new_tokens: 1 },
                    SeqSpec { keys: 16, new_tokens: 16 },
                ],
                Allocation { spare_per_seq: 1, unused_pages: 5, shuffle: Some(3) },
            )
            .unwrap();
            s.block_table
        };
        assert!(shuffled.validate().is_ok());
        assert_ne!(shuffled.block_table, b.block_table);
    }

    #[test]
    fn every_bad_input_is_a_typed_error() {
        let good = batch(&[(100, 4), (17, 1)], 16);
        assert!(good.validate().is_ok());
        let with = |f: &dyn Fn(&mut PagedBatch)| {
            let mut b = good.clone();
            f(&mut b);
            b.validate().unwrap_err()
        };
        assert_eq!(
            with(&|b| {
                b.seq_lens.clear();
                b.q_offsets.truncate(1);
                b.block_offsets.truncate(1);
                b.block_table.clear();
            }),
            BatchError::Empty
        );
        assert!(matches!(with(&|b| b.kv_heads = 3), BatchError::Heads { .. }));
        assert!(matches!(with(&|b| b.kv_heads = 0), BatchError::Heads { .. }));
        assert_eq!(with(&|b| b.head_dim = 96), BatchError::HeadDim(96));
        for ps in [0, 8, 48, 512] {
            assert_eq!(with(&|b| b.page_size = ps), BatchError::PageSize(ps));
        }
        assert!(matches!(with(&|b| b.scale = Some(f64::NAN)), BatchError::Scale(_)));
        assert!(matches!(with(&|b| b.q_offsets.pop().map(|_| ()).unwrap()), BatchError::Length { .. }));
        assert!(matches!(with(&|b| b.q_offsets[0] = 1), BatchError::Start { .. }));
        assert_eq!(with(&|b| b.q_offsets[1] = 0), BatchError::NewTokens { seq: 0, tokens: 0 });
        assert_eq!(with(&|b| b.q_offsets[1] = 17), BatchError::NewTokens { seq: 0, tokens: 17 });
        assert_eq!(with(&|b| b.q_offsets[2] = 3), BatchError::NewTokens { seq: 1, tokens: -1 });
        assert_eq!(with(&|b| b.seq_lens[1] = -5), BatchError::SeqLen { seq: 1, len: -5 });
        assert_eq!(with(&|b| b.block_offsets[1] = 10), BatchError::BlockOffsets { seq: 1, from: 10, to: 9 });
        assert!(matches!(with(&|b| b.block_table.push(0)), BatchError::BlockTableEnd { .. }));
        // 101 keys need 7 pages of 16; the table holds 7.
        assert!(matches!(with(&|b| b.seq_lens[0] = 113), BatchError::Capacity { seq: 0, need: 8, pages: 7, .. }));
        assert!(matches!(with(&|b| b.block_table[3] = 9), BatchError::PageOutOfRange { page: 9, .. }));
        assert!(matches!(with(&|b| b.block_table[3] = -1), BatchError::PageOutOfRange { page: -1, .. }));
        assert_eq!(with(&|b| b.block_table[3] = 2), BatchError::PageRepeated { seq: 0, page: 2 });
        assert!(matches!(with(&|b| b.num_pages = usize::MAX / 2), BatchError::TooLarge(_)));
        // A pool far larger than the table: repeats found without a pool-sized map.
        let mut huge = good.clone();
        huge.num_pages = 1 << 30;
        assert!(huge.validate().is_ok());
        huge.block_table[3] = 2;
        assert_eq!(huge.validate().unwrap_err(), BatchError::PageRepeated { seq: 0, page: 2 });
        // A page shared by two sequences (a common prefix) is allowed.
        let mut shared = good.clone();
        shared.block_table[7] = 0;
        assert!(shared.validate().is_ok());
        // Zero-key sequences are allowed: their rows see nothing.
        assert!(batch(&[(0, 1), (0, 16)], 16).validate().is_ok());
    }

    /// Valid batches with a few fields bent at random: validation decides, never panics, and
    /// what it accepts indexes in range (and plans).
    #[test]
    fn bent_batches_never_panic() {
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut ok = 0;
        for _ in 0..3000 {
            let seqs: Vec<SeqSpec> = (0..rng.random_range(1..5))
                .map(|_| SeqSpec { keys: rng.random_range(0..100), new_tokens: rng.random_range(1..17) })
                .collect();
            let alloc = Allocation {
                spare_per_seq: rng.random_range(0..2),
                unused_pages: rng.random_range(0..3),
                shuffle: Some(rng.random()),
            };
            let mut b = PagedBatch::allocate(8, 2, 64, 16, KvDtype::Fp8, &seqs, alloc).unwrap();
            for _ in 0..rng.random_range(1..3) {
                let v = rng.random_range(-40i32..140);
                let bend = |rng: &mut rand::rngs::StdRng, xs: &mut Vec<i32>, v: i32| {
                    let i = rng.random_range(0..xs.len().max(1));
                    if let Some(x) = xs.get_mut(i) {
                        *x = v;
                    }
                };
                match rng.random_range(0..9) {
                    0 => bend(&mut rng, &mut b.q_offsets, v),
                    1 => bend(&mut rng, &mut b.seq_lens, v),
                    2 => bend(&mut rng, &mut b.block_offsets, v / 8),
                    3 => bend(&mut rng, &mut b.block_table, v / 8),
                    4 => b.num_pages = (v.max(0) / 8) as usize,
                    5 => b.page_size = [8, 16, 32, 24][rng.random_range(0..4)],
                    6 => b.kv_heads = rng.random_range(0..4),
                    7 => {
                        b.block_table.pop();
                    }
                    _ => {
                        b.q_offsets.pop();
                    }
                }
            }
            if b.validate().is_ok() {
                ok += 1;
                for s in 0..b.num_seqs() {
                    for j in 0..b.seq_len(s) {
                        let (p, slot) = b.locate(s, j);
                        assert!(p < b.num_pages && slot < b.page_size);
                    }
                }
                let masks = b.masks(&MaskRecipe::Causal).unwrap();
                plan::plan(&b, &masks, &plan::PlanOptions::default()).unwrap();
            }
        }
        println!("{ok} of 3000 bent batches valid");
        assert!(ok > 100 && ok < 2900, "the bends should be caught sometimes and pass sometimes: {ok}");
    }

    #[test]
    fn sparse_tables_hold_each_decode_row() {
        let b = batch(&[(5000, 4), (100, 1), (0, 2)], 64);
        let r = MaskRecipe::BigBird { block: 64, local: 1, global: 1, random: 2, seed: 7 };
        let masks = b.masks(&r).unwrap();
        let (off, blocks) = b.sparse_table(&masks).unwrap();
        assert_eq!(off.len(), 4);
        for s in 0..3 {
            let Mask::BlockSparse(l) = &masks[s] else { panic!() };
            assert_eq!(&blocks[off[s] as usize..off[s + 1] as usize], l.row(0), "seq {s}");
        }
        assert!(off[1] >= 3 && off[3] == off[2], "{off:?}: global + local + own; none without keys");
        assert!(b.sparse_table(&b.masks(&MaskRecipe::Causal).unwrap()).is_err());
        let narrow = MaskRecipe::Longformer { block: 2, local: 1, global: 0 };
        assert!(matches!(b.sparse_table(&b.masks(&narrow).unwrap()), Err(BatchError::Mask { seq: 0, .. })));
    }

    #[test]
    fn key_and_tile_runs() {
        let m = Mask::causal_window(100);
        assert_eq!(key_runs(&m, 4, 1000), vec![(897, 1000)]);
        assert_eq!(tile_runs(&key_runs(&m, 4, 1000), 64), vec![(14, 16)]);
        assert_eq!(key_runs(&Mask::Causal, 4, 2), vec![(0, 2)]);
        assert!(key_runs(&Mask::Causal, 4, 0).is_empty());
        let l = crate::BlockLayout::from_csr(1, 640, 16, 64, vec![0, 3], vec![0, 2, 9]).unwrap();
        let runs = key_runs(&Mask::BlockSparse(l), 1, 600);
        assert_eq!(runs, vec![(0, 64), (128, 192), (576, 600)]);
        assert_eq!(tile_runs(&runs, 128), vec![(0, 2), (4, 5)]);
        // Against the mask's own O(keys) union, on random masks.
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        for _ in 0..300 {
            let (q, k) = (rng.random_range(1..17), rng.random_range(0..600));
            let m = match rng.random_range(0..4) {
                0 => Mask::Causal,
                1 => Mask::Window { left: rng.random_range(0..50), right: rng.random_range(0..3) },
                2 => Mask::None,
                _ => Mask::BlockSparse(crate::BlockLayout::from_fn(q, k, 16, 32, |_, _| rng.random_bool(0.3))),
            };
            assert_eq!(key_runs(&m, q, k), m.visible_key_ranges(q, k), "{m:?} {q}x{k}");
        }
    }
}
