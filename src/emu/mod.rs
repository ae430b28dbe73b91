//! The CPU emulator: a [`Device`] that executes the PTX nvcc produced for this crate's kernels,
//! with a sanitizer (memcheck, initcheck, racecheck, synccheck) and Nsight-style counters.
//!
//! - [`parse`]: hand-written PTX parser lowering each `.entry` to [`ir`] once per module.
//! - [`regalloc`]: liveness over the kernel's control-flow graph; virtual registers whose live
//!   ranges do not overlap share a register slot (keeps a warp's registers cache-resident).
//! - [`exec`]: warp-synchronous execution of one block (reconvergence rule documented there).
//! - [`memory`]: global allocations with unmapped gaps; [`sanitizer`]: shadow state;
//!   [`clocks`]: racecheck's vector clocks (happens-before);
//!   [`counters`]: bank-conflict and sector model.
//!
//! Blocks run in parallel on rayon's pool; each block is executed by one worker from start to
//! end, so results (other than the order of float atomics) do not depend on the thread count.

pub mod clocks;
pub mod counters;
pub mod exec;
pub mod ir;
pub mod memory;
pub mod parse;
pub mod regalloc;
pub mod sanitizer;
pub mod tensor_map;
#[cfg(test)]
mod tests;

use crate::device::tensor_map::{TensorMap, TensorMapSpec};
use crate::device::{Allocation, Counters, Device, KernelArg, LaunchConfig, LaunchReport, Timestamp};
use crate::error::{Error, Result};
use crate::kernels::{KernelRef, ModuleKey};
use exec::{run_block, LaunchCtx, Scratch};
use ir::Kernel;
use memory::GlobalMem;
use rayon::prelude::*;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Findings kept per launch (all are counted in `findings_total`).
pub const MAX_FINDINGS: usize = 256;

/// Blocks launched together before their results are summed (bounds a launch's memory by this,
/// not by its grid).
const BLOCKS_PER_CHUNK: u64 = 1 << 14;

/// Opt-in dynamic shared memory per block on H100 (227 KB).
pub const MAX_SHARED: u32 = 232_448;

#[derive(Debug, Clone, Copy)]
pub struct EmuOptions {
    /// memcheck / initcheck / racecheck / synccheck (on by default).
    pub sanitize: bool,
    /// Nsight-style counters (on by default).
    pub counters: bool,
    /// Worker threads (None: rayon's global pool).
    pub threads: Option<usize>,
    /// A launch still running at this instant stops with an error (None: no limit). The work of
    /// an emulated call grows with its size, which memory alone does not bound in time.
    pub deadline: Option<Instant>,
}

impl Default for EmuOptions {
    fn default() -> Self {
        EmuOptions { sanitize: true, counters: true, threads: None, deadline: None }
    }
}

pub struct EmuDevice {
    mem: GlobalMem,
    modules: Mutex<HashMap<ModuleKey, Arc<parse::LoweredModule>>>,
    opts: EmuOptions,
    pool: Option<rayon::ThreadPool>,
    t0: Instant,
}

impl Default for EmuDevice {
    fn default() -> Self {
        Self::new()
    }
}

/// Host bytes the emulator holds for `device_bytes` of device allocations: the data itself plus
/// the one-bit-per-byte initcheck shadow (1/8 more). For refusing a call up front, with the GiB it
/// needs, instead of failing an allocation midway (or aborting on out-of-memory).
pub fn host_bytes_for(device_bytes: u128) -> u128 {
    device_bytes.saturating_add(device_bytes.div_ceil(8))
}

/// This machine's memory in bytes (`MemTotal` of /proc/meminfo), when the OS tells.
pub fn host_memory_bytes() -> Option<u128> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u128 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Refuses a memory allowance (`what`, bytes of emulated device memory) beyond this machine's
/// memory: the emulator holds device memory on the host, and asking for more than the machine has
/// ends with the OS killing the process, not with an error.
pub fn check_host_memory(device_bytes: u128, what: &str) -> Result<()> {
    match host_memory_bytes() {
        Some(have) if host_bytes_for(device_bytes) > have => Err(Error::Invalid(format!(
            "{what}: emulating {:.1} GiB of device memory needs more than this machine's {:.1} GiB",
            device_bytes as f64 / (1u64 << 30) as f64,
            have as f64 / (1u64 << 30) as f64
        ))),
        _ => Ok(()),
    }
}

/// Most worker threads an emulator may have: this machine's cores times [`THREADS_PER_CORE`]
/// (more only adds switching; thousands exhaust the process).
pub fn max_threads() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get()) * THREADS_PER_CORE
}

/// Threads per core the emulator may use (a few more than cores hides a stalled thread).
pub const THREADS_PER_CORE: usize = 4;

