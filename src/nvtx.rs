//! NVTX ranges around measured regions, for Nsight Systems / Nsight Compute (`ncu --nvtx
//! --nvtx-include`). cudarc loads libnvToolsExt at run time and panics when it is absent, so the
//! library is probed once; without it ranges are no-ops (and `attnjoule ncu` warns).

use std::sync::OnceLock;

/// Whether libnvToolsExt loads (probed once, never panics).
pub fn available() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        // SAFETY: only tries to dlopen candidate library names.
        std::panic::catch_unwind(|| unsafe { cudarc::nvtx::sys::is_culib_present() }).unwrap_or(false)
    })
}

/// A pushed range, popped on drop.
#[must_use = "the range ends when this is dropped"]
pub struct Range {
    pushed: bool,
}

/// Pushes a range named `name` on this thread's NVTX stack (no-op without the library).
pub fn range(name: &str) -> Range {
    let pushed = available() && cudarc::nvtx::result::range_push(name) >= 0;
    Range { pushed }
}

impl Drop for Range {
    fn drop(&mut self) {
        if self.pushed {
            cudarc::nvtx::result::range_pop();
        }
    }
}

/// The range name of a measured point: "attnjoule/<variant>/<phase>/ctx=<n>/q=<m>".
pub fn point_name(variant: &str, phase: &str, ctx: usize, seq_q: usize) -> String {
    format!("attnjoule/{variant}/{phase}/ctx={ctx}/q={seq_q}")
}
