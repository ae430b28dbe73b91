//! Hopper's asynchronous instructions on the emulator (kernels/test/emu_async.cu), each checked
//! against a host model written from the PTX ISA text: TMA loads and stores of random 1D-5D boxes
//! (swizzle, out-of-bounds fill and clipping, element strides, swizzle base offsets), plain bulk
//! copies, mbarrier phases and transaction counts, cp.async.mbarrier.arrive, spin-waits across
//! warps, a warp-specialized TMA pipeline (the same results for any worker thread count), the
//! cluster-of-one instructions, elect.sync and setmaxnreg; plus the lowering of memory-order
//! qualifiers and the refusals.

mod common;
use attnjoule::device::tensor_map::{TensorMap, TensorMapElem, TensorMapSpec, TensorMapSwizzle};
use attnjoule::device::{Counters, DevBuf, Device, LaunchConfig, LaunchReport, Pod};
use attnjoule::emu::{EmuDevice, EmuOptions};
use attnjoule::kernels::KernelRef;
use common::*;

/// Launches an entry of emu_async with `smem` bytes of dynamic shared memory.
fn run(
    dev: &dyn Device,
    entry: &str,
    grid: u32,
    block: u32,
    smem: u32,
    args: &[Vec<u8>],
) -> attnjoule::Result<LaunchReport> {
    let k = KernelRef::new("emu_async", entry).expect("kernel");
    let a: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let cfg = LaunchConfig { grid: [grid, 1, 1], block: [block, 1, 1], dynamic_shared_bytes: smem };
    // SAFETY: every caller passes the entry's parameters in order, pointers of buffers that stay
    // alive until the launch's results are read back, and sizes matching those buffers.
    unsafe { dev.launch(&k, cfg, &a) }
}

fn up<'d, T: Pod>(dev: &'d dyn Device, data: &[T]) -> DevBuf<'d> {
    DevBuf::from_slice(dev, data).expect("upload")
}

fn poisoned(dev: &dyn Device, bytes: usize) -> DevBuf<'_> {
    let b = DevBuf::new(dev, bytes.max(1)).expect("alloc");
    b.fill(0x7fc1_7fc1).expect("fill");
    b
}

fn down<T: Pod>(_dev: &dyn Device, b: &DevBuf, n: usize) -> Vec<T> {
    b.download_vec(n).expect("download")
}

fn tmap(dev: &dyn Device, spec: &TensorMapSpec) -> TensorMap {
    dev.encode_tensor_map(spec).expect("tensor map")
}

fn clean(rep: &LaunchReport) -> Counters {
    assert_eq!(rep.findings_total, 0, "{:#?}", rep.findings);
    rep.counters.clone().expect("counters")
}

fn u32v(v: u32) -> Vec<u8> {
    v.to_le_bytes().to_vec()
}

/// A random tensor and box for one TMA case.
#[derive(Debug, Clone)]
pub struct TmaCase {
    pub esize: u32,
    pub dims: Vec<u64>,
    pub strides: Vec<u64>,
    pub box_dims: Vec<u32>,
    pub estrides: Vec<u32>,
    pub swizzle: TensorMapSwizzle,
    pub coords: Vec<i32>,
    /// Byte offset of the box in dynamic shared memory (a multiple of 128).
    pub smem_off: u32,
}

impl TmaCase {
    pub fn random(rng: &mut Rng) -> TmaCase {
        let rank = rng.range(1, 6) as usize;
        let esize = [1u32, 2, 4, 8][rng.range(0, 4) as usize];
        let swizzle = [TensorMapSwizzle::None, TensorMapSwizzle::B32, TensorMapSwizzle::B64, TensorMapSwizzle::B128]
            [rng.range(0, 4) as usize];
        let inner = if swizzle == TensorMapSwizzle::None { 16 * rng.range(1, 9) as u32 } else { swizzle.span() };
        let mut box_dims = vec![inner / esize];
        let mut estrides = vec![1];
        for _ in 1..rank {
            box_dims.push(rng.range(1, 5) as u32);
            estrides.push(rng.range(1, 4) as u32);
        }
        let dims: Vec<u64> =
            box_dims.iter().zip(&estrides).map(|(&b, &e)| rng.range(1, (b * e) as i64 + 5) as u64).collect();
        let mut strides = Vec::new();
        let mut s = (dims[0] * esize as u64).div_ceil(16) * 16;
        for &n in &dims[1..] {
            s += 16 * rng.range(0, 3) as u64;
            strides.push(s);
            s *= n;
        }
        let coords = (0..rank).map(|d| rng.range(-(box_dims[d] as i64) - 1, dims[d] as i64 + 2) as i32).collect();
        TmaCase { esize, dims, strides, box_dims, estrides, swizzle, coords, smem_off: 128 * rng.range(0, 8) as u32 }
    }

