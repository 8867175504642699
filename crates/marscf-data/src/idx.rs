//! The IDX format of MNIST (raw or gzip-compressed): a big-endian header
//! `magic, n, [rows, cols]` followed by `n` items of unsigned bytes.
//!
//! A gzip file is inflated only as far as its header reaches: `4 (1 + d)` header bytes for
//! `d` dimensions, then `product(dims)` data bytes and one more, which must not exist (the
//! attempt also makes the decoder check the gzip trailer's CRC-32). Memory grows with the
//! bytes inflated, so neither a header promising terabytes nor gigabytes of data after the
//! promised items costs more than the items promised and present.

use std::io::Read;

use flate2::read::GzDecoder;

use crate::DataError;

/// Magic number of an IDX file of `u8` images (3 dimensions).
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of `u8` labels (1 dimension).
pub const LABELS_MAGIC: u32 = 0x0000_0801;

/// The first two bytes of a gzip file.
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// `(dims, data)` of an IDX file of `u8` items with `magic` and `rank` dimensions, raw or
/// gzip; `data` is `product(dims)` bytes.
fn parse(
    bytes: &[u8],
    file: &str,
    magic: u32,
    rank: usize,
) -> Result<(Vec<usize>, Vec<u8>), DataError> {
    let header_len = 4 * (1 + rank);
    if !bytes.starts_with(&GZIP_MAGIC) {
        let (dims, data_len) = header(bytes, header_len, magic, file)?;
        let expected = header_len + data_len;
        if bytes.len() != expected {
            return Err(DataError::Truncated {
                path: file.into(),
                expected,
                got: bytes.len(),
            });
        }
        return Ok((dims, bytes[header_len..].to_vec()));
    }
    let mut gz = GzDecoder::new(bytes);
    let mut head = Vec::with_capacity(header_len);
    (&mut gz)
        .take(header_len as u64)
        .read_to_end(&mut head)
        .map_err(DataError::gzip(file))?;
    let (dims, data_len) = header(&head, header_len, magic, file)?;
    let expected = header_len + data_len;
    // Grows with the bytes inflated, at most one past the promised ones.
    let mut data = Vec::new();
    gz.take(data_len as u64 + 1)
        .read_to_end(&mut data)
        .map_err(DataError::gzip(file))?;
    match data.len().cmp(&data_len) {
        std::cmp::Ordering::Less => Err(DataError::Truncated {
            path: file.into(),
            expected,
            got: header_len + data.len(),
        }),
        std::cmp::Ordering::Greater => Err(DataError::TrailingData {
            path: file.into(),
            expected,
        }),
        std::cmp::Ordering::Equal => Ok((dims, data)),
    }
}

/// `(dims, product(dims))` from the `header_len` bytes at the start of `bytes` (magic, then
/// one big-endian `u32` per dimension); the magic must be `magic`, the product must fit in
/// memory's address range (`header_len + product <= usize::MAX`).
fn header(
    bytes: &[u8],
    header_len: usize,
    magic: u32,
    file: &str,
) -> Result<(Vec<usize>, usize), DataError> {
    let Some(head) = bytes.get(..header_len) else {
        return Err(DataError::Truncated {
            path: file.into(),
            expected: header_len,
            got: bytes.len(),
        });
    };
    let mut words = head
        .chunks_exact(4)
        .map(|w| u32::from_be_bytes([w[0], w[1], w[2], w[3]]));
    let got = words.next().unwrap_or_default();
    if got != magic {
        return Err(DataError::BadMagic {
            path: file.into(),
            expected: magic,
            got,
        });
    }
    let dims: Vec<usize> = words.map(|d| d as usize).collect();
    let data_len = dims
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .filter(|n| n.checked_add(header_len).is_some())
        .ok_or_else(|| DataError::mismatch(file, format!("header sizes {dims:?} overflow")))?;
    Ok((dims, data_len))
}

/// `(count, rows, cols, pixels)` of an IDX image file (raw or gzip), pixels row-major
/// `count * rows * cols`.
pub fn parse_images(bytes: &[u8], file: &str) -> Result<(usize, usize, usize, Vec<u8>), DataError> {
    let (dims, pixels) = parse(bytes, file, IMAGES_MAGIC, 3)?;
    Ok((dims[0], dims[1], dims[2], pixels))
}

/// The labels of an IDX label file (raw or gzip).
pub fn parse_labels(bytes: &[u8], file: &str) -> Result<Vec<u8>, DataError> {
    parse(bytes, file, LABELS_MAGIC, 1).map(|(_, labels)| labels)
}
