//! The IDX format of MNIST (raw or gzip-compressed): a big-endian header
//! `magic, n, [rows, cols]` followed by `n` items of unsigned bytes.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::DataError;

/// Magic number of an IDX file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The bytes of a file, gunzipped if they start with the gzip magic `1f 8b`.
pub fn maybe_gunzip(bytes: &[u8], file: &str) -> Result<Vec<u8>, DataError> {
    if bytes.starts_with(&[0x1f, 0x8b]) {
        let mut out = Vec::new();
        GzDecoder::new(bytes)
            .read_to_end(&mut out)
            .map_err(DataError::gzip(file))?;
        Ok(out)
    } else {
        Ok(bytes.to_vec())
    }
}

fn header(bytes: &[u8], words: usize, file: &str) -> Result<Vec<u32>, DataError> {
    if bytes.len() < 4 * words {
        return Err(DataError::Truncated {
            file: file.to_string(),
            expected: 4 * words,
            got: bytes.len(),
        });
    }
    Ok(bytes[..4 * words]
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]))
        .collect())
}

fn check_magic(got: u32, expected: u32, file: &str) -> Result<(), DataError> {
    if got != expected {
        return Err(DataError::BadMagic {
            file: file.to_string(),
            expected,
            got,
        });
    }
    Ok(())
}

fn body(bytes: &[u8], offset: usize, dims: &[u32], file: &str) -> Result<Vec<u8>, DataError> {
    let expected = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d as usize))
        .and_then(|n| n.checked_add(offset))
        .ok_or_else(|| DataError::mismatch(file, format!("header sizes {dims:?} overflow")))?;
    if bytes.len() != expected {
        return Err(DataError::Truncated {
            file: file.to_string(),
            expected,
            got: bytes.len(),
        });
    }
    Ok(bytes[offset..].to_vec())
}

/// `(count, rows, cols, pixels)` of an IDX image file (raw or gzip), pixels row-major
/// `count * rows * cols`.
pub fn parse_images(bytes: &[u8], file: &str) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let bytes = maybe_gunzip(bytes, file)?;
    let h = header(&bytes, 4, file)?;
    check_magic(h[0], IMAGES_MAGIC, file)?;
    let pixels = body(&bytes, 16, &h[1..], file)?;
    Ok((h[1] as usize, h[2] as usize, h[3] as usize, pixels))
}

/// The labels of an IDX label file (raw or gzip).
pub fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<u8>, DataError> {
    let bytes = maybe_gunzip(bytes, file)?;
    let h = header(&bytes, 2, file)?;
    check_magic(h[0], LABELS_MAGIC, file)?;
    body(&bytes, 8, &h[1..], file)
}
