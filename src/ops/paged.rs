//! Serving decode (kernels/decode_paged.cu, decode_paged_fp8.cu): one step of a ragged batch of
//! sequences over a paged bf16 or fp8 K/V cache ([`crate::paged`]), split by the load-balanced
//! plan ([`crate::paged::plan`]), then the combine of the sequences with several splits.
//!
//! [`PagedAttention`] is the step, fixed at creation: the batch, one mask per sequence, the plan,
//! the kernel instance and the parameter struct's scalars. It allocates [`PagedBuffers`] (the
//! step's metadata uploaded once: offsets, block table, block-sparse rows, work items; input and
//! output sets; the partials), uploads inputs after checking them against the batch, poisons the
//! outputs, and launches, the same way on a GPU and on the emulator. [`PagedAttention::run`] is
//! where the paged kernels meet [`Device::launch`]'s safety contract.
//!
//! Instances: `r16` (rows = new tokens x query heads per KV head <= 16: four consumer warps that
//! split each 64-key tile's keys, plus a producer warp) or `r128` (up to 128 rows: eight warps,
//! one m16 row block each); the largest sequence of the batch decides, and more than 128 rows run
//! as several row chunks (each streams its sequence's K/V again: [`PagedAttention::traffic`]).

use super::{check_grid, Outputs, POISON};
use crate::device::{DevBuf, Device, LaunchConfig, LaunchReport};
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::{Mask, MaskRecipe};
use crate::paged::fp8::Fp8Pool;
use crate::paged::params::{PagedDecodeParams, PagedWorkItem};
use crate::paged::plan::{plan, PlanOptions, SplitPlan};
use crate::paged::reference::KvPool;
use crate::paged::{key_runs, KvDtype, PagedBatch};
use crate::work::{PagedBytes, Work};
use half::bf16;
use std::sync::atomic::{AtomicU64, Ordering};

/// Keys per tile of the kernels (decode_paged.cuh: kTileK), the plan's `tile_k`.
pub const TILE_K: usize = 64;
/// Threads of the combine's CTA (attn_decode.cuh: COMBINE_WARPS warps).
pub const COMBINE_THREADS: u32 = 256;
/// Largest cache length the kernels index with 32-bit key positions (a tile's end must fit).
pub const MAX_KEYS: usize = i32::MAX as usize - 2 * TILE_K;
const SMEM_PER_SM: usize = 228 * 1024;
const REGS_PER_SM: usize = 65536;

/// The compile-time choices of the instance a batch runs on (decode_paged.cu: PagedTraits).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagedConfig {
    pub module: &'static str,
    pub entry: String,
    pub combine_entry: &'static str,
    pub head_dim: usize,
    pub kv_dtype: KvDtype,
    /// Consumer warps along rows (16 rows each) and along a tile's keys.
    pub warps_m: usize,
    pub warps_n: usize,
    /// Bulk-copy stages in flight per CTA.
    pub stages: usize,
}

impl PagedConfig {
    /// r16 has a producer warp of its own; r128's warp 0 produces.
    pub fn threads(&self) -> usize {
        32 * self.warps_m * self.warps_n + if self.warps_n > 1 { 32 } else { 0 }
    }
    /// (token, head) rows one CTA holds.
    pub fn rows_per_cta(&self) -> usize {
        16 * self.warps_m
    }
    /// Bytes of one stage: a tile of K and V rows in the cache's dtype, and (fp8) their scales
    /// (K's 128 bytes, a 64-byte gap, V's 128, a 64-byte gap: PagedTraits::kStageBytes).
    pub fn stage_bytes(&self) -> usize {
        let e = self.kv_dtype.elem_bytes();
        2 * TILE_K * self.head_dim * e + 3 * TILE_K * self.kv_dtype.scale_bytes()
    }
    /// Dynamic shared memory, laid out as PagedTraits: barriers and headers (32 per stage), f32
    /// column scales (K 256 bytes, a 64-byte gap, V 256), padding to 128, Q (bf16), the bf16 K and
    /// V tiles, the stages.
    pub fn smem_bytes(&self) -> usize {
        let head = (32 * self.stages + 576).div_ceil(128) * 128;
        head + 2 * self.head_dim * (self.rows_per_cta() + 2 * TILE_K) + self.stages * self.stage_bytes()
    }
    /// CTAs one SM holds, from shared memory, threads and ptxas's register count.
    pub fn ctas_per_sm(&self) -> usize {
        let regs =
            KernelRef::new(self.module, &self.entry).ok().and_then(|k| k.resources()).map_or(255, |r| r.registers);
        let by_smem = SMEM_PER_SM / (self.smem_bytes() + 1024);
        let by_threads = 2048 / self.threads();
        let by_regs = REGS_PER_SM / (self.threads() * (regs as usize).div_ceil(8) * 8);
        by_smem.min(by_threads).min(by_regs).max(1)
    }
}

