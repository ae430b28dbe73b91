//! Shadow state of the sanitizer (compute-sanitizer's memcheck / initcheck / racecheck /
//! synccheck, emulated).
//!
//! Racecheck is a happens-before checker ([`super::clocks`]: vector clocks per warp). Shared
//! memory keeps, per byte, the last write (thread, its warp's own time) and the reads since that
//! write: per reading warp, its own time at its latest read and which lane read (or "several").
//! A write must be ordered after the last write and after every recorded read; a read after the
//! last write. Stamps older than the block's start belong to earlier blocks of the same worker:
//! they are ordered before everything, and a byte whose write is that old was never written by
//! this block (initcheck). A race-free write forgets the reads (they are ordered before it, so
//! before anything ordered after it).
//!
//! Two lanes of one warp are ordered only by an intra-warp synchronization (their warp's own
//! time differs), as under independent thread scheduling, even though the emulator runs the
//! lanes in lockstep.
//!
//! The state is per byte, but it is stored per [`GRAIN`]-byte grain while all the grain's bytes
//! agree, and once for a 16-byte run of grains while all its grains agree (the common case:
//! 16-byte cp.async / ldmatrix rows / vector accesses), so that one [`track`] call stands for all
//! of them; a run splits into grains, and a grain into per-byte records (from a pool), when an
//! access covers part of it; a grain merges back when its bytes agree again, a run when an access
//! covering it whole leaves its grains agreeing. [`track`] is a function of the byte's record and
//! the access alone, so bytes with equal records reach equal records and hazards: the result is
//! the per-byte one.

use super::clocks::{LANE_BITS, SEVERAL_LANES};

/// A record: the shadow of one byte (or of a grain whose bytes agree) of shared memory, as
/// `HEAD + nw` words in one slice so that a record and its read entries share a cache line:
/// `[W_CLK]` the writing warp's own time at the last write; `[R_MASK]` the warps whose reads
/// since that write have an entry; `[W_TID]` the last writer's thread; `[HEAD + v]` warp `v`'s
/// entry: its own time at its latest read `<< LANE_BITS |` the reading lane (or
/// [`SEVERAL_LANES`]).
pub const W_CLK: usize = 0;
pub const R_MASK: usize = 1;
pub const W_TID: usize = 2;
pub const HEAD: usize = 3;

/// The last write's thread of record `s`.
#[inline(always)]
pub fn w_tid(s: &[u32]) -> u16 {
    s[W_TID] as u16
}

/// Record `s` now holds a write by `tid` at time `clk` (and no reads).
#[inline(always)]
pub fn set_write(s: &mut [u32], clk: u32, tid: u16) {
    s[W_CLK] = clk;
    s[R_MASK] = 0;
    s[W_TID] = tid as u32;
}

/// The writer of bytes a TMA or bulk copy put in shared memory (the async proxy). Such bytes are
/// not checked by the happens-before rule of [`track`] afterwards: [`AsyncShadow`] checks their
/// readers against the mbarrier phase that completes the copy instead.
pub const ASYNC_TID: u16 = u16::MAX - 1;

/// Bytes per grain of [`SharedShadow`].
pub const GRAIN: usize = 4;

/// Grains per run of [`SharedShadow`]: 16 bytes, what a cp.async, an ldmatrix row or a v4
/// access covers.
const RUN: usize = 4;

/// Shadow of a block's shared memory: one record per grain whose bytes agree, else per byte from
/// a pool; and one record (its first grain's) for a whole run of grains while they all agree.
/// Memory: (12 + 4 nw) bytes per grain, plus 4 times that for each grain split at the moment.
#[derive(Debug, Default)]
pub struct SharedShadow {
    /// Words per record: [`HEAD`] + the launch's warps.
    stride: usize,
    grain: Vec<u32>,
    /// 0: the grain's record holds; else 1 + the pool entry of its bytes.
    split: Vec<u32>,
    /// Per run: its grains are not split and agree, and its first grain's record holds for all
    /// of them (the others' records are stale).
    whole: Vec<bool>,
    /// Pool entries of [`GRAIN`] records.
    bytes: Vec<u32>,
    free: Vec<u32>,
}

