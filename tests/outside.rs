//! Kernels from outside the crate, written as ordinary CUDA (tests/outside/*.cu), on the emulator
//! through the public API (`PtxModule`, `KernelRef`, `EmuDevice::run_kernel`) and through
//! `attnjoule run-ptx`, against host-computed results: shuffles, votes, reductions, atomics,
//! dynamic shared memory of two types, cp.async, a `.func` call, a `__constant__` table, module
//! variables, assert, cooperative groups, wmma, match, inline asm with local labels, warps that
//! spin-wait on other warps.
//!
//! Most modules are checked-in PTX from the pinned nvcc (`tests/outside/*.ptx`, next to their
//! `.cu`; `checked_in_ptx_is_up_to_date` recompiles them, `ATTNJOULE_BLESS=1` rewrites them);
//! `asm_labels.cu` is compiled at test time by `run-ptx` itself.

mod common;
use attnjoule::device::{FindingKind, LaunchConfig, LaunchReport};
use attnjoule::emu::EmuDevice;
use attnjoule::kernels::{compile_cu, KernelRef, PtxModule};
use common::*;
use half::{bf16, f16};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");
const CHECKED_IN: [&str; 6] = ["reduce", "dynsmem", "funcs", "wmma_gemm", "groups", "spin"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/outside")
}

/// A checked-in module (embedded, so that the test executable runs on a GPU machine alone).
fn module(name: &str) -> Arc<PtxModule> {
    let ptx = match name {
        "reduce" => include_str!("outside/reduce.ptx"),
        "dynsmem" => include_str!("outside/dynsmem.ptx"),
        "funcs" => include_str!("outside/funcs.ptx"),
        "wmma_gemm" => include_str!("outside/wmma_gemm.ptx"),
        "groups" => include_str!("outside/groups.ptx"),
        "spin" => include_str!("outside/spin.ptx"),
        _ => panic!("no checked-in module {name}"),
    };
    PtxModule::from_ptx(format!("tests/outside/{name}.ptx"), ptx)
}

fn kernel(m: &Arc<PtxModule>, entry: &str) -> KernelRef {
    m.kernel(entry).expect("entry")
}

fn run(dev: &EmuDevice, k: &KernelRef, grid: u32, block: u32, smem: u32, args: &[Vec<u8>]) -> LaunchReport {
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: smem };
    dev.run_kernel(k, cfg, &a).expect("launch")
}

fn clean(r: &LaunchReport) {
    assert_eq!(r.findings_total, 0, "{:?}", r.findings);
}

/// nvcc's PTX with the paths of its `.file` lines made relative (the crate's directory dropped,
/// the toolchain's include directory as `<cuda>/include`), and the hash nvcc puts in the names of
/// internal-linkage symbols (`_INTERNAL_<8 hex digits>_`, `_GLOBAL__N__<8 hex digits>_`, a
/// function of the source's absolute path; in symbol names and in the `.debug_str` bytes) zeroed,
/// so that it does not depend on where the crate and the toolchain are.
fn normalized(ptx: &str) -> String {
    let root = format!("{}/", env!("CARGO_MANIFEST_DIR"));
    let lines: Vec<String> = ptx
        .lines()
        .map(|l| {
            if !l.trim_start().starts_with(".file") {
                let mut b = l.as_bytes().to_vec();
                zero_path_hashes(&mut b);
                return String::from_utf8(b).expect("ASCII hex digits replaced by ASCII");
            }
            let l = l.replace(&root, "");
            match (l.find('"'), l.find("/include/")) {
                (Some(q), Some(i)) if i > q => format!("{}<cuda>{}", &l[..=q], &l[i..]),
                _ => l,
            }
        })
        .collect();
    let mut out = Vec::with_capacity(lines.len());
    let mut i = 0;
    while i < lines.len() {
        if !lines[i].starts_with(".b8 ") {
            out.push(lines[i].clone());
            i += 1;
            continue;
        }
        // A run of `.b8` lines is one string: decode it, zero the hashes, write it back with the
        // same number of bytes per line.
        let end = (i..lines.len()).find(|&j| !lines[j].starts_with(".b8 ")).unwrap_or(lines.len());
        let rows: Vec<Vec<u8>> = lines[i..end]
            .iter()
            .map(|l| l[4..].split(',').map(|b| b.trim().parse::<u8>().expect(".b8 byte")).collect())
            .collect();
        let mut bytes: Vec<u8> = rows.concat();
        zero_path_hashes(&mut bytes);
        let mut at = 0;
        for r in &rows {
            let row: Vec<String> = bytes[at..at + r.len()].iter().map(u8::to_string).collect();
            out.push(format!(".b8 {}", row.join(",")));
            at += r.len();
        }
        i = end;
    }
    out.join("\n") + "\n"
}

