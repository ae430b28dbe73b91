//! Compiles every `kernels/*.cu` (and the test-only `kernels/test/*.cu`) with nvcc for sm_90a into a
//! cubin (with ptxas's resource report) and PTX, dumps the SASS when cuobjdump is there, and writes
//! `kernels.rs` (an embedded table of modules) and `attn_params.rs`, `attn_paged.rs` (bindgen) into
//! OUT_DIR.
//!
//! nvcc is found by the rules of `src/toolchain.rs` (shared with the library, which compiles `.cu`
//! files at run time with the same compiler): $NVCC, $CUDA_HOME/bin, $CUDA_PATH/bin, PATH, the
//! project's toolchain cache; failing all, `scripts/install-cuda-toolchain.sh` installs the pinned
//! CUDA 13.0 wheels once (opt out with ATTNJOULE_NO_TOOLCHAIN_INSTALL=1). A kernel is recompiled
//! only when its source, a header it includes (from nvcc's own dependency list) or the flags change.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::{env, fs, thread};

#[allow(dead_code)]
#[path = "src/toolchain.rs"]
mod toolchain;
use toolchain::{cache_prefix, install_toolchain, run_checked, ARCH};

/// Modules whose kernels are broken on purpose (tests check that the diagnostics below are seen):
/// the only ones allowed to build with them.
const MAY_SERIALIZE: &[&str] = &["sm90_broken"];

fn main() {
    for var in toolchain::ENV.iter().chain(&["LIBCLANG_PATH"]) {
        println!("cargo:rerun-if-env-changed={var}");
    }
    println!("cargo:rerun-if-changed=kernels");
    println!("cargo:rerun-if-changed=src/toolchain.rs");
    println!("cargo:rerun-if-changed=scripts/install-cuda-toolchain.sh");
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let flags: Vec<&str> = toolchain::FLAGS.iter().copied().chain(["-Ikernels/include"]).collect();

    let nvcc = toolchain::find_nvcc(true).unwrap_or_else(|e| fail(&e));
    let bin = nvcc.parent().unwrap().to_path_buf();
    let version = run_text(Command::new(&nvcc).arg("--version")).unwrap_or_default();
    let version = version.lines().rev().find(|l| l.contains("release")).unwrap_or("?").trim().to_string();
    let cuobjdump = [bin.join("cuobjdump")].into_iter().find(|p| p.exists());

    let mut sources: Vec<(PathBuf, bool)> = Vec::new();
    for (dir, test_only) in [("kernels", false), ("kernels/test", true)] {
        let Ok(rd) = fs::read_dir(dir) else { continue };
        let mut v: Vec<_> =
            rd.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "cu")).collect();
        v.sort();
        sources.extend(v.into_iter().map(|p| (p, test_only)));
    }

    // Two cores here: a bounded pool of nvcc processes, one per kernel file at a time.
    let jobs = thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    let mut modules = Vec::new();
    for chunk in sources.chunks(jobs) {
        let handles: Vec<_> = chunk
            .iter()
            .map(|(src, t)| {
                let (src, t, nvcc, out, cuobjdump) = (src.clone(), *t, nvcc.clone(), out.clone(), cuobjdump.clone());
                let flags = flags.clone();
                thread::spawn(move || compile(&nvcc, &flags, &src, t, &out, cuobjdump.as_deref()))
            })
            .collect();
        for h in handles {
            let m = h.join().unwrap().unwrap_or_else(|e| fail(&e));
            let diags = hopper_diagnostics(&m.ptxas_log);
            if !diags.is_empty() && !MAY_SERIALIZE.contains(&m.name.as_str()) {
                fail(&format!(
                    "ptxas on kernels{}/{}.cu: wgmma serialized or setmaxnreg ignored (a Hopper kernel would run at \
                     a fraction of its speed):\n  {}",
                    if m.test_only { "/test" } else { "" },
                    m.name,
                    diags.join("\n  ")
                ));
            }
            modules.push(m);
        }
    }
    write_table(&out, &nvcc, &version, &modules);
    bindgen_params(&out, &nvcc);
}

struct Module {
    name: String,
    test_only: bool,
    has_sass: bool,
    ptxas_log: String,
}

