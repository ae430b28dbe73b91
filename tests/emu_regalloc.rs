//! Register reuse (`emu::regalloc`) on hand-written PTX: values that must survive while other
//! registers come and go share the register file with them, and are still read back intact.

mod common;
use attnjoule::device::LaunchConfig;
use attnjoule::emu::EmuDevice;
use attnjoule::kernels::PtxModule;
use common::*;

/// A loop-carried accumulator (%r3) and counter (%r4) with a per-lane trip count (divergent
/// loop), a value defined before the loop and used after it (%r2), short-lived temporaries
/// inside and after the loop, and a guarded def (%r7) that must keep the old value (5) in the
/// lanes whose guard is false, with temporaries defined between the two defs of %r7; then a loop
/// whose guarded def (%r17) keeps the previous iteration's value in lanes whose guard is false,
/// so %r17 is live around the back edge past its last use in the text (where %r21 is defined).
const PTX: &str = r#"
.version 8.0
.target sm_90
.address_size 64

.visible .entry regalloc_mix(
    .param .u64 regalloc_mix_param_0
)
{
    .reg .pred %p<4>;
    .reg .b32 %r<24>;
    .reg .b64 %rd<8>;

    ld.param.u64 %rd1, [regalloc_mix_param_0];
    cvta.to.global.u64 %rd2, %rd1;
    mov.u32 %r1, %tid.x;
    mul.lo.s32 %r2, %r1, 7;
    and.b32 %r11, %r1, 7;
    add.s32 %r12, %r11, 5;
    mov.u32 %r3, 0;
    mov.u32 %r4, 0;
$L__loop:
    add.s32 %r5, %r4, %r1;
    mul.lo.s32 %r6, %r5, %r5;
    add.s32 %r3, %r3, %r6;
    add.s32 %r4, %r4, 1;
    setp.lt.u32 %p1, %r4, %r12;
    @%p1 bra $L__loop;
    mov.u32 %r7, 5;
    and.b32 %r8, %r1, 1;
    xor.b32 %r13, %r8, 3;
    add.s32 %r14, %r13, %r8;
    setp.eq.s32 %p2, %r8, 1;
    @%p2 mov.u32 %r7, 100;
    mul.lo.s32 %r15, %r14, 0;
    add.s32 %r9, %r3, %r2;
    add.s32 %r10, %r9, %r7;
    add.s32 %r16, %r10, %r15;
    mov.u32 %r17, 5;
    mov.u32 %r18, 0;
    mov.u32 %r20, 0;
$L__loop2:
    mad.lo.s32 %r19, %r18, 3, 1;
    setp.eq.s32 %p3, %r18, %r11;
    @%p3 mov.u32 %r17, %r19;
    add.s32 %r20, %r20, %r17;
    mul.lo.s32 %r21, %r18, 13;
    add.s32 %r20, %r20, %r21;
    add.s32 %r18, %r18, 1;
    setp.lt.u32 %p3, %r18, 8;
    @%p3 bra $L__loop2;
    add.s32 %r16, %r16, %r20;
    mul.wide.u32 %rd3, %r1, 4;
    add.s64 %rd4, %rd2, %rd3;
    st.global.u32 [%rd4], %r16;
    ret;
}
"#;

#[test]
fn reuse_keeps_loop_carried_long_lived_and_guarded_values() {
    let dev = EmuDevice::new();
    let k = PtxModule::from_ptx("regalloc_test", PTX).kernel("regalloc_mix").expect("entry");
    let lowered = dev.kernel(&k).expect("lower");
    // The test only means something if registers actually share slots.
    let consts = lowered.consts.len() as u32;
    assert!(lowered.nregs - consts < lowered.vregs - consts, "{} slots for {} registers", lowered.nregs, lowered.vregs);
    let n = 64usize;
    let o = out(&dev, 4 * n);
    let arg = ptr(&o);
    let rep = dev
        .run_kernel(&k, LaunchConfig { grid: [1, 1, 1], block: [n as u32, 1, 1], dynamic_shared_bytes: 0 }, &[&arg[..]])
        .expect("launch");
    assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
    let got: Vec<u32> = get(&dev, &o, n);
    for (t, &g) in got.iter().enumerate() {
        let t = t as u32;
        let trips = (t & 7) + 5;
        let sum: u32 = (0..trips).map(|i| (i + t) * (i + t)).sum();
        let mut loop2 = 0;
        let mut r17 = 5;
        for i in 0..8 {
            if i == t & 7 {
                r17 = 3 * i + 1;
            }
            loop2 += r17 + 13 * i;
        }
        let want = sum + 7 * t + if t & 1 == 1 { 100 } else { 5 } + loop2;
        assert_eq!(g, want, "thread {t}");
    }
}
