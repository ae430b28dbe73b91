//! The CUDA backend: a real GPU through cudarc's driver `result`/`sys` layer.
//!
//! cudarc is built with `dynamic-loading`: libcuda is opened on first use, and cudarc panics
//! when it is absent. [`probe`] checks for the library first (without panicking), so every entry
//! point here fails with one clear [`Error::NoGpu`] line on a machine without a driver.
//!
//! Unsafe code is confined to this file: each driver call is wrapped in a method that checks
//! its inputs (buffers must be live allocations of this device, launch arguments must match the
//! kernel's parameter list) before handing pointers to the driver.

use super::tensor_map::{Interleave, L2Promotion, TensorMapElem, TensorMapFill, TensorMapSwizzle};
use super::*;
use crate::kernels::ModuleKey;
use crate::Error;
use cudarc::driver::result as cu;
use cudarc::driver::sys;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::{c_void, CString};

/// The message users see when there is no driver: what is missing and what to use instead.
pub const NO_DRIVER: &str = "no CUDA driver found (libcuda.so not loadable); use --backend emu or `attnjoule estimate`";

/// Dynamic shared memory a kernel may use without opting in.
const DEFAULT_DYNAMIC_SMEM: u32 = 48 * 1024;

fn cuda_err(what: &str, e: cu::DriverError) -> Error {
    let name = e.error_name().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|_| format!("{:?}", e.0));
    Error::Cuda(format!("{what}: {name}"))
}

