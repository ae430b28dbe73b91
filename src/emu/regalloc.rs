//! Register reuse at lowering time. nvcc's PTX is in SSA-like form with thousands of virtual
//! registers (the flash and decode kernels use ~2,500); giving each its own per-lane slot made a
//! warp's register file hundreds of KB, so most register reads missed the CPU caches. Here
//! virtual registers whose live ranges never overlap share a slot.
//!
//! Liveness is ordinary per-thread liveness: every lane runs the sequential program on its own
//! registers (min-PC reconvergence only interleaves lanes), and warp collectives (mma, ldmatrix,
//! shfl, vote, redux) read and write the same register numbers in all lanes at one instruction.
//! Operands come from [`Inst::for_each_reg`]; a guarded instruction's destinations count as
//! use + def, because lanes whose guard is false keep the old value.
//!
//! Positions: instruction `p` reads its sources at `2p` and writes its destinations at `2p + 1`,
//! so a value whose last use is at `p` can share a slot with a value defined at `p` (the executor
//! reads all of an instruction's sources before it writes any destination, in every lane). Each
//! register's hull `[first position live, last position live]` in instruction order is allocated
//! by linear scan: conservative (a hull covers the holes of a range) and optimal for intervals.
//!
//! Read-only registers ([`Kernel::consts`]: immediates, symbol addresses, special registers) keep
//! fixed slots `0..consts.len()`, outside the allocation; an instruction writing one is rejected.

use super::ir::{Access, Inst, Kernel, Op, WgInfo, NOREG};
use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A fixed-size bitset over register numbers.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Bits(Vec<u64>);

impl Bits {
    pub(crate) fn new(n: usize) -> Bits {
        Bits(vec![0; n.div_ceil(64)])
    }
    pub(crate) fn set(&mut self, i: u32) {
        self.0[i as usize >> 6] |= 1 << (i & 63);
    }
    pub(crate) fn clear(&mut self, i: u32) {
        self.0[i as usize >> 6] &= !(1 << (i & 63));
    }
    pub(crate) fn get(&self, i: u32) -> bool {
        self.0[i as usize >> 6] >> (i & 63) & 1 != 0
    }
    /// self |= other; whether anything changed.
    fn union(&mut self, other: &Bits) -> bool {
        let mut changed = false;
        for (a, b) in self.0.iter_mut().zip(&other.0) {
            let n = *a | b;
            changed |= n != *a;
            *a = n;
        }
        changed
    }
    pub(crate) fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        self.0.iter().enumerate().flat_map(|(w, &bits)| {
            let mut m = bits;
            std::iter::from_fn(move || {
                if m == 0 {
                    return None;
                }
                let b = m.trailing_zeros();
                m &= m - 1;
                Some((w as u32) << 6 | b)
            })
        })
    }
}

/// Instructions that may execute after `p` (per lane).
pub(crate) fn successors(insts: &[Inst], p: usize) -> impl Iterator<Item = usize> {
    let i = &insts[p];
    let guarded = i.guard != NOREG;
    let (target, fall) = match i.op {
        Op::Bra { target } => (Some(target as usize), guarded),
        Op::Exit => (None, guarded),
        _ => (None, true),
    };
    let fall = if fall && p + 1 < insts.len() { Some(p + 1) } else { None };
    target.into_iter().chain(fall)
}

/// An instruction's uses and unconditional defs, with guarded defs also counted as uses.
/// Sorted and deduplicated per kind.
pub(crate) fn uses_defs(i: &Inst, ext: &[u32], uses: &mut Vec<u32>, defs: &mut Vec<u32>) {
    uses.clear();
    defs.clear();
    let guarded = i.guard != NOREG;
    i.for_each_reg(ext, |r, a| match a {
        Access::Use => uses.push(r),
        Access::Def => {
            defs.push(r);
            if guarded {
                uses.push(r);
            }
        }
    });
    uses.sort_unstable();
    uses.dedup();
    defs.sort_unstable();
    defs.dedup();
}

