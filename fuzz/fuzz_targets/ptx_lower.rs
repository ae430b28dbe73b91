//! The PTX parser and lowering (the emulator's public entry point): any input lowers or fails
//! with an error; a panic, an abort or a hang is a finding.
//!
//! An input is an edit script over the crate's own kernels, so that libFuzzer explores mutations
//! of real PTX without a corpus: two bytes pick a kernel entry (with its module's header), then
//! every 6 bytes are one edit (an operation, a position, an argument). An input that starts with
//! `//raw\n` is taken as PTX text as it is.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

/// Every entry of the crate's PTX, each with its module's header.
fn entries() -> &'static [String] {
    static E: OnceLock<Vec<String>> = OnceLock::new();
    E.get_or_init(|| {
        let mut out = Vec::new();
        for m in attnjoule::kernels::MODULES {
            let starts: Vec<usize> = m.ptx.match_indices(".visible .entry").map(|(i, _)| i).collect();
            let Some(&first) = starts.first() else { continue };
            for (k, &s) in starts.iter().enumerate() {
                let e = starts.get(k + 1).copied().unwrap_or(m.ptx.len());
                out.push(format!("{}{}", &m.ptx[..first], &m.ptx[s..e]));
            }
        }
        out
    })
}

const WORDS: &[&str] = &[
    "%r1", "%rd4294967296", "%p0", "%f7", "%tid.x", "mov.u32", "add.s32", "ld.shared.u32", "st.global.f32", "bra",
    "ret;", "bar.sync 0;", "@%p1", "setp.lt.s32", "ldmatrix.sync.aligned.m8n8.x4.shared.b16", "cp.async.wait_group 0;",
    ".reg .b32 %r<4294967295>;", ".shared .align 16 .b8 s[4294967296];", "$L__BB0_1:", "{", "}", "[", "]", "(", ")",
    ";", ",", "+", "-", "0f7F800000", "0xffffffff", "4294967296", "18446744073709551615", "-1", "é", "\0",
    // Hopper's asynchronous forms.
    "mbarrier.try_wait.parity.shared::cta.b64", "mbarrier.arrive.expect_tx.shared::cta.b64",
    "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes", "fence.proxy.async.shared::cta;",
    "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16", "wgmma.wait_group.sync.aligned 0;",
    ".reqnctapercluster 4294967296, 4294967296, 4294967296", ".explicitcluster",
];

fn edit(text: &mut Vec<u8>, op: u8, pos: u32, arg: u8) {
    let n = text.len();
    if n == 0 {
        return;
    }
    let at = pos as usize % n;
    match op % 6 {
        0 => text[at] = arg,
        1 => {
            text.drain(at..(at + arg as usize + 1).min(n));
        }
        2 => {
            let w = WORDS[arg as usize % WORDS.len()].as_bytes().to_vec();
            text.splice(at..at, w);
        }
        3 => {
            let span = text[at..(at + arg as usize + 1).min(n)].to_vec();
            let to = (at + 7 * arg as usize) % n;
            text.splice(to..to, span);
        }
        4 => text.truncate(at),
        _ => {
            // The next number from `at` on becomes an edge value.
            if let Some(s) = text[at..].iter().position(u8::is_ascii_digit).map(|p| p + at) {
                let e = text[s..].iter().position(|b| !b.is_ascii_digit()).map_or(n, |p| p + s);
                let v = ["0", "1", "4294967295", "4294967296", "2147483648", "18446744073709551616"][arg as usize % 6];
                text.splice(s..e, v.bytes());
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let src = if let Some(raw) = data.strip_prefix(b"//raw\n") {
        String::from_utf8_lossy(raw).into_owned()
    } else {
        let es = entries();
        if data.len() < 2 || es.is_empty() {
            return;
        }
        let mut text = es[u16::from_le_bytes([data[0], data[1]]) as usize % es.len()].clone().into_bytes();
        for e in data[2..].chunks_exact(6) {
            edit(&mut text, e[0], u32::from_le_bytes([e[1], e[2], e[3], e[4]]), e[5]);
        }
        String::from_utf8_lossy(&text).into_owned()
    };
    for (_, kernel) in attnjoule::emu::parse::lower_module(&src) {
        if let Err(e) = kernel {
            // As the user sees it: one line.
            let shown = attnjoule::Error::Emu(e.to_string()).to_string();
            assert!(!shown.contains('\n'), "an error of several lines: {shown}");
        }
    }
});
