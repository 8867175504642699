//! The IDX reader on files written by the shared builders.

use marscf_data::DataError;
use marscf_data::idx::{IMAGES_MAGIC, parse_images, parse_labels};
use marscf_test_support::files::idx_images;

#[test]
fn reads_a_small_image_file() {
    let pixels: Vec<u8> = (0..2 * 2 * 3).collect();
    let (n, r, c, p) = parse_images(&idx_images(&pixels, 2, 2, 3), "x").unwrap();
    assert_eq!((n, r, c), (2, 2, 3));
    assert_eq!(p, pixels);
}

#[test]
fn rejects_wrong_magic_and_truncation() {
    let mut file = idx_images(&[0; 8], 2, 2, 2);
    assert!(matches!(
        parse_labels(&file, "x"),
        Err(DataError::BadMagic {
            got: IMAGES_MAGIC,
            ..
        })
    ));
    file.pop();
    assert!(matches!(
        parse_images(&file, "x"),
        Err(DataError::Truncated {
            expected: 24,
            got: 23,
            ..
        })
    ));
    assert!(matches!(
        parse_images(&file[..7], "x"),
        Err(DataError::Truncated { expected: 16, .. })
    ));
}

#[test]
fn rejects_corrupt_gzip() {
    let bad = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 1, 2, 3];
    let err = parse_images(&bad, "x").unwrap_err();
    assert!(
        matches!(&err, DataError::Gzip { path: file, .. } if file == std::path::Path::new("x")),
        "{err}"
    );
    assert!(
        std::error::Error::source(&err).is_some(),
        "the decoder's error is kept"
    );
}
