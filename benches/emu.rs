//! Emulator throughput in thread-instructions per second (criterion's "elements/s"), with and
//! without the sanitizer, on the dense attention kernels (seq 128, 2 heads, head_dim 64).

use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::ops::{Attention, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::reference;
use attnjoule::work::Variant;
use attnjoule::Mask;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};

fn bench(c: &mut Criterion) {
    let shape = Shape::prefill(1, 128, 2, 2, 64);
    let p = Problem::new(shape, Mask::Causal);
    let att = Attention::new(Variant::Dense, &p, &Options::default()).expect("plan");
    let q = reference::random_bf16(shape.q_elems(), 1);
    let k = reference::random_bf16(shape.kv_elems(), 2);
    let v = reference::random_bf16(shape.kv_elems(), 3);
    let mut g = c.benchmark_group("emu_dense_seq128");
    g.sample_size(10);
    for (name, sanitize) in [("sanitizer_on", true), ("sanitizer_off", false)] {
        let dev = EmuDevice::with_options(EmuOptions { sanitize, counters: true, threads: None }).expect("device");
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

criterion_group!(benches, bench);
criterion_main!(benches);
