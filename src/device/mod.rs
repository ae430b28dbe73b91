//! One interface for every launch: allocate, upload, download, fill (poison), launch, synchronize,
//! time. Two backends implement it: [`cuda::CudaDevice`] (a real GPU through cudarc) and
//! [`crate::emu::EmuDevice`] (the CPU emulator executing the nvcc-produced PTX).

pub mod cuda;
pub mod tensor_map;

use crate::kernels::KernelRef;
use crate::Result;
use serde::{Deserialize, Serialize};

/// A device allocation. `addr` is the device address that kernels see (a real GPU pointer on
/// CUDA, a virtual address in the emulator's global space).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevBuf {
    pub addr: u64,
    pub bytes: usize,
}

impl DevBuf {
    /// The address of byte `offset` inside this buffer.
    pub fn at(&self, offset: usize) -> u64 {
        self.addr + offset as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct LaunchConfig {
    pub grid: [u32; 3],
    pub block: [u32; 3],
    pub dynamic_shared_bytes: u32,
}

impl LaunchConfig {
    pub fn threads_per_block(&self) -> u32 {
        self.block.iter().product()
    }
    pub fn blocks(&self) -> u64 {
        self.grid.iter().map(|&g| g as u64).product()
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
    /// racecheck: two threads touch the same shared bytes between barriers, one writes
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
    /// racecheck (async proxy): shared bytes a bulk/tensor copy wrote read before the reading
    /// warp observed the mbarrier phase that completes the copy
    AsyncRace,
    /// a bulk tensor copy or prefetch with an operand that is not a valid tensor map
    InvalidTensorMap,
    /// setmaxnreg misuse: part of a warp or warpgroup, or a count moving the wrong way
    RegisterReconfig,
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
}

/// A kernel argument's bytes, laid out as the kernel's `.param` expects (a by-value struct, a
/// pointer as u64, an i32 ...).
pub type KernelArg<'a> = &'a [u8];

/// Opaque timestamp from [`Device::record`].
#[derive(Debug, Clone, Copy)]
pub struct Timestamp(pub u64);

pub trait Device {
    /// A one-line description (GPU name, or "CPU emulator (N threads)").
    fn name(&self) -> String;
    fn is_emulator(&self) -> bool;
    fn alloc(&self, bytes: usize) -> Result<DevBuf>;
    fn free(&self, buf: DevBuf) -> Result<()>;
    /// Copies `data` into `buf` starting at byte `offset`.
    fn upload(&self, buf: &DevBuf, offset: usize, data: &[u8]) -> Result<()>;
    /// Copies `out.len()` bytes from `buf` starting at byte `offset`.
    fn download(&self, buf: &DevBuf, offset: usize, out: &mut [u8]) -> Result<()>;
    /// Fills the whole buffer with a repeated 32-bit pattern (poisoning outputs before a run).
    fn fill(&self, buf: &DevBuf, pattern: u32) -> Result<()>;
    /// Launches `kernel`. On CUDA this is asynchronous and the report is empty; the emulator runs
    /// the kernel to completion and reports sanitizer findings and counters.
    fn launch(&self, kernel: KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport>;
    fn synchronize(&self) -> Result<()>;
    /// Records a timestamp in the device's stream (a CUDA event; wall clock in the emulator).
    fn record(&self) -> Result<Timestamp>;
    /// Milliseconds between two timestamps (synchronizes on `end`).
    fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64>;
    /// Opt-in dynamic shared memory above 48 KB and the device's per-block limit.
    fn max_dynamic_shared_bytes(&self) -> u32;
    /// Streaming multiprocessors (the emulator reports the H100's 132 so heuristics match).
    fn sm_count(&self) -> u32;
}

/// Host helpers over any device.
pub trait DeviceExt: Device {
    fn upload_new<T: bytemuck_like::Pod>(&self, data: &[T]) -> Result<DevBuf> {
        let bytes = bytemuck_like::as_bytes(data);
        let buf = self.alloc(bytes.len().max(1))?;
        if let Err(e) = self.upload(&buf, 0, bytes) {
            // Do not leak the allocation on a failed copy.
            let _ = self.free(buf);
            return Err(e);
        }
        Ok(buf)
    }
    fn download_vec<T: bytemuck_like::Pod + Default + Clone>(&self, buf: &DevBuf, n: usize) -> Result<Vec<T>> {
        let mut v = vec![T::default(); n];
        self.download(buf, 0, bytemuck_like::as_bytes_mut(&mut v))?;
        Ok(v)
    }
}
impl<D: Device + ?Sized> DeviceExt for D {}

/// Minimal plain-old-data byte views for the element types this crate moves.
pub mod bytemuck_like {
    /// # Safety
    /// Implementors are plain data: every bit pattern is valid and there is no padding.
    pub unsafe trait Pod: Copy + 'static {}
    unsafe impl Pod for u8 {}
    unsafe impl Pod for u16 {}
    unsafe impl Pod for i32 {}
    unsafe impl Pod for u32 {}
    unsafe impl Pod for f32 {}
    unsafe impl Pod for u64 {}
    unsafe impl Pod for half::bf16 {}
    unsafe impl Pod for half::f16 {}

    pub fn as_bytes<T: Pod>(v: &[T]) -> &[u8] {
        // SAFETY: T is Pod (no padding), so its bytes are initialized; the length is exact.
        unsafe { std::slice::from_raw_parts(v.as_ptr() as *const u8, std::mem::size_of_val(v)) }
    }
    pub fn as_bytes_mut<T: Pod>(v: &mut [T]) -> &mut [u8] {
        // SAFETY: as above, and every bit pattern is a valid T, so writes through bytes are sound.
        unsafe { std::slice::from_raw_parts_mut(v.as_mut_ptr() as *mut u8, std::mem::size_of_val(v)) }
    }
}
