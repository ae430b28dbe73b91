//! Launching each attention variant on any [`Device`]: shape checks, the parameter struct, grid
//! and block, then launches through the device interface.
//!
//! A variant turns a [`Problem`] into a [`Plan`]: the list of kernel launches with their
//! parameters and the scratch memory they need. [`Attention`] owns the plan, allocates
//! [`Buffers`], uploads inputs, runs, and downloads outputs, the same way on the GPU and on the
//! emulator. [`Attention::run`] is the one place that meets [`Device::launch`]'s safety contract
//! for attention kernels.

pub mod decode;
pub mod dense;
pub mod flash;
pub mod flash_hopper;
pub mod fp8;

use crate::device::{DevBuf, Device, LaunchConfig, LaunchReport, TensorMap, TensorMapSpec};
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::Mask;
use crate::params::AttnParams;
use crate::problem::Problem;
use crate::work::{Variant, Work};
use half::bf16;
use std::sync::atomic::{AtomicU64, Ordering};

/// One kernel launch of a plan. Pointer fields of `params` are filled from [`Buffers`] at run
/// time by [`Attention::run`]; a plan only sets shapes, strides, mask and split values.
#[derive(Debug, Clone)]
pub struct Launch {
    pub kernel: KernelRef,
    pub cfg: LaunchConfig,
    pub params: AttnParams,
    /// Tensor maps passed after `params`, in order (the Hopper kernels' `CUtensorMap`
    /// parameters); encoded from each buffer set by [`Attention::alloc`].
    pub tensor_maps: Vec<MapPlan>,
}

/// Which tensor of a call a tensor map describes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operand {
    Q,
    K,
    /// V, or V^T for e4m3 inputs.
    V,
    O,
}

/// A tensor map of a launch: its spec with `addr` 0; the operand's buffer supplies the address.
#[derive(Debug, Clone)]
pub struct MapPlan {
    pub operand: Operand,
    pub spec: TensorMapSpec,
}

/// How the inputs sit in device memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InputFormat {
    /// Q, K, V bf16, BSHD.
    #[default]
    Bf16,
    /// Q, K e4m3 BSHD, V^T e4m3 in the kernel's key order, and the descales
    /// ([`fp8`]); quantized on the host from the bf16 inputs.
    E4m3,
}

/// What a variant decided for a problem.
#[derive(Debug, Clone)]
pub struct Plan {
    pub launches: Vec<Launch>,
    /// Bytes of `scratch` (dense scores, decode partial O) and `scratch_lse` (decode partial LSE).
    pub scratch_bytes: usize,
    pub scratch_lse_bytes: usize,
    /// The inputs' device format (bf16 for every variant but flash-hopper-fp8).
    pub input: InputFormat,
    pub work: Work,
    /// Human-readable choices ("tile 128x64, 4 warps", "splits 66").
    pub description: String,
}

/// Variant-specific options; `None` means the variant's heuristic.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Decode: number of KV splits.
    pub splits: Option<usize>,
    /// The device's SM count (`Device::sm_count`): decode's split heuristic and the Hopper
    /// prefill's persistent grid (tests set it low so that each CTA loops over several work
    /// tiles); `None` means the H100's 132.
    pub sm_count: Option<usize>,
}

/// The inputs and outputs of one call: Q, K, V (bf16; e4m3 and V^T for [`InputFormat::E4m3`]),
/// O (bf16) and LSE (f32), BSHD.
#[derive(Debug)]
pub struct IoBuffers<'d> {
    pub q: DevBuf<'d>,
    pub k: DevBuf<'d>,
    pub v: DevBuf<'d>,
    pub o: DevBuf<'d>,
    pub lse: DevBuf<'d>,
    /// e4m3 inputs: the descales of Q, K and V, f32 [3][batch][kv_heads].
    pub descales: Option<DevBuf<'d>>,
    /// The tensor maps of each launch of the plan, encoded for this set's buffers.
    maps: Vec<Vec<TensorMap>>,
}