/// The instance for a batch under `masks` (one kind for all sequences), with the checks the
/// kernels rely on beyond [`PagedBatch::validate`].
pub fn config(b: &PagedBatch, masks: &[Mask]) -> Result<PagedConfig> {
    b.validate()?;
    b.check_masks(masks)?;
    let mask = match masks.first() {
        Some(Mask::None) => "none",
        Some(Mask::Causal) => "causal",
        Some(Mask::Window { .. }) => "window",
        Some(Mask::BlockSparse(l)) => {
            if !l.block_k.is_multiple_of(TILE_K) {
                return invalid(format!(
                    "paged decode needs block-sparse blocks of whole {TILE_K}-key tiles, not block_k {}",
                    l.block_k
                ));
            }
            "sparse"
        }
        None => return invalid("a paged step needs one mask per sequence"),
    };
    if let Some(s) = (0..b.num_seqs()).find(|&s| b.seq_len(s) > MAX_KEYS) {
        return invalid(format!("sequence {s}: {} keys; the kernels index at most {MAX_KEYS}", b.seq_len(s)));
    }
    let rows = (0..b.num_seqs()).map(|s| b.new_tokens(s) * b.group()).max().unwrap_or(1);
    let (narrow, warps_m, warps_n) = if rows <= 16 { (true, 1, 4) } else { (false, 8, 1) };
    let d = b.head_dim;
    let stages = match (b.kv_dtype, d, narrow) {
        (KvDtype::Bf16, 64, true) => 3,
        (KvDtype::Bf16, _, true) => 2,
        (KvDtype::Bf16, 64, false) => 6,
        (KvDtype::Bf16, _, false) => 4,
        (KvDtype::Fp8, 64, true) => 6,
        (KvDtype::Fp8, _, true) => 4,
        (KvDtype::Fp8, _, false) => 8,
    };
    let (module, dtype) = match b.kv_dtype {
        KvDtype::Bf16 => ("decode_paged", "bf16"),
        KvDtype::Fp8 => ("decode_paged_fp8", "fp8"),
    };
    let entry = format!("attn_decode_paged_{dtype}_d{d}_r{}_{mask}", if narrow { 16 } else { 128 });
    let combine_entry = if d == 64 { "attn_decode_paged_combine_d64" } else { "attn_decode_paged_combine_d128" };
    Ok(PagedConfig { module, entry, combine_entry, head_dim: d, kv_dtype: b.kv_dtype, warps_m, warps_n, stages })
}

/// Options of a step; `None` means the default.
#[derive(Debug, Clone, Default)]
pub struct PagedOptions {
    /// The device's SM count for the plan (`Device::sm_count`); `None`: the H100's 132.
    pub sm_count: Option<usize>,
    /// The plan's split floor ([`PlanOptions::min_tiles_per_split`]).
    pub min_tiles_per_split: Option<usize>,
}

/// Bytes the step's launches move, as the kernels are written: what the emulator's counters must
/// show ([`PagedAttention::traffic`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Traffic {
    /// Bytes the split kernel's bulk copies read: every visible K and V row once per row chunk
    /// holding rows of its sequence.
    pub bulk_loads: u64,
    /// Every global load of both kernels (bulk copies included).
    pub loads: u64,
    /// Every global store: O, LSE, and the partials of split sequences.
    pub stores: u64,
}

/// A pool's host data in the batch's KV dtype (owned; [`KvData::pool`] borrows it as a [`KvPool`]).
#[derive(Debug, Clone, PartialEq)]
pub enum KvData {
    Bf16(Vec<bf16>),
    Fp8(Fp8Pool),
}

impl KvData {
    pub fn pool(&self) -> KvPool<'_> {
        match self {
            KvData::Bf16(x) => KvPool::Bf16(x),
            KvData::Fp8(p) => KvPool::Fp8(p),
        }
    }
}

