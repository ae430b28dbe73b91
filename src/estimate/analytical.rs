//! The bundled analytical profiles (H100 SXM, H200 SXM): every point is the roofline time of its
//! work counts at datasheet peaks, and its energy that time at the power model's watts
//! (`machine::PowerModel`: board power when compute-bound, an assumed lower figure when
//! memory-bound). Analytical, not measured: an optimistic bound on time (no launch overhead, peak
//! rates). `profiles/h100-sxm-analytical.json` and `profiles/h200-sxm-analytical.json` are exactly
//! what [`profile`] produces for [`H100_SXM`] and [`H200_SXM`] (a test checks it); regenerate them
//! with `attnjoule estimate [--gpu h200] --write-analytical profiles/<gpu>-sxm-analytical.json`.

use super::interp::{work_of, Roofline};
use super::machine::{Machine, MEMORY_BOUND_BASIS};
use super::BLOCK_SPARSE_DEFAULT;
use crate::error::{invalid, Result};
use crate::mask::{Mask, MaskRecipe};
use crate::paged::KvDtype;
use crate::problem::{Problem, Shape};
use crate::profile::{
    EnergyMethod, GpuInfo, Peaks, Phase, Point, PointStatus, Profile, ProfileKind, Stat, SCHEMA_VERSION,
};
use crate::work::{self, Variant};

/// One GPU's datasheet figures and where they come from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Datasheet {
    /// What `--gpu` calls it.
    pub key: &'static str,
    /// `gpu.name` of the profile.
    pub name: &'static str,
    pub bf16_tflops: f64,
    pub hbm_gbps: f64,
    pub board_watts: f64,
    pub memory_bytes: u64,
    /// Date stamped into the profile (fixed so the file is reproducible byte for byte).
    pub date: &'static str,
    pub tool: &'static str,
    pub sources: &'static [&'static str],
    /// The bundled file under `profiles/`.
    pub file: &'static str,
}

/// Datasheet figures for the H100 SXM5 80 GB.
pub const H100_BF16_TFLOPS: f64 = 989.0;
pub const H100_HBM_GBPS: f64 = 3350.0;
pub const H100_BOARD_WATTS: f64 = 700.0;
pub const H100_MEMORY_BYTES: u64 = 80_000_000_000;
/// Not a datasheet figure: an assumed draw of a GPU that holds a model shard and waits (pipeline
/// stages at batch 1). Measured profiles replace it with their idle baseline.
pub const H100_WAIT_WATTS_ASSUMED: f64 = 100.0;

/// Date stamped into the bundled H100 profile.
pub const BUNDLED_DATE: &str = "2026-11-30";

/// What the waiting power rests on, as the estimator prints it.
pub const WAIT_BASIS: &str = "a GPU that holds a shard and waits; not a datasheet figure";

const WAIT_SOURCE: &str = "idle_watts = 100 W is an assumption (not in the datasheet) for GPUs that hold a shard and \
                           wait; measured profiles record their own idle baseline";

pub const SOURCES: [&str; 3] = [
    "NVIDIA H100 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h100): H100 SXM BF16 Tensor Core \
     1,979 TFLOPS with sparsity, i.e. 989 TFLOPS dense; GPU memory 80 GB; memory bandwidth 3.35 TB/s; max \
     thermal design power up to 700 W",
    "NVIDIA H100 Tensor Core GPU Architecture whitepaper (2022): HBM3, 80 GB, SXM5 form factor",
    WAIT_SOURCE,
];

pub const H100_SXM: Datasheet = Datasheet {
    key: "h100",
    name: "NVIDIA H100 SXM5 80GB (datasheet figures)",
    bf16_tflops: H100_BF16_TFLOPS,
    hbm_gbps: H100_HBM_GBPS,
    board_watts: H100_BOARD_WATTS,
    memory_bytes: H100_MEMORY_BYTES,
    date: BUNDLED_DATE,
    tool: "attnjoule estimate --write-analytical (roofline generator, src/estimate/analytical.rs)",
    sources: &SOURCES,
    file: "h100-sxm-analytical.json",
};