/// Device memory of an [`Attention`]: one or more input/output sets (the sweep rotates several so
/// that L2 never holds a call's inputs) sharing one scratch and one block layout. Made by
/// [`Attention::alloc`] and usable only with the call that made it (checked by [`Attention::run`]:
/// its launches index these buffers by that call's shape). Freed when dropped.
pub struct Buffers<'d> {
    dev: &'d dyn Device,
    /// The [`Attention::id`] these buffers were sized and laid out for.
    owner: u64,
    sets: Vec<IoBuffers<'d>>,
    scratch: Option<DevBuf<'d>>,
    scratch_lse: Option<DevBuf<'d>>,
    /// Block-sparse row pointers and column indices. Private: the kernels index K and V through
    /// them, so only the layout validated with the problem may be in them.
    layout: Option<(DevBuf<'d>, DevBuf<'d>)>,
}

impl<'d> Buffers<'d> {
    pub fn device(&self) -> &'d dyn Device {
        self.dev
    }
    /// Input/output set `i` (panics when out of range, like indexing).
    pub fn set(&self, i: usize) -> &IoBuffers<'d> {
        &self.sets[i]
    }
    pub fn sets(&self) -> usize {
        self.sets.len()
    }
    /// The buffers the kernels write besides O and LSE (poisoned before a run).
    fn scratch(&self) -> impl Iterator<Item = &DevBuf<'d>> {
        self.scratch.iter().chain(&self.scratch_lse)
    }
}

/// Outputs downloaded after a run.
#[derive(Debug, Clone)]
pub struct Outputs {
    pub o: Vec<bf16>,
    pub lse: Vec<f32>,
}

/// The bit pattern outputs are poisoned with before a run: a bf16 pair / f32 NaN that no kernel
/// computes, so an element the kernel forgot to write shows up as NaN.
pub const POISON: u32 = 0x7fc1_7fc1;

/// Gives every [`Attention`] its own id, so that buffers can tell which call they belong to.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A prepared attention call. Its problem and plan are fixed at creation (read-only): the launch
/// parameters, grid and block were derived from the problem's shape, and the buffers are sized
/// by the same shape, so changing either alone would make a kernel address outside its buffers.
#[derive(Debug, Clone)]
pub struct Attention {
    variant: Variant,
    problem: Problem,
    plan: Plan,
    id: u64,
}

impl Attention {
    pub fn new(variant: Variant, problem: &Problem, opts: &Options) -> Result<Self> {
        problem.validate()?;
        problem.shape.validate_for_kernels()?;
        let plan = match variant {
            Variant::Dense => dense::plan(problem)?,
            Variant::Flash => flash::plan(problem)?,
            Variant::FlashHopper => flash_hopper::plan(problem, InputFormat::Bf16, opts.sm_count)?,
            Variant::FlashHopperFp8 => flash_hopper::plan(problem, InputFormat::E4m3, opts.sm_count)?,
            Variant::Decode => decode::plan(problem, opts.splits, opts.sm_count)?,
        };
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        Ok(Attention { variant, problem: problem.clone(), plan, id })
    }

    pub fn variant(&self) -> Variant {
        self.variant
    }
    pub fn problem(&self) -> &Problem {
        &self.problem
    }
    pub fn plan(&self) -> &Plan {
        &self.plan
    }
    pub fn work(&self) -> Work {
        self.plan.work
    }

    /// Device bytes of one input/output set: Q, K, V, O (bf16) and LSE (f32); e4m3 Q, K, V^T
    /// and the descales for [`InputFormat::E4m3`].
    pub fn set_bytes(&self) -> usize {
        let [q, k, v, descales] = self.input_bytes();
        let s = &self.problem.shape;
        [q, k, v, descales, 2 * s.q_elems(), 4 * s.lse_elems()].into_iter().fold(0usize, usize::saturating_add)
    }

    /// Bytes of Q, K, V and the descales in the plan's input format.
    fn input_bytes(&self) -> [usize; 4] {
        let s = &self.problem.shape;
        match self.plan.input {
            InputFormat::Bf16 => [2 * s.q_elems(), 2 * s.kv_elems(), 2 * s.kv_elems(), 0],
            InputFormat::E4m3 => [
                s.q_elems(),
                s.kv_elems(),
                s.batch * s.kv_heads * s.head_dim * fp8::keys_padded(s.seq_k),
                3 * 4 * s.batch * s.kv_heads,
            ],
        }
    }

