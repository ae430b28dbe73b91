//! Emulator throughput in thread-instructions per second (criterion's "elements/s"), with and
//! without the sanitizer, on the three attention kernels at sizes that take a fraction of a
//! second each: dense (causal, seq 128, 2 heads, d64), flash prefill (causal, seq 512, 2 heads,
//! d128) and split-KV decode (1 query, 4096 keys, 8 heads on 2 KV heads, d128); and a
//! wgmma-heavy unit kernel (chains of m64n256k16 bf16 wgmmas, kernels/test/wgmma_units.cu) in
//! warpgroup-level wgmma instructions per second (each 2 x 64 x 256 x 16 = 524,288 FLOPs).

use attnjoule::device::{DevBuf, LaunchConfig};
use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::kernels::KernelRef;
use attnjoule::ops::{Attention, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::reference;
use attnjoule::work::Variant;
use attnjoule::Mask;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench_variant(c: &mut Criterion, group: &str, variant: Variant, shape: Shape) {
    let p = Problem::new(shape, Mask::Causal);
    let att = Attention::new(variant, &p, &Options::default()).expect("plan");
    let q = reference::random_bf16(shape.q_elems(), 1);
    let k = reference::random_bf16(shape.kv_elems(), 2);
    let v = reference::random_bf16(shape.kv_elems(), 3);
    let mut g = c.benchmark_group(group);
    g.sample_size(10);
    for (name, sanitize) in [("sanitizer_on", true), ("sanitizer_off", false)] {
        let dev = EmuDevice::with_options(EmuOptions { sanitize, counters: true, threads: None, ..Default::default() })
            .expect("device");
        let (_, reps) = att.run_once(&dev, &q, &k, &v).expect("run");
        let insts: u64 = reps
            .iter()
            .filter_map(|r| r.counters.as_ref())
            .map(|c| c.inst_arith + c.inst_memory + c.inst_tensor + c.inst_control + c.inst_sync)
            .sum();
        g.throughput(Throughput::Elements(insts));
        g.bench_function(name, |b| b.iter(|| att.run_once(&dev, &q, &k, &v).expect("run")));
    }
    g.finish();
}

/// wg_chain_bf16_n256 on 8 blocks, 8 iterations of 4 m64n256k16 steps each (A 64 x 64 and B
/// 256 x 64 in shared memory, K-major, 128B swizzle; random bf16 operands in [-2, 2)).
fn bench_wgmma_chain(c: &mut Criterion) {
    const BLOCKS: u32 = 8;
    const ITERS: i32 = 8;
    const IMG: usize = 8192 + 32768;
    let mut g = c.benchmark_group("emu_wgmma_chain_m64n256k16");
    g.sample_size(10);
    let k = KernelRef::new("wgmma_units", "wg_chain_bf16_n256").expect("kernel");
    let vals = reference::random_bf16(BLOCKS as usize * IMG / 2, 4);
    let acc = reference::random_bf16(BLOCKS as usize * 128 * 128, 5);
    let acc: Vec<f32> = acc.iter().map(|b| b.to_f32()).collect();
    let desc = |start: u64| start >> 4 | 1 << 16 | 64 << 32 | 1 << 62;
    let meta: Vec<u64> = (0..BLOCKS).flat_map(|_| [desc(0), desc(8192), 1, 0]).collect();
    for (name, sanitize) in [("sanitizer_on", true), ("sanitizer_off", false)] {
        let dev = EmuDevice::with_options(EmuOptions { sanitize, counters: true, threads: None, ..Default::default() })
            .expect("device");
        let img = DevBuf::from_slice(&dev, &vals).expect("upload");
        let mb = DevBuf::from_slice(&dev, &meta).expect("upload");
        let cb = DevBuf::from_slice(&dev, &acc).expect("upload");
        let out = DevBuf::new(&dev, acc.len() * 4).expect("alloc");
        let p = |b: &DevBuf| b.addr().to_le_bytes().to_vec();
        let args = [
            p(&img),
            p(&mb),
            p(&cb),
            p(&cb),
            p(&out),
            (IMG as u32).to_le_bytes().to_vec(),
            ITERS.to_le_bytes().to_vec(),
        ];
        let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
        let cfg = LaunchConfig { grid: [BLOCKS, 1, 1], block: [128, 1, 1], dynamic_shared_bytes: IMG as u32 };
        let run = || dev.run_kernel(&k, cfg, &a).expect("launch");
        let rep = run();
        assert_eq!(rep.findings_total, 0, "{:?}", rep.findings);
        let wgmmas = rep.counters.expect("counters").wgmma_instructions;
        g.throughput(Throughput::Elements(wgmmas));
        g.bench_function(name, |b| b.iter(run));
    }
    g.finish();
}

fn bench(c: &mut Criterion) {
    bench_variant(c, "emu_dense_seq128", Variant::Dense, Shape::prefill(1, 128, 2, 2, 64));
    bench_variant(c, "emu_flash_seq512", Variant::Flash, Shape::prefill(1, 512, 2, 2, 128));
    bench_variant(c, "emu_decode_seqk4096", Variant::Decode, Shape::decode(1, 1, 4096, 8, 2, 128));
    bench_wgmma_chain(c);
}

criterion_group!(benches, bench);
criterion_main!(benches);