/// Zeroes the 8 hex digits nvcc derives from the source's path after each tag (one consistent
/// renaming: the symbols stay distinct from each other within a module).
fn zero_path_hashes(bytes: &mut [u8]) {
    for tag in [&b"_INTERNAL_"[..], b"_GLOBAL__N__"] {
        let mut k = 0;
        while k + tag.len() + 9 <= bytes.len() {
            let h = k + tag.len();
            if &bytes[k..h] == tag && bytes[h..h + 8].iter().all(u8::is_ascii_hexdigit) && bytes[h + 8] == b'_' {
                bytes[h..h + 8].fill(b'0');
            }
            k += 1;
        }
    }
}

/// The checked-in PTX is what the pinned nvcc makes of its .cu now (paths relative to the crate,
/// as the test compiles them).
#[test]
fn checked_in_ptx_is_up_to_date() {
    let bless = std::env::var_os("ATTNJOULE_BLESS").is_some();
    let handles: Vec<_> = CHECKED_IN
        .iter()
        .map(|&n| {
            std::thread::spawn(move || {
                let cu = PathBuf::from(format!("tests/outside/{n}.cu"));
                (n, compile_cu(&cu, &[]).map(|m| normalized(m.ptx())))
            })
        })
        .collect();
    for h in handles {
        let (n, fresh) = h.join().expect("compile thread");
        let fresh = fresh.unwrap_or_else(|e| panic!("{n}.cu: {e}"));
        let path = dir().join(format!("{n}.ptx"));
        if bless {
            std::fs::write(&path, &fresh).expect("write");
        }
        let old = std::fs::read_to_string(&path).unwrap_or_default();
        if let Some((i, (a, b))) = old.lines().zip(fresh.lines()).enumerate().find(|(_, (a, b))| a != b) {
            panic!(
                "tests/outside/{n}.ptx is stale at line {}: {a:?} vs fresh {b:?}; rerun with ATTNJOULE_BLESS=1",
                i + 1
            );
        }
        assert!(old == fresh, "tests/outside/{n}.ptx is stale (length): rerun with ATTNJOULE_BLESS=1");
    }
}

/// Shuffle reductions, ballot/any votes, atomics on global memory, a grid-stride loop.
#[test]
fn block_reduce_with_shuffles_votes_and_atomics() {
    let dev = EmuDevice::new();
    let k = kernel(&module("reduce"), "block_reduce");
    let mut rng = Rng(seed());
    let n = 3000usize;
    // Multiples of 1/64 in [-4, 4): every partial sum is exact in f32, whatever the order.
    let x: Vec<f32> = (0..n).map(|_| rng.range(-256, 256) as f32 / 64.0).collect();
    let keys: Vec<i32> = (0..n).map(|_| rng.range(-1 << 30, 1 << 30) as i32).collect();
    let (xb, kb) = (buf(&dev, &x), buf(&dev, &keys));
    let (sum, imin, counts) = (buf(&dev, &[0f32]), buf(&dev, &[i32::MAX]), buf(&dev, &[0u32; 3]));
    let (grid, block) = (5u32, 192u32);
    let r = run(&dev, &k, grid, block, 0, &[ptr(&xb), ptr(&kb), int(n as i32), ptr(&sum), ptr(&imin), ptr(&counts)]);
    clean(&r);
    assert_eq!(get::<f32>(&dev, &sum, 1)[0] as f64, x.iter().map(|&v| v as f64).sum::<f64>());
    assert_eq!(get::<i32>(&dev, &imin, 1)[0], *keys.iter().min().unwrap());
    // Per thread (grid-stride): positive count, any negative; per warp: any negative.
    let threads = (grid * block) as usize;
    let mut c = [0u32; 3];
    for w in 0..threads / 32 {
        let mut warp_neg = false;
        for t in w * 32..w * 32 + 32 {
            let mine: Vec<f32> = (t..n).step_by(threads).map(|i| x[i]).collect();
            let pos = mine.iter().filter(|&&v| v > 0.0).count() as u32;
            c[0] += pos;
            c[2] += (pos > 0) as u32;
            warp_neg |= mine.iter().any(|&v| v < 0.0);
        }
        c[1] += warp_neg as u32;
    }
    assert_eq!(get::<u32>(&dev, &counts, 3), c);
    let cnt = r.counters.expect("counters");
    assert!(cnt.inst_sync > 0 && cnt.barriers > 0);
}