/// Random inputs of a step: Q and the K and V pools, every cached row drawn from `seed` (uniform in
/// [-1, 1), bf16; an fp8 cache quantized from it by [`crate::paged::fp8::quantize_pool`]) and
/// every other slot `fill` (NaN in the tests: never read).
#[derive(Debug, Clone, PartialEq)]
pub struct PagedInputs {
    pub q: Vec<bf16>,
    pub k: KvData,
    pub v: KvData,
}

impl PagedInputs {
    pub fn random(b: &PagedBatch, seed: u64, fill: bf16) -> Result<Self> {
        let q = crate::reference::random_bf16(b.total_q() * b.heads * b.head_dim, seed);
        let pool = |s: u64| -> Result<KvData> {
            let x = b.random_pool(s, fill);
            Ok(match b.kv_dtype {
                KvDtype::Bf16 => KvData::Bf16(x),
                KvDtype::Fp8 => KvData::Fp8(crate::paged::fp8::quantize_pool(b, &x)?),
            })
        };
        Ok(PagedInputs { q, k: pool(seed.wrapping_add(1))?, v: pool(seed.wrapping_add(2))? })
    }
}

/// Gives every [`PagedAttention`] its own id, so that buffers can tell which step they belong to.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A prepared serving-decode step (immutable after [`PagedAttention::new`]: the launches, the
/// buffers' sizes and the metadata are all derived from the batch, its masks and the plan).
#[derive(Debug, Clone)]
pub struct PagedAttention {
    batch: PagedBatch,
    masks: Vec<Mask>,
    plan: SplitPlan,
    config: PagedConfig,
    /// Scalars of the kernels' parameter struct (pointers filled at run time).
    params: PagedDecodeParams,
    /// Block-sparse: each sequence's decode-row blocks (offsets, blocks).
    sparse: Option<(Vec<i32>, Vec<i32>)>,
    row_chunks: usize,
    bytes: PagedBytes,
    work: Work,
    description: String,
    id: u64,
}

/// The step's data the kernels index through (uploaded once per [`PagedBuffers`]): private, so that
/// only the batch and plan validated with the step can be in them.
struct Meta<'d> {
    q_offsets: DevBuf<'d>,
    seq_lens: DevBuf<'d>,
    block_offsets: DevBuf<'d>,
    block_table: DevBuf<'d>,
    sparse: Option<(DevBuf<'d>, DevBuf<'d>)>,
    work_items: Option<DevBuf<'d>>,
    split_offsets: DevBuf<'d>,
    partial_offsets: DevBuf<'d>,
}

/// One input/output set: Q, the K and V pools (and fp8 scales), O and LSE.
#[derive(Debug)]
pub struct PagedIo<'d> {
    pub q: DevBuf<'d>,
    pub k_pool: DevBuf<'d>,
    pub v_pool: DevBuf<'d>,
    pub k_scale: Option<DevBuf<'d>>,
    pub v_scale: Option<DevBuf<'d>>,
    pub o: DevBuf<'d>,
    pub lse: DevBuf<'d>,
}

/// Device memory of a [`PagedAttention`]: input/output sets (the sweep rotates them), the step's
/// metadata and the partials, usable only with the step that made them. Freed when dropped.
pub struct PagedBuffers<'d> {
    dev: &'d dyn Device,
    owner: u64,
    sets: Vec<PagedIo<'d>>,
    meta: Meta<'d>,
    partial_o: Option<DevBuf<'d>>,
    partial_lse: Option<DevBuf<'d>>,
}

impl<'d> PagedBuffers<'d> {
    pub fn device(&self) -> &'d dyn Device {
        self.dev
    }
    pub fn set(&self, i: usize) -> &PagedIo<'d> {
        &self.sets[i]
    }
    pub fn sets(&self) -> usize {
        self.sets.len()
    }
}

fn mask_kind(m: &Mask) -> &'static str {
    match m {
        Mask::None => "none",
        Mask::Causal => "causal",
        Mask::Window { .. } => "window",
        Mask::BlockSparse(_) => "block-sparse",
    }
}

