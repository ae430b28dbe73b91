//! Shadow state of the sanitizer (compute-sanitizer's memcheck / initcheck / racecheck /
//! synccheck, emulated).
//!
//! Shared memory keeps, per byte, the epoch and thread of the last write and of the last read(s).
//! An epoch is one interval between two barrier releases of a block; epochs keep increasing
//! across the blocks one worker runs, so the shadow never needs clearing: a byte whose write
//! epoch is older than the block's first epoch was never written by this block (initcheck).
//!
//! Two threads of the same warp are ordered only by `bar.warp.sync` (`__syncwarp`), as under
//! independent thread scheduling: each access records its warp's warp-sync count, and accesses
//! by two lanes of one warp with the same count (and the same barrier epoch) race, even though
//! the emulator happens to run the lanes in lockstep.
//!
//! The state is per byte, but it is stored per [`GRAIN`]-byte grain while all the grain's bytes
//! agree (the common case: 16-byte cp.async / ldmatrix rows / vector accesses), so that one
//! [`track`] call stands for all of them; a grain splits into per-byte records when an access
//! covers part of it, and merges back when its bytes agree again. [`track`] is a function of the
//! byte's record and the access alone, so bytes with equal records reach equal records and
//! hazards: the result is the per-byte one.

/// Shadow of one byte of shared memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Shadow {
    pub w_epoch: u32,
    pub r_epoch: u32,
    /// The accessing warp's warp-sync count at the last write / read.
    pub w_sync: u32,
    pub r_sync: u32,
    pub w_tid: u16,
    /// First reader's thread, or [`MULTI`] when readers of more than one warp saw it.
    pub r_tid: u16,
}

pub const MULTI: u16 = u16::MAX;

/// The writer of bytes a TMA or bulk copy put in shared memory (the async proxy). Such bytes are
/// not checked by the barrier-interval race rule of [`track`]: [`AsyncShadow`] checks their
/// readers against the mbarrier phase that completes the copy instead.
pub const ASYNC_TID: u16 = u16::MAX - 1;

/// Bytes per grain of [`SharedShadow`].
pub const GRAIN: usize = 4;

/// Shadow of a block's shared memory: one record per grain whose bytes agree, else per byte.
#[derive(Debug, Default)]
pub struct SharedShadow {
    /// Record of every byte of grain `g`, valid while `!split[g]`.
    grain: Vec<Shadow>,
    split: Vec<bool>,
    /// Per-byte records, valid for the bytes of split grains.
    bytes: Vec<Shadow>,
}

impl SharedShadow {
    /// Covers at least `len` bytes (new bytes: never written).
    pub fn ensure(&mut self, len: usize) {
        let ng = len.div_ceil(GRAIN);
        if self.grain.len() < ng {
            self.grain.resize(ng, Shadow::default());
            self.split.resize(ng, false);
            self.bytes.resize(ng * GRAIN, Shadow::default());
        }
    }

    /// Calls `f(record, byte)` for the bytes of `[off, off + len)` (within [`ensure`]d length) in
    /// address order, once per whole grain whose bytes agree (`byte` is then the grain's first).
    ///
    /// [`ensure`]: SharedShadow::ensure
    #[inline]
    pub fn for_each(&mut self, off: u64, len: u64, mut f: impl FnMut(&mut Shadow, u64)) {
        let (mut b, e) = (off as usize, (off + len) as usize);
        while b < e {
            let g = b / GRAIN;
            let (gs, ge) = (g * GRAIN, g * GRAIN + GRAIN);
            if !self.split[g] {
                if b == gs && e >= ge {
                    f(&mut self.grain[g], b as u64);
                    b = ge;
                    continue;
                }
                // Part of a grain: its bytes may now diverge.
                let r = self.grain[g];
                self.bytes[gs..ge].fill(r);
                self.split[g] = true;
            }
            let end = e.min(ge);
            for (x, s) in self.bytes[b..end].iter_mut().enumerate() {
                f(s, (b + x) as u64);
            }
            // Merge back once the bytes agree (e.g. after a whole-grain write by one thread).
            let r = self.bytes[gs];
            if self.bytes[gs + 1..ge].iter().all(|x| *x == r) {
                self.grain[g] = r;
                self.split[g] = false;
            }
            b = end;
        }
    }
}

