//! Static facts about the compiled kernels: the parameter struct has one size on both sides, and
//! ptxas reported resources for every entry.

use attnjoule::kernels::MODULES;
use attnjoule::paged::params::PagedDecodeParams;
use attnjoule::params::AttnParams;

/// `.param .align 8 .b8 NAME[SIZE]` lines of an entry's parameter list, in order.
fn entry_params(ptx: &str, entry: &str) -> Vec<usize> {
    let start = ptx.find(&format!(".entry {entry}(")).unwrap_or_else(|| panic!("entry {entry} not in PTX"));
    let list = &ptx[start..start + ptx[start..].find(')').unwrap()];
    list.lines()
        .filter(|l| l.trim_start().starts_with(".param"))
        .map(|l| {
            if let Some(b) = l.find('[') {
                l[b + 1..l.find(']').unwrap()].parse().unwrap()
            } else if l.contains(".u64") || l.contains(".b64") || l.contains(".f64") || l.contains(".s64") {
                8
            } else {
                4
            }
        })
        .collect()
}

/// The serving-decode modules take the paged struct (attn_paged.h); every other product kernel
/// the shared AttnParams.
fn is_paged(module: &str) -> bool {
    module.starts_with("decode_paged")
}

#[test]
fn attention_entries_take_the_shared_struct_by_value() {
    let size = std::mem::size_of::<AttnParams>();
    assert_eq!(size, 232, "the header promises 232 bytes without padding");
    let paged = std::mem::size_of::<PagedDecodeParams>();
    assert_eq!(paged, 216, "attn_paged.h promises 216 bytes without padding");
    let (mut checked, mut checked_paged) = (0, 0);
    for m in MODULES.iter().filter(|m| !m.test_only) {
        for e in m.entries {
            let want = if is_paged(m.name) { paged } else { size };
            assert_eq!(entry_params(m.ptx, e.name), vec![want], "{}::{} .param list", m.name, e.name);
            if is_paged(m.name) {
                checked_paged += 1;
            } else {
                checked += 1;
            }
        }
    }
    assert!(checked >= 3, "expected at least the three dense entries, found {checked}");
    assert_eq!(checked_paged, 2 * 16 + 2, "paged split entries (bf16, fp8) and the two combines");
}

#[test]
fn ptxas_reported_every_entry() {
    for m in MODULES {
        assert!(!m.entries.is_empty(), "module {} has no entries in the ptxas report", m.name);
        for e in m.entries {
            assert!(e.registers > 0, "{}::{} has no register count", m.name, e.name);
            assert!(m.ptx.contains(&format!(".entry {}(", e.name)), "{} not in {}'s PTX", e.name, m.name);
        }
    }
}

#[test]
fn dense_kernels_do_not_spill() {
    let m = attnjoule::kernels::module("dense").unwrap();
    for e in m.entries {
        assert_eq!((e.spill_store_bytes, e.spill_load_bytes, e.stack_bytes), (0, 0, 0), "{}", e.name);
    }
}
