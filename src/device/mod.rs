//! One interface for every launch: allocate, upload, download, fill (poison), launch, synchronize,
//! time. Two backends implement it: [`cuda::CudaDevice`] (a real GPU through cudarc) and
//! `emu::EmuDevice` (the CPU emulator executing the nvcc-produced PTX).

pub mod cuda;
pub mod tensor_map;
pub mod testing;

use crate::kernels::KernelRef;
use crate::Result;
use serde::{Deserialize, Serialize};
pub use tensor_map::{TensorMap, TensorMapElem, TensorMapError, TensorMapFill, TensorMapSpec, TensorMapSwizzle};

/// One allocation as a backend hands it out: the device address kernels see (a real GPU pointer
/// on CUDA, a virtual address in the emulator's global space) and its size. It has no public
/// constructor and no `Clone`: only [`DevBuf`] holds one, and gives it back to [`Device::free`]
/// exactly once, when dropped.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Allocation {
    addr: u64,
    bytes: usize,
}

impl Allocation {
    /// For backends: the allocation they just made at `addr`.
    pub(crate) fn new(addr: u64, bytes: usize) -> Self {
        Allocation { addr, bytes }
    }
    pub fn addr(&self) -> u64 {
        self.addr
    }
    pub fn bytes(&self) -> usize {
        self.bytes
    }
}

/// Owned device memory: allocated on a device, freed when dropped. It borrows its device, so it
/// cannot outlive it (a CUDA context's memory dies with the context), and it is not `Copy`, so
/// there is exactly one owner to free it. See docs/ARCHITECTURE.md ("Device memory").
pub struct DevBuf<'d> {
    dev: &'d dyn Device,
    mem: Allocation,
}

impl std::fmt::Debug for DevBuf<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DevBuf({:#x}, {} bytes)", self.mem.addr, self.mem.bytes)
    }
}

impl<'d> DevBuf<'d> {
    /// `bytes` of uninitialized device memory (the emulator's initcheck flags reads before a write).
    pub fn new(dev: &'d dyn Device, bytes: usize) -> Result<Self> {
        Ok(DevBuf { dev, mem: dev.alloc(bytes)? })
    }
    /// A buffer holding `data` (at least one byte is allocated for an empty slice).
    pub fn from_slice<T: Pod>(dev: &'d dyn Device, data: &[T]) -> Result<Self> {
        let bytes = bytemuck::cast_slice::<T, u8>(data);
        let buf = Self::new(dev, bytes.len().max(1))?;
        buf.upload(0, data)?; // on failure `buf` is dropped, and freed, here
        Ok(buf)
    }
    /// The device address kernels see.
    pub fn addr(&self) -> u64 {
        self.mem.addr
    }
    pub fn bytes(&self) -> usize {
        self.mem.bytes
    }
    /// The address of byte `offset` inside this buffer.
    pub fn at(&self, offset: usize) -> u64 {
        self.mem.addr + offset as u64
    }
    /// The device this buffer lives on.
    pub fn device(&self) -> &'d dyn Device {
        self.dev
    }
    /// Copies `data` into the buffer starting at byte `offset`.
    pub fn upload<T: Pod>(&self, offset: usize, data: &[T]) -> Result<()> {
        self.dev.upload(&self.mem, offset, bytemuck::cast_slice(data))
    }
    /// Fills `out` from the buffer starting at byte `offset`.
    pub fn download<T: Pod>(&self, offset: usize, out: &mut [T]) -> Result<()> {
        self.dev.download(&self.mem, offset, bytemuck::cast_slice_mut(out))
    }
    /// The first `n` elements of the buffer.
    pub fn download_vec<T: Pod>(&self, n: usize) -> Result<Vec<T>> {
        let mut v = vec![T::zeroed(); n];
        self.download(0, &mut v)?;
        Ok(v)
    }
    /// Fills the whole buffer with a repeated 32-bit pattern (poisoning outputs before a run).
    pub fn fill(&self, pattern: u32) -> Result<()> {
        self.dev.fill(&self.mem, pattern)
    }
}

impl Drop for DevBuf<'_> {
    fn drop(&mut self) {
        let mem = std::mem::replace(&mut self.mem, Allocation { addr: 0, bytes: 0 });
        // A failed free has nowhere to go from a destructor. The backends fail only for a dead
        // context (CUDA after a sticky fault; the device's own Drop frees what is left) or a
        // foreign allocation, which the type rules out.
        let _ = self.dev.free(mem);
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared_bytes: u32,
}

impl LaunchConfig {
    /// Threads per block (saturating: a hostile block size is refused by the launch, not an overflow).
    pub fn threads_per_block(&self) -> u32 {
        self.block.iter().fold(1u32, |n, &b| n.saturating_mul(b))
    }
    /// Blocks in the grid (saturating, as [`Self::threads_per_block`]).
    pub fn blocks(&self) -> u64 {
        self.grid.iter().fold(1u64, |n, &g| n.saturating_mul(g as u64))
    }
}