/// The H200 SXM: the H100's Hopper die and compute rates with 141 GB of HBM3e at 4.8 TB/s.
pub const H200_SXM: Datasheet = Datasheet {
    key: "h200",
    name: "NVIDIA H200 SXM 141GB (datasheet figures)",
    bf16_tflops: 989.0,
    hbm_gbps: 4800.0,
    board_watts: 700.0,
    memory_bytes: 141_000_000_000,
    date: "2026-11-30",
    tool: "attnjoule estimate --gpu h200 --write-analytical (roofline generator, src/estimate/analytical.rs)",
    sources: &[
        "NVIDIA H200 Tensor Core GPU datasheet (nvidia.com/en-us/data-center/h200): H200 SXM BF16 Tensor Core \
         1,979 TFLOPS with sparsity, i.e. 989 TFLOPS dense; GPU memory 141 GB HBM3e; memory bandwidth 4.8 TB/s; \
         max thermal design power up to 700 W (configurable)",
        "the H200 is the H100's Hopper GPU (GH100, 132 SMs on the SXM part) with HBM3e: arithmetic rates equal the \
         H100 SXM's, memory capacity and bandwidth differ (same datasheet)",
        WAIT_SOURCE,
    ],
    file: "h200-sxm-analytical.json",
};

/// Every bundled analytical profile; the first is the estimator's default.
pub const DATASHEETS: [Datasheet; 2] = [H100_SXM, H200_SXM];

/// The datasheet `--gpu KEY` names (h100, h200).
pub fn datasheet(key: &str) -> Result<Datasheet> {
    match DATASHEETS.iter().find(|d| d.key.eq_ignore_ascii_case(key)) {
        Some(d) => Ok(*d),
        None => {
            let keys: Vec<&str> = DATASHEETS.iter().map(|d| d.key).collect();
            invalid(format!("unknown GPU {key:?}: bundled analytical profiles are {}", keys.join(", ")))
        }
    }
}

impl Datasheet {
    pub fn roofline(&self) -> Roofline {
        Roofline { flops: self.bf16_tflops * 1e12, bytes: self.hbm_gbps * 1e9 }
    }
}

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
    H100_SXM.roofline()
}

/// "3.35 TB/s", "989 TFLOP/s": figures as the notes print them.
fn tbps(sheet: &Datasheet) -> String {
    format!("{} TB/s", sheet.hbm_gbps / 1000.0)
}

/// One roofline point of `p`, whose mask `recipe` built, on `sheet`'s GPU; infeasible (like the
/// sweep records it) when the dense score matrix and operands exceed the GPU's memory.
pub fn roofline_point(sheet: &Datasheet, variant: Variant, phase: Phase, p: &Problem, recipe: &MaskRecipe) -> Point {
    let roof = sheet.roofline();
    let w = work_of(variant, p, KvDtype::Bf16);
    let mut pt = Point {
        variant: variant.name().into(),
        implementation: "roofline".into(),
        phase,
        mask: recipe.clone(),
        shape: p.shape,
        serving: Default::default(),
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
        note: Some(format!(
            "analytical: max(FLOPs / {} TFLOP/s, bytes / {}), energy at the power model's watts",
            sheet.bf16_tflops,
            tbps(sheet),
        )),
    };
    let need = if variant == Variant::Dense { work::dense_footprint_bytes(p) } else { 0.0 };
    if need > sheet.memory_bytes as f64 {
        let gib = |b: f64| b / (1u64 << 30) as f64;
        pt.status = PointStatus::Infeasible { need_gib: gib(need), have_gib: gib(sheet.memory_bytes as f64) };
        return pt;
    }
    let busy = Machine::of_sheet(sheet).run(w.flops, w.min_bytes, 1.0);
    debug_assert!((busy.seconds - roof.work_time(&w)).abs() <= 1e-12 * busy.seconds);
    pt.seconds = Some(Stat::exact(busy.seconds));
    pt.joules = Some(Stat::exact(busy.joules()));
    pt.joules_above_idle = Some(Stat::exact(busy.seconds * (busy.watts - H100_WAIT_WATTS_ASSUMED)));
    pt.watts = Some(busy.watts);
    pt
}