    pub fn rank(&self) -> usize {
        self.dims.len()
    }

    pub fn spec(&self, addr: u64) -> TensorMapSpec {
        let dtype = match self.esize {
            1 => TensorMapElem::U8,
            2 => TensorMapElem::Bf16,
            4 => TensorMapElem::F32,
            _ => TensorMapElem::U64,
        };
        let mut s = TensorMapSpec::packed(dtype, addr, &self.dims, &self.box_dims, self.swizzle);
        s.strides = self.strides.clone();
        s.element_strides = self.estrides.clone();
        s
    }

    /// Bytes of the tensor in global memory.
    pub fn global_bytes(&self) -> usize {
        let last: u64 = (1..self.rank()).map(|d| (self.dims[d] - 1) * self.strides[d - 1]).sum();
        (last + self.dims[0] * self.esize as u64) as usize
    }

    fn n(&self, d: usize) -> u64 {
        if d == 0 {
            self.box_dims[0] as u64
        } else {
            self.box_dims[d].div_ceil(self.estrides[d]) as u64
        }
    }

    pub fn box_bytes(&self) -> usize {
        (0..self.rank()).map(|d| self.n(d)).product::<u64>() as usize * self.esize as usize
    }

    /// PTX ISA 5.5.3 / 5.5.7: box element j (dimension 0 fastest) sits at byte `linear(j) * esize`
    /// of the box, each 16-byte chunk moved by the swizzle: chunk ^= (128-byte line of the
    /// absolute shared address) mod (span / 16). Calls `f(global byte offset or None when out of
    /// bounds, box byte offset after the swizzle)` for every byte of the box.
    pub fn for_each_byte(&self, smem_addr: u64, mut f: impl FnMut(Option<usize>, usize)) {
        let r = self.rank();
        let total: u64 = (0..r).map(|d| self.n(d)).product();
        let mask = (self.swizzle.span() / 16).max(1) as u64 - 1;
        for lin in 0..total {
            let mut rest = lin;
            let mut inside = true;
            let mut goff = 0u64;
            for d in 0..r {
                let j = rest % self.n(d);
                rest /= self.n(d);
                let g = self.coords[d] as i64 + j as i64 * if d == 0 { 1 } else { self.estrides[d] as i64 };
                inside &= g >= 0 && g < self.dims[d] as i64;
                goff +=
                    if d == 0 { g.max(0) as u64 * self.esize as u64 } else { g.max(0) as u64 * self.strides[d - 1] };
            }
            for k in 0..self.esize as u64 {
                let a = smem_addr + lin * self.esize as u64 + k;
                let s = a ^ (((a >> 7) & mask) << 4);
                f(inside.then_some((goff + k) as usize), (s - smem_addr) as usize);
            }
        }
    }
}

/// One TMA load case on `dev`: (shared box bytes as read back, the box's shared address).
pub fn tma_load_case(dev: &dyn Device, c: &TmaCase, global: &[u8]) -> (Vec<u8>, u64, Counters) {
    let g = up(dev, global);
    let map = tmap(dev, &c.spec(g.addr()));
    let mut coords = c.coords.clone();
    coords.resize(5, 0);
    let cb = up(dev, &coords);
    let bytes = c.box_bytes();
    let out = poisoned(dev, bytes);
    let info = poisoned(dev, 8);
    let smem = 1024 + c.smem_off + bytes as u32;
    let rep = run(
        dev,
        "tma_load_box",
        1,
        128,
        smem,
        &[
            map.as_bytes().to_vec(),
            int(c.rank() as i32),
            ptr(&cb),
            u32v(c.smem_off),
            u32v(bytes as u32),
            ptr(&out),
            ptr(&info),
        ],
    )
    .expect("launch");
    let counters = if dev.is_emulator() { clean(&rep) } else { Counters::default() };
    let got: Vec<u8> = down(dev, &out, bytes);
    let inf: Vec<u32> = down(dev, &info, 2);
    assert_eq!(inf[1], 1, "the phase was complete after the wait");
    (got, inf[0] as u64, counters)
}

