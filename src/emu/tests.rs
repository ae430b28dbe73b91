//! Regression tests of the emulator on PTX written the way outside code is compiled: one per gap
//! found running kernels that were not written for this crate (opcodes with `::`, several
//! dynamic shared arrays, `WARP_SZ`, partial-mask shuffles, match, bfind, wmma, `.func` calls,
//! module variables, traps and assertions, scoped labels, every unsupported line reported).
//! The PTX here is hand-written in nvcc's style; tests/outside.rs runs nvcc-compiled CUDA.

use super::ir::{wmma_regs, Ty, WmmaFrag, WmmaShape};
use super::parse::{lower_module_in, LoweredModule};
use super::*;
use crate::device::FindingKind;

const HEAD: &str = ".version 8.0\n.target sm_90a\n.address_size 64\n";

fn lower(dev: &EmuDevice, ptx: &str) -> LoweredModule {
    lower_module_in(&format!("{HEAD}{ptx}"), true, Some(&mut DevGlobals(&dev.mem)))
}

fn kernel(m: &LoweredModule, entry: &str) -> Result<Arc<Kernel>> {
    m.get(entry).ok_or_else(|| Error::Emu(format!("no entry {entry}")))?.clone().map_err(Error::Emu)
}

fn run(
    dev: &EmuDevice,
    m: &LoweredModule,
    entry: &str,
    grid: u32,
    block: u32,
    smem: u32,
    args: &[u64],
) -> Result<LaunchReport> {
    let k = kernel(m, entry)?;
    let a: Vec<[u8; 8]> = args.iter().map(|x| x.to_le_bytes()).collect();
    let a: Vec<&[u8]> = a.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: smem };
    dev.launch_kernel(&k, cfg, &a, None)
}

fn up(dev: &EmuDevice, bytes: &[u8]) -> u64 {
    let addr = dev.mem.alloc(bytes.len().max(1)).expect("alloc");
    let a = dev.mem.find(addr, bytes.len() as u64).expect("find");
    a.host_write(0, bytes);
    addr
}

/// An output buffer of `n` words, poisoned.
fn out(dev: &EmuDevice, n: usize) -> u64 {
    up(dev, &vec![0xa5; n * 4])
}

fn words(dev: &EmuDevice, addr: u64, n: usize) -> Vec<u32> {
    let a = dev.mem.find(addr, n as u64 * 4).expect("find");
    let mut b = vec![0u8; n * 4];
    a.host_read(addr - a.base, &mut b);
    b.chunks(4).map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
}

fn u32s(v: &[u32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

/// splitmix64 for inputs.
fn rng(seed: &mut u64) -> u64 {
    *seed = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *seed;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn seed() -> u64 {
    let s = crate::reference::fresh_seed();
    println!("seed {s}");
    s
}

fn clean(r: &LaunchReport) {
    assert_eq!(r.findings_total, 0, "{:?}", r.findings);
}

/// `ld.shared::cta.f32 %f1, [%r1];` without a guard used to be read as the label `ld.shared:`.
#[test]
fn unguarded_opcode_with_double_colon_is_not_a_label() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 k_param_0)
{
    .reg .b32 %r<5>;
    .reg .f32 %f<3>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 s[128];
    ld.param.u64 %rd1, [k_param_0];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, s;
    add.s32 %r4, %r3, %r2;
    cvt.rn.f32.u32 %f1, %r1;
    st.shared::cta.f32 [%r4], %f1;
    bar.sync 0;
    add.s32 %r4, %r3, 124;
    sub.s32 %r4, %r4, %r2;
    ld.shared::cta.f32 %f2, [%r4];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd2, %rd2, %rd3;
    st.global.f32 [%rd2], %f2;
    ret;
}
"#,
    );
    let o = out(&dev, 32);
    clean(&run(&dev, &m, "k", 1, 32, 0, &[o]).expect("run"));
    let got = words(&dev, o, 32);
    for (t, &g) in got.iter().enumerate() {
        assert_eq!(f32::from_bits(g), (31 - t) as f32);
    }
}

