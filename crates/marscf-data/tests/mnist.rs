//! MNIST's reader on IDX files written by the shared builders, in the layouts it finds.

use marscf_data::DataError;
use marscf_data::mnist::{MnistSplit, TRAIN_FILES, load, locate};
use marscf_test_support::{
    chain,
    files::{gzip, idx_images, idx_labels},
    temp_dir,
};

#[test]
fn label_out_of_range_is_an_error() {
    let images = idx_images(&[0; 784], 1, 28, 28);
    let mut labels = idx_labels(&[10]);
    let err = MnistSplit::from_idx(&images, &labels, ("i", "l")).unwrap_err();
    assert!(matches!(
        err,
        DataError::LabelOutOfRange {
            label: 10,
            index: 0,
            ..
        }
    ));
    labels[8] = 3;
    labels.push(4);
    assert!(matches!(
        MnistSplit::from_idx(&images, &labels, ("i", "l")),
        Err(DataError::Truncated { .. })
    ));
}

#[test]
fn finds_torchvision_layout_and_names_a_corrupt_file() {
    let root = temp_dir("mnist");
    let raw = root.path().join("MNIST").join("raw");
    std::fs::create_dir_all(&raw).unwrap();
    let images = idx_images(&[7; 2 * 784], 2, 28, 28);
    for (name, bytes) in [
        (TRAIN_FILES.0, gzip(&images)),
        (TRAIN_FILES.1, gzip(&idx_labels(&[1, 2]))),
        // Unpacked files are found too.
        ("t10k-images-idx3-ubyte", images.clone()),
        ("t10k-labels-idx1-ubyte", idx_labels(&[3, 4])),
    ] {
        std::fs::write(raw.join(name), bytes).unwrap();
    }
    assert_eq!(locate(root.path()).unwrap(), raw);
    let (train, test) = load(root.path()).unwrap();
    assert_eq!((train.labels, test.labels), (vec![1, 2], vec![3, 4]));
    assert_eq!(test.pixels, vec![7; 2 * 784]);

    let mut corrupt = gzip(&images);
    corrupt.truncate(corrupt.len() - 12);
    std::fs::write(raw.join(TRAIN_FILES.0), corrupt).unwrap();
    let err = load(root.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Gzip { path: file, .. } if file.ends_with(TRAIN_FILES.0)),
        "{err}"
    );
    assert!(
        chain(&err).len() > err.to_string().len(),
        "keeps its source"
    );
    std::fs::remove_file(raw.join(TRAIN_FILES.0)).unwrap();
    let text = load(root.path()).unwrap_err().to_string();
    assert!(text.contains("lacks train-images-idx3-ubyte.gz"), "{text}");
}
