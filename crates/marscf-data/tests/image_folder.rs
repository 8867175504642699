//! Image folders on PNG and JPEG files written by the shared builders.

use marscf_data::DataError;
use marscf_data::image_folder::read_image_folder;
use marscf_test_support::{
    files::{jpeg, png},
    temp_dir,
};

fn rgb(w: u32, h: u32, seed: u8) -> Vec<u8> {
    (0..w * h * 3)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

#[test]
fn reads_class_folders_in_sorted_order() {
    let root = temp_dir("image_folder");
    for (class, seeds) in [("n02", &[5u8][..]), ("n01", &[1, 2][..])] {
        std::fs::create_dir(root.path().join(class)).unwrap();
        for (i, &seed) in seeds.iter().enumerate() {
            std::fs::write(
                root.path().join(class).join(format!("{i}.png")),
                png(4, 2, &rgb(4, 2, seed)),
            )
            .unwrap();
        }
    }
    std::fs::write(root.path().join(".DS_Store"), b"junk").unwrap();
    let folder = read_image_folder(root.path(), Some((4, 2))).unwrap();
    assert_eq!(folder.classes, vec!["n01", "n02"]);
    assert_eq!(folder.images.labels, vec![0, 0, 1]);
    assert_eq!(folder.images.shape, [3, 2, 4]);
    // Channel-major: the red plane first. Pixel (y=1, x=2) of image 1 (seed 2).
    let source = rgb(4, 2, 2);
    let image = folder.images.image(1);
    for c in 0..3 {
        assert_eq!(image[c * 8 + 6], source[6 * 3 + c]);
    }
}

#[test]
fn reads_a_flat_folder_and_jpeg() {
    let root = temp_dir("image_folder");
    std::fs::write(root.path().join("a.png"), png(8, 8, &[200; 192])).unwrap();
    std::fs::write(root.path().join("b.jpg"), jpeg(8, 8, &[100; 192])).unwrap();
    let folder = read_image_folder(root.path(), None).unwrap();
    assert_eq!(folder.images.len(), 2);
    assert_eq!(folder.images.labels, vec![0, 0]);
    assert!(
        folder.images.image(1).iter().all(|&v| v.abs_diff(100) <= 2),
        "JPEG is lossy"
    );
}

#[test]
fn rejects_bad_folders_naming_the_file() {
    let root = temp_dir("image_folder");
    let class = root.path().join("c0");
    std::fs::create_dir(&class).unwrap();
    std::fs::write(class.join("a.png"), png(4, 4, &[0; 48])).unwrap();
    std::fs::write(class.join("b.png"), png(4, 2, &[0; 24])).unwrap();
    let err = read_image_folder(root.path(), None).unwrap_err();
    assert!(
        matches!(&err, DataError::ImageSize { path, expected: (4, 4), got: (4, 2) } if path.ends_with("b.png")),
        "{err}"
    );
    let err = read_image_folder(root.path(), Some((8, 8))).unwrap_err();
    assert!(
        matches!(&err, DataError::ImageSize { path, .. } if path.ends_with("a.png")),
        "{err}"
    );

    std::fs::write(class.join("b.png"), b"this is a text file").unwrap();
    let err = read_image_folder(root.path(), None).unwrap_err();
    assert!(
        matches!(&err, DataError::Image { path, .. } if path.ends_with("b.png")),
        "{err}"
    );
    let mut truncated = png(4, 4, &[0; 48]);
    truncated.truncate(40);
    std::fs::write(class.join("b.png"), truncated).unwrap();
    let err = read_image_folder(root.path(), None).unwrap_err();
    assert!(
        matches!(&err, DataError::Image { path, .. } if path.ends_with("b.png")),
        "{err}"
    );
    std::fs::remove_file(class.join("b.png")).unwrap();

    std::fs::create_dir(root.path().join("c1")).unwrap();
    let err = read_image_folder(root.path(), None).unwrap_err();
    assert!(
        matches!(&err, DataError::EmptyFolder { path, .. } if path.ends_with("c1")),
        "{err}"
    );
    std::fs::write(root.path().join("README"), b"x").unwrap();
    let err = read_image_folder(root.path(), None).unwrap_err();
    assert!(
        matches!(&err, DataError::Mismatch { path: file, .. } if file.ends_with("README")),
        "{err}"
    );

    let empty = temp_dir("image_folder");
    assert!(matches!(
        read_image_folder(empty.path(), None),
        Err(DataError::EmptyFolder { .. })
    ));
    let missing = empty.path().join("nope");
    assert!(
        matches!(read_image_folder(&missing, None), Err(DataError::Io { path, .. }) if path == missing)
    );
}