/// Two kernels of one module, each with its own `extern __shared__` array of another type: both
/// start at the dynamic shared memory (only the last declaration used to be known).
#[test]
fn every_extern_shared_array_is_known() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.extern .shared .align 16 .b8 sf[];
.extern .shared .align 8 .b8 sd[];
.visible .entry kf(.param .u64 p)
{
    .reg .b32 %r<5>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 2;
    mov.u32 %r3, sf;
    add.s32 %r4, %r3, %r2;
    add.s32 %r2, %r1, 1000;
    st.shared.u32 [%r4], %r2;
    bar.sync 0;
    xor.b32 %r2, %r1, 1;
    shl.b32 %r2, %r2, 2;
    add.s32 %r4, %r3, %r2;
    ld.shared.u32 %r2, [%r4];
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd2, %rd2, %rd3;
    st.global.u32 [%rd2], %r2;
    ret;
}
.visible .entry kd(.param .u64 p)
{
    .reg .b32 %r<5>;
    .reg .f64 %fd<3>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    shl.b32 %r2, %r1, 3;
    mov.u32 %r3, sd;
    add.s32 %r4, %r3, %r2;
    cvt.rn.f64.u32 %fd1, %r1;
    st.shared.f64 [%r4], %fd1;
    bar.sync 0;
    xor.b32 %r2, %r1, 2;
    shl.b32 %r2, %r2, 3;
    add.s32 %r4, %r3, %r2;
    ld.shared.f64 %fd2, [%r4];
    cvt.rzi.u32.f64 %r2, %fd2;
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd2, %rd2, %rd3;
    st.global.u32 [%rd2], %r2;
    ret;
}
"#,
    );
    let o = out(&dev, 64);
    clean(&run(&dev, &m, "kf", 1, 64, 256, &[o]).expect("kf"));
    assert_eq!(words(&dev, o, 64), (0..64).map(|t| (t ^ 1) + 1000).collect::<Vec<u32>>());
    let o = out(&dev, 64);
    clean(&run(&dev, &m, "kd", 1, 64, 512, &[o]).expect("kd"));
    assert_eq!(words(&dev, o, 64), (0..64).map(|t| t ^ 2).collect::<Vec<u32>>());
    // Too little dynamic shared memory is an out-of-bounds access, not an unknown operand.
    let r = run(&dev, &m, "kd", 1, 64, 256, &[out(&dev, 64)]).expect("kd");
    assert!(r.findings.iter().any(|f| f.kind == FindingKind::SharedOutOfBounds), "{:?}", r.findings);
}

/// `warpSize` is the PTX constant `WARP_SZ`.
#[test]
fn warp_size_constant() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 p)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, WARP_SZ;
    mul.lo.s32 %r2, %r1, 3;
    st.global.u32 [%rd1], %r2;
    ret;
}
"#,
    );
    let o = out(&dev, 1);
    clean(&run(&dev, &m, "k", 1, 1, 0, &[o]).expect("run"));
    assert_eq!(words(&dev, o, 1), [96]);
}

/// The PTX of a shuffle by `delta` executed by lanes 0..15 only, with member mask 0xffff and
/// clamp/segment operand `c`.
fn half_warp_shuffle(c: u32) -> String {
    format!(
        r#"
.visible .entry k(.param .u64 p)
{{
    .reg .b32 %r<5>;
    .reg .pred %p<3>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    setp.ge.u32 %p1, %r1, 16;
    @%p1 bra $L__end;
    mul.lo.s32 %r2, %r1, 7;
    shfl.sync.down.b32 %r3|%p2, %r2, 8, {c}, 65535;
    cvta.to.global.u64 %rd2, %rd1;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd2, %rd2, %rd3;
    st.global.u32 [%rd2], %r3;
$L__end:
    ret;
}}
"#
    )
}

/// A shuffle whose member mask excludes the lane it reads is undefined in CUDA: flagged. The
/// same shuffle within 16-lane segments (width 16) reads only members and is clean.
#[test]
fn shuffle_reading_a_lane_outside_its_mask_is_flagged() {
    let dev = EmuDevice::new();
    let m = lower(&dev, &half_warp_shuffle(0x1f));
    let r = run(&dev, &m, "k", 1, 32, 0, &[out(&dev, 16)]).expect("run");
    let f = r.findings.first().expect("a finding");
    assert_eq!(f.kind, FindingKind::InvalidWarpMask);
    assert_eq!(f.thread, [8, 0, 0]);
    assert!(f.message.contains("reads lane 16"), "{}", f.message);
    // Width 16: c = ((32 - 16) << 8) | 0x1f; lanes 8..15 keep their own value.
    let m = lower(&dev, &half_warp_shuffle(0x101f));
    let o = out(&dev, 16);
    clean(&run(&dev, &m, "k", 1, 32, 0, &[o]).expect("run"));
    let want: Vec<u32> = (0..16).map(|t| if t < 8 { (t + 8) * 7 } else { t * 7 }).collect();
    assert_eq!(words(&dev, o, 16), want);
}

