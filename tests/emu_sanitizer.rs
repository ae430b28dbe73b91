//! Planted bugs (kernels/test/emu_bugs.cu) are each caught by the emulator's sanitizer with the
//! right kind, at the CUDA line marked "BUG:" (mapped from the finding's PTX line through the
//! PTX's `.loc` directives), and the sanitizer can be turned off.

mod common;
use attnjoule::device::{FindingKind, LaunchReport};
use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::kernels::module;
use common::*;

const SRC: &str = include_str!("../kernels/test/emu_bugs.cu");

fn expect(rep: &LaunchReport, kind: FindingKind, marker: &str) {
    let ptx = module("emu_bugs").expect("module").ptx;
    let line = marker_line(SRC, marker);
    for f in &rep.findings {
        println!(
            "  {:?} block {:?} thread {:?} PTX line {} (source line {:?}) addr {:?}: {}",
            f.kind,
            f.block,
            f.thread,
            f.ptx_line,
            source_line(ptx, f.ptx_line),
            f.address,
            f.message
        );
    }
    assert!(rep.findings_total >= rep.findings.len() as u64);
    let hit = rep.findings.iter().find(|f| f.kind == kind).unwrap_or_else(|| panic!("no {kind:?} finding"));
    assert_eq!(source_line(ptx, hit.ptx_line), Some(line), "{kind:?} reported at the wrong line");
    assert!(!hit.kernel.is_empty());
}

#[test]
fn off_by_one_store() {
    let dev = EmuDevice::new();
    let n = 100;
    let (ib, ob) = (buf(&dev, &vec![1f32; n]), out(&dev, 4 * n));
    let rep = launch(&dev, "emu_bugs", "bug_off_by_one", [1, 1, 1], [128, 1, 1], &[ptr(&ib), ptr(&ob), int(n as i32)]);
    expect(&rep, FindingKind::GlobalOutOfBounds, "BUG: off-by-one");
    let f = rep.findings.iter().find(|f| f.kind == FindingKind::GlobalOutOfBounds).expect("finding");
    assert_eq!(f.thread, [100, 0, 0]);
    assert_eq!(f.address, Some(ob.addr() + 400));
    assert_eq!(rep.findings_total, 1);
}

#[test]
fn missing_syncthreads() {
    let dev = EmuDevice::new();
    let (ib, ob) = (buf(&dev, &vec![1f32; 64]), out(&dev, 4 * 64));
    let rep = launch(&dev, "emu_bugs", "bug_missing_sync", [1, 1, 1], [64, 1, 1], &[ptr(&ib), ptr(&ob)]);
    expect(&rep, FindingKind::SharedRace, "BUG: missing __syncthreads");
}

#[test]
fn uninitialized_shared_read() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * 64);
    let rep = launch(&dev, "emu_bugs", "bug_uninit_shared", [1, 1, 1], [64, 1, 1], &[ptr(&ob)]);
    expect(&rep, FindingKind::UninitShared, "BUG: uninitialized shared");
    assert!(rep.findings.iter().all(|f| f.thread[0] >= 32));
}

#[test]
fn divergent_barrier() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * 64);
    let rep = launch(&dev, "emu_bugs", "bug_divergent_barrier", [1, 1, 1], [64, 1, 1], &[ptr(&ob)]);
    expect(&rep, FindingKind::BarrierDivergence, "BUG: divergent barrier");
}

#[test]
fn bad_shuffle_mask() {
    let dev = EmuDevice::new();
    let (ib, ob) = (buf(&dev, &(0..32).collect::<Vec<i32>>()), out(&dev, 4 * 32));
    let rep = launch(&dev, "emu_bugs", "bug_shuffle_mask", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    expect(&rep, FindingKind::InvalidWarpMask, "BUG: mask names only half");
}

#[test]
fn misaligned_vector_load() {
    let dev = EmuDevice::new();
    let (ib, ob) = (buf(&dev, &vec![1f32; 4 * 32 + 4]), out(&dev, 4 * 32));
    let rep = launch(&dev, "emu_bugs", "bug_misaligned", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    expect(&rep, FindingKind::Misaligned, "BUG: misaligned vector load");
}

#[test]
fn uninitialized_global_read() {
    let dev = EmuDevice::new();
    let ib = attnjoule::device::DevBuf::new(&dev, 4 * 32).expect("alloc");
    let ob = out(&dev, 4 * 32);
    let rep = launch(&dev, "emu_bugs", "bug_uninit_global", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    expect(&rep, FindingKind::UninitGlobal, "BUG: in was allocated but never written");
}

#[test]
fn sanitizer_off_faults_instead() {
    let dev = EmuDevice::with_options(EmuOptions { sanitize: false, ..Default::default() }).expect("device");
    let n = 100;
    let (ib, ob) = (buf(&dev, &vec![1f32; n]), out(&dev, 4 * n));
    let k = attnjoule::kernels::KernelRef::new("emu_bugs", "bug_off_by_one").expect("kernel");
    let cfg = attnjoule::device::LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: 0 };
    let (p1, p2, p3) = (ptr(&ib), ptr(&ob), int(n as i32));
    let err = dev.run_kernel(&k, cfg, &[&p1, &p2, &p3]).expect_err("out-of-bounds store must fault");
    println!("{err}");
    assert!(err.to_string().contains("PTX line"));
}

#[test]
fn unsupported_instruction_is_an_error_with_its_line() {
    let dev = EmuDevice::new();
    let (ib, ob) = (buf(&dev, &[1f32; 32]), out(&dev, 4 * 32));
    let k = attnjoule::kernels::KernelRef::new("emu_bugs", "emu_unsupported").expect("kernel");
    let cfg = attnjoule::device::LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    let (p1, p2) = (ptr(&ib), ptr(&ob));
    let err = dev.run_kernel(&k, cfg, &[&p1, &p2]).expect_err("must not run");
    let msg = err.to_string();
    println!("{msg}");
    assert!(msg.contains("testp") && msg.contains("line"), "{msg}");
}

#[test]
fn parameter_size_mismatch_is_an_error() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * 32);
    let k = attnjoule::kernels::KernelRef::new("emu_bugs", "bug_uninit_shared").expect("kernel");
    let cfg = attnjoule::device::LaunchConfig { grid: [1, 1, 1], block: [64, 1, 1], dynamic_shared_bytes: 0 };
    let short = [0u8; 4];
    let err = dev.run_kernel(&k, cfg, &[&short]).expect_err("4-byte pointer");
    assert!(err.to_string().contains("8 bytes in the PTX"), "{err}");
    let p = ptr(&ob);
    let err = dev.run_kernel(&k, cfg, &[&p, &p]).expect_err("two args");
    assert!(err.to_string().contains("takes 1 parameters"), "{err}");
}

#[test]
fn missing_syncwarp_is_an_intra_warp_race() {
    let dev = EmuDevice::new();
    let input: Vec<i32> = (0..32).collect();
    let (ib, ob) = (buf(&dev, &input), out(&dev, 4 * 32));
    let rep = launch(&dev, "emu_bugs", "bug_missing_syncwarp", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    expect(&rep, FindingKind::SharedRace, "BUG: missing __syncwarp");
    let rep = launch(&dev, "emu_bugs", "ok_syncwarp", [1, 1, 1], [32, 1, 1], &[ptr(&ib), ptr(&ob)]);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let got: Vec<i32> = get(&dev, &ob, 32);
    assert_eq!(got, (0..32).map(|l| (l + 1) % 32).collect::<Vec<i32>>());
}