/// Allocates `k`'s registers in place (see the module comment); returns the map from virtual
/// register to slot. Errors name the instruction that writes a read-only register.
pub fn allocate(k: &mut Kernel) -> Result<Vec<u32>, String> {
    // The sanitizer checks wgmma's register rules on virtual registers: record them first.
    k.wg = wgmma_info(k).map(std::sync::Arc::new);
    let n = k.nregs as usize;
    let ni = k.insts.len();
    let mut is_const = Bits::new(n);
    for &(r, _) in &k.consts {
        is_const.set(r);
    }
    // Per instruction: uses and defs (read-only registers excluded: they are never allocated).
    let (mut u, mut d) = (Vec::new(), Vec::new());
    let mut uses: Vec<Vec<u32>> = Vec::with_capacity(ni);
    let mut defs: Vec<Vec<u32>> = Vec::with_capacity(ni);
    for i in &k.insts {
        uses_defs(i, &k.ext, &mut u, &mut d);
        if let Some(&r) = d.iter().find(|&&r| is_const.get(r)) {
            return Err(format!("line {}: writes read-only register {r} (immediate or special register)", i.line));
        }
        uses.push(u.iter().copied().filter(|&r| !is_const.get(r)).collect());
        defs.push(std::mem::take(&mut d));
    }

    // Basic blocks: leaders are the entry, branch targets and instructions after a branch / exit.
    let mut leader = vec![false; ni + 1];
    leader[0] = true;
    leader[ni] = true;
    for (p, i) in k.insts.iter().enumerate() {
        if let Op::Bra { target } = i.op {
            leader[(target as usize).min(ni)] = true;
            leader[p + 1] = true;
        }
        if let Op::Exit = i.op {
            leader[p + 1] = true;
        }
    }
    let starts: Vec<usize> = (0..ni).filter(|&p| leader[p]).collect();
    let mut block_of = vec![0usize; ni];
    let blocks: Vec<(usize, usize)> = starts
        .iter()
        .enumerate()
        .map(|(b, &s)| {
            let e = starts.get(b + 1).copied().unwrap_or(ni);
            block_of[s..e].fill(b);
            (s, e)
        })
        .collect();
    let succ: Vec<Vec<usize>> =
        blocks.iter().map(|&(_, e)| successors(&k.insts, e - 1).map(|q| block_of[q]).collect()).collect();

    // gen (used before any def in the block) and kill (defined in the block), then the fixpoint
    // live_in = gen | (live_out & !kill), live_out = union of the successors' live_in.
    let nb = blocks.len();
    let mut gen = vec![Bits::new(n); nb];
    let mut kill = vec![Bits::new(n); nb];
    for (b, &(s, e)) in blocks.iter().enumerate() {
        for p in (s..e).rev() {
            for &r in &defs[p] {
                kill[b].set(r);
                gen[b].clear(r);
            }
            for &r in &uses[p] {
                gen[b].set(r);
            }
        }
    }
    let mut live_in = gen.clone();
    let mut live_out = vec![Bits::new(n); nb];
    let mut changed = true;
    while changed {
        changed = false;
        for b in (0..nb).rev() {
            let mut out = Bits::new(n);
            for &s in &succ[b] {
                out.union(&live_in[s]);
            }
            if out != live_out[b] {
                let mut inn = out.clone();
                for (x, (&g, &kl)) in inn.0.iter_mut().zip(gen[b].0.iter().zip(&kill[b].0)) {
                    *x = (*x & !kl) | g;
                }
                changed |= live_in[b].union(&inn);
                live_out[b] = out;
            }
        }
    }

    // Hulls: a register live anywhere in a block is live-in at its start or defined inside it,
    // and live-out at its end or used inside it, so these end points bound its whole range.
    let mut lo = vec![u32::MAX; n];
    let mut hi = vec![0u32; n];
    let mut cover = |r: u32, pos: u32| {
        lo[r as usize] = lo[r as usize].min(pos);
        hi[r as usize] = hi[r as usize].max(pos);
    };
    for (b, &(s, e)) in blocks.iter().enumerate() {
        live_in[b].iter().for_each(|r| cover(r, 2 * s as u32));
        live_out[b].iter().for_each(|r| cover(r, 2 * (e as u32 - 1) + 1));
        for p in s..e {
            uses[p].iter().for_each(|&r| cover(r, 2 * p as u32));
            defs[p].iter().for_each(|&r| cover(r, 2 * p as u32 + 1));
        }
    }

    // Linear scan over hulls by start; the lowest free slot is taken (deterministic).
    let nconst = k.consts.len() as u32;
    let mut map = vec![NOREG; n];
    for (slot, &(r, _)) in k.consts.iter().enumerate() {
        map[r as usize] = slot as u32;
    }
    let mut order: Vec<u32> = (0..n as u32).filter(|&r| !is_const.get(r) && lo[r as usize] != u32::MAX).collect();
    order.sort_unstable_by_key(|&r| (lo[r as usize], r));
    let mut active: BinaryHeap<Reverse<(u32, u32)>> = BinaryHeap::new(); // (hull end, slot)
    let mut free: BinaryHeap<Reverse<u32>> = BinaryHeap::new();
    let mut nslots = 0u32;
    for r in order {
        let (start, end) = (lo[r as usize], hi[r as usize]);
        while let Some(&Reverse((e, slot))) = active.peek() {
            if e >= start {
                break;
            }
            active.pop();
            free.push(Reverse(slot));
        }
        let slot = free.pop().map_or_else(
            || {
                nslots += 1;
                nslots - 1
            },
            |Reverse(s)| s,
        );
        active.push(Reverse((end, slot)));
        map[r as usize] = nconst + slot;
    }

    // Registers in no operand position of `for_each_reg` are never read by the executor; they
    // still get slots of their own, so a field the enumeration missed cannot alias a live value.
    let mut m = |r: &mut u32| {
        if *r != NOREG {
            let s = &mut map[*r as usize];
            if *s == NOREG {
                *s = nconst + nslots;
                nslots += 1;
            }
            *r = *s;
        }
    };
    for i in &mut k.insts {
        for r in [&mut i.d, &mut i.d2, &mut i.a, &mut i.b, &mut i.c, &mut i.e, &mut i.guard] {
            m(r);
        }
    }
    k.ext.iter_mut().for_each(&mut m);
    for (r, _) in &mut k.consts {
        *r = map[*r as usize];
    }
    k.vregs = k.nregs;
    k.nregs = nconst + nslots;
    Ok(map)
}

