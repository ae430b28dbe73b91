//! The sanitizer's wgmma rules (src/emu/exec/wgmma_check.rs): each planted bug is caught, its
//! correct twin runs clean (and computes the right D), on one warpgroup (or two) running an
//! m64n16k16 bf16 wgmma whose operands are in shared memory without swizzle.

use super::cases::{kernel, ptx_module, PTX_HEADER};
use attnjoule::device::{DevBuf, FindingKind, LaunchConfig, LaunchReport};
use attnjoule::emu::ir::Op;
use attnjoule::emu::EmuDevice;

/// The kernel, with markers where the tests plant lines: A (64 x 16, ones) at 0 and B (16 x 16,
/// twos) at 2048, K-major without swizzle (LBO 128, SBO 256); D starts at 0, so every output is
/// 16 * 2 = 32. `out` receives each thread's 8 D registers, then one extra word per thread.
const BASE: &str = r#"
.visible .entry NAME(.param .u64 p_out)
{
	.reg .pred %p<8>;
	.reg .b32 %r<64>;
	.reg .b64 %rd<32>;
	.reg .f32 %d<8>;
	.reg .b32 %a<4>;
	.reg .f32 %x<8>;
	.reg .b32 %q<32>;
	.shared .align 1024 .b8 sm[4096];
	mov.u32 %r0, %tid.x;
	mov.u32 %r1, sm;
	shl.b32 %r2, %r0, 4;
	mov.u32 %r9, %ntid.x;
	shl.b32 %r9, %r9, 4;
	mov.u32 %r5, 1065369472;
	mov.u32 %r6, 1073758208;
	setp.lt.u32 %p0, %r2, 2048;
	selp.b32 %r7, %r5, %r6, %p0;
$Lfill:
	setp.ge.u32 %p1, %r2, 4096;
	@%p1 bra $Lfilled;
	setp.lt.u32 %p0, %r2, 2048;
	selp.b32 %r7, %r5, %r6, %p0;
	add.s32 %r3, %r1, %r2;
	st.shared.v4.u32 [%r3], {%r7, %r7, %r7, %r7};
	add.s32 %r2, %r2, %r9;
	bra $Lfill;
$Lfilled:
	//PROXYFENCE
	fence.proxy.async.shared::cta;
	bar.sync 0;
	shr.u32 %r8, %r1, 4;
	cvt.u64.u32 %rd1, %r8;
	or.b64 %rd2, %rd1, 68720001024;
	add.s64 %rd3, %rd2, 128;
	mov.b32 %a0, 1065369472;
	mov.b32 %a1, 1065369472;
	mov.b32 %a2, 1065369472;
	mov.b32 %a3, 1065369472;
	//PRE
	mov.f32 %d0, 0f00000000;
	mov.f32 %d1, 0f00000000;
	mov.f32 %d2, 0f00000000;
	mov.f32 %d3, 0f00000000;
	mov.f32 %d4, 0f00000000;
	mov.f32 %d5, 0f00000000;
	mov.f32 %d6, 0f00000000;
	mov.f32 %d7, 0f00000000;
	//FENCE
	wgmma.fence.sync.aligned;
	//POSTFENCE
	wgmma.mma_async.sync.aligned.m64n16k16.f32.bf16.bf16 {%d0, %d1, %d2, %d3, %d4, %d5, %d6, %d7}, AOP, %rd3, 1, 1, 1, TRANS0;
	wgmma.commit_group.sync.aligned;
	//INFLIGHT
	//WAIT
	wgmma.wait_group.sync.aligned 0;
	//AFTER
	ld.param.u64 %rd10, [p_out];
	mul.wide.u32 %rd11, %r0, 36;
	add.s64 %rd12, %rd10, %rd11;
	st.global.f32 [%rd12], %d0;
	st.global.f32 [%rd12+4], %d1;
	st.global.f32 [%rd12+8], %d2;
	st.global.f32 [%rd12+12], %d3;
	st.global.f32 [%rd12+16], %d4;
	st.global.f32 [%rd12+20], %d5;
	st.global.f32 [%rd12+24], %d6;
	st.global.f32 [%rd12+28], %d7;
	//END
	ret;
}
"#;

/// A variant of [`BASE`]: A from shared memory (`a_regs` false) or registers, and the planted
/// lines (marker, text) in place.
fn kernel_text(name: &str, a_regs: bool, edits: &[(&str, &str)]) -> String {
    let mut t = BASE.replace("NAME", name);
    t = if a_regs {
        t.replace("AOP", "{%a0, %a1, %a2, %a3}").replace("TRANS0", "0")
    } else {
        t.replace("AOP", "%rd2").replace("TRANS0", "0, 0")
    };
    for (marker, text) in edits {
        assert!(t.contains(marker), "{marker}");
        t = t.replace(marker, text);
    }
    t
}

