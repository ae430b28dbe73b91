//! The sweep's append-only log: one JSON object per line, written and fsynced as each point
//! finishes, so Ctrl-C or a crash loses nothing. The first line is a header (GPU, kind, spec,
//! schema version); then points and GEMM calibration points, each line one [`Line`]. A cut last
//! line (a crash mid-write) is dropped with a warning; a malformed line elsewhere is an error
//! naming it. Points of a log written with an older schema are converted as they are read.

use crate::error::{Error, Result};
use crate::profile::{upgrade_point, GemmPoint, GpuInfo, Point, Points, ProfileKind, SCHEMA_VERSION};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::Path;

/// First line of a JSONL log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Header {
    pub kind: ProfileKind,
    pub gpu: GpuInfo,
    pub created: String,
    #[serde(default)]
    pub tool: Option<String>,
    #[serde(default)]
    pub idle_watts: Option<f64>,
    /// The sweep's spec, protocol and shard (free-form, for the record).
    #[serde(default)]
    pub config: serde_json::Value,
    /// The profile schema of the log's points (absent: written before logs recorded it, version 1).
    #[serde(default = "schema_v1")]
    pub schema_version: u32,
}

fn schema_v1() -> u32 {
    1
}

impl Header {
    /// Whether `p` belongs in this log: one of our variants in a phase it runs, of the shape
    /// (batch, heads, KV heads, head_dim) the header's sweep recorded (older headers without a
    /// recorded spec are taken as they are).
    pub fn admits(&self, p: &Point) -> std::result::Result<(), String> {
        let variant = crate::work::Variant::parse(&p.variant);
        if p.implementation != "attnjoule" || !variant.is_some_and(|v| super::applies(v, p.phase)) {
            return Err(format!(
                "a {} {} point of {:?} does not belong in a sweep log",
                p.variant, p.phase, p.implementation
            ));
        }
        let spec = &self.config["spec"];
        let s = p.shape;
        for (k, v) in [("batch", s.batch), ("heads", s.heads), ("kv_heads", s.kv_heads), ("head_dim", s.head_dim)] {
            if let Some(want) = spec[k].as_u64().filter(|&w| w != v as u64) {
                return Err(format!("a point of {k} {v} in a log of {k} {want} (the header's sweep)"));
            }
        }
        Ok(())
    }
}

/// One line of the log: `{"header": {...}}`, `{"point": {...}}` or `{"gemm": {...}}`; anything
/// else (`{}`, two keys, an unknown key) is malformed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Line {
    Header(Header),
    Point(Box<Point>),
    Gemm(GemmPoint),
}

/// What a log holds.
#[derive(Debug, Clone, Default)]
pub struct Log {
    pub header: Option<Header>,
    /// One point per key: a later line replaces an earlier one (a retried point, or a line
    /// written twice).
    pub points: Points,
    pub gemm: Vec<GemmPoint>,
    /// Bytes of complete, valid lines: appending resumes here (a cut tail is cut off).
    pub valid_len: u64,
    pub warnings: Vec<String>,
}

fn io(path: &Path, e: std::io::Error) -> Error {
    Error::Io { path: path.display().to_string(), err: e }
}

/// Largest log read: 1 GiB, some 300,000 points (a bound keeps a log named `/dev/zero` from being
/// read until memory runs out).
pub const MAX_LOG_BYTES: u64 = 1 << 30;