/// Whether libcuda can be loaded (never panics).
pub fn driver_present() -> bool {
    // SAFETY: `is_culib_present` only tries to dlopen candidate names; it touches no CUDA state.
    // catch_unwind guards against a panic in library-name resolution (it must not abort a CLI).
    std::panic::catch_unwind(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// Checks that the driver loads, initializes, and sees at least one device. The error is one
/// line saying what is missing and what to use instead.
pub fn probe() -> std::result::Result<(), String> {
    if !driver_present() {
        return Err(NO_DRIVER.into());
    }
    cu::init().map_err(|e| format!("CUDA driver present but cuInit failed ({e:?}); use --backend emu"))?;
    // The kernels are CUDA 13.0 cubins/PTX and cudarc binds CUDA 13 symbols (a missing symbol
    // would panic at first use): refuse older drivers with one line instead.
    let mut v = 0i32;
    // SAFETY: writes one int through a valid pointer; the library is loaded (checked above).
    if unsafe { sys::cuDriverGetVersion(&mut v) }.result().is_err() || v < 13000 {
        return Err(format!(
            "the CUDA driver supports CUDA {}.{}; attnjoule's kernels need CUDA 13.0 (driver >= 580); use --backend emu",
            v / 1000,
            (v % 1000) / 10
        ));
    }
    match cu::device::get_count() {
        Ok(n) if n > 0 => Ok(()),
        Ok(_) => Err("CUDA driver present but no GPU visible; use --backend emu or `attnjoule estimate`".into()),
        Err(e) => Err(format!("CUDA driver present but cuDeviceGetCount failed ({e:?}); use --backend emu")),
    }
}

/// Number of visible CUDA devices (0 without a driver).
pub fn device_count() -> usize {
    if probe().is_err() {
        return 0;
    }
    cu::device::get_count().map(|n| n.max(0) as usize).unwrap_or(0)
}

/// A kernel function handle and the dynamic shared memory limit set on it so far.
struct Func {
    f: sys::CUfunction,
    smem_limit: u32,
    /// Byte sizes of the kernel's parameters (from cuFuncGetParamInfo; None if the driver is too
    /// old to tell).
    param_sizes: Option<Vec<usize>>,
}

struct State {
    modules: HashMap<ModuleKey, sys::CUmodule>,
    funcs: HashMap<(ModuleKey, String), Func>,
    /// Live allocations: device address -> bytes.
    allocs: HashMap<u64, usize>,
    events: Vec<sys::CUevent>,
}

/// One GPU: its primary context, modules loaded from the embedded cubins, live allocations and
/// timing events. Not `Send`: create one per thread (one worker per GPU).
pub struct CudaDevice {
    ordinal: usize,
    dev: sys::CUdevice,
    ctx: sys::CUcontext,
    name: String,
    sm_count: u32,
    max_smem_optin: u32,
    l2_bytes: usize,
    total_mem: usize,
    state: RefCell<State>,
    /// cuBLAS, made by the first GEMM.
    blas: RefCell<Option<Cublas>>,
}

impl CudaDevice {
    /// Retains the primary context of device `ordinal` and reads its attributes.
    pub fn new(ordinal: usize) -> Result<Self> {
        probe().map_err(Error::NoGpu)?;
        let count = cu::device::get_count().map_err(|e| cuda_err("cuDeviceGetCount", e))?;
        if ordinal >= count as usize {
            return Err(Error::NoGpu(format!("CUDA device {ordinal} does not exist ({count} visible)")));
        }
        let dev = cu::device::get(ordinal as i32).map_err(|e| cuda_err("cuDeviceGet", e))?;
        let attr = |a: sys::CUdevice_attribute| {
            // SAFETY: `dev` came from cuDeviceGet.
            unsafe { cu::device::get_attribute(dev, a) }.map_err(|e| cuda_err("cuDeviceGetAttribute", e))
        };
        let sm_count = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let max_smem_optin =
            attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32;
        let l2_bytes = attr(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)?.max(0) as usize;
        let name = cu::device::get_name(dev).map_err(|e| cuda_err("cuDeviceGetName", e))?;
        // SAFETY: `dev` came from cuDeviceGet.
        let total_mem = unsafe { cu::device::total_mem(dev) }.map_err(|e| cuda_err("cuDeviceTotalMem", e))?;
        // The context last (the queries above need none): an error before this point cannot leak
        // a primary-context reference, and Drop releases this one.
        // SAFETY: `dev` came from cuDeviceGet.
        let ctx = unsafe { cu::primary_ctx::retain(dev) }.map_err(|e| cuda_err("cuDevicePrimaryCtxRetain", e))?;
        // SAFETY: `ctx` is the live primary context just retained.
        if let Err(e) = unsafe { cu::ctx::set_current(ctx) } {
            // SAFETY: releases the reference retained just above.
            let _ = unsafe { cu::primary_ctx::release(dev) };
            return Err(cuda_err("cuCtxSetCurrent", e));
        }
        Ok(CudaDevice {
            ordinal,
            dev,
            ctx,
            name,
            sm_count,
            max_smem_optin,
            l2_bytes,
            total_mem,
            state: RefCell::new(State {
                modules: HashMap::new(),
                funcs: HashMap::new(),
                allocs: HashMap::new(),
                events: Vec::new(),
            }),
            blas: RefCell::new(None),
        })
    }

    pub fn ordinal(&self) -> usize {
        self.ordinal
    }

    /// The L2 cache size the driver reports, in bytes.
    pub fn l2_bytes(&self) -> usize {
        self.l2_bytes
    }

    /// Compute capability (major, minor).
    pub fn compute_capability(&self) -> Result<(u32, u32)> {
        let a = |x| {
            // SAFETY: `self.dev` came from cuDeviceGet.
            unsafe { cu::device::get_attribute(self.dev, x) }.map_err(|e| cuda_err("cuDeviceGetAttribute", e))
        };
        Ok((
            a(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)? as u32,
            a(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)? as u32,
        ))
    }

    /// The GPU's UUID as NVML spells it ("GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx").
    pub fn uuid(&self) -> Result<String> {
        let u = cu::device::get_uuid(self.dev).map_err(|e| cuda_err("cuDeviceGetUuid", e))?;
        let b: Vec<u8> = u.bytes.iter().map(|&c| c as u8).collect();
        let hex = |r: std::ops::Range<usize>| b[r].iter().map(|x| format!("{x:02x}")).collect::<String>();
        Ok(format!("GPU-{}-{}-{}-{}-{}", hex(0..4), hex(4..6), hex(6..8), hex(8..10), hex(10..16)))
    }

    /// (free, total) device memory in bytes.
    pub fn mem_info(&self) -> Result<(usize, usize)> {
        self.bind()?;
        cu::mem_get_info().map_err(|e| cuda_err("cuMemGetInfo", e))
    }

    pub fn total_memory(&self) -> usize {
        self.total_mem
    }

    /// The driver's CUDA version as "major.minor".
    pub fn driver_version(&self) -> Result<String> {
        let mut v = 0i32;
        // SAFETY: writes one int through a valid pointer.
        unsafe { sys::cuDriverGetVersion(&mut v) }.result().map_err(|e| cuda_err("cuDriverGetVersion", e))?;
        Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
    }

    /// Destroys every event recorded so far (timestamps from before become invalid). The sweep
    /// calls this between points so that events do not accumulate.
    pub fn reset_events(&self) -> Result<()> {
        self.bind()?;
        let mut st = self.state.borrow_mut();
        for ev in st.events.drain(..) {
            // SAFETY: each event was created by cuEventCreate and is destroyed once (drained).
            unsafe { cu::event::destroy(ev) }.map_err(|e| cuda_err("cuEventDestroy", e))?;
        }
        Ok(())
    }

    /// Raw driver handles for code in this crate that calls other CUDA libraries (cuBLAS).
    pub(crate) fn bind(&self) -> Result<()> {
        // SAFETY: `self.ctx` is the primary context retained in `new` and released only in Drop.
        unsafe { cu::ctx::set_current(self.ctx) }.map_err(|e| cuda_err("cuCtxSetCurrent", e))
    }

    /// Checks that `[offset, offset+len)` lies inside `mem`, a live allocation of this device (an
    /// `Allocation` of another device would name memory this context does not own).
    fn check_range(&self, mem: &Allocation, offset: usize, len: usize) -> Result<()> {
        let (addr, bytes) = (mem.addr(), mem.bytes());
        match self.state.borrow().allocs.get(&addr) {
            Some(&b) if b == bytes => {}
            _ => return Err(Error::Invalid(format!("buffer {addr:#x} is not a live allocation of this device"))),
        }
        match offset.checked_add(len) {
            Some(end) if end <= bytes => Ok(()),
            _ => Err(Error::Invalid(format!(
                "access [{offset}, {offset}+{len}) outside buffer {addr:#x} of {bytes} bytes"
            ))),
        }
    }

    /// Loads (once) the module of `kernel` from its cubin, falling back to JIT from the PTX when
    /// the cubin is rejected (a GPU other than sm_90a) or there is none (a module loaded at run
    /// time), and returns the function handle.
    fn function(&self, kernel: &KernelRef) -> Result<sys::CUfunction> {
        let key = (kernel.module_key(), kernel.entry().to_string());
        if let Some(f) = self.state.borrow().funcs.get(&key) {
            return Ok(f.f);
        }
        let module = self.module(kernel)?;
        let cname = CString::new(kernel.entry()).map_err(|_| Error::KernelNotFound(kernel.entry().into()))?;
        // SAFETY: `module` is a loaded, not yet unloaded module of this context.
        let f = unsafe { cu::module::get_function(module, cname) }
            .map_err(|e| cuda_err(&format!("cuModuleGetFunction {}::{}", kernel.module_name(), kernel.entry()), e))?;
        let param_sizes = param_sizes(f);
        self.state.borrow_mut().funcs.insert(key, Func { f, smem_limit: DEFAULT_DYNAMIC_SMEM, param_sizes });
        Ok(f)
    }

    fn module(&self, kernel: &KernelRef) -> Result<sys::CUmodule> {
        if let Some(&h) = self.state.borrow().modules.get(&kernel.module_key()) {
            return Ok(h);
        }
        let cubin = kernel.embedded().map_or(&[][..], |m| m.cubin);
        let name = kernel.module_name();
        let loaded = if cubin.is_empty() {
            Err(None)
        } else {
            // include_bytes! gives no alignment guarantee; the driver reads the ELF image with
            // its natural (8-byte) alignment, so hand it an aligned copy.
            let mut image = vec![0u64; cubin.len().div_ceil(8)];
            // SAFETY: `image` has at least `cubin.len()` bytes; the regions do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(cubin.as_ptr(), image.as_mut_ptr() as *mut u8, cubin.len()) };
            // SAFETY: `image` is a complete ELF cubin built by build.rs, alive for the call (the
            // driver copies it).
            unsafe { cu::module::load_data(image.as_ptr() as *const c_void) }.map_err(Some)
        };
        let h = match loaded {
            Ok(h) => h,
            Err(cubin_err) => {
                let ptx =
                    CString::new(kernel.ptx()).map_err(|_| Error::Cuda(format!("module {name}: PTX has a NUL")))?;
                // SAFETY: `ptx` is NUL-terminated PTX text, which cuModuleLoadData accepts.
                unsafe { cu::module::load_data(ptx.as_ptr() as *const c_void) }.map_err(|e| {
                    cuda_err(
                        &format!("module {name}: no cubin or cubin rejected ({cubin_err:?}), and PTX JIT failed"),
                        e,
                    )
                })?
            }
        };
        self.state.borrow_mut().modules.insert(kernel.module_key(), h);
        Ok(h)
    }

    /// Opts `kernel` in to `bytes` of dynamic shared memory when it needs more than 48 KB.
    fn ensure_smem(&self, kernel: &KernelRef, f: sys::CUfunction, bytes: u32) -> Result<()> {
        if bytes <= DEFAULT_DYNAMIC_SMEM {
            return Ok(());
        }
        if bytes > self.max_smem_optin {
            return Err(Error::Invalid(format!(
                "{}::{} asks for {bytes} bytes of dynamic shared memory; this GPU allows {}",
                kernel.module_name(),
                kernel.entry(),
                self.max_smem_optin
            )));
        }
        let mut st = self.state.borrow_mut();
        let func =
            st.funcs.get_mut(&(kernel.module_key(), kernel.entry().to_string())).expect("function cached before smem");
        if func.smem_limit < bytes {
            // SAFETY: `f` is a live function handle of a loaded module.
            unsafe {
                cu::function::set_function_attribute(
                    f,
                    sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                    bytes as i32,
                )
            }
            .map_err(|e| cuda_err("cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES)", e))?;
            func.smem_limit = bytes;
        }
        Ok(())
    }

    fn event(&self, ts: Timestamp) -> Result<sys::CUevent> {
        self.state
            .borrow()
            .events
            .get(ts.0 as usize)
            .copied()
            .ok_or_else(|| Error::Invalid(format!("timestamp {} is not an event of this device", ts.0)))
    }

    /// bf16 GEMM C[m,n] = A[m,k] · B[k,n] (row-major, f32 accumulate) through cuBLAS, enqueued on
    /// the device's stream (the calibration points). The cuBLAS handle is made on first use and
    /// kept with the device.
    pub fn gemm_bf16(&self, (m, n, k): (usize, usize, usize), [a, b, c]: [&DevBuf; 3]) -> Result<()> {
        for (buf, elems) in [(a, m * k), (b, k * n), (c, m * n)] {
            // Refuses buffers of another device (not in this one's allocations) and short ones.
            self.check_range(&buf.mem, 0, 2 * elems)?;
        }
        self.bind()?;
        self.cublas()?;
        let blas = self.blas.borrow();
        blas.as_ref().expect("made by cublas()").gemm_bf16(m, n, k, a.addr(), b.addr(), c.addr())
    }

    /// Makes the cuBLAS handle unless it exists: fails (one line) where libcublas is missing,
    /// before a GEMM point allocates its sets.
    pub fn cublas(&self) -> Result<()> {
        if self.blas.borrow().is_none() {
            *self.blas.borrow_mut() = Some(Cublas::new(self)?);
        }
        Ok(())
    }
}

/// `cuTensorMapEncodeTiled` on `spec` as it is, without [`TensorMapSpec::validate`] first (the
/// GPU tests hold the crate's rules to the driver's with it). Needs a loaded driver ([`probe`]).
pub fn encode_with_driver(spec: &TensorMapSpec) -> Result<TensorMap> {
    use sys::CUtensorMapDataType as T;
    probe().map_err(Error::NoGpu)?;
    let r = spec.rank();
    if r == 0 || spec.strides.len() + 1 != r || spec.box_dims.len() != r || spec.element_strides.len() != r {
        return Err(Error::Invalid("tensor map arrays of inconsistent lengths".into()));
    }
    let dtype = match spec.elem {
        TensorMapElem::U8 => T::CU_TENSOR_MAP_DATA_TYPE_UINT8,
        TensorMapElem::U16 => T::CU_TENSOR_MAP_DATA_TYPE_UINT16,
        TensorMapElem::U32 => T::CU_TENSOR_MAP_DATA_TYPE_UINT32,
        TensorMapElem::I32 => T::CU_TENSOR_MAP_DATA_TYPE_INT32,
        TensorMapElem::U64 => T::CU_TENSOR_MAP_DATA_TYPE_UINT64,
        TensorMapElem::I64 => T::CU_TENSOR_MAP_DATA_TYPE_INT64,
        TensorMapElem::F16 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT16,
        TensorMapElem::F32 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT32,
        TensorMapElem::F64 => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT64,
        TensorMapElem::Bf16 => T::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
        TensorMapElem::F32Ftz => T::CU_TENSOR_MAP_DATA_TYPE_FLOAT32_FTZ,
        TensorMapElem::Tf32 => T::CU_TENSOR_MAP_DATA_TYPE_TFLOAT32,
        TensorMapElem::Tf32Ftz => T::CU_TENSOR_MAP_DATA_TYPE_TFLOAT32_FTZ,
    };
    let interleave = match spec.interleave {
        Interleave::None => sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_NONE,
        Interleave::B16 => sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_16B,
        Interleave::B32 => sys::CUtensorMapInterleave::CU_TENSOR_MAP_INTERLEAVE_32B,
    };
    let swizzle = match spec.swizzle {
        TensorMapSwizzle::None => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_NONE,
        TensorMapSwizzle::B32 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_32B,
        TensorMapSwizzle::B64 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_64B,
        TensorMapSwizzle::B128 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B,
        TensorMapSwizzle::B128Atom32 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B_ATOM_32B,
        TensorMapSwizzle::B128Atom32Flip8 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B_ATOM_32B_FLIP_8B,
        TensorMapSwizzle::B128Atom64 => sys::CUtensorMapSwizzle::CU_TENSOR_MAP_SWIZZLE_128B_ATOM_64B,
    };
    let l2 = match spec.l2_promotion {
        L2Promotion::None => sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_NONE,
        L2Promotion::B64 => sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_64B,
        L2Promotion::B128 => sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
        L2Promotion::B256 => sys::CUtensorMapL2promotion::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
    };
    let oob = match spec.fill {
        TensorMapFill::Zero => sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        TensorMapFill::Nan => sys::CUtensorMapFloatOOBfill::CU_TENSOR_MAP_FLOAT_OOB_FILL_NAN_REQUEST_ZERO_FMA,
    };
    // The map is written into cudarc's CUtensorMap (128-byte aligned; cuda.h asks 64).
    let mut map = sys::CUtensorMap { opaque: [0; 16] };
    let (dims, strides) = (spec.dims.as_slice(), spec.strides.as_slice());
    let (boxd, es) = (spec.box_dims.as_slice(), spec.element_strides.as_slice());
    // SAFETY: `map` is writable and aligned; `dims`, `box_dims` and `element_strides` hold
    // `rank` values and `strides` `rank - 1` (checked above), the counts the driver reads
    // through these pointers. The global address is only recorded in the map, not
    // dereferenced here.
    unsafe {
        sys::cuTensorMapEncodeTiled(
            &mut map,
            dtype,
            spec.rank() as u32,
            spec.addr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxd.as_ptr(),
            es.as_ptr(),
            interleave,
            swizzle,
            l2,
            oob,
        )
    }
    .result()
    .map_err(|e| cuda_err("cuTensorMapEncodeTiled", e))?;
    let mut bytes = [0u8; 128];
    for (b, w) in bytes.chunks_exact_mut(8).zip(map.opaque) {
        b.copy_from_slice(&w.to_le_bytes());
    }
    Ok(TensorMap(bytes))
}

/// 128 bytes of kernel-parameter storage, aligned like the most-aligned parameter type.
#[derive(Clone, Copy)]
#[repr(C, align(128))]
struct ParamChunk([u8; 128]);

/// The byte size of each kernel parameter, from cuFuncGetParamInfo (CUDA 12.4+). None when the
/// driver cannot tell, in which case launches are not checked against the parameter list.
fn param_sizes(f: sys::CUfunction) -> Option<Vec<usize>> {
    let mut sizes = Vec::new();
    for i in 0..4096 {
        let (mut off, mut size) = (0usize, 0usize);
        // SAFETY: `f` is a live function; the outputs are valid pointers. An index past the last
        // parameter returns CUDA_ERROR_INVALID_VALUE.
        // catch_unwind: cudarc panics when an older driver lacks the symbol.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| unsafe {
            sys::cuFuncGetParamInfo(f, i, &mut off, &mut size)
        }))
        .ok()?;
        match r {
            sys::CUresult::CUDA_SUCCESS => sizes.push(size),
            sys::CUresult::CUDA_ERROR_INVALID_VALUE => return Some(sizes),
            _ => return None,
        }
    }
    None
}

