//! `attnjoule run-ptx`: runs one entry of any PTX (or CUDA, compiled with the pinned nvcc) file on
//! the CPU emulator, with the sanitizer and counters: a CPU compute-sanitizer and counter tool for
//! kernels from outside the crate.
//!
//! `attnjoule run-ptx FILE --entry NAME --grid X[,Y[,Z]] --block X[,Y[,Z]] [--smem BYTES]
//! --arg ARG ...`: one `--arg` per kernel parameter in order, a buffer
//! `buf:TYPE:COUNT[:random|zero|file=PATH]` (passed as its device address) or a scalar
//! `TYPE:VALUE`. Exit status: 0 clean, 1 when the launch fails (trap, fault or deadlock with the
//! sanitizer off, unsupported PTX, bad arguments), 2 when it completes with sanitizer findings
//! (memcheck faults and deadlocks are findings while the sanitizer is on).

use super::emu::{print_launch, thread_insts, LaunchSummary};
use crate::cli::out::outln;
use anyhow::{anyhow, bail, Context};
use attnjoule::device::{DevBuf, Device, LaunchConfig};
use attnjoule::kernels::{compile_cu, PtxModule};
use half::{bf16, f16};
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(clap::Args)]
pub struct Args {
    /// A .ptx file, or a .cu file compiled to PTX with the nvcc build.rs uses (sm_90a, -O3
    /// -lineinfo -std=c++17).
    file: PathBuf,
    /// The entry to launch, as the PTX names it (extern "C" or mangled).
    #[arg(long)]
    entry: String,
    /// Blocks: X[,Y[,Z]].
    #[arg(long, value_parser = parse_dim3)]
    grid: Dim3,
    /// Threads per block: X[,Y[,Z]].
    #[arg(long, value_parser = parse_dim3)]
    block: Dim3,
    /// Dynamic shared memory per block, bytes.
    #[arg(long, default_value_t = 0)]
    smem: u32,
    /// One per kernel parameter, in order: a buffer buf:TYPE:COUNT[:random|zero|file=PATH]
    /// (uninitialized without an initializer: initcheck reports reads before a write) or a scalar
    /// TYPE:VALUE. TYPE: u8 u16 u32 u64 i8 i16 i32 i64 f16 bf16 f32 f64.
    #[arg(long = "arg", value_parser = ArgSpec::parse, allow_hyphen_values = true)]
    args: Vec<ArgSpec>,
    /// Seed of the random buffers (default: fresh, printed).
    #[arg(long)]
    seed: Option<u64>,
    /// Write every buffer after the launch to DIR/argN.npy (N: its --arg position from 0; bf16 as
    /// f32, exactly).
    #[arg(long)]
    dump: Option<PathBuf>,
    /// Extra nvcc flag for a .cu file (repeat for several): -I..., -D...
    #[arg(long = "nvcc-flag", allow_hyphen_values = true)]
    nvcc_flags: Vec<String>,
    /// Turn the sanitizer off (faster; a fault then stops the launch).
    #[arg(long)]
    no_sanitize: bool,
    /// Worker threads (default: all cores; at most 4 per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Stop a launch still running after this many seconds (1 .. 86400).
    #[arg(long, default_value_t = 600.0)]
    max_seconds: f64,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
struct Dim3([u32; 3]);

fn parse_dim3(s: &str) -> Result<Dim3, String> {
    let v: Vec<u32> = s
        .split(',')
        .map(|x| x.trim().parse::<u32>().map_err(|_| format!("`{s}` is not X[,Y[,Z]] of positive integers")))
        .collect::<Result<_, _>>()?;
    if v.is_empty() || v.len() > 3 || v.contains(&0) {
        return Err(format!("`{s}` is not X[,Y[,Z]] of positive integers"));
    }
    Ok(Dim3([v[0], *v.get(1).unwrap_or(&1), *v.get(2).unwrap_or(&1)]))
}

/// An element type of a buffer or scalar.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Elem {
    U8,
    U16,
    U32,
    U64,
    I8,
    I16,
    I32,
    I64,
    F16,
    Bf16,
    F32,
    F64,
}