/// Two 16-lane tiles of one warp run one collective side by side, each with its own member
/// mask (cooperative groups' tiled_partition<16>): each tile reduces, votes and matches over its
/// own lanes, and nothing is flagged; a mask naming lanes that run with another mask is.
#[test]
fn collectives_with_a_member_mask_per_tile() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 p, .param .u64 bad)
{
    .reg .b32 %r<12>;
    .reg .pred %p<4>;
    .reg .b64 %rd<4>;
    ld.param.u64 %rd1, [p];
    ld.param.u32 %r10, [bad];
    mov.u32 %r1, %tid.x;
    and.b32 %r2, %r1, 16;
    setp.eq.s32 %p1, %r2, 0;
    selp.b32 %r3, 65535, -65536, %p1;
    or.b32 %r3, %r3, %r10;
    redux.sync.add.s32 %r4, %r1, %r3;
    and.b32 %r5, %r1, 1;
    setp.eq.s32 %p2, %r5, 1;
    vote.sync.ballot.b32 %r6, %p2, %r3;
    shr.u32 %r7, %r1, 2;
    match.any.sync.b32 %r8, %r7, %r3;
    shfl.sync.bfly.b32 %r9|%p3, %r1, 8, 31, %r3;
    bar.warp.sync %r3;
    mul.wide.u32 %rd2, %r1, 16;
    add.s64 %rd3, %rd1, %rd2;
    st.global.v4.u32 [%rd3], {%r4, %r6, %r8, %r9};
    ret;
}
"#,
    );
    let o = out(&dev, 32 * 4);
    clean(&run(&dev, &m, "k", 1, 32, 0, &[o, 0]).expect("run"));
    let got = words(&dev, o, 32 * 4);
    for t in 0..32u32 {
        let hi = t >= 16;
        let want = [
            if hi { (16..32).sum() } else { (0..16).sum() },
            if hi { 0xaaaa_0000 } else { 0xaaaa },
            0xf << (t / 4 * 4),
            t ^ 8,
        ];
        assert_eq!(&got[t as usize * 4..t as usize * 4 + 4], &want, "lane {t}");
    }
    // Lane 0..15 name lane 16 too, which runs with the other mask.
    let r = run(&dev, &m, "k", 1, 32, 0, &[out(&dev, 128), 0x1_0000]).expect("run");
    let f = r.findings.first().expect("flagged");
    assert!(f.message.contains("execute it with another member mask"), "{}", f.message);
}

/// match.any.sync and match.all.sync (b32 and b64) against a host model, on random values with
/// few distinct ones.
#[test]
fn match_any_and_all() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 pin, .param .u64 pout)
{
    .reg .b32 %r<12>;
    .reg .pred %p<3>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pin];
    ld.param.u64 %rd2, [pout];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u32 %r2, [%rd4];
    match.any.sync.b32 %r3, %r2, -1;
    and.b32 %r4, %r2, 1;
    match.all.sync.b32 %r5|%p1, %r4, -1;
    selp.u32 %r6, 1, 0, %p1;
    cvt.u64.u32 %rd5, %r2;
    shl.b64 %rd5, %rd5, 40;
    match.any.sync.b64 %r7, %rd5, -1;
    mov.u32 %r8, 7;
    match.all.sync.b32 %r9|%p2, %r8, -1;
    selp.u32 %r10, 1, 0, %p2;
    mul.wide.u32 %rd3, %r1, 24;
    add.s64 %rd6, %rd2, %rd3;
    st.global.u32 [%rd6], %r3;
    st.global.u32 [%rd6+4], %r5;
    st.global.u32 [%rd6+8], %r6;
    st.global.u32 [%rd6+12], %r7;
    st.global.u32 [%rd6+16], %r9;
    st.global.u32 [%rd6+20], %r10;
    ret;
}
"#,
    );
    let mut s = seed();
    for round in 0..4 {
        // Round 3: every value odd, so match.all on the low bit holds.
        let vals: Vec<u32> = (0..32)
            .map(|_| (rng(&mut s) % 5) as u32 * 2 + if round == 3 { 1 } else { (rng(&mut s) % 2) as u32 })
            .collect();
        let (i, o) = (up(&dev, &u32s(&vals)), out(&dev, 32 * 6));
        clean(&run(&dev, &m, "k", 1, 32, 0, &[i, o]).expect("run"));
        let got = words(&dev, o, 32 * 6);
        let all_same = vals.iter().all(|v| v & 1 == vals[0] & 1);
        for t in 0..32 {
            let any: u32 = (0..32).filter(|&j| vals[j] == vals[t]).map(|j| 1u32 << j).sum();
            let g = &got[t * 6..t * 6 + 6];
            assert_eq!(g[0], any, "lane {t}");
            assert_eq!(g[1], if all_same { u32::MAX } else { 0 });
            assert_eq!(g[2], all_same as u32);
            assert_eq!(g[3], any, "b64, lane {t}");
            assert_eq!((g[4], g[5]), (u32::MAX, 1));
        }
    }
}

