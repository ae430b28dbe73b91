//! A [`Device`] wrapper for tests: the n-th call of one kind fails, so that every error path (out
//! of memory midway, a failed copy, a failed launch) can be driven, and checked for leaks with
//! the emulator's allocation count (`emu::EmuDevice::live_allocations`); or the n-th allocation
//! is never freed, a planted leak that such a check must catch.

use super::{Allocation, Device, KernelArg, LaunchConfig, LaunchReport, Timestamp};
use crate::error::{Error, Result};
use crate::kernels::KernelRef;
use std::cell::Cell;

/// The calls a [`Faulty`] device can fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Call {
    Alloc,
    Upload,
    Download,
    Fill,
    Launch,
}

impl Call {
    pub const ALL: [Call; 5] = [Call::Alloc, Call::Upload, Call::Download, Call::Fill, Call::Launch];
}

/// `inner`, with the `n`-th call (1-based) of one kind failing as CUDA would report it, or with
/// the `n`-th allocation leaked.
pub struct Faulty<D> {
    pub inner: D,
    fail: Option<(Call, usize)>,
    /// The allocation to leak (its number), and its address once made.
    leak: Option<usize>,
    leaked: Cell<Option<u64>>,
    counts: [Cell<usize>; 5],
}

impl<D: Device> Faulty<D> {
    /// Counts calls, fails none.
    pub fn new(inner: D) -> Self {
        Faulty { inner, fail: None, leak: None, leaked: Cell::new(None), counts: Default::default() }
    }
    /// Fails the `n`-th call of kind `call`.
    pub fn failing(inner: D, call: Call, n: usize) -> Self {
        Faulty { fail: Some((call, n)), ..Self::new(inner) }
    }
    /// Never frees the `n`-th allocation: its owner drops it, the inner device keeps it (a
    /// planted leak).
    pub fn leaking(inner: D, n: usize) -> Self {
        Faulty { leak: Some(n), ..Self::new(inner) }
    }
    /// Whether the allocation to leak was made (its free will not reach the inner device).
    pub fn leaked(&self) -> bool {
        self.leaked.get().is_some()
    }
    /// Calls of kind `call` so far (the failed one included).
    pub fn calls(&self, call: Call) -> usize {
        self.counts[call as usize].get()
    }
    fn count(&self, call: Call) -> Result<()> {
        let c = &self.counts[call as usize];
        c.set(c.get() + 1);
        if self.fail == Some((call, c.get())) {
            return Err(Error::Cuda(format!("injected failure of {call:?} call {}", c.get())));
        }
        Ok(())
    }
}

impl<D: Device> Device for Faulty<D> {
    fn name(&self) -> String {
        self.inner.name()
    }
    fn is_emulator(&self) -> bool {
        self.inner.is_emulator()
    }
    fn alloc(&self, bytes: usize) -> Result<Allocation> {
        self.count(Call::Alloc)?;
        let mem = self.inner.alloc(bytes)?;
        if self.leak == Some(self.calls(Call::Alloc)) {
            self.leaked.set(Some(mem.addr()));
        }
        Ok(mem)
    }
    fn free(&self, mem: Allocation) -> Result<()> {
        if self.leaked.get() == Some(mem.addr()) {
            return Ok(()); // the planted leak: the inner device never hears of it
        }
        self.inner.free(mem)
    }
    fn upload(&self, mem: &Allocation, offset: usize, data: &[u8]) -> Result<()> {
        self.count(Call::Upload)?;
        self.inner.upload(mem, offset, data)
    }
    fn download(&self, mem: &Allocation, offset: usize, out: &mut [u8]) -> Result<()> {
        self.count(Call::Download)?;
        self.inner.download(mem, offset, out)
    }
    fn fill(&self, mem: &Allocation, pattern: u32) -> Result<()> {
        self.count(Call::Fill)?;
        self.inner.fill(mem, pattern)
    }
    unsafe fn launch(&self, kernel: &KernelRef, cfg: LaunchConfig, args: &[KernelArg]) -> Result<LaunchReport> {
        self.count(Call::Launch)?;
        // SAFETY: the caller's guarantee, passed on unchanged.
        unsafe { self.inner.launch(kernel, cfg, args) }
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
    fn encode_tensor_map(&self, spec: &super::TensorMapSpec) -> Result<super::TensorMap> {
        self.inner.encode_tensor_map(spec)
    }
}