#[test]
fn tma_load_boxes() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    for case in 0..60 {
        let c = TmaCase::random(&mut rng);
        let global: Vec<u8> = (0..c.global_bytes()).map(|_| rng.next() as u8).collect();
        let (got, addr, cnt) = tma_load_case(&dev, &c, &global);
        let mut want = vec![0u8; c.box_bytes()];
        let mut inside = 0u64;
        c.for_each_byte(addr, |g, s| {
            want[s] = g.map_or(0, |g| global[g]);
            inside += g.is_some() as u64;
        });
        assert_eq!(got, want, "case {case}: {c:?} at shared {addr:#x}");
        assert_eq!(cnt.tma_load_bytes, inside, "case {case}: bytes read from the tensor");
        // TMA bytes are global loads too, besides the coordinates thread 0 reads.
        assert_eq!(cnt.global_load_bytes, inside + 4 * c.rank() as u64, "case {case}");
        assert!(cnt.mbarrier_waits >= 128 / 32);
    }
}

/// One TMA store case: the global tensor (pre-filled with `global`) after storing `image` (the
/// box's shared bytes) at the case's coordinates, and the box's shared address.
pub fn tma_store_case(dev: &dyn Device, c: &TmaCase, global: &[u8], image: &[u8]) -> (Vec<u8>, u64, Counters) {
    let g = up(dev, global);
    let map = tmap(dev, &c.spec(g.addr()));
    let mut coords = c.coords.clone();
    coords.resize(5, 0);
    let cb = up(dev, &coords);
    let ib = up(dev, image);
    let info = poisoned(dev, 4);
    let rep = run(
        dev,
        "tma_store_box",
        1,
        128,
        1024 + c.smem_off + image.len() as u32,
        &[
            map.as_bytes().to_vec(),
            int(c.rank() as i32),
            ptr(&cb),
            u32v(c.smem_off),
            u32v(image.len() as u32),
            ptr(&ib),
            ptr(&info),
        ],
    )
    .expect("launch");
    let counters = if dev.is_emulator() { clean(&rep) } else { Counters::default() };
    (down(dev, &g, global.len()), down::<u32>(dev, &info, 1)[0] as u64, counters)
}

#[test]
fn tma_store_boxes() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    for case in 0..60 {
        let mut c = TmaCase::random(&mut rng);
        // A store's box starts inside the tensor (PTX ISA 9.7.9.27.1.1); it may end outside.
        for (x, &d) in c.coords.iter_mut().zip(&c.dims) {
            *x = (*x).clamp(0, d as i32 - 1);
        }
        let global: Vec<u8> = (0..c.global_bytes()).map(|_| rng.next() as u8).collect();
        let image: Vec<u8> = (0..c.box_bytes()).map(|_| rng.next() as u8).collect();
        let (got, addr, cnt) = tma_store_case(&dev, &c, &global, &image);
        let mut want = global.clone();
        let mut inside = 0u64;
        c.for_each_byte(addr, |g, s| {
            if let Some(g) = g {
                want[g] = image[s];
                inside += 1;
            }
        });
        assert_eq!(got, want, "case {case}: {c:?} at shared {addr:#x}");
        assert_eq!(cnt.tma_store_bytes, inside, "case {case}");
        assert!(cnt.global_store_bytes >= inside);
    }
}

#[test]
fn bulk_copies() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    for _ in 0..8 {
        let n = 16 * rng.range(1, 300) as usize;
        let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        let (ib, ob, o2) = (buf(&dev, &data), out(&dev, n), out(&dev, n));
        let rep =
            run(&dev, "bulk_copy", 1, 96, n as u32, &[ptr(&ib), ptr(&ob), ptr(&o2), u32v(n as u32)]).expect("launch");
        let cnt = clean(&rep);
        assert_eq!(get::<u8>(&dev, &ob, n), data);
        assert_eq!(get::<u8>(&dev, &o2, n), data.iter().map(|x| x ^ 0x5a).collect::<Vec<_>>());
        assert_eq!((cnt.bulk_load_bytes, cnt.bulk_store_bytes), (n as u64, n as u64));
        assert_eq!(cnt.global_store_bytes, 2 * n as u64);
    }
}

