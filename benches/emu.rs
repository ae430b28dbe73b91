//! Emulator throughput in thread-instructions per second (criterion's "elements/s"), with and
//! without the sanitizer, on the three attention kernels at sizes that take a fraction of a
//! second each: dense (causal, seq 128, 2 heads, d64), flash prefill (causal, seq 512, 2 heads,
//! d128) and split-KV decode (1 query, 4096 keys, 8 heads on 2 KV heads, d128).

use attnjoule::emu::{EmuDevice, EmuOptions};
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

fn bench(c: &mut Criterion) {
    bench_variant(c, "emu_dense_seq128", Variant::Dense, Shape::prefill(1, 128, 2, 2, 64));
    bench_variant(c, "emu_flash_seq512", Variant::Flash, Shape::prefill(1, 512, 2, 2, 128));
    bench_variant(c, "emu_decode_seqk4096", Variant::Decode, Shape::decode(1, 1, 4096, 8, 2, 128));
}

criterion_group!(benches, bench);
criterion_main!(benches);