/// Runs one variant on `threads` threads; returns the report and each thread's 9 output words.
fn run(name: &str, a_regs: bool, edits: &[(&str, &str)], threads: u32) -> (LaunchReport, Vec<u32>) {
    let dev = EmuDevice::new();
    let m = ptx_module(name, format!("{PTX_HEADER}{}", kernel_text(name, a_regs, edits)));
    let k = kernel(m, name);
    let out = DevBuf::new(&dev, threads as usize * 36).expect("alloc");
    out.fill(0x7fc1_7fc1).expect("poison");
    let arg = out.addr().to_le_bytes().to_vec();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [threads, 1, 1], dynamic_shared_bytes: 0 };
    let rep = dev.run_kernel(&k, cfg, &[arg.as_slice()]).expect("launch");
    let v = out.download_vec::<u32>(threads as usize * 9).expect("download");
    (rep, v)
}

fn wgmma_findings(rep: &LaunchReport) -> Vec<&attnjoule::device::Finding> {
    rep.findings.iter().filter(|f| f.kind == FindingKind::WgmmaHazard).collect()
}

/// The bug is reported (a wgmma finding whose message contains `what`); the twin is clean and
/// every thread's D is 32.
fn caught_and_clean(name: &str, a_regs: bool, bug: &[(&str, &str)], twin: &[(&str, &str)], what: &str) {
    let (rep, _) = run(&format!("{name}_bug"), a_regs, bug, 128);
    let f = wgmma_findings(&rep);
    assert!(!f.is_empty(), "{name}: planted bug not caught: {:?}", rep.findings);
    assert!(f.iter().any(|f| f.message.contains(what)), "{name}: {:?}", f);
    println!("{name}: {}", f[0].message);
    let (rep, out) = run(&format!("{name}_twin"), a_regs, twin, 128);
    assert_eq!(rep.findings_total, 0, "{name} twin: {:?}", rep.findings);
    for t in 0..128 {
        for j in 0..8 {
            assert_eq!(f32::from_bits(out[t * 9 + j]), 32.0, "{name} twin: thread {t} register {j}");
        }
    }
}

#[test]
fn accumulator_read_in_flight() {
    let read = "add.f32 %x0, %d0, %d1;\n\tmul.wide.u32 %rd20, %r0, 36;\n\tld.param.u64 %rd21, [p_out];\n\tadd.s64 %rd22, %rd21, %rd20;\n\tst.global.f32 [%rd22+32], %x0;";
    caught_and_clean("acc_read", false, &[("//INFLIGHT", read)], &[("//END", read)], "in flight");
}

#[test]
fn accumulator_written_in_flight() {
    caught_and_clean(
        "acc_write",
        false,
        &[("//INFLIGHT", "mov.f32 %d3, 0f3F800000;")],
        &[("//PRE", "mov.f32 %d3, 0f3F800000;")],
        "in flight",
    );
}

#[test]
fn register_a_written_in_flight() {
    caught_and_clean(
        "a_write",
        true,
        &[("//INFLIGHT", "mov.b32 %a2, 0;")],
        &[("//AFTER", "mov.b32 %a2, 0;")],
        "in flight",
    );
}

/// nvcc moves register initializations below an earlier `wgmma.fence` unless the source pins
/// them (CUTLASS's warpgroup_fence_operand): the accumulator written after the fence is caught.
#[test]
fn accumulator_written_after_the_fence() {
    let inits = "mov.f32 %d0, 0f00000000;\n\tmov.f32 %d5, 0f00000000;";
    caught_and_clean(
        "late_init",
        false,
        &[("//POSTFENCE", inits)],
        &[("//PRE", inits)],
        "after the warp's last wgmma.fence",
    );
}

#[test]
fn register_a_written_after_the_fence() {
    caught_and_clean(
        "late_a",
        true,
        &[("//POSTFENCE", "mov.b32 %a1, 1065369472;")],
        &[("//PRE", "mov.b32 %a1, 1065369472;")],
        "A registers",
    );
}

#[test]
fn no_fence_before_the_first_wgmma() {
    caught_and_clean(
        "no_fence",
        false,
        &[("wgmma.fence.sync.aligned;", "")],
        &[("//FENCE", "wgmma.fence.sync.aligned;")],
        "no wgmma.fence",
    );
}