/// mbarrier phases, transactions, arrive_drop, noComplete / pending_count, inval and re-init.
pub fn mbar_phases_on(dev: &dyn Device, tokens: &[u32]) -> (Vec<u32>, Vec<u32>, Option<Counters>) {
    let rounds = tokens.len();
    let tb = up(dev, tokens);
    let ob = poisoned(dev, 4 * 128 * rounds);
    let eb = poisoned(dev, 4 * 128);
    let rep = run(dev, "mbar_phases", 1, 128, 0, &[ptr(&tb), ptr(&ob), ptr(&eb), int(rounds as i32)]).expect("launch");
    let counters = dev.is_emulator().then(|| clean(&rep));
    (down(dev, &ob, 128 * rounds), down(dev, &eb, 128), counters)
}

/// The PTX ISA's results for mbar_phases (PTX ISA 9.7.13.15): every thread reads each round's
/// token; the transaction phase completes (parity 0 tested complete); warp 3 dropped out (2),
/// the others saw the completed phase 2 (4); threads 0 and 1 read pending counts 3 and 2 (in
/// either order: lanes of one instruction arrive in an unspecified order).
pub fn check_mbar_phases(tokens: &[u32], out: &[u32], extra: &[u32]) {
    for (r, &tok) in tokens.iter().enumerate() {
        assert!(out[r * 128..(r + 1) * 128].iter().all(|&x| x == tok), "round {r}");
    }
    for (t, &e) in extra.iter().enumerate() {
        let flags = e & 0xff;
        assert_eq!(flags, if t >= 96 { 1 | 2 } else { 1 | 4 }, "thread {t}: {e:#x}");
        if t >= 2 {
            assert_eq!(e >> 8, 0, "thread {t}");
        }
    }
    let mut pcs = [extra[0] >> 8, extra[1] >> 8];
    pcs.sort();
    assert_eq!(pcs, [2, 3]);
}

#[test]
fn mbarrier_phases() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let tokens: Vec<u32> = (0..6).map(|_| rng.next() as u32).collect();
    let (out, extra, cnt) = mbar_phases_on(&dev, &tokens);
    check_mbar_phases(&tokens, &out, &extra);
    let cnt = cnt.expect("counters");
    // 6 rounds x 2 waits x 4 warps, + 2 + 3 + 1 + 1 waits and 3 test_wait.parity per warp.
    assert!(cnt.mbarrier_waits >= 6 * 2 * 4, "{}", cnt.mbarrier_waits);
}

#[test]
fn cp_async_mbarrier_arrive() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let data: Vec<u32> = (0..2 * 128 * 4).map(|_| rng.next() as u32).collect();
    let (ib, ob) = (buf(&dev, &data), out(&dev, 4 * data.len()));
    let rep = run(&dev, "cp_async_mbar", 2, 128, 0, &[ptr(&ib), ptr(&ob)]).expect("launch");
    clean(&rep);
    let got: Vec<u32> = get(&dev, &ob, data.len());
    for b in 0..2 {
        for t in 0..128 {
            let src = b * 128 + (t + 32) % 128;
            assert_eq!(
                &got[4 * (b * 128 + t)..4 * (b * 128 + t) + 4],
                &data[4 * src..4 * src + 4],
                "block {b} thread {t}"
            );
        }
    }
}

fn spin_wait_on(dev: &EmuDevice, blocks: usize) -> (Vec<i32>, Counters) {
    let flags = buf(dev, &vec![0i32; blocks]);
    let data = out(dev, 4 * blocks);
    let ob = out(dev, 4 * 8 * blocks);
    let rep = run(dev, "spin_wait", blocks as u32, 128, 0, &[ptr(&flags), ptr(&data), ptr(&ob)]).expect("launch");
    let cnt = clean(&rep);
    (get(dev, &ob, 8 * blocks), cnt)
}

/// A warp spinning on a volatile global flag, on atomics with nanosleep, and warps taking turns
/// through a ticket: each completes because spinning warps yield.
#[test]
fn spin_wait_across_warps() {
    let dev = EmuDevice::new();
    let (got, _) = spin_wait_on(&dev, 3);
    for b in 0..3 {
        assert_eq!(&got[8 * b..8 * b + 6], &[1000 + b as i32, 7 + b as i32, 0, 1, 2, 3], "block {b}");
    }
}

