//! Launching each attention variant on any [`Device`]: shape checks, the parameter struct, grid
//! and block, then launches through the device interface (no unsafe here).
//!
//! A variant turns a [`Problem`] into a [`Plan`]: the list of kernel launches with their
//! parameters and the scratch memory they need. [`Attention`] owns the plan, allocates buffers,
//! uploads inputs, runs, and downloads outputs, the same way on the GPU and on the emulator.

pub mod decode;
pub mod dense;
pub mod flash;

use crate::device::{DevBuf, Device, DeviceExt, LaunchConfig, LaunchReport};
use crate::error::{invalid, Result};
use crate::kernels::KernelRef;
use crate::mask::Mask;
use crate::params::AttnParams;
use crate::problem::Problem;
use crate::work::{Variant, Work};
use half::bf16;

/// One kernel launch of a plan. Pointer fields of `params` are filled from [`Buffers`] at run
/// time by [`Attention::params_for`]; a plan only sets shapes, strides, mask and split values.
#[derive(Debug, Clone)]
pub struct Launch {
    pub kernel: KernelRef,
    pub cfg: LaunchConfig,
    pub params: AttnParams,
}

/// What a variant decided for a problem.
#[derive(Debug, Clone)]
pub struct Plan {
    pub launches: Vec<Launch>,
    /// Bytes of `scratch` (dense scores, decode partial O) and `scratch_lse` (decode partial LSE).
    pub scratch_bytes: usize,
    pub scratch_lse_bytes: usize,
    pub work: Work,
    /// Human-readable choices ("tile 128x64, 4 warps", "splits 66").
    pub description: String,
}

/// Variant-specific options; `None` means the variant's heuristic.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Decode: number of KV splits.
    pub splits: Option<usize>,
    /// Decode: the device's SM count for the split heuristic (`Device::sm_count`); `None` means
    /// the H100's 132.
    pub sm_count: Option<usize>,
}

/// Device buffers of one attention call.
#[derive(Debug, Clone)]
pub struct Buffers {
    pub q: DevBuf,
    pub k: DevBuf,
    pub v: DevBuf,
    pub o: DevBuf,
    pub lse: DevBuf,
    pub scratch: Option<DevBuf>,
    pub scratch_lse: Option<DevBuf>,
    pub row_ptr: Option<DevBuf>,
    pub col_idx: Option<DevBuf>,
}