    /// Device bytes this call allocates with one set (inputs, outputs, scratch, block layout).
    pub fn footprint_bytes(&self) -> usize {
        let csr = match &self.problem.mask {
            Mask::BlockSparse(l) => 4 * (l.row_ptr.len() + l.col_idx.len()),
            _ => 0,
        };
        // Saturating: each term is addressable (Shape::validate, the plans), their sum may not be.
        [self.set_bytes(), self.plan.scratch_bytes, self.plan.scratch_lse_bytes, csr]
            .into_iter()
            .fold(0usize, usize::saturating_add)
    }

    /// Allocates the call's buffers with `sets` input/output sets (at least one); inputs are
    /// left unwritten (upload or fill them). An allocation that fails (out of memory) drops,
    /// and so frees, the ones made before it.
    pub fn alloc<'d>(&self, dev: &'d dyn Device, sets: usize) -> Result<Buffers<'d>> {
        if sets == 0 {
            return invalid("an attention call needs at least one buffer set");
        }
        let s = &self.problem.shape;
        let layout = match &self.problem.mask {
            Mask::BlockSparse(l) => Some((DevBuf::from_slice(dev, &l.row_ptr)?, DevBuf::from_slice(dev, &l.col_idx)?)),
            _ => None,
        };
        let [q_bytes, k_bytes, v_bytes, descale_bytes] = self.input_bytes();
        let io = || -> Result<IoBuffers<'d>> {
            let mut set = IoBuffers {
                q: DevBuf::new(dev, q_bytes)?,
                k: DevBuf::new(dev, k_bytes)?,
                v: DevBuf::new(dev, v_bytes)?,
                o: DevBuf::new(dev, 2 * s.q_elems())?,
                lse: DevBuf::new(dev, 4 * s.lse_elems())?,
                descales: if descale_bytes > 0 { Some(DevBuf::new(dev, descale_bytes)?) } else { None },
                maps: Vec::new(),
            };
            set.maps = self.plan.launches.iter().map(|l| encode_maps(dev, l, &set)).collect::<Result<_>>()?;
            Ok(set)
        };
        let first = io()?;
        let opt = |n: usize| if n > 0 { DevBuf::new(dev, n).map(Some) } else { Ok(None) };
        let (scratch, scratch_lse) = (opt(self.plan.scratch_bytes)?, opt(self.plan.scratch_lse_bytes)?);
        let mut all = Vec::with_capacity(sets);
        all.push(first);
        for _ in 1..sets {
            all.push(io()?);
        }
        Ok(Buffers { dev, owner: self.id, sets: all, scratch, scratch_lse, layout })
    }

    /// Uploads Q, K, V of set `set` (checked against the shape); for e4m3 inputs, quantized and
    /// laid out on the host first ([`fp8::quantize`]).
    pub fn upload_inputs(&self, bufs: &Buffers, set: usize, q: &[bf16], k: &[bf16], v: &[bf16]) -> Result<()> {
        self.problem.shape.check_input_lens(q.len(), k.len(), v.len())?;
        let b = bufs.set(set);
        match self.plan.input {
            InputFormat::Bf16 => {
                b.q.upload(0, q)?;
                b.k.upload(0, k)?;
                b.v.upload(0, v)
            }
            InputFormat::E4m3 => {
                let f = fp8::quantize(&self.problem.shape, q, k, v);
                b.q.upload(0, &f.q)?;
                b.k.upload(0, &f.k)?;
                b.v.upload(0, &f.vt)?;
                b.descales.as_ref().map_or(Ok(()), |d| d.upload(0, &f.descales))
            }
        }
    }

    /// Fills the inputs of set `set` by repeating `block` (timing runs of any size without a
    /// host copy of the whole input): bf16 as is, e4m3 as the block quantized with one descale.
    pub fn upload_repeating(&self, bufs: &Buffers, set: usize, block: &[bf16]) -> Result<()> {
        if block.is_empty() {
            return invalid("an empty block cannot fill inputs");
        }
        let b = bufs.set(set);
        let fill = |buf: &DevBuf, bytes: &[u8]| -> Result<()> {
            let mut off = 0;
            while off < buf.bytes() {
                let n = (buf.bytes() - off).min(bytes.len());
                buf.upload(off, &bytes[..n])?;
                off += n;
            }
            Ok(())
        };
        match self.plan.input {
            InputFormat::Bf16 => {
                let bytes: &[u8] = bytemuck::cast_slice(block);
                [&b.q, &b.k, &b.v].into_iter().try_for_each(|buf| fill(buf, bytes))
            }
            InputFormat::E4m3 => {
                let amax = block.iter().fold(0f32, |m, x| m.max(x.to_f32().abs()));
                let descale = if amax > 0.0 { amax / fp8::E4M3_MAX } else { 1.0 };
                let bytes: Vec<u8> = block.iter().map(|x| crate::paged::fp8::encode(x.to_f32() / descale)).collect();
                [&b.q, &b.k, &b.v].into_iter().try_for_each(|buf| fill(buf, &bytes))?;
                let d = b.descales.as_ref().expect("e4m3 sets have descales");
                d.upload(0, &vec![descale; d.bytes() / 4])
            }
        }
    }

    /// Poisons every set's O and LSE and the scratch, so that unwritten elements are caught.
    pub fn poison_outputs(&self, bufs: &Buffers) -> Result<()> {
        for b in bufs.sets.iter().flat_map(|s| [&s.o, &s.lse]).chain(bufs.scratch()) {
            b.fill(POISON)?;
        }
        Ok(())
    }

    /// The launch's parameters with the addresses of set `set` filled in.
    fn params_for(&self, launch: &Launch, bufs: &Buffers, set: usize) -> AttnParams {
        let b = bufs.set(set);
        let mut p = launch.params;
        p.q = b.q.addr();
        p.k = b.k.addr();
        p.v = b.v.addr();
        p.o = b.o.addr();
        p.lse = b.lse.addr();
        p.scratch = bufs.scratch.as_ref().map_or(0, DevBuf::addr);
        p.scratch_lse = bufs.scratch_lse.as_ref().map_or(0, DevBuf::addr);
        p.block_row_ptr = bufs.layout.as_ref().map_or(0, |l| l.0.addr());
        p.block_col_idx = bufs.layout.as_ref().map_or(0, |l| l.1.addr());
        if let Some(d) = &b.descales {
            let n = 4 * self.problem.shape.batch as u64 * self.problem.shape.kv_heads as u64;
            (p.descale_q, p.descale_k, p.descale_v) = (d.addr(), d.addr() + n, d.addr() + 2 * n);
        }
        p
    }

    /// Launches every kernel of the plan in order on set `set` of `bufs`, on the buffers' device
    /// (asynchronous on CUDA).
    pub fn run(&self, bufs: &Buffers, set: usize) -> Result<Vec<LaunchReport>> {
        if bufs.owner != self.id {
            return invalid("buffers of another attention call (allocate them with this call's `alloc`)");
        }
        if set >= bufs.sets.len() {
            return invalid(format!("buffer set {set} of {}", bufs.sets.len()));
        }
        self.plan
            .launches
            .iter()
            .zip(&bufs.set(set).maps)
            .map(|(l, maps)| {
                let p = self.params_for(l, bufs, set);
                let mut args: Vec<&[u8]> = vec![p.as_bytes()];
                args.extend(maps.iter().map(TensorMap::as_bytes));
                // SAFETY (Device::launch): the one argument is the AttnParams struct every
                // attention kernel takes by value (its size is checked against the PTX .param by
                // tests/kernels_static.rs, and by both backends at launch). Its pointers are
                // `bufs`: allocations of the device launched on, alive while `bufs` is borrowed
                // (CUDA synchronizes before freeing), made by `alloc` of this very call (owner
                // checked above; problem and plan cannot change after `new`), so each is exactly
                // as large as this shape's tensors, this plan's scratch and this problem's
                // validated block layout. The plan's grid, block and parameters are the variant
                // planner's for this shape, the ones the kernels' bounds checks are written for:
                // every plan runs on the emulator with memcheck, and its block is the kernel's
                // .maxntid (ops tests). The tensor maps that follow (Hopper kernels) were
                // encoded by `alloc` for this set's buffers from this plan's specs: each covers
                // exactly its operand's buffer (dims and strides of this shape; the device
                // checks the extent lies in one of its allocations), and the kernel only
                // reaches Q, K, V and O through them.
                unsafe { bufs.dev.launch(&l.kernel, l.cfg, &args) }
            })
            .collect()
    }

    /// Waits for the device and downloads O and LSE of set `set`.
    pub fn download(&self, bufs: &Buffers, set: usize) -> Result<Outputs> {
        let s = &self.problem.shape;
        let b = bufs.set(set);
        bufs.dev.synchronize()?;
        Ok(Outputs { o: b.o.download_vec(s.q_elems())?, lse: b.lse.download_vec(s.lse_elems())? })
    }

    /// Alloc, upload, poison, run, download: one complete call (tests, the `emu` command). The
    /// buffers are freed on return, errors included.
    pub fn run_once(
        &self,
        dev: &dyn Device,
        q: &[bf16],
        k: &[bf16],
        v: &[bf16],
    ) -> Result<(Outputs, Vec<LaunchReport>)> {
        let bufs = self.alloc(dev, 1)?;
        self.upload_inputs(&bufs, 0, q, k, v)?;
        self.poison_outputs(&bufs)?;
        let reports = self.run(&bufs, 0)?;
        Ok((self.download(&bufs, 0)?, reports))
    }
}