/// Rows 0..32 of `tiles` 32x32 tiles: sums in the kernel's order (exact: small integers).
fn pipeline_input(rng: &mut Rng, tiles: usize, blocks: usize) -> (Vec<f32>, Vec<f32>) {
    let x: Vec<f32> = (0..blocks * tiles * 1024).map(|_| rng.range(-8, 9) as f32).collect();
    let mut want = vec![0f32; blocks * 32];
    for b in 0..blocks {
        for row in 0..32 {
            want[b * 32 + row] = (0..tiles)
                .flat_map(|k| (0..32).map(move |j| (k, j)))
                .map(|(k, j)| x[((b * tiles + k) * 32 + row) * 32 + j])
                .sum();
        }
    }
    (x, want)
}

pub fn pipeline_on(dev: &dyn Device, x: &[f32], tiles: usize, blocks: usize) -> (Vec<f32>, Option<Counters>) {
    let xb = up(dev, x);
    // Each block reads its own tiles: one 2D tensor of 32 columns, blocks * tiles * 32 rows; the
    // kernel's row coordinate is 32k, so the blocks take turns through one map per block.
    let mut outs = Vec::new();
    let mut counters: Option<Counters> = None;
    for b in 0..blocks {
        let spec = TensorMapSpec::packed(
            TensorMapElem::F32,
            xb.addr() + (b * tiles * 1024 * 4) as u64,
            &[32, 32 * tiles as u64],
            &[32, 32],
            TensorMapSwizzle::None,
        );
        let map = tmap(dev, &spec);
        let ob = poisoned(dev, 4 * 32);
        let rep =
            run(dev, "tma_pipeline", 1, 160, 1024 + 3 * 4096, &[map.as_bytes().to_vec(), int(tiles as i32), ptr(&ob)])
                .expect("launch");
        if dev.is_emulator() {
            let c = clean(&rep);
            match &mut counters {
                Some(acc) => attnjoule::emu::counters::add(acc, &c),
                None => counters = Some(c),
            }
        }
        outs.extend(down::<f32>(dev, &ob, 32));
    }
    (outs, counters)
}

#[test]
fn tma_pipeline_warp_specialized() {
    let dev = EmuDevice::new();
    let mut rng = Rng(seed());
    let (tiles, blocks) = (7, 2);
    let (x, want) = pipeline_input(&mut rng, tiles, blocks);
    let (got, cnt) = pipeline_on(&dev, &x, tiles, blocks);
    assert_eq!(got, want);
    let cnt = cnt.expect("counters");
    assert_eq!(cnt.tma_load_bytes, (blocks * tiles * 4096) as u64);
    assert!(cnt.named_barrier_waits >= 4 * blocks as u64);
}

/// Spin-waits and a blocking pipeline give the same outputs and counters on 1 and 2 workers.
#[test]
fn results_independent_of_thread_count() {
    let mut rng = Rng(seed());
    let (x, _) = pipeline_input(&mut rng, 5, 2);
    let mut seen = Vec::new();
    for threads in [1, 2] {
        let dev = EmuDevice::with_options(EmuOptions { threads: Some(threads), ..Default::default() }).expect("device");
        let (spin, c1) = spin_wait_on(&dev, 6);
        let (pipe, c2) = pipeline_on(&dev, &x, 5, 2);
        seen.push((spin, c1, pipe.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), c2));
    }
    assert_eq!(seen[0], seen[1]);
}

#[test]
fn cluster_of_one_and_elect() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * (8 + 2 * 64));
    let rep = run(&dev, "cluster_one", 2, 64, 0, &[ptr(&ob)]).expect("launch");
    clean(&rep);
    let got: Vec<u32> = get(&dev, &ob, 8 + 2 * 64);
    assert_eq!(&got[..8], &[0, 1, 0, 0, 2, 0, 1, 0]);
    for b in 0..2 {
        for t in (1..64).step_by(2) {
            let want = 1 | if t % 32 == 1 { 1 << 8 } else { 0 };
            assert_eq!(got[8 + b * 64 + t], want, "block {b} thread {t}");
        }
    }
}

#[test]
fn setmaxnreg_warpgroups() {
    let dev = EmuDevice::new();
    let ob = out(&dev, 4 * 256);
    let rep = run(&dev, "setmaxnreg_split", 1, 256, 0, &[ptr(&ob)]).expect("launch");
    clean(&rep);
    let got: Vec<i32> = get(&dev, &ob, 256);
    assert!(got.iter().enumerate().all(|(t, &v)| v == (t / 128) as i32));
}

