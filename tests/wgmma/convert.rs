//! stmatrix and the fp8 conversions on the emulator, against host models written from the PTX
//! ISA (stmatrix: 9.7.14.5.16; cvt: 9.7.9.21) and the OCP fp8 definitions: every fp8 code pair,
//! every f16 value, and f32 values around every fp8 value, midpoint and saturation edge.

use super::cases::{kernel, ptx_module, Rng, PTX_HEADER};
use super::host::{fp8_value, Fp8};
use attnjoule::device::{DevBuf, Device, LaunchConfig, LaunchReport};
use attnjoule::kernels::{KernelModule, KernelRef};
use half::f16;

/// The canonical NaNs the emulator writes (whether the GPU writes the same is a GPU check).
pub const F8_NAN: u8 = 0x7f;
pub const F16_NAN: u16 = 0x7fff;

/// Round-to-nearest-even with .satfinite by search over the format's codes (independent of the
/// emulator's arithmetic): the nearest finite value, ties to the even code; beyond the largest
/// finite value (infinities included) the largest; NaN to [`F8_NAN`]; `.relu` maps negatives to 0.
pub fn host_to_fp8(x: f64, t: Fp8, relu: bool) -> u8 {
    if x.is_nan() {
        return F8_NAN;
    }
    let x = if relu && x.is_sign_negative() { 0.0 } else { x };
    let sign = if x.is_sign_negative() { 0x80u8 } else { 0 };
    let a = x.abs();
    // Non-negative finite codes in increasing value.
    let codes: Vec<u8> = (0u8..0x80).filter(|&c| fp8_value(c, t).is_finite()).collect();
    let max = *codes.last().expect("codes");
    if a >= fp8_value(max, t) {
        return sign | max;
    }
    let hi = *codes.iter().find(|&&c| fp8_value(c, t) > a).expect("above");
    let lo = hi - 1;
    let (dl, dh) = (a - fp8_value(lo, t), fp8_value(hi, t) - a);
    let c = if dl < dh || (dl == dh && lo % 2 == 0) { lo } else { hi };
    sign | c
}

/// fp8 code to f16 bits (exact), NaN as [`F16_NAN`], `.relu` negatives to +0.
pub fn host_fp8_to_f16(c: u8, t: Fp8, relu: bool) -> u16 {
    let v = fp8_value(c, t);
    if v.is_nan() {
        return F16_NAN;
    }
    if relu && v.is_sign_negative() {
        return 0;
    }
    let h = f16::from_f64(v);
    assert_eq!(h.to_f64(), v);
    h.to_bits()
}

fn t_name(t: Fp8) -> &'static str {
    match t {
        Fp8::E4m3 => "e4m3x2",
        Fp8::E5m2 => "e5m2x2",
    }
}

/// PTX entries: `cvt_<form>_<type>[_relu](in, out, n)`, one conversion per thread.
pub fn cvt_ptx() -> String {
    let mut p = PTX_HEADER.to_string();
    for t in [Fp8::E4m3, Fp8::E5m2] {
        for relu in [false, true] {
            let r = if relu { ".relu" } else { "" };
            let sfx = format!("{}{}", t_name(t), if relu { "_relu" } else { "" });
            let head = |name: &str| {
                format!(
                    ".visible .entry {name}_{sfx}(.param .u64 p_in, .param .u64 p_out, .param .u32 p_n)\n{{\n\
                     \t.reg .pred %p<2>;\n\t.reg .b16 %h<2>;\n\t.reg .b32 %r<8>;\n\t.reg .f32 %f<2>;\n\t.reg .b64 %rd<8>;\n\
                     \tmov.u32 %r0, %tid.x;\n\tmov.u32 %r1, %ctaid.x;\n\tmad.lo.s32 %r2, %r1, 128, %r0;\n\
                     \tld.param.u32 %r3, [p_n];\n\tsetp.ge.u32 %p0, %r2, %r3;\n\t@%p0 bra $Lend;\n\
                     \tld.param.u64 %rd0, [p_in];\n\tld.param.u64 %rd1, [p_out];\n"
                )
            };
            // two f32 -> f8x2 (a in the upper byte)
            p += &head("cvt_f32");
            p += "\tmul.wide.u32 %rd2, %r2, 8;\n\tadd.s64 %rd3, %rd0, %rd2;\n\
                  \tld.global.f32 %f0, [%rd3];\n\tld.global.f32 %f1, [%rd3+4];\n";
            p += &format!("\tcvt.rn.satfinite{r}.{}.f32 %h0, %f0, %f1;\n", t_name(t));
            p += "\tmul.wide.u32 %rd4, %r2, 2;\n\tadd.s64 %rd5, %rd1, %rd4;\n\tst.global.b16 [%rd5], %h0;\n$Lend:\n\tret;\n}\n\n";
            // f16x2 -> f8x2
            p += &head("cvt_f16x2");
            p += "\tmul.wide.u32 %rd2, %r2, 4;\n\tadd.s64 %rd3, %rd0, %rd2;\n\tld.global.b32 %r4, [%rd3];\n";
            p += &format!("\tcvt.rn.satfinite{r}.{}.f16x2 %h0, %r4;\n", t_name(t));
            p += "\tmul.wide.u32 %rd4, %r2, 2;\n\tadd.s64 %rd5, %rd1, %rd4;\n\tst.global.b16 [%rd5], %h0;\n$Lend:\n\tret;\n}\n\n";
            // f8x2 -> f16x2
            p += &head("cvt_to_f16x2");
            p += "\tmul.wide.u32 %rd2, %r2, 2;\n\tadd.s64 %rd3, %rd0, %rd2;\n\tld.global.b16 %h0, [%rd3];\n";
            p += &format!("\tcvt.rn{r}.f16x2.{} %r4, %h0;\n", t_name(t));
            p += "\tmul.wide.u32 %rd4, %r2, 4;\n\tadd.s64 %rd5, %rd1, %rd4;\n\tst.global.b32 [%rd5], %r4;\n$Lend:\n\tret;\n}\n\n";
        }
    }
    p
}

