//! The one rule for printing: every line of every command goes through [`outln!`] (standard
//! output) or [`errln!`] (standard error, progress and warnings). A stream whose reader has gone
//! (`attnjoule info | head -1`, a closed terminal) is a normal end of that stream, not of the
//! command: what is left to print is dropped and the command finishes its work (a sweep keeps
//! measuring and writes its log and profile; files are written) and exits as it would have. Any
//! other failure to write standard output (a full disk behind `> file`) is remembered and ends
//! the command with exit 1 and one line on standard error, since its output is incomplete.

use std::fmt;
use std::io::{self, Write};
use std::sync::Mutex;

/// What has happened to a stream so far.
#[derive(Clone, Copy, PartialEq, Eq)]
enum State {
    Open,
    /// The reader went away: nothing more is written, and that is no error.
    Closed,
}

struct Stream {
    state: State,
    /// The first write error other than a closed pipe.
    failed: Option<String>,
}

static STDOUT: Mutex<Stream> = Mutex::new(Stream { state: State::Open, failed: None });
static STDERR: Mutex<Stream> = Mutex::new(Stream { state: State::Open, failed: None });

fn write_to<W: Write>(stream: &Mutex<Stream>, w: impl FnOnce() -> W, args: fmt::Arguments, newline: bool) {
    // Our lock first, then the stream's (finish takes them in the same order).
    let mut s = stream.lock().unwrap_or_else(|p| p.into_inner());
    if s.state == State::Closed || s.failed.is_some() {
        return;
    }
    let mut w = w();
    let r = w.write_fmt(args).and_then(|_| if newline { w.write_all(b"\n") } else { Ok(()) });
    match r {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => s.state = State::Closed,
        Err(e) => s.failed = Some(e.to_string()),
    }
}

/// Standard output (use [`outln!`] / [`out!`]).
pub fn stdout(args: fmt::Arguments, newline: bool) {
    write_to(&STDOUT, || io::stdout().lock(), args, newline);
}

/// Standard error (use [`errln!`]).
pub fn stderr(args: fmt::Arguments, newline: bool) {
    write_to(&STDERR, || io::stderr().lock(), args, newline);
}

/// Flushes standard output; `Err` with one line when any of its output was lost to something
/// other than a closed pipe.
pub fn finish() -> Result<(), String> {
    {
        let mut s = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
        if s.state == State::Open && s.failed.is_none() {
            match io::stdout().lock().flush() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => s.state = State::Closed,
                Err(e) => s.failed = Some(e.to_string()),
            }
        }
    }
    let s = STDOUT.lock().unwrap_or_else(|p| p.into_inner());
    match &s.failed {
        Some(e) => Err(format!("writing standard output: {e} (the output is incomplete)")),
        None => Ok(()),
    }
}

/// A line on standard output.
macro_rules! outln {
    () => { $crate::cli::out::stdout(format_args!(""), true) };
    ($($t:tt)*) => { $crate::cli::out::stdout(format_args!($($t)*), true) };
}

/// Text on standard output without a newline.
macro_rules! out {
    ($($t:tt)*) => { $crate::cli::out::stdout(format_args!($($t)*), false) };
}

/// A line on standard error.
macro_rules! errln {
    ($($t:tt)*) => { $crate::cli::out::stderr(format_args!($($t)*), true) };
}

pub(crate) use {errln, out, outln};
