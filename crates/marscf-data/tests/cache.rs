//! The decode cache: a cached split equals the one decoded into memory byte for byte, a
//! second load maps the cache without decoding, and a stale or damaged cache is rebuilt.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use marscf_data::cache::{CacheKey, FORMAT, Manifest};
use marscf_data::cifar::{self, CIFAR_SHAPE};
use marscf_data::{CacheDir, DataError, DatasetName, ImageSet, LoadOptions, MnistLayout};
use marscf_data::{load, load_with};
use marscf_test_support::{
    files::{
        cifar_binary, cifar_pickles, gzip, idx_images, idx_labels, imagenet_npz, png, test_images,
    },
    temp_dir,
};

/// A small RGB image, different for every `seed`.
fn rgb(side: u32, seed: usize) -> Vec<u8> {
    (0..(side * side * 3) as usize)
        .map(|i| (i * 31 + seed * 17) as u8)
        .collect()
}

/// `imagenet32` as image folders: 2 classes of 3 images for training, 2 for validation.
fn imagenet_folders(root: &Path) {
    for (split, classes) in [("train_32x32", 2), ("valid_32x32", 1)] {
        for c in 0..classes {
            let dir = root.join(split).join(format!("n0{c}"));
            std::fs::create_dir_all(&dir).unwrap();
            for i in 0..3 - c {
                let bytes = png(32, 32, &rgb(32, c * 10 + i));
                std::fs::write(dir.join(format!("{i}.png")), bytes).unwrap();
            }
        }
    }
}

/// `imagenet32` as npz batches: 3 training batches, a deflated validation file.
fn imagenet_npz_files(root: &Path) {
    for k in 1..=3 {
        let set = test_images([3, 32, 32], k + 1, 10);
        let labels: Vec<i64> = (0..=k as i64).map(|l| l + 1).collect();
        let name = format!("train_data_batch_{k}.npz");
        std::fs::write(root.join(name), imagenet_npz(&set, Some(&labels), false)).unwrap();
    }
    let val = test_images([3, 32, 32], 2, 10);
    std::fs::write(root.join("val_data.npz"), imagenet_npz(&val, None, true)).unwrap();
}