/// Runs a one-conversion-per-thread kernel over `n` items; returns the output words.
pub fn run_cvt<I: attnjoule::device::Pod, O: attnjoule::device::Pod>(
    dev: &dyn Device,
    k: &KernelRef,
    input: &[I],
    n: usize,
) -> (LaunchReport, Vec<O>) {
    let inb = DevBuf::from_slice(dev, input).expect("upload");
    let out = DevBuf::new(dev, n * std::mem::size_of::<O>()).expect("alloc");
    out.fill(0x5a5a_5a5a).expect("poison");
    let args =
        [inb.addr().to_le_bytes().to_vec(), out.addr().to_le_bytes().to_vec(), (n as u32).to_le_bytes().to_vec()];
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [n.div_ceil(128) as u32, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: 0 };
    // SAFETY: `n` items of input and output, one per thread; buffers live past the launch.
    let rep = unsafe { dev.launch(k, cfg, &a) }.expect("launch");
    dev.synchronize().expect("sync");
    (rep, out.download_vec(n).expect("download"))
}

/// f32 inputs around every fp8 value of both formats: the values, the midpoints between
/// neighbours, one f32 ulp either side of each, both signs; saturation edges, infinities, NaN,
/// f32 subnormals, and random f32 values over the fp8 range.
pub fn f32_inputs(seed: u64) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::new();
    for t in [Fp8::E4m3, Fp8::E5m2] {
        let vals: Vec<f64> = (0u8..0x80).map(|c| fp8_value(c, t)).filter(|x| x.is_finite()).collect();
        for w in vals.windows(2) {
            for x in [w[0], (w[0] + w[1]) / 2.0] {
                let f = x as f32;
                v.extend([f, f.next_up(), f.next_down()]);
            }
        }
        let max = *vals.last().expect("max") as f32;
        v.extend([max, max.next_up(), max * 1.03, max * 1.0625, max * 1.07, max * 2.0]);
    }
    v.extend([f32::MAX, f32::INFINITY, f32::NAN, f32::MIN_POSITIVE, 1e-40, 0.0, 2f32.powi(-10), 2f32.powi(-17)]);
    let mut rng = Rng(seed);
    for _ in 0..20000 {
        let e = rng.below(40) as i32 - 22;
        let m = 1.0 + rng.below(1 << 23) as f32 / (1u32 << 23) as f32;
        v.push(m * 2f32.powi(e));
    }
    let neg: Vec<f32> = v.iter().map(|x| -x).collect();
    v.extend(neg);
    if v.len() % 2 == 1 {
        v.push(1.0);
    }
    v
}