const ELEMS: [(&str, Elem); 12] = [
    ("u8", Elem::U8),
    ("u16", Elem::U16),
    ("u32", Elem::U32),
    ("u64", Elem::U64),
    ("i8", Elem::I8),
    ("i16", Elem::I16),
    ("i32", Elem::I32),
    ("i64", Elem::I64),
    ("f16", Elem::F16),
    ("bf16", Elem::Bf16),
    ("f32", Elem::F32),
    ("f64", Elem::F64),
];

impl Elem {
    fn parse(s: &str) -> Result<Elem, String> {
        ELEMS.iter().find(|(n, _)| *n == s).map(|&(_, e)| e).ok_or_else(|| {
            format!("unknown type `{s}` (one of {})", ELEMS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(" "))
        })
    }
    fn name(self) -> &'static str {
        ELEMS.iter().find(|(_, e)| *e == self).map_or("?", |(n, _)| n)
    }
    fn bytes(self) -> usize {
        match self {
            Elem::U8 | Elem::I8 => 1,
            Elem::U16 | Elem::I16 | Elem::F16 | Elem::Bf16 => 2,
            Elem::U32 | Elem::I32 | Elem::F32 => 4,
            Elem::U64 | Elem::I64 | Elem::F64 => 8,
        }
    }
    fn is_float(self) -> bool {
        matches!(self, Elem::F16 | Elem::Bf16 | Elem::F32 | Elem::F64)
    }
    /// The NPY dtype of a dump (bf16, which NumPy lacks, is written as f32: exact).
    fn npy_descr(self) -> &'static str {
        match self {
            Elem::U8 => "|u1",
            Elem::I8 => "|i1",
            Elem::U16 => "<u2",
            Elem::I16 => "<i2",
            Elem::U32 => "<u4",
            Elem::I32 => "<i4",
            Elem::U64 => "<u8",
            Elem::I64 => "<i8",
            Elem::F16 => "<f2",
            Elem::Bf16 | Elem::F32 => "<f4",
            Elem::F64 => "<f8",
        }
    }
    /// `v` as this type's little-endian bytes (integers range-checked, floats rounded to nearest).
    fn scalar(self, v: &str) -> Result<Vec<u8>, String> {
        let bad = || format!("`{v}` is not a {} value", self.name());
        if self.is_float() {
            let x: f64 = v.parse().map_err(|_| bad())?;
            return Ok(match self {
                Elem::F16 => f16::from_f64(x).to_le_bytes().to_vec(),
                Elem::Bf16 => bf16::from_f64(x).to_le_bytes().to_vec(),
                Elem::F32 => (x as f32).to_le_bytes().to_vec(),
                _ => x.to_le_bytes().to_vec(),
            });
        }
        let (neg, digits) = match v.strip_prefix('-') {
            Some(d) => (true, d),
            None => (false, v),
        };
        let mag = match digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
            Some(h) => u128::from_str_radix(h, 16),
            None => digits.parse::<u128>(),
        }
        .map_err(|_| bad())?;
        let x: i128 = if neg { -(mag as i128) } else { mag as i128 };
        let bits = 8 * self.bytes() as u32;
        let signed = matches!(self, Elem::I8 | Elem::I16 | Elem::I32 | Elem::I64);
        let (lo, hi) =
            if signed { (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1) } else { (0, (1i128 << bits) - 1) };
        if x < lo || x > hi {
            return Err(format!("{v} is out of range for {}", self.name()));
        }
        Ok((x as u128).to_le_bytes()[..self.bytes()].to_vec())
    }
}

#[derive(Clone, Debug)]
enum Init {
    Uninit,
    Random,
    Zero,
    File(PathBuf),
}

#[derive(Clone, Debug)]
enum ArgSpec {
    Buf { ty: Elem, count: usize, init: Init },
    Scalar { ty: Elem, bytes: Vec<u8> },
}

impl ArgSpec {
    fn parse(s: &str) -> Result<ArgSpec, String> {
        if let Some(rest) = s.strip_prefix("buf:") {
            let mut it = rest.splitn(3, ':');
            let ty = Elem::parse(it.next().unwrap_or(""))?;
            let count: usize = it
                .next()
                .and_then(|c| c.parse().ok())
                .filter(|&c| c > 0)
                .ok_or_else(|| format!("`{s}`: expected buf:TYPE:COUNT[:random|zero|file=PATH], COUNT > 0"))?;
            let init = match it.next() {
                None => Init::Uninit,
                Some("random") => Init::Random,
                Some("zero") => Init::Zero,
                Some(f) => match f.strip_prefix("file=") {
                    Some(p) if !p.is_empty() => Init::File(p.into()),
                    _ => return Err(format!("`{s}`: the initializer is random, zero or file=PATH")),
                },
            };
            return Ok(ArgSpec::Buf { ty, count, init });
        }
        let (t, v) = s.split_once(':').ok_or_else(|| format!("`{s}`: expected buf:TYPE:COUNT[:INIT] or TYPE:VALUE"))?;
        let ty = Elem::parse(t)?;
        Ok(ArgSpec::Scalar { ty, bytes: ty.scalar(v)? })
    }
}

