//! The emulator's global memory: allocations at virtual addresses with unmapped gaps between
//! them (so out-of-bounds accesses land nowhere and are caught), and a per-byte "written" shadow
//! for initcheck.
//!
//! Blocks run in parallel, so memory is shared between threads: it is stored as `AtomicU32`
//! words accessed with relaxed ordering (plain loads/stores on x86), sub-word stores use a
//! compare-exchange loop so that two blocks writing neighbouring bf16 values never lose one.

use crate::error::{Error, Result};
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, RwLock};

/// First allocation address: well above 0 so that null and small pointers fault.
const BASE: u64 = 0x1_0000_0000;
/// Unmapped bytes after every allocation (beyond rounding to a page).
const GAP: u64 = 1 << 16;

pub struct Alloc {
    pub base: u64,
    pub len: u64,
    words: Box<[AtomicU32]>,
    /// One bit per byte: written since allocation (by the host or a kernel).
    init: Box<[AtomicU32]>,
}

impl Alloc {
    /// An allocation of `len` bytes, or an error when the host cannot reserve it (instead of
    /// aborting the process).
    fn new(base: u64, len: u64) -> Result<Alloc> {
        let zeros = |n: u64| -> Result<Box<[AtomicU32]>> {
            let n = usize::try_from(n).map_err(|_| Error::Emu(format!("cannot allocate {len} bytes")))?;
            let mut v: Vec<AtomicU32> = Vec::new();
            v.try_reserve_exact(n).map_err(|_| {
                Error::Emu(format!("cannot allocate {len} bytes of emulated device memory on the host"))
            })?;
            v.extend((0..n).map(|_| AtomicU32::new(0)));
            Ok(v.into_boxed_slice())
        };
        Ok(Alloc { base, len, words: zeros(len.div_ceil(4))?, init: zeros(len.div_ceil(32))? })
    }
    pub fn contains(&self, addr: u64, size: u64) -> bool {
        addr >= self.base && addr + size <= self.base + self.len
    }
    /// Reads `size` (1..=8) bytes at byte offset `off` (in bounds).
    #[inline]
    pub fn read(&self, off: u64, size: u32) -> u64 {
        let w = (off >> 2) as usize;
        let sh = (off & 3) * 8;
        if sh as u32 + size * 8 <= 32 {
            let v = self.words[w].load(Relaxed) as u64 >> sh;
            return if size == 4 { v } else { v & ((1u64 << (size * 8)) - 1) };
        }
        if sh == 0 && size == 8 {
            return self.words[w].load(Relaxed) as u64 | (self.words[w + 1].load(Relaxed) as u64) << 32;
        }
        let mut v = 0u64;
        for i in 0..size as u64 {
            v |= self.read(off + i, 1) << (8 * i);
        }
        v
    }
    #[inline]
    pub fn write(&self, off: u64, size: u32, val: u64) {
        let w = (off >> 2) as usize;
        let sh = (off & 3) * 8;
        if size == 4 && sh == 0 {
            self.words[w].store(val as u32, Relaxed);
            return;
        }
        if size == 8 && sh == 0 {
            self.words[w].store(val as u32, Relaxed);
            self.words[w + 1].store((val >> 32) as u32, Relaxed);
            return;
        }
        if sh as u32 + size * 8 <= 32 {
            let m = (((1u64 << (size * 8)) - 1) << sh) as u32;
            let v = ((val << sh) as u32) & m;
            let _ = self.words[w].fetch_update(Relaxed, Relaxed, |old| Some((old & !m) | v));
            return;
        }
        for i in 0..size as u64 {
            self.write(off + i, 1, val >> (8 * i));
        }
    }
    /// Atomically applies `f` to the 32-bit word at `off` (4-byte aligned); returns the old value.
    pub fn rmw32(&self, off: u64, f: impl Fn(u32) -> u32) -> u32 {
        match self.words[(off >> 2) as usize].fetch_update(Relaxed, Relaxed, |o| Some(f(o))) {
            Ok(v) | Err(v) => v,
        }
    }
    /// Host copy into the allocation (marks the bytes written).
    pub fn host_write(&self, off: u64, data: &[u8]) {
        let mut o = off;
        let mut d = data;
        while !d.is_empty() && !o.is_multiple_of(4) {
            self.write(o, 1, d[0] as u64);
            o += 1;
            d = &d[1..];
        }
        let mut chunks = d.chunks_exact(4);
        for c in &mut chunks {
            self.words[(o >> 2) as usize].store(u32::from_le_bytes([c[0], c[1], c[2], c[3]]), Relaxed);
            o += 4;
        }
        for &b in chunks.remainder() {
            self.write(o, 1, b as u64);
            o += 1;
        }
        self.mark_init(off, data.len() as u64);
    }
    pub fn host_read(&self, off: u64, out: &mut [u8]) {
        let mut o = off;
        let mut i = 0;
        while i < out.len() {
            if o.is_multiple_of(4) && out.len() - i >= 4 {
                out[i..i + 4].copy_from_slice(&self.words[(o >> 2) as usize].load(Relaxed).to_le_bytes());
                i += 4;
                o += 4;
            } else {
                out[i] = self.read(o, 1) as u8;
                i += 1;
                o += 1;
            }
        }
    }
    pub fn mark_init(&self, off: u64, size: u64) {
        if size >= 64 {
            // whole 32-byte words in the middle at once
            let (s, e) = (off, off + size);
            let ws = s.div_ceil(32);
            let we = e / 32;
            if ws < we {
                self.mark_init(s, ws * 32 - s);
                for w in ws..we {
                    self.init[w as usize].store(u32::MAX, Relaxed);
                }
                self.mark_init(we * 32, e - we * 32);
                return;
            }
        }
        for b in off..off + size {
            let bit = 1u32 << (b & 31);
            let w = &self.init[(b >> 5) as usize];
            if w.load(Relaxed) & bit == 0 {
                w.fetch_or(bit, Relaxed);
            }
        }
    }
    pub fn is_init(&self, off: u64, size: u64) -> bool {
        // A word of the bitmap at a time.
        let (mut b, e) = (off, off + size);
        while b < e {
            let n = (32 - (b & 31)).min(e - b);
            let m = (u32::MAX >> (32 - n)) << (b & 31);
            if self.init[(b >> 5) as usize].load(Relaxed) & m != m {
                return false;
            }
            b += n;
        }
        true
    }
}