/// bfind (u32, s32, u64) with and without .shiftamt against the PTX ISA's definition.
#[test]
fn bfind_and_shiftamt() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 pin, .param .u64 pout)
{
    .reg .b32 %r<10>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [pin];
    ld.param.u64 %rd2, [pout];
    mov.u32 %r1, %tid.x;
    mul.wide.u32 %rd3, %r1, 8;
    add.s64 %rd4, %rd1, %rd3;
    ld.global.u64 %rd5, [%rd4];
    cvt.u32.u64 %r2, %rd5;
    bfind.u32 %r3, %r2;
    bfind.shiftamt.u32 %r4, %r2;
    bfind.s32 %r5, %r2;
    bfind.shiftamt.s32 %r6, %r2;
    bfind.u64 %r7, %rd5;
    bfind.shiftamt.s64 %r8, %rd5;
    mul.wide.u32 %rd3, %r1, 24;
    add.s64 %rd6, %rd2, %rd3;
    st.global.v2.u32 [%rd6], {%r3, %r4};
    st.global.v2.u32 [%rd6+8], {%r5, %r6};
    st.global.v2.u32 [%rd6+16], {%r7, %r8};
    ret;
}
"#,
    );
    let mut s = seed();
    let mut vals: Vec<u64> = vec![0, 1, u64::MAX, 0x8000_0000, 0x7fff_ffff, 0xffff_ffff_0000_0000, 0xffff_fffe];
    while vals.len() < 32 {
        let v = rng(&mut s);
        vals.push(v >> (rng(&mut s) % 64));
    }
    let (i, o) = (up(&dev, &vals.iter().flat_map(|v| v.to_le_bytes()).collect::<Vec<u8>>()), out(&dev, 32 * 6));
    clean(&run(&dev, &m, "k", 1, 32, 0, &[i, o]).expect("run"));
    let got = words(&dev, o, 32 * 6);
    // Model: the highest bit that is set (unsigned) or differs from the sign bit (signed).
    let model = |v: u64, bits: u32, signed: bool, shift: bool| -> u32 {
        let mask = if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
        let v = v & mask;
        let neg = signed && (v >> (bits - 1)) & 1 == 1;
        let x = if neg { !v & mask } else { v };
        match (0..bits).rev().find(|&b| (x >> b) & 1 == 1) {
            None => u32::MAX,
            Some(b) if shift => bits - 1 - b,
            Some(b) => b,
        }
    };
    for (t, &v) in vals.iter().enumerate() {
        let want = [
            model(v, 32, false, false),
            model(v, 32, false, true),
            model(v, 32, true, false),
            model(v, 32, true, true),
            model(v, 64, false, false),
            model(v, 64, true, true),
        ];
        assert_eq!(&got[t * 6..t * 6 + 6], &want, "value {v:#x}");
    }
}

/// Labels are scoped by `{ }` blocks: two blocks (two copies of one inline asm) each define
/// `$Lloop` and branch to their own.
#[test]
fn labels_are_scoped_by_blocks() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 p)
{
    .reg .b32 %r<3>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, 0;
    {
    .reg .b32 cnt;
    .reg .pred q;
    mov.u32 cnt, 0;
$Lloop:
    add.s32 %r1, %r1, 1;
    add.s32 cnt, cnt, 1;
    setp.lt.u32 q, cnt, 3;
    @q bra $Lloop;
    }
    {
    .reg .b32 cnt;
    .reg .pred q;
    mov.u32 cnt, 0;
$Lloop:
    add.s32 %r1, %r1, 10;
    add.s32 cnt, cnt, 1;
    setp.lt.u32 q, cnt, 5;
    @q bra $Lloop;
    }
    st.global.u32 [%rd1], %r1;
    ret;
}
.visible .entry dup(.param .u64 p)
{
$L1:
    bra.uni $L1;
$L1:
    ret;
}
"#,
    );
    let o = out(&dev, 1);
    clean(&run(&dev, &m, "k", 1, 1, 0, &[o]).expect("run"));
    assert_eq!(words(&dev, o, 1), [53]);
    let e = kernel(&m, "dup").expect_err("a label defined twice in one block");
    assert!(e.to_string().contains("defined twice"), "{e}");
}

const FUNCS: &str = r#"
.global .align 4 .u32 counter = 5;
.global .align 8 .u64 where[2] = {generic(counter), counter+4};
.const .align 4 .b8 tab[16] = {1, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 4};
.func (.param .b32 rv) addtab(.param .b32 x, .param .b32 i)
{
    .reg .b32 %r<6>;
    .reg .pred %p<2>;
    .reg .b64 %rd<4>;
    ld.param.u32 %r1, [x];
    ld.param.u32 %r2, [i];
    setp.gt.u32 %p1, %r1, 1000;
    @%p1 bra $L_big;
    and.b32 %r3, %r2, 3;
    mul.wide.u32 %rd1, %r3, 4;
    mov.u64 %rd2, tab;
    add.s64 %rd3, %rd2, %rd1;
    ld.const.u32 %r4, [%rd3];
    add.s32 %r5, %r1, %r4;
    st.param.b32 [rv+0], %r5;
    ret;
$L_big:
    st.param.b32 [rv+0], 0;
    ret;
}
.func (.param .b32 rv) twice(.param .b32 x)
{
    .reg .b32 %r<4>;
    ld.param.u32 %r1, [x];
    {
    .param .b32 param0;
    st.param.b32 [param0+0], %r1;
    .param .b32 param1;
    st.param.b32 [param1+0], 1;
    .param .b32 retval0;
    call.uni (retval0), addtab, (param0, param1);
    ld.param.b32 %r2, [retval0+0];
    }
    call.uni (%r3), addtab, (%r2, 2);
    st.param.b32 [rv+0], %r3;
    ret;
}
.visible .entry k(.param .u64 p)
{
    .reg .b32 %r<12>;
    .reg .pred %p<3>;
    .reg .b64 %rd<8>;
    ld.param.u64 %rd1, [p];
    mov.u32 %r1, %tid.x;
    mul.lo.s32 %r2, %r1, 100;
    {
    .reg .b32 temp_param_reg;
    .param .b32 param0;
    st.param.b32 [param0+0], %r2;
    .param .b32 param1;
    st.param.b32 [param1+0], %r1;
    .param .b32 retval0;
    call.uni (retval0), addtab, (param0, param1);
    ld.param.b32 %r3, [retval0+0];
    }
    mov.u32 %r4, 77;
    setp.lt.u32 %p1, %r1, 4;
    @%p1 call.uni (%r4), twice, (%r1);
    ld.global.u32 %r5, [counter];
    mov.u64 %rd2, where;
    ld.global.u64 %rd3, [%rd2+8];
    ld.u32 %r6, [%rd3+-4];
    cvta.to.global.u64 %rd4, %rd1;
    mul.wide.u32 %rd5, %r1, 16;
    add.s64 %rd4, %rd4, %rd5;
    st.global.v4.u32 [%rd4], {%r3, %r4, %r5, %r6};
    setp.ne.s32 %p2, %r1, 0;
    @%p2 bra $L_done;
    add.s32 %r7, %r5, 1;
    st.global.u32 [counter], %r7;
$L_done:
    ret;
}
"#;