/// Whether records `x` and `y` are the same state (read entries of warps outside the mask are
/// stale and never read).
fn same(x: &[u32], y: &[u32]) -> bool {
    if x[..HEAD] != y[..HEAD] {
        return false;
    }
    let mut m = x[R_MASK];
    while m != 0 {
        let v = m.trailing_zeros() as usize;
        m &= m - 1;
        if x[HEAD + v] != y[HEAD + v] {
            return false;
        }
    }
    true
}

impl SharedShadow {
    /// Covers at least `len` bytes for a launch of `nw` warps (new bytes: never written).
    pub fn ensure(&mut self, len: usize, nw: usize) {
        if HEAD + nw != self.stride {
            *self = SharedShadow { stride: HEAD + nw, ..Default::default() };
        }
        // Whole runs, so that a run's grains always exist.
        let ng = len.div_ceil(GRAIN * RUN) * RUN;
        if self.split.len() < ng {
            self.grain.resize(ng * self.stride, 0);
            self.split.resize(ng, 0);
            self.whole.resize(ng / RUN, true);
        }
    }

    /// Forgets every record (the clocks started again).
    pub fn clear(&mut self) {
        let stride = self.stride;
        *self = SharedShadow { stride, ..Default::default() };
    }

    /// Calls `f(record, byte)` for the bytes of `[off, off + len)` (within [`ensure`]d length) in
    /// address order, once per whole run or whole grain whose bytes agree (`byte` is then its
    /// first).
    ///
    /// [`ensure`]: SharedShadow::ensure
    #[inline(always)]
    pub fn for_each(&mut self, off: u64, len: u64, mut f: impl FnMut(&mut [u32], u64)) {
        let st = self.stride;
        let (mut b, e) = (off as usize, (off + len) as usize);
        while b < e {
            match self.next(b, e) {
                Ok((k, next)) => {
                    f(&mut self.grain[k * st..(k + 1) * st], b as u64);
                    self.done(off as usize, k, next);
                    b = next;
                }
                // Part of a grain, or a split one: per byte, out of line.
                Err(end) => {
                    self.bytes_of(b / GRAIN, b, end, &mut f);
                    b = end;
                }
            }
        }
    }

    /// [`track`] over the bytes of `[off, off + len)` (as [`SharedShadow::for_each`], with the
    /// common path inlined): the first hazard and its byte; with `proxy` (the async proxy reads),
    /// also the first byte last written by the generic proxy in this block, with its writer and
    /// time.
    #[inline(always)]
    pub fn track_range(&mut self, off: u64, len: u64, a: &Access, write: bool, proxy: bool) -> Tracked {
        let st = self.stride;
        let mut out = Tracked::default();
        let (mut b, e) = (off as usize, (off + len) as usize);
        while b < e {
            match self.next(b, e) {
                Ok((k, next)) => {
                    let s = &mut self.grain[k * st..(k + 1) * st];
                    if proxy {
                        out.note_generic(s, b as u64, a.block_start);
                    }
                    let h = track(s, a, write);
                    if h != SharedHazard::None && out.first.is_none() {
                        out.first = Some((b as u64, h));
                    }
                    self.done(off as usize, k, next);
                    b = next;
                }
                Err(end) => {
                    self.bytes_of(b / GRAIN, b, end, &mut |s, x| {
                        if proxy {
                            out.note_generic(s, x, a.block_start);
                        }
                        let h = track(s, a, write);
                        if h != SharedHazard::None && out.first.is_none() {
                            out.first = Some((x, h));
                        }
                    });
                    b = end;
                }
            }
        }
        out
    }

