//! Seed corpora for the fuzz targets: `cargo run --release --bin seed_corpus` (from fuzz/) writes
//! every kernel entry of the crate's own PTX (with its module's header) to corpus/ptx_lower/ and
//! the bundled and test profiles to corpus/profile_read/.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let ptx = here.join("corpus/ptx_lower");
    std::fs::create_dir_all(&ptx)?;
    let mut n = 0;
    for m in attnjoule::kernels::MODULES {
        let starts: Vec<usize> = m.ptx.match_indices(".visible .entry").map(|(i, _)| i).collect();
        let Some(&first) = starts.first() else { continue };
        for (k, &s) in starts.iter().enumerate() {
            let e = starts.get(k + 1).copied().unwrap_or(m.ptx.len());
            std::fs::write(ptx.join(format!("{}-{k}.ptx", m.name)), format!("{}{}", &m.ptx[..first], &m.ptx[s..e]))?;
            n += 1;
        }
    }
    let prof = here.join("corpus/profile_read");
    std::fs::create_dir_all(&prof)?;
    let mut p = 0;
    for dir in ["../profiles", "../tests/data"] {
        for e in std::fs::read_dir(here.join(dir))? {
            let path = e?.path();
            if path.extension().is_some_and(|x| x == "json") {
                std::fs::copy(&path, prof.join(path.file_name().expect("a file")))?;
                p += 1;
            }
        }
    }
    println!("{n} PTX entries in {}, {p} profiles in {}", ptx.display(), prof.display());
    Ok(())
}