impl Buffers {
    /// Frees every buffer; the first error is returned after trying all of them (stopping at
    /// the first would leak the rest for the device's lifetime, i.e. the rest of a sweep).
    pub fn free(self, dev: &dyn Device) -> Result<()> {
        let mut first = Ok(());
        for b in [Some(self.q), Some(self.k), Some(self.v), Some(self.o), Some(self.lse)]
            .into_iter()
            .chain([self.scratch, self.scratch_lse, self.row_ptr, self.col_idx])
            .flatten()
        {
            let r = dev.free(b);
            if first.is_ok() {
                first = r;
            }
        }
        first
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

/// A prepared attention call.
#[derive(Debug, Clone)]
pub struct Attention {
    pub variant: Variant,
    pub problem: Problem,
    pub plan: Plan,
}

impl Attention {
    pub fn new(variant: Variant, problem: &Problem, opts: &Options) -> Result<Self> {
        problem.validate()?;
        problem.shape.validate_for_kernels()?;
        let plan = match variant {
            Variant::Dense => dense::plan(problem)?,
            Variant::Flash => flash::plan(problem)?,
            Variant::Decode => decode::plan(problem, opts.splits, opts.sm_count)?,
        };
        Ok(Attention { variant, problem: problem.clone(), plan })
    }

    pub fn work(&self) -> Work {
        self.plan.work
    }

    /// Device bytes this call allocates (inputs, outputs, scratch, block layout).
    pub fn footprint_bytes(&self) -> usize {
        let s = &self.problem.shape;
        let csr = match &self.problem.mask {
            Mask::BlockSparse(l) => 4 * (l.row_ptr.len() + l.col_idx.len()),
            _ => 0,
        };
        // Saturating: each term is addressable (Shape::validate, the plans), their sum may not be.
        [
            4 * s.q_elems(),
            4 * s.kv_elems(),
            4 * s.lse_elems(),
            self.plan.scratch_bytes,
            self.plan.scratch_lse_bytes,
            csr,
        ]
        .into_iter()
        .fold(0usize, usize::saturating_add)
    }

    /// Allocates every buffer of the call; inputs are left unwritten (upload or fill them).
    /// When one allocation fails (out of memory), the ones made before it are freed: on a GPU a
    /// leaked buffer stays allocated for the rest of the sweep and starves every later point.
    pub fn alloc(&self, dev: &dyn Device) -> Result<Buffers> {
        let s = &self.problem.shape;
        let made = std::cell::RefCell::new(Vec::new());
        let keep = |r: Result<DevBuf>| r.inspect(|b| made.borrow_mut().push(*b));
        let opt = |n: usize| if n > 0 { keep(dev.alloc(n)).map(Some) } else { Ok(None) };
        let res = (|| {
            let (row_ptr, col_idx) = match &self.problem.mask {
                Mask::BlockSparse(l) => {
                    (Some(keep(dev.upload_new(&l.row_ptr))?), Some(keep(dev.upload_new(&l.col_idx))?))
                }
                _ => (None, None),
            };
            Ok(Buffers {
                q: keep(dev.alloc(2 * s.q_elems()))?,
                k: keep(dev.alloc(2 * s.kv_elems()))?,
                v: keep(dev.alloc(2 * s.kv_elems()))?,
                o: keep(dev.alloc(2 * s.q_elems()))?,
                lse: keep(dev.alloc(4 * s.lse_elems()))?,
                scratch: opt(self.plan.scratch_bytes)?,
                scratch_lse: opt(self.plan.scratch_lse_bytes)?,
                row_ptr,
                col_idx,
            })
        })();
        if res.is_err() {
            for b in made.into_inner() {
                let _ = dev.free(b);
            }
        }
        res
    }

    /// Uploads Q, K, V (checked against the shape).
    pub fn upload_inputs(&self, dev: &dyn Device, bufs: &Buffers, q: &[bf16], k: &[bf16], v: &[bf16]) -> Result<()> {
        let s = &self.problem.shape;
        s.check_input_lens(q.len(), k.len(), v.len())?;
        use crate::device::bytemuck_like::as_bytes;
        dev.upload(&bufs.q, 0, as_bytes(q))?;
        dev.upload(&bufs.k, 0, as_bytes(k))?;
        dev.upload(&bufs.v, 0, as_bytes(v))
    }

    /// Poisons O, LSE and scratch so that unwritten elements are caught.
    pub fn poison_outputs(&self, dev: &dyn Device, bufs: &Buffers) -> Result<()> {
        for b in [Some(bufs.o), Some(bufs.lse), bufs.scratch, bufs.scratch_lse].into_iter().flatten() {
            dev.fill(&b, POISON)?;
        }
        Ok(())
    }

    /// The launch's parameters with the buffer addresses filled in.
    pub fn params_for(&self, launch: &Launch, bufs: &Buffers) -> AttnParams {
        let mut p = launch.params;
        p.q = bufs.q.addr;
        p.k = bufs.k.addr;
        p.v = bufs.v.addr;
        p.o = bufs.o.addr;
        p.lse = bufs.lse.addr;
        p.scratch = bufs.scratch.map_or(0, |b| b.addr);
        p.scratch_lse = bufs.scratch_lse.map_or(0, |b| b.addr);
        p.block_row_ptr = bufs.row_ptr.map_or(0, |b| b.addr);
        p.block_col_idx = bufs.col_idx.map_or(0, |b| b.addr);
        p
    }

    /// Launches every kernel of the plan in order (asynchronous on CUDA).
    pub fn run(&self, dev: &dyn Device, bufs: &Buffers) -> Result<Vec<LaunchReport>> {
        self.plan
            .launches
            .iter()
            .map(|l| {
                let p = self.params_for(l, bufs);
                dev.launch(l.kernel, l.cfg, &[p.as_bytes()])
            })
            .collect()
    }

    pub fn download(&self, dev: &dyn Device, bufs: &Buffers) -> Result<Outputs> {
        let s = &self.problem.shape;
        dev.synchronize()?;
        Ok(Outputs { o: dev.download_vec(&bufs.o, s.q_elems())?, lse: dev.download_vec(&bufs.lse, s.lse_elems())? })
    }

    /// Alloc, upload, poison, run, download, free: one complete call (tests, the `emu` command).
    pub fn run_once(
        &self,
        dev: &dyn Device,
        q: &[bf16],
        k: &[bf16],
        v: &[bf16],
    ) -> Result<(Outputs, Vec<LaunchReport>)> {
        let bufs = self.alloc(dev)?;
        let res = (|| {
            self.upload_inputs(dev, &bufs, q, k, v)?;
            self.poison_outputs(dev, &bufs)?;
            let reports = self.run(dev, &bufs)?;
            Ok((self.download(dev, &bufs)?, reports))
        })();
        bufs.free(dev)?;
        res
    }
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
    use crate::device::Timestamp;
    use crate::problem::Shape;
    use std::cell::Cell;

    /// The emulator, with allocation number `fail_at` failing (out of memory) and a count of
    /// live allocations.
    struct Oom {
        inner: crate::emu::EmuDevice,
        fail_at: usize,
        allocs: Cell<usize>,
        live: Cell<i64>,
    }
    impl Device for Oom {
        fn name(&self) -> String {
            self.inner.name()
        }
        fn is_emulator(&self) -> bool {
            true
        }
        fn alloc(&self, bytes: usize) -> Result<DevBuf> {
            self.allocs.set(self.allocs.get() + 1);
            if self.allocs.get() == self.fail_at {
                return Err(crate::Error::Cuda("cuMemAlloc: CUDA_ERROR_OUT_OF_MEMORY".into()));
            }
            let b = self.inner.alloc(bytes)?;
            self.live.set(self.live.get() + 1);
            Ok(b)
        }
        fn free(&self, buf: DevBuf) -> Result<()> {
            self.inner.free(buf)?;
            self.live.set(self.live.get() - 1);
            Ok(())
        }
        fn upload(&self, buf: &DevBuf, offset: usize, data: &[u8]) -> Result<()> {
            self.inner.upload(buf, offset, data)
        }
        fn download(&self, buf: &DevBuf, offset: usize, out: &mut [u8]) -> Result<()> {
            self.inner.download(buf, offset, out)
        }
        fn fill(&self, buf: &DevBuf, pattern: u32) -> Result<()> {
            self.inner.fill(buf, pattern)
        }
        fn launch(
            &self,
            kernel: KernelRef,
            cfg: LaunchConfig,
            args: &[crate::device::KernelArg],
        ) -> Result<LaunchReport> {
            self.inner.launch(kernel, cfg, args)
        }
        fn synchronize(&self) -> Result<()> {
            self.inner.synchronize()
        }
        fn record(&self) -> Result<Timestamp> {
            self.inner.record()
        }
        fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64> {
            self.inner.elapsed_ms(start, end)
        }
        fn max_dynamic_shared_bytes(&self) -> u32 {
            self.inner.max_dynamic_shared_bytes()
        }
        fn sm_count(&self) -> u32 {
            self.inner.sm_count()
        }
    }

    #[test]
    fn failed_allocation_frees_the_earlier_ones() {
        // Decode (scratch and scratch_lse) with a block-sparse layout: 9 allocations in all.
        let shape = Shape::decode(1, 1, 256, 2, 1, 64);
        let layout = crate::mask::BlockLayout::full(1, 256, 64, 64);
        let p = Problem::new(shape, Mask::BlockSparse(layout));
        let att = Attention::new(Variant::Decode, &p, &Options { splits: Some(2), ..Default::default() }).unwrap();
        let n = {
            let d = Oom { inner: crate::emu::EmuDevice::new(), fail_at: 0, allocs: Cell::new(0), live: Cell::new(0) };
            att.alloc(&d).unwrap().free(&d).unwrap();
            assert_eq!(d.live.get(), 0);
            d.allocs.get()
        };
        assert!(n >= 8, "{n} allocations");
        for fail_at in 1..=n {
            let d = Oom { inner: crate::emu::EmuDevice::new(), fail_at, allocs: Cell::new(0), live: Cell::new(0) };
            assert!(att.alloc(&d).is_err(), "allocation {fail_at} of {n} failed");
            assert_eq!(d.live.get(), 0, "allocation {fail_at} of {n} failed: {} buffers leaked", d.live.get());
        }
    }
}