#[test]
fn operand_shared_memory_overwritten_in_flight() {
    let store = "setp.eq.u32 %p7, %r0, 0;\n\t@%p7 st.shared.u32 [%r1+2048], %r0;";
    // The twin stores after its wait and after a barrier (the other warps' wgmmas read B too).
    let twin = "bar.sync 0;\n\tsetp.eq.u32 %p7, %r0, 0;\n\t@%p7 st.shared.u32 [%r1+2048], %r5;\n\tbar.sync 0;";
    caught_and_clean("smem_overwrite", false, &[("//INFLIGHT", store)], &[("//END", twin)], "still reads");
}

/// Warpgroup 1 (warps 4-7) does not issue wgmmas: it writes B after the barrier that follows
/// warpgroup 0's issue, but before warpgroup 0's wait is ordered (another barrier) before it.
#[test]
fn operand_overwritten_by_another_warp_before_the_wait_is_ordered() {
    let name = "cross_warp";
    let skip = "setp.ge.u32 %p5, %r0, 128;\n\t@%p5 bra $Lproducer;";
    let producer = "bra $Lend;\n$Lproducer:\n\tbar.sync 1, 256;\n\tBARRIER2\n\tsetp.eq.u32 %p6, %r0, 128;\n\t@%p6 st.shared.u32 [%r1+2048], %r5;\n$Lend:";
    let edits = |twin: bool| {
        let p = producer.replace("BARRIER2", if twin { "bar.sync 2, 256;" } else { "" });
        let w = if twin {
            "bar.sync 1, 256;\n\twgmma.wait_group.sync.aligned 0;\n\tbar.sync 2, 256;"
        } else {
            "bar.sync 1, 256;\n\twgmma.wait_group.sync.aligned 0;"
        };
        vec![("//PRE", skip.to_string()), ("//WAIT\n\twgmma.wait_group.sync.aligned 0;", w.to_string()), ("//END", p)]
    };
    let e = edits(false);
    let bug: Vec<(&str, &str)> = e.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let (rep, _) = run(&format!("{name}_bug"), false, &bug, 256);
    let f = wgmma_findings(&rep);
    assert!(f.iter().any(|f| f.message.contains("not ordered")), "{:?}", rep.findings);
    let e = edits(true);
    let twin: Vec<(&str, &str)> = e.iter().map(|(a, b)| (*a, b.as_str())).collect();
    let (rep, out) = run(&format!("{name}_twin"), false, &twin, 256);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    assert!((0..128).all(|t| f32::from_bits(out[t * 9]) == 32.0));
}

#[test]
fn warps_disagree_on_a_descriptor() {
    // Odd warps point B 16 bytes further.
    let skew =
        "shr.u32 %r20, %r0, 5;\n\tand.b32 %r21, %r20, 1;\n\tcvt.u64.u32 %rd20, %r21;\n\tadd.s64 %rd3, %rd3, %rd20;";
    caught_and_clean("desc_split", false, &[("//PRE", skew)], &[], "disagree on a wgmma");
}

#[test]
fn lanes_disagree_on_scale_d() {
    let name = "scale_split";
    let t = "setp.eq.u32 %p6, %r0, 5;";
    let bug = [("//PRE", t), ("%rd3, 1, 1, 1,", "%rd3, %p6, 1, 1,")];
    let (rep, _) = run(&format!("{name}_bug"), false, &bug, 128);
    assert!(
        wgmma_findings(&rep).iter().any(|f| f.message.contains("different descriptors or scale-d")),
        "{:?}",
        rep.findings
    );
}

#[test]
fn a_warp_skips_the_wgmma() {
    let skip = "setp.ge.u32 %p5, %r0, 96;\n\t@%p5 bra $Lskip;";
    let bug = [("//FENCE", skip), ("//AFTER", "$Lskip:")];
    let (rep, _) = run("skip_bug", false, &bug, 128);
    assert!(wgmma_findings(&rep).iter().any(|f| f.message.contains("only 3 of the 4 warps")), "{:?}", rep.findings);
}

#[test]
fn exit_without_wait() {
    // The bug exits right after the commit (reading D there would be caught first).
    caught_and_clean("no_wait", false, &[("//INFLIGHT", "ret;")], &[], "exited with this wgmma");
}