/// Reads a log. A missing file is an empty log.
pub fn read(path: &Path) -> Result<Log> {
    let bytes = match crate::files::read_bytes(path, MAX_LOG_BYTES, "sweep log") {
        Ok(b) => b,
        Err(Error::Io { err, .. }) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Log::default()),
        Err(e) => return Err(e),
    };
    let mut log = Log::default();
    let mut pos = 0usize;
    let mut lineno = 0;
    while pos < bytes.len() {
        lineno += 1;
        let (line, next, complete) = match bytes[pos..].iter().position(|&b| b == b'\n') {
            Some(i) => (&bytes[pos..pos + i], pos + i + 1, true),
            None => (&bytes[pos..], bytes.len(), false),
        };
        // A blank line carries nothing (and is valid); any other must be one record.
        let text = std::str::from_utf8(line).map_err(|_| "not UTF-8".to_string());
        let parsed = text.and_then(|t| {
            if t.trim().is_empty() {
                return Ok(None);
            }
            let version = log.header.as_ref().map_or(SCHEMA_VERSION, |h| h.schema_version);
            if version >= SCHEMA_VERSION {
                return serde_json::from_str::<Line>(t).map(Some).map_err(|e| e.to_string());
            }
            // An older log's point: converted as JSON, then read.
            let mut v: serde_json::Value = serde_json::from_str(t).map_err(|e| e.to_string())?;
            if let Some(p) = v.get_mut("point") {
                upgrade_point(p, version)?;
            }
            serde_json::from_value::<Line>(v).map(Some).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(l) if complete => {
                match l {
                    Some(Line::Header(h)) => {
                        if log.header.is_some() {
                            return Err(Error::Format(format!("{}:{lineno}: a second header", path.display())));
                        }
                        if let Err(e) =
                            h.gpu.validate().and(crate::profile::check_idle_watts("idle_watts", h.idle_watts))
                        {
                            let m = match e {
                                Error::Format(m) => m,
                                e => e.to_string(),
                            };
                            return Err(Error::Format(format!(
                                "{}:{lineno}: header: {m}; the log is corrupt: remove the line to continue",
                                path.display()
                            )));
                        }
                        if h.schema_version > SCHEMA_VERSION {
                            return Err(Error::Format(format!(
                                "{}: written with profile schema {} by a newer attnjoule (this build reads 1..={SCHEMA_VERSION})",
                                path.display(),
                                h.schema_version
                            )));
                        }
                        log.header = Some(h);
                    }
                    Some(Line::Point(p)) => {
                        let why = match &log.header {
                            None => Err("a point before the header line".to_string()),
                            Some(h) => h.admits(&p).and_then(|_| {
                                p.validate().map_err(|e| match e {
                                    Error::Format(m) => m,
                                    e => e.to_string(),
                                })
                            }),
                        };
                        if let Err(e) = why {
                            return Err(Error::Format(format!(
                                "{}:{lineno}: {e}; the log is corrupt: remove the line to continue",
                                path.display()
                            )));
                        }
                        log.points.insert(*p);
                    }
                    Some(Line::Gemm(g)) => log.gemm.push(g),
                    None => {}
                }
                log.valid_len = next as u64;
            }
            Err(e) if complete => {
                return Err(Error::Format(format!(
                    "{}:{lineno}: not a valid record ({e}); the log is corrupt: remove the line to continue",
                    path.display()
                )))
            }
            // The last line without its newline: a write was cut (or the line is whole but its
            // newline was lost); either way it is not trusted.
            _ => {
                log.warnings.push(format!(
                    "{}:{lineno}: dropping a truncated last line ({} bytes) left by an interrupted write",
                    path.display(),
                    line.len()
                ));
            }
        }
        pos = next;
    }
    Ok(log)
}

/// An open log for appending.
pub struct Writer {
    file: std::fs::File,
    path: std::path::PathBuf,
}

impl Writer {
    /// Opens `path` for appending after its last valid line (cutting a truncated tail).
    pub fn open(path: &Path, valid_len: u64) -> Result<Writer> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        }
        let file =
            std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(path).map_err(|e| io(path, e))?;
        file.set_len(valid_len).map_err(|e| io(path, e))?;
        let mut w = Writer { file, path: path.to_path_buf() };
        use std::io::Seek;
        w.file.seek(std::io::SeekFrom::End(0)).map_err(|e| io(path, e))?;
        Ok(w)
    }

    /// Appends one line and fsyncs it.
    pub fn append(&mut self, line: &Line) -> Result<()> {
        let mut text = serde_json::to_string(line).map_err(|e| Error::Format(format!("record: {e}")))?;
        text.push('\n');
        self.file.write_all(text.as_bytes()).map_err(|e| io(&self.path, e))?;
        self.file.sync_data().map_err(|e| io(&self.path, e))
    }
}
