//! The kernel modules build.rs compiled with nvcc, embedded in the crate: PTX (executed by the
//! emulator, JIT fallback on GPU), the sm_90a cubin (loaded on GPU), SASS text and ptxas resources.

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
pub fn module(name: &str) -> crate::Result<&'static KernelModule> {
    MODULES.iter().find(|m| m.name == name).ok_or_else(|| crate::Error::KernelNotFound(format!("module {name}")))
}

/// A kernel entry: module plus the entry's (extern "C" or mangled) name.
#[derive(Debug, Clone, Copy)]
pub struct KernelRef {
    pub module: &'static KernelModule,
    pub entry: &'static str,
}

impl KernelRef {
    pub fn new(module: &str, entry: &str) -> crate::Result<Self> {
        let m = self::module(module)?;
        let e = m
            .entries
            .iter()
            .find(|e| e.name == entry)
            .ok_or_else(|| crate::Error::KernelNotFound(format!("{module}::{entry}")))?;
        Ok(KernelRef { module: m, entry: e.name })
    }
    pub fn resources(&self) -> Option<&'static EntryResources> {
        self.module.entries.iter().find(|e| e.name == self.entry)
    }
}
