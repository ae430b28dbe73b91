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
    let unordered = |other: u16, osync: u32| other != tid && (other / 32 != warp || osync == wsync);
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
