//! A downsampled-ImageNet `.npz` batch (a zip archive of `data.npy` and `labels.npy`).
#![no_main]

use std::io::Cursor;

use libfuzzer_sys::fuzz_target;
use marscf_data::imagenet::{ImagenetSize, parse_npz_batch};

fuzz_target!(|data: &[u8]| {
    for size in [ImagenetSize::S32, ImagenetSize::S64] {
        let _ = parse_npz_batch(Cursor::new(data), "fuzz", size);
    }
});