/// `.func` calls are inlined: parameters and return values through `.param` variables or
/// registers, early `ret`, a guarded call, a call inside a callee, each copy with its own labels;
/// module `.global` variables with initializers (one holding another's address) persist across
/// launches of the module, `.const` tables are read.
#[test]
fn func_calls_and_module_variables() {
    let dev = EmuDevice::new();
    let m = lower(&dev, FUNCS);
    let tab = [1u32, 2, 3, 4];
    for launch in 0..2u32 {
        let o = out(&dev, 32 * 4);
        clean(&run(&dev, &m, "k", 1, 32, 0, &[o]).expect("run"));
        let got = words(&dev, o, 32 * 4);
        for t in 0..32u32 {
            let addtab = |x: u32, i: u32| if x > 1000 { 0 } else { x + tab[(i & 3) as usize] };
            let want = [addtab(t * 100, t), if t < 4 { addtab(addtab(t, 1), 2) } else { 77 }, 5 + launch, 5 + launch];
            assert_eq!(&got[t as usize * 4..t as usize * 4 + 4], &want, "thread {t}, launch {launch}");
        }
    }
}

#[test]
fn recursion_indirect_calls_printf_and_grid_sync_are_refused_clearly() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.extern .func (.param .b32 func_retval0) vprintf(.param .b64 a, .param .b64 b);
.func f(.param .b32 x)
{
    .reg .b32 %r<2>;
    ld.param.u32 %r1, [x];
    call.uni g, (%r1);
    ret;
}
.func g(.param .b32 x)
{
    .reg .b32 %r<2>;
    ld.param.u32 %r1, [x];
    call.uni f, (%r1);
    ret;
}
.visible .entry rec()
{
    call.uni f, (1);
    ret;
}
.visible .entry pf(.param .u64 p)
{
    .reg .b32 %r<2>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [p];
    {
    .param .b64 param0;
    st.param.b64 [param0+0], %rd1;
    .param .b64 param1;
    st.param.b64 [param1+0], 0;
    .param .b32 retval0;
    call.uni (retval0), vprintf, (param0, param1);
    ld.param.b32 %r1, [retval0+0];
    }
    ret;
}
.visible .entry grid()
{
    .reg .b32 %r<2>;
    mov.u32 %r1, %envreg2;
    ret;
}
.visible .entry many()
{
    .reg .b32 %r<2>;
    frob.u32 %r1, 1;
    mov.u32 %r1, %nosuchreg;
    .weird 1;
    tex.1d.v4.f32.s32 {%r1, %r1, %r1, %r1}, [t, {%r1}];
    ret;
}
"#,
    );
    let e = kernel(&m, "rec").expect_err("recursion").to_string();
    assert!(e.contains("recursive call f -> g -> f"), "{e}");
    let e = kernel(&m, "pf").expect_err("printf").to_string();
    assert!(e.contains("printf"), "{e}");
    let e = kernel(&m, "grid").expect_err("grid sync").to_string();
    assert!(e.contains("%envreg2") && e.contains("grid-wide"), "{e}");
    // Every unsupported line is reported, with its line number.
    let e = kernel(&m, "many").expect_err("unsupported").to_string();
    assert!(e.contains("4 lines cannot be lowered"), "{e}");
    for what in ["frob", "%nosuchreg", ".weird", "tex"] {
        assert!(e.contains(what), "{what} missing from: {e}");
    }
    assert_eq!(e.matches("line ").count(), 4, "{e}");
}