/// The tensor maps of launch `l` for the buffers of `set`: each spec with its operand's address.
fn encode_maps(dev: &dyn Device, l: &Launch, set: &IoBuffers) -> Result<Vec<TensorMap>> {
    l.tensor_maps
        .iter()
        .map(|m| {
            let buf = match m.operand {
                Operand::Q => &set.q,
                Operand::K => &set.k,
                Operand::V => &set.v,
                Operand::O => &set.o,
            };
            dev.encode_tensor_map(&TensorMapSpec { addr: buf.addr(), ..m.spec.clone() })
        })
        .collect()
}

/// Parameters common to every variant: shapes, contiguous BSHD strides, mask, scale.
pub fn base_params(p: &Problem) -> AttnParams {
    let s = &p.shape;
    let (hd, h, hk) = (s.head_dim as i64, s.heads as i64, s.kv_heads as i64);
    let (left, right) = p.mask.kernel_window();
    let (sbq, sbk) = match &p.mask {
        Mask::BlockSparse(l) => (l.block_q as i32, l.block_k as i32),
        _ => (0, 0),
    };
    let scale = p.scale();
    AttnParams {
        q_batch_stride: s.seq_q as i64 * h * hd,
        q_row_stride: h * hd,
        q_head_stride: hd,
        k_batch_stride: s.seq_k as i64 * hk * hd,
        k_row_stride: hk * hd,
        k_head_stride: hd,
        v_batch_stride: s.seq_k as i64 * hk * hd,
        v_row_stride: hk * hd,
        v_head_stride: hd,
        o_batch_stride: s.seq_q as i64 * h * hd,
        o_row_stride: h * hd,
        o_head_stride: hd,
        batch: s.batch as i32,
        seq_q: s.seq_q as i32,
        seq_k: s.seq_k as i32,
        heads: s.heads as i32,
        kv_heads: s.kv_heads as i32,
        head_dim: s.head_dim as i32,
        mask_kind: match p.mask {
            Mask::None => crate::params::ATTN_MASK_NONE,
            Mask::Causal => crate::params::ATTN_MASK_CAUSAL,
            Mask::Window { .. } => crate::params::ATTN_MASK_WINDOW,
            Mask::BlockSparse(_) => crate::params::ATTN_MASK_BLOCK_SPARSE,
        } as i32,
        window_left: left,
        window_right: right,
        sparse_block_q: sbq,
        sparse_block_k: sbk,
        num_splits: 1,
        // One split holding every key tile (decode's plan sets its own split).
        tiles_per_split: s.seq_k.div_ceil(decode::TILE_K) as i32,
        scale: scale as f32,
        scale_log2: (scale * std::f64::consts::LOG2_E) as f32,
        ..Default::default()
    }
}