/// Checks the three fp8 conversion forms of both formats, with and without .relu, on `dev`;
/// returns the number of values checked. `cmp` compares one output with its input's host
/// result (the emulator run compares with the host model; the GPU run with the emulator).
pub fn check_cvt(dev: &dyn Device, m: &'static KernelModule, seed: u64, cmp: &dyn Fn(&str, usize, u32, u32)) -> usize {
    let mut checked = 0;
    let f32s = f32_inputs(seed);
    let all16: Vec<u16> = (0..=u16::MAX).collect();
    // f16x2 inputs: every f16 value in the low half, a permutation of them in the high half.
    let f16x2: Vec<u32> = (0..=u16::MAX as u32).map(|x| x | ((x.wrapping_mul(40503) & 0xffff) << 16)).collect();
    for t in [Fp8::E4m3, Fp8::E5m2] {
        for relu in [false, true] {
            let sfx = format!("{}{}", t_name(t), if relu { "_relu" } else { "" });
            let k = kernel(m, &format!("cvt_f32_{sfx}"));
            let (rep, out): (_, Vec<u16>) = run_cvt(dev, &k, &f32s, f32s.len() / 2);
            assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
            for (i, &o) in out.iter().enumerate() {
                let (a, b) = (f32s[2 * i] as f64, f32s[2 * i + 1] as f64);
                let want = (host_to_fp8(a, t, relu) as u32) << 8 | host_to_fp8(b, t, relu) as u32;
                cmp(&format!("cvt_f32_{sfx}({a:e}, {b:e})"), i, o as u32, want);
            }
            checked += out.len();
            let k = kernel(m, &format!("cvt_f16x2_{sfx}"));
            let (rep, out): (_, Vec<u16>) = run_cvt(dev, &k, &f16x2, f16x2.len());
            assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
            for (i, &o) in out.iter().enumerate() {
                let x = f16x2[i];
                let h = |b: u32| host_to_fp8(f16::from_bits(b as u16).to_f64(), t, relu) as u32;
                cmp(&format!("cvt_f16x2_{sfx}({x:#010x})"), i, o as u32, h(x >> 16) << 8 | h(x & 0xffff));
            }
            checked += out.len();
            let k = kernel(m, &format!("cvt_to_f16x2_{sfx}"));
            let (rep, out): (_, Vec<u32>) = run_cvt(dev, &k, &all16, all16.len());
            assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
            for (i, &o) in out.iter().enumerate() {
                let c = all16[i];
                let want =
                    (host_fp8_to_f16((c >> 8) as u8, t, relu) as u32) << 16 | host_fp8_to_f16(c as u8, t, relu) as u32;
                cmp(&format!("cvt_to_f16x2_{sfx}({c:#06x})"), i, o, want);
            }
            checked += out.len();
        }
    }
    checked
}

#[test]
fn fp8_conversions_every_code_against_the_host_model() {
    let dev = attnjoule::emu::EmuDevice::new();
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let m = ptx_module("fp8cvt", cvt_ptx());
    let n =
        check_cvt(&dev, m, seed, &|what, _, got, want| assert_eq!(got, want, "{what}: got {got:#x}, want {want:#x}"));
    println!("{n} conversions checked");
}

/// PTX entries `stm_x{1,2,4}[_t](vals, slots, out)`: lane l's registers from vals[l * num ..],
/// lane l gives the address of 16-byte slot slots[l] of a 512-byte buffer that every thread
/// first fills with 0xa5; the buffer is then copied out.
/// stmatrix variants (num, trans, generic address) both the generated PTX and the nvcc module have.
pub const STM_VARIANTS: [(usize, bool, bool); 6] =
    [(1, false, false), (1, true, false), (2, false, false), (2, true, false), (4, false, false), (4, true, false)];

pub fn stm_name(num: usize, trans: bool, generic: bool) -> String {
    format!("stm_x{num}{}{}", if trans { "_t" } else { "" }, if generic { "_generic" } else { "" })
}

