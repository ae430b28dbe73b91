//! Planted bugs in asynchronous code (kernels/test/emu_async_bugs.cu): each is caught with the
//! right kind at the CUDA line marked "BUG:", and its correct twin (the same kernel with `bug` 0)
//! runs clean. Deadlocks and livelocks are reported, with every barrier's state, within seconds.

mod common;
use attnjoule::device::tensor_map::{TensorMapElem, TensorMapSpec, TensorMapSwizzle};
use attnjoule::device::{DevBuf, Device, FindingKind, LaunchConfig, LaunchReport};
use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::kernels::{module, KernelRef};
use common::*;
use std::time::{Duration, Instant};

const SRC: &str = include_str!("../kernels/test/emu_async_bugs.cu");

fn run(dev: &EmuDevice, entry: &str, block: u32, smem: u32, args: &[Vec<u8>]) -> attnjoule::Result<LaunchReport> {
    let k = KernelRef::new("emu_async_bugs", entry).expect("kernel");
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    dev.run_kernel(&k, LaunchConfig { grid: [1, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: smem }, &a)
}

fn show(rep: &LaunchReport) {
    let ptx = module("emu_async_bugs").expect("module").ptx;
    for f in &rep.findings {
        println!(
            "  {:?} thread {:?} PTX line {} (source line {:?}) addr {:?}: {}",
            f.kind,
            f.thread,
            f.ptx_line,
            source_line(ptx, f.ptx_line),
            f.address,
            f.message
        );
    }
}

/// The first finding of `kind`, which must be at the line marked `marker` (when given).
fn expect<'r>(rep: &'r LaunchReport, kind: FindingKind, marker: Option<&str>) -> &'r attnjoule::device::Finding {
    show(rep);
    let hit = rep.findings.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("no {kind:?} finding"));
    if let Some(m) = marker {
        let ptx = module("emu_async_bugs").expect("module").ptx;
        assert_eq!(source_line(ptx, hit.ptx_line), Some(marker_line(SRC, m)), "{kind:?} reported at the wrong line");
    }
    hit
}

fn clean(rep: &LaunchReport) {
    show(rep);
    assert_eq!(rep.findings_total, 0, "the correct twin must run clean");
}

/// A 32x32 f32 tensor of random values and its map (box 32x32, no swizzle).
fn tile_map<'d>(dev: &'d EmuDevice, rng: &mut Rng) -> (DevBuf<'d>, Vec<u8>) {
    let x: Vec<f32> = (0..1024).map(|_| rng.range(-100, 100) as f32).collect();
    let g = buf(dev, &x);
    let spec = TensorMapSpec::packed(TensorMapElem::F32, g.addr(), &[32, 32], &[32, 32], TensorMapSwizzle::None);
    let map = dev.encode_tensor_map(&spec).expect("map");
    (g, map.as_bytes().to_vec())
}

/// Runs `entry(map, out, bug)` with the bug and its twin; returns the buggy run's report.
fn tma_bug(entry: &str, smem: u32) -> LaunchReport {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let (_g, map) = tile_map(&dev, &mut rng);
    let ob = out(&dev, 4 * 128);
    clean(&run(&dev, entry, 128, smem, &[map.clone(), ptr(&ob), int(0)]).expect("twin"));
    run(&dev, entry, 128, smem, &[map, ptr(&ob), int(1)]).expect("bug")
}

#[test]
fn tma_read_before_its_phase_is_observed() {
    let rep = tma_bug("bug_tma_early_read", 4096);
    let f = expect(&rep, FindingKind::AsyncRace, Some("BUG: read before the mbarrier phase"));
    assert!(f.message.contains("phase 0"), "{}", f.message);
}

#[test]
fn tma_destination_misaligned() {
    let rep = tma_bug("bug_tma_misaligned", 4096 + 128);
    expect(&rep, FindingKind::Misaligned, Some("BUG: misaligned TMA destination"));
}

#[test]
fn tma_box_overruns_shared_memory() {
    let rep = tma_bug("bug_tma_smem_overflow", 4096);
    expect(&rep, FindingKind::SharedOutOfBounds, Some("BUG: box overruns shared memory"));
}

/// `entry(out, bug)` with the bug and its twin; the buggy run's report.
fn plain_bug(entry: &str, block: u32) -> LaunchReport {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * block as usize);
    clean(&run(&dev, entry, block, 0, &[ptr(&ob), int(0)]).expect("twin"));
    run(&dev, entry, block, 0, &[ptr(&ob), int(1)]).expect("bug")
}

