//! End to end on the CPU emulator: `--backend emu` runs the same sweep (log, outputs) on the
//! nvcc-produced PTX; counters, no time or energy, the profile marked Emulated.

use attnjoule::profile::{EnergyMethod, Phase, PointStatus, ProfileKind};
use attnjoule::sweep::backend::{self, BackendKind, RunConfig};
use attnjoule::sweep::{MaskChoice, SweepSpec};
use attnjoule::work::Variant;

#[test]
fn emulator_sweep_end_to_end() {
    let dir = std::env::temp_dir().join(format!(
        "attnjoule-emu-sweep-{}-{}",
        std::process::id(),
        attnjoule::reference::fresh_seed()
    ));
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense, Variant::Flash],
            phases: vec![Phase::Prefill, Phase::Decode],
            contexts: vec![64, 128, 1024],
            decode_tokens: vec![1, 4],
            masks: vec![MaskChoice::Causal],
            batch: 1,
            heads: 2,
            kv_heads: 1,
            head_dim: 64,
        },
        backend: BackendKind::Emu,
        out: Some(dir.clone()),
        gemm: vec![],
        // 1024-token dense prefill needs 8 MiB of scores: beyond this limit, so infeasible.
        emu_max_bytes: 4 << 20,
        seed,
        ..Default::default()
    };
    let mut lines = Vec::new();
    let out = backend::run(&cfg, &mut |l| lines.push(l.to_string())).unwrap();
    let p = &out.profile;
    assert_eq!(p.kind, ProfileKind::Emulated);
    // prefill: dense x3 + flash x3; decode: dense x3 x2 tokens
    assert_eq!(p.points.len(), 12, "{lines:?}");
    let dense_prefill_1k =
        p.points.iter().find(|x| x.variant == "dense" && x.phase == Phase::Prefill && x.shape.seq_k == 1024).unwrap();
    assert!(matches!(dense_prefill_1k.status, PointStatus::Infeasible { .. }), "{:?}", dense_prefill_1k.status);
    let ok: Vec<_> = p.points.iter().filter(|x| x.status == PointStatus::Ok).collect();
    assert!(ok.len() >= 8, "dense points run on the emulator: {lines:?}");
    for x in &ok {
        assert_eq!(x.energy_method, EnergyMethod::None);
        assert!(x.seconds.is_none() && x.joules.is_none(), "emulated points are not measured");
        let c = x.counters.as_ref().expect("emulator counters");
        let s = x.shape;
        assert!(c.inst_arith > 0 && c.warp_instructions > 0);
        // every output element and LSE written (at least once)
        assert!(c.global_store_bytes >= (2 * s.q_elems() + 4 * s.lse_elems()) as u64, "{c:?}");
        let note = x.note.as_deref().unwrap_or("");
        assert!(note.contains("0 unwritten outputs") && note.contains("0 sanitizer findings"), "{note}");
        println!("{} {:?} ctx={} q={}: {note}", x.variant, x.phase, s.seq_k, s.seq_q);
    }
    // Every point but the one too large for the emulator's limit ran and matched the reference.
    assert_eq!(
        ok.len(),
        11,
        "{:?}",
        p.points.iter().map(|x| (&x.variant, x.shape.seq_k, &x.status)).collect::<Vec<_>>()
    );
    assert!(out.log.exists() && dir.join("profile.json").exists() && dir.join("profile.csv").exists());
    let _ = std::fs::remove_dir_all(&dir);

    // Sliding window and block-sparse masks through the same path.
    let dir2 = dir.with_extension("masks");
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense],
            phases: vec![Phase::Prefill],
            contexts: vec![192],
            masks: vec![MaskChoice::Window(50), MaskChoice::Longformer { block: 64, local: 0, global: 1 }],
            ..cfg.spec.clone()
        },
        out: Some(dir2.clone()),
        ..cfg
    };
    let out = backend::run(&cfg, &mut |_| {}).unwrap();
    assert_eq!(out.profile.points.len(), 2);
    for x in &out.profile.points {
        assert_eq!(x.status, PointStatus::Ok, "{} {:?}: {:?}", x.mask.kind, x.mask.detail, x.note);
        println!("{} {:?}: {}", x.mask.kind, x.mask.detail, x.note.as_deref().unwrap_or(""));
    }
    let _ = std::fs::remove_dir_all(&dir2);
}
