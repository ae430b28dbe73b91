//! `attnjoule estimate --gpu`: the bundled analytical profiles by name, the H200's deployment
//! sized from its 141 GB, and `--gpu` with `--profile` refused in one line.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");

fn json(args: &[&str]) -> serde_json::Value {
    let out = Command::new(BIN).args(["estimate", "--json", "--no-plot"]).args(args).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn gpu_picks_the_bundled_profile_and_sizes_from_its_memory() {
    let (h100, h200) = (json(&["--batch", "1"]), json(&["--gpu", "h200", "--batch", "1"]));
    assert_eq!(json(&["--gpu", "h100", "--batch", "1"]), h100, "h100 is the default");
    for (r, gpu, gb, bw) in [(&h100, "H100", 80e9, 3350.0), (&h200, "H200", 141e9, 4800.0)] {
        let r = &r[0];
        assert_eq!(r["profile"]["kind"], "analytical");
        assert!(r["profile"]["gpu"].as_str().unwrap().contains(gpu), "{}", r["profile"]);
        assert_eq!(r["hardware"]["gpu_memory_bytes"], gb);
        assert_eq!(r["hardware"]["hbm_gbps"], bw);
    }
    // The 1T model's 2 TB of bf16 weights (plus its KV cache and headroom) need fewer 141 GB GPUs.
    let gpus = |r: &serde_json::Value| r[0]["deployments"][0]["gpus"].as_u64().unwrap();
    assert!(gpus(&h200) < gpus(&h100), "{} vs {}", gpus(&h200), gpus(&h100));
    let usable = |r: &serde_json::Value| r[0]["rows"][0]["mem_gib_per_gpu"].as_f64().unwrap();
    assert!(usable(&h200) <= 141e9 * 0.9 / (1u64 << 30) as f64 && usable(&h200) > 80e9 / (1u64 << 30) as f64 * 0.9);
}

#[test]
fn gpu_with_a_profile_file_is_refused_in_one_line() {
    let dir = std::env::temp_dir().join(format!("attnjoule-estimate-gpu-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("h200.json");
    let w = Command::new(BIN).args(["estimate", "--gpu", "h200", "--write-analytical"]).arg(&p).output().unwrap();
    assert!(w.status.success());
    let written = attnjoule::profile::Profile::load(&p).unwrap();
    assert_eq!(written, attnjoule::estimate::analytical::h200_sxm());
    let out = Command::new(BIN).args(["estimate", "--gpu", "h200", "--no-plot", "--profile"]).arg(&p).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("--gpu") && err.contains("--profile"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