impl Device for CudaDevice {
    fn name(&self) -> String {
        format!("{} (CUDA device {})", self.name, self.ordinal)
    }
    fn is_emulator(&self) -> bool {
        false
    }
    fn alloc(&self, bytes: usize) -> Result<Allocation> {
        self.bind()?;
        // SAFETY: plain allocation; freed in `free` (a DevBuf's Drop) or this device's Drop.
        let ptr =
            unsafe { cu::malloc_sync(bytes.max(1)) }.map_err(|e| cuda_err(&format!("cuMemAlloc({bytes} bytes)"), e))?;
        self.state.borrow_mut().allocs.insert(ptr, bytes);
        Ok(Allocation::new(ptr, bytes))
    }
    fn free(&self, mem: Allocation) -> Result<()> {
        self.check_range(&mem, 0, 0)?;
        self.bind()?;
        // Launches are asynchronous and a buffer may be dropped right after the launch that uses
        // it: wait for the stream first, so no kernel still running touches freed memory. Its
        // error (a sticky fault) is not this free's: the memory is released regardless.
        let _ = cu::ctx::synchronize();
        self.state.borrow_mut().allocs.remove(&mem.addr());
        // SAFETY: a live allocation of this context (checked), idle (synchronized), removed from
        // the map so that Drop does not free it again.
        unsafe { cu::free_sync(mem.addr()) }.map_err(|e| cuda_err("cuMemFree", e))
    }
    fn upload(&self, mem: &Allocation, offset: usize, data: &[u8]) -> Result<()> {
        self.check_range(mem, offset, data.len())?;
        if data.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the destination range lies inside a live allocation (checked above).
        unsafe { cu::memcpy_htod_sync(mem.addr() + offset as u64, data) }.map_err(|e| cuda_err("cuMemcpyHtoD", e))
    }
    fn download(&self, mem: &Allocation, offset: usize, out: &mut [u8]) -> Result<()> {
        self.check_range(mem, offset, out.len())?;
        if out.is_empty() {
            return Ok(());
        }
        self.bind()?;
        // SAFETY: the source range lies inside a live allocation (checked above).
        unsafe { cu::memcpy_dtoh_sync(out, mem.addr() + offset as u64) }.map_err(|e| cuda_err("cuMemcpyDtoH", e))
    }
    fn fill(&self, mem: &Allocation, pattern: u32) -> Result<()> {
        self.check_range(mem, 0, mem.bytes())?;
        self.bind()?;
        let words = mem.bytes() / 4;
        if words > 0 {
            // SAFETY: `words * 4 <= bytes` of a live allocation; cuMemAlloc addresses are 256-aligned.
            unsafe { sys::cuMemsetD32_v2(mem.addr(), pattern, words) }
                .result()
                .map_err(|e| cuda_err("cuMemsetD32", e))?;
        }
        // A tail shorter than a word gets the pattern's leading bytes (little-endian order).
        let tail = mem.bytes() % 4;
        if tail > 0 {
            self.upload(mem, words * 4, &pattern.to_le_bytes()[..tail])?;
        }
        Ok(())
    }
    unsafe fn launch(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport> {
        self.bind()?;
        let f = self.function(kernel)?;
        if let Some(sizes) = &self.state.borrow().funcs[&(kernel.module_key(), kernel.entry().to_string())].param_sizes
        {
            let given: Vec<usize> = args.iter().map(|a| a.len()).collect();
            if &given != sizes {
                return Err(Error::Invalid(format!(
                    "{}::{} takes parameters of {sizes:?} bytes, given {given:?}",
                    kernel.module_name(),
                    kernel.entry()
                )));
            }
        }
        self.ensure_smem(kernel, f, cfg.dynamic_shared_bytes)?;
        // Each argument is copied into 128-byte-aligned storage (by-value structs may hold u64, and
        // a CUtensorMap parameter is declared `.align 128`; the driver reads them with their
        // natural alignment); `ptrs` is the void** array.
        let mut storage: Vec<Vec<ParamChunk>> =
            args.iter().map(|a| vec![ParamChunk([0; 128]); a.len().div_ceil(128).max(1)]).collect();
        for (dst, a) in storage.iter_mut().zip(args) {
            // SAFETY: `dst` has at least `a.len()` bytes; the regions do not overlap.
            unsafe { std::ptr::copy_nonoverlapping(a.as_ptr(), dst.as_mut_ptr() as *mut u8, a.len()) };
        }
        let mut ptrs: Vec<*mut c_void> = storage.iter_mut().map(|s| s.as_mut_ptr() as *mut c_void).collect();
        let [gx, gy, gz] = cfg.grid;
        let [bx, by, bz] = cfg.block;
        // SAFETY: `f` is a live function; `ptrs` holds one pointer per kernel parameter, each to a
        // buffer of the parameter's size (checked against cuFuncGetParamInfo when available), alive
        // until cuLaunchKernel returns (the driver copies parameters at launch). The device
        // addresses inside the parameters are the caller's contract (Device::launch).
        unsafe {
            cu::launch_kernel(f, (gx, gy, gz), (bx, by, bz), cfg.dynamic_shared_bytes, std::ptr::null_mut(), &mut ptrs)
        }
        .map_err(|e| {
            cuda_err(
                &format!(
                    "launch {}::{} grid {:?} block {:?}",
                    kernel.module_name(),
                    kernel.entry(),
                    cfg.grid,
                    cfg.block
                ),
                e,
            )
        })?;
        Ok(LaunchReport::default())
    }
    fn synchronize(&self) -> Result<()> {
        self.bind()?;
        cu::ctx::synchronize().map_err(|e| cuda_err("cuCtxSynchronize", e))
    }
    fn record(&self) -> Result<Timestamp> {
        self.bind()?;
        let ev = cu::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT).map_err(|e| cuda_err("cuEventCreate", e))?;
        // SAFETY: `ev` was just created; the null stream is the stream every launch uses.
        unsafe { cu::event::record(ev, std::ptr::null_mut()) }.map_err(|e| cuda_err("cuEventRecord", e))?;
        let mut st = self.state.borrow_mut();
        st.events.push(ev);
        Ok(Timestamp(st.events.len() as u64 - 1))
    }
    fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64> {
        let (a, b) = (self.event(start)?, self.event(end)?);
        self.bind()?;
        // SAFETY: both events are live events of this context, recorded on the same stream.
        unsafe {
            cu::event::synchronize(b).map_err(|e| cuda_err("cuEventSynchronize", e))?;
            cu::event::elapsed(a, b).map(|ms| ms as f64).map_err(|e| cuda_err("cuEventElapsedTime", e))
        }
    }
    fn max_dynamic_shared_bytes(&self) -> u32 {
        self.max_smem_optin
    }
    fn sm_count(&self) -> u32 {
        self.sm_count
    }
    fn encode_tensor_map(&self, spec: &TensorMapSpec) -> Result<TensorMap> {
        spec.validate()?;
        // The map lets a kernel's copies reach every byte of the tensor: it must lie inside one
        // live allocation of this device (the driver does not check; a GPU would read past it).
        let last = spec.elem.bytes() as u64 * spec.dims[0]
            + spec.dims[1..].iter().zip(&spec.strides).map(|(&d, &s)| (d - 1) * s).sum::<u64>();
        let inside =
            self.state.borrow().allocs.iter().any(|(&a, &n)| a <= spec.addr && spec.addr + last <= a + n as u64);
        if !inside {
            return Err(Error::Invalid(format!(
                "tensor map of {last} bytes at {:#x} is not inside one allocation of this device",
                spec.addr
            )));
        }
        self.bind()?;
        encode_with_driver(spec)
    }
}