impl PagedAttention {
    /// A step of `batch` under `masks` (one per sequence, of one kind and window).
    pub fn new(batch: &PagedBatch, masks: Vec<Mask>, opts: &PagedOptions) -> Result<Self> {
        let config = config(batch, &masks)?;
        let plan_opts = PlanOptions {
            tile_k: TILE_K,
            sm_count: opts.sm_count.unwrap_or(super::decode::H100_SMS),
            ctas_per_sm: config.ctas_per_sm(),
            min_tiles_per_split: opts.min_tiles_per_split.unwrap_or(PlanOptions::default().min_tiles_per_split),
            ..PlanOptions::default()
        };
        let plan = plan(batch, &masks, &plan_opts)?;
        let params = PagedDecodeParams::for_step(batch, &masks, &plan)?;
        let sparse = match masks.first() {
            Some(Mask::BlockSparse(_)) => Some(batch.sparse_table(&masks)?),
            _ => None,
        };
        let row_chunks = (0..batch.num_seqs())
            .map(|s| (batch.new_tokens(s) * batch.group()).div_ceil(config.rows_per_cta()))
            .max()
            .unwrap_or(1);
        if row_chunks > 65535 || batch.heads > 65535 {
            return invalid(format!(
                "{row_chunks} row chunks and {} heads: both must be at most 65535 (grid y)",
                batch.heads
            ));
        }
        let (work, bytes) = crate::work::paged_decode(batch, &masks, &plan);
        let description = format!(
            "{} seqs, {} items x {} KV heads x {row_chunks} row chunks, cap {} tiles of {TILE_K} keys ({} visited), \
             {} rows/CTA, {}x{} warps{}, {} bulk stages of {} KiB, {} KiB smem, {} CTAs/SM{}",
            batch.num_seqs(),
            plan.items.len(),
            batch.kv_heads,
            plan.cap,
            plan.tiles.iter().sum::<usize>(),
            config.rows_per_cta(),
            config.warps_m,
            config.warps_n,
            if config.warps_n > 1 { " + producer" } else { "" },
            config.stages,
            config.stage_bytes() as f64 / 1024.0,
            config.smem_bytes() / 1024,
            config.ctas_per_sm(),
            if needs_combine(&plan) { " + combine" } else { ", direct output" }
        );
        Ok(PagedAttention {
            batch: batch.clone(),
            masks,
            plan,
            config,
            params,
            sparse,
            row_chunks,
            bytes,
            work,
            description,
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        })
    }

    /// A step of `batch` with `recipe` built for each sequence.
    pub fn with_recipe(batch: &PagedBatch, recipe: &MaskRecipe, opts: &PagedOptions) -> Result<Self> {
        Self::new(batch, batch.masks(recipe)?, opts)
    }

    pub fn batch(&self) -> &PagedBatch {
        &self.batch
    }
    pub fn masks(&self) -> &[Mask] {
        &self.masks
    }
    pub fn plan(&self) -> &SplitPlan {
        &self.plan
    }
    pub fn config(&self) -> &PagedConfig {
        &self.config
    }
    pub fn row_chunks(&self) -> usize {
        self.row_chunks
    }
    /// The step's bytes by part ([`crate::work::paged_decode`]).
    pub fn bytes(&self) -> &PagedBytes {
        &self.bytes
    }
    pub fn work(&self) -> Work {
        self.work
    }
    pub fn description(&self) -> &str {
        &self.description
    }

    /// The launches: the split kernel (grid items x KV heads, row chunks), then the combine (grid
    /// sequences x heads) when some sequence has other than one split.
    pub fn launches(&self) -> Result<Vec<(KernelRef, LaunchConfig)>> {
        let c = &self.config;
        let ctas = self.plan.ctas();
        let mut v = Vec::new();
        if ctas > 0 {
            let grid = [ctas as u32, self.row_chunks as u32, 1];
            check_grid(grid)?;
            v.push((
                KernelRef::new(c.module, &c.entry)?,
                LaunchConfig { grid, block: [c.threads() as u32, 1, 1], dynamic_shared_bytes: c.smem_bytes() as u32 },
            ));
        }
        if needs_combine(&self.plan) {
            let grid = [self.batch.num_seqs() as u32, self.batch.heads as u32, 1];
            check_grid(grid)?;
            v.push((
                KernelRef::new("decode_paged", c.combine_entry)?,
                LaunchConfig { grid, block: [COMBINE_THREADS, 1, 1], dynamic_shared_bytes: 0 },
            ));
        }
        Ok(v)
    }

    fn kv_bytes(&self) -> usize {
        self.batch.pool_elems() * self.batch.kv_dtype.elem_bytes()
    }
    fn scale_bytes(&self) -> usize {
        self.batch.scale_elems() * self.batch.kv_dtype.scale_bytes()
    }

    /// Device bytes of one input/output set: Q, both pools (and scales), O, LSE.
    pub fn set_bytes(&self) -> usize {
        let rows = self.batch.total_q() * self.batch.heads;
        [4 * rows * self.batch.head_dim, 2 * self.kv_bytes(), 2 * self.scale_bytes(), 4 * rows]
            .into_iter()
            .fold(0usize, usize::saturating_add)
    }