/// What an access to one shared byte found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedHazard {
    None,
    Uninit,
    /// Race with the given other thread (`MULTI`: several readers).
    Race(u16, bool),
}

/// Records a read or write of one byte by thread `tid` in epoch `epoch`, its warp having passed
/// `wsync` warp-level syncs.
#[inline]
pub fn track(s: &mut Shadow, tid: u16, write: bool, epoch: u32, block_start: u32, wsync: u32) -> SharedHazard {
    let warp = tid / 32;
    // Does an earlier access by `other` (with its warp-sync count) conflict with this one?
    let unordered =
        |other: u16, osync: u32| other != tid && other != ASYNC_TID && (other / 32 != warp || osync == wsync);
    let mut h = SharedHazard::None;
    if write {
        if s.w_epoch == epoch && unordered(s.w_tid, s.w_sync) {
            h = SharedHazard::Race(s.w_tid, true);
        } else if s.r_epoch == epoch && (s.r_tid == MULTI || unordered(s.r_tid, s.r_sync)) {
            h = SharedHazard::Race(s.r_tid, false);
        }
        s.w_epoch = epoch;
        s.w_tid = tid;
        s.w_sync = wsync;
    } else {
        if s.w_epoch < block_start {
            h = SharedHazard::Uninit;
        } else if s.w_epoch == epoch && unordered(s.w_tid, s.w_sync) {
            h = SharedHazard::Race(s.w_tid, true);
        }
        if s.r_epoch == epoch && s.r_tid != MULTI && s.r_tid / 32 != warp {
            s.r_tid = MULTI;
        } else if s.r_epoch != epoch || s.r_tid != MULTI {
            // Same warp (or first read of this epoch): remember the latest reader.
            s.r_epoch = epoch;
            s.r_tid = tid;
            s.r_sync = wsync;
        }
    }
    h
}

/// Records a write of one byte by the async proxy (a TMA or bulk copy landing in shared memory):
/// written for initcheck, by [`ASYNC_TID`] for the race rule.
#[inline]
pub fn track_async_write(s: &mut Shadow, epoch: u32) {
    s.w_epoch = epoch;
    s.w_tid = ASYNC_TID;
    s.w_sync = 0;
}

/// Bytes per chunk of [`AsyncShadow`]: TMA boxes and bulk copies are 16-byte granular (the swizzle
/// moves 16-byte chunks, bulk sizes and addresses are multiples of 16).
pub const CHUNK: usize = 16;

/// The asynchronous proxy's side of the sanitizer, and the seam for a happens-before checker: the
/// executor reports every event below, and the checks that need only these events are made here.
///
/// Events (method: meaning):
/// - [`AsyncShadow::async_write`]: a TMA / bulk copy wrote shared bytes; the copy completes on
///   mbarrier `slot` in its phase `phase` (its complete-tx), issued by thread `tid`;
/// - [`AsyncShadow::async_read`]: a TMA / bulk store read shared bytes, retired by thread `tid`'s
///   bulk async-group `group` (see `bulk_retired`);
/// - [`AsyncShadow::bulk_retired`]: `cp.async.bulk.wait_group{.read}` retired that group;
/// - [`AsyncShadow::mbar_init`], [`AsyncShadow::mbar_arrive`] (release by a warp),
///   [`AsyncShadow::mbar_complete`] (a phase completed), [`AsyncShadow::mbar_observed`] (a warp's
///   wait returned true: acquire of the completed phase);
/// - [`AsyncShadow::barrier`]: a CTA / named / cluster barrier released the warps of a mask;
/// - [`AsyncShadow::proxy_fence`]: a warp executed `fence.proxy.async`;
/// - generic shared accesses: [`AsyncShadow::generic_read`] / [`AsyncShadow::generic_write`].
///
/// Check made now: a warp reads bytes written by a TMA / bulk copy before it has observed the
/// completion of the mbarrier phase that copy completes on (directly by a wait, or through a
/// barrier or an mbarrier phase from a warp that had). Observations are counted per warp and
/// mbarrier: `seen[w][slot]` = how many phases of `slot` warp `w` knows complete.
#[derive(Debug, Default)]
pub struct AsyncShadow {
    /// Per [`CHUNK`] of shared memory: `(slot + 1) << 32 | phase` of the last async write there
    /// (0: none since the last generic write).
    tags: Vec<u64>,
    /// Some tag was set in this block (the checks are skipped otherwise).
    active: bool,
    seen: Vec<Vec<u32>>,
    /// Per mbarrier slot: what the arrivals of its current phase carry (release) and what its
    /// last completed phase carried (what a wait acquires).
    carry: Vec<Vec<u32>>,
    carried: Vec<Vec<u32>>,
}