fn compile(
    nvcc: &Path,
    flags: &[&str],
    src: &Path,
    test_only: bool,
    out: &Path,
    cuobjdump: Option<&Path>,
) -> Result<Module, String> {
    let name = src.file_stem().unwrap().to_string_lossy().into_owned();
    let (cubin, ptx, log, dep, sass, stamp) = (
        out.join(format!("{name}.cubin")),
        out.join(format!("{name}.ptx")),
        out.join(format!("{name}.ptxas.txt")),
        out.join(format!("{name}.d")),
        out.join(format!("{name}.sass")),
        out.join(format!("{name}.stamp")),
    );
    let key = fingerprint(nvcc, flags, src, &dep);
    let fresh = fs::read_to_string(&stamp).ok().is_some_and(|s| s == key) && cubin.exists() && ptx.exists();
    if !fresh {
        let mut c = Command::new(nvcc);
        c.arg(ARCH)
            .args(flags)
            .args(["-cubin", "-Xptxas", "-v", "-MD", "-MF"])
            .arg(&dep)
            .arg("-o")
            .arg(&cubin)
            .arg(src);
        let report = run_checked(&mut c)?;
        fs::write(&log, report).map_err(|e| e.to_string())?;
        let mut c = Command::new(nvcc);
        c.arg(ARCH).args(flags).arg("-ptx").arg("-o").arg(&ptx).arg(src);
        run_checked(&mut c)?;
        if let Some(tool) = cuobjdump {
            let text = run_text(Command::new(tool).arg("-sass").arg(&cubin)).unwrap_or_default();
            fs::write(&sass, compact_sass(&text)).map_err(|e| e.to_string())?;
        }
        fs::write(&stamp, fingerprint(nvcc, flags, src, &dep)).map_err(|e| e.to_string())?;
    }
    Ok(Module { name, test_only, has_sass: sass.exists(), ptxas_log: fs::read_to_string(&log).unwrap_or_default() })
}

/// cuobjdump's SASS without the instruction encodings (a `/* 0x... */` comment after each
/// instruction and a line of its own for the second word): the text every test and tool reads,
/// at about a fifth of the size that every binary embeds.
fn compact_sass(text: &str) -> String {
    let mut out = String::with_capacity(text.len() / 4);
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("/* 0x") {
            continue;
        }
        let code = match line.rfind("/* 0x") {
            Some(i) if i > 0 => &line[..i],
            _ => line,
        };
        out.push_str(code.trim_end());
        out.push('\n');
    }
    out
}

/// Hash of the flags, the compiler path, the source and every project header nvcc listed as a
/// dependency last time (system headers are covered by the compiler path).
fn fingerprint(nvcc: &Path, flags: &[&str], src: &Path, dep: &Path) -> String {
    let mut h = DefaultHasher::new();
    // The outputs' format too (SASS without encodings), so that a change of it rebuilds.
    (ARCH, flags, nvcc, "sass-compact").hash(&mut h);
    fs::read(src).unwrap_or_default().hash(&mut h);
    let deps = fs::read_to_string(dep).unwrap_or_default();
    let mut files: Vec<&str> =
        deps.split_whitespace().filter(|t| t.contains("kernels/") && !t.ends_with(':')).collect();
    files.sort();
    files.dedup();
    for f in files {
        (f, fs::read(f).unwrap_or_default()).hash(&mut h);
    }
    format!("{:016x}", h.finish())
}

fn write_table(out: &Path, nvcc: &Path, version: &str, modules: &[Module]) {
    let mut s = String::from("// @generated by build.rs\n");
    s += &format!(
        "pub const NVCC_PATH: &str = {:?};\npub const NVCC_VERSION: &str = {:?};\n",
        nvcc.display().to_string(),
        version
    );
    s += "pub static MODULES: &[KernelModule] = &[\n";
    for m in modules {
        let n = &m.name;
        let sass = if m.has_sass {
            format!("Some(include_str!(concat!(env!(\"OUT_DIR\"), \"/{n}.sass\")))")
        } else {
            "None".into()
        };
        s += &format!(
            "  KernelModule {{ name: {n:?}, test_only: {}, ptx: include_str!(concat!(env!(\"OUT_DIR\"), \"/{n}.ptx\")), \
             cubin: include_bytes!(concat!(env!(\"OUT_DIR\"), \"/{n}.cubin\")), sass: {sass}, diagnostics: &[\n",
            m.test_only
        );
        for d in hopper_diagnostics(&m.ptxas_log) {
            s += &format!("    {d:?},\n");
        }
        s += "  ], entries: &[\n";
        for e in parse_ptxas(&m.ptxas_log) {
            s += &format!(
                "    EntryResources {{ name: {:?}, registers: {}, barriers: {}, shared_bytes: {}, stack_bytes: {}, spill_store_bytes: {}, spill_load_bytes: {} }},\n",
                e.0, e.1[0], e.1[1], e.1[2], e.1[3], e.1[4], e.1[5]
            );
        }
        s += "  ] },\n";
    }
    s += "];\n";
    fs::write(out.join("kernels.rs"), s).unwrap();
}

/// The ptxas messages that mean a Hopper kernel lost its asynchrony: wgmma serialized (C7510..C7515
/// family: "Potential Performance Loss: wgmma.mma_async instructions are serialized due to ..."),
/// waits or arrives the compiler had to inject around wgmma registers (C7517, C7519), setmaxnreg
/// ignored (C7508). ptxas prints them as "info" lines with a (C75xx) code; both the codes and the
/// texts are matched, so a reworded message with a known code (or the reverse) is still caught.
fn hopper_diagnostics(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            let code = l.find("(C75").and_then(|i| l.get(i + 4..i + 6)).and_then(|c| c.parse::<u32>().ok());
            code.is_some_and(|c| (8..=20).contains(&c))
                || l.contains("Potential Performance Loss")
                || l.contains("is injected in around line")
        })
        .map(|l| l.split_once(": ").map_or(l, |(_, rest)| rest).trim().to_string())
        .collect()
}