impl Drop for CudaDevice {
    fn drop(&mut self) {
        // Best effort: errors at teardown have nowhere to go.
        if self.bind().is_err() {
            return;
        }
        let _ = self.reset_events();
        // The cuBLAS handle before the context it lives in.
        drop(self.blas.get_mut().take());
        let st = self.state.get_mut();
        for (addr, _) in st.allocs.drain() {
            // SAFETY: live allocations of this context, each freed once.
            let _ = unsafe { cu::free_sync(addr) };
        }
        for (_, m) in st.modules.drain() {
            // SAFETY: modules loaded by this device, unloaded once; their functions die with them.
            let _ = unsafe { cu::module::unload(m) };
        }
        st.funcs.clear();
        // SAFETY: releases the primary-context reference retained in `new`.
        let _ = unsafe { cu::primary_ctx::release(self.dev) };
    }
}

/// A cuBLAS handle bound to a device's context (for the GEMM calibration point).
struct Cublas {
    handle: cudarc::cublas::sys::cublasHandle_t,
}

impl Cublas {
    fn new(dev: &CudaDevice) -> Result<Self> {
        // SAFETY: only tries to dlopen candidate names.
        let present = std::panic::catch_unwind(|| unsafe { cudarc::cublas::sys::is_culib_present() }).unwrap_or(false);
        if !present {
            return Err(Error::Cuda("cuBLAS (libcublas.so) not loadable: GEMM calibration skipped".into()));
        }
        dev.bind()?;
        let handle =
            cudarc::cublas::result::create_handle().map_err(|e| Error::Cuda(format!("cublasCreate: {e:?}")))?;
        Ok(Cublas { handle })
    }

