//! The dense kernels (kernels/dense.cu) run on the emulator and match the f64 reference, with
//! the sanitizer on (no findings), for fresh random inputs and poisoned outputs.

use attnjoule::emu::EmuDevice;
use attnjoule::ops::{Attention, Options};
use attnjoule::problem::{Problem, Shape};
use attnjoule::reference;
use attnjoule::work::Variant;
use attnjoule::Mask;

fn check(shape: Shape, mask: Mask) {
    let dev = EmuDevice::new();
    let p = Problem::new(shape, mask.clone());
    let seed = reference::fresh_seed();
    let q = reference::random_bf16(shape.q_elems(), seed);
    let k = reference::random_bf16(shape.kv_elems(), seed.wrapping_add(1));
    let v = reference::random_bf16(shape.kv_elems(), seed.wrapping_add(2));
    let att = Attention::new(Variant::Dense, &p, &Options::default()).expect("plan");
    let t = std::time::Instant::now();
    let (out, reports) = att.run_once(&dev, &q, &k, &v).expect("emulated run");
    let secs = t.elapsed().as_secs_f64();
    let want = reference::attention(&p, &q, &k, &v).expect("reference");
    let got: Vec<f64> = out.o.iter().map(|x| x.to_f64()).collect();
    let err = reference::rel_l2(&got, &want.o);
    let (lse_err, inf_ok) = reference::lse_error(&out.lse, &want.lse);
    let insts: u64 = reports
        .iter()
        .filter_map(|r| r.counters.as_ref())
        .map(|c| c.inst_arith + c.inst_memory + c.inst_tensor + c.inst_control + c.inst_sync)
        .sum();
    println!(
        "dense {shape:?} {mask:?} seed {seed}: rel L2 {err:.3e}, LSE max err {lse_err:.3e}, {secs:.2}s, {:.1} M thread-inst/s",
        insts as f64 / secs / 1e6
    );
    for r in &reports {
        for f in &r.findings {
            println!("  finding: {f:?}");
        }
        assert_eq!(r.findings_total, 0, "sanitizer findings in the dense kernels");
    }
    assert!(err.is_finite() && err <= 1e-2, "rel L2 {err} (seed {seed})");
    assert!(lse_err <= 1e-3 && inf_ok, "LSE error {lse_err}, -inf rows agree: {inf_ok} (seed {seed})");
}

#[test]
fn dense_seq17_causal() {
    check(Shape::prefill(1, 17, 2, 1, 64), Mask::Causal);
}

#[test]
fn dense_seq1_and_64() {
    check(Shape::prefill(1, 1, 2, 2, 64), Mask::None);
    check(Shape::prefill(1, 64, 2, 2, 64), Mask::Causal);
}

#[test]
fn dense_seq127_gqa_hd128() {
    check(Shape::prefill(1, 127, 4, 1, 128), Mask::None);
}

#[test]
fn dense_seq256_gqa_causal() {
    check(Shape::prefill(1, 256, 4, 2, 64), Mask::Causal);
}

#[test]
fn dense_seq_q_ne_seq_k() {
    check(Shape::decode(2, 17, 100, 4, 2, 64), Mask::Causal);
    check(Shape::decode(1, 64, 33, 2, 1, 128), Mask::None);
}

/// Blocks run in parallel; the result must not depend on the number of worker threads.
#[test]
fn dense_independent_of_thread_count() {
    use attnjoule::emu::EmuOptions;
    let shape = Shape::prefill(1, 100, 2, 1, 64);
    let p = Problem::new(shape, Mask::Causal);
    let seed = reference::fresh_seed();
    println!("seed {seed}");
    let q = reference::random_bf16(shape.q_elems(), seed);
    let k = reference::random_bf16(shape.kv_elems(), seed ^ 5);
    let v = reference::random_bf16(shape.kv_elems(), seed ^ 6);
    let att = Attention::new(Variant::Dense, &p, &Options::default()).expect("plan");
    let run = |threads| {
        let dev = EmuDevice::with_options(EmuOptions { threads: Some(threads), ..Default::default() }).expect("device");
        let (o, reps) = att.run_once(&dev, &q, &k, &v).expect("run");
        (o, reps.into_iter().map(|r| r.counters).collect::<Vec<_>>())
    };
    let (a, ca) = run(1);
    let (b, cb) = run(3);
    assert_eq!(
        a.o.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        b.o.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(
        a.lse.iter().map(|x| x.to_bits()).collect::<Vec<_>>(),
        b.lse.iter().map(|x| x.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(ca, cb);
}
