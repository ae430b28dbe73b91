//! The bundled analytical H100 SXM profile: every point is the roofline time of its work counts at
//! datasheet peaks, and its energy that time at full board power. Analytical, not measured: it is
//! an optimistic bound on time (no launch overhead, peak rates) and a pessimistic one on power.
//! `profiles/h100-sxm-analytical.json` is exactly what [`h100_sxm`] produces (a test checks it);
//! regenerate it with `attnjoule estimate --write-analytical profiles/h100-sxm-analytical.json`.

use super::interp::{work_of, Roofline};
use super::BLOCK_SPARSE_DEFAULT;
use crate::mask::{Mask, MaskRecipe};
use crate::problem::{Problem, Shape};
use crate::profile::{
    EnergyMethod, GpuInfo, Peaks, Phase, Point, PointStatus, Profile, ProfileKind, Stat, SCHEMA_VERSION,
};
use crate::work::{self, Variant};

/// Datasheet figures for the H100 SXM5 80 GB.
pub const H100_BF16_TFLOPS: f64 = 989.0;
pub const H100_HBM_GBPS: f64 = 3350.0;
pub const H100_BOARD_WATTS: f64 = 700.0;
pub const H100_MEMORY_BYTES: u64 = 80_000_000_000;
/// Not a datasheet figure: an assumed draw of a GPU that holds a model shard and waits (pipeline
/// stages at batch 1). Measured profiles replace it with their idle baseline.
pub const H100_WAIT_WATTS_ASSUMED: f64 = 100.0;

/// Date stamped into the bundled profile (fixed so the file is reproducible byte for byte).
pub const BUNDLED_DATE: &str = "2026-11-23";

pub const SOURCES: [&str; 3] = [
    "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100): H100 SXM BF16 Tensor Core \
     1,979 TFLOPS with sparsity, i.e. 989 TFLOPS dense; GPU memory 80 GB; memory bandwidth 3.35 TB/s; max \
     thermal design power up to 700 W",
    "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): HBM3, 80 GB, SXM5 form factor",
    "idle_watts = 100 W is an assumption (not in the datasheet) for GPUs that hold a shard and wait; \
     measured profiles record their own idle baseline",
];

/// Context sizes of the bundled points: powers of two 1K..1M, like `attnjoule sweep`'s default.
pub fn contexts() -> Vec<usize> {
    (10..=20).map(|k| 1usize << k).collect()
}

/// The kernel shape of the bundled points (the sweep's model-like default): 8 query heads sharing
/// 1 KV head, head_dim 128, batch 1.
pub const HEADS: usize = 8;
pub const KV_HEADS: usize = 1;
pub const HEAD_DIM: usize = 128;

pub fn h100_roofline() -> Roofline {
    Roofline { flops: H100_BF16_TFLOPS * 1e12, bytes: H100_HBM_GBPS * 1e9 }
}

/// One roofline point of `p`, whose mask `recipe` built; infeasible (like the sweep records it)
/// when the dense score matrix and operands exceed the GPU's memory.
pub fn roofline_point(variant: Variant, phase: Phase, p: &Problem, recipe: &MaskRecipe) -> Point {
    let roof = h100_roofline();
    let w = work_of(variant, p);
    let mut pt = Point {
        variant: variant.name().into(),
        implementation: "roofline".into(),
        phase,
        mask: recipe.clone(),
        shape: p.shape,
        status: PointStatus::Ok,
        flops: w.flops,
        min_bytes: w.min_bytes,
        seconds: None,
        joules: None,
        joules_above_idle: None,
        watts: None,
        energy_method: EnergyMethod::Model,
        throttled: false,
        calls: None,
        counters: None,
        ncu: Default::default(),
        detail: None,
        note: Some("analytical: max(FLOPs / 989 TFLOP/s, bytes / 3.35 TB/s), energy at 700 W".into()),
    };
    let need = if variant == Variant::Dense { work::dense_footprint_bytes(p) } else { 0.0 };
    if need > H100_MEMORY_BYTES as f64 {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        pt.status = PointStatus::Infeasible { need_gib: gib(need), have_gib: gib(H100_MEMORY_BYTES as f64) };
        return pt;
    }
    let t = roof.work_time(&w);
    pt.seconds = Some(Stat::exact(t));
    pt.joules = Some(Stat::exact(t * H100_BOARD_WATTS));
    pt.joules_above_idle = Some(Stat::exact(t * (H100_BOARD_WATTS - H100_WAIT_WATTS_ASSUMED)));
    pt.watts = Some(H100_BOARD_WATTS);
    pt
}

