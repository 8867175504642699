//! A batch of CIFAR-10's Python distribution (a pickle).
#![no_main]

use libfuzzer_sys::fuzz_target;
use marscf_data::cifar_pickle::parse_python_batch;

fuzz_target!(|data: &[u8]| {
    let _ = parse_python_batch(data, "fuzz");
});
