//! One member of an image folder: a PNG or JPEG file decoded to channel-major RGB.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use marscf_data::image_folder::decode_rgb;

fuzz_target!(|data: &[u8]| {
    let _ = decode_rgb(data, Path::new("fuzz"));
});
