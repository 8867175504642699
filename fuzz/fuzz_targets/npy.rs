//! A NumPy `.npy` array, and its elements as `i64`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use marscf_data::npy::NpyArray;

fuzz_target!(|data: &[u8]| {
    if let Ok(array) = NpyArray::from_vec(data.to_vec(), "fuzz") {
        let _ = array.to_i64("fuzz");
    }
});