/// splitmix64.
fn next(s: &mut u64) -> u64 {
    *s = s.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *s;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `count` random values: floats uniform in [-1, 1), integers uniform over their range.
fn random(ty: Elem, count: usize, seed: u64) -> Vec<u8> {
    let mut s = seed;
    let mut out = Vec::with_capacity(count * ty.bytes());
    for _ in 0..count {
        let r = next(&mut s);
        let x = (r >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
        match ty {
            Elem::F16 => out.extend(f16::from_f64(x).to_le_bytes()),
            Elem::Bf16 => out.extend(bf16::from_f64(x).to_le_bytes()),
            Elem::F32 => out.extend((x as f32).to_le_bytes()),
            Elem::F64 => out.extend(x.to_le_bytes()),
            _ => out.extend(&r.to_le_bytes()[..ty.bytes()]),
        }
    }
    out
}

/// An NPY (format 1.0) file of a 1-D array: magic, version, header length, the header dict padded
/// with spaces to a 64-byte boundary and ended by a newline, then the data.
fn npy(descr: &str, count: usize, data: &[u8]) -> Vec<u8> {
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({count},), }}");
    let unpadded = 10 + dict.len() + 1;
    let header = format!("{dict}{}\n", " ".repeat(unpadded.next_multiple_of(64) - unpadded));
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend((header.len() as u16).to_le_bytes());
    out.extend(header.as_bytes());
    out.extend(data);
    out
}

/// The data of an NPY file (versions 1-3) of `count` elements of dtype `descr`.
fn read_npy(bytes: &[u8], descr: &str, count: usize) -> Result<Vec<u8>, String> {
    let (hlen, start) = match bytes.get(6) {
        Some(1) if bytes.len() >= 10 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        Some(2 | 3) if bytes.len() >= 12 => {
            (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12)
        }
        _ => return Err("not an NPY file of version 1, 2 or 3".into()),
    };
    let header = std::str::from_utf8(bytes.get(start..start + hlen).ok_or("truncated NPY header")?)
        .map_err(|_| "NPY header is not text")?;
    let field = |key: &str| -> Option<&str> {
        let at = header.find(&format!("'{key}'"))? + key.len() + 2;
        Some(header[at..].trim_start().strip_prefix(':')?.trim_start())
    };
    let d = field("descr").and_then(|v| v.strip_prefix('\'')?.split('\'').next()).ok_or("NPY header has no descr")?;
    // The same type in little-endian or native ('=') order; one byte: any order mark.
    let (dord, dty) = d.split_at(1.min(d.len()));
    if dty != &descr[1..] || !(dord == "<" || dord == "=" || dord == "|") {
        return Err(format!("NPY dtype {d}, expected {descr}"));
    }
    if field("fortran_order").is_some_and(|v| v.starts_with("True")) {
        return Err("Fortran-ordered NPY arrays are not supported".into());
    }
    let shape = field("shape").and_then(|v| v.strip_prefix('(')?.split(')').next()).ok_or("NPY header has no shape")?;
    let n = shape
        .split(',')
        .map(str::trim)
        .filter(|x| !x.is_empty())
        .map(|x| x.parse::<usize>().map_err(|_| format!("bad NPY shape ({shape})")))
        .try_fold(1usize, |n, x| n.checked_mul(x?).ok_or_else(|| format!("NPY shape ({shape}) overflows")))?;
    if n != count {
        return Err(format!("the NPY array has {n} elements, the buffer {count}"));
    }
    let data = &bytes[start + hlen..];
    let want = count.saturating_mul(descr[2..].parse::<usize>().unwrap_or(1));
    if data.len() != want {
        return Err(format!("the NPY data is {} bytes, expected {want}", data.len()));
    }
    Ok(data.to_vec())
}

