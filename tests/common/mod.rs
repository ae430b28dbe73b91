//! Helpers shared by the emulator and kernel tests.
#![allow(dead_code)]

use attnjoule::device::{DevBuf, Device, LaunchConfig, LaunchReport, Pod};
use attnjoule::emu::EmuDevice;
use attnjoule::kernels::KernelRef;

/// Deterministic pseudo-random stream for test inputs (seeded from reference::fresh_seed()).
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + (self.next() % (hi - lo) as u64) as i64
    }
}

pub fn seed() -> u64 {
    let s = attnjoule::reference::fresh_seed();
    println!("seed {s}");
    s
}

pub fn buf<'d, T: Pod>(dev: &'d EmuDevice, data: &[T]) -> DevBuf<'d> {
    DevBuf::from_slice(dev, data).expect("upload")
}

/// An output buffer poisoned with a NaN pattern.
pub fn out(dev: &EmuDevice, bytes: usize) -> DevBuf<'_> {
    let b = DevBuf::new(dev, bytes).expect("alloc");
    b.fill(0x7fc1_7fc1).expect("fill");
    b
}

pub fn ptr(b: &DevBuf) -> Vec<u8> {
    b.addr().to_le_bytes().to_vec()
}

pub fn int(v: i32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

pub fn launch(
    dev: &EmuDevice,
    module: &str,
    entry: &str,
    grid: [u32; 3],
    block: [u32; 3],
    args: &[Vec<u8>],
) -> LaunchReport {
    let k = KernelRef::new(module, entry).expect("kernel");
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    dev.run_kernel(&k, LaunchConfig { grid, block, dynamic_shared_bytes: 0 }, &a).expect("launch")
}

/// The first `n` elements of `b` (which knows its device; `_dev` keeps the call sites uniform).
pub fn get<T: Pod>(_dev: &EmuDevice, b: &DevBuf, n: usize) -> Vec<T> {
    b.download_vec(n).expect("download")
}

pub fn bytes_of<T: Pod>(v: &[T]) -> Vec<u8> {
    bytemuck::cast_slice(v).to_vec()
}

/// The CUDA source line (file 1) of a PTX line: the last `.loc 1 N` before it.
pub fn source_line(ptx: &str, ptx_line: u32) -> Option<u32> {
    ptx.lines()
        .take(ptx_line as usize)
        .filter_map(|l| {
            let t = l.trim();
            let rest = t.strip_prefix(".loc")?;
            let mut it = rest.split_whitespace();
            (it.next()? == "1").then_some(())?;
            it.next()?.trim_end_matches(',').parse().ok()
        })
        .last()
}

/// 1-based line of the first line of `src` containing `marker`.
pub fn marker_line(src: &str, marker: &str) -> u32 {
    src.lines().position(|l| l.contains(marker)).expect("marker") as u32 + 1
}

/// The device the emulated kernel tests run on (sanitizer and counters on).
pub fn emulator() -> Box<dyn Device> {
    Box::new(EmuDevice::new())
}

/// CUDA device 0 (the `#[ignore]`d GPU tests).
pub fn cuda_device() -> Box<dyn Device> {
    Box::new(attnjoule::device::cuda::CudaDevice::new(0).expect("CUDA device 0"))
}

/// Runs every case (each returns its O rel L2 error) and prints the worst.
pub fn run_cases<C>(dev: &dyn Device, cases: &[C], run_case: impl Fn(&dyn Device, &C) -> f64) {
    let worst = cases.iter().map(|c| run_case(dev, c)).fold(0.0, f64::max);
    println!("worst O rel L2: {worst:.2e}");
}

/// The kernel parameters of `p` with its block-sparse layout (if any) uploaded; the buffers must
/// outlive the launch that reads them.
pub fn upload_layout<'d>(
    dev: &'d dyn Device,
    p: &attnjoule::problem::Problem,
) -> (attnjoule::params::AttnParams, Option<(DevBuf<'d>, DevBuf<'d>)>) {
    let mut params = attnjoule::ops::base_params(p);
    let csr = match &p.mask {
        attnjoule::mask::Mask::BlockSparse(l) => {
            Some((DevBuf::from_slice(dev, &l.row_ptr).unwrap(), DevBuf::from_slice(dev, &l.col_idx).unwrap()))
        }
        _ => None,
    };
    if let Some((rp, ci)) = &csr {
        params.block_row_ptr = rp.addr();
        params.block_col_idx = ci.addr();
    }
    (params, csr)
}

/// The SASS of one function, from `cuobjdump -sass` text ("Function : NAME" headers).
pub fn sass_of<'a>(sass: &'a str, entry: &str) -> &'a str {
    let header = format!("Function : {entry}\n");
    let start = sass.find(&header).unwrap_or_else(|| panic!("{entry} not in the SASS"));
    let body = &sass[start + header.len()..];
    &body[..body.find("Function : ").unwrap_or(body.len())]
}

/// Prints each entry's ptxas resources and checks it has no stack frame and spills nothing.
pub fn assert_no_stack_or_spills(entries: &[attnjoule::kernels::EntryResources]) {
    for e in entries {
        println!(
            "{:<42} regs {:>3}  smem(static) {:>5}  stack {}  spill {}/{}",
            e.name, e.registers, e.shared_bytes, e.stack_bytes, e.spill_store_bytes, e.spill_load_bytes
        );
        assert_eq!(e.stack_bytes, 0, "{}: stack frame", e.name);
        assert_eq!(e.spill_store_bytes + e.spill_load_bytes, 0, "{}: spills", e.name);
    }
}
