//! The manifest of a decode cache (read back at every cached load).
#![no_main]

use libfuzzer_sys::fuzz_target;
use marscf_data::cache::Manifest;

fuzz_target!(|data: &[u8]| {
    if let Ok(manifest) = Manifest::parse(data, "fuzz") {
        // What parses writes back to the same manifest.
        let text = manifest.to_text();
        assert_eq!(Manifest::parse(text.as_bytes(), "fuzz").ok(), Some(manifest));
    }
});
