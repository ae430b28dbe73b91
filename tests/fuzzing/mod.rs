//! The mutation engine of tests/fuzz.rs: seeded, time-bounded runs of mutated inputs, each case in
//! a thread of its own so that a panic is caught and a hang is noticed (the case is named, with
//! its seed, and its input saved under target/fuzz-failures/).
//!
//! `ATTNJOULE_FUZZ_SEED=<n>` replays a run; `ATTNJOULE_FUZZ_SECONDS=<s>` runs each target longer
//! (default 3 s, about a minute for all of them on two cores).
#![allow(dead_code)]

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use std::time::{Duration, Instant};

/// One fuzz target's run: its random stream, its deadline and its count.
pub struct Run {
    pub name: &'static str,
    pub seed: u64,
    pub rng: StdRng,
    deadline: Instant,
    max_cases: usize,
    pub cases: usize,
    /// Cases that were accepted (as opposed to refused with an error).
    pub accepted: usize,
}

fn env_u64(k: &str) -> Option<u64> {
    std::env::var(k).ok().and_then(|v| v.parse().ok())
}

impl Run {
    /// A run of at most `max_cases` cases within the time budget (`seconds` scaled by
    /// `ATTNJOULE_FUZZ_SECONDS` / 3).
    pub fn new(name: &'static str, seconds: f64, max_cases: usize) -> Run {
        let seed = env_u64("ATTNJOULE_FUZZ_SEED").unwrap_or_else(attnjoule::reference::fresh_seed);
        let scale = env_u64("ATTNJOULE_FUZZ_SECONDS").map_or(1.0, |s| s as f64 / 3.0);
        let max_cases = if scale > 1.0 { usize::MAX } else { max_cases };
        println!("{name}: seed {seed} (replay: ATTNJOULE_FUZZ_SEED={seed})");
        Run {
            name,
            seed,
            rng: StdRng::seed_from_u64(seed),
            deadline: Instant::now() + Duration::from_secs_f64(seconds * scale),
            max_cases,
            cases: 0,
            accepted: 0,
        }
    }

    /// Whether to run another case (and counts it).
    pub fn more(&mut self) -> bool {
        if self.cases >= self.max_cases || Instant::now() >= self.deadline {
            return false;
        }
        self.cases += 1;
        true
    }

    /// Runs `f` on a thread of its own with `limit`; a panic or a timeout fails the test, naming
    /// the case and saving `input` (what was fed) for replay.
    pub fn guard<T: Send + 'static>(&self, input: &[u8], limit: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .stack_size(16 << 20)
            .spawn(move || {
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
                let _ = tx.send(r);
            })
            .expect("spawn a fuzz case");
        match rx.recv_timeout(limit) {
            Ok(Ok(v)) => v,
            Ok(Err(p)) => {
                let why = p
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                self.fail(input, &format!("panicked: {why}"))
            }
            Err(_) => self.fail(input, &format!("still running after {limit:?} (a hang)")),
        }
    }

    /// Fails the test for the current case, saving its input.
    pub fn fail(&self, input: &[u8], why: &str) -> ! {
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{}-{}-{}.txt", self.name, self.seed, self.cases));
        let _ = std::fs::write(&file, input);
        panic!(
            "{}: case {} of seed {} {why}; input saved in {} (replay: ATTNJOULE_FUZZ_SEED={})",
            self.name,
            self.cases,
            self.seed,
            file.display(),
            self.seed
        );
    }

    /// The closing line: cases run, accepted and refused.
    pub fn report(&self) {
        println!(
            "{}: {} cases in the budget ({} accepted, {} refused), seed {}: no panic, no hang, no property broken",
            self.name,
            self.cases,
            self.accepted,
            self.cases - self.accepted,
            self.seed
        );
    }
}

/// Numbers that break arithmetic: zeros, signs, the edges of i32/u32/i64/u64 and f64, NaN.
pub const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "1",
    "-1",
    "2",
    "7",
    "63",
    "64",
    "65",
    "128",
    "255",
    "4096",
    "65535",
    "65536",
    "2147483647",
    "2147483648",
    "-2147483649",
    "4294967295",
    "4294967296",
    "9007199254740993",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1e308",
    "-1e308",
    "1e309",
    "1e-320",
    "0.5",
    "-0.5",
    "NaN",
    "nan",
    "inf",
    "-inf",
    "0x7fffffff",
    "0xffffffffffffffff",
];

