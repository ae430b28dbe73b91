//! The README opens with the answer: its table is what the main command prints, its picture is
//! what the main command plots, and the main command writes nothing tracked.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_attnjoule");

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The Wh-per-phrase table of `attnjoule estimate` (from its title line to the blank line).
fn table(stdout: &str) -> String {
    let lines: Vec<&str> =
        stdout.lines().skip_while(|l| !l.starts_with("Wh per ")).take_while(|l| !l.trim().is_empty()).collect();
    assert!(lines.len() > 3, "no Wh table in:\n{stdout}");
    lines.iter().map(|l| format!("{l}\n")).collect()
}

#[test]
fn the_readme_table_is_what_the_main_command_prints() {
    // README: `cargo run --release -- estimate`.
    let out = Command::new(BIN).args(["estimate", "--no-plot"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let table = table(&String::from_utf8_lossy(&out.stdout));
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```text\n{table}```")),
        "README.md's table differs from `cargo run --release -- estimate`; paste this in its place:\n{table}"
    );
    // It opens the README: before any section heading.
    assert!(readme.find(&table) < readme.find("\n## "), "the table opens the README");
    assert!(readme[..readme.find("\n## ").unwrap()].contains("analytical"), "labeled analytical");
}

/// The calibrated table is what `estimate --calibration` prints, and the fit's figures quoted in
/// the prose are the report's.
#[test]
fn the_readme_calibrated_table_and_fit_are_what_the_command_prints() {
    let file = root().join("profiles/calibration/h100-serving.csv");
    let out = Command::new(BIN)
        .args(["estimate", "--no-plot", "--calibration-report", "--calibration"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let table = table(&stdout);
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    assert!(
        readme.contains(&format!("```text\n{table}```")),
        "README.md's calibrated table differs from `estimate --calibration {}`; paste:\n{table}",
        file.display()
    );
    let number = |after: &str| -> f64 {
        let at = stdout.find(after).unwrap_or_else(|| panic!("{after:?} in:\n{stdout}")) + after.len();
        stdout[at..].split(|c: char| !(c.is_ascii_digit() || c == '.')).next().unwrap().parse().unwrap()
    };
    let rms = number("rms log error ");
    let median = number("other models' points): median |log error| ");
    let pct = (100.0 * (median.exp() - 1.0)).round();
    for quote in [format!("rms log error of {rms:.2}"), format!("median error of {pct}%")] {
        assert!(readme.replace('\n', " ").contains(&quote), "README.md should say {quote:?}");
    }
}

#[test]
fn the_readme_picture_is_what_the_main_command_plots() {
    let dir = std::env::temp_dir().join(format!("attnjoule-readme-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let svg = dir.join("estimate.svg");
    let out = Command::new(BIN).args(["estimate", "--plot"]).arg(&svg).output().unwrap();
    assert!(out.status.success());
    let fresh = std::fs::read_to_string(&svg).unwrap();
    let docs = std::fs::read_to_string(root().join("docs/estimate.svg")).unwrap();
    assert!(fresh == docs, "docs/estimate.svg is stale: cargo run --release -- estimate --plot docs/estimate.svg");
    assert!(std::fs::read_to_string(root().join("README.md")).unwrap().contains("](docs/estimate.svg)"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_main_command_writes_only_under_target() {
    // Run where a fresh clone's root would be: the default plot lands in cargo's ignored target/.
    let dir = std::env::temp_dir().join(format!("attnjoule-readme-cwd-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let out = Command::new(BIN).arg("estimate").current_dir(&dir).output().unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("plot: target/estimate.svg"));
    let made: Vec<String> =
        std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    assert_eq!(made, vec!["target".to_string()], "only target/ is written");
    assert!(dir.join("target/estimate.svg").is_file());
    let ignore = std::fs::read_to_string(root().join(".gitignore")).unwrap();
    assert!(ignore.lines().any(|l| l == "/target"), "target/ is ignored");
    assert!(!root().join("estimate.svg").exists(), "no generated plot at the repository root");
    let _ = std::fs::remove_dir_all(&dir);
}