fn cifar_files(root: &Path, python: bool) {
    let dir = root.join(if python {
        cifar::PYTHON_FOLDER
    } else {
        cifar::BINARY_FOLDER
    });
    std::fs::create_dir_all(&dir).unwrap();
    let layout = if python {
        cifar::CifarLayout::Python
    } else {
        cifar::CifarLayout::Binary
    };
    let (train, test) = layout.files();
    for (i, name) in train.iter().chain([&test]).enumerate() {
        let bytes = if python {
            cifar_pickles::VALID[i % 3].to_vec()
        } else {
            cifar_binary(&test_images(CIFAR_SHAPE, i + 1, 10))
        };
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn mnist_files(root: &Path) {
    let digits = test_images([1, 28, 28], 3, 10);
    let labels: Vec<u8> = digits.labels.iter().map(|&l| l as u8).collect();
    for (images, labels_name) in [
        ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
        ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
    ] {
        std::fs::write(
            root.join(images),
            gzip(&idx_images(&digits.pixels, 3, 28, 28)),
        )
        .unwrap();
        std::fs::write(root.join(labels_name), gzip(&idx_labels(&labels))).unwrap();
    }
}

fn cached(layout: MnistLayout) -> LoadOptions {
    LoadOptions::cached(layout, CacheDir::InDataRoot)
}

fn cache_files(root: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root.join(".marscf-cache"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Writes `bytes` over `path`, keeping its modification time.
fn overwrite_keeping_mtime(path: &Path, bytes: &[u8]) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    std::fs::write(path, bytes).unwrap();
    let file = std::fs::File::options().write(true).open(path).unwrap();
    file.set_modified(modified).unwrap();
}

#[test]
fn cached_sets_equal_the_sets_decoded_into_memory() {
    type Writer = fn(&Path);
    let cases: [(DatasetName, Writer, MnistLayout); 5] = [
        (
            DatasetName::Imagenet32,
            imagenet_folders,
            MnistLayout::Reference,
        ),
        (
            DatasetName::Imagenet32,
            imagenet_npz_files,
            MnistLayout::Reference,
        ),
        (
            DatasetName::Cifar10,
            |r| cifar_files(r, false),
            MnistLayout::Reference,
        ),
        (
            DatasetName::Cifar10,
            |r| cifar_files(r, true),
            MnistLayout::Reference,
        ),
        (DatasetName::Mnist, mnist_files, MnistLayout::Grey32),
    ];
    for (name, write, layout) in cases {
        let root = temp_dir("cache");
        write(root.path());
        let (train, test) = load(name, Some(root.path()), layout).unwrap();
        for round in ["builds", "maps"] {
            let (c_train, c_test) = load_with(name, Some(root.path()), &cached(layout)).unwrap();
            assert!(c_train.pixels.is_mapped() && c_test.pixels.is_mapped());
            assert!(!train.pixels.is_mapped());
            assert_eq!((&c_train, &c_test), (&train, &test), "{name} {round}");
            for i in 0..train.len() {
                assert_eq!(c_train.image(i), train.image(i));
            }
            assert_eq!(c_train.take(2), train.take(2));
            assert!(
                c_train.take(2).pixels.is_mapped(),
                "take shares the mapping"
            );
        }
        let shape = name.shape(layout);
        let stem = |split| {
            CacheKey {
                dataset: name.name(),
                split,
                shape,
            }
            .stem()
        };
        let mut expected: Vec<String> = ["test", "train"]
            .iter()
            .flat_map(|s| ["labels", "manifest", "u8"].map(|e| format!("{}.{e}", stem(s))))
            .collect();
        expected.sort();
        assert_eq!(
            cache_files(root.path()),
            expected,
            "{name}: no temporaries left"
        );
    }
}

#[test]
fn a_second_load_maps_the_cache_without_decoding() {
    for (write, victim) in [
        (imagenet_folders as fn(&Path), "train_32x32/n01/1.png"),
        (imagenet_npz_files, "train_data_batch_2.npz"),
    ] {
        let root = temp_dir("cache");
        write(root.path());
        let options = cached(MnistLayout::Reference);
        let name = DatasetName::Imagenet32;
        let first = load_with(name, Some(root.path()), &options).unwrap();
        // Garbage of the same size and time: decoding it fails, so a load that succeeds
        // did not decode.
        let victim = root.path().join(victim);
        let size = std::fs::metadata(&victim).unwrap().len() as usize;
        overwrite_keeping_mtime(&victim, &vec![b'x'; size]);
        assert!(load(name, Some(root.path()), MnistLayout::Reference).is_err());
        assert_eq!(load_with(name, Some(root.path()), &options).unwrap(), first);
        // A new modification time makes the cache stale: it is decoded again (and fails).
        let file = std::fs::File::options().write(true).open(&victim).unwrap();
        file.set_modified(SystemTime::now()).unwrap();
        let err = load_with(name, Some(root.path()), &options).unwrap_err();
        assert!(
            matches!(err, DataError::Image { .. } | DataError::Zip { .. }),
            "{err}"
        );
    }
}

#[test]
fn a_damaged_cache_is_rebuilt() {
    let root = temp_dir("cache");
    imagenet_npz_files(root.path());
    let name = DatasetName::Imagenet32;
    let expected = load(name, Some(root.path()), MnistLayout::Reference).unwrap();
    let options = cached(MnistLayout::Reference);
    let (train, _) = load_with(name, Some(root.path()), &options).unwrap();
    assert_eq!(train, expected.0);
    drop(train);
    let file = |ext: &str| -> PathBuf {
        root.path()
            .join(".marscf-cache")
            .join(format!("imagenet32-train-3x32x32.{ext}"))
    };
    type Damage = (&'static str, fn(&Path));
    let damages: [Damage; 5] = [
        ("truncated pixels", |p| {
            let bytes = std::fs::read(p).unwrap();
            std::fs::write(p, &bytes[..bytes.len() - 1]).unwrap();
        }),
        ("longer pixels", |p| {
            let mut bytes = std::fs::read(p).unwrap();
            bytes.push(0);
            std::fs::write(p, bytes).unwrap();
        }),
        ("missing pixels", |p| std::fs::remove_file(p).unwrap()),
        ("garbage", |p| {
            std::fs::write(p, b"\x00\xffnot a cache").unwrap()
        }),
        ("empty", |p| std::fs::write(p, b"").unwrap()),
    ];
    for ext in ["u8", "labels", "manifest"] {
        for (what, damage) in damages {
            damage(&file(ext));
            let (train, test) = load_with(name, Some(root.path()), &options)
                .unwrap_or_else(|e| panic!("{ext} {what}: {e}"));
            assert_eq!((train, test), expected, "{ext} {what}: rebuilt");
        }
    }
    // A manifest that names another count or shape, or labels that changed.
    let text = std::fs::read_to_string(file("manifest")).unwrap();
    for (from, to) in [
        ("\"count\":9", "\"count\":8"),
        ("\"shape\":[3,32,32]", "\"shape\":[3,32,31]"),
    ] {
        assert!(text.contains(from), "{text}");
        std::fs::write(file("manifest"), text.replace(from, to)).unwrap();
        assert_eq!(
            load_with(name, Some(root.path()), &options).unwrap(),
            expected
        );
    }
    // A manifest of the text format 1 (before the JSON one): rebuilt, then read as JSON.
    std::fs::write(
        file("manifest"),
        "marscf-data decode cache 1\ndataset imagenet32\nsplit train\n",
    )
    .unwrap();
    assert_eq!(
        load_with(name, Some(root.path()), &options).unwrap(),
        expected
    );
    let rebuilt = std::fs::read(file("manifest")).unwrap();
    assert_eq!(
        Manifest::parse(&rebuilt, Path::new("m")).unwrap().format,
        FORMAT
    );
    let mut labels = std::fs::read(file("labels")).unwrap();
    labels[0] ^= 1;
    std::fs::write(file("labels"), labels).unwrap();
    assert_eq!(
        load_with(name, Some(root.path()), &options).unwrap(),
        expected
    );
    // A flipped pixel keeps the size: only the CRC-32 check (verify_cache) notices it.
    let mut pixels = std::fs::read(file("u8")).unwrap();
    pixels[100] ^= 0x55;
    std::fs::write(file("u8"), pixels).unwrap();
    let verified = LoadOptions {
        verify_cache: true,
        ..options.clone()
    };
    assert_eq!(
        load_with(name, Some(root.path()), &verified).unwrap(),
        expected
    );
    assert!(
        !cache_files(root.path())
            .iter()
            .any(|f| f.ends_with(".marscf-tmp")),
        "{:?}",
        cache_files(root.path())
    );
}

#[test]
fn an_unwritable_cache_folder_is_a_clear_error() {
    let root = temp_dir("cache");
    imagenet_npz_files(root.path());
    let not_a_folder = root.path().join("file");
    std::fs::write(&not_a_folder, b"x").unwrap();
    let dir = not_a_folder.join("cache");
    let options = LoadOptions::cached(MnistLayout::Reference, CacheDir::At(dir.clone()));
    let err = load_with(DatasetName::Imagenet32, Some(root.path()), &options).unwrap_err();
    assert!(
        matches!(&err, DataError::CacheUnwritable { path: d, .. } if *d == dir),
        "{err}"
    );
    assert!(err.to_string().contains("CacheDir::At"), "{err}");
    // An explicit folder elsewhere works, and holds only the cache.
    let elsewhere = temp_dir("cache");
    let options = LoadOptions::cached(
        MnistLayout::Reference,
        CacheDir::At(elsewhere.path().join("c")),
    );
    let (train, _) = load_with(DatasetName::Imagenet32, Some(root.path()), &options).unwrap();
    assert!(train.pixels.is_mapped());
    assert!(!root.path().join(".marscf-cache").exists());
}

#[test]
fn manifests_round_trip_and_reject_garbage() {
    let manifest = Manifest {
        format: FORMAT,
        dataset: "imagenet64".into(),
        split: "train".into(),
        shape: [3, 64, 64],
        count: 1_281_167,
        sources: 0x0123_4567_89ab_cdef,
        pixels_crc32: 0xdead_beef,
        labels_crc32: 7,
    };
    let text = manifest.to_json();
    let path = Path::new("m");
    assert_eq!(Manifest::parse(text.as_bytes(), path).unwrap(), manifest);
    for bad in [
        text.replace("\"count\":1281167", "\"count\":-1"),
        text.replace("\"count\":1281167", &format!("\"count\":{}", usize::MAX)),
        text.replace("\"shape\":[3,64,64]", "\"shape\":[3,64]"),
        text.replace("\"pixels_crc32\":3735928559", "\"pixels_crc32\":7735928559"),
        text.replace(&format!("\"format\":{FORMAT}"), "\"format\":1"),
        text.replace("\"labels_crc32\"", "\"extra\":0,\"labels_crc32\""),
        text[..text.len() / 2].to_string(),
        // The text manifest of format 1.
        "marscf-data decode cache 1\ndataset imagenet64\nsplit train\n".to_string(),
    ] {
        assert_ne!(bad, text);
        let err = Manifest::parse(bad.as_bytes(), path).unwrap_err();
        assert!(matches!(err, DataError::Cache { .. }), "{err}");
    }
}

#[test]
fn concat_and_take_work_on_mapped_sets() {
    let root = temp_dir("cache");
    imagenet_npz_files(root.path());
    let name = DatasetName::Imagenet32;
    let (memory, _) = load(name, Some(root.path()), MnistLayout::Reference).unwrap();
    let (mapped, _) = load_with(name, Some(root.path()), &cached(MnistLayout::Reference)).unwrap();
    let parts = [mapped.take(3), mapped.clone()];
    let joined = ImageSet::concat(mapped.shape, parts.into_iter().map(Ok::<_, DataError>)).unwrap();
    let expected = ImageSet::concat(
        memory.shape,
        [memory.take(3), memory.clone()]
            .into_iter()
            .map(Ok::<_, DataError>),
    )
    .unwrap();
    assert_eq!(joined, expected);
    assert_eq!(mapped.take(100), memory, "take of more than there is");
    assert_eq!(mapped.take(0).len(), 0);
}
