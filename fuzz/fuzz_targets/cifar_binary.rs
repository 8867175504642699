//! A batch of CIFAR-10's binary distribution.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marscf_data::cifar::parse_binary_batch;

fuzz_target!(|data: &[u8]| {
    let _ = parse_binary_batch(data, "fuzz");
});
