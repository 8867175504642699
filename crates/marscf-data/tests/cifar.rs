//! CIFAR-10's readers on batch files in both distributions and the folders they sit in.

use std::path::Path;

use marscf_data::cifar::{
    BINARY_FOLDER, CIFAR_SHAPE, CifarLayout, IMAGE_BYTES, PYTHON_FOLDER, RECORD_BYTES, load,
    locate, parse_binary_batch,
};
use marscf_data::{DataError, ImageSet};
use marscf_test_support::{
    files::{cifar_binary, cifar_pickles, concat, test_images},
    temp_dir,
};

#[test]
fn reads_binary_records() {
    let set = test_images(CIFAR_SHAPE, 3, 10);
    let parsed = parse_binary_batch(&cifar_binary(&set), "b.bin").unwrap();
    assert_eq!(parsed, set);
    assert_eq!(
        parsed.image(1)[IMAGE_BYTES - 1],
        set.image(1)[IMAGE_BYTES - 1]
    );
}

#[test]
fn rejects_bad_binary_files() {
    let set = test_images(CIFAR_SHAPE, 2, 10);
    let mut bytes = cifar_binary(&set);
    let err = parse_binary_batch(&bytes[..bytes.len() - 1], "b.bin").unwrap_err();
    assert!(
        matches!(&err, DataError::Mismatch { path: file, .. } if file == std::path::Path::new("b.bin")),
        "{err}"
    );
    assert!(matches!(
        parse_binary_batch(&[], "b.bin"),
        Err(DataError::Mismatch { .. })
    ));
    bytes[RECORD_BYTES] = 10;
    let err = parse_binary_batch(&bytes, "b.bin").unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 10,
                classes: 10,
                ..
            }
        ),
        "{err}"
    );
}

/// Writes the batch files of `layout` into `dir` and returns the `(train, test)` sets they
/// hold: binary batches of `per_file` images, distinct per file; the Python batches are the
/// pickle fixtures (2 images each).
fn write_layout(dir: &Path, layout: CifarLayout, per_file: usize) -> (ImageSet, ImageSet) {
    std::fs::create_dir_all(dir).unwrap();
    let (train_files, test_file) = layout.files();
    let mut parts = Vec::new();
    for (i, name) in train_files.iter().enumerate() {
        let set = match layout {
            CifarLayout::Binary => {
                let set = test_images(CIFAR_SHAPE, per_file, 10);
                let pixels: Vec<u8> = set.pixels.iter().map(|p| p.wrapping_add(i as u8)).collect();
                let set = ImageSet {
                    pixels: pixels.into(),
                    ..set
                };
                std::fs::write(dir.join(name), cifar_binary(&set)).unwrap();
                set
            }
            CifarLayout::Python => {
                std::fs::write(dir.join(name), cifar_pickles::VALID[i % 3]).unwrap();
                test_images(CIFAR_SHAPE, 2, 10)
            }
        };
        parts.push(set);
    }
    let test = test_images(CIFAR_SHAPE, 2, 10);
    let test_bytes = match layout {
        CifarLayout::Binary => cifar_binary(&test),
        CifarLayout::Python => cifar_pickles::PY3_PROTOCOL4.to_vec(),
    };
    std::fs::write(dir.join(test_file), test_bytes).unwrap();
    (concat(&parts), test)
}

#[test]
fn loads_both_layouts_from_their_folders() {
    for layout in [CifarLayout::Binary, CifarLayout::Python] {
        let root = temp_dir("cifar");
        let folder = match layout {
            CifarLayout::Binary => BINARY_FOLDER,
            CifarLayout::Python => PYTHON_FOLDER,
        };
        let (train, test) = write_layout(&root.path().join(folder), layout, 3);
        assert_eq!(locate(root.path()).unwrap().1, layout);
        let (got_train, got_test) = load(root.path()).unwrap();
        assert_eq!(got_train.len(), train.len());
        assert_eq!(got_train.shape, [3, 32, 32]);
        assert!(got_train.labels.iter().all(|&l| l < 10));
        assert_eq!((got_train, got_test), (train, test));
    }
    // The binary files directly in the root folder.
    let root = temp_dir("cifar");
    let (train, _) = write_layout(root.path(), CifarLayout::Binary, 1);
    assert_eq!(load(root.path()).unwrap().0, train);
}

#[test]
fn missing_files_are_named() {
    let root = temp_dir("cifar");
    let err = load(root.path()).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, DataError::MissingData { .. }));
    assert!(
        text.contains("cifar-10-batches-bin") && text.contains("test_batch.bin"),
        "{text}"
    );
    let dir = root.path().join(BINARY_FOLDER);
    write_layout(&dir, CifarLayout::Binary, 1);
    std::fs::remove_file(dir.join("data_batch_3.bin")).unwrap();
    let text = load(root.path()).unwrap_err().to_string();
    assert!(text.contains("lacks data_batch_3.bin"), "{text}");
}

#[test]
fn a_corrupt_batch_names_its_file() {
    let root = temp_dir("cifar");
    let dir = root.path().join(PYTHON_FOLDER);
    write_layout(&dir, CifarLayout::Python, 1);
    std::fs::write(dir.join("data_batch_4"), b"\x80\x02}q\x01(U\x04data").unwrap();
    let err = load(root.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Pickle { path: file, .. } if file.ends_with("data_batch_4")),
        "{err}"
    );
}