/// Two kernels of one file with dynamic shared arrays of two element types; one fills its
/// array with cp.async.
#[test]
fn dynamic_shared_memory_of_two_types_and_cp_async() {
    let dev = EmuDevice::new();
    let m = module("dynsmem");
    let mut rng = Rng(seed());
    let (grid, block) = (3u32, 96u32);
    let n = (grid * block) as usize;
    let x: Vec<f32> = (0..n).map(|_| rng.range(-1000, 1000) as f32 / 8.0).collect();
    let (xb, yb) = (buf(&dev, &x), out(&dev, 4 * n));
    clean(&run(&dev, &kernel(&m, "rotate_f32"), grid, block, block * 4, &[ptr(&xb), ptr(&yb)]));
    let y: Vec<f32> = get(&dev, &yb, n);
    for (i, &v) in y.iter().enumerate() {
        let (b, t) = (i / block as usize, i % block as usize);
        assert_eq!(v, x[i] + x[b * block as usize + (t + 1) % block as usize], "element {i}");
    }
    let d: Vec<f64> = (0..2 * n).map(|_| rng.range(-1 << 20, 1 << 20) as f64 / 3.0).collect();
    let (db, ob) = (buf(&dev, &d), out(&dev, 8 * n));
    let k = kernel(&m, "pair_products_f64");
    let r = run(&dev, &k, grid, block, block * 16, &[ptr(&db), ptr(&ob)]);
    clean(&r);
    let o: Vec<f64> = get(&dev, &ob, n);
    for (i, &v) in o.iter().enumerate() {
        let (b, t) = (i / block as usize, i % block as usize);
        let tile = &d[2 * b * block as usize..];
        assert_eq!(v, tile[2 * t] * tile[2 * t + 1], "element {i}");
    }
    // cp.async traffic counts as global loads: the whole input, once.
    assert_eq!(r.counters.expect("counters").global_load_bytes, 16 * n as u64);
    // Half the dynamic shared memory it needs: the cp.async writes run past the block's shared
    // memory, reported with the CUDA line they come from.
    let r = run(&dev, &k, grid, block, block * 8, &[ptr(&db), ptr(&ob)]);
    let f = r.findings.first().expect("out of bounds");
    assert_eq!(f.kind, FindingKind::SharedOutOfBounds, "{f:?}");
}

/// A __noinline__ device function (a .func call), a __constant__ table, module variables with
/// initializers that persist across launches, and an assert that fails the launch.
#[test]
fn device_function_constant_table_module_variables_and_assert() {
    let dev = EmuDevice::new();
    let m = module("funcs");
    assert!(m.ptx().contains("call.uni"), "the helper must stay a call");
    let k = kernel(&m, "weighted");
    let mut rng = Rng(seed());
    let n = 200usize;
    let input: Vec<i32> = (0..8 * n).map(|_| rng.range(-50_000, 50_000) as i32).collect();
    let w = [3, -1, 4, 1, -5, 9, 2, -6];
    let ib = buf(&dev, &input);
    for launch in 1..=2u32 {
        let ob = out(&dev, 4 * n);
        clean(&run(&dev, &k, 2, 128, 0, &[ptr(&ib), ptr(&ob), int(n as i32), int(n as i32)]));
        let got: Vec<i32> = get(&dev, &ob, n);
        for (i, &g) in got.iter().enumerate() {
            let want: i32 = (0..8).map(|j| input[8 * i + j] * w[(j + i) & 7]).sum::<i32>() + 1000;
            assert_eq!(g, want, "element {i}");
        }
        let lb = out(&dev, 4);
        clean(&run(&dev, &kernel(&m, "read_launches"), 1, 1, 0, &[ptr(&lb)]));
        assert_eq!(get::<u32>(&dev, &lb, 1), [launch]);
    }
    let ob = out(&dev, 4 * n);
    let a: Vec<Vec<u8>> = vec![ptr(&ib), ptr(&ob), int(n as i32), int(n as i32 - 1)];
    let a: Vec<&[u8]> = a.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    let e = dev.run_kernel(&k, cfg, &a).expect_err("the assert fails").to_string();
    assert!(e.contains("trap: assertion `n <= limit` failed at tests/outside/funcs.cu:"), "{e}");
    assert!(e.contains("thread [0, 0, 0]"), "{e}");
}