/// Memory-order and scope qualifiers are kept on the instruction (not dropped as hints).
#[test]
fn memory_order_in_the_ir() {
    use attnjoule::emu::ir::{Order, Scope};
    let ptx = r#"
.version 9.0
.target sm_90a
.address_size 64
.visible .entry k(.param .u64 p)
{
    .reg .b32 %r<4>;
    .reg .b64 %rd<3>;
    ld.param.u64 %rd1, [p];
    ld.volatile.global.u32 %r1, [%rd1];
    ld.acquire.gpu.global.u32 %r2, [%rd1];
    st.release.sys.global.u32 [%rd1], %r1;
    atom.relaxed.cta.global.add.u32 %r3, [%rd1], 1;
    red.release.gpu.global.add.u32 [%rd1], 1;
    fence.acq_rel.gpu;
    ld.global.u32 %r3, [%rd1];
    ret;
}
"#;
    let m = attnjoule::emu::parse::lower_module(ptx);
    let k = m.get("k").expect("entry").as_ref().expect("lowers");
    let sems: Vec<(Order, Scope)> = k.insts.iter().map(|i| (i.sem.order, i.sem.scope)).collect();
    assert_eq!(
        &sems[..8],
        &[
            (Order::Weak, Scope::None),
            (Order::Volatile, Scope::None),
            (Order::Acquire, Scope::Gpu),
            (Order::Release, Scope::Sys),
            (Order::Relaxed, Scope::Cta),
            (Order::Release, Scope::Gpu),
            (Order::AcqRel, Scope::Gpu),
            (Order::Weak, Scope::None),
        ]
    );
}

/// Forms that need a real multi-CTA cluster (or modes not modelled) are refused with a message.
#[test]
fn refusals() {
    let lower = |body: &str| {
        let ptx = format!(
            ".version 9.0\n.target sm_90a\n.address_size 64\n.visible .entry k(.param .u64 p)\n{{\n.reg .b32 %r<8>;\n.reg .b64 %rd<4>;\n{body}\nret;\n}}\n"
        );
        attnjoule::emu::parse::lower_module(&ptx).remove("k").expect("entry")
    };
    for bad in [
        "cp.async.bulk.shared::cluster.shared::cta.mbarrier::complete_tx::bytes [%r1], [%r2], 16, [%r3];",
        "cp.async.bulk.tensor.3d.shared::cluster.global.im2col.mbarrier::complete_tx::bytes [%r1], [%rd1, {%r2, %r3, %r4}], [%r5], {%r6};",
        "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.u32 [%rd1], [%r1], 16;",
        "mbarrier.try_wait.parity.shared::cluster.b64 %r1, [%r2], %r3;",
        "setmaxnreg.inc.sync.aligned.u32 20;",
    ] {
        let e = lower(bad).expect_err(bad);
        assert!(e.contains("unsupported") || e.contains("setmaxnreg"), "{bad}: {e}");
    }
    assert!(lower("mbarrier.try_wait.parity.shared::cta.b64 %r1, [%r2], %r3, %r4;").is_ok());
    let cluster2 = ".version 9.0\n.target sm_90a\n.address_size 64\n.visible .entry k(.param .u64 p)\n.explicitcluster\n.reqnctapercluster 2, 1, 1\n{\nret;\n}\n";
    let e = attnjoule::emu::parse::lower_module(cluster2).remove("k").expect("entry").expect_err("a 2-CTA cluster");
    assert!(e.contains("clusters of 2 CTAs"), "{e}");
    // Dimensions whose product overflows 64 bits are refused, not an overflow panic.
    let huge = cluster2.replace("2, 1, 1", "4294967296, 4294967296, 4294967296");
    let e = attnjoule::emu::parse::lower_module(&huge).remove("k").expect("entry").expect_err("a huge cluster");
    assert!(e.contains("clusters of 18446744073709551615 CTAs"), "{e}");
}

// ---- GPU cross-checks: the nvcc-compiled kernels on the CUDA backend against the emulator. ----