    /// The record that holds for bytes `[b, next)` of an access ending at `e`: Ok((its grain,
    /// next)) for a whole run or a whole grain whose bytes agree, else Err(the end of the part
    /// of `b`'s grain to walk per byte).
    #[inline(always)]
    fn next(&mut self, b: usize, e: usize) -> std::result::Result<(usize, usize), usize> {
        let (r, g) = (b / (GRAIN * RUN), b / GRAIN);
        let rs = r * GRAIN * RUN;
        if self.whole[r] {
            if b == rs && e >= rs + GRAIN * RUN {
                return Ok((r * RUN, rs + GRAIN * RUN));
            }
            self.break_run(r);
        }
        let (gs, ge) = (g * GRAIN, g * GRAIN + GRAIN);
        if self.split[g] != 0 || b != gs || e < ge {
            return Err(e.min(ge));
        }
        Ok((g, ge))
    }

    /// After an access `[off, ..)` used grain `k`'s record up to `next`: a grain that ends a run
    /// the access covered whole may let the run's grains agree again.
    #[inline(always)]
    fn done(&mut self, off: usize, k: usize, next: usize) {
        if k * GRAIN + GRAIN == next && next.is_multiple_of(GRAIN * RUN) && off + GRAIN * RUN <= next {
            self.join_run(k / RUN);
        }
    }

    /// Run `r` is accessed in part: its grains take its record.
    #[inline(never)]
    fn break_run(&mut self, r: usize) {
        let (st, g) = (self.stride, r * RUN);
        let (first, rest) = self.grain[g * st..(g + RUN) * st].split_at_mut(st);
        for x in rest.chunks_exact_mut(st) {
            x.copy_from_slice(first);
        }
        self.whole[r] = false;
    }

    /// Run `r` was accessed whole: one record for it if its grains agree.
    #[inline(never)]
    fn join_run(&mut self, r: usize) {
        let (st, g) = (self.stride, r * RUN);
        if self.split[g..g + RUN].iter().any(|&p| p != 0) {
            return;
        }
        let recs = &self.grain[g * st..(g + RUN) * st];
        if (1..RUN).all(|k| same(&recs[..st], &recs[k * st..(k + 1) * st])) {
            self.whole[r] = true;
        }
    }

    /// The bytes `[b, end)` of grain `g`, per byte (splitting the grain first).
    #[inline(never)]
    fn bytes_of(&mut self, g: usize, b: usize, end: usize, f: &mut dyn FnMut(&mut [u32], u64)) {
        let st = self.stride;
        if self.split[g] == 0 {
            self.split_grain(g);
        }
        let (p, gs) = (self.split[g] as usize - 1, g * GRAIN);
        for x in b..end {
            let k = p * GRAIN + x - gs;
            f(&mut self.bytes[k * st..(k + 1) * st], x as u64);
        }
        // Merge back once the bytes agree (e.g. after a whole-grain write by one thread).
        let recs = &self.bytes[p * GRAIN * st..(p + 1) * GRAIN * st];
        if (1..GRAIN).all(|k| same(&recs[..st], &recs[k * st..(k + 1) * st])) {
            self.grain[g * st..(g + 1) * st].copy_from_slice(&recs[..st]);
            self.split[g] = 0;
            self.free.push(p as u32);
        }
    }

    /// Part of grain `g` is accessed: its bytes may now diverge.
    fn split_grain(&mut self, g: usize) {
        let st = self.stride;
        let p = match self.free.pop() {
            Some(p) => p as usize,
            None => {
                self.bytes.resize(self.bytes.len() + GRAIN * st, 0);
                self.bytes.len() / (GRAIN * st) - 1
            }
        };
        for k in p * GRAIN..(p + 1) * GRAIN {
            self.bytes[k * st..(k + 1) * st].copy_from_slice(&self.grain[g * st..(g + 1) * st]);
        }
        self.split[g] = p as u32 + 1;
    }
}

/// What [`SharedShadow::track_range`] found.
#[derive(Debug, Default)]
pub struct Tracked {
    /// The first hazard and its byte.
    pub first: Option<(u64, SharedHazard)>,
    /// The first byte written by the generic proxy in this block: (byte, writer, its time).
    pub generic: Option<(u64, u16, u32)>,
}