/// The emulator's documented wmma arithmetic (PTX ISA wmma.mma; docs/EMULATOR.md): per mma,
/// c + a0*b0 + a1*b1 + ... in k order in f64, rounded once to the accumulator type.
fn mma_f64(acc: f64, a: impl Iterator<Item = f64>, b: impl Iterator<Item = f64>) -> f64 {
    a.zip(b).fold(acc, |s, (x, y)| s + x * y)
}

/// WMMA through the C++ API: a tiled bf16 GEMM (several warps, a K loop) and an f16 32x8x16
/// product with a half accumulator scaled element-wise on the fragments.
#[test]
fn wmma_gemm_and_fragment_arithmetic() {
    let dev = EmuDevice::new();
    let m = module("wmma_gemm");
    let mut rng = Rng(seed());
    let (mm, nn, kk) = (48usize, 32usize, 64usize);
    let a: Vec<bf16> = (0..mm * kk).map(|_| bf16::from_f64(rng.range(-1000, 1000) as f64 / 300.0)).collect();
    let bt: Vec<bf16> = (0..nn * kk).map(|_| bf16::from_f64(rng.range(-1000, 1000) as f64 / 300.0)).collect();
    let (ab, bb, cb) = (buf(&dev, &a), buf(&dev, &bt), out(&dev, 4 * mm * nn));
    let warps = (mm / 16) * (nn / 16);
    let r = run(
        &dev,
        &kernel(&m, "gemm_bf16"),
        warps as u32 / 2,
        64,
        0,
        &[ptr(&ab), ptr(&bb), ptr(&cb), int(mm as i32), int(nn as i32), int(kk as i32)],
    );
    clean(&r);
    assert_eq!(r.counters.expect("counters").mma_instructions, (warps * kk / 16) as u64);
    let c: Vec<f32> = get(&dev, &cb, mm * nn);
    let mut worst = 0f64;
    for i in 0..mm {
        for j in 0..nn {
            let mut acc = 0f32;
            for k0 in (0..kk).step_by(16) {
                let ar = (k0..k0 + 16).map(|k| a[i * kk + k].to_f64());
                let bc = (k0..k0 + 16).map(|k| bt[j * kk + k].to_f64());
                acc = mma_f64(acc as f64, ar, bc) as f32;
            }
            assert_eq!(c[i * nn + j], acc, "C[{i}][{j}]");
            let exact: f64 = (0..kk).map(|k| a[i * kk + k].to_f64() * bt[j * kk + k].to_f64()).sum();
            worst = worst.max((c[i * nn + j] as f64 - exact).abs() / exact.abs().max(1.0));
        }
    }
    println!("gemm_bf16: worst error against the exact product {worst:.2e}");
    // f16: A 32x16 col-major, B 16x8 row-major, C 32x8 col-major.
    let a: Vec<f16> = (0..32 * 16).map(|_| f16::from_f64(rng.range(-64, 64) as f64 / 16.0)).collect();
    let b: Vec<f16> = (0..16 * 8).map(|_| f16::from_f64(rng.range(-64, 64) as f64 / 16.0)).collect();
    let c0: Vec<f16> = (0..32 * 8).map(|_| f16::from_f64(rng.range(-512, 512) as f64 / 8.0)).collect();
    let alpha = 0.375f32;
    let (ab, bb, cb) = (buf(&dev, &a), buf(&dev, &b), buf(&dev, &c0));
    clean(&run(&dev, &kernel(&m, "axpy_f16"), 1, 32, 0, &[ptr(&ab), ptr(&bb), ptr(&cb), alpha.to_le_bytes().to_vec()]));
    let c: Vec<f16> = get(&dev, &cb, 32 * 8);
    for i in 0..32 {
        for j in 0..8 {
            let prod = mma_f64(0.0, (0..16).map(|k| a[i + 32 * k].to_f64()), (0..16).map(|k| b[8 * k + j].to_f64()));
            let acc = f16::from_f64(prod).to_f64();
            // c + alpha * acc in f32, as nvcc contracts it (one fma: exact in f64, rounded once).
            let sum = (c0[i + 32 * j].to_f64() + alpha as f64 * acc) as f32;
            let want = f16::from_f32(sum);
            assert_eq!(c[i + 32 * j], want, "C[{i}][{j}]");
        }
    }
}