/// TMA loads of random boxes (every rank and swizzle, out-of-bounds fill, element strides,
/// swizzle base offsets) land the same shared bytes on the GPU as the model says, and bit for bit
/// the emulator's when the box's shared address agrees modulo 1024 (the swizzle depends on it).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_tma_load_boxes_match_emulator() {
    let gpu = cuda_device();
    let emu = EmuDevice::new();
    let mut rng = Rng(seed());
    let mut compared = 0;
    for case in 0..200 {
        let c = TmaCase::random(&mut rng);
        let global: Vec<u8> = (0..c.global_bytes()).map(|_| rng.next() as u8).collect();
        let (g, ga, _) = tma_load_case(gpu.as_ref(), &c, &global);
        let (e, ea, _) = tma_load_case(&emu, &c, &global);
        for (got, addr, who) in [(&g, ga, "GPU"), (&e, ea, "emulator")] {
            let mut want = vec![0u8; c.box_bytes()];
            c.for_each_byte(addr, |gi, s| want[s] = gi.map_or(0, |gi| global[gi]));
            assert_eq!(got, &want, "{who}, case {case}: {c:?} at shared {addr:#x}");
        }
        if ga % 1024 == ea % 1024 {
            assert_eq!(g, e, "case {case}");
            compared += 1;
        }
    }
    println!("{compared} of 200 cases compared bit for bit (the others against the model only)");
}

/// TMA stores of random boxes (clipped at the tensor's end) write the same global bytes.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_tma_store_boxes_match_emulator() {
    let gpu = cuda_device();
    let emu = EmuDevice::new();
    let mut rng = Rng(seed());
    for case in 0..200 {
        let mut c = TmaCase::random(&mut rng);
        for (x, &d) in c.coords.iter_mut().zip(&c.dims) {
            *x = (*x).clamp(0, d as i32 - 1);
        }
        let global: Vec<u8> = (0..c.global_bytes()).map(|_| rng.next() as u8).collect();
        let image: Vec<u8> = (0..c.box_bytes()).map(|_| rng.next() as u8).collect();
        let (g, ga, _) = tma_store_case(gpu.as_ref(), &c, &global, &image);
        let (e, ea, _) = tma_store_case(&emu, &c, &global, &image);
        for (got, addr, who) in [(&g, ga, "GPU"), (&e, ea, "emulator")] {
            let mut want = global.clone();
            c.for_each_byte(addr, |gi, s| {
                if let Some(gi) = gi {
                    want[gi] = image[s];
                }
            });
            assert_eq!(got, &want, "{who}, case {case}: {c:?} at shared {addr:#x}");
        }
        if ga % 1024 == ea % 1024 {
            assert_eq!(g, e, "case {case}");
        }
    }
}

/// mbarrier phases, transactions, arrive_drop, pending counts and re-init on the GPU: the PTX
/// ISA's results, and the emulator's.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_mbarrier_phases_match_emulator() {
    let gpu = cuda_device();
    let emu = EmuDevice::new();
    let mut rng = Rng(seed());
    let tokens: Vec<u32> = (0..8).map(|_| rng.next() as u32).collect();
    let (go, ge, _) = mbar_phases_on(gpu.as_ref(), &tokens);
    check_mbar_phases(&tokens, &go, &ge);
    let (eo, ee, _) = mbar_phases_on(&emu, &tokens);
    assert_eq!(go, eo);
    // Threads 0 and 1's pending counts may come in either order on the GPU.
    assert_eq!(&ge[2..], &ee[2..]);
}