impl Tracked {
    #[inline(always)]
    fn note_generic(&mut self, s: &[u32], b: u64, block_start: u32) {
        if self.generic.is_none() && w_tid(s) != ASYNC_TID && s[W_CLK] >= block_start {
            self.generic = Some((b, w_tid(s), s[W_CLK]));
        }
    }
}

/// What an access to one shared byte found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedHazard {
    None,
    Uninit,
    /// Race with an earlier access: its thread, or (`several`) lanes of that thread's warp;
    /// whether it was a write.
    Race {
        tid: u16,
        several: bool,
        write: bool,
    },
}

/// One access for [`track`]: thread `tid` (warp `w`, lane `lane`), its warp's clock `vc` (own
/// time `now`), and the block's start time.
#[derive(Clone, Copy)]
pub struct Access<'a> {
    pub tid: u16,
    pub w: usize,
    pub lane: u32,
    pub now: u32,
    pub vc: &'a [u32; 32],
    pub block_start: u32,
}

impl<'a> Access<'a> {
    #[inline(always)]
    pub fn new(tid: u16, vc: &'a [u32; 32], block_start: u32) -> Access<'a> {
        let w = (tid / 32) as usize;
        Access { tid, w, lane: (tid % 32) as u32, now: vc[w], vc, block_start }
    }
}

/// Records a read or write of one byte (record `s`) by access `a`.
#[inline(always)]
pub fn track(s: &mut [u32], a: &Access, write: bool) -> SharedHazard {
    let (wclk, wtid) = (s[W_CLK], w_tid(s));
    // Ordered after the last write: the same thread; the async proxy (checked by
    // [`AsyncShadow`]); an earlier interval of this warp (`wclk < now`, and `vc[w] == now`); or
    // covered by this warp's clock.
    let v = (wtid / 32) as usize % 32;
    let write_ordered = wtid == a.tid || wtid == ASYNC_TID || a.vc[v] + (v != a.w) as u32 > wclk;
    let mut h = SharedHazard::None;
    if write {
        if !write_ordered {
            h = SharedHazard::Race { tid: wtid, several: false, write: true };
        } else {
            let mut m = s[R_MASK];
            while m != 0 {
                let v = m.trailing_zeros() as usize;
                m &= m - 1;
                let e = s[HEAD + v];
                let (t, l) = (e >> LANE_BITS, e & ((1 << LANE_BITS) - 1));
                let race = if v == a.w { t == a.now && l != a.lane } else { a.vc[v] < t };
                if race {
                    let several = l == SEVERAL_LANES;
                    let tid = (v as u32 * 32 + if several { 0 } else { l }) as u16;
                    h = SharedHazard::Race { tid, several, write: false };
                    break;
                }
            }
        }
        set_write(s, a.now, a.tid);
    } else {
        if wclk < a.block_start {
            h = SharedHazard::Uninit;
        } else if !write_ordered {
            h = SharedHazard::Race { tid: wtid, several: false, write: true };
        }
        // A second lane of this warp in the same interval: several lanes.
        let (m, bit, rd) = (s[R_MASK], 1u32 << a.w, a.now << LANE_BITS | a.lane);
        let e = &mut s[HEAD + a.w];
        *e = if m & bit != 0 && *e >> LANE_BITS == a.now && *e != rd { a.now << LANE_BITS | SEVERAL_LANES } else { rd };
        s[R_MASK] = m | bit;
    }
    h
}

/// Records a write of one byte by the async proxy (a TMA or bulk copy landing in shared memory,
/// issued at time `now`): written for initcheck, by [`ASYNC_TID`] for the race rule.
#[inline]
pub fn track_async_write(s: &mut [u32], now: u32) {
    set_write(s, now, ASYNC_TID);
}

/// Bytes per chunk of [`AsyncShadow`]: TMA boxes and bulk copies are 16-byte granular (the swizzle
/// moves 16-byte chunks, bulk sizes and addresses are multiples of 16).
pub const CHUNK: usize = 16;

/// The bulk async-group of a store not yet committed.
pub const OPEN_GROUP: u32 = u32::MAX;

/// The asynchronous proxy's side of the sanitizer (racecheck's vector clocks are in
/// [`super::clocks`]). Events (method: meaning):
/// - [`AsyncShadow::async_write`]: a TMA / bulk copy wrote shared bytes; the copy completes on
///   mbarrier `slot` in its phase `phase` (its complete-tx);
/// - [`AsyncShadow::async_read`], [`AsyncShadow::bulk_commit`], [`AsyncShadow::bulk_retired`]: a
///   TMA / bulk store reads shared bytes until `cp.async.bulk.wait_group{.read}` retires its
///   thread's bulk async-group;
/// - [`AsyncShadow::mbar_init`], [`AsyncShadow::mbar_arrive`] (release by a warp),
///   [`AsyncShadow::mbar_complete`] (a phase completed), [`AsyncShadow::mbar_observed`] (a warp's
///   wait returned true: acquire of the completed phase);
/// - [`AsyncShadow::barrier`]: a CTA / named / cluster barrier released the warps of a mask;
/// - generic shared accesses: [`AsyncShadow::generic_read`] / [`AsyncShadow::generic_write`].
///
/// Checks: a warp reads bytes written by a TMA / bulk copy before it has observed the completion
/// of the mbarrier phase that copy completes on (directly by a wait, or through a barrier or an
/// mbarrier phase from a warp that had; observations are counted per warp and mbarrier:
/// `seen[w][slot]` = how many phases of `slot` warp `w` knows complete), or writes them (a
/// generic store, or the issue of another copy) before that; a write of a bulk store's source
/// before the `wait_group.read` that retires it, or after it but not ordered after it.
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
    /// Bulk / tensor stores whose shared-memory reads are not yet retired by their thread's
    /// `cp.async.bulk.wait_group{.read}`: per [`CHUNK`], how many read it; and the stores.
    store_busy: Vec<u16>,
    stores: Vec<StoreRead>,
    /// Per [`CHUNK`]: (warp + 1, its own time) of the last retirement of a store's read there
    /// (0: none in this block).
    store_retired: Vec<(u16, u32)>,
    /// Some store was issued in this block.
    stores_active: bool,
}

