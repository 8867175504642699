//! MNIST's IDX files (raw or gzipped): images, labels, and a split of both.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marscf_data::idx::{parse_images, parse_labels};
use marscf_data::mnist::MnistSplit;

fuzz_target!(|data: &[u8]| {
    let _ = parse_images(data, "fuzz");
    let _ = parse_labels(data, "fuzz");
    // The first byte splits the rest into an images file and a labels file.
    if let Some((&cut, rest)) = data.split_first() {
        let (images, labels) = rest.split_at(usize::from(cut).min(rest.len()));
        let _ = MnistSplit::from_idx(images, labels, ("images", "labels"));
    }
});