/// The bundled analytical profile.
pub fn h100_sxm() -> Profile {
    let mut points = Vec::new();
    let causal = MaskRecipe::Causal;
    for n in contexts() {
        let decode = Shape::decode(1, 1, n, HEADS, KV_HEADS, HEAD_DIM);
        let prefill = Shape::prefill(1, n, HEADS, KV_HEADS, HEAD_DIM);
        for recipe in [MaskRecipe::Causal, MaskRecipe::Window { keys: 4096 }, BLOCK_SPARSE_DEFAULT] {
            // Fixed recipes at 1K..1M keys: small block grids, always buildable.
            let mask = recipe.mask(1, n).expect("the bundled recipes build at every bundled context");
            points.push(roofline_point(Variant::Decode, Phase::Decode, &Problem::new(decode, mask), &recipe));
        }
        let (pre, dec) = (Problem::new(prefill, Mask::Causal), Problem::new(decode, Mask::Causal));
        points.push(roofline_point(Variant::Flash, Phase::Prefill, &pre, &causal));
        points.push(roofline_point(Variant::Dense, Phase::Prefill, &pre, &causal));
        points.push(roofline_point(Variant::Dense, Phase::Decode, &dec, &causal));
    }
    Profile {
        schema_version: SCHEMA_VERSION,
        kind: ProfileKind::Analytical,
        gpu: GpuInfo {
            name: "NVIDIA H100 SXM5 80GB (datasheet figures)".into(),
            memory_bytes: Some(H100_MEMORY_BYTES),
            power_limit_w: Some(H100_BOARD_WATTS),
            ..Default::default()
        },
        created: BUNDLED_DATE.into(),
        tool: Some("attnjoule estimate --write-analytical (roofline generator, src/estimate/analytical.rs)".into()),
        peaks: Some(Peaks {
            bf16_tflops: H100_BF16_TFLOPS,
            hbm_gbps: H100_HBM_GBPS,
            board_watts: H100_BOARD_WATTS,
            idle_watts: Some(H100_WAIT_WATTS_ASSUMED),
            sources: SOURCES.iter().map(|s| s.to_string()).collect(),
        }),
        idle_watts: None,
        points,
        gemm: vec![],
        notes: vec![
            "ANALYTICAL, NOT MEASURED: every point is a roofline bound computed from datasheet peaks".into(),
            "time = max(useful FLOPs / peak, minimum DRAM bytes / bandwidth); no launch overhead".into(),
            "energy = time x 700 W board power (pessimistic: memory-bound kernels draw less)".into(),
            "dense prefill points whose score matrix exceeds 80 GB are recorded infeasible".into(),
            "block-sparse points: bigbird:64:2:2:3:0 decode rows (64-token blocks: the first 2, the query's and the 2 \
             before it, 3 seeded random ones)"
                .into(),
            "non-attention layers: no GEMM calibration; the estimator uses the peaks' roofline".into(),
        ],
    }
}

/// The bundled file's text, compiled in so the estimator runs from any directory.
pub const BUNDLED_JSON: &str = include_str!("../../profiles/h100-sxm-analytical.json");

/// The bundled analytical profile, parsed.
pub fn bundled() -> crate::Result<Profile> {
    Profile::from_json(BUNDLED_JSON)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_file_is_what_the_generator_produces() {
        let file = bundled().unwrap();
        let gen = h100_sxm();
        assert_eq!(file.kind, ProfileKind::Analytical);
        assert_eq!(file, gen, "regenerate: attnjoule estimate --write-analytical profiles/h100-sxm-analytical.json");
        assert_eq!(BUNDLED_JSON.trim_end(), gen.to_json().trim_end());
    }

    #[test]
    fn points_are_rooflines() {
        let roof = h100_roofline();
        for p in h100_sxm().points.iter().filter(|p| matches!(p.status, PointStatus::Ok)) {
            let t = (p.flops / roof.flops).max(p.min_bytes / roof.bytes);
            assert_eq!(p.seconds.unwrap().median, t);
            assert_eq!(p.joules.unwrap().median, t * 700.0);
        }
    }
}
