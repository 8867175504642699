//! Downsampled ImageNet's readers on npz batches and image folders written by the shared
//! builders.

use marscf_data::DataError;
use marscf_data::imagenet::{IMAGENET_CLASSES, ImagenetSize, load, parse_npz_batch};
use marscf_test_support::{
    files::{concat, imagenet_npz, npy, npz, png, test_images},
    temp_dir,
};

#[test]
fn reads_npz_batches_with_and_without_labels() {
    let set = test_images([3, 32, 32], 3, IMAGENET_CLASSES);
    let one_based: Vec<i64> = set.labels.iter().map(|&l| i64::from(l) + 1).collect();
    for compressed in [false, true] {
        let bytes = imagenet_npz(&set, Some(&one_based), compressed);
        let parsed =
            parse_npz_batch(std::io::Cursor::new(bytes), "b.npz", ImagenetSize::S32).unwrap();
        assert_eq!(parsed, set);
    }
    let bytes = imagenet_npz(&set, None, false);
    let parsed = parse_npz_batch(std::io::Cursor::new(bytes), "b.npz", ImagenetSize::S32).unwrap();
    assert_eq!(parsed.labels, vec![0; 3]);
    assert_eq!(parsed.pixels, set.pixels);
}

#[test]
fn rejects_bad_npz_batches() {
    let set = test_images([3, 32, 32], 2, 10);
    let parse = |bytes: Vec<u8>, size| parse_npz_batch(std::io::Cursor::new(bytes), "b.npz", size);
    let err = parse(
        imagenet_npz(&set, Some(&[1, 1001]), false),
        ImagenetSize::S32,
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 1,
                label: 1001,
                ..
            }
        ),
        "{err}"
    );
    let err = parse(imagenet_npz(&set, Some(&[0, 1]), false), ImagenetSize::S32).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::LabelOutOfRange {
                index: 0,
                label: 0,
                ..
            }
        ),
        "{err}"
    );
    let err = parse(imagenet_npz(&set, Some(&[1]), false), ImagenetSize::S32).unwrap_err();
    assert!(matches!(err, DataError::Mismatch { .. }), "{err}");
    let err = parse(imagenet_npz(&set, None, false), ImagenetSize::S64).unwrap_err();
    assert!(
        matches!(&err, DataError::Mismatch { path: file, .. } if file == std::path::Path::new("b.npz:data.npy")),
        "{err}"
    );
    let no_data = npz(&[("labels", npy("<i8", &[0], &[]))], false);
    assert!(matches!(
        parse(no_data, ImagenetSize::S32),
        Err(DataError::Npz { .. })
    ));
    let mut corrupt = imagenet_npz(&set, None, false);
    corrupt.truncate(corrupt.len() / 2);
    let err = parse(corrupt, ImagenetSize::S32).unwrap_err();
    assert!(
        matches!(&err, DataError::Zip { path: file, .. } if file == std::path::Path::new("b.npz")),
        "{err}"
    );
}

#[test]
fn loads_npz_files_from_sub_folders_in_batch_order() {
    let root = temp_dir("imagenet");
    let train_dir = root.path().join("Imagenet32_train_npz");
    std::fs::create_dir(&train_dir).unwrap();
    let mut parts = Vec::new();
    for k in [1, 2, 10] {
        let mut set = test_images([3, 32, 32], 2, IMAGENET_CLASSES);
        set.labels.iter_mut().for_each(|l| *l = k);
        let labels: Vec<i64> = set.labels.iter().map(|&l| i64::from(l) + 1).collect();
        std::fs::write(
            train_dir.join(format!("train_data_batch_{k}.npz")),
            imagenet_npz(&set, Some(&labels), false),
        )
        .unwrap();
        parts.push(set);
    }
    let val = test_images([3, 32, 32], 1, 10);
    std::fs::write(
        root.path().join("val_data.npz"),
        imagenet_npz(&val, Some(&[1]), true),
    )
    .unwrap();
    let (train, got_val) = load(root.path(), ImagenetSize::S32).unwrap();
    assert_eq!(train.len(), 6);
    assert_eq!(train.labels, vec![1, 1, 2, 2, 10, 10]);
    assert_eq!(train, concat(&parts));
    assert_eq!(got_val.labels, vec![0]);
    std::fs::remove_file(root.path().join("val_data.npz")).unwrap();
    let text = load(root.path(), ImagenetSize::S32)
        .unwrap_err()
        .to_string();
    assert!(text.contains("no val_data.npz"), "{text}");
}

#[test]
fn loads_image_folders_and_names_a_missing_split() {
    let root = temp_dir("imagenet");
    for (split, classes) in [("train_64x64", 2), ("valid_64x64", 1)] {
        for c in 0..classes {
            let dir = root.path().join(split).join(format!("class{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(
                dir.join("0.png"),
                png(64, 64, &vec![c as u8 * 50; 64 * 64 * 3]),
            )
            .unwrap();
        }
    }
    let (train, valid) = load(root.path(), ImagenetSize::S64).unwrap();
    assert_eq!((train.len(), valid.len(), train.shape), (2, 1, [3, 64, 64]));
    assert_eq!(train.labels, vec![0, 1]);
    assert!(train.image(1).iter().all(|&v| v == 50));
    // 64x64 images are not ImageNet 32x32.
    std::fs::rename(
        root.path().join("train_64x64"),
        root.path().join("train_32x32"),
    )
    .unwrap();
    std::fs::rename(
        root.path().join("valid_64x64"),
        root.path().join("valid_32x32"),
    )
    .unwrap();
    let err = load(root.path(), ImagenetSize::S32).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::ImageSize {
                expected: (32, 32),
                got: (64, 64),
                ..
            }
        ),
        "{err}"
    );
    std::fs::remove_dir_all(root.path().join("valid_32x32")).unwrap();
    let err = load(root.path(), ImagenetSize::S32).unwrap_err();
    assert!(matches!(err, DataError::MissingData { .. }), "{err}");
    assert!(err.to_string().contains("valid_32x32"), "{err}");
    let empty = temp_dir("imagenet");
    let text = load(empty.path(), ImagenetSize::S32)
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("train_32x32/") && text.contains("val_data.npz"),
        "{text}"
    );
}