/// The warp-specialized TMA pipeline, plain bulk copies, spin-waits, the cluster-of-one
/// instructions and setmaxnreg give the GPU's results (exact: small integers, data movement).
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_async_kernels_match_emulator() {
    let gpu = cuda_device();
    let emu = EmuDevice::new();
    let mut rng = Rng(seed());
    let (x, want) = pipeline_input(&mut rng, 9, 2);
    let (g, _) = pipeline_on(gpu.as_ref(), &x, 9, 2);
    let (e, _) = pipeline_on(&emu, &x, 9, 2);
    assert_eq!(g, want);
    assert_eq!(e, want);

    let n = 16 * 200;
    let data: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
    for dev in [gpu.as_ref(), &emu as &dyn Device] {
        let (ib, ob, o2) = (up(dev, &data), poisoned(dev, n), poisoned(dev, n));
        run(dev, "bulk_copy", 1, 96, n as u32, &[ptr(&ib), ptr(&ob), ptr(&o2), u32v(n as u32)]).expect("bulk_copy");
        assert_eq!(down::<u8>(dev, &ob, n), data, "{}", dev.name());
        assert_eq!(down::<u8>(dev, &o2, n), data.iter().map(|x| x ^ 0x5a).collect::<Vec<_>>());

        let blocks = 4;
        let (flags, dat, ob) = (up(dev, &vec![0i32; blocks]), poisoned(dev, 4 * blocks), poisoned(dev, 32 * blocks));
        run(dev, "spin_wait", blocks as u32, 128, 0, &[ptr(&flags), ptr(&dat), ptr(&ob)]).expect("spin_wait");
        let got: Vec<i32> = down(dev, &ob, 8 * blocks);
        for b in 0..blocks {
            assert_eq!(
                &got[8 * b..8 * b + 6],
                &[1000 + b as i32, 7 + b as i32, 0, 1, 2, 3],
                "{} block {b}",
                dev.name()
            );
        }

        let ob = poisoned(dev, 4 * (8 + 2 * 64));
        run(dev, "cluster_one", 2, 64, 0, &[ptr(&ob)]).expect("cluster_one");
        let got: Vec<u32> = down(dev, &ob, 8 + 2 * 64);
        assert_eq!(&got[..8], &[0, 1, 0, 0, 2, 0, 1, 0], "{}", dev.name());
        for t in (1..128).step_by(2) {
            assert_eq!(got[8 + t], 1 | if t % 32 == 1 { 1 << 8 } else { 0 }, "{} thread {t}", dev.name());
        }

        let ob = poisoned(dev, 4 * 256);
        run(dev, "setmaxnreg_split", 1, 256, 0, &[ptr(&ob)]).expect("setmaxnreg_split");
        let got: Vec<i32> = down(dev, &ob, 256);
        assert!(got.iter().enumerate().all(|(t, &v)| v == (t / 128) as i32), "{}", dev.name());
    }
}

/// The driver refuses what `TensorMapSpec::validate` refuses, and accepts what it accepts (the
/// emulator applies the same rules), one broken rule at a time.
#[test]
#[ignore = "needs a CUDA GPU"]
fn gpu_driver_agrees_with_validate() {
    use attnjoule::device::cuda::encode_with_driver;
    let gpu = cuda_device();
    let buf = poisoned(gpu.as_ref(), 1 << 20);
    let base =
        TensorMapSpec::packed(TensorMapElem::Bf16, buf.addr(), &[256, 64, 4], &[64, 32, 2], TensorMapSwizzle::B128);
    type Edit = Box<dyn Fn(&mut TensorMapSpec)>;
    let edits: Vec<(&str, Edit)> = vec![
        ("valid", Box::new(|_| {})),
        ("address 8 bytes off", Box::new(|s| s.addr += 8)),
        ("stride not a multiple of 16", Box::new(|s| s.strides[0] = 520)),
        ("stride 2^40", Box::new(|s| s.strides[1] = 1 << 40)),
        ("box 257", Box::new(|s| s.box_dims[1] = 257)),
        ("box 0", Box::new(|s| s.box_dims[2] = 0)),
        (
            "inner box 8 bytes",
            Box::new(|s| {
                s.swizzle = TensorMapSwizzle::None;
                s.box_dims[0] = 4
            }),
        ),
        ("inner box wider than the swizzle", Box::new(|s| s.box_dims[0] = 72)),
        ("element stride 9", Box::new(|s| s.element_strides[1] = 9)),
        ("element stride 0", Box::new(|s| s.element_strides[1] = 0)),
        ("dimension 0", Box::new(|s| s.dims[1] = 0)),
        ("dimension 2^32 + 1", Box::new(|s| s.dims[2] = (1 << 32) + 1)),
        ("element stride 3", Box::new(|s| s.element_strides[1] = 3)),
        (
            "32-byte swizzle",
            Box::new(|s| {
                s.swizzle = TensorMapSwizzle::B32;
                s.box_dims[0] = 16
            }),
        ),
    ];
    for (what, edit) in edits {
        let mut s = base.clone();
        edit(&mut s);
        let ours = s.validate();
        let driver = encode_with_driver(&s);
        println!("{what}: validate {ours:?}, driver {:?}", driver.as_ref().map(|_| ()));
        assert_eq!(ours.is_ok(), driver.is_ok(), "{what}: validate and the driver disagree");
    }
}