impl EmuDevice {
    pub fn new() -> Self {
        Self::with_options(EmuOptions::default()).unwrap_or_else(|_| EmuDevice {
            mem: GlobalMem::new(),
            modules: Mutex::new(HashMap::new()),
            opts: EmuOptions::default(),
            pool: None,
            t0: Instant::now(),
        })
    }
    pub fn with_options(opts: EmuOptions) -> Result<Self> {
        let pool = match opts.threads {
            Some(0) => return Err(Error::Invalid("the emulator needs at least 1 thread, not 0".into())),
            Some(n) if n > max_threads() => {
                return Err(Error::Invalid(format!(
                    "{n} emulator threads: at most {} on this machine ({THREADS_PER_CORE} per core)",
                    max_threads()
                )))
            }
            Some(n) => Some(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(n)
                    .build()
                    .map_err(|e| Error::Emu(format!("thread pool: {e}")))?,
            ),
            None => None,
        };
        Ok(EmuDevice { mem: GlobalMem::new(), modules: Mutex::new(HashMap::new()), opts, pool, t0: Instant::now() })
    }
    pub fn options(&self) -> EmuOptions {
        self.opts
    }

    /// The lowered kernel for `k` (module parsed once, cached; its `.global` variables placed in
    /// this device's memory then, where they stay until the device is dropped).
    pub fn kernel(&self, k: &KernelRef) -> Result<Arc<Kernel>> {
        let module = {
            let mut cache = self.modules.lock().map_err(|_| Error::Emu("module cache poisoned".into()))?;
            cache
                .entry(k.module_key())
                .or_insert_with(|| Arc::new(parse::lower_module_in(k.ptx(), true, Some(&mut DevGlobals(&self.mem)))))
                .clone()
        };
        let (m, e) = (k.module_name(), k.entry());
        match module.get(e) {
            Some(Ok(kern)) => Ok(kern.clone()),
            Some(Err(err)) => Err(Error::Emu(format!("cannot run {m}::{e}: {err}"))),
            None => Err(Error::Emu(format!("entry {e} not found in the PTX of module {m}"))),
        }
    }
    /// Live allocations and their bytes: what a leak check compares before and after.
    pub fn live_allocations(&self) -> (usize, u64) {
        self.mem.live()
    }

    /// Runs `kernel` to completion: [`Device::launch`] without its safety contract, which the
    /// emulator does not need. Every global, shared and local access is checked against the
    /// allocations and the block's shared memory (a fault or a memcheck finding, never a host
    /// access outside them), so wrong pointers or sizes are reported, not undefined.
    pub fn run_kernel(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport> {
        let k = self.kernel(kernel)?;
        self.launch_kernel(&k, cfg, args, kernel.resources().map(|r| r.registers))
    }

    /// Runs a lowered kernel to completion. `regs_per_thread`: ptxas's register count (known for
    /// embedded modules), the start of `setmaxnreg`'s register pool.
    fn launch_kernel(
        &self,
        k: &Kernel,
        cfg: LaunchConfig,
        args: &[KernelArg],
        regs_per_thread: Option<u32>,
    ) -> Result<LaunchReport> {
        if args.len() != k.params.len() {
            return Err(Error::Emu(format!("{} takes {} parameters, {} given", k.name, k.params.len(), args.len())));
        }
        let mut params = vec![0u8; k.param_bytes as usize];
        for (j, (a, p)) in args.iter().zip(&k.params).enumerate() {
            if a.len() != p.size as usize {
                return Err(Error::Emu(format!(
                    "{} parameter {j} is {} bytes in the PTX, {} bytes given",
                    k.name,
                    p.size,
                    a.len()
                )));
            }
            params[p.offset as usize..p.offset as usize + a.len()].copy_from_slice(a);
        }
        let nthreads = cfg.threads_per_block();
        // CUDA's limits: 1..=1024 threads a block, grids of at most 2^31-1 x 65535 x 65535.
        let grid_ok = cfg.grid[0] <= i32::MAX as u32 && cfg.grid[1] <= 65535 && cfg.grid[2] <= 65535;
        if nthreads == 0 || nthreads > 1024 || cfg.grid.contains(&0) || !grid_ok {
            return Err(Error::Emu(format!(
                "launch of {} with grid {:?} block {:?}: a block has 1..=1024 threads, a grid at most \
                 [2147483647, 65535, 65535] blocks",
                k.name, cfg.grid, cfg.block
            )));
        }
        let shared_bytes = k.shared_static + cfg.dynamic_shared_bytes;
        if shared_bytes > MAX_SHARED {
            return Err(Error::Emu(format!(
                "{} needs {shared_bytes} bytes of shared memory (max {MAX_SHARED})",
                k.name
            )));
        }
        let ctx = LaunchCtx {
            k,
            grid: cfg.grid,
            block: cfg.block,
            nthreads,
            nwarps: nthreads.div_ceil(32),
            shared_bytes,
            params,
            mem: self.mem.snapshot(),
            sanitize: self.opts.sanitize,
            counters: self.opts.counters,
            atomic64: &self.mem.atomic64,
            regs_per_thread,
        };
        let nblocks = cfg.blocks();
        let deadline = self.opts.deadline;
        let stopped = |b: u64| Error::Emu(format!("{} stopped at its time limit (block {b} of {nblocks})", k.name));
        // Blocks run in parallel a chunk at a time and are summed in block order (the first
        // error in block order is the launch's, whatever the thread count): memory stays bounded
        // however large the grid, and a deadline stops the launch between blocks.
        let run_chunk = |lo: u64, hi: u64| -> Vec<Result<exec::BlockOut>> {
            (lo..hi)
                .into_par_iter()
                .map_init(Scratch::default, |s, b| {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return Err(stopped(b));
                    }
                    run_block(&ctx, b, s)
                })
                .collect()
        };
        let mut report = LaunchReport::default();
        let mut c = Counters::default();
        let mut lo = 0u64;
        while lo < nblocks {
            let hi = nblocks.min(lo.saturating_add(BLOCKS_PER_CHUNK));
            let outs = match &self.pool {
                Some(p) => p.install(|| run_chunk(lo, hi)),
                None => run_chunk(lo, hi),
            };
            for o in outs {
                let o = o?;
                counters::add(&mut c, &o.counters);
                report.findings_total += o.findings_total;
                for f in o.findings {
                    if report.findings.len() < MAX_FINDINGS {
                        report.findings.push(f);
                    }
                }
            }
            lo = hi;
        }
        if self.opts.counters {
            report.counters = Some(c);
        }
        Ok(report)
    }
}