/// Cooperative groups: this_thread_block().sync(), reduce over tiled_partition<32> and <16>
/// (16-lane tiles: two member masks in one warp instruction), and tiled_partition<64>, whose
/// bookkeeping lives in the runtime's reserved shared memory.
#[test]
fn cooperative_groups_tiles() {
    let dev = EmuDevice::new();
    let k = kernel(&module("groups"), "tiles");
    let mut rng = Rng(seed());
    let (grid, block) = (2usize, 256usize);
    let x: Vec<i32> = (0..grid * block).map(|_| rng.range(-100_000, 100_000) as i32).collect();
    let (xb, ob, lb, mb) =
        (buf(&dev, &x), out(&dev, 4 * grid * 8), out(&dev, 4 * grid * 16), out(&dev, 8 * grid * block));
    clean(&run(&dev, &k, grid as u32, block as u32, 0, &[ptr(&xb), ptr(&ob), ptr(&lb), ptr(&mb)]));
    let (sums, lows, meta): (Vec<i32>, Vec<i32>, Vec<i32>) =
        (get(&dev, &ob, grid * 8), get(&dev, &lb, grid * 16), get(&dev, &mb, 2 * grid * block));
    for b in 0..grid {
        let v = |t: usize| x[b * block + (t + 1) % block];
        for w in 0..8 {
            assert_eq!(sums[b * 8 + w], (w * 32..w * 32 + 32).map(v).sum::<i32>(), "block {b} tile {w}");
        }
        for h in 0..16 {
            assert_eq!(lows[b * 16 + h], (h * 16..h * 16 + 16).map(v).min().unwrap(), "block {b} half {h}");
        }
        for t in 0..block {
            let at = 2 * (b * block + t);
            assert_eq!((meta[at], meta[at + 1]), ((t / 64) as i32, (t % 64) as i32), "block {b} thread {t}");
        }
    }
}

/// Warps waiting on other warps without a CTA barrier complete: the sync() of 64-thread
/// cooperative-groups tiles (the tile's two warps spin on a word of reserved shared memory),
/// reused three times, and warp 0 spinning on a volatile global flag that warp 1 raises after
/// writing its data. The racecheck orders shared accesses by CTA barriers only, so it reports
/// the tile exchange's accesses (ordered by the tile's spin barrier) as races: those, and only
/// those, are expected until a happens-before checker understands spin barriers.
#[test]
fn spin_waits_across_warps() {
    let dev = EmuDevice::new();
    let m = module("spin");
    let mut rng = Rng(seed());
    let (grid, block) = (3usize, 256usize);
    let x: Vec<i32> = (0..grid * block).map(|_| rng.range(-100_000, 100_000) as i32).collect();
    let (xb, ob) = (buf(&dev, &x), out(&dev, 4 * grid * block));
    let r = run(&dev, &kernel(&m, "tile64_exchange"), grid as u32, block as u32, 0, &[ptr(&xb), ptr(&ob)]);
    assert!(r.findings.iter().all(|f| f.kind == FindingKind::SharedRace), "{:?}", r.findings);
    let got: Vec<i32> = get(&dev, &ob, grid * block);
    for (t, &g) in got.iter().enumerate() {
        let base = t - t % 64;
        let partner = |u: usize| base + (u - base + 32) % 64;
        let s2 = |u: usize| 2 * x[partner(u)] + 1;
        assert_eq!(g, s2(base + (t - base + 17) % 64), "thread {t}");
    }
    let blocks = 4usize;
    let x: Vec<i32> = (0..32 * blocks).map(|_| rng.range(-100_000, 100_000) as i32).collect();
    let (xb, db, fb, ob) =
        (buf(&dev, &x), out(&dev, 4 * 32 * blocks), buf(&dev, &vec![0i32; blocks]), out(&dev, 4 * 32 * blocks));
    clean(&run(&dev, &kernel(&m, "handoff"), blocks as u32, 64, 0, &[ptr(&xb), ptr(&db), ptr(&fb), ptr(&ob)]));
    let got: Vec<i32> = get(&dev, &ob, 32 * blocks);
    assert_eq!(got, x.iter().map(|v| 3 * v - 7 + 1).collect::<Vec<_>>());
    assert_eq!(get::<i32>(&dev, &fb, blocks), vec![1; blocks]);
}

/// `.npy` data of a dump as `T` (the header is checked by `attnjoule`'s own unit tests).
fn npy<T: attnjoule::device::Pod>(path: &Path) -> Vec<T> {
    let raw = std::fs::read(path).expect("dump");
    assert!(raw.starts_with(b"\x93NUMPY\x01\x00"), "{}", path.display());
    let hlen = u16::from_le_bytes([raw[8], raw[9]]) as usize;
    let data = &raw[10 + hlen..];
    let mut v = vec![T::zeroed(); data.len() / std::mem::size_of::<T>()];
    bytemuck::cast_slice_mut::<T, u8>(&mut v).copy_from_slice(data);
    v
}

