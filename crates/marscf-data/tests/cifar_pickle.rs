//! The reader of CIFAR-10's Python batches on pickles written by Python (`crates/marscf-test-support/fixtures`).

use marscf_data::cifar::CIFAR_SHAPE;
use marscf_data::cifar_pickle::parse_python_batch;
use marscf_data::{DataError, ImageSet};
use marscf_test_support::files::{cifar_pickles, test_images};

#[test]
fn reads_a_cpickle_protocol2_batch() {
    let parsed = parse_python_batch(cifar_pickles::PY2_CPICKLE, "data_batch_1").unwrap();
    assert_eq!(parsed, test_images(CIFAR_SHAPE, 2, 10));
}

#[test]
fn reads_batches_pickled_by_python3() {
    // The generator's images: pixel (i, c, y, x) = (i * 7 + c * 50 + y * 3 + x) % 256,
    // labels 3, 1.
    let expected = test_images(CIFAR_SHAPE, 2, 10);
    for bytes in [cifar_pickles::PY3_PROTOCOL2, cifar_pickles::PY3_PROTOCOL4] {
        let parsed = parse_python_batch(bytes, "fixture").unwrap();
        assert_eq!(parsed.labels, vec![3, 1]);
        assert_eq!(parsed.pixels, expected.pixels);
    }
}

#[test]
fn rejects_bad_batches() {
    let good = cifar_pickles::PY2_CPICKLE;
    let named = |r: Result<ImageSet, DataError>| match r {
        Err(DataError::Pickle { path: file, .. } | DataError::PickleContent { path: file, .. }) => {
            file == std::path::Path::new("f")
        }
        _ => false,
    };
    let undecodable = |r: Result<ImageSet, DataError>| matches!(r, Err(DataError::Pickle { .. }));
    assert!(undecodable(parse_python_batch(
        &good[..good.len() / 2],
        "f"
    )));
    assert!(named(parse_python_batch(&good[..good.len() / 2], "f")));
    assert!(undecodable(parse_python_batch(b"not a pickle", "f")));
    let err = parse_python_batch(b"\x80\x02K\x01.", "f").unwrap_err();
    assert!(
        matches!(&err, DataError::PickleContent { message, .. } if message.contains("dict")),
        "an int, not a dict: {err}"
    );
    // Labels out of range, or as many as the images.
    let err = parse_python_batch(cifar_pickles::BAD_LABEL, "f").unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                ..
            }
        ),
        "{err}"
    );
    assert!(matches!(
        parse_python_batch(cifar_pickles::FEW_LABELS, "f"),
        Err(DataError::Mismatch { .. })
    ));
    // Data bytes that do not fill the shape (or fill it twice, as uint16 would).
    for bad in [cifar_pickles::SHORT_DATA, cifar_pickles::WIDE_DATA] {
        let err = parse_python_batch(bad, "f").unwrap_err();
        assert!(
            matches!(&err, DataError::PickleContent { path: file, message } if file == std::path::Path::new("f") && message.contains("uint8")),
            "{err}"
        );
    }
}