    fn gemm_bf16(&self, m: usize, n: usize, k: usize, a: u64, b: u64, c: u64) -> Result<()> {
        use cudarc::cublas::sys as bs;
        let (alpha, beta) = (1.0f32, 0.0f32);
        // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: pass B first with n, m swapped.
        // SAFETY: a, b, c are live allocations of at least k·n, m·k, m·n bf16 elements (checked by
        // CudaDevice::gemm_bf16); alpha/beta are host f32 as COMPUTE_32F expects.
        unsafe {
            cudarc::cublas::result::gemm_ex(
                self.handle,
                bs::cublasOperation_t::CUBLAS_OP_N,
                bs::cublasOperation_t::CUBLAS_OP_N,
                n as i32,
                m as i32,
                k as i32,
                &alpha as *const f32 as *const c_void,
                b as *const c_void,
                bs::cudaDataType::CUDA_R_16BF,
                n as i32,
                a as *const c_void,
                bs::cudaDataType::CUDA_R_16BF,
                k as i32,
                &beta as *const f32 as *const c_void,
                c as *mut c_void,
                bs::cudaDataType::CUDA_R_16BF,
                n as i32,
                bs::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                bs::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
            )
        }
        .map_err(|e| Error::Cuda(format!("cublasGemmEx bf16 {m}x{n}x{k}: {e:?}")))
    }
}