/// Register-slot reuse with wgmma in flight: the A registers die at the wgmma, and values defined
/// before the wait take their slots. Executing the wgmma at issue makes that sound: no finding,
/// and the values and D are right. The test checks the allocation really shares a slot.
#[test]
fn register_slots_of_a_fragment_are_reused_while_in_flight() {
    let name = "slot_reuse";
    // More values than the slots free at that point, so some must take the A registers' slots.
    let defs: String = (0..32).map(|j| format!("add.s32 %q{j}, %r0, {};\n\t", 1000 * (j + 1))).collect();
    let uses: String = (0..32).map(|j| format!("st.shared.u32 [%r1+{}], %q{j};\n\t", 3072 + 4 * j)).collect();
    let check = "bar.sync 0;\n\tld.shared.u32 %r50, [%r1+3072];\n\tld.param.u64 %rd23, [p_out];\n\tmul.wide.u32 %rd24, %r0, 36;\n\tadd.s64 %rd25, %rd23, %rd24;\n\tst.global.u32 [%rd25+32], %r50;";
    let single = "setp.eq.u32 %p7, %r0, 0;\n\t@!%p7 bra $Lno;\n\t";
    let edits = [("//INFLIGHT", defs.as_str()), ("//AFTER", &format!("{single}{uses}$Lno:\n\t{check}"))];
    let dev = EmuDevice::new();
    let m = ptx_module(name, format!("{PTX_HEADER}{}", kernel_text(name, true, &edits)));
    let k = kernel(m, name);
    let kern = dev.kernel(&k).expect("lowers");
    let p = kern.insts.iter().position(|i| matches!(i.op, Op::Wgmma(_))).expect("wgmma");
    let a_slots: Vec<u32> = kern.insts[p].ext_regs(&kern.ext)[8..].to_vec();
    let def_slots: Vec<u32> =
        kern.insts[p + 1..].iter().filter(|i| matches!(i.op, Op::IBin(_))).take(32).map(|i| i.d).collect();
    assert!(def_slots.iter().any(|s| a_slots.contains(s)), "no slot shared: A {a_slots:?}, later defs {def_slots:?}");
    let (rep, out) = run(name, true, &edits, 128);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    for t in 0..128 {
        assert_eq!(out[t * 9 + 8], 1000, "thread {t} reads the value defined in flight");
        assert_eq!(f32::from_bits(out[t * 9]), 32.0);
    }
}

/// Refused corners: a non-zero matrix base offset, and a wgmma in a partial warpgroup.
#[test]
fn refused_corners_are_errors() {
    let dev = EmuDevice::new();
    let text = kernel_text(
        "base_off",
        false,
        &[("//PRE", "or.b64 %rd3, %rd3, 4611686018427387904;\n\tor.b64 %rd3, %rd3, 562949953421312;")],
    );
    let m = ptx_module("base_off", format!("{PTX_HEADER}{text}"));
    let out = DevBuf::new(&dev, 128 * 36).expect("alloc");
    let arg = out.addr().to_le_bytes().to_vec();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: 0 };
    let e = dev.run_kernel(&kernel(m, "base_off"), cfg, &[arg.as_slice()]).expect_err("base offset refused");
    assert!(e.to_string().contains("base offset"), "{e}");
    let m = ptx_module("partial", format!("{PTX_HEADER}{}", kernel_text("partial", false, &[])));
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [96, 1, 1], dynamic_shared_bytes: 0 };
    let e = dev.run_kernel(&kernel(m, "partial"), cfg, &[arg.as_slice()]).expect_err("partial warpgroup refused");
    assert!(e.to_string().contains("whole warpgroup"), "{e}");
}

/// wgmma reads its shared-memory operands through the async proxy: the generic stores that fill
/// them need a `fence.proxy.async` by the writing threads, ordered before the wgmma (PTX ISA, the
/// wgmma chapter's "Async Proxy" section). Without the fence, and with each warp's fence after
/// the barrier (then the other warps' fences are not ordered before this warp's wgmma), an
/// async-race finding at the wgmma; the twin (fence, then barrier) is the base kernel, clean.
#[test]
fn generic_operand_writes_without_proxy_fence() {
    let fence = "//PROXYFENCE\n\tfence.proxy.async.shared::cta;\n\tbar.sync 0;";
    for (name, text, what) in [
        ("no_proxy_fence", "bar.sync 0;", "executed no fence.proxy.async"),
        ("late_proxy_fence", "bar.sync 0;\n\tfence.proxy.async.shared::cta;", "not ordered before this read"),
    ] {
        let bug = [(fence, text)];
        let (rep, _) = run(&format!("{name}_bug"), false, &bug, 128);
        let ptx = format!("{PTX_HEADER}{}", kernel_text(&format!("{name}_bug"), false, &bug));
        let wgmma_line = ptx.lines().position(|l| l.contains("wgmma.mma_async")).expect("wgmma") as u32 + 1;
        let f: Vec<_> = rep.findings.iter().filter(|f| f.kind == FindingKind::AsyncRace).collect();
        assert!(f.iter().any(|f| f.message.contains(what)), "{name}: {:?}", rep.findings);
        assert!(f.iter().all(|f| f.ptx_line == wgmma_line), "{name}: {:?}", f);
        println!("{name}: {}", f[0].message);
    }
    let (rep, out) = run("proxy_fence_twin", false, &[], 128);
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    assert!((0..128).all(|t| f32::from_bits(out[t * 9]) == 32.0));
}
