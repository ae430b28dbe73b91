//! Files the crate reads and writes whole. Writes are atomic: the content goes to a temporary
//! file beside the target, is fsynced, then renamed over it, so a full disk, a crash or a kill
//! leaves the old file or the new one, never a cut one. Reads are bounded in size (a profile named
//! `/dev/zero` is refused, not read until memory runs out). An output never replaces an input of
//! the same command ([`refuse_overwrite`]), and a folder can be locked against a second writer
//! ([`DirLock`]). The sweep's JSONL log is the one file appended to instead (`sweep::jsonl`).

use crate::error::{Error, Result};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

fn io_err(path: &Path, err: io::Error) -> Error {
    Error::Io { path: path.display().to_string(), err }
}

/// Writes `bytes` to `path` atomically (see the module doc).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    write_atomic_with(path, |w| w.write_all(bytes))
}

/// Writes what `fill` writes to `path` atomically: on any error (of `fill`, the disk or the
/// rename) the old file is left as it was and the temporary file is removed. A path that names a
/// device or a pipe (`/dev/null`, `/dev/stdout`) is written in place: renaming over it would
/// replace the device node. A symbolic link is followed: its target is replaced, not the link.
pub fn write_atomic_with(path: &Path, fill: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<()> {
    let mut target = path.to_path_buf();
    match fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => {
            target = fs::canonicalize(path).map_err(|e| io_err(path, e))?;
        }
        _ => {}
    }
    match fs::metadata(&target) {
        Ok(m) if m.is_dir() => {
            return Err(io_err(path, io::Error::new(io::ErrorKind::IsADirectory, "is a folder, not a file")));
        }
        Ok(m) if !m.is_file() => {
            let mut f = OpenOptions::new().write(true).open(&target).map_err(|e| io_err(path, e))?;
            return fill(&mut f).and_then(|_| f.flush()).map_err(|e| io_err(path, e));
        }
        _ => {}
    }
    let Some(name) = target.file_name() else {
        return Err(io_err(path, io::Error::new(io::ErrorKind::InvalidInput, "names no file")));
    };
    let dir = target.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let tmp = dir.join(temp_name(name));
    let res = (|| {
        let mut f = OpenOptions::new().write(true).create_new(true).open(&tmp)?;
        // A replaced file keeps its permissions.
        if let Ok(m) = fs::metadata(&target) {
            let _ = f.set_permissions(m.permissions());
        }
        fill(&mut f)?;
        f.flush()?;
        f.sync_all()?;
        drop(f);
        fs::rename(&tmp, &target)?;
        // The rename itself is durable once the folder is synced (best effort: not every file
        // system lets a folder be opened for it).
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.map_err(|e| io_err(path, e))
}

/// `.<name>.<pid>.<n>.tmp`: hidden, unique per process and call, beside the target (a rename
/// within one file system is atomic).
fn temp_name(name: &std::ffi::OsStr) -> std::ffi::OsString {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut s = std::ffi::OsString::from(".");
    s.push(name);
    s.push(format!(".{}.{}.tmp", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
    s
}

/// Reads `path` as UTF-8 text of at most `max_bytes`; `what` names the kind of file in the error
/// ("profile", "model file"). Anything longer is refused without reading it all.
pub fn read_text(path: &Path, max_bytes: u64, what: &str) -> Result<String> {
    let bytes = read_bytes(path, max_bytes, what)?;
    String::from_utf8(bytes).map_err(|e| {
        Error::Format(format!(
            "{}: not UTF-8 text (byte {}); not a {what}",
            path.display(),
            e.utf8_error().valid_up_to()
        ))
    })
}

/// Reads `path` whole, at most `max_bytes` of it (see [`read_text`]).
pub fn read_bytes(path: &Path, max_bytes: u64, what: &str) -> Result<Vec<u8>> {
    let too_big = || Error::Format(format!("{}: more than {max_bytes} bytes; not a {what}", path.display()));
    let f = File::open(path).map_err(|e| io_err(path, e))?;
    let meta = f.metadata().map_err(|e| io_err(path, e))?;
    if meta.is_dir() {
        return Err(io_err(path, io::Error::new(io::ErrorKind::IsADirectory, format!("is a folder, not a {what}"))));
    }
    if meta.is_file() && meta.len() > max_bytes {
        return Err(too_big());
    }
    let mut bytes = Vec::new();
    f.take(max_bytes + 1).read_to_end(&mut bytes).map_err(|e| io_err(path, e))?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_big());
    }
    Ok(bytes)
}

/// Whether `a` and `b` name one existing file (the same device and inode: hard links, `./x` and
/// `x`, symbolic links all count).
pub fn same_file(a: &Path, b: &Path) -> bool {
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(x), Ok(y)) => same_meta(&x, &y),
        _ => false,
    }
}