/// `trap` and a failed `assert` (nvcc's call to `__assertfail`) fail the launch with an error
/// naming the thread, the PTX line and, for an assertion, its text, file, line and function.
#[test]
fn trap_and_assert_fail_the_launch() {
    let dev = EmuDevice::new();
    let src = r#"
.extern .func __assertfail(.param .b64 a, .param .b64 b, .param .b32 c, .param .b64 d, .param .b64 e);
.global .align 1 .b8 $str[6] = {105, 32, 60, 32, 110};
.global .align 1 .b8 $str$1[8] = {109, 105, 115, 99, 46, 99, 117};
.global .align 1 .b8 fn[7] = {107, 95, 109, 105, 115, 99};
.visible .entry tr(.param .u32 n)
{
    .reg .b32 %r<3>;
    .reg .pred %p<2>;
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %tid.x;
    setp.eq.u32 %p1, %r2, %r1;
    @%p1 trap;
    ret;
}
.visible .entry as(.param .u32 n)
{
    .reg .b32 %r<3>;
    .reg .pred %p<2>;
    .reg .b64 %rd<8>;
    ld.param.u32 %r1, [n];
    mov.u32 %r2, %tid.x;
    setp.lt.s32 %p1, %r2, %r1;
    @%p1 bra $L_ok;
    mov.u64 %rd3, $str;
    cvta.global.u64 %rd4, %rd3;
    mov.u64 %rd5, $str$1;
    cvta.global.u64 %rd6, %rd5;
    mov.u64 %rd7, fn;
    { // callseq 0, 0
    .param .b64 param0;
    st.param.b64 [param0+0], %rd4;
    .param .b64 param1;
    st.param.b64 [param1+0], %rd6;
    .param .b32 param2;
    st.param.b32 [param2+0], 32;
    .param .b64 param3;
    st.param.b64 [param3+0], %rd7;
    .param .b64 param4;
    st.param.b64 [param4+0], 1;
    call.uni
    __assertfail,
    (
    param0,
    param1,
    param2,
    param3,
    param4
    );
    } // callseq 0
$L_ok:
    ret;
}
"#;
    let m = lower(&dev, src);
    let line = HEAD.lines().count() + src.lines().position(|l| l.contains("@%p1 trap")).expect("trap") + 1;
    let k = kernel(&m, "tr").expect("tr");
    let cfg = LaunchConfig { grid: [2, 1, 1], block: [64, 1, 1], dynamic_shared_bytes: 0 };
    let e = dev.launch_kernel(&k, cfg, &[&37u32.to_le_bytes()], None).expect_err("trap").to_string();
    assert!(e.contains("emulator: trap, in block [") && e.contains("thread [37, 0, 0]"), "{e}");
    assert!(e.contains(&format!("PTX line {line})")), "{e}");
    dev.launch_kernel(&k, cfg, &[&64u32.to_le_bytes()], None).expect("no thread traps");
    let k = kernel(&m, "as").expect("as");
    let e = dev.launch_kernel(&k, cfg, &[&60u32.to_le_bytes()], None).expect_err("assert").to_string();
    assert!(e.contains("trap: assertion `i < n` failed at misc.cu:32 in k_misc"), "{e}");
    assert!(e.contains("thread [60, 0, 0]"), "{e}");
}

/// Cooperative groups' reserved shared memory (`%reserved_smem_offset_*`): 1 KB at the start of
/// the block's shared memory, before the kernel's own variables; the runtime's words in it are
/// not tracked by the sanitizer (its atomics on them never read as uninitialized).
#[test]
fn reserved_shared_memory() {
    let dev = EmuDevice::new();
    let m = lower(
        &dev,
        r#"
.visible .entry k(.param .u64 p)
{
    .reg .b32 %r<8>;
    .reg .pred %p<2>;
    .reg .b64 %rd<4>;
    .shared .align 4 .b8 s[384];
    ld.param.u64 %rd1, [p];
    {
    .reg .u32 start;
    .reg .u64 extended;
    mov.u32 start, %reserved_smem_offset_1;
    cvt.u64.u32 extended, start;
    cvta.shared.u64 %rd2, extended;
    }
    mov.u32 %r1, %tid.x;
    shr.u32 %r2, %r1, 5;
    mov.u32 %r3, 1;
    shl.b32 %r3, %r3, %r2;
    and.b32 %r4, %r1, 31;
    setp.ne.s32 %p1, %r4, 0;
    @%p1 bra $L1;
    atom.or.acq_rel.cta.b32 %r5, [%rd2], %r3;
$L1:
    barrier.sync 0;
    ld.u32 %r6, [%rd2];
    mov.u32 %r7, s;
    shl.b32 %r4, %r1, 2;
    add.s32 %r7, %r7, %r4;
    st.shared.u32 [%r7], %r6;
    mov.u32 %r7, s;
    cvta.to.global.u64 %rd3, %rd1;
    st.global.v2.u32 [%rd3], {%r6, %r7};
    ret;
}
"#,
    );
    let k = kernel(&m, "k").expect("lowers");
    assert_eq!(k.reserved_smem, 1024);
    assert!(k.shared_static >= 1024 + 384);
    let o = out(&dev, 2);
    clean(&run(&dev, &m, "k", 1, 32 * 3, 0, &[o]).expect("run"));
    let got = words(&dev, o, 2);
    assert_eq!(got[0] & 0b111, 0b111);
    assert_eq!(got[1], 1024, "the kernel's shared array follows the reserved region");
}