fn raw_file(dir: &Path, name: &str, v: &[u32]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytemuck::cast_slice::<u32, u8>(v)).expect("write");
    format!("file={}", p.display())
}

/// A scratch directory under target/ for one test.
fn scratch(name: &str) -> PathBuf {
    let d = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

/// `run-ptx` on a .cu compiled at test time: inline asm whose local label is duplicated by
/// inlining (each copy branches inside its own block), match.any and __ffs, inputs from files,
/// outputs dumped as .npy.
#[test]
fn run_ptx_compiles_cuda_and_dumps_buffers() {
    let d = scratch("run_ptx_cu");
    let mut rng = Rng(seed());
    let a: Vec<u32> = (0..32).map(|_| rng.range(1, 200) as u32).collect();
    let b: Vec<u32> = (0..32).map(|_| rng.range(1, 200) as u32).collect();
    let (fa, fb) = (raw_file(&d, "a.bin", &a), raw_file(&d, "b.bin", &b));
    let cu = dir().join("asm_labels.cu");
    let o = Command::new(BIN)
        .args(["run-ptx"])
        .arg(&cu)
        .args(["--entry", "two_loops", "--grid", "1", "--block", "32"])
        .args(["--arg", &format!("buf:u32:32:{fa}"), "--arg", &format!("buf:u32:32:{fb}"), "--arg", "buf:u32:32"])
        .arg("--dump")
        .arg(&d)
        .output()
        .expect("run attnjoule");
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{text}{}", String::from_utf8_lossy(&o.stderr));
    assert!(text.contains("sanitizer findings: 0"), "{text}");
    let got: Vec<u32> = npy(&d.join("arg2.npy"));
    for t in 0..32 {
        assert_eq!(got[t], a[t].div_ceil(3) * 1000 + b[t].div_ceil(5), "thread {t}");
    }
    // match.any: lanes grouped by key (few distinct keys), in two warps.
    let keys: Vec<u32> = (0..64).map(|_| rng.range(0, 5) as u32).collect();
    let fk = raw_file(&d, "keys.bin", &keys);
    let o = Command::new(BIN)
        .args(["run-ptx"])
        .arg(&cu)
        .args(["--entry", "groups_by_key", "--grid", "1", "--block", "64", "--json"])
        .args([
            "--arg",
            &format!("buf:i32:64:{fk}"),
            "--arg",
            "buf:u32:64",
            "--arg",
            "buf:u32:64",
            "--arg",
            "buf:i32:64",
        ])
        .arg("--dump")
        .arg(&d)
        .output()
        .expect("run attnjoule");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(j["findings_total"], 0);
    assert!(j["launches"][0]["report"]["counters"]["inst_sync"].as_u64().unwrap() > 0, "{j}");
    let (same, rank, first): (Vec<u32>, Vec<u32>, Vec<i32>) =
        (npy(&d.join("arg1.npy")), npy(&d.join("arg2.npy")), npy(&d.join("arg3.npy")));
    for t in 0..64 {
        let w = t / 32 * 32;
        let m: u32 = (0..32).filter(|&l| keys[w + l] == keys[t]).map(|l| 1u32 << l).sum();
        let lane = t % 32;
        assert_eq!(same[t], m, "thread {t}");
        assert_eq!(rank[t], (m & ((1u32 << lane) - 1)).count_ones(), "thread {t}");
        assert_eq!(first[t], m.trailing_zeros() as i32, "thread {t}");
    }
}

fn run_ptx(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(BIN).arg("run-ptx").args(args).output().expect("run attnjoule");
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into(),
        String::from_utf8_lossy(&o.stderr).into(),
    )
}