/// The initial bytes of a buffer from a file: NPY (dtype checked; bf16 from f32, rounded to
/// nearest) or raw little-endian elements.
fn from_file(path: &Path, ty: Elem, count: usize) -> anyhow::Result<Vec<u8>> {
    // At most the buffer as f32 NPY data (bf16 is dumped as f32) and a header: /dev/zero or a
    // wrong file is refused, not read until memory runs out.
    let max = (count as u64).saturating_mul(ty.bytes().max(4) as u64).saturating_add(1 << 20);
    let raw = attnjoule::files::read_bytes(path, max, "buffer file")?;
    if raw.starts_with(b"\x93NUMPY") {
        let data = read_npy(&raw, ty.npy_descr(), count).map_err(|e| anyhow!("{}: {e}", path.display()))?;
        if ty == Elem::Bf16 {
            return Ok(data
                .chunks(4)
                .flat_map(|c| bf16::from_f32(f32::from_le_bytes([c[0], c[1], c[2], c[3]])).to_le_bytes())
                .collect());
        }
        return Ok(data);
    }
    if raw.len() != count * ty.bytes() {
        bail!(
            "{}: {} bytes, but {count} {} elements are {} bytes (a raw file holds exactly the buffer)",
            path.display(),
            raw.len(),
            ty.name(),
            count * ty.bytes()
        );
    }
    Ok(raw)
}

#[derive(Serialize)]
struct BufSummary {
    arg: usize,
    ty: Elem,
    count: usize,
    dump: Option<String>,
}

#[derive(Serialize)]
struct Summary {
    file: String,
    entry: String,
    grid: Dim3,
    block: Dim3,
    smem: u32,
    seed: u64,
    seconds: f64,
    thread_instructions: u64,
    thread_instructions_per_second: f64,
    findings_total: u64,
    launches: Vec<LaunchSummary>,
    buffers: Vec<BufSummary>,
}

/// The CUDA source line of PTX line `line`, from the last `.loc` before it and the module's
/// `.file` table (nvcc writes them with -lineinfo, which a compiled .cu has).
fn source_line(ptx: &str, line: u32) -> Option<String> {
    let mut files = std::collections::HashMap::new();
    let mut at = None;
    for (i, l) in ptx.lines().enumerate() {
        let mut t = l.split_whitespace();
        match t.next() {
            Some(".file") => {
                let n: u32 = t.next()?.parse().ok()?;
                let rest = l.split_once('"')?.1;
                files.insert(n, rest.split('"').next()?.to_string());
            }
            Some(".loc") if i < line as usize => {
                let (f, n) = (t.next()?.parse::<u32>().ok()?, t.next()?.trim_end_matches(',').parse::<u32>().ok()?);
                at = Some((f, n));
            }
            _ => {}
        }
    }
    let (f, n) = at?;
    let name = files.get(&f)?;
    let short = Path::new(name).file_name().map_or(name.as_str(), |x| x.to_str().unwrap_or(name));
    Some(format!("{short}:{n}"))
}

/// The `.entry` names of a module's PTX.
fn entries(ptx: &str) -> Vec<&str> {
    ptx.match_indices(".entry")
        .filter_map(|(i, _)| ptx[i + 6..].trim_start().split(|c: char| c == '(' || c.is_whitespace()).next())
        .filter(|n| !n.is_empty())
        .collect()
}