/// wmma: a kernel that loads A, B and C (each in the given layout, B with a padded stride),
/// multiplies and stores D.
#[allow(clippy::too_many_arguments)]
fn wmma_ptx(shape: WmmaShape, at: Ty, ct: Ty, dt: Ty, lay: [&str; 4], bstride: usize) -> String {
    let name = |t: Ty| match t {
        Ty::F16 => "f16",
        Ty::Bf16 => "bf16",
        _ => "f32",
    };
    let sh = match shape {
        WmmaShape::M16N16K16 => "m16n16k16",
        WmmaShape::M32N8K16 => "m32n8k16",
        WmmaShape::M8N32K16 => "m8n32k16",
    };
    let mut next = 0;
    let mut frag = |f: WmmaFrag, t: Ty| {
        let n = wmma_regs(f, shape, t);
        let p = if t == Ty::F32 { "%f" } else { "%r" };
        let v: Vec<String> = (next..next + n).map(|i| format!("{p}{i}")).collect();
        next += n;
        format!("{{{}}}", v.join(", "))
    };
    let (a, b, c, d) = (frag(WmmaFrag::A, at), frag(WmmaFrag::B, at), frag(WmmaFrag::C, ct), frag(WmmaFrag::D, dt));
    let types = if at == Ty::Bf16 { "f32.bf16.bf16.f32".to_string() } else { format!("{}.{}", name(dt), name(ct)) };
    format!(
        r#"
.visible .entry w(.param .u64 pa, .param .u64 pb, .param .u64 pc, .param .u64 pd)
{{
    .reg .b32 %r<64>;
    .reg .f32 %f<64>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [pa];
    ld.param.u64 %rd2, [pb];
    ld.param.u64 %rd3, [pc];
    ld.param.u64 %rd4, [pd];
    wmma.load.a.sync.aligned.{la}.{sh}.{an} {a}, [%rd1];
    wmma.load.b.sync.aligned.{lb}.{sh}.global.{an} {b}, [%rd2], {bstride};
    wmma.load.c.sync.aligned.{lc}.{sh}.{cn} {c}, [%rd3];
    wmma.mma.sync.aligned.{la}.{lb}.{sh}.{types} {d}, {a}, {b}, {c};
    wmma.store.d.sync.aligned.{ld}.{sh}.{dn} [%rd4], {d};
    ret;
}}
"#,
        la = lay[0],
        lb = lay[1],
        lc = lay[2],
        ld = lay[3],
        an = name(at),
        cn = name(ct),
        dn = name(dt),
    )
}