/// Arguments are checked against the entry's .param list with one-line errors; a trap exits 1,
/// sanitizer findings exit 2, a clean run 0.
#[test]
fn run_ptx_checks_arguments_and_signals_failures() {
    let funcs = dir().join("funcs.ptx");
    let f = funcs.to_str().expect("path");
    let ok = ["--arg", "buf:i32:64:random", "--arg", "buf:i32:8"];
    let (code, _, err) =
        run_ptx(&[f, "--entry", "weighted", "--grid", "1", "--block", "8", ok[0], ok[1], ok[2], ok[3]]);
    assert_eq!(code, 1);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("weighted takes 4 parameters (.u64 weighted_param_0, .u64 weighted_param_1, .u32"), "{err}");
    let (code, _, err) = run_ptx(&[
        f, "--entry", "weighted", "--grid", "1", "--block", "8", ok[0], ok[1], ok[2], ok[3], "--arg", "i64:8", "--arg",
        "i32:8",
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--arg 2: parameter 2 `weighted_param_2` is .u32 (4 bytes); a scalar i64 is 8 bytes"),
        "{err}"
    );
    let (code, _, err) = run_ptx(&[f, "--entry", "nope", "--grid", "1", "--block", "8"]);
    assert_eq!(code, 1);
    assert!(err.contains("the module's entries: weighted, read_launches"), "{err}");
    let (code, out, err) = run_ptx(&[
        f, "--entry", "weighted", "--grid", "1", "--block", "8", ok[0], ok[1], ok[2], ok[3], "--arg", "i32:8", "--arg",
        "i32:8",
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("sanitizer findings: 0") && out.contains("instructions: arith"), "{out}");
    // assert(n <= limit) fails: a trap.
    let (code, _, err) = run_ptx(&[
        f, "--entry", "weighted", "--grid", "1", "--block", "8", ok[0], ok[1], ok[2], ok[3], "--arg", "i32:8", "--arg",
        "i32:7",
    ]);
    assert_eq!(code, 1);
    assert!(err.contains("trap: assertion `n <= limit` failed"), "{err}");
    // Out-of-bounds writes (an output of 4 elements for 8 threads) and a read of a buffer never
    // written: findings, exit status 2, the PTX line given.
    let (code, out, _) = run_ptx(&[
        f,
        "--entry",
        "weighted",
        "--grid",
        "1",
        "--block",
        "8",
        "--arg",
        "buf:i32:64",
        "--arg",
        "buf:i32:4",
        "--arg",
        "i32:8",
        "--arg",
        "i32:8",
    ]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("finding UninitGlobal") && out.contains("finding GlobalOutOfBounds"), "{out}");
}

/// The same outside kernels on a GPU (their PTX JIT-compiled by the driver: modules loaded at
/// run time have no cubin) and on the emulator: a shared-memory rotation and a `.func` call over
/// a `__constant__` table and the spin-wait kernels bit for bit; the bf16 WMMA GEMM within 1e-5 (rel L2) of the exact
/// product on both (tensor cores accumulate in their own order), error printed.
#[test]
#[ignore = "needs a CUDA GPU"]
fn outside_kernels_on_the_gpu_match_the_emulator() {
    use attnjoule::device::{DevBuf, Device};
    let gpu = cuda_device();
    let emu = EmuDevice::new();
    let mut rng = Rng(seed());
    let x: Vec<f32> = (0..256).map(|_| rng.range(-1000, 1000) as f32 / 8.0).collect();
    let input: Vec<i32> = (0..8 * 256).map(|_| rng.range(-50_000, 50_000) as i32).collect();
    let (mm, nn, kk) = (32usize, 32usize, 64usize);
    let a: Vec<bf16> = (0..mm * kk).map(|_| bf16::from_f64(rng.range(-1000, 1000) as f64 / 300.0)).collect();
    let bt: Vec<bf16> = (0..nn * kk).map(|_| bf16::from_f64(rng.range(-1000, 1000) as f64 / 300.0)).collect();
    let exact: Vec<f64> = (0..mm * nn)
        .map(|ij| (0..kk).map(|k| a[ij / nn * kk + k].to_f64() * bt[ij % nn * kk + k].to_f64()).sum())
        .collect();
    let launch = |dev: &dyn Device, k: &KernelRef, grid: u32, block: u32, smem: u32, args: &[Vec<u8>]| {
        let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
        let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: smem };
        // SAFETY: every pointer argument is a live buffer of this device sized for this grid
        // (the emulator's memcheck runs the same launches).
        unsafe { dev.launch(k, cfg, &a) }.expect("launch");
        dev.synchronize().expect("sync");
    };
    let spin_x: Vec<i32> = (0..2 * 256).map(|_| rng.range(-100_000, 100_000) as i32).collect();
    let spin = |dev: &dyn Device| -> (Vec<i32>, Vec<i32>) {
        let m = module("spin");
        let (xb, ob) = (DevBuf::from_slice(dev, &spin_x).unwrap(), DevBuf::new(dev, 4 * 512).unwrap());
        launch(dev, &kernel(&m, "tile64_exchange"), 2, 256, 0, &[ptr(&xb), ptr(&ob)]);
        let (db, fb, hb) = (
            DevBuf::new(dev, 4 * 256).unwrap(),
            DevBuf::from_slice(dev, &[0i32; 8]).unwrap(),
            DevBuf::new(dev, 4 * 256).unwrap(),
        );
        launch(dev, &kernel(&m, "handoff"), 8, 64, 0, &[ptr(&xb), ptr(&db), ptr(&fb), ptr(&hb)]);
        (ob.download_vec(512).unwrap(), hb.download_vec(256).unwrap())
    };
    assert_eq!(spin(&*gpu), spin(&emu), "spin-wait kernels");
    let outputs = |dev: &dyn Device| -> (Vec<f32>, Vec<i32>, Vec<f32>) {
        let (xb, yb) = (DevBuf::from_slice(dev, &x).unwrap(), DevBuf::new(dev, 4 * 256).unwrap());
        launch(dev, &kernel(&module("dynsmem"), "rotate_f32"), 4, 64, 256, &[ptr(&xb), ptr(&yb)]);
        let (ib, ob) = (DevBuf::from_slice(dev, &input).unwrap(), DevBuf::new(dev, 4 * 256).unwrap());
        launch(dev, &kernel(&module("funcs"), "weighted"), 2, 128, 0, &[ptr(&ib), ptr(&ob), int(256), int(256)]);
        let (ab, bb, cb) = (
            DevBuf::from_slice(dev, &a).unwrap(),
            DevBuf::from_slice(dev, &bt).unwrap(),
            DevBuf::new(dev, 4 * mm * nn).unwrap(),
        );
        let g = kernel(&module("wmma_gemm"), "gemm_bf16");
        launch(dev, &g, 2, 64, 0, &[ptr(&ab), ptr(&bb), ptr(&cb), int(mm as i32), int(nn as i32), int(kk as i32)]);
        (yb.download_vec(256).unwrap(), ob.download_vec(256).unwrap(), cb.download_vec(mm * nn).unwrap())
    };
    let (gy, go, gc) = outputs(&*gpu);
    let (ey, eo, ec) = outputs(&emu);
    assert_eq!(gy, ey);
    assert_eq!(go, eo);
    let rel = |c: &[f32]| {
        let num: f64 = c.iter().zip(&exact).map(|(&g, &e)| (g as f64 - e).powi(2)).sum();
        (num / exact.iter().map(|e| e * e).sum::<f64>()).sqrt()
    };
    let (rg, re) = (rel(&gc), rel(&ec));
    println!("gemm_bf16 rel L2 vs the exact product: GPU {rg:.2e}, emulator {re:.2e}");
    assert!(rg <= 1e-5 && re <= 1e-5, "GPU {rg:.2e}, emulator {re:.2e}");
}

