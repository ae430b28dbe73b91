//! Vector clocks of the race checker: happens-before between the warps of a block (PTX ISA 8.5
//! "Memory Consistency Model": release and acquire patterns, synchronizes-with, causality order).
//!
//! Every warp has a vector clock `vc[w]` with one component per warp of the block; `vc[w][w]`
//! is the warp's own time. An access is stamped with its warp's own time; an earlier access by
//! warp `v` at time `t` is ordered before the current access of warp `w` when `vc[w][v] >= t`.
//! A warp's own time moves on (a fresh value of the block's tick counter) after each release,
//! so that its later accesses are not covered by what it released, and at every intra-warp
//! synchronization (`bar.warp.sync`, `wgmma.wait_group`, a barrier, a successful mbarrier wait),
//! which is what orders two lanes of one warp (same own time: unordered).
//!
//! Synchronization (release = join the warp's clock into an object, then advance its own time;
//! acquire = join the object's clock into the warp's):
//! - CTA and named barriers: each arriving warp releases into the barrier's clock, and when the
//!   barrier completes each warp that waits on it (not `bar.arrive`) acquires it;
//! - mbarriers: an arrive-on releases into the clock of the mbarrier's current phase; when the
//!   phase completes that clock becomes the phase's, and a successful `test_wait` / `try_wait`
//!   acquires the last completed phase;
//! - strong accesses (`volatile`, `.relaxed`, `.acquire`, `.release`, atomics) to the same
//!   address: a strong write releases into the location's clock and a strong read acquires it
//!   (as if each carried release / acquire semantics: fences are not checked);
//! - `fence.proxy.async`: recorded per warp (see [`Clocks::fenced`]).
//!
//! Times are 26 bits (a shared byte's read entry packs the reader's lane beside it, see
//! [`super::sanitizer`]); the counter keeps increasing across the blocks one worker runs, and
//! starts again (the caller clears the shadow) when it nears the limit at a block's start.

use std::collections::HashMap;

/// Bits of a packed read entry that hold the lane (0..31, or [`SEVERAL_LANES`]).
pub const LANE_BITS: u32 = 6;
/// Lane code of a read entry: more than one lane of the warp read in the same interval.
pub const SEVERAL_LANES: u32 = 32;
/// Largest time (26 bits).
pub const MAX_TIME: u32 = (1 << (32 - LANE_BITS)) - 1;

/// A vector clock over up to 32 warps.
pub type Vc = [u32; 32];

#[inline]
fn join(into: &mut Vc, from: &Vc) {
    for (a, &b) in into.iter_mut().zip(from) {
        *a = (*a).max(b);
    }
}

/// The clocks of one block's warps and synchronization objects.
#[derive(Debug, Default)]
pub struct Clocks {
    /// Per warp.
    pub vc: Vec<Vc>,
    tick: u32,
    /// Own time of every warp at the block's start: a write stamped earlier was made by an
    /// earlier block (initcheck).
    pub block_start: u32,
    /// CTA / named barriers: the releases of their current phase.
    bar: [Vc; 16],
    cluster: Vc,
    /// mbarrier slots: the releases of the current phase, and those of the last completed one.
    mbar_carry: Vec<Vc>,
    mbar_done: Vec<Vc>,
    /// Locations accessed by strong operations (shared offset, or global address).
    strong: HashMap<u64, Vc>,
    /// Per warp: its own times at its `fence.proxy.async`s, increasing.
    fences: Vec<Vec<u32>>,
}

impl Clocks {
    /// A new block of `nw` warps; true when the times started again (the caller must forget
    /// every stamp it kept).
    pub fn start_block(&mut self, nw: usize) -> bool {
        let wrap = self.tick > MAX_TIME - (1 << 24);
        if wrap {
            self.tick = 0;
        }
        // Everything stamped before t0 is known to every warp; own times start above it.
        let t0 = self.tick + 1;
        let t1 = t0 + 1;
        self.tick = t1;
        self.block_start = t1;
        self.vc.resize(nw, [0; 32]);
        for (w, c) in self.vc.iter_mut().enumerate() {
            *c = [t0; 32];
            c[w] = t1;
        }
        self.bar = [[0; 32]; 16];
        self.cluster = [0; 32];
        self.mbar_carry.clear();
        self.mbar_done.clear();
        self.strong.clear();
        self.fences.resize(nw, Vec::new());
        self.fences.iter_mut().for_each(Vec::clear);
        wrap
    }

    /// Warp `w`'s own time.
    #[inline(always)]
    pub fn now(&self, w: usize) -> u32 {
        self.vc[w][w]
    }

    /// Advances warp `w`'s own time (after a release, or to order its lanes).
    #[inline]
    pub fn bump(&mut self, w: usize) {
        // Saturates in a block of more than 2^24 synchronizations (then races may be missed).
        self.tick = (self.tick + 1).min(MAX_TIME);
        self.vc[w][w] = self.tick;
    }

    /// Whether an access by warp `v` at time `t` is ordered before warp `w`'s next access
    /// (`v == w`: an intra-warp synchronization lies between them).
    #[inline]
    pub fn ordered(&self, v: usize, t: u32, w: usize) -> bool {
        if v == w {
            t < self.vc[w][w]
        } else {
            self.vc[w][v] >= t
        }
    }

    /// Warp `w` arrives at barrier `id` (release).
    pub fn bar_arrive(&mut self, id: usize, w: usize) {
        let c = self.vc[w];
        join(&mut self.bar[id], &c);
        self.bump(w);
    }

    /// Barrier `id` completed: the warps of `waiters` acquire what its phase released.
    pub fn bar_complete(&mut self, id: usize, waiters: u64) {
        let c = std::mem::take(&mut self.bar[id]);
        self.acquire_all(&c, waiters);
    }