    /// Device bytes of the step with one set: the set, the metadata and the partials.
    pub fn footprint_bytes(&self) -> usize {
        let b = &self.batch;
        let meta = 4 * (3 * (b.num_seqs() + 1) + b.num_seqs() + b.block_table.len())
            + self.sparse.as_ref().map_or(0, |(o, x)| 4 * (o.len() + x.len()))
            + 16 * self.plan.items.len();
        [self.set_bytes(), meta, 4 * self.plan.partial_rows * (b.head_dim + 1)]
            .into_iter()
            .fold(0, usize::saturating_add)
    }

    /// Allocates `sets` input/output sets (inputs unwritten), the partials, and uploads the step's
    /// metadata. A failed allocation frees what was made before it.
    pub fn alloc<'d>(&self, dev: &'d dyn Device, sets: usize) -> Result<PagedBuffers<'d>> {
        if sets == 0 {
            return invalid("a paged step needs at least one buffer set");
        }
        if (self.config.smem_bytes() as u64) > dev.max_dynamic_shared_bytes() as u64 {
            return invalid(format!(
                "{} needs {} B of shared memory per CTA; the device allows {}",
                self.config.entry,
                self.config.smem_bytes(),
                dev.max_dynamic_shared_bytes()
            ));
        }
        let b = &self.batch;
        // Work items as the kernel reads them: 4 int32 each (16 bytes, one vector load).
        let items: Vec<i32> =
            self.plan.items.iter().flat_map(|it| [it.seq, it.split, it.tile_begin, it.tile_end]).collect();
        let meta = Meta {
            q_offsets: DevBuf::from_slice(dev, &b.q_offsets)?,
            seq_lens: DevBuf::from_slice(dev, &b.seq_lens)?,
            block_offsets: DevBuf::from_slice(dev, &b.block_offsets)?,
            block_table: DevBuf::from_slice(dev, &b.block_table)?,
            sparse: match &self.sparse {
                Some((o, x)) => Some((DevBuf::from_slice(dev, o)?, DevBuf::from_slice(dev, x)?)),
                None => None,
            },
            work_items: if items.is_empty() { None } else { Some(DevBuf::from_slice(dev, &items)?) },
            split_offsets: DevBuf::from_slice(dev, &self.plan.split_offsets)?,
            partial_offsets: DevBuf::from_slice(dev, &self.plan.partial_offsets)?,
        };
        let rows = b.total_q() * b.heads;
        let opt = |n: usize| if n > 0 { DevBuf::new(dev, n).map(Some) } else { Ok(None) };
        let (partial_o, partial_lse) =
            (opt(4 * self.plan.partial_rows * b.head_dim)?, opt(4 * self.plan.partial_rows)?);
        let io = || -> Result<PagedIo<'d>> {
            Ok(PagedIo {
                q: DevBuf::new(dev, 2 * rows * b.head_dim)?,
                k_pool: DevBuf::new(dev, self.kv_bytes())?,
                v_pool: DevBuf::new(dev, self.kv_bytes())?,
                k_scale: opt(self.scale_bytes())?,
                v_scale: opt(self.scale_bytes())?,
                o: DevBuf::new(dev, 2 * rows * b.head_dim)?,
                lse: DevBuf::new(dev, 4 * rows)?,
            })
        };
        let mut all = Vec::with_capacity(sets);
        for _ in 0..sets {
            all.push(io()?);
        }
        Ok(PagedBuffers { dev, owner: self.id, sets: all, meta, partial_o, partial_lse })
    }

    /// Uploads Q (`[total_q, heads, head_dim]`) and the K and V pools (in the batch's KV dtype,
    /// checked) of set `set`.
    pub fn upload_inputs(&self, bufs: &PagedBuffers, set: usize, q: &[bf16], k: KvPool, v: KvPool) -> Result<()> {
        self.check_owner(bufs, set)?;
        let b = &self.batch;
        let want_q = b.total_q() * b.heads * b.head_dim;
        if q.len() != want_q {
            return invalid(format!("Q has {} elements, the batch needs {want_q}", q.len()));
        }
        let io = &bufs.sets[set];
        io.q.upload(0, q)?;
        for (what, pool, data, scale) in [("K", k, &io.k_pool, &io.k_scale), ("V", v, &io.v_pool, &io.v_scale)] {
            match (pool, scale) {
                (KvPool::Bf16(x), None) if b.kv_dtype == KvDtype::Bf16 => {
                    if x.len() != b.pool_elems() {
                        return invalid(format!(
                            "{what} pool: {} elements, the batch needs {}",
                            x.len(),
                            b.pool_elems()
                        ));
                    }
                    data.upload(0, x)?;
                }
                (KvPool::Fp8(Fp8Pool { codes, scales }), Some(sbuf)) if b.kv_dtype == KvDtype::Fp8 => {
                    if codes.len() != b.pool_elems() || scales.len() != b.scale_elems() {
                        return invalid(format!(
                            "{what} pool: {} codes and {} scales, the batch needs {} and {}",
                            codes.len(),
                            scales.len(),
                            b.pool_elems(),
                            b.scale_elems()
                        ));
                    }
                    data.upload(0, codes)?;
                    sbuf.upload(0, scales)?;
                }
                _ => return invalid(format!("{what} pool is not in the batch's KV dtype ({})", b.kv_dtype)),
            }
        }
        Ok(())
    }

    /// Poisons every set's O and LSE and the partials, so that unwritten elements are caught.
    pub fn poison_outputs(&self, bufs: &PagedBuffers) -> Result<()> {
        self.check_owner(bufs, 0)?;
        for b in
            bufs.sets.iter().flat_map(|s| [&s.o, &s.lse]).chain(bufs.partial_o.iter()).chain(bufs.partial_lse.iter())
        {
            b.fill(POISON)?;
        }
        Ok(())
    }

    fn check_owner(&self, bufs: &PagedBuffers, set: usize) -> Result<()> {
        if bufs.owner != self.id {
            return invalid("buffers of another paged step (allocate them with this step's `alloc`)");
        }
        if set >= bufs.sets.len() {
            return invalid(format!("buffer set {set} of {}", bufs.sets.len()));
        }
        Ok(())
    }

    /// The parameter struct with the addresses of set `set`.
    fn params_for(&self, bufs: &PagedBuffers, set: usize) -> PagedDecodeParams {
        let (io, m) = (&bufs.sets[set], &bufs.meta);
        let addr = |b: &Option<DevBuf>| b.as_ref().map_or(0, DevBuf::addr);
        PagedDecodeParams {
            q: io.q.addr(),
            o: io.o.addr(),
            lse: io.lse.addr(),
            k_pool: io.k_pool.addr(),
            v_pool: io.v_pool.addr(),
            k_scale: addr(&io.k_scale),
            v_scale: addr(&io.v_scale),
            q_offsets: m.q_offsets.addr(),
            seq_lens: m.seq_lens.addr(),
            block_offsets: m.block_offsets.addr(),
            block_table: m.block_table.addr(),
            sparse_offsets: m.sparse.as_ref().map_or(0, |s| s.0.addr()),
            sparse_blocks: m.sparse.as_ref().map_or(0, |s| s.1.addr()),
            work_items: addr(&m.work_items),
            split_offsets: m.split_offsets.addr(),
            partial_offsets: m.partial_offsets.addr(),
            partial_o: addr(&bufs.partial_o),
            partial_lse: addr(&bufs.partial_lse),
            ..self.params
        }
    }

    /// Launches the step on set `set` of `bufs` (asynchronous on CUDA).
    pub fn run(&self, bufs: &PagedBuffers, set: usize) -> Result<Vec<LaunchReport>> {
        self.check_owner(bufs, set)?;
        let p = self.params_for(bufs, set);
        self.launches()?
            .iter()
            .map(|(kernel, cfg)| {
                // SAFETY (Device::launch): the one argument is the PagedDecodeParams struct both
                // paged kernels take by value (its size is checked against the PTX .param by
                // tests/kernels_static.rs). Its pointers are `bufs`: allocations of the device
                // launched on, alive while `bufs` is borrowed (CUDA synchronizes before freeing),
                // made by `alloc` of this very step (owner checked), so each is exactly as large
                // as this batch's tensors (Q/O/LSE of total_q x heads rows, pools of num_pages
                // pages, scales for fp8), and the metadata in them is this step's: a batch that
                // passed `PagedBatch::validate` (every table entry a page of the pool, every
                // sequence's keys inside its pages, offsets consistent), masks checked per
                // sequence, block-sparse rows from `sparse_table`, and a plan whose items cover
                // visited tiles of their sequence only and whose partial offsets stay inside
                // `partial_rows` (paged::plan's tests). The kernels read K/V rows only inside the
                // tiles of an item and the keys its sequence sees (< seq_len, in pages its table
                // lists), Q rows of their sequence, and write O/LSE rows of their sequence or
                // their partial rows. Grid and block are `launches()`'s, the kernel's .maxntid
                // (tests/serving_decode.rs runs every instance on the emulator with memcheck).
                unsafe { bufs.dev.launch(kernel, *cfg, &[p.as_bytes()]) }
            })
            .collect()
    }

    /// Waits for the device and downloads O and LSE of set `set`.
    pub fn download(&self, bufs: &PagedBuffers, set: usize) -> Result<Outputs> {
        self.check_owner(bufs, set)?;
        let rows = self.batch.total_q() * self.batch.heads;
        let io = &bufs.sets[set];
        bufs.dev.synchronize()?;
        Ok(Outputs { o: io.o.download_vec(rows * self.batch.head_dim)?, lse: io.lse.download_vec(rows)? })
    }

    /// Alloc, upload, poison, run, download: one complete step.
    pub fn run_once(&self, dev: &dyn Device, q: &[bf16], k: KvPool, v: KvPool) -> Result<(Outputs, Vec<LaunchReport>)> {
        let bufs = self.alloc(dev, 1)?;
        self.upload_inputs(&bufs, 0, q, k, v)?;
        self.poison_outputs(&bufs)?;
        let reports = self.run(&bufs, 0)?;
        Ok((self.download(&bufs, 0)?, reports))
    }

    /// The bytes the launches move, counted as the kernels read and write them (the emulator's
    /// counters must match): `work::paged_decode`'s parts ([`PagedBytes`], one row chunk) plus
    /// what more row chunks repeat, minus the combine's partial-O reads of splits a row sees no
    /// key in (their weight is 0: skipped) and the Q of sequences without a visible key (no CTA).
    pub fn traffic(&self) -> Traffic {
        let (b, pl, w) = (&self.batch, &self.plan, &self.bytes);
        let (d, heads, hk) = (b.head_dim, b.heads, b.kv_heads);
        let bpr = self.config.rows_per_cta();
        let sparse = matches!(self.masks.first(), Some(Mask::BlockSparse(_)));
        let row_bytes = (d * b.kv_dtype.elem_bytes()) as u64;
        let scale_bytes = b.kv_dtype.scale_bytes() as u64;
        let (mut bulk, mut extra, mut skipped) = (0u64, 0u64, 0u64);
        for s in 0..b.num_seqs() {
            let (n, len) = (b.new_tokens(s), b.seq_len(s));
            let keys = key_runs(&self.masks[s], n, len).iter().map(|(a, c)| c - a).sum::<usize>() as u64;
            // Every row chunk with rows of this sequence streams its visible K/V (and scales).
            let chunks = (n * b.group()).div_ceil(bpr) as u64;
            bulk += hk as u64 * keys * 2 * row_bytes * chunks;
            extra += hk as u64 * keys * 2 * (row_bytes + scale_bytes) * (chunks - 1);
            if pl.splits(s) == 0 {
                // No visible key, no CTA: nobody reads its Q (the combine writes its zeros).
                skipped += (n * heads * d * 2) as u64;
            }
            if pl.splits(s) >= 2 {
                // Splits holding no key a token's row sees: the combine skips their O.
                for it in pl.items.iter().filter(|it| it.seq as usize == s) {
                    let tiles = pl.item_tiles(it);
                    for t in 0..n {
                        let seen = self.masks[s]
                            .row_runs(t, n, len)
                            .iter()
                            .any(|&(x, y)| tiles.iter().any(|&(a, c)| x.max(a * TILE_K) < y.min(c * TILE_K)));
                        if !seen {
                            skipped += (heads * d * 4) as u64;
                        }
                    }
                }
            }
        }
        // Row chunks beyond the first: their Q rows are read once overall (each chunk its own),
        // but each CTA of such a chunk reads its metadata again, and K/V (with pages and blocks)
        // when its sequence has rows there.
        for it in &pl.items {
            let s = it.seq as usize;
            let rows = b.new_tokens(s) * b.group();
            for c in 1..self.row_chunks {
                let meta = 40 + if sparse { 4 } else { 0 };
                extra += (hk * meta) as u64;
                if rows > c * bpr {
                    extra += (hk * 4 * self.item_entries(it)) as u64;
                }
            }
        }
        let loads = w.kv + w.kv_scales + w.q + w.q_reread + w.partials / 2.0 + w.metadata;
        Traffic {
            bulk_loads: bulk,
            loads: loads as u64 + extra - skipped,
            stores: (w.o + w.lse + w.partials / 2.0) as u64,
        }
    }

    /// Block-table entries (and block-sparse columns) one CTA of item `it` reads.
    fn item_entries(&self, it: &PagedWorkItem) -> usize {
        let (b, s) = (&self.batch, it.seq as usize);
        let runs = key_runs(&self.masks[s], b.new_tokens(s), b.seq_len(s));
        let block = match &self.masks[s] {
            Mask::BlockSparse(l) => Some(l.block_k),
            _ => None,
        };
        let (mut n, mut last_page, mut last_block) = (0usize, usize::MAX, usize::MAX);
        for (a, c) in self.plan.item_tiles(it) {
            for &(x, y) in &runs {
                let (x, y) = (x.max(a * TILE_K), y.min(c * TILE_K));
                if x >= y {
                    continue;
                }
                let (p0, p1) = (x / b.page_size, (y - 1) / b.page_size);
                n += p1 - p0 + 1 - usize::from(p0 == last_page);
                last_page = p1;
                if let Some(bk) = block {
                    let (b0, b1) = (x / bk, (y - 1) / bk);
                    n += b1 - b0 + 1 - usize::from(b0 == last_block);
                    last_block = b1;
                }
            }
        }
        n
    }

    /// A one-line summary of the step for reports (mask kind, KV dtype, plan).
    pub fn label(&self) -> String {
        format!("{} {} {}", mask_kind(&self.masks[0]), self.batch.kv_dtype, self.description)
    }
}

