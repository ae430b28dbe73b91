//! The kernel modules build.rs compiled with nvcc, embedded in the crate: PTX (executed by the
//! emulator, JIT fallback on GPU), the sm_90a cubin (loaded on GPU), SASS text and ptxas resources;
//! and modules loaded at run time ([`PtxModule`]: PTX text or a `.cu` compiled with the same nvcc).
//! A [`KernelRef`] names an entry of either.

/// ptxas's resource report for one kernel entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryResources {
    pub name: &'static str,
    pub registers: u32,
    pub barriers: u32,
    pub shared_bytes: u32,
    pub stack_bytes: u32,
    pub spill_store_bytes: u32,
    pub spill_load_bytes: u32,
}

/// One `.cu` file's compiled outputs.
#[derive(Debug)]
pub struct KernelModule {
    pub name: &'static str,
    /// Compiled from `kernels/test/`: unit-test and planted-bug kernels, not product.
    pub test_only: bool,
    pub ptx: &'static str,
    pub cubin: &'static [u8],
    /// `cuobjdump -sass` of the cubin (None when cuobjdump was not available at build time).
    pub sass: Option<&'static str>,
    /// ptxas messages that a Hopper kernel lost its asynchrony (wgmma serialized, waits injected,
    /// setmaxnreg ignored). build.rs fails on any outside the deliberately broken test modules,
    /// so this is empty for every product module.
    pub diagnostics: &'static [&'static str],
    pub entries: &'static [EntryResources],
}

include!(concat!(env!("OUT_DIR"), "/kernels.rs"));

use crate::error::{Error, Result};
use crate::toolchain;
use std::borrow::Cow;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

impl KernelModule {
    /// The SASS of one entry (its `Function : NAME` section of `cuobjdump -sass`), when
    /// cuobjdump was there at build time.
    pub fn sass_of(&self, entry: &str) -> Option<&'static str> {
        let sass = self.sass?;
        let header = format!("Function : {entry}\n");
        let start = sass.find(&header)? + header.len();
        let body = &sass[start..];
        Some(&body[..body.find("Function : ").unwrap_or(body.len())])
    }
}

/// Registers per role of a warp-specialized entry, from its SASS: the budget `setmaxnreg.dec`
/// leaves the warpgroup that gives registers back (USETMAXREG.DEALLOC: the producer) and the one
/// `setmaxnreg.inc` raises the others to (USETMAXREG.TRY_ALLOC: the consumers). None when the
/// entry sets no budgets. ptxas's own count (`EntryResources::registers`) is the allocation at
/// entry, before either.
pub fn register_roles(sass: &str) -> Option<(u32, u32)> {
    let budget = |op: &str| {
        // "USETMAXREG.DEALLOC.CTAPOOL 0x18 ;  /* encoding */": the last immediate before ';'.
        let line = sass.lines().find(|l| l.contains(op))?;
        let operands = line.split(';').next()?;
        u32::from_str_radix(operands.rsplit("0x").next()?.trim(), 16).ok()
    };
    Some((budget("USETMAXREG.DEALLOC")?, budget("USETMAXREG.TRY_ALLOC")?))
}

#[cfg(test)]
mod tests {
    #[test]
    fn register_roles_read_the_operands_not_the_encoding() {
        let sass =
            "        /*02c0*/                   USETMAXREG.TRY_ALLOC.CTAPOOL UP0, 0xf0 ;   /* 0x000000f0000079c8 */\n\
                    /*9720*/                   USETMAXREG.DEALLOC.CTAPOOL 0x18 ;          /* 0x00000018000079c8 */\n";
        assert_eq!(super::register_roles(sass), Some((24, 240)));
        assert_eq!(super::register_roles("HGMMA.64x128x16.F32.BF16 R24, gdesc[UR20], RZ ;"), None);
    }
}

/// The module compiled from `kernels/<name>.cu` (or `kernels/test/<name>.cu`).
pub fn module(name: &str) -> Result<&'static KernelModule> {
    MODULES.iter().find(|m| m.name == name).ok_or_else(|| Error::KernelNotFound(format!("module {name}")))
}

/// Largest PTX file [`PtxModule::load`] reads (nvcc's PTX of a large module is a few MiB).
pub const MAX_PTX_BYTES: u64 = 64 << 20;

/// PTX loaded at run time: a module from outside the crate (PTX text, or a `.cu` file compiled
/// with the pinned nvcc by [`compile_cu`]). The emulator lowers it like an embedded module; the
/// CUDA backend JIT-compiles it.
#[derive(Debug)]
pub struct PtxModule {
    name: String,
    ptx: String,
    /// Unique per loaded module in this process (the devices' module caches key on it).
    id: u64,
}