/// Every wmma shape, multiplicand type, accumulator type and memory layout: load -> mma -> store
/// gives A * B + C (inputs are small multiples of 1/8, so every sum is exact whatever the order
/// and the fragment layout).
#[test]
fn wmma_load_mma_store_round_trips() {
    let dev = EmuDevice::new();
    let mut s = seed();
    let mut cases = 0;
    for shape in [WmmaShape::M16N16K16, WmmaShape::M32N8K16, WmmaShape::M8N32K16] {
        let (mm, nn, kk) = shape.mnk();
        for (at, ct, dt) in [
            (Ty::F16, Ty::F32, Ty::F32),
            (Ty::F16, Ty::F16, Ty::F16),
            (Ty::F16, Ty::F16, Ty::F32),
            (Ty::F16, Ty::F32, Ty::F16),
            (Ty::Bf16, Ty::F32, Ty::F32),
        ] {
            for lay in [["row", "col", "row", "row"], ["col", "row", "col", "col"], ["row", "row", "col", "row"]] {
                let (acol, bcol, ccol, dcol) = (lay[0] == "col", lay[1] == "col", lay[2] == "col", lay[3] == "col");
                // B's stride: its leading dimension plus 8 elements of padding.
                let bstride = if bcol { kk } else { nn } + 8;
                let m = lower(&dev, &wmma_ptx(shape, at, ct, dt, lay, bstride));
                let val = |s: &mut u64| (rng(s) % 17) as f64 / 8.0 - 1.0;
                let a: Vec<f64> = (0..mm * kk).map(|_| val(&mut s)).collect();
                let b: Vec<f64> = (0..kk * nn).map(|_| val(&mut s)).collect();
                let c: Vec<f64> = (0..mm * nn).map(|_| (rng(&mut s) % 64) as f64 - 32.0).collect();
                let bits16 = |x: f64, t: Ty| -> [u8; 2] {
                    if t == Ty::Bf16 {
                        half::bf16::from_f64(x).to_bits().to_le_bytes()
                    } else {
                        half::f16::from_f64(x).to_bits().to_le_bytes()
                    }
                };
                let store = |v: &[f64], rows: usize, cols: usize, col: bool, ld: usize, t: Ty| -> Vec<u8> {
                    let eb = if t == Ty::F32 { 4 } else { 2 };
                    let mut out = vec![0u8; ld * if col { cols } else { rows } * eb];
                    for i in 0..rows {
                        for j in 0..cols {
                            let at = if col { i + j * ld } else { i * ld + j } * eb;
                            let x = v[i * cols + j];
                            if t == Ty::F32 {
                                out[at..at + 4].copy_from_slice(&(x as f32).to_le_bytes());
                            } else {
                                out[at..at + 2].copy_from_slice(&bits16(x, t));
                            }
                        }
                    }
                    out
                };
                let pa = up(&dev, &store(&a, mm, kk, acol, if acol { mm } else { kk }, at));
                let pb = up(&dev, &store(&b, kk, nn, bcol, bstride, at));
                let pc = up(&dev, &store(&c, mm, nn, ccol, if ccol { mm } else { nn }, ct));
                let pd = out(&dev, mm * nn);
                let rep = run(&dev, &m, "w", 1, 32, 0, &[pa, pb, pc, pd]).expect("run");
                clean(&rep);
                let cnt = rep.counters.expect("counters");
                assert_eq!((cnt.mma_instructions, cnt.tensor_flops), (1, 2 * (mm * nn * kk) as u64));
                let got = words(&dev, pd, mm * nn);
                let eb = if dt == Ty::F32 { 4 } else { 2 };
                let bytes: Vec<u8> = got.iter().flat_map(|w| w.to_le_bytes()).collect();
                for i in 0..mm {
                    for j in 0..nn {
                        // Exact in f64, rounded once to the accumulator type.
                        let exact: f64 = c[i * nn + j] + (0..kk).map(|k| a[i * kk + k] * b[k * nn + j]).sum::<f64>();
                        let o = if dcol { i + j * mm } else { i * nn + j } * eb;
                        let (g, want) = if dt == Ty::F32 {
                            (f32::from_le_bytes(bytes[o..o + 4].try_into().unwrap()) as f64, exact)
                        } else {
                            let g = half::f16::from_le_bytes([bytes[o], bytes[o + 1]]).to_f64();
                            (g, half::f16::from_f64(exact).to_f64())
                        };
                        assert_eq!(g, want, "{shape:?} {at:?}/{ct:?}/{dt:?} {lay:?} D[{i}][{j}]");
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 45);
}

/// wmma's warp-wide rules: a partial warp, a misaligned stride and lanes that disagree on the
/// address are flagged; tf32 is refused at lowering.
#[test]
fn wmma_misuse_is_flagged() {
    let dev = EmuDevice::new();
    let ptx = r#"
.visible .entry w(.param .u64 pa, .param .u32 stride, .param .u32 per_lane)
{
    .reg .b32 %r<16>;
    .reg .b64 %rd<5>;
    ld.param.u64 %rd1, [pa];
    ld.param.u32 %r10, [stride];
    ld.param.u32 %r11, [per_lane];
    mov.u32 %r12, %tid.x;
    mul.lo.s32 %r13, %r12, %r11;
    mul.wide.u32 %rd2, %r13, 32;
    add.s64 %rd3, %rd1, %rd2;
    wmma.load.a.sync.aligned.row.m16n16k16.bf16 {%r0, %r1, %r2, %r3}, [%rd3], %r10;
    wmma.store.d.sync.aligned.row.m16n16k16.global.f16 [%rd3], {%r0, %r1, %r2, %r3}, %r10;
    ret;
}
.visible .entry tf(.param .u64 pa)
{
    .reg .b32 %r<8>;
    .reg .b64 %rd<2>;
    ld.param.u64 %rd1, [pa];
    wmma.load.a.sync.aligned.row.m16n16k8.tf32 {%r0, %r1, %r2, %r3}, [%rd1];
    ret;
}
"#;
    let m = lower(&dev, ptx);
    let a = up(&dev, &vec![0x3cu8; 64 * 1024]);
    let k = kernel(&m, "w").expect("w");
    let go = |block: u32, stride: u32, per_lane: u32| {
        let cfg = LaunchConfig { grid: [1, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: 0 };
        dev.launch_kernel(&k, cfg, &[&a.to_le_bytes(), &stride.to_le_bytes(), &per_lane.to_le_bytes()], None)
            .expect("run")
    };
    clean(&go(32, 16, 0));
    let r = go(16, 16, 0);
    assert!(r.findings[0].message.contains("wmma.load member mask"), "{:?}", r.findings);
    let r = go(32, 12, 0);
    assert_eq!(r.findings[0].kind, FindingKind::Misaligned, "{:?}", r.findings);
    let r = go(32, 16, 1);
    assert!(r.findings[0].message.contains("disagree"), "{:?}", r.findings);
    let e = kernel(&m, "tf").expect_err("tf32").to_string();
    assert!(e.contains("unsupported wmma form"), "{e}");
}