/// The wgmma fragment registers of the unallocated kernel `k` (see [`WgInfo`]); None when it
/// has no wgmma.
///
/// Slot reuse stays correct with wgmma because the executor performs a wgmma when it is issued:
/// it reads A, B and (scale-d) D and writes D at the instruction's own position, exactly where
/// liveness places its uses and definitions. The asynchronous window up to `wgmma.wait_group`
/// exists only for the sanitizer, which checks it on these virtual registers.
pub(crate) fn wgmma_info(k: &Kernel) -> Option<WgInfo> {
    let mut dense = vec![NOREG; k.nregs as usize];
    let mut n = 0u32;
    for i in &k.insts {
        if let Op::Wgmma(_) = i.op {
            for &r in i.ext_regs(&k.ext) {
                if dense[r as usize] == NOREG {
                    dense[r as usize] = n;
                    n += 1;
                }
            }
        }
    }
    if n == 0 {
        return None;
    }
    let mut start = Vec::with_capacity(k.insts.len() + 1);
    let mut regs = Vec::new();
    start.push(0);
    for i in &k.insts {
        let s = regs.len();
        if let Op::Wgmma(_) = i.op {
            regs.extend(i.ext_regs(&k.ext).iter().map(|&r| dense[r as usize]));
        } else {
            i.for_each_reg(&k.ext, |r, _| {
                if dense[r as usize] != NOREG {
                    regs.push(dense[r as usize]);
                }
            });
            regs[s..].sort_unstable();
            let mut v = regs.split_off(s);
            v.dedup();
            regs.extend(v);
        }
        start.push(regs.len() as u32);
    }
    Some(WgInfo { nregs: n, start, regs })
}

#[cfg(test)]
mod tests {
    use super::super::parse::lower_module_with;
    use super::*;
    use std::collections::BTreeSet;

    /// Per-instruction liveness, computed independently of `allocate` (no basic blocks, no
    /// hulls): a worklist over instructions until live-in / live-out sets stop changing.
    /// Per instruction: live-in, live-out, registers written.
    type Liveness = (Vec<BTreeSet<u32>>, Vec<BTreeSet<u32>>, Vec<Vec<u32>>);

    fn per_position_liveness(k: &Kernel) -> Liveness {
        let n = k.insts.len();
        let consts: BTreeSet<u32> = k.consts.iter().map(|&(r, _)| r).collect();
        let (mut uses, mut defs, mut kills) = (vec![], vec![], vec![]);
        for i in &k.insts {
            let (mut u, mut d) = (BTreeSet::new(), Vec::new());
            i.for_each_reg(&k.ext, |r, a| {
                if consts.contains(&r) {
                    return;
                }
                match a {
                    Access::Use => {
                        u.insert(r);
                    }
                    Access::Def => d.push(r),
                }
            });
            // A guarded write is partial: it reads (keeps) the old value and kills nothing.
            let guarded = i.guard != NOREG;
            if guarded {
                u.extend(d.iter().copied());
            }
            kills.push(if guarded { vec![] } else { d.clone() });
            uses.push(u);
            defs.push(d);
        }
        let succ = |p: usize| -> Vec<usize> {
            let i = &k.insts[p];
            let mut v = vec![];
            match i.op {
                Op::Bra { target } => v.push(target as usize),
                Op::Exit => {}
                _ => v.push(p + 1),
            }
            if i.guard != NOREG && matches!(i.op, Op::Bra { .. } | Op::Exit) {
                v.push(p + 1);
            }
            v.retain(|&q| q < n);
            v
        };
        let mut live_in = vec![BTreeSet::new(); n];
        let mut live_out = vec![BTreeSet::new(); n];
        let mut changed = true;
        while changed {
            changed = false;
            for p in (0..n).rev() {
                let out: BTreeSet<u32> = succ(p).into_iter().flat_map(|q| live_in[q].iter().copied()).collect();
                let mut inn: BTreeSet<u32> = out.iter().copied().filter(|r| !kills[p].contains(r)).collect();
                inn.extend(uses[p].iter().copied());
                if inn != live_in[p] || out != live_out[p] {
                    changed = true;
                    live_in[p] = inn;
                    live_out[p] = out;
                }
            }
        }
        (live_in, live_out, defs)
    }