fn merge_max(into: &mut Vec<u32>, from: &[u32]) {
    if into.len() < from.len() {
        into.resize(from.len(), 0);
    }
    for (a, &b) in into.iter_mut().zip(from) {
        *a = (*a).max(b);
    }
}

impl AsyncShadow {
    /// A new block of `nwarps` warps over `shared_len` bytes.
    pub fn reset(&mut self, nwarps: usize, shared_len: usize) {
        if self.active || self.tags.len() < shared_len.div_ceil(CHUNK) {
            self.tags.clear();
            self.tags.resize(shared_len.div_ceil(CHUNK), 0);
        }
        self.active = false;
        self.seen.iter_mut().for_each(Vec::clear);
        self.seen.resize(nwarps, Vec::new());
        self.carry.clear();
        self.carried.clear();
    }

    fn slot_vecs(&mut self, slot: usize) {
        if self.carry.len() <= slot {
            self.carry.resize(slot + 1, Vec::new());
            self.carried.resize(slot + 1, Vec::new());
        }
    }

    /// Whether any async write happened in this block.
    #[inline(always)]
    pub fn active(&self) -> bool {
        self.active
    }

    /// mbarrier `slot` was (re)initialized: its phases count from 0 again.
    pub fn mbar_init(&mut self, slot: usize) {
        for s in self.seen.iter_mut() {
            if let Some(x) = s.get_mut(slot) {
                *x = 0;
            }
        }
        self.slot_vecs(slot);
        self.carry[slot].clear();
        self.carried[slot].clear();
    }

    /// Warp `w` arrived on `slot` (release): its observations travel with the phase.
    pub fn mbar_arrive(&mut self, w: usize, slot: usize) {
        self.slot_vecs(slot);
        let seen = std::mem::take(&mut self.seen[w]);
        merge_max(&mut self.carry[slot], &seen);
        self.seen[w] = seen;
    }

    /// A phase of `slot` completed.
    pub fn mbar_complete(&mut self, slot: usize) {
        self.slot_vecs(slot);
        self.carried[slot] = std::mem::take(&mut self.carry[slot]);
    }

    /// Warp `w` observed that the first `phases` phases of `slot` are complete (acquire).
    pub fn mbar_observed(&mut self, w: usize, slot: usize, phases: u32) {
        self.slot_vecs(slot);
        let s = &mut self.seen[w];
        if s.len() <= slot {
            s.resize(slot + 1, 0);
        }
        s[slot] = s[slot].max(phases);
        let carried = std::mem::take(&mut self.carried[slot]);
        merge_max(&mut self.seen[w], &carried);
        self.carried[slot] = carried;
    }

    /// A barrier released the warps of `members` together: each knows what any of them knew.
    pub fn barrier(&mut self, members: u64) {
        let mut all = Vec::new();
        let warps = |m: u64| (0..64usize).filter(move |w| m >> w & 1 != 0);
        for w in warps(members) {
            if let Some(s) = self.seen.get(w) {
                merge_max(&mut all, s);
            }
        }
        for w in warps(members) {
            if let Some(s) = self.seen.get_mut(w) {
                merge_max(s, &all);
            }
        }
    }

    /// A TMA / bulk copy wrote `[off, off + len)` (chunk-aligned), completing on `slot` in its
    /// phase `phase`.
    pub fn async_write(&mut self, off: usize, len: usize, slot: usize, phase: u32) {
        let tag = ((slot as u64 + 1) << 32) | phase as u64;
        for t in &mut self.tags[off / CHUNK..(off + len).div_ceil(CHUNK)] {
            *t = tag;
        }
        self.active = true;
    }

