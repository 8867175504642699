//! `datasets::load` on data folders: what a missing folder says, CIFAR-10 by name, and the
//! shared sample of real MNIST digits.

use std::path::{Path, PathBuf};

use marscf_data::cifar;
use marscf_data::datasets::{DatasetName, load};
use marscf_data::{DataError, MnistLayout};
use marscf_test_support::{
    files::{cifar_binary, test_images},
    temp_dir,
};

#[test]
fn a_missing_root_says_what_to_place_where() {
    for name in DatasetName::ALL.into_iter().filter(|n| n.needs_root()) {
        let err = load(name, None, MnistLayout::Reference).unwrap_err();
        assert!(
            matches!(err, DataError::MissingData { .. }),
            "{name}: {err}"
        );
    }
    let empty = temp_dir("datasets");
    let text = load(
        DatasetName::Mnist,
        Some(empty.path()),
        MnistLayout::Reference,
    )
    .unwrap_err()
    .to_string();
    assert!(
        text.contains("train-images-idx3-ubyte.gz") && text.contains("t10k-labels-idx1-ubyte.gz"),
        "{text}"
    );
    assert!(text.contains(&empty.path().display().to_string()), "{text}");
}

#[test]
fn loads_cifar10_by_name() {
    let root = temp_dir("datasets");
    let dir = root.path().join(cifar::BINARY_FOLDER);
    std::fs::create_dir(&dir).unwrap();
    let set = test_images(cifar::CIFAR_SHAPE, 2, 10);
    for name in cifar::BINARY_TRAIN_FILES
        .iter()
        .chain([&cifar::BINARY_TEST_FILE])
    {
        std::fs::write(dir.join(name), cifar_binary(&set)).unwrap();
    }
    let (train, test) = load(
        DatasetName::Cifar10,
        Some(root.path()),
        MnistLayout::Reference,
    )
    .unwrap();
    assert_eq!((train.len(), test.len(), train.shape), (10, 2, [3, 32, 32]));
    assert_eq!(test, set);
}

/// The variable that names the shared folder (holding `data/mnist-sample`).
const SHARED_DIR_VAR: &str = "MARSCF_SHARED_DIR";

/// The shared folder of real MNIST digits, `$MARSCF_SHARED_DIR/data/mnist-sample`, by default
/// `../shared/data/mnist-sample` beside the workspace. Its absence fails the test: the data
/// is there in CI, and a test that passes without it would check nothing.
fn shared_mnist() -> PathBuf {
    let shared = std::env::var_os(SHARED_DIR_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared"));
    let dir = shared.join("data").join("mnist-sample");
    assert!(
        dir.is_dir(),
        "{} is not a folder: the shared MNIST sample (8,000 + 1,000 digits) is missing; set \
         {SHARED_DIR_VAR} to the folder that holds data/mnist-sample",
        dir.display()
    );
    dir
}

#[test]
fn reads_the_shared_mnist_sample() {
    let dir = shared_mnist();
    let (train, test) = load(DatasetName::Mnist, Some(&dir), MnistLayout::Grey28).unwrap();
    assert_eq!((train.len(), test.len()), (8000, 1000));
    assert_eq!(train.shape, [1, 28, 28]);
    for split in [&train, &test] {
        for class in 0..10 {
            assert!(split.labels.contains(&class));
        }
        assert!(split.labels.iter().all(|&l| l < 10));
        let mean =
            split.pixels.iter().map(|&p| f64::from(p)).sum::<f64>() / split.pixels.len() as f64;
        assert!((20.0..60.0).contains(&mean), "mean pixel {mean}");
    }
    let (reference, _) = load(DatasetName::Mnist, Some(&dir), MnistLayout::Reference).unwrap();
    assert_eq!(reference.shape, [3, 32, 32]);
    // Padding: the first two rows are background; the channels are copies.
    assert!(reference.image(0)[..64].iter().all(|&v| v == 0));
    let image = reference.image(0);
    assert_eq!(image[..1024], image[1024..2048]);
}