#[test]
fn mbarrier_reinit_while_live() {
    let rep = plain_bug("bug_mbar_reinit", 64);
    expect(&rep, FindingKind::MbarrierMisuse, Some("BUG: re-init of a live mbarrier"));
}

#[test]
fn mbarrier_plain_store() {
    let rep = plain_bug("bug_mbar_plain_store", 64);
    expect(&rep, FindingKind::MbarrierMisuse, Some("BUG: plain store to a live mbarrier"));
}

#[test]
fn mbarrier_arrival_underflow() {
    let rep = plain_bug("bug_mbar_underflow", 64);
    let f = expect(&rep, FindingKind::MbarrierMisuse, Some("BUG: arrival underflow"));
    assert!(f.message.contains("underflow"), "{}", f.message);
}

#[test]
fn named_barrier_thread_counts_differ() {
    let rep = plain_bug("bug_named_count", 128);
    let f = expect(&rep, FindingKind::BarrierDivergence, Some("BUG: thread count differs"));
    assert!(f.message.contains("96") && f.message.contains("64"), "{}", f.message);
}

#[test]
fn setmaxnreg_by_part_of_a_warpgroup() {
    let rep = plain_bug("bug_setmaxnreg_partial", 128);
    expect(&rep, FindingKind::RegisterReconfig, Some("BUG: not executed by the whole warpgroup"));
}

/// expect_tx names half the box: the block ends with the phase's tx-count -2048 (no waiter), or
/// the waiting warps deadlock and the report names the barrier's phase and tx-count.
#[test]
fn transaction_bytes_never_match() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let (_g, map) = tile_map(&dev, &mut rng);
    let ob = out(&dev, 4 * 128);
    for wait in [0, 1] {
        clean(&run(&dev, "bug_tx_mismatch", 128, 4096, &[map.clone(), ptr(&ob), int(0), int(wait)]).expect("twin"));
    }
    let rep = run(&dev, "bug_tx_mismatch", 128, 4096, &[map.clone(), ptr(&ob), int(1), int(0)]).expect("bug");
    let f = expect(&rep, FindingKind::MbarrierMisuse, Some("BUG: an mbarrier whose transaction bytes never match"));
    assert!(f.message.contains("tx-count -2048"), "{}", f.message);
    let t0 = Instant::now();
    let rep = run(&dev, "bug_tx_mismatch", 128, 4096, &[map, ptr(&ob), int(1), int(1)]).expect("bug");
    let f = expect(&rep, FindingKind::Deadlock, None);
    assert!(t0.elapsed() < Duration::from_secs(10));
    assert!(f.message.contains("phase 0") && f.message.contains("tx-count -2048"), "{}", f.message);
    assert!(f.message.contains("warp 3 waits in mbarrier.try_wait"), "{}", f.message);
}

/// A barrier that never completes: a deadlock finding with the sanitizer, an error without,
/// within seconds, naming each warp's wait and the barrier's pending arrivals.
#[test]
fn deadlock_is_reported_not_hung() {
    let rep = plain_bug("bug_mbar_deadlock", 64);
    let f = expect(&rep, FindingKind::Deadlock, None);
    assert!(f.message.contains("1 of 2 arrivals pending"), "{}", f.message);
    assert!(f.message.contains("warp 0 waits") && f.message.contains("warp 1 waits"), "{}", f.message);
    let dev = EmuDevice::with_options(EmuOptions { sanitize: false, ..Default::default() }).expect("device");
    let ob = out(&dev, 4 * 64);
    let e = run(&dev, "bug_mbar_deadlock", 64, 0, &[ptr(&ob), int(1)])
        .expect_err("a deadlock is an error without the sanitizer");
    assert!(e.to_string().contains("deadlock"), "{e}");
}

/// Warps spinning forever on a flag nobody sets: a livelock finding within seconds.
#[test]
fn livelock_is_reported_within_seconds() {
    let t0 = Instant::now();
    let rep = plain_bug("bug_livelock", 96);
    let f = expect(&rep, FindingKind::Deadlock, Some("BUG: spins on a flag nobody sets"));
    assert!(f.message.starts_with("livelock"), "{}", f.message);
    let secs = t0.elapsed().as_secs_f64();
    println!("livelock reported after {secs:.2} s");
    assert!(secs < 30.0);
}