/// A module's `.global` variables, placed in the device's global memory.
struct DevGlobals<'a>(&'a GlobalMem);

impl parse::ModuleGlobals for DevGlobals<'_> {
    fn alloc(&mut self, bytes: usize, align: u32) -> std::result::Result<u64, String> {
        let a = self.0.alloc(bytes).map_err(|e| e.to_string())?;
        if a % align.max(1) as u64 != 0 {
            return Err(format!("cannot align a module variable to {align} bytes"));
        }
        Ok(a)
    }
    fn write(&mut self, addr: u64, data: &[u8]) -> std::result::Result<(), String> {
        let a = self.0.find(addr, data.len() as u64).map_err(|e| e.to_string())?;
        a.host_write(addr - a.base, data);
        Ok(())
    }
}

impl Device for EmuDevice {
    fn name(&self) -> String {
        let n = self.pool.as_ref().map_or_else(rayon::current_num_threads, |p| p.current_num_threads());
        format!(
            "CPU emulator ({n} threads, sanitizer {}, counters {})",
            if self.opts.sanitize { "on" } else { "off" },
            if self.opts.counters { "on" } else { "off" }
        )
    }
    fn is_emulator(&self) -> bool {
        true
    }
    fn alloc(&self, bytes: usize) -> Result<Allocation> {
        Ok(Allocation::new(self.mem.alloc(bytes)?, bytes))
    }
    fn free(&self, mem: Allocation) -> Result<()> {
        self.mem.free(mem.addr())
    }
    fn upload(&self, mem: &Allocation, offset: usize, data: &[u8]) -> Result<()> {
        let addr = mem.addr() + offset as u64;
        let a = self.mem.find(addr, data.len() as u64)?;
        a.host_write(addr - a.base, data);
        Ok(())
    }
    fn download(&self, mem: &Allocation, offset: usize, out: &mut [u8]) -> Result<()> {
        let addr = mem.addr() + offset as u64;
        let a = self.mem.find(addr, out.len() as u64)?;
        a.host_read(addr - a.base, out);
        Ok(())
    }
    fn fill(&self, mem: &Allocation, pattern: u32) -> Result<()> {
        let a = self.mem.find(mem.addr(), mem.bytes() as u64)?;
        let bytes: Vec<u8> = pattern.to_le_bytes().iter().copied().cycle().take(mem.bytes()).collect();
        a.host_write(mem.addr() - a.base, &bytes);
        Ok(())
    }
    /// Safe to call here: see [`EmuDevice::run_kernel`].
    unsafe fn launch(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport> {
        self.run_kernel(kernel, cfg, args)
    }
    fn synchronize(&self) -> Result<()> {
        Ok(())
    }
    fn record(&self) -> Result<Timestamp> {
        Ok(Timestamp(self.t0.elapsed().as_nanos() as u64))
    }
    fn elapsed_ms(&self, start: Timestamp, end: Timestamp) -> Result<f64> {
        Ok((end.0 as f64 - start.0 as f64) / 1e6)
    }
    fn max_dynamic_shared_bytes(&self) -> u32 {
        MAX_SHARED
    }
    fn sm_count(&self) -> u32 {
        132
    }
    fn encode_tensor_map(&self, spec: &TensorMapSpec) -> Result<TensorMap> {
        Ok(tensor_map::encode(spec)?)
    }
}