pub fn stmatrix_ptx() -> String {
    let mut p = PTX_HEADER.to_string();
    for (num, trans, generic) in STM_VARIANTS.iter().copied().chain([(4, false, true)]) {
        {
            let num = num as u32;
            let name = stm_name(num as usize, trans, generic);
            let regs: Vec<String> = (0..num).map(|j| format!("%v{j}")).collect();
            p += &format!(
                ".visible .entry {name}(.param .u64 p_vals, .param .u64 p_slots, .param .u64 p_out)\n{{\n\
                 \t.reg .b32 %r<16>;\n\t.reg .b32 %v<4>;\n\t.reg .b64 %rd<16>;\n\t.shared .align 16 .b8 buf[512];\n\
                 \tmov.u32 %r0, %tid.x;\n\tmov.u32 %r1, buf;\n\tshl.b32 %r2, %r0, 4;\n\tadd.s32 %r3, %r1, %r2;\n\
                 \tmov.u32 %r4, 2779096485;\n\tst.shared.v4.u32 [%r3], {{%r4, %r4, %r4, %r4}};\n\tbar.sync 0;\n\
                 \tld.param.u64 %rd0, [p_vals];\n\tmul.wide.u32 %rd1, %r0, {};\n\tadd.s64 %rd2, %rd0, %rd1;\n",
                4 * num
            );
            for j in 0..num {
                p += &format!("\tld.global.b32 %v{j}, [%rd2+{}];\n", 4 * j);
            }
            p += &format!(
                "\tld.param.u64 %rd3, [p_slots];\n\tmul.wide.u32 %rd4, %r0, 4;\n\tadd.s64 %rd5, %rd3, %rd4;\n\
                 \tld.global.u32 %r5, [%rd5];\n\tshl.b32 %r6, %r5, 4;\n\tadd.s32 %r7, %r1, %r6;\n\
                 \tcvt.u64.u32 %rd9, %r7;\n\tcvta.shared.u64 %rd10, %rd9;\n\
                 \tstmatrix.sync.aligned.m8n8.x{num}{}{} [{}], {{{}}};\n\tbar.sync 0;\n\
                 \tld.shared.v4.u32 {{%r8, %r9, %r10, %r11}}, [%r3];\n\tld.param.u64 %rd6, [p_out];\n\
                 \tmul.wide.u32 %rd7, %r0, 16;\n\tadd.s64 %rd8, %rd6, %rd7;\n\
                 \tst.global.v4.u32 [%rd8], {{%r8, %r9, %r10, %r11}};\n\tret;\n}}\n\n",
                if trans { ".trans" } else { "" },
                if generic { ".b16" } else { ".shared.b16" },
                if generic { "%rd10" } else { "%r7" },
                regs.join(", ")
            );
        }
    }
    p
}

/// The 512 bytes (as 256 b16 values) stmatrix leaves: slot slots[8j+i] holds row i of matrix j,
/// whose element (r, c) is the (c % 2) half of register j of lane 4r + c/2 (with .trans: element
/// (r, c) is the (r % 2) half of register j of lane 4c + r/2); other slots keep 0xa5a5.
pub fn stmatrix_expected(num: usize, trans: bool, vals: &[u32], slots: &[u32]) -> Vec<u16> {
    let mut out = vec![0xa5a5u16; 256];
    for j in 0..num {
        for r in 0..8 {
            for c in 0..8 {
                let (lane, half) = if trans { (4 * c + r / 2, r % 2) } else { (4 * r + c / 2, c % 2) };
                let v = (vals[lane * num + j] >> (16 * half)) as u16;
                out[slots[8 * j + r] as usize * 8 + c] = v;
            }
        }
    }
    out
}

/// Compares one stmatrix variant's output (name, got, host model's expectation).
pub type StmCheck<'a> = dyn Fn(&str, &[u16], &[u16]) + 'a;

/// Runs every stmatrix variant on `dev` with fresh values and row slots; `cmp` checks each
/// variant's output against what the host model expects.
pub fn check_stmatrix(dev: &dyn Device, m: &'static KernelModule, seed: u64, cmp: &StmCheck) -> usize {
    let mut rng = Rng(seed);
    let mut n = 0;
    let generic = m.ptx.contains(".entry stm_x4_generic(");
    for (num, trans, g) in STM_VARIANTS.iter().copied().chain(generic.then_some((4, false, true))) {
        {
            let name = stm_name(num, trans, g);
            let vals: Vec<u32> = (0..32 * num).map(|_| rng.next() as u32).collect();
            let mut slots: Vec<u32> = (0..32).collect();
            for i in (1..32).rev() {
                slots.swap(i, rng.below(i as u64 + 1) as usize);
            }
            let vb = DevBuf::from_slice(dev, &vals).expect("upload");
            let sb = DevBuf::from_slice(dev, &slots).expect("upload");
            let ob = DevBuf::new(dev, 512).expect("alloc");
            ob.fill(0x1234_5678).expect("poison");
            let args = [vb.addr(), sb.addr(), ob.addr()].map(|a| a.to_le_bytes().to_vec());
            let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
            let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
            // SAFETY: 32 lanes x num values, 32 slots, 512 output bytes, alive past the launch.
            let rep = unsafe { dev.launch(&kernel(m, &name), cfg, &a) }.expect("launch");
            dev.synchronize().expect("sync");
            assert_eq!(rep.findings_total, 0, "{name}: {:?}", rep.findings);
            let got: Vec<u16> = ob.download_vec(256).expect("download");
            cmp(&name, &got, &stmatrix_expected(num, trans, &vals, &slots));
            n += 1;
        }
    }
    n
}

#[test]
fn stmatrix_every_count_and_transpose() {
    let dev = attnjoule::emu::EmuDevice::new();
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    check_stmatrix(&dev, ptx_module("stm", stmatrix_ptx()), seed, &|name, got, want| assert_eq!(got, want, "{name}"));
}