    fn assert_distinct(regs: impl Iterator<Item = u32>, map: &[u32], what: &str) {
        let mut seen = std::collections::HashMap::new();
        for r in regs {
            if let Some(other) = seen.insert(map[r as usize], r) {
                assert_eq!(other, r, "{what}: registers {other} and {r} share slot {}", map[r as usize]);
            }
        }
    }

    /// Checks `k`'s allocation: no two registers live at the same point share a slot, no
    /// register shares a read-only register's slot, and every register field of every
    /// instruction is one `for_each_reg` reports (so liveness sees all operands).
    fn check(k: &Kernel, what: &str) {
        let at = |p: usize| format!("{what} instruction {p} (PTX line {})", k.insts[p].line);
        for (p, i) in k.insts.iter().enumerate() {
            let mut listed = BTreeSet::new();
            i.for_each_reg(&k.ext, |r, _| {
                listed.insert(r);
            });
            let xs = i.ext_regs(&k.ext);
            for r in [i.d, i.d2, i.a, i.b, i.c, i.e, i.guard].into_iter().chain(xs.iter().copied()) {
                assert!(r == NOREG || listed.contains(&r), "{}: operand {r} not enumerated", at(p));
            }
        }
        let mut ka = k.clone();
        let map = allocate(&mut ka).expect("allocate");
        let nconst = k.consts.len() as u32;
        for &(r, _) in &k.consts {
            assert!(map[r as usize] < nconst);
        }
        let (live_in, live_out, defs) = per_position_liveness(k);
        for p in 0..k.insts.len() {
            let all = live_in[p].iter().chain(&live_out[p]).chain(&defs[p]);
            assert!(all.clone().all(|&r| map[r as usize] >= nconst), "{}: read-only slot reused", at(p));
            assert!(all.clone().all(|&r| map[r as usize] < ka.nregs), "{}: slot out of range", at(p));
            // Values read here; values alive after it together with its results.
            assert_distinct(live_in[p].iter().copied(), &map, &format!("{} live-in", at(p)));
            let after = live_out[p].iter().chain(&defs[p]).copied();
            assert_distinct(after, &map, &format!("{} live-out + defs", at(p)));
        }
        assert!(ka.nregs <= k.nregs);
    }

    #[test]
    fn crate_kernels_never_share_a_slot_between_live_registers() {
        let mut kernels = 0;
        for m in crate::kernels::MODULES {
            for (name, k) in lower_module_with(m.ptx, false) {
                let Ok(k) = k else { continue };
                check(&k, &format!("{}::{name}", m.name));
                kernels += 1;
            }
        }
        assert!(kernels > 20, "only {kernels} kernels checked");
    }

    /// A guarded def (`@%p mov`) keeps the old value in lanes whose guard is false: here %r1
    /// carries the previous iteration's value around the back edge, past its last use in the
    /// text, where %r4 is defined.
    #[test]
    fn guarded_def_in_a_loop_keeps_the_value_live_around_the_back_edge() {
        let ptx = r#"
.visible .entry g(.param .u64 g_param_0)
{
    .reg .pred %p<3>;
    .reg .b32 %r<8>;
    mov.u32 %r1, 5;
    mov.u32 %r2, 0;
    mov.u32 %r5, 0;
$L__loop:
    add.s32 %r3, %r2, 1;
    setp.eq.s32 %p1, %r2, 3;
    @%p1 mov.u32 %r1, %r3;
    add.s32 %r5, %r5, %r1;
    mul.lo.s32 %r4, %r2, 13;
    add.s32 %r5, %r5, %r4;
    add.s32 %r2, %r2, 1;
    setp.lt.u32 %p2, %r2, 8;
    @%p2 bra $L__loop;
    ret;
}
"#;
        let m = lower_module_with(ptx, false);
        let k = m.get("g").expect("entry").as_ref().expect("lowers");
        check(k, "g");
    }
}
