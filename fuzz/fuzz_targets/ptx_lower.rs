//! The PTX parser and lowering (the emulator's public entry point): any input lowers or fails
//! with an error; a panic, an abort or a hang is a finding.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let src = String::from_utf8_lossy(data);
    for (_, kernel) in attnjoule::emu::parse::lower_module(&src) {
        if let Err(e) = kernel {
            // Errors are one line (they are printed as one).
            assert!(!e.to_string().contains('\n'), "an error of several lines: {e}");
        }
    }
});
