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

/// Per-byte shadow of shared memory.
#[derive(Debug, Clone, Copy, Default)]
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