impl Drop for Cublas {
    fn drop(&mut self) {
        // SAFETY: the handle was created in `new` and is destroyed once.
        let _ = unsafe { cudarc::cublas::result::destroy_handle(self.handle) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_driver_is_one_line_error() {
        if driver_present() {
            return; // a GPU machine: the GPU tests below cover it
        }
        let e = CudaDevice::new(0).err().expect("no driver here");
        let msg = e.to_string();
        assert!(matches!(e, Error::NoGpu(_)));
        assert!(!msg.contains('\n'), "{msg}");
        assert!(msg.contains("no CUDA driver found") && msg.contains("--backend emu"), "{msg}");
    }

    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn gpu_roundtrip_fill_and_bounds() {
        let d = CudaDevice::new(0).unwrap();
        assert!(d.sm_count() > 0 && d.max_dynamic_shared_bytes() >= 48 * 1024);
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        let data: Vec<u32> = (0..1001u32).map(|i| i.wrapping_mul(2654435761).wrapping_add(seed as u32)).collect();
        let buf = DevBuf::from_slice(&d, &data).unwrap();
        assert_eq!(buf.download_vec::<u32>(data.len()).unwrap(), data);
        buf.fill(0xdeadbeef).unwrap();
        assert!(buf.download_vec::<u32>(data.len()).unwrap().iter().all(|&x| x == 0xdeadbeef));
        assert!(buf.upload(4000, &[0u8; 8]).is_err(), "out of bounds upload must fail");
        assert_eq!(d.state.borrow().allocs.len(), 1);
        drop(buf);
        assert!(d.state.borrow().allocs.is_empty(), "freed on drop");
    }

    #[test]
    #[ignore = "needs a CUDA GPU"]
    fn gpu_dense_matches_reference_and_events_time() {
        use crate::ops::{Attention, Options};
        use crate::work::Variant;
        use crate::{Mask, Problem, Shape};
        let d = CudaDevice::new(0).unwrap();
        let seed = crate::reference::fresh_seed();
        println!("seed {seed}");
        for (shape, mask) in [
            (Shape::prefill(1, 127, 8, 1, 128), Mask::Causal),
            (Shape::prefill(2, 256, 4, 2, 64), Mask::None),
            (Shape::decode(1, 3, 300, 8, 1, 128), Mask::Causal),
        ] {
            let p = Problem::new(shape, mask);
            let att = Attention::new(Variant::Dense, &p, &Options::default()).unwrap();
            let q = crate::reference::random_bf16(shape.q_elems(), seed);
            let k = crate::reference::random_bf16(shape.kv_elems(), seed + 1);
            let v = crate::reference::random_bf16(shape.kv_elems(), seed + 2);
            let host = std::time::Instant::now();
            let t0 = d.record().unwrap();
            let (out, _) = att.run_once(&d, &q, &k, &v).unwrap();
            let t1 = d.record().unwrap();
            let ms = d.elapsed_ms(t0, t1).unwrap();
            // Events lie inside the host interval (run_once synchronizes): positive, in ms.
            let host_ms = host.elapsed().as_secs_f64() * 1e3;
            assert!(ms > 0.0 && ms <= host_ms + 0.5, "events {ms} ms, host {host_ms} ms");
            let r = crate::reference::attention(&p, &q, &k, &v).unwrap();
            let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
            let err = crate::reference::rel_l2(&got, &r.o);
            println!("{shape:?} rel L2 {err:.2e}");
            assert!(err <= 1e-2, "rel L2 {err}");
        }
    }
}