/// A 32x32 f32 tensor poisoned with NaN, its map, and random inputs for a tile.
fn store_target<'d>(dev: &'d EmuDevice, rng: &mut Rng) -> (DevBuf<'d>, Vec<u8>, Vec<f32>, DevBuf<'d>) {
    let g = out(dev, 4096);
    let spec = TensorMapSpec::packed(TensorMapElem::F32, g.addr(), &[32, 32], &[32, 32], TensorMapSwizzle::None);
    let map = dev.encode_tensor_map(&spec).expect("map").as_bytes().to_vec();
    let x: Vec<f32> = (0..1024).map(|_| rng.range(-100, 100) as f32).collect();
    let ib = buf(dev, &x);
    (g, map, x, ib)
}

/// Generic writes of a TMA store's source need fence.proxy.async (ordered before the store).
#[test]
fn tma_store_source_without_proxy_fence() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let (g, map, x, ib) = store_target(&dev, &mut rng);
    clean(&run(&dev, "bug_store_no_proxy_fence", 128, 4096, &[map.clone(), ptr(&ib), int(0)]).expect("twin"));
    let got: Vec<f32> = get(&dev, &g, 1024);
    assert!(got.iter().zip(&x).all(|(g, x)| *g == 2.0 * x), "the twin stores the doubled tile");
    let rep = run(&dev, "bug_store_no_proxy_fence", 128, 4096, &[map, ptr(&ib), int(1)]).expect("bug");
    let f = expect(&rep, FindingKind::AsyncRace, Some("BUG: generic writes without fence.proxy.async"));
    assert!(f.message.contains("no fence.proxy.async"), "{}", f.message);
}

/// A TMA store's source overwritten before the wait_group.read that retires it (by the issuing
/// thread, or by another warp whose write the wait is not ordered before).
#[test]
fn tma_store_source_overwritten_before_its_wait() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let (g, map, x, ib) = store_target(&dev, &mut rng);
    let ob = out(&dev, 4096);
    let go = |bug: i32| run(&dev, "bug_store_source_reused", 128, 4096, &[map.clone(), ptr(&ib), ptr(&ob), int(bug)]);
    clean(&go(0).expect("twin"));
    let stored: Vec<f32> = get(&dev, &g, 1024);
    assert_eq!(stored, x, "the store wrote the first tile");
    let reused: Vec<f32> = get(&dev, &ob, 1024);
    assert_eq!(&reused[..2], &[-1.0, -2.0]);
    assert_eq!(&reused[2..], &x[2..]);
    let rep = go(1).expect("bug 1");
    let f = expect(&rep, FindingKind::AsyncRace, Some("BUG: overwrites the store's source"));
    assert!(f.message.contains("wait_group.read has retired"), "{}", f.message);
    let rep = go(2).expect("bug 2");
    let f = expect(&rep, FindingKind::AsyncRace, Some("BUG: not ordered after thread 0's wait"));
    assert!(f.message.contains("warp 0") && f.message.contains("not ordered"), "{}", f.message);
}

/// Races across an mbarrier handoff (the old one-epoch-per-barrier rule missed them): the
/// consumer releases the stage before its in-place write, and the producer's refill (generic
/// stores, or a TMA) is then not ordered after that write.
#[test]
fn refill_races_with_a_write_after_an_early_release() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * 64);
    clean(&run(&dev, "bug_early_release", 64, 0, &[ptr(&ob), int(0)]).expect("twin"));
    let got: Vec<i32> = get(&dev, &ob, 64);
    assert_eq!(got, (0..64).map(|i| 2 * ((i / 32) * 100 + i % 32)).collect::<Vec<i32>>());
    let rep = run(&dev, "bug_early_release", 64, 0, &[ptr(&ob), int(1)]).expect("bug");
    let f = expect(&rep, FindingKind::SharedRace, Some("BUG: refill races with the consumer's write after"));
    assert!(f.message.contains("write by thread 0") && f.message.contains("a write by thread 32"), "{}", f.message);

    let mut rng = Rng(seed());
    let (g, map) = tile_map(&dev, &mut rng);
    let x: Vec<f32> = get(&dev, &g, 1024);
    let ob = out(&dev, 4 * 64);
    let go = |bug: i32| run(&dev, "bug_tma_refill_early_release", 64, 4096, &[map.clone(), ptr(&ob), int(bug)]);
    clean(&go(0).expect("twin"));
    let got: Vec<f32> = get(&dev, &ob, 64);
    assert!((0..64).all(|i| got[i] == 2.0 * x[(i % 32) * 32]), "{got:?}");
    let rep = go(1).expect("bug");
    let f = expect(&rep, FindingKind::SharedRace, Some("BUG: TMA refill races"));
    assert!(f.message.contains("races with a write by thread 32"), "{}", f.message);
}