/// Whether the combine runs: some sequence has several splits (to merge) or none (to zero).
fn needs_combine(plan: &SplitPlan) -> bool {
    (0..plan.split_offsets.len().saturating_sub(1)).any(|s| plan.splits(s) != 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paged::{Allocation, SeqSpec};

    fn batch(seqs: &[(usize, usize)], heads: usize, kv_heads: usize, d: usize, kv: KvDtype) -> PagedBatch {
        let seqs: Vec<SeqSpec> = seqs.iter().map(|&(keys, new_tokens)| SeqSpec { keys, new_tokens }).collect();
        PagedBatch::allocate(heads, kv_heads, d, 16, kv, &seqs, Allocation::default()).unwrap()
    }

    #[test]
    fn instances_by_rows_and_dtype() {
        let b = batch(&[(100, 1), (5, 2)], 8, 1, 128, KvDtype::Bf16);
        let c = config(&b, &b.masks(&MaskRecipe::Causal).unwrap()).unwrap();
        assert_eq!(c.entry, "attn_decode_paged_bf16_d128_r16_causal");
        assert_eq!((c.threads(), c.rows_per_cta(), c.stages), (160, 16, 2));
        let b = batch(&[(100, 3), (5, 2)], 8, 1, 64, KvDtype::Fp8);
        let c = config(&b, &b.masks(&MaskRecipe::Window { keys: 10 }).unwrap()).unwrap();
        assert_eq!((c.module, c.entry.as_str()), ("decode_paged_fp8", "attn_decode_paged_fp8_d64_r128_window"));
        assert_eq!(c.threads(), 256);
        // Each instance exists in its module, and its shared memory is the kernel's layout.
        for kv in [KvDtype::Bf16, KvDtype::Fp8] {
            for d in [64, 128] {
                for (tokens, heads) in [(1, 8), (16, 8)] {
                    let b = batch(&[(300, tokens)], heads, 1, d, kv);
                    for r in [MaskRecipe::None, MaskRecipe::Causal, MaskRecipe::Window { keys: 7 }] {
                        let c = config(&b, &b.masks(&r).unwrap()).unwrap();
                        let k = KernelRef::new(c.module, &c.entry).unwrap();
                        assert!(k.resources().is_some(), "{}", c.entry);
                        assert!(c.smem_bytes() * c.ctas_per_sm() <= SMEM_PER_SM, "{}", c.entry);
                    }
                }
            }
        }
        let sparse = MaskRecipe::Longformer { block: 32, local: 1, global: 1 };
        let b = batch(&[(300, 1)], 8, 1, 64, KvDtype::Bf16);
        assert!(config(&b, &b.masks(&sparse).unwrap()).is_err(), "blocks of 32 keys");
    }
}