impl PtxModule {
    /// A module from PTX text; `name` is for messages.
    pub fn from_ptx(name: impl Into<String>, ptx: impl Into<String>) -> Arc<PtxModule> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Arc::new(PtxModule { name: name.into(), ptx: ptx.into(), id: NEXT.fetch_add(1, Ordering::Relaxed) })
    }
    /// A `.ptx` file, or a `.cu` file compiled with [`compile_cu`] (no extra flags).
    pub fn load(path: &Path) -> Result<Arc<PtxModule>> {
        if path.extension().is_some_and(|e| e == "cu") {
            return compile_cu(path, &[]);
        }
        // Bounded: the largest PTX nvcc writes for one module is a few MiB.
        let text = crate::files::read_text(path, MAX_PTX_BYTES, "PTX file")?;
        Ok(Self::from_ptx(path.display().to_string(), text))
    }
    pub fn name(&self) -> &str {
        &self.name
    }
    pub fn ptx(&self) -> &str {
        &self.ptx
    }
    /// The entry `entry` of this module (its name as the PTX spells it: extern "C" or mangled).
    pub fn kernel(self: &Arc<Self>, entry: &str) -> Result<KernelRef> {
        if !declares_entry(&self.ptx, entry) {
            return Err(Error::KernelNotFound(format!("{}::{entry} (no such .entry in the PTX)", self.name)));
        }
        Ok(KernelRef { src: Source::Loaded(self.clone()), entry: Cow::Owned(entry.to_string()) })
    }
}

/// Whether `ptx` declares `.entry name(`.
fn declares_entry(ptx: &str, entry: &str) -> bool {
    ptx.match_indices(".entry").any(|(i, _)| {
        let rest = ptx[i + ".entry".len()..].trim_start();
        rest.strip_prefix(entry).is_some_and(|r| r.trim_start().starts_with('('))
    })
}

/// Compiles a CUDA file to PTX with the nvcc that build.rs uses (found by the same rules,
/// [`crate::toolchain`]; the build's own when they find none), for the same target and with the
/// same flags as the crate's kernels, plus `extra` (`-I`, `-D` ...).
pub fn compile_cu(path: &Path, extra: &[String]) -> Result<Arc<PtxModule>> {
    let nvcc = toolchain::find_nvcc(false)
        .or_else(|e| Path::new(NVCC_PATH).is_file().then(|| NVCC_PATH.into()).ok_or(e))
        .map_err(Error::Toolchain)?;
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let out = std::env::temp_dir().join(format!(
        "attnjoule-{}-{}.ptx",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let mut c = std::process::Command::new(&nvcc);
    c.arg(toolchain::ARCH).args(toolchain::FLAGS).args(extra).arg("-ptx").arg("-o").arg(&out).arg(path);
    let res = toolchain::run_checked(&mut c);
    let text = std::fs::read_to_string(&out);
    let _ = std::fs::remove_file(&out);
    res.map_err(Error::Toolchain)?;
    let text = text.map_err(|err| Error::Io { path: out.display().to_string(), err })?;
    Ok(PtxModule::from_ptx(path.display().to_string(), text))
}

/// Where a kernel's module comes from.
#[derive(Debug, Clone)]
enum Source {
    Embedded(&'static KernelModule),
    Loaded(Arc<PtxModule>),
}

/// A module's identity, for caches of loaded (or lowered) modules.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ModuleKey {
    Embedded(&'static str),
    Loaded(u64),
}

/// A kernel entry: its module (embedded by build.rs, or loaded at run time) and the entry's
/// (extern "C" or mangled) name. Cheap to clone.
#[derive(Debug, Clone)]
pub struct KernelRef {
    src: Source,
    entry: Cow<'static, str>,
}

impl KernelRef {
    /// An entry of an embedded module.
    pub fn new(module: &str, entry: &str) -> Result<Self> {
        let m = self::module(module)?;
        let e = m
            .entries
            .iter()
            .find(|e| e.name == entry)
            .ok_or_else(|| Error::KernelNotFound(format!("{module}::{entry}")))?;
        Ok(KernelRef { src: Source::Embedded(m), entry: Cow::Borrowed(e.name) })
    }
    /// An entry of a module given as a static table that is not one of build.rs's (a module a
    /// test generates and leaks); the entry must be declared in its PTX.
    pub fn in_module(module: &'static KernelModule, entry: &str) -> Result<Self> {
        if !declares_entry(module.ptx, entry) {
            return Err(Error::KernelNotFound(format!("{}::{entry} (no such .entry in the PTX)", module.name)));
        }
        Ok(KernelRef { src: Source::Embedded(module), entry: Cow::Owned(entry.to_string()) })
    }
    pub fn entry(&self) -> &str {
        &self.entry
    }
    pub fn module_name(&self) -> &str {
        match &self.src {
            Source::Embedded(m) => m.name,
            Source::Loaded(m) => &m.name,
        }
    }
    pub fn module_key(&self) -> ModuleKey {
        match &self.src {
            Source::Embedded(m) => ModuleKey::Embedded(m.name),
            Source::Loaded(m) => ModuleKey::Loaded(m.id),
        }
    }
    /// The module's PTX text.
    pub fn ptx(&self) -> &str {
        match &self.src {
            Source::Embedded(m) => m.ptx,
            Source::Loaded(m) => &m.ptx,
        }
    }
    /// The embedded module (with its cubin, SASS and ptxas resources), if it is one.
    pub fn embedded(&self) -> Option<&'static KernelModule> {
        match &self.src {
            Source::Embedded(m) => Some(m),
            Source::Loaded(_) => None,
        }
    }
    /// ptxas's resources of an embedded entry.
    pub fn resources(&self) -> Option<&'static EntryResources> {
        self.embedded()?.entries.iter().find(|e| e.name == self.entry)
    }
}