pub fn run(a: Args) -> anyhow::Result<()> {
    let module = if a.file.extension().is_some_and(|e| e == "cu") {
        compile_cu(&a.file, &a.nvcc_flags)?
    } else {
        if !a.nvcc_flags.is_empty() {
            bail!("--nvcc-flag applies to a .cu file only");
        }
        PtxModule::load(&a.file)?
    };
    let kref = module.kernel(&a.entry).map_err(|e| {
        let names = entries(module.ptx());
        anyhow!("{e}; the module's entries: {}", if names.is_empty() { "none".into() } else { names.join(", ") })
    })?;
    crate::cli::emu::check_max_seconds(a.max_seconds)?;
    // The dumps may not replace what this command reads (the module, a buffer's file).
    if let Some(dir) = &a.dump {
        let mut inputs: Vec<&Path> = vec![&a.file];
        inputs.extend(a.args.iter().filter_map(|s| match s {
            ArgSpec::Buf { init: Init::File(p), .. } => Some(p.as_path()),
            _ => None,
        }));
        for i in 0..a.args.len() {
            attnjoule::files::refuse_overwrite("--dump", &dir.join(format!("arg{i}.npy")), &inputs)?;
        }
    }
    let dev = crate::cli::emu::emulator(a.no_sanitize, a.threads, a.max_seconds)?;
    let k = dev.kernel(&kref)?;
    // The arguments against the entry's .param list.
    if a.args.len() != k.params.len() {
        let list: Vec<String> = k.params.iter().map(|p| format!("{} {}", p.ty, p.name)).collect();
        bail!("{} takes {} parameters ({}), {} --arg given", a.entry, k.params.len(), list.join(", "), a.args.len());
    }
    for (i, (spec, p)) in a.args.iter().zip(&k.params).enumerate() {
        let (given, what) = match spec {
            ArgSpec::Buf { .. } => (8, "a buffer (a 64-bit address)".to_string()),
            ArgSpec::Scalar { ty, .. } => (ty.bytes(), format!("a scalar {}", ty.name())),
        };
        if given != p.size as usize {
            bail!("--arg {i}: parameter {i} `{}` is {} ({} bytes); {what} is {given} bytes", p.name, p.ty, p.size);
        }
    }
    let seed = a.seed.unwrap_or_else(attnjoule::reference::fresh_seed);
    let mut bufs: Vec<(usize, Elem, usize, DevBuf)> = Vec::new();
    let mut args: Vec<Vec<u8>> = Vec::new();
    for (i, spec) in a.args.iter().enumerate() {
        match spec {
            ArgSpec::Scalar { bytes, .. } => args.push(bytes.clone()),
            ArgSpec::Buf { ty, count, init } => {
                let bytes = count.checked_mul(ty.bytes()).ok_or_else(|| anyhow!("--arg {i}: buffer too large"))?;
                let b = DevBuf::new(&dev, bytes).with_context(|| format!("--arg {i}: allocating {bytes} bytes"))?;
                match init {
                    Init::Uninit => {}
                    Init::Zero => b.upload(0, &vec![0u8; bytes])?,
                    Init::Random => b.upload(0, &random(*ty, *count, seed.wrapping_add(i as u64)))?,
                    Init::File(p) => b.upload(0, &from_file(p, *ty, *count).with_context(|| format!("--arg {i}"))?)?,
                }
                args.push(b.addr().to_le_bytes().to_vec());
                bufs.push((i, *ty, *count, b));
            }
        }
    }
    let cfg = LaunchConfig { grid: a.grid.0, block: a.block.0, dynamic_shared_bytes: a.smem };
    let argv: Vec<&[u8]> = args.iter().map(|x| x.as_slice()).collect();
    let t = std::time::Instant::now();
    let report = dev.run_kernel(&kref, cfg, &argv).map_err(|e| {
        // A trap or fault names its PTX line; add the CUDA line it comes from.
        let msg = e.to_string();
        let line = msg.split("PTX line ").nth(1).and_then(|t| t.split(')').next()).and_then(|t| t.parse().ok());
        match line.and_then(|l| source_line(module.ptx(), l)) {
            Some(src) => anyhow!("{msg} at {src}"),
            None => anyhow!(msg),
        }
    })?;
    let seconds = t.elapsed().as_secs_f64();
    let mut dumped = Vec::new();
    if let Some(dir) = &a.dump {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for (i, ty, count, b) in &bufs {
        let mut data = vec![0u8; count * ty.bytes()];
        b.download(0, &mut data)?;
        let path = match &a.dump {
            Some(dir) => {
                if *ty == Elem::Bf16 {
                    data =
                        data.chunks(2).flat_map(|c| bf16::from_le_bytes([c[0], c[1]]).to_f32().to_le_bytes()).collect();
                }
                let p = dir.join(format!("arg{i}.npy"));
                attnjoule::files::write_atomic(&p, &npy(ty.npy_descr(), *count, &data))?;
                Some(p.display().to_string())
            }
            None => None,
        };
        dumped.push(BufSummary { arg: *i, ty: *ty, count: *count, dump: path });
    }
    let insts = report.counters.as_ref().map_or(0, thread_insts);
    let s = Summary {
        file: a.file.display().to_string(),
        entry: a.entry.clone(),
        grid: a.grid,
        block: a.block,
        smem: a.smem,
        seed,
        seconds,
        thread_instructions: insts,
        thread_instructions_per_second: insts as f64 / seconds.max(1e-9),
        findings_total: report.findings_total,
        launches: vec![LaunchSummary { kernel: a.entry.clone(), report }],
        buffers: dumped,
    };
    if a.json {
        outln!("{}", serde_json::to_string_pretty(&s)?);
    } else {
        outln!("{}::{} on {}", module.name(), a.entry, dev.name());
        outln!(
            "grid {:?} block {:?} dynamic shared {} B, seed {seed}; emulated in {seconds:.3} s: {insts} thread-instructions",
            s.grid.0, s.block.0, s.smem
        );
        outln!("sanitizer findings: {}", s.findings_total);
        print_launch(&s.launches[0], true, &|l| source_line(module.ptx(), l));
        for b in &s.buffers {
            if let Some(p) = &b.dump {
                outln!("  arg {}: {} x {} -> {p}", b.arg, b.count, b.ty.name());
            }
        }
    }
    if s.findings_total > 0 {
        // Findings are a result, not a failed run: reported above, signalled by the status
        // (unless the report itself was lost: then exit 1 with that error).
        crate::cli::out::finish().map_err(|e| anyhow!(e))?;
        std::process::exit(2);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn npy_round_trip() {
        let data: Vec<u8> = (0..12u32).flat_map(|x| (x as f32).to_le_bytes()).collect();
        let f = npy("<f4", 12, &data);
        assert_eq!(&f[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([f[8], f[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        assert_eq!(f[10 + hlen - 1], b'\n');
        assert_eq!(read_npy(&f, "<f4", 12).expect("read"), data);
        assert!(read_npy(&f, "<f4", 11).is_err());
        assert!(read_npy(&f, "<i4", 12).is_err());
    }

    #[test]
    fn source_lines_from_loc_directives() {
        let ptx = ".entry k()\n{\n\t.loc\t1 12 3\n\tmov.u32 %r1, 1;\n\t.loc\t2 40 1\n\tret;\n}\n\t.file\t1 \"/a/b/k.cu\"\n\t.file\t2 \"/inc/h.cuh\"\n";
        assert_eq!(source_line(ptx, 2), None);
        assert_eq!(source_line(ptx, 4).as_deref(), Some("k.cu:12"));
        assert_eq!(source_line(ptx, 6).as_deref(), Some("h.cuh:40"));
    }

    #[test]
    fn argument_specs() {
        assert!(matches!(
            ArgSpec::parse("buf:f32:1024"),
            Ok(ArgSpec::Buf { ty: Elem::F32, count: 1024, init: Init::Uninit })
        ));
        assert!(matches!(ArgSpec::parse("buf:bf16:8:random"), Ok(ArgSpec::Buf { init: Init::Random, .. })));
        assert!(matches!(ArgSpec::parse("buf:u8:8:file=x.npy"), Ok(ArgSpec::Buf { init: Init::File(_), .. })));
        assert!(ArgSpec::parse("buf:f32:0").is_err());
        assert!(ArgSpec::parse("buf:q32:4").is_err());
        assert!(ArgSpec::parse("buf:f32:4:ones").is_err());
        let ArgSpec::Scalar { bytes, .. } = ArgSpec::parse("i32:-5").expect("i32") else { panic!() };
        assert_eq!(bytes, (-5i32).to_le_bytes());
        let ArgSpec::Scalar { bytes, .. } = ArgSpec::parse("u64:0x10").expect("u64") else { panic!() };
        assert_eq!(bytes, 16u64.to_le_bytes());
        let ArgSpec::Scalar { bytes, .. } = ArgSpec::parse("bf16:1.5").expect("bf16") else { panic!() };
        assert_eq!(bytes, bf16::from_f32(1.5).to_le_bytes());
        assert!(ArgSpec::parse("u8:256").is_err());
        assert!(ArgSpec::parse("i8:-129").is_err());
        assert!(ArgSpec::parse("f32:abc").is_err());
        assert_eq!(parse_dim3("4,2").expect("dim").0, [4, 2, 1]);
        assert!(parse_dim3("4,0").is_err());
        assert!(parse_dim3("1,2,3,4").is_err());
    }
}
