//! The profile reader: any input is read as a valid profile or refused with an error in one
//! line. What is read writes back and reads again the same, and an estimate on it (when it has
//! GPU numbers) shows only finite, non-negative numbers.
#![no_main]

use attnjoule::estimate::{self, policy::ALL, Conversation, Options};
use attnjoule::profile::Profile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let p = match Profile::from_json(text) {
        Ok(p) => p,
        Err(e) => {
            assert!(!e.to_string().contains('\n'), "an error of several lines: {e}");
            return;
        }
    };
    let again = Profile::from_json(&p.to_json()).expect("a profile read writes back readable");
    assert_eq!(again, p, "a round trip changes the profile");
    if !p.kind.has_gpu_numbers() {
        return;
    }
    let model = estimate::model::preset("llama-3.1-70b").expect("preset");
    if let Ok(r) = estimate::estimate(&p, "fuzz", model, &Conversation::default(), Options::default(), &ALL) {
        for row in &r.rows {
            for v in [row.seconds_per_phrase, row.joules_per_token, row.wh_per_phrase, row.cumulative_wh]
                .into_iter()
                .flatten()
                .chain([row.kv_gib, row.mem_gib_per_gpu])
            {
                assert!(v.is_finite() && v >= 0.0, "{} minute {}: {v}", row.policy.name(), row.minute);
            }
        }
    }
});
