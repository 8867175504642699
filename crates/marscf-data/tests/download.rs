//! Downloads (feature `download`) against a server on 127.0.0.1, never the internet.

use std::path::Path;
use std::time::Duration;

use marscf_data::DataError;
use marscf_data::cifar::{BINARY_FOLDER, BINARY_TEST_FILE, BINARY_TRAIN_FILES};
use marscf_data::digest::sha256;
use marscf_data::download::{
    CIFAR10_ARCHIVE, MNIST_FILES, RemoteFile, download_cifar10, download_cifar10_archive,
    download_files, download_mnist,
};
use marscf_data::mnist::TRAIN_FILES;
use marscf_test_support::http::{dead_url, serve};
use marscf_test_support::{
    chain,
    files::{cifar_binary, idx_images, idx_labels, test_images},
    temp_dir,
};

fn files_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|d| {
            d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn downloads_verifies_and_caches_mnist_files() {
    let set = test_images([1, 28, 28], 3, 10);
    let labels: Vec<u8> = set.labels.iter().map(|&l| l as u8).collect();
    let bodies = [
        idx_images(&set.pixels, 3, 28, 28),
        idx_labels(&labels),
        idx_images(&set.pixels, 3, 28, 28),
        idx_labels(&labels),
    ];
    let digests: Vec<String> = bodies.iter().map(|b| sha256(b)).collect();
    let files: Vec<RemoteFile> = MNIST_FILES
        .iter()
        .zip(&bodies)
        .zip(&digests)
        .map(|((f, body), digest)| RemoteFile {
            name: f.name,
            size: body.len() as u64,
            sha256: digest,
        })
        .collect();
    let routes = files
        .iter()
        .zip(&bodies)
        .map(|(f, b)| (format!("/mnist/{}", f.name), b.clone()))
        .collect();
    let base = serve(routes, 4);
    let cache = temp_dir("download");
    let dir = cache.path().join("mnist");
    download_files(&format!("{base}mnist"), &files, &dir).unwrap();
    let mut names: Vec<String> = MNIST_FILES.iter().map(|f| f.name.to_string()).collect();
    names.sort();
    assert_eq!(
        files_in(&dir),
        names,
        "exactly the four files, no temporary ones"
    );
    let (train, test) = marscf_data::mnist::load(&dir).unwrap();
    assert_eq!((train.len(), test.len()), (3, 3));
    assert_eq!(train.pixels, *set.pixels);
    // Cached: a second call needs no server.
    download_files(&dead_url(), &files, &dir).unwrap();
}

#[test]
fn a_wrong_digest_is_rejected_and_nothing_is_left() {
    let base = serve(vec![("/f.gz".into(), b"tampered bytes".to_vec())], 3);
    let cache = temp_dir("download");
    let file = RemoteFile {
        name: "f.gz",
        size: 100,
        sha256: &sha256(b"the real bytes"),
    };
    let err = download_files(&base, &[file], cache.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Digest { got, .. } if *got == sha256(b"tampered bytes")),
        "{err}"
    );
    assert!(
        files_in(cache.path()).is_empty(),
        "{:?}",
        files_in(cache.path())
    );
    // The published MNIST table rejects these bytes too.
    let base = serve(
        vec![(format!("/{}", TRAIN_FILES.0), b"not mnist".to_vec())],
        1,
    );
    let err = download_mnist(&base, cache.path()).unwrap_err();
    assert!(matches!(err, DataError::Digest { .. }), "{err}");
    assert!(files_in(&cache.path().join("mnist")).is_empty());
    // A server that sends more than the size is cut off, then fails the digest.
    let base = serve(vec![("/f.gz".into(), vec![7; 1000])], 1);
    let file = RemoteFile {
        name: "f.gz",
        size: 10,
        sha256: &sha256(&[7; 1000]),
    };
    assert!(matches!(
        download_files(&base, &[file], cache.path()),
        Err(DataError::Digest { .. })
    ));
}

#[test]
fn an_unreachable_server_says_what_to_place_where() {
    let cache = temp_dir("download");
    let start = std::time::Instant::now();
    let err = download_mnist(&dead_url(), cache.path()).unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10), "fails fast");
    let text = err.to_string();
    assert!(matches!(err, DataError::Download { .. }), "{text}");
    assert!(
        text.contains("train-images-idx3-ubyte.gz") && text.contains("t10k-labels-idx1-ubyte.gz"),
        "{text}"
    );
    assert!(
        text.contains(&cache.path().join("mnist").display().to_string()),
        "{text}"
    );
    let err = download_cifar10(&dead_url(), cache.path()).unwrap_err();
    assert!(err.to_string().contains("cifar-10-binary.tar.gz"), "{err}");
    // A missing file on a live server: the status is reported.
    let err = download_mnist(&serve(vec![], 1), cache.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::Download { .. }) && chain(&err).contains("404"),
        "{err}"
    );
}

fn cifar_archive(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        Vec::new(),
        flate2::Compression::fast(),
    ));
    for (path, data) in entries {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_cksum();
        tar.append_data(&mut header, path, data.as_slice()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap()
}

#[test]
fn downloads_and_unpacks_cifar10() {
    let set = test_images(marscf_data::cifar::CIFAR_SHAPE, 2, 10);
    let mut entries: Vec<(String, Vec<u8>)> = BINARY_TRAIN_FILES
        .iter()
        .chain([&BINARY_TEST_FILE])
        .map(|name| (format!("{BINARY_FOLDER}/{name}"), cifar_binary(&set)))
        .collect();
    entries.push((format!("{BINARY_FOLDER}/readme.html"), b"<html>".to_vec()));
    entries.push(("elsewhere/data_batch_1.bin".into(), b"ignored".to_vec()));
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(p, d)| (p.as_str(), d.clone()))
        .collect();
    let archive = cifar_archive(&refs);
    let entry = RemoteFile {
        name: CIFAR10_ARCHIVE.name,
        size: archive.len() as u64,
        sha256: &sha256(&archive),
    };
    let base = serve(vec![(format!("/{}", CIFAR10_ARCHIVE.name), archive)], 2);
    let cache = temp_dir("download");
    let dir = download_cifar10_archive(&base, &entry, cache.path()).unwrap();
    assert_eq!(dir, cache.path().join(BINARY_FOLDER));
    assert_eq!(
        files_in(cache.path()),
        vec![BINARY_FOLDER.to_string()],
        "archive removed, no temporaries"
    );
    let (train, test) = marscf_data::cifar::load(cache.path()).unwrap();
    assert_eq!((train.len(), test), (10, set));
    // Already unpacked: no network needed.
    download_cifar10_archive(&dead_url(), &entry, cache.path()).unwrap();

    // An archive without the batches is an error and leaves no folder.
    let bad = cifar_archive(&[("cifar-10-batches-bin/readme.html", b"x".to_vec())]);
    let entry = RemoteFile {
        name: CIFAR10_ARCHIVE.name,
        size: bad.len() as u64,
        sha256: &sha256(&bad),
    };
    let base = serve(vec![(format!("/{}", CIFAR10_ARCHIVE.name), bad)], 1);
    let other = temp_dir("download");
    let err = download_cifar10_archive(&base, &entry, other.path()).unwrap_err();
    assert!(
        matches!(&err, DataError::ArchiveIncomplete { missing, .. } if missing.iter().any(|m| m.ends_with("data_batch_1.bin"))),
        "{err}"
    );
    assert_eq!(
        files_in(other.path()),
        vec![CIFAR10_ARCHIVE.name.to_string()],
        "only the verified archive"
    );
}