/// A deadlock (one warp waits at a named barrier for threads that never come) is a finding with
/// the sanitizer on (exit status 2) and a failed launch without it (1); nvcc's error on a bad
/// .cu is the error of the run.
#[test]
fn run_ptx_deadlock_and_compile_errors() {
    let d = scratch("run_ptx_errors");
    let ptx = d.join("stuck.ptx");
    std::fs::write(
        &ptx,
        ".version 8.0\n.target sm_90a\n.address_size 64\n.visible .entry stuck()\n{\n\t.reg .b32 %r<2>;\n\t.reg .pred \
         %p<2>;\n\tmov.u32 %r1, %tid.x;\n\tsetp.ge.u32 %p1, %r1, 32;\n\t@%p1 bra $L_end;\n\tbar.sync 1, 64;\n$L_end:\n\tret;\n}\n",
    )
    .expect("write");
    let p = ptx.to_str().expect("path");
    let (code, out, _) = run_ptx(&[p, "--entry", "stuck", "--grid", "1", "--block", "64"]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("finding Deadlock") && out.contains("barrier 1: 32 of 64 threads arrived"), "{out}");
    let (code, _, err) = run_ptx(&[p, "--entry", "stuck", "--grid", "1", "--block", "64", "--no-sanitize"]);
    assert_eq!(code, 1);
    assert!(err.contains("deadlock"), "{err}");
    let cu = d.join("bad.cu");
    std::fs::write(&cu, "extern \"C\" __global__ void k(int* x) { x[0] = undeclared; }\n").expect("write");
    let (code, _, err) = run_ptx(&[cu.to_str().expect("path"), "--entry", "k", "--grid", "1", "--block", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("error: nvcc: command failed") && err.contains("undeclared"), "{err}");
}
