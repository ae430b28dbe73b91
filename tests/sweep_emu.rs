//! End to end on the CPU emulator: `--backend emu` runs the same sweep (log, outputs) on the
//! nvcc-produced PTX; counters, no time or energy, the profile marked Emulated.

use attnjoule::mask::MaskRecipe;
use attnjoule::profile::{EnergyMethod, Phase, PointStatus, ProfileKind};
use attnjoule::sweep::backend::{self, BackendKind, RunConfig};
use attnjoule::sweep::SweepSpec;
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
            masks: vec![MaskRecipe::Causal],
            batch: 1,
            heads: 2,
            kv_heads: 1,
            head_dim: 64,
            ..Default::default()
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

    // Sliding window and every block-sparse recipe through the same path, a layout file included.
    let dir2 = dir.with_extension("masks");
    std::fs::create_dir_all(&dir2).unwrap();
    let layout = dir2.join("layout.json");
    // 192 tokens in 64-token blocks: a 3 x 3 grid, rows seeing {0}, {0, 1}, {0, 2}.
    std::fs::write(&layout, r#"{"block_q": 64, "block_k": 64, "row_ptr": [0, 1, 3, 5], "col_idx": [0, 0, 1, 0, 2]}"#)
        .unwrap();
    let masks: Vec<MaskRecipe> = [
        "window:50".to_string(),
        "longformer:64:0:1".into(),
        "bigbird:64:0:1:1:7".into(),
        "strided:64:0:2".into(),
        format!("csr:{}", layout.display()),
    ]
    .iter()
    .map(|m| MaskRecipe::from_arg(m).unwrap())
    .collect();
    let cfg = RunConfig {
        spec: SweepSpec {
            variants: vec![Variant::Dense],
            phases: vec![Phase::Prefill],
            contexts: vec![192],
            masks: masks.clone(),
            ..cfg.spec.clone()
        },
        out: Some(dir2.join("sweep")),
        ..cfg
    };
    let out = backend::run(&cfg, &mut |_| {}).unwrap();
    assert_eq!(out.profile.points.len(), masks.len());
    for (x, m) in out.profile.points.iter().zip(&masks) {
        assert_eq!(&x.mask, m, "points in the spec's order, each with its recipe");
        assert_eq!(x.status, PointStatus::Ok, "{}: {:?}", x.mask, x.note);
        // The work counts are those of the mask the recipe builds (checked against the f64
        // reference by the emulated run itself).
        let want = attnjoule::work::useful_flops(&attnjoule::Problem::new(x.shape, m.mask(192, 192).unwrap()));
        assert_eq!(x.flops, want, "{}", x.mask);
        println!("{}: {}", x.mask, x.note.as_deref().unwrap_or(""));
    }
    let _ = std::fs::remove_dir_all(&dir2);
}