/// The analytical profile of `sheet`'s GPU.
pub fn profile(sheet: &Datasheet) -> Profile {
    let mut points = Vec::new();
    let causal = MaskRecipe::Causal;
    for n in contexts() {
        let decode = Shape::decode(1, 1, n, HEADS, KV_HEADS, HEAD_DIM);
        let prefill = Shape::prefill(1, n, HEADS, KV_HEADS, HEAD_DIM);
        for recipe in [MaskRecipe::Causal, MaskRecipe::Window { keys: 4096 }, BLOCK_SPARSE_DEFAULT] {
            // Fixed recipes at 1K..1M keys: small block grids, always buildable.
            let mask = recipe.mask(1, n).expect("the bundled recipes build at every bundled context");
            points.push(roofline_point(sheet, Variant::Decode, Phase::Decode, &Problem::new(decode, mask), &recipe));
        }
        let (pre, dec) = (Problem::new(prefill, Mask::Causal), Problem::new(decode, Mask::Causal));
        points.push(roofline_point(sheet, Variant::Flash, Phase::Prefill, &pre, &causal));
        points.push(roofline_point(sheet, Variant::Dense, Phase::Prefill, &pre, &causal));
        points.push(roofline_point(sheet, Variant::Dense, Phase::Decode, &dec, &causal));
    }
    let gb = sheet.memory_bytes as f64 / 1e9;
    Profile {
        schema_version: SCHEMA_VERSION,
        kind: ProfileKind::Analytical,
        gpu: GpuInfo {
            name: sheet.name.into(),
            memory_bytes: Some(sheet.memory_bytes),
            power_limit_w: Some(sheet.board_watts),
            ..Default::default()
        },
        created: sheet.date.into(),
        tool: Some(sheet.tool.into()),
        peaks: Some(Peaks {
            bf16_tflops: sheet.bf16_tflops,
            hbm_gbps: sheet.hbm_gbps,
            board_watts: sheet.board_watts,
            idle_watts: Some(H100_WAIT_WATTS_ASSUMED),
            sources: sheet.sources.iter().map(|s| s.to_string()).collect(),
        }),
        idle_watts: None,
        points: points.into(),
        gemm: vec![],
        notes: vec![
            "ANALYTICAL, NOT MEASURED: every point is a roofline bound computed from datasheet peaks".into(),
            "time = max(useful FLOPs / peak, minimum DRAM bytes / bandwidth); no launch overhead".into(),
            format!(
                "energy = time x power: {} W board power when compute-bound, {:.0} W when memory-bound ({}), \
                 interpolated by the time each resource is busy (src/estimate/machine.rs)",
                sheet.board_watts,
                Machine::of_sheet(sheet).power.memory_watts.value,
                MEMORY_BOUND_BASIS
            ),
            format!("dense prefill points whose score matrix exceeds {gb} GB are recorded infeasible"),
            "block-sparse points: bigbird:64:2:2:3:0 decode rows (64-token blocks: the first 2, the query's and the 2 \
             before it, 3 seeded random ones)"
                .into(),
            "non-attention layers: no GEMM calibration; the estimator uses the peaks' roofline".into(),
        ],
    }
}

/// The bundled analytical H100 SXM profile, generated.
pub fn h100_sxm() -> Profile {
    profile(&H100_SXM)
}

/// The bundled analytical H200 SXM profile, generated.
pub fn h200_sxm() -> Profile {
    profile(&H200_SXM)
}

/// The bundled files' text, compiled in so the estimator runs from any directory.
pub const BUNDLED_JSON: &str = include_str!("../../profiles/h100-sxm-analytical.json");
pub const H200_JSON: &str = include_str!("../../profiles/h200-sxm-analytical.json");

/// The bundled analytical H100 profile (the estimator's default), parsed.
pub fn bundled() -> Result<Profile> {
    Profile::from_json(BUNDLED_JSON)
}