/// Grid dimension check: CUDA limits y and z to 65535.
pub fn check_grid(grid: [u32; 3]) -> Result<()> {
    if grid[1] > 65535 || grid[2] > 65535 || grid.contains(&0) {
        return invalid(format!("grid {grid:?} is outside CUDA's limits (x < 2^31, y and z <= 65535, none zero)"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::device::testing::{Call, Faulty};
    use crate::emu::EmuDevice;
    use crate::problem::Shape;
    use crate::BlockLayout;

    /// Decode with two splits (scratch and scratch_lse) over a block-sparse layout: every kind of
    /// buffer a call allocates.
    fn decode_sparse() -> Attention {
        let shape = Shape::decode(1, 1, 256, 2, 1, 64);
        let p = Problem::new(shape, Mask::BlockSparse(BlockLayout::full(1, 256, 64, 64)));
        Attention::new(Variant::Decode, &p, &Options { splits: Some(2), ..Default::default() }).unwrap()
    }

    fn inputs(att: &Attention, seed: u64) -> [Vec<bf16>; 3] {
        let s = &att.problem().shape;
        [
            crate::reference::random_bf16(s.q_elems(), seed),
            crate::reference::random_bf16(s.kv_elems(), seed + 1),
            crate::reference::random_bf16(s.kv_elems(), seed + 2),
        ]
    }

    #[test]
    fn every_failing_call_of_a_run_frees_everything() {
        // Each call of each kind fails in turn (out of memory at the n-th allocation, a failed
        // copy, poison, launch or download): the run fails and the emulator holds nothing.
        let att = decode_sparse();
        let [q, k, v] = inputs(&att, crate::reference::fresh_seed());
        let clean = Faulty::new(EmuDevice::new());
        att.run_once(&clean, &q, &k, &v).unwrap();
        assert_eq!(clean.inner.live_allocations(), (0, 0));
        assert_eq!(clean.calls(Call::Alloc), 9, "layout 2 + Q K V O LSE + 2 scratch");
        let mut failures = 0;
        for call in Call::ALL {
            assert!(clean.calls(call) > 0, "{call:?} is exercised");
            for n in 1..=clean.calls(call) {
                let d = Faulty::failing(EmuDevice::new(), call, n);
                let e = att.run_once(&d, &q, &k, &v).expect_err("the injected failure surfaces");
                assert!(e.to_string().contains("injected"), "{e}");
                assert_eq!(d.inner.live_allocations(), (0, 0), "{call:?} {n} of {}: leaked", clean.calls(call));
                failures += 1;
            }
        }
        assert!(failures >= 9 + 3 + 2 + 4 + 2, "{failures} failure points");
    }

    #[test]
    fn extra_sets_share_one_scratch_and_layout_and_all_are_freed() {
        let att = decode_sparse();
        let dev = EmuDevice::new();
        let n = {
            let d = Faulty::new(&dev);
            let bufs = att.alloc(&d, 3).unwrap();
            assert_eq!(bufs.sets(), 3);
            assert_eq!(dev.live_allocations().0, 2 + 3 * 5 + 2, "one layout and scratch for three sets");
            d.calls(Call::Alloc)
        };
        assert_eq!(dev.live_allocations(), (0, 0));
        for fail in 1..=n {
            let d = Faulty::failing(&dev, Call::Alloc, fail);
            assert!(att.alloc(&d, 3).is_err());
            assert_eq!(dev.live_allocations(), (0, 0), "allocation {fail} of {n} failed: leaked");
        }
        assert!(att.alloc(&dev, 0).is_err(), "zero sets");
    }

    #[test]
    fn run_refuses_buffers_of_another_call_or_set() {
        let dev = EmuDevice::new();
        let small = Attention::new(
            Variant::Dense,
            &Problem::new(Shape::prefill(1, 64, 2, 1, 64), Mask::Causal),
            &Options::default(),
        )
        .unwrap();
        let big = Attention::new(
            Variant::Dense,
            &Problem::new(Shape::prefill(1, 128, 2, 1, 64), Mask::Causal),
            &Options::default(),
        )
        .unwrap();
        let bufs = small.alloc(&dev, 2).unwrap();
        let e = big.run(&bufs, 0).unwrap_err().to_string();
        assert!(e.contains("another attention call"), "{e}");
        let e = small.run(&bufs, 2).unwrap_err().to_string();
        assert!(e.contains("buffer set 2 of 2"), "{e}");
        // A clone is the same call.
        let [q, k, v] = inputs(&small, 11);
        small.upload_inputs(&bufs, 1, &q, &k, &v).unwrap();
        small.poison_outputs(&bufs).unwrap();
        small.clone().run(&bufs, 1).unwrap();
        assert!(small.download(&bufs, 1).unwrap().o.iter().all(|x| !x.is_nan()));
    }

    /// `.maxntid X, Y, Z` of `entry` in a module's PTX (the kernel's `__launch_bounds__`).
    fn maxntid(ptx: &str, entry: &str) -> Option<u32> {
        let at = ptx.find(&format!(".entry {entry}("))?;
        let body = &ptx[at..at + ptx[at..].find('{')?];
        let dims = body.split(".maxntid").nth(1)?.lines().next()?;
        dims.split(',').map(|d| d.trim().parse::<u32>().ok()).product()
    }

    #[test]
    fn every_plan_launches_its_kernels_launch_bounds_threads() {
        // Block sizes in the planners mirror the kernels' C++ traits by hand; the PTX says what
        // each kernel was compiled for (`__launch_bounds__` -> `.maxntid`). More threads fail to
        // launch, fewer would leave rows or keys unprocessed: they must be equal. Every product
        // entry must be reached by some plan, so that a new kernel is checked too.
        let mut seen = std::collections::BTreeSet::new();
        let layout = |sq, sk, bq, bk| Mask::BlockSparse(BlockLayout::full(sq, sk, bq, bk));
        for d in [64, 128, 256] {
            for (phase_shape, sparse) in [
                (Shape::prefill(1, 256, 4, 2, d), layout(256, 256, 128, 64)),
                (Shape::decode(1, 1, 512, 4, 1, d), layout(1, 512, 16, 64)),
                (Shape::decode(1, 16, 512, 32, 1, d), layout(16, 512, 16, 64)),
            ] {
                for mask in [Mask::None, Mask::Causal, Mask::causal_window(100), sparse] {
                    let p = Problem::new(phase_shape, mask);
                    for v in
                        [Variant::Dense, Variant::Flash, Variant::FlashHopper, Variant::FlashHopperFp8, Variant::Decode]
                    {
                        for splits in [Some(1), Some(3)] {
                            let Ok(att) = Attention::new(v, &p, &Options { splits, ..Default::default() }) else {
                                continue;
                            };
                            for l in &att.plan().launches {
                                let (m, e) = (l.kernel.module_name(), l.kernel.entry());
                                let bound =
                                    maxntid(l.kernel.ptx(), e).unwrap_or_else(|| panic!("{m}::{e} has no .maxntid"));
                                assert_eq!(l.cfg.threads_per_block(), bound, "{m}::{e}: plan block {:?}", l.cfg.block);
                                seen.insert(format!("{m}::{e}"));
                            }
                        }
                    }
                }
            }
        }
        let all: std::collections::BTreeSet<String> = crate::kernels::MODULES
            .iter()
            .filter(|m| !m.test_only)
            .flat_map(|m| m.entries.iter().map(move |e| format!("{}::{}", m.name, e.name)))
            .collect();
        let missed: Vec<&String> = all.difference(&seen).collect();
        assert!(missed.is_empty(), "product kernels no plan launched: {missed:?}");
    }
}