/// A bulk / tensor store's read of shared memory, until its bulk async-group is retired.
#[derive(Debug, Clone, Copy)]
struct StoreRead {
    off: usize,
    len: usize,
    tid: u16,
    group: u32,
    line: u32,
}

/// What a generic write of shared bytes found in [`AsyncShadow::generic_write`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AsyncWriteHazard {
    /// The bytes are the source of a bulk / tensor store of thread `tid` (issued at PTX line
    /// `line`) whose reads no `wait_group.read` has retired yet.
    StoreSource { tid: u16, line: u32, at: u64 },
    /// A store's read of these bytes was retired by warp `warp`'s wait, which is not ordered
    /// before this write.
    StoreRetired { warp: u16, at: u64 },
    /// The bytes were written by a copy completing on phase `phase` of mbarrier `slot`, which
    /// the writing warp has not observed (two writes unordered).
    Unobserved { slot: usize, phase: u32, at: u64 },
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
        if self.stores_active || self.store_busy.len() < shared_len.div_ceil(CHUNK) {
            let n = shared_len.div_ceil(CHUNK);
            self.store_busy.clear();
            self.store_busy.resize(n, 0);
            self.store_retired.clear();
            self.store_retired.resize(n, (0, 0));
        }
        self.stores.clear();
        self.stores_active = false;
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
        self.active || self.stores_active
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

    /// A TMA / bulk store issued by thread `tid` at PTX line `line` reads `[off, off + len)`
    /// until the `wait_group.read` that retires its bulk async-group (open until committed).
    pub fn async_read(&mut self, off: usize, len: usize, tid: u16, line: u32) {
        let n = self.store_busy.len();
        for c in &mut self.store_busy[(off / CHUNK).min(n)..(off + len).div_ceil(CHUNK).min(n)] {
            *c = c.saturating_add(1);
        }
        self.stores.push(StoreRead { off, len, tid, group: OPEN_GROUP, line });
        self.stores_active = true;
    }

    /// Thread `tid` committed its open bulk stores as group `group`.
    pub fn bulk_commit(&mut self, tid: u16, group: u32) {
        for q in self.stores.iter_mut().filter(|q| q.tid == tid && q.group == OPEN_GROUP) {
            q.group = group;
        }
    }

    /// Thread `tid`'s bulk async-groups before `done` were retired by `cp.async.bulk.wait_group`
    /// (`.read` or not: either way their reads of shared memory are complete), at its warp's own
    /// time `now`.
    pub fn bulk_retired(&mut self, tid: u16, done: u32, now: u32) {
        if !self.stores_active {
            return;
        }
        let n = self.store_busy.len();
        let (busy, retired) = (&mut self.store_busy, &mut self.store_retired);
        self.stores.retain(|q| {
            let retire = q.tid == tid && q.group != OPEN_GROUP && q.group < done;
            if retire {
                for c in (q.off / CHUNK).min(n)..(q.off + q.len).div_ceil(CHUNK).min(n) {
                    busy[c] -= 1;
                    retired[c] = (tid / 32 + 1, now);
                }
            }
            !retire
        });
    }

    /// Warp `w` (clock `vc`) writes `[off, off + len)` with generic stores (or issues a copy that
    /// writes them): a later read of these bytes no longer depends on an earlier async copy. The
    /// first hazard: the bytes are still read by a bulk store, or were written by a copy whose
    /// completion `w` has not observed.
    #[inline]
    pub fn generic_write(&mut self, w: usize, vc: &[u32; 32], off: u64, len: u64) -> Option<AsyncWriteHazard> {
        let mut h = None;
        if self.stores_active {
            h = self.store_hazard(w, vc, off, len);
        }
        if !self.active {
            return h;
        }
        let (a, b) = (off as usize / CHUNK, ((off + len) as usize).div_ceil(CHUNK).min(self.tags.len()));
        for (c, t) in self.tags[a..b].iter_mut().enumerate() {
            if *t == 0 {
                continue;
            }
            let (slot, phase) = ((*t >> 32) as usize - 1, *t as u32);
            if h.is_none() && self.seen[w].get(slot).copied().unwrap_or(0) <= phase {
                h = Some(AsyncWriteHazard::Unobserved { slot, phase, at: (((a + c) * CHUNK) as u64).max(off) });
            }
            *t = 0;
        }
        h
    }

    #[cold]
    fn store_hazard(&self, w: usize, vc: &[u32; 32], off: u64, len: u64) -> Option<AsyncWriteHazard> {
        let n = self.store_busy.len();
        let (a, b) = ((off as usize / CHUNK).min(n), ((off + len) as usize).div_ceil(CHUNK).min(n));
        for c in a..b {
            let at = ((c * CHUNK) as u64).max(off);
            if self.store_busy[c] > 0 {
                let q = self.stores.iter().find(|q| q.off / CHUNK <= c && c < (q.off + q.len).div_ceil(CHUNK));
                let (tid, line) = q.map_or((0, 0), |q| (q.tid, q.line));
                return Some(AsyncWriteHazard::StoreSource { tid, line, at });
            }
            let (v, t) = self.store_retired[c];
            if v != 0 && (v - 1) as usize != w && vc[(v - 1) as usize] < t {
                return Some(AsyncWriteHazard::StoreRetired { warp: v - 1, at });
            }
        }
        None
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

    /// The rule of [`track`], written plainly: the per-byte reference of the tests.
    fn track_plain(s: &mut [u32], a: &Access, write: bool) -> SharedHazard {
        let (w, lane, now) = (a.w, a.lane, a.now);
        let (wclk, wtid) = (s[W_CLK], w_tid(s));
        let write_ordered = wtid == a.tid || wtid == ASYNC_TID || {
            let v = (wtid / 32) as usize;
            if v == w {
                wclk < now
            } else {
                a.vc[v] >= wclk
            }
        };
        let mut h = SharedHazard::None;
        if write {
            if !write_ordered {
                h = SharedHazard::Race { tid: wtid, several: false, write: true };
            } else {
                for v in 0..32 {
                    if s[R_MASK] >> v & 1 == 0 {
                        continue;
                    }
                    let e = s[HEAD + v];
                    let (t, l) = (e >> LANE_BITS, e & ((1 << LANE_BITS) - 1));
                    let race = if v == w { t == now && l != lane } else { a.vc[v] < t };
                    if race {
                        let several = l == SEVERAL_LANES;
                        let tid = (v as u32 * 32 + if several { 0 } else { l }) as u16;
                        h = SharedHazard::Race { tid, several, write: false };
                        break;
                    }
                }
            }
            s[W_CLK] = now;
            s[R_MASK] = 0;
            s[W_TID] = a.tid as u32;
        } else {
            if wclk < a.block_start {
                h = SharedHazard::Uninit;
            } else if !write_ordered {
                h = SharedHazard::Race { tid: wtid, several: false, write: true };
            }
            let bit = 1u32 << w;
            let e = s[HEAD + w];
            s[HEAD + w] = if s[R_MASK] & bit != 0 && e >> LANE_BITS == now {
                if e & ((1 << LANE_BITS) - 1) != lane {
                    now << LANE_BITS | SEVERAL_LANES
                } else {
                    e
                }
            } else {
                now << LANE_BITS | lane
            };
            s[R_MASK] |= bit;
        }
        h
    }

    /// Grain- and run-wise tracking ([`SharedShadow::for_each`] with [`track`], and
    /// [`SharedShadow::track_range`]) gives every byte the hazards and final state of per-byte
    /// tracking by [`track_plain`].
    #[test]
    fn grains_match_per_byte_tracking() {
        use crate::emu::clocks::Clocks;
        const LEN: usize = 256;
        const NW: usize = 3;
        let mut bytes = vec![vec![0u32; HEAD + NW]; LEN];
        let mut sh = SharedShadow::default();
        sh.ensure(LEN, NW);
        let mut ranged = SharedShadow::default();
        ranged.ensure(LEN, NW);
        let mut clocks = Clocks::default();
        clocks.start_block(NW);
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut rnd = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut hazards, mut joins) = (0, 0);
        for step in 0..200_000 {
            if step % 5000 == 0 {
                // A new block: earlier writes become uninitialized.
                clocks.start_block(NW);
            } else if rnd(50) == 0 {
                // A barrier of a random set of warps, or one warp's intra-warp sync.
                let members = rnd(8);
                if members == 0 {
                    clocks.bump(rnd(NW as u64) as usize);
                } else {
                    for v in 0..NW {
                        if members >> v & 1 != 0 {
                            clocks.bar_arrive(0, v);
                        }
                    }
                    clocks.bar_complete(0, members);
                }
            }
            let len = [1u64, 2, 4, 8, 16][rnd(5) as usize];
            let off = rnd((LEN as u64) / len) * len + if rnd(8) == 0 { rnd(len) } else { 0 };
            let len = len.min(LEN as u64 - off);
            // Few threads (some in one warp) so that races and merges both happen.
            let tid = [0u16, 1, 2, 33, 64][rnd(5) as usize];
            let write = rnd(2) == 0;
            let a = Access::new(tid, &clocks.vc[tid as usize / 32], clocks.block_start);
            if rnd(40) == 0 {
                // A TMA / bulk copy lands there (its writes are not checked by `track`).
                for b in off..off + len {
                    track_async_write(&mut bytes[b as usize], a.now);
                }
                sh.for_each(off, len, |s, _| track_async_write(s, a.now));
                ranged.for_each(off, len, |s, _| track_async_write(s, a.now));
                continue;
            }
            let proxy = !write && rnd(4) == 0;
            let generic = (off..off + len).find_map(|b| {
                let s = &bytes[b as usize];
                (w_tid(s) != ASYNC_TID && s[W_CLK] >= clocks.block_start).then(|| (b, w_tid(s), s[W_CLK]))
            });
            let mut want = Vec::new();
            for b in off..off + len {
                want.push((b, track_plain(&mut bytes[b as usize], &a, write)));
            }
            let whole_before = ranged.whole.iter().filter(|&&x| x).count();
            let t = ranged.track_range(off, len, &a, write, proxy);
            assert_eq!(t.first, want.iter().copied().find(|h| h.1 != SharedHazard::None), "step {step}");
            assert_eq!(t.generic, if proxy { generic } else { None }, "step {step}");
            joins += (ranged.whole.iter().filter(|&&x| x).count() > whole_before) as u32;
            // A call for byte b stands for the bytes up to the next call (the rest of its grain).
            let mut calls = Vec::new();
            sh.for_each(off, len, |s, b| calls.push((b, track(s, &a, write))));
            assert_eq!(calls.first().map(|c| c.0), Some(off), "step {step}");
            let got: Vec<_> = (off..off + len)
                .map(|x| (x, calls.iter().rev().find(|c| c.0 <= x).map_or(SharedHazard::None, |c| c.1)))
                .collect();
            assert_eq!(got, want, "step {step}");
            hazards += want.iter().filter(|h| h.1 != SharedHazard::None).count();
            for (b, s) in bytes.iter().enumerate() {
                assert!(same(&sh.byte(b), s), "step {step} byte {b}: {:?} vs {s:?}", sh.byte(b));
                assert!(same(&ranged.byte(b), s), "step {step} byte {b}: {:?} vs {s:?}", ranged.byte(b));
            }
        }
        assert!(hazards > 1000, "{hazards}");
        assert!(joins > 1000, "{joins}");
    }

    /// A write must follow every reader, of any warp, not only the latest.
    #[test]
    fn write_after_reads_of_several_warps() {
        use crate::emu::clocks::Clocks;
        let mut c = Clocks::default();
        c.start_block(3);
        let mut s = vec![0u32; HEAD + 3];
        fn acc(c: &Clocks, tid: u16) -> Access<'_> {
            Access::new(tid, &c.vc[tid as usize / 32], c.block_start)
        }
        assert_eq!(track(&mut s, &acc(&c, 0), true), SharedHazard::None);
        // Warps 1 and 2 read after a barrier with warp 0.
        for v in 0..3 {
            c.bar_arrive(0, v);
        }
        c.bar_complete(0, 0b111);
        assert_eq!(track(&mut s, &acc(&c, 32), false), SharedHazard::None);
        assert_eq!(track(&mut s, &acc(&c, 64), false), SharedHazard::None);
        // Warp 1 hands off to warp 0 through an mbarrier; warp 2 does not: still a race.
        c.mbar_init(0);
        c.mbar_arrive(0, 1);
        c.mbar_complete(0);
        c.mbar_acquire(0, 0);
        assert_eq!(track(&mut s, &acc(&c, 0), true), SharedHazard::Race { tid: 64, several: false, write: false });
    }

    impl SharedShadow {
        fn byte(&self, b: usize) -> Vec<u32> {
            let (g, st) = (b / GRAIN, self.stride);
            if self.whole[g / RUN] {
                return self.grain[g / RUN * RUN * st..(g / RUN * RUN + 1) * st].to_vec();
            }
            match self.split[g] as usize {
                0 => self.grain[g * st..(g + 1) * st].to_vec(),
                p => {
                    let k = (p - 1) * GRAIN + b % GRAIN;
                    self.bytes[k * st..(k + 1) * st].to_vec()
                }
            }
        }
    }
}