/// What the emulator observed during a launch. The CUDA backend returns an empty report (use
/// Nsight Compute there); the fields are filled by the emulator's sanitizer and counters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LaunchReport {
    /// Sanitizer findings (capped); `findings_total` counts all of them.
    pub findings: Vec<Finding>,
    pub findings_total: u64,
    pub counters: Option<Counters>,
}

/// One sanitizer finding, named like compute-sanitizer's tools.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finding {
    pub kind: FindingKind,
    pub kernel: String,
    pub block: [u32; 3],
    pub thread: [u32; 3],
    /// 1-based line in the module's PTX text.
    pub ptx_line: u32,
    pub address: Option<u64>,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FindingKind {
    /// memcheck: global access outside any allocation
    GlobalOutOfBounds,
    /// memcheck: shared access outside the block's shared memory
    SharedOutOfBounds,
    /// memcheck: vector/scalar access not aligned to its size
    Misaligned,
    /// initcheck: read of shared memory never written in this launch
    UninitShared,
    /// initcheck: read of global memory never written since allocation
    UninitGlobal,
    /// racecheck: two threads touch the same shared bytes, one writes, and no synchronization
    /// orders them (happens-before: barriers, mbarrier phases, strong accesses)
    SharedRace,
    /// synccheck: threads of a block disagree on a barrier
    BarrierDivergence,
    /// synccheck: a warp collective names an exited or absent lane
    InvalidWarpMask,
    /// synccheck: no warp of a block can progress (deadlock), or warps spin forever (livelock)
    Deadlock,
    /// mbarrier misuse: re-init of a live barrier, plain access to one, an operation on
    /// uninitialized memory, arrival underflow, counts out of range, unmatched transaction bytes
    MbarrierMisuse,
    /// racecheck (async proxy): shared bytes a bulk/tensor copy wrote read (or written) before
    /// the warp observed the mbarrier phase that completes the copy; generic writes read by the
    /// async proxy (wgmma operands, bulk/tensor store sources) without a `fence.proxy.async`
    /// ordered before the read; a bulk/tensor store's source written before the
    /// `cp.async.bulk.wait_group.read` that retires it (or not ordered after that wait)
    AsyncRace,
    /// a bulk tensor copy or prefetch with an operand that is not a valid tensor map
    InvalidTensorMap,
    /// setmaxnreg misuse: part of a warp or warpgroup, or a count moving the wrong way
    RegisterReconfig,
    /// wgmma rules: fragment registers touched while in flight or without wgmma.fence, warps of
    /// a warpgroup disagreeing, operand shared memory overwritten before wgmma.wait_group
    WgmmaHazard,
}

/// Nsight-Compute-style counters for one launch (emulator only).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Counters {
    /// Thread-level instructions executed, by class.
    pub inst_arith: u64,
    pub inst_memory: u64,
    pub inst_tensor: u64,
    pub inst_control: u64,
    pub inst_sync: u64,
    /// Warp-level instructions issued.
    pub warp_instructions: u64,
    pub global_load_bytes: u64,
    pub global_store_bytes: u64,
    pub global_load_sectors: u64,
    pub global_store_sectors: u64,
    /// Warp-level shared-memory instructions (ld/st/atom; ldmatrix counted separately).
    pub shared_requests: u64,
    /// Shared wavefronts: one per request when conflict-free, more with bank conflicts.
    pub shared_wavefronts: u64,
    /// Wavefronts beyond the minimum (l1tex__data_bank_conflicts_pipe_lsu_mem_shared).
    pub shared_bank_conflicts: u64,
    pub ldmatrix_instructions: u64,
    pub ldmatrix_wavefronts: u64,
    pub mma_instructions: u64,
    /// Tensor FLOPs of mma and wgmma (2 M N K per instruction).
    pub tensor_flops: u64,
    pub barriers: u64,
    /// Global bytes tensor (TMA) copies read / wrote (also in `global_*_bytes`; out-of-bounds
    /// elements of a box are neither).
    #[serde(default)]
    pub tma_load_bytes: u64,
    #[serde(default)]
    pub tma_store_bytes: u64,
    /// Bytes plain bulk copies (`cp.async.bulk`) moved (also in `global_*_bytes`).
    #[serde(default)]
    pub bulk_load_bytes: u64,
    #[serde(default)]
    pub bulk_store_bytes: u64,
    /// Warp-level mbarrier waits that returned (a blocked `try_wait` counts once; each failed
    /// `test_wait` poll counts).
    #[serde(default)]
    pub mbarrier_waits: u64,
    /// Warp-level waits at named barriers (`bar.sync` / `barrier.sync` with an id other than 0).
    #[serde(default)]
    pub named_barrier_waits: u64,
    /// Warpgroup-level wgmma.mma_async instructions (one per warpgroup, not per warp).
    #[serde(default)]
    pub wgmma_instructions: u64,
}

/// A kernel argument's bytes, laid out as the kernel's `.param` expects (a by-value struct, a
/// pointer as u64, an i32 ...).
pub type KernelArg<'a> = &'a [u8];

/// Opaque timestamp from [`Device::record`].
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub u64);

