//! Static facts about the compiled kernels: the parameter struct has one size on both sides, and
//! ptxas reported resources for every entry.

use attnjoule::kernels::MODULES;
use attnjoule::params::AttnParams;

/// `.param .align A .b8 NAME[SIZE]` lines of an entry's parameter list, in order: (size, align).
fn entry_params(ptx: &str, entry: &str) -> Vec<(usize, usize)> {
    let start = ptx.find(&format!(".entry {entry}(")).unwrap_or_else(|| panic!("entry {entry} not in PTX"));
    let list = &ptx[start..start + ptx[start..].find(')').unwrap()];
    list.lines()
        .filter(|l| l.trim_start().starts_with(".param"))
        .map(|l| {
            let align = l.split(".align").nth(1).and_then(|a| a.split_whitespace().next()?.parse().ok());
            if let Some(b) = l.find('[') {
                (l[b + 1..l.find(']').unwrap()].parse().unwrap(), align.unwrap_or(1))
            } else if l.contains(".u64") || l.contains(".b64") || l.contains(".f64") || l.contains(".s64") {
                (8, 8)
            } else {
                (4, 4)
            }
        })
        .collect()
}

#[test]
fn attention_entries_take_the_shared_struct_by_value() {
    let size = std::mem::size_of::<AttnParams>();
    assert_eq!(size, 256, "the header promises 256 bytes without padding");
    let mut checked = 0;
    for m in MODULES.iter().filter(|m| !m.test_only) {
        for e in m.entries {
            let params = entry_params(m.ptx, e.name);
            assert_eq!(params[0], (size, 8), "{}::{} takes AttnParams first", m.name, e.name);
            if m.name.starts_with("flash_hopper") {
                // Then the tensor maps of Q, K, V and O: CUtensorMap, 128 bytes, 64-byte aligned
                // at least (nvcc declares 128).
                assert_eq!(params.len(), 5, "{}::{} .param list {params:?}", m.name, e.name);
                for &(bytes, align) in &params[1..] {
                    assert_eq!(bytes, 128, "{}::{} tensor map", m.name, e.name);
                    assert!(align >= 64 && align % 64 == 0, "{}::{} tensor map aligned {align}", m.name, e.name);
                }
            } else {
                assert_eq!(params.len(), 1, "{}::{} .param list {params:?}", m.name, e.name);
            }
            checked += 1;
        }
    }
    assert!(checked >= 3 + 24, "expected at least the dense and the 24 Hopper entries, found {checked}");
}

#[test]
fn ptxas_asynchrony_diagnostics_reach_the_table_and_no_product_module_has_any() {
    // build.rs fails on these outside the allow-listed broken module; that module must show
    // them, or the build's check is blind (a reworded message, a changed code).
    let broken = attnjoule::kernels::module("sm90_broken").unwrap();
    for code in ["(C7508)", "(C7511)", "(C7517)", "(C7519)"] {
        assert!(broken.diagnostics.iter().any(|d| d.contains(code)), "{code} not seen: {:#?}", broken.diagnostics);
    }
    for m in MODULES.iter().filter(|m| m.name != "sm90_broken") {
        assert!(m.diagnostics.is_empty(), "{}: {:#?}", m.name, m.diagnostics);
    }
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