#[cfg(unix)]
fn same_meta(a: &fs::Metadata, b: &fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

#[cfg(not(unix))]
fn same_meta(_: &fs::Metadata, _: &fs::Metadata) -> bool {
    false
}

/// Refuses an output (`flag` `output`) that is one of the command's `inputs`: writing it would
/// destroy what the command reads. One line naming both.
pub fn refuse_overwrite(flag: &str, output: &Path, inputs: &[&Path]) -> Result<()> {
    for input in inputs {
        if same_file(output, input) {
            return Err(Error::Invalid(format!(
                "{flag} {} is an input of this command ({}); refusing to overwrite it: choose another path",
                output.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// Name of the lock file a [`DirLock`] holds in its folder.
pub const LOCK_FILE: &str = ".attnjoule.lock";

/// How long a busy lock is tried again before it is taken as held by another writer.
const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_millis(100);

/// An exclusive lock on a folder (an advisory lock on `<dir>/.attnjoule.lock`), held until
/// dropped; the operating system releases it when the process ends, however it ends.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Locks `dir` (created if missing), or says in one line that another process holds it.
    pub fn acquire(dir: &Path, holder: &str) -> Result<DirLock> {
        Self::acquire_named(dir, "", holder)
    }

    /// A lock of one thing in `dir` (`<dir>/<name>.attnjoule.lock`): writers of other things in
    /// the same folder go on (the shards of one sweep share their folder, each with its own log).
    pub fn acquire_named(dir: &Path, name: &str, holder: &str) -> Result<DirLock> {
        fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        let path = dir.join(format!("{name}{LOCK_FILE}"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| io_err(&path, e))?;
        // A lock its owner has just released can still read as held for a moment: a process
        // forked by any thread of ours (a subprocess) shares the locked file until it execs
        // (close-on-exec). So a busy lock is tried again for a short while before refusing; a
        // sweep that really holds it holds it far longer.
        let t0 = std::time::Instant::now();
        let mut tried = file.try_lock();
        while matches!(tried, Err(fs::TryLockError::WouldBlock)) && t0.elapsed() < LOCK_PATIENCE {
            std::thread::sleep(std::time::Duration::from_millis(10));
            tried = file.try_lock();
        }
        match tried {
            Ok(()) => Ok(DirLock { _file: file, path }),
            Err(fs::TryLockError::WouldBlock) => Err(Error::Invalid(format!(
                "{} is in use by another {holder} (it holds {}); wait for it to finish or choose another folder",
                dir.display(),
                path.display()
            ))),
            Err(fs::TryLockError::Error(e)) => Err(io_err(&path, e)),
        }
    }
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("attnjoule-files-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        fs::create_dir_all(&d).unwrap();
        d
    }

    fn leftovers(dir: &Path) -> Vec<String> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect()
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temporary() {
        let d = tmpdir("full");
        let p = d.join("profile.json");
        write_atomic(&p, b"old content").unwrap();
        // The disk fills after 5 bytes: the writer fails midway, as a full file system does.
        let e = write_atomic_with(&p, |w| {
            w.write_all(b"new c")?;
            Err(io::Error::from_raw_os_error(28))
        })
        .unwrap_err();
        assert!(e.to_string().contains("profile.json") && e.to_string().contains("No space left"), "{e}");
        assert_eq!(fs::read(&p).unwrap(), b"old content");
        assert!(leftovers(&d).is_empty(), "{:?}", leftovers(&d));
        write_atomic(&p, b"new content").unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"new content");
        assert!(leftovers(&d).is_empty());
    }

    #[test]
    fn devices_are_written_in_place_and_folders_refused() {
        write_atomic(Path::new("/dev/null"), b"x").unwrap();
        assert!(!fs::metadata("/dev/null").unwrap().file_type().is_file());
        let d = tmpdir("dir");
        assert!(write_atomic(&d, b"x").unwrap_err().to_string().contains("is a folder"));
    }

    #[test]
    fn reads_are_bounded() {
        let e = read_text(Path::new("/dev/zero"), 1 << 16, "profile").unwrap_err().to_string();
        assert!(e.contains("more than 65536 bytes; not a profile"), "{e}");
        let d = tmpdir("read");
        let p = d.join("a.json");
        fs::write(&p, vec![b'x'; 100]).unwrap();
        assert!(read_text(&p, 99, "profile").is_err());
        assert_eq!(read_text(&p, 100, "profile").unwrap().len(), 100);
        fs::write(&p, [0xff, 0xfe]).unwrap();
        assert!(read_text(&p, 100, "profile").unwrap_err().to_string().contains("not UTF-8"));
    }

    #[test]
    fn outputs_that_are_inputs_are_refused() {
        let d = tmpdir("same");
        let a = d.join("a.json");
        fs::write(&a, "{}").unwrap();
        let dotted = d.join(".").join("a.json");
        let e = refuse_overwrite("--csv", &dotted, &[Path::new("/nonexistent"), &a]).unwrap_err().to_string();
        assert!(e.contains("--csv") && e.contains("is an input"), "{e}");
        assert!(refuse_overwrite("--csv", &d.join("b.csv"), &[&a]).is_ok());
    }

    #[test]
    fn a_second_lock_on_a_folder_is_refused_until_the_first_is_dropped() {
        let d = tmpdir("lock");
        let first = DirLock::acquire(&d, "sweep").unwrap();
        let e = DirLock::acquire(&d, "sweep").unwrap_err().to_string();
        assert!(e.contains("in use by another sweep"), "{e}");
        drop(first);
        DirLock::acquire(&d, "sweep").unwrap();
    }
}
