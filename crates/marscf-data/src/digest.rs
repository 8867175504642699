//! SHA-256 digests of files, in lower-case hex: the datasets' downloads are checked with
//! them, and the model and FID crates identify files by them.

use std::fs::File;
use std::io::BufReader;
use std::path::Path;

use sha2::{Digest, Sha256};

use crate::DataError;

/// The SHA-256 of the bytes of `paths`, one file after the other, in lower-case hex.
pub fn sha256_files(paths: &[&Path]) -> Result<String, DataError> {
    let mut hasher = Sha256::new();
    for &path in paths {
        let mut file = BufReader::new(File::open(path).map_err(DataError::io(path))?);
        std::io::copy(&mut file, &mut hasher).map_err(DataError::io(path))?;
    }
    Ok(hex(&hasher.finalize()))
}

/// The SHA-256 of `bytes`, in lower-case hex.
pub fn sha256(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// `bytes` in lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FIPS 180-2's "abc", split over two files.
    #[test]
    fn the_standard_test_vector() {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, b"ab").expect("written");
        std::fs::write(&b, b"c").expect("written");
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_files(&[&a, &b]).expect("read"), abc);
        assert_eq!(sha256(b"abc"), abc);
    }
}