/// A backend. Memory is reached through [`DevBuf`]: `alloc` and `free` are the hooks it calls, and
/// `upload`/`download`/`fill` take the [`Allocation`] a `DevBuf` holds.
pub trait Device {
    /// A one-line description (GPU name, or "CPU emulator (N threads)").
    fn name(&self) -> String;
    fn is_emulator(&self) -> bool;
    /// Allocates `bytes` (for [`DevBuf::new`]; an `Allocation` dropped any other way leaks).
    fn alloc(&self, bytes: usize) -> Result<Allocation>;
    /// Frees an allocation of this device (from [`DevBuf`]'s Drop).
    fn free(&self, mem: Allocation) -> Result<()>;
    /// Copies `data` into `mem` starting at byte `offset`.
    fn upload(&self, mem: &Allocation, offset: usize, data: &[u8]) -> Result<()>;
    /// Copies `out.len()` bytes from `mem` starting at byte `offset`.
    fn download(&self, mem: &Allocation, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Fills all of `mem` with a repeated 32-bit pattern (little-endian bytes).
    fn fill(&self, mem: &Allocation, pattern: u32) -> Result<()>;
    /// Launches `kernel`. On CUDA this is asynchronous and the report is empty; the emulator runs
    /// the kernel to completion and reports sanitizer findings and counters.
    ///
    /// # Safety
    ///
    /// A kernel trusts its arguments. The caller guarantees that `args` are laid out as the
    /// kernel's parameters, and that for this grid, block and these arguments every address the
    /// kernel reads or writes lies inside memory of this device that stays allocated until the
    /// launch has completed (a [`DevBuf`] alive across the launch: the CUDA backend synchronizes
    /// before freeing). The emulator bounds-checks every access, so there the contract only
    /// decides whether a launch faults; on a GPU a broken one reads or corrupts other memory.
    /// `ops::Attention::run` is where the crate meets it for every attention launch.
    unsafe fn launch(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport>;
    fn synchronize(&self) -> Result<()>;
    /// Records a timestamp in the device's stream (a CUDA event; wall clock in the emulator).
    fn record(&self) -> Result<Timestamp>;
    /// Milliseconds between two timestamps (synchronizes on `end`).
    fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64>;
    /// Opt-in dynamic shared memory above 48 KB and the device's per-block limit.
    fn max_dynamic_shared_bytes(&self) -> u32;
    /// Streaming multiprocessors (the emulator reports the H100's 132 so heuristics match).
    fn sm_count(&self) -> u32;
    /// Encodes a tiled tensor map (a TMA descriptor) for kernels that take a
    /// `const __grid_constant__ CUtensorMap` parameter: the driver's `cuTensorMapEncodeTiled` on
    /// CUDA, the emulator's own encoding there; both check [`TensorMapSpec::validate`] first. The
    /// map holds the tensor's address, not a borrow: it is valid while that memory is.
    fn encode_tensor_map(&self, spec: &TensorMapSpec) -> Result<TensorMap>;
}

/// Plain-old-data element types that move between host and device as bytes.
pub use bytemuck::{Pod, Zeroable};

/// A borrowed, boxed or shared device is a device: tests wrap `&EmuDevice` (or share an `Arc`
/// with a worker that owns it) and check its allocations afterwards.
macro_rules! forward_device {
    ($($t:ty),*) => {$(
        impl<D: Device + ?Sized> Device for $t {
            fn name(&self) -> String {
                (**self).name()
            }
            fn is_emulator(&self) -> bool {
                (**self).is_emulator()
            }
            fn alloc(&self, bytes: usize) -> Result<Allocation> {
                (**self).alloc(bytes)
            }
            fn free(&self, mem: Allocation) -> Result<()> {
                (**self).free(mem)
            }
            fn upload(&self, mem: &Allocation, offset: usize, data: &[u8]) -> Result<()> {
                (**self).upload(mem, offset, data)
            }
            fn download(&self, mem: &Allocation, offset: usize, out: &mut [u8]) -> Result<()> {
                (**self).download(mem, offset, out)
            }
            fn fill(&self, mem: &Allocation, pattern: u32) -> Result<()> {
                (**self).fill(mem, pattern)
            }
            unsafe fn launch(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport> {
                // SAFETY: the caller's guarantee, passed on unchanged.
                unsafe { (**self).launch(kernel, cfg, args) }
            }
            fn synchronize(&self) -> Result<()> {
                (**self).synchronize()
            }
            fn record(&self) -> Result<Timestamp> {
                (**self).record()
            }
            fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64> {
                (**self).elapsed_ms(start, end)
            }
            fn max_dynamic_shared_bytes(&self) -> u32 {
                (**self).max_dynamic_shared_bytes()
            }
            fn sm_count(&self) -> u32 {
                (**self).sm_count()
            }
            fn encode_tensor_map(&self, spec: &TensorMapSpec) -> Result<TensorMap> {
                (**self).encode_tensor_map(spec)
            }
        }
    )*};
}
forward_device!(&D, Box<D>, std::sync::Arc<D>);