pub fn pick<'a, T: ?Sized>(rng: &mut StdRng, xs: &'a [&'a T]) -> &'a T {
    xs[rng.random_range(0..xs.len())]
}

/// Byte-level mutations of text: 1 to 4 of flipping a byte, deleting, duplicating or moving a
/// span, swapping or dropping lines, splicing in a dictionary word or an interesting number,
/// replacing a number, or cutting the tail.
pub fn mutate_text(rng: &mut StdRng, input: &[u8], dict: &[&str]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        if v.is_empty() {
            v.extend_from_slice(pick(rng, dict).as_bytes());
            continue;
        }
        let n = v.len();
        let at = rng.random_range(0..n);
        match rng.random_range(0..11) {
            0 => v[at] = rng.random(),
            1 => v[at] = b" \n;,{}[]()<>:.%$\"#-+0123456789abcxyz"[rng.random_range(0..35)],
            2 => {
                let len = rng.random_range(1..=(n - at).min(64));
                v.drain(at..at + len);
            }
            3 => {
                let len = rng.random_range(1..=(n - at).min(256));
                let span = v[at..at + len].to_vec();
                let to = rng.random_range(0..=v.len());
                v.splice(to..to, span);
            }
            4 | 5 => {
                let w = pick(rng, dict).as_bytes().to_vec();
                v.splice(at..at, w);
            }
            6 => {
                // Replace the number at or after `at` by an interesting one.
                if let Some(s) = v[at..].iter().position(|b| b.is_ascii_digit()).map(|p| p + at) {
                    let e = v[s..].iter().position(|b| !b.is_ascii_digit() && *b != b'.').map_or(v.len(), |p| p + s);
                    v.splice(s..e, pick(rng, NUMBERS).bytes());
                }
            }
            7 | 8 => {
                let mut lines: Vec<Vec<u8>> = v.split(|&b| b == b'\n').map(|l| l.to_vec()).collect();
                let k = lines.len();
                let (a, b) = (rng.random_range(0..k), rng.random_range(0..k));
                match rng.random_range(0..3) {
                    0 => lines.swap(a, b),
                    1 => {
                        lines.remove(a);
                    }
                    _ => {
                        let l = lines[a].clone();
                        lines.insert(b, l);
                    }
                }
                v = lines.join(&b'\n');
            }
            9 => v.truncate(at),
            _ => {
                let w = pick(rng, NUMBERS).as_bytes().to_vec();
                v.splice(at..at, w);
            }
        }
    }
    v
}

/// Structure-aware mutations of a JSON document: 1 to 3 of replacing a value (numbers by
/// interesting ones, strings by `strings`, any by another type), removing a key, duplicating
/// or dropping an array element.
pub fn mutate_json(rng: &mut StdRng, v: &mut serde_json::Value, strings: &[&str]) {
    for _ in 0..rng.random_range(1..=3) {
        let mut paths = Vec::new();
        collect_paths(v, &mut Vec::new(), &mut paths);
        if paths.is_empty() {
            return;
        }
        let path = paths[rng.random_range(0..paths.len())].clone();
        let Some(node) = node_at(v, &path) else { continue };
        match rng.random_range(0..8) {
            0..=2 => {
                *node = match &*node {
                    serde_json::Value::String(_) if rng.random_bool(0.7) => pick(rng, strings).into(),
                    _ => number_value(rng),
                }
            }
            3 => {
                *node = match rng.random_range(0..5) {
                    0 => serde_json::Value::Null,
                    1 => serde_json::Value::Bool(rng.random()),
                    2 => serde_json::Value::String(pick(rng, strings).into()),
                    3 => serde_json::json!([]),
                    _ => serde_json::json!({}),
                }
            }
            4 | 5 => {
                if let Some((last, parent)) = path.split_last() {
                    if let Some(serde_json::Value::Object(o)) = node_at(v, parent) {
                        o.remove(last.as_str());
                    }
                }
            }
            _ => {
                if let serde_json::Value::Array(a) = node {
                    if !a.is_empty() {
                        let i = rng.random_range(0..a.len());
                        if rng.random_bool(0.5) {
                            let x = a[i].clone();
                            a.push(x);
                        } else {
                            a.remove(i);
                        }
                    }
                }
            }
        }
    }
}

fn number_value(rng: &mut StdRng) -> serde_json::Value {
    match rng.random_range(0..4) {
        0 => serde_json::json!(rng.random_range(-3i64..3)),
        1 => serde_json::json!(u64::MAX >> rng.random_range(0..64)),
        2 => serde_json::json!([0.0, -1.0, 1e-320, 1e300, -1e300, 0.5, f64::MAX][rng.random_range(0..7)]),
        _ => serde_json::json!(-(rng.random_range(0..i64::MAX) >> rng.random_range(0..63))),
    }
}

/// Every node's path (object keys and array indices as strings).
fn collect_paths(v: &serde_json::Value, at: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
    out.push(at.clone());
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                at.push(k.clone());
                collect_paths(x, at, out);
                at.pop();
            }
        }
        serde_json::Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                at.push(i.to_string());
                collect_paths(x, at, out);
                at.pop();
            }
        }
        _ => {}
    }
}

fn node_at<'a>(v: &'a mut serde_json::Value, path: &[String]) -> Option<&'a mut serde_json::Value> {
    let mut cur = v;
    for k in path {
        cur = match cur {
            serde_json::Value::Object(o) => o.get_mut(k.as_str())?,
            serde_json::Value::Array(a) => a.get_mut(k.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A temporary folder of one fuzz target.
pub fn scratch(name: &str) -> std::path::PathBuf {
    let d = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}