/// The bundled analytical profile of `sheet`'s GPU, parsed.
pub fn bundled_for(sheet: &Datasheet) -> Result<Profile> {
    match sheet.key {
        "h200" => Profile::from_json(H200_JSON),
        _ => Profile::from_json(BUNDLED_JSON),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bundled_files_are_what_the_generator_produces() {
        for sheet in DATASHEETS {
            let file = bundled_for(&sheet).unwrap();
            let gen = profile(&sheet);
            let how = format!(
                "regenerate: attnjoule estimate --gpu {} --write-analytical profiles/{}",
                sheet.key, sheet.file
            );
            assert_eq!(file.kind, ProfileKind::Analytical);
            assert_eq!(file, gen, "{how}");
            let text = if sheet.key == "h200" { H200_JSON } else { BUNDLED_JSON };
            assert_eq!(text.trim_end(), gen.to_json().trim_end(), "{how}");
        }
        assert_eq!(bundled().unwrap(), h100_sxm());
    }

    #[test]
    fn points_are_rooflines() {
        for sheet in DATASHEETS {
            let roof = sheet.roofline();
            for p in profile(&sheet).points.iter().filter(|p| matches!(p.status, PointStatus::Ok)) {
                let t = (p.flops / roof.flops).max(p.min_bytes / roof.bytes);
                assert_eq!(p.seconds.unwrap().median, t);
                // Energy at the power model's watts: the memory-bound figure for decode rows,
                // the board power for long (compute-bound) prefills.
                let w = p.watts.unwrap();
                assert!((p.joules.unwrap().median - t * w).abs() <= 1e-12 * t * w);
                let (tc, tm) = (p.flops / roof.flops / t, p.min_bytes / roof.bytes / t);
                let mem = sheet.board_watts * crate::estimate::machine::MEMORY_BOUND_FRACTION;
                let idle = H100_WAIT_WATTS_ASSUMED;
                let want = idle + (sheet.board_watts - idle) * tc + (mem - idle) * tm * (1.0 - tc);
                assert!((w - want).abs() < 1e-9 * want, "{} {}: {w} W vs {want}", p.variant, p.context());
                if p.phase == Phase::Decode {
                    assert!(w < 1.03 * mem, "{} decode {}: {w} W, memory-bound", p.variant, p.context());
                }
                if p.variant == "flash" && p.context() >= 1 << 14 {
                    assert_eq!(w, sheet.board_watts, "flash {}: compute-bound", p.context());
                }
            }
        }
    }

    #[test]
    fn h200_differs_from_h100_only_in_memory() {
        let (a, b) = (h100_sxm(), h200_sxm());
        assert_eq!(b.gpu.memory_bytes, Some(141_000_000_000));
        assert_eq!((a.peaks.as_ref().unwrap().bf16_tflops, b.peaks.as_ref().unwrap().bf16_tflops), (989.0, 989.0));
        assert_eq!(b.peaks.as_ref().unwrap().hbm_gbps, 4800.0);
        // Memory-bound decode is faster by the bandwidth ratio; compute-bound prefill is not.
        let at = |p: &Profile, v: &str, ctx: usize| {
            p.points
                .iter()
                .find(|x| x.variant == v && x.mask == MaskRecipe::Causal && x.shape.seq_k == ctx)
                .and_then(|x| x.seconds)
                .unwrap()
                .median
        };
        let r = at(&a, "decode", 1 << 20) / at(&b, "decode", 1 << 20);
        assert!((r - 4800.0 / 3350.0).abs() < 1e-9, "{r}");
        assert_eq!(at(&a, "flash", 1 << 16), at(&b, "flash", 1 << 16));
        // 141 GB holds the 64K dense prefill that 80 GB does not.
        let dense64 = |p: &Profile| {
            p.points
                .iter()
                .find(|x| x.variant == "dense" && x.phase == Phase::Prefill && x.shape.seq_k == 1 << 16)
                .map(|x| matches!(x.status, PointStatus::Ok))
                .unwrap()
        };
        assert!(!dense64(&a) && dense64(&b));
        assert!(datasheet("H200").is_ok() && datasheet("a100").is_err());
    }
}
