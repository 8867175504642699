//! Seeded corpus test, the deterministic companion of the cargo-fuzz targets in `fuzz/`:
//! every parser is fed thousands of random, truncated and corrupted variants of valid files
//! (from a seeded RNG) and must return `Ok` or a [`DataError`], never panic.

use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

use marscf_data::DataError;
use marscf_data::cache::Manifest;
use marscf_data::cifar::{CIFAR_SHAPE, parse_binary_batch};
use marscf_data::cifar_pickle::parse_python_batch;
use marscf_data::idx::{parse_images, parse_labels};
use marscf_data::image_folder::decode_rgb;
use marscf_data::imagenet::{ImagenetSize, parse_npz_batch};
use marscf_data::mnist::MnistSplit;
use marscf_data::npy::NpyArray;
use marscf_test_support::files::{
    cifar_binary, cifar_pickles, gzip, idx_images, idx_labels, imagenet_npz, jpeg, npy, png,
    test_images,
};

/// Cases per parser.
const CASES: usize = 3000;

/// A parser: `Ok` if it accepted the input, else the error it must return instead of
/// panicking (the signature is the assertion that every failure is a [`DataError`]).
type Parser = Box<dyn Fn(&[u8]) -> Result<(), DataError>>;

/// `(name, valid seed files, parser)`.
fn parsers() -> Vec<(&'static str, Vec<Vec<u8>>, Parser)> {
    let mnist = test_images([1, 28, 28], 2, 10);
    let labels: Vec<u8> = mnist.labels.iter().map(|&l| l as u8).collect();
    let images = idx_images(&mnist.pixels, 2, 28, 28);
    let cifar = test_images(CIFAR_SHAPE, 2, 10);
    let imagenet = test_images([3, 32, 32], 2, 10);
    let rgb: Vec<u8> = (0..6 * 5 * 3).map(|i| i as u8).collect();
    let labels = idx_labels(&labels);
    let labels_for_split = labels.clone();
    vec![
        (
            "idx images",
            vec![images.clone(), gzip(&images)],
            Box::new(|b| parse_images(b, "f").map(drop)),
        ),
        (
            "idx labels",
            vec![labels.clone(), gzip(&labels)],
            Box::new(|b| parse_labels(b, "f").map(drop)),
        ),
        (
            "mnist split",
            vec![images.clone(), gzip(&images)],
            Box::new(move |b| MnistSplit::from_idx(b, &labels_for_split, ("i", "l")).map(drop)),
        ),
        (
            "cifar binary",
            vec![cifar_binary(&cifar)],
            Box::new(|b| parse_binary_batch(b, "f").map(drop)),
        ),
        (
            "cifar pickle",
            cifar_pickles::VALID.map(<[u8]>::to_vec).to_vec(),
            Box::new(|b| parse_python_batch(b, "f").map(drop)),
        ),
        (
            "npy",
            vec![npy("<i8", &[2], &[1; 16]), npy("|u1", &[2, 3], &[1; 6])],
            Box::new(|b| {
                NpyArray::from_vec(b.to_vec(), "f")
                    .and_then(|a| a.to_i64("f"))
                    .map(drop)
            }),
        ),
        (
            "npz batch",
            vec![
                imagenet_npz(&imagenet, Some(&[1, 2]), false),
                imagenet_npz(&imagenet, Some(&[5, 6]), true),
            ],
            Box::new(|b| parse_npz_batch(Cursor::new(b), "f", ImagenetSize::S32).map(drop)),
        ),
        (
            "cache manifest",
            vec![manifest()],
            Box::new(|b| Manifest::parse(b, Path::new("f")).map(drop)),
        ),
        (
            "image",
            vec![png(6, 5, &rgb), jpeg(6, 5, &rgb)],
            Box::new(|b| decode_rgb(b, Path::new("f")).map(drop)),
        ),
    ]
}

/// A decode cache's manifest.
fn manifest() -> Vec<u8> {
    Manifest {
        format: marscf_data::cache::FORMAT,
        dataset: "imagenet64".into(),
        split: "train".into(),
        shape: [3, 64, 64],
        count: 1_281_167,
        sources: 0x0123_4567_89ab_cdef,
        pixels_crc32: 0xdead_beef,
        labels_crc32: 7,
    }
    .to_json()
    .into_bytes()
}

/// A variant of `seed`: truncated, bytes overwritten, bytes inserted, or random bytes.
fn mutate(seed: &[u8], rng: &mut StdRng) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    match rng.random_range(0..5) {
        0 => bytes.truncate(rng.random_range(0..=seed.len())),
        1 | 2 => {
            // Corruptions cluster in the headers, where the parsers branch.
            let span = if rng.random_bool(0.7) {
                bytes.len().min(128)
            } else {
                bytes.len()
            };
            for _ in 0..rng.random_range(1..=8) {
                if span > 0 {
                    let at = rng.random_range(0..span);
                    bytes[at] = if rng.random_bool(0.5) {
                        rng.random()
                    } else {
                        [0, 0xff, 0x7f, 0x80][at % 4]
                    };
                }
            }
        }
        3 => {
            let at = rng.random_range(0..=bytes.len());
            let extra: Vec<u8> = (0..rng.random_range(1..64)).map(|_| rng.random()).collect();
            bytes.splice(at..at, extra);
        }
        _ => {
            bytes = (0..rng.random_range(0..512))
                .map(|_| rng.random())
                .collect();
            // Sometimes behind a valid magic, to get past the first check.
            if rng.random_bool(0.5) {
                bytes.splice(0..0, seed[..seed.len().min(16)].iter().copied());
            }
        }
    }
    bytes
}

#[test]
fn no_parser_panics_on_corrupt_input() {
    let mut rng = StdRng::seed_from_u64(0x5eed_da7a);
    for (name, seeds, parse) in parsers() {
        for seed in &seeds {
            if let Err(e) = parse(seed) {
                panic!("{name}: a valid seed file is accepted, not: {e}");
            }
        }
        let mut accepted = 0;
        for case in 0..CASES {
            let input = mutate(&seeds[case % seeds.len()], &mut rng);
            match catch_unwind(AssertUnwindSafe(|| parse(&input))) {
                Ok(result) => accepted += usize::from(result.is_ok()),
                Err(_) => panic!("{name}: panicked on case {case}: {input:02x?}"),
            }
        }
        assert!(accepted < CASES, "{name}: some corrupt inputs are rejected");
    }
}