    /// `barrier.cluster.arrive` by warp `w` (release).
    pub fn cluster_arrive(&mut self, w: usize) {
        let c = self.vc[w];
        join(&mut self.cluster, &c);
        self.bump(w);
    }

    /// The cluster barrier completed; its waits acquire (a warp waits after it arrived).
    pub fn cluster_complete(&mut self, members: u64) {
        let c = std::mem::take(&mut self.cluster);
        self.acquire_all(&c, members);
    }

    fn acquire_all(&mut self, c: &Vc, warps: u64) {
        for w in 0..self.vc.len().min(64) {
            if warps >> w & 1 != 0 {
                join(&mut self.vc[w], c);
            }
        }
    }

    fn mbar_slot(&mut self, slot: usize) {
        if self.mbar_carry.len() <= slot {
            self.mbar_carry.resize(slot + 1, [0; 32]);
            self.mbar_done.resize(slot + 1, [0; 32]);
        }
    }

    /// mbarrier `slot` was (re)initialized.
    pub fn mbar_init(&mut self, slot: usize) {
        self.mbar_slot(slot);
        self.mbar_carry[slot] = [0; 32];
        self.mbar_done[slot] = [0; 32];
    }

    /// An arrive-on by warp `w` on `slot` (release into the current phase).
    pub fn mbar_arrive(&mut self, slot: usize, w: usize) {
        self.mbar_slot(slot);
        let c = self.vc[w];
        join(&mut self.mbar_carry[slot], &c);
        self.bump(w);
    }

    /// The current phase of `slot` completed.
    pub fn mbar_complete(&mut self, slot: usize) {
        self.mbar_slot(slot);
        self.mbar_done[slot] = std::mem::take(&mut self.mbar_carry[slot]);
    }

    /// Warp `w`'s wait observed the last completed phase of `slot` (acquire).
    pub fn mbar_acquire(&mut self, slot: usize, w: usize) {
        self.mbar_slot(slot);
        let c = self.mbar_done[slot];
        join(&mut self.vc[w], &c);
        self.bump(w);
    }

    /// A strong write by warp `w` to location `key` (release).
    pub fn strong_release(&mut self, key: u64, w: usize) {
        let c = self.vc[w];
        join(self.strong.entry(key).or_insert([0; 32]), &c);
        self.bump(w);
    }

    /// A strong read by warp `w` of location `key` (acquire).
    pub fn strong_acquire(&mut self, key: u64, w: usize) {
        if let Some(c) = self.strong.get(&key) {
            let c = *c;
            join(&mut self.vc[w], &c);
        }
    }

    /// Warp `w` executed `fence.proxy.async`: its earlier generic writes become visible to the
    /// async proxy for whoever is ordered after the fence.
    pub fn proxy_fence(&mut self, w: usize) {
        let t = self.now(w);
        if self.fences[w].last() != Some(&t) {
            self.fences[w].push(t);
        }
        self.bump(w);
    }

    /// A generic write by warp `v` at time `t`, read by the async proxy on behalf of warp `r`:
    /// Ok when some `fence.proxy.async` of `v` follows the write and is ordered before `r`;
    /// otherwise whether a fence followed the write at all (the fence's own time) or none did.
    pub fn fenced(&self, v: usize, t: u32, r: usize) -> Result<(), Option<u32>> {
        let f = self.fences.get(v).map_or(&[][..], |f| &f[..]);
        // The first fence at or after the write (a fence takes the time the write had, then
        // moves the warp's own time on).
        let i = f.partition_point(|&x| x < t);
        let Some(&ft) = f.get(i) else { return Err(None) };
        if v == r || self.vc[r][v] > ft {
            Ok(())
        } else {
            Err(Some(ft))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn barrier_and_mbarrier_order() {
        let mut c = Clocks::default();
        c.start_block(3);
        let t = c.now(0);
        assert!(!c.ordered(0, t, 1));
        // Warp 0 arrives (release), warp 1 waits at the barrier: ordered; warp 2 is not.
        c.bar_arrive(1, 0);
        c.bar_arrive(1, 1);
        c.bar_complete(1, 0b10);
        assert!(c.ordered(0, t, 1));
        assert!(!c.ordered(0, t, 2));
        // Warp 0's accesses after its release are not covered.
        assert!(!c.ordered(0, c.now(0), 1));
        // mbarrier: warp 0 arrives on slot 0 in phase 0; phase completes; warp 2 acquires.
        let t0 = c.now(0);
        c.mbar_init(0);
        c.mbar_arrive(0, 0);
        c.mbar_complete(0);
        assert!(!c.ordered(0, t0, 2));
        c.mbar_acquire(0, 2);
        assert!(c.ordered(0, t0, 2));
        // Arrivals of the next (incomplete) phase travel with nothing yet.
        let t1 = c.now(0);
        c.mbar_arrive(0, 0);
        c.mbar_acquire(0, 1);
        assert!(!c.ordered(0, t1, 1));
    }

    #[test]
    fn proxy_fences() {
        let mut c = Clocks::default();
        c.start_block(2);
        let tw = c.now(0);
        assert_eq!(c.fenced(0, tw, 1), Err(None));
        c.proxy_fence(0);
        assert_eq!(c.fenced(0, tw, 1), Err(Some(tw)));
        assert_eq!(c.fenced(0, tw, 0), Ok(()));
        // A write after the fence is not covered by it.
        assert_eq!(c.fenced(0, c.now(0), 0), Err(None));
        c.bar_arrive(0, 0);
        c.bar_arrive(0, 1);
        c.bar_complete(0, 0b11);
        assert_eq!(c.fenced(0, tw, 1), Ok(()));
    }
}