    /// A TMA / bulk store issued by thread `tid` read `[off, off + len)`; it belongs to that
    /// thread's bulk async-group `group` (counted from 0; `u32::MAX` while uncommitted). Seam for
    /// the happens-before checker (generic writes of these bytes need `fence.proxy.async` and a
    /// synchronization before it; later writes need the group retired): nothing is checked here
    /// yet.
    pub fn async_read(&mut self, _off: usize, _len: usize, _tid: u16, _group: u32) {}

    /// Thread `tid`'s bulk async-group `group` was retired by `cp.async.bulk.wait_group` (`read`:
    /// only its reads of shared memory are known complete). Seam for the happens-before checker.
    pub fn bulk_retired(&mut self, _tid: u16, _group: u32, _read: bool) {}

    /// Warp `w` executed `fence.proxy.async` over shared memory (or every state space). Seam for
    /// the happens-before checker.
    pub fn proxy_fence(&mut self, _w: usize) {}

    /// Warp `w` wrote `[off, off + len)` with generic stores: a later read of these bytes no
    /// longer depends on an async copy.
    #[inline]
    pub fn generic_write(&mut self, _w: usize, off: u64, len: u64) {
        if !self.active {
            return;
        }
        let (a, b) = (off as usize / CHUNK, ((off + len) as usize).div_ceil(CHUNK).min(self.tags.len()));
        for t in &mut self.tags[a..b] {
            *t = 0;
        }
    }

    /// Warp `w` reads `[off, off + len)`: the first async write among those bytes whose completion
    /// `w` has not observed, as (mbarrier slot, phase, byte offset).
    #[inline]
    pub fn generic_read(&self, w: usize, off: u64, len: u64) -> Option<(usize, u32, u64)> {
        if !self.active {
            return None;
        }
        let (a, b) = (off as usize / CHUNK, ((off + len) as usize).div_ceil(CHUNK).min(self.tags.len()));
        for (c, &t) in self.tags[a..b].iter().enumerate() {
            if t == 0 {
                continue;
            }
            let (slot, phase) = ((t >> 32) as usize - 1, t as u32);
            let seen = self.seen[w].get(slot).copied().unwrap_or(0);
            if seen <= phase {
                return Some((slot, phase, ((a + c) * CHUNK) as u64));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Grain-wise tracking gives every byte the hazards and final state of per-byte tracking.
    #[test]
    fn grains_match_per_byte_tracking() {
        const LEN: usize = 256;
        let mut bytes = vec![Shadow::default(); LEN];
        let mut sh = SharedShadow::default();
        sh.ensure(LEN);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut epoch, mut block_start) = (1u32, 1u32);
        for step in 0..200_000 {
            if step % 5000 == 0 {
                // A new block: earlier writes become uninitialized.
                epoch += 1;
                block_start = epoch;
            } else if rnd(50) == 0 {
                epoch += 1;
            }
            let len = [1u64, 2, 4, 8, 16][rnd(5) as usize];
            let off = rnd((LEN as u64) / len) * len + if rnd(8) == 0 { rnd(len) } else { 0 };
            let len = len.min(LEN as u64 - off);
            // Few threads (some in one warp) so that races and merges both happen.
            let tid = [0u16, 1, 2, 33, 64][rnd(5) as usize];
            let (write, wsync) = (rnd(2) == 0, rnd(2) as u32);
            let mut want = Vec::new();
            for b in off..off + len {
                want.push((b, track(&mut bytes[b as usize], tid, write, epoch, block_start, wsync)));
            }
            // A call for byte b stands for the bytes up to the next call (the rest of its grain).
            let mut calls = Vec::new();
            sh.for_each(off, len, |s, b| calls.push((b, track(s, tid, write, epoch, block_start, wsync))));
            assert_eq!(calls.first().map(|c| c.0), Some(off), "step {step}");
            let got: Vec<_> = (off..off + len)
                .map(|x| (x, calls.iter().rev().find(|c| c.0 <= x).map_or(SharedHazard::None, |c| c.1)))
                .collect();
            assert_eq!(got, want, "step {step}");
            for (b, s) in bytes.iter().enumerate() {
                assert_eq!(sh.byte(b), *s, "step {step} byte {b}");
            }
        }
    }

    impl SharedShadow {
        fn byte(&self, b: usize) -> Shadow {
            if self.split[b / GRAIN] {
                self.bytes[b]
            } else {
                self.grain[b / GRAIN]
            }
        }
    }
}