/// ptxas -v: per entry [registers, barriers, smem bytes, stack frame, spill stores, spill loads].
fn parse_ptxas(log: &str) -> Vec<(String, [u64; 6])> {
    let mut v: Vec<(String, [u64; 6])> = Vec::new();
    let num_before = |line: &str, word: &str| -> u64 {
        let toks: Vec<&str> = line.split(|c: char| c.is_whitespace() || c == ',').filter(|t| !t.is_empty()).collect();
        // the nearest number before the word: "14 registers", "512 bytes smem"
        let i = toks.iter().position(|t| t.starts_with(word)).unwrap_or(0);
        toks[..i].iter().rev().find_map(|t| t.parse().ok()).unwrap_or(0)
    };
    let mut current: Option<usize> = None;
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or("").to_string();
            v.push((name, [0; 6]));
            current = Some(v.len() - 1);
        } else if let Some(rest) = line.split("Function properties for ").nth(1) {
            current = v.iter().position(|e| e.0 == rest.trim());
        } else if let Some(i) = current {
            let r = &mut v[i].1;
            if line.contains("stack frame") {
                // "S bytes stack frame, T bytes spill stores, L bytes spill loads"
                let first = |part: &str| part.split_whitespace().next().and_then(|t| t.parse().ok()).unwrap_or(0);
                let parts: Vec<&str> = line.split(',').collect();
                r[3] = first(parts[0]);
                r[4] = parts.get(1).map_or(0, |p| first(p));
                r[5] = parts.get(2).map_or(0, |p| first(p));
            } else if line.contains("Used") && line.contains("registers") {
                r[0] = num_before(line, "registers");
                r[1] = num_before(line, "barriers");
                r[2] = num_before(line, "smem");
            }
        }
    }
    v
}

/// The structs shared with Rust: (header, output file, types, constants).
const BOUND_HEADERS: [(&str, &str, &str, &str); 2] = [
    ("kernels/include/attn_params.h", "attn_params.rs", "AttnParams", "ATTN_.*"),
    ("kernels/include/attn_paged.h", "attn_paged.rs", "Paged.*", "ATTN_KV_.*"),
];

fn bindgen_params(out: &Path, nvcc: &Path) {
    if env::var_os("LIBCLANG_PATH").is_none() {
        if let Some(dir) = find_libclang(nvcc) {
            // SAFETY: build scripts are single-threaded at this point (all nvcc threads joined).
            unsafe { env::set_var("LIBCLANG_PATH", dir) };
        }
    }
    for (header, file, types, vars) in BOUND_HEADERS {
        let bindings = bindgen::Builder::default()
            .header(header)
            .allowlist_type(types)
            .allowlist_var(vars)
            .derive_default(true)
            .derive_debug(true)
            .derive_copy(true)
            .derive_eq(true)
            .layout_tests(true)
            .generate()
            .unwrap_or_else(|e| fail(&format!("bindgen on {header} failed: {e}")));
        bindings.write_to_file(out.join(file)).unwrap();
    }
}

/// libclang for bindgen: the toolchain cache's wheel, else a system one, else install the wheels.
fn find_libclang(nvcc: &Path) -> Option<PathBuf> {
    let in_cache = |root: &Path| root.join("clang/native/libclang.so").exists().then(|| root.join("clang/native"));
    // nvcc from the cache lives at <prefix>/nvidia/cu13/bin/nvcc
    if let Some(d) = nvcc.ancestors().nth(4).and_then(in_cache) {
        return Some(d);
    }
    if let Some(d) = in_cache(&cache_prefix()) {
        return Some(d);
    }
    for pat in [
        "/usr/lib/llvm-18/lib",
        "/usr/lib/llvm-17/lib",
        "/usr/lib/llvm-16/lib",
        "/usr/lib/llvm-15/lib",
        "/usr/lib/llvm-14/lib",
        "/usr/lib/x86_64-linux-gnu",
    ] {
        let p = Path::new(pat);
        if fs::read_dir(p)
            .ok()?
            .filter_map(|e| e.ok())
            .any(|e| e.file_name().to_string_lossy().starts_with("libclang.so"))
        {
            return Some(p.to_path_buf());
        }
    }
    install_toolchain().ok().and_then(|p| in_cache(&p))
}

fn run_text(c: &mut Command) -> Option<String> {
    c.output().ok().filter(|o| o.status.success()).map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    panic!("attnjoule build failed: {msg}");
}
