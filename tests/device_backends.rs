//! The same launches on the CPU emulator and (with a GPU) the CUDA device: raw argument bytes
//! (pointers, ints, floats, a by-value struct with mixed member sizes) and dynamic shared memory
//! above the 48 KB default, which the CUDA backend must opt in to. Kernels:
//! kernels/test/cuda_backend.cu.

use attnjoule::device::{DevBuf, Device, LaunchConfig};
use attnjoule::kernels::KernelRef;

/// smem_reverse over `blocks` rows of `n` floats; returns the output (poisoned before the launch).
fn smem_reverse(dev: &dyn Device, input: &[f32], n: usize, scale: f32, bias: f32) -> Vec<f32> {
    let blocks = input.len() / n;
    let i = DevBuf::from_slice(dev, input).unwrap();
    let o = DevBuf::new(dev, 4 * input.len()).unwrap();
    o.fill(0x7fc1_7fc1).unwrap();
    let k = KernelRef::new("cuda_backend", "smem_reverse").unwrap();
    let cfg = LaunchConfig { grid: [blocks as u32, 1, 1], block: [256, 1, 1], dynamic_shared_bytes: 4 * n as u32 };
    let (ia, oa, nn) = (i.addr().to_le_bytes(), o.addr().to_le_bytes(), (n as i32).to_le_bytes());
    let (s, b) = (scale.to_le_bytes(), bias.to_le_bytes());
    // SAFETY: (in, out, n, scale, bias) as smem_reverse declares them; each of the `blocks` blocks
    // reads and writes its row of n floats, inside `i` and `o` (blocks * n floats each), which
    // live until the download below has synchronized.
    let rep = unsafe { dev.launch(&k, cfg, &[&ia, &oa, &nn, &s, &b]) }.unwrap();
    assert!(rep.findings.is_empty(), "{:?}", rep.findings);
    dev.synchronize().unwrap();
    o.download_vec::<f32>(input.len()).unwrap()
}

/// The by-value struct: {u64 ptr, i32 a, i32 b, f64 c, u16 d[4]} = 32 bytes, 8-aligned.
fn by_value(dev: &dyn Device, a: i32, b: i32, c: f64, d: [u16; 4]) -> Vec<i32> {
    let dst = DevBuf::new(dev, 28).unwrap();
    let flag = DevBuf::new(dev, 4).unwrap();
    dst.fill(0xdead_beef).unwrap();
    flag.fill(0).unwrap();
    let mut m = Vec::new();
    m.extend(dst.addr().to_le_bytes());
    m.extend(a.to_le_bytes());
    m.extend(b.to_le_bytes());
    m.extend(c.to_le_bytes());
    d.iter().for_each(|x| m.extend(x.to_le_bytes()));
    assert_eq!(m.len(), 32);
    let k = KernelRef::new("cuda_backend", "by_value").unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    // SAFETY: the struct by value and the flag pointer, as by_value declares them; one warp
    // writes the 7 ints of `dst` and the int of `flag`, both alive until the downloads.
    unsafe { dev.launch(&k, cfg, &[&m, &flag.addr().to_le_bytes()]) }.unwrap();
    dev.synchronize().unwrap();
    let mut out = dst.download_vec::<i32>(7).unwrap();
    out.extend(flag.download_vec::<i32>(1).unwrap());
    out
}

fn inputs(seed: u64, len: usize) -> Vec<f32> {
    use rand::{Rng, SeedableRng};
    let mut r = rand::rngs::StdRng::seed_from_u64(seed);
    (0..len).map(|_| r.random_range(-4.0f32..4.0)).collect()
}

/// 15 000 floats = 60 000 bytes of dynamic shared memory per block (> 48 KB).
const N: usize = 15_000;

fn check_smem(dev: &dyn Device, seed: u64) -> Vec<f32> {
    let input = inputs(seed, 3 * N);
    let (scale, bias) = (1.5f32, -0.25f32);
    let out = smem_reverse(dev, &input, N, scale, bias);
    for blk in 0..3 {
        for i in 0..N {
            let want = input[blk * N + i].mul_add(scale, bias); // the PTX has fma.rn.f32
            assert_eq!(out[blk * N + N - 1 - i].to_bits(), want.to_bits(), "block {blk} element {i}");
        }
    }
    out
}

#[test]
fn emulator_runs_the_backend_kernels() {
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let dev = attnjoule::emu::EmuDevice::new();
    check_smem(&dev, seed);
    assert_eq!(by_value(&dev, -7, 123456, 2.5, [1, 2, 3, 65535]), vec![-7, 123456, 2500, 1, 2, 3, 65535, 1]);
}

#[test]
#[ignore = "needs a CUDA GPU"]
fn cuda_matches_the_emulator_bit_for_bit() {
    let seed = attnjoule::reference::fresh_seed();
    println!("seed {seed}");
    let gpu = attnjoule::device::cuda::CudaDevice::new(0).unwrap();
    let emu = attnjoule::emu::EmuDevice::new();
    let g = check_smem(&gpu, seed);
    let e = check_smem(&emu, seed);
    assert!(g.iter().zip(&e).all(|(a, b)| a.to_bits() == b.to_bits()));
    assert_eq!(by_value(&gpu, -7, 123456, 2.5, [1, 2, 3, 4]), by_value(&emu, -7, 123456, 2.5, [1, 2, 3, 4]));
    // Wrong argument sizes are refused before reaching the driver (when it can tell the sizes).
    let k = KernelRef::new("cuda_backend", "by_value").unwrap();
    let cfg = LaunchConfig { grid: [1, 1, 1], block: [32, 1, 1], dynamic_shared_bytes: 0 };
    // SAFETY: refused before the launch (the argument sizes do not match the kernel's).
    let e = unsafe { gpu.launch(&k, cfg, &[&[0u8; 16], &[0u8; 8]]) }.unwrap_err().to_string();
    assert!(e.contains("takes parameters"), "{e}");
}
