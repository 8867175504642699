//! NumPy arrays and archives written by the shared builders.

use marscf_data::DataError;
use marscf_data::npy::{NpyArray, Npz};
use marscf_test_support::files::{npy, npz};

#[test]
fn reads_integer_arrays_of_every_width_and_order() {
    let a = NpyArray::from_vec(npy("|u1", &[2, 3], &[1, 2, 3, 4, 5, 6]), "a").unwrap();
    assert_eq!(
        (a.shape.clone(), a.data.clone()),
        (vec![2, 3], vec![1, 2, 3, 4, 5, 6])
    );
    assert_eq!(a.to_i64("a").unwrap(), vec![1, 2, 3, 4, 5, 6]);
    let le: Vec<u8> = [-2i64, 1000].iter().flat_map(|v| v.to_le_bytes()).collect();
    let a = NpyArray::from_vec(npy("<i8", &[2], &le), "a").unwrap();
    assert_eq!(a.to_i64("a").unwrap(), vec![-2, 1000]);
    let be: Vec<u8> = [-3i16, 700].iter().flat_map(|v| v.to_be_bytes()).collect();
    let a = NpyArray::from_vec(npy(">i2", &[2], &be), "a").unwrap();
    assert_eq!(a.to_i64("a").unwrap(), vec![-3, 700]);
    let a = NpyArray::from_vec(npy("<u4", &[1], &u32::MAX.to_le_bytes()), "a").unwrap();
    assert_eq!(a.to_i64("a").unwrap(), vec![i64::from(u32::MAX)]);
    let a = NpyArray::from_vec(npy("<u8", &[1], &u64::MAX.to_le_bytes()), "a").unwrap();
    assert!(matches!(a.to_i64("a"), Err(DataError::Npz { .. })));
}

#[test]
fn rejects_bad_arrays_naming_the_file() {
    let npz_err = |bytes: Vec<u8>| match NpyArray::from_vec(bytes, "f.npy") {
        Err(DataError::Npz { path: file, .. }) => file == std::path::Path::new("f.npy"),
        _ => false,
    };
    assert!(npz_err(b"\x93NUMPZ\x01\x00\x00\x00".to_vec()));
    assert!(npz_err(npy("<f2", &[1], &[0; 2])), "half floats");
    let floats = NpyArray::from_vec(npy("<f4", &[1], &1.5f32.to_le_bytes()), "f.npy").unwrap();
    assert_eq!(floats.to_f64("f.npy").unwrap(), vec![1.5]);
    assert!(
        matches!(floats.to_i64("f.npy"), Err(DataError::Npz { .. })),
        "floats are not labels"
    );
    assert!(
        npz_err(npy("|u1", &[1 << 40, 1 << 40, 1 << 40], &[])),
        "overflowing shape"
    );
    let mut bad = npy("|u1", &[2], &[1, 2]);
    bad[20] = b'!';
    assert!(npz_err(bad), "a corrupt header");
    let err = NpyArray::from_vec(npy("|u1", &[3], &[1, 2]), "f.npy").unwrap_err();
    assert!(
        matches!(
            err,
            DataError::Truncated {
                expected: 3,
                got: 2,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn reads_members_of_stored_and_deflated_archives() {
    for compressed in [false, true] {
        let bytes = npz(&[("data", npy("|u1", &[1, 2], &[9, 8]))], compressed);
        let mut archive = Npz::new(std::io::Cursor::new(bytes), "a.npz").unwrap();
        let data = archive.array("data").unwrap().unwrap();
        assert_eq!(data.data, vec![9, 8]);
        assert!(archive.array("labels").unwrap().is_none());
    }
}

#[test]
fn rejects_corrupt_archives() {
    let err = Npz::new(std::io::Cursor::new(b"PK\x03\x04garbage".to_vec()), "a.npz")
        .err()
        .unwrap();
    assert!(
        matches!(&err, DataError::Zip { path: file, .. } if file == std::path::Path::new("a.npz")),
        "{err}"
    );
    // A flipped byte in a deflated member: the inflate or the CRC-32 check fails.
    let mut bytes = npz(&[("data", npy("|u1", &[64], &[5; 64]))], true);
    bytes[40] ^= 0x55;
    let result = Npz::new(std::io::Cursor::new(bytes), "a.npz").and_then(|mut a| a.array("data"));
    assert!(
        matches!(&result, Err(DataError::Zip { path: file, .. }) if file == std::path::Path::new("a.npz:data.npy")),
        "{result:?}"
    );
}