/// All live allocations, sorted by base address.
#[derive(Default)]
pub struct GlobalMem {
    allocs: RwLock<Vec<Arc<Alloc>>>,
    next: AtomicU64,
    /// Serializes 64-bit atomics (rare: they are not lock-free over the 32-bit words).
    pub atomic64: Mutex<()>,
}

impl GlobalMem {
    pub fn new() -> Self {
        GlobalMem { allocs: RwLock::new(Vec::new()), next: AtomicU64::new(BASE), atomic64: Mutex::new(()) }
    }
    pub fn alloc(&self, bytes: usize) -> Result<u64> {
        let len = bytes.max(1) as u64;
        let exhausted = || Error::Emu("emulator address space exhausted".into());
        let span = len.div_ceil(4096).checked_mul(4096).and_then(|x| x.checked_add(GAP)).ok_or_else(exhausted)?;
        if span >= super::ir::CONST_WINDOW {
            return Err(exhausted());
        }
        let base = self.next.fetch_add(span, Relaxed);
        if base.saturating_add(span) >= super::ir::CONST_WINDOW {
            return Err(Error::Emu("emulator address space exhausted".into()));
        }
        let a = Arc::new(Alloc::new(base, len)?);
        let mut v = self.allocs.write().map_err(|_| Error::Emu("memory lock poisoned".into()))?;
        let pos = v.partition_point(|x| x.base < base);
        v.insert(pos, a);
        Ok(base)
    }
    pub fn free(&self, addr: u64) -> Result<()> {
        let mut v = self.allocs.write().map_err(|_| Error::Emu("memory lock poisoned".into()))?;
        match v.iter().position(|a| a.base == addr) {
            Some(i) => {
                v.remove(i);
                Ok(())
            }
            None => Err(Error::Emu(format!("free of {addr:#x}, which is not an allocation"))),
        }
    }
    /// Live allocations and their bytes.
    pub fn live(&self) -> (usize, u64) {
        self.allocs.read().map(|v| (v.len(), v.iter().map(|a| a.len).sum())).unwrap_or_default()
    }
    pub fn snapshot(&self) -> Vec<Arc<Alloc>> {
        self.allocs.read().map(|v| v.clone()).unwrap_or_default()
    }
    pub fn find(&self, addr: u64, size: u64) -> Result<Arc<Alloc>> {
        let v = self.snapshot();
        find_in(&v, addr, size)
            .cloned()
            .ok_or_else(|| Error::Emu(format!("host access of {size} bytes at {addr:#x} is outside every allocation")))
    }
}

/// The allocation containing `[addr, addr+size)`, if any.
#[inline]
pub fn find_in(v: &[Arc<Alloc>], addr: u64, size: u64) -> Option<&Arc<Alloc>> {
    let i = v.partition_point(|a| a.base <= addr);
    if i == 0 {
        return None;
    }
    let a = &v[i - 1];
    a.contains(addr, size).then_some(a)
}
