//! FID against pytorch-fid: the Inception network's pool3 features on its own numbers, the
//! Fréchet distance against scipy's `sqrtm` formula, the statistics files in its format.

use std::collections::BTreeMap;

use burn::tensor::TensorData;
use marscf::data::atomic_file::Existing;
use marscf::data::npy::NpyArray;
use marscf::fid::{
    FEATURES, FeatureMoments, FidInception, FidStatistics, ImageBatch, frechet_distance,
    read_state_dict,
};
use marscf_test_support::fid::{feature_set, fixture, uniform};
use marscf_test_support::model::device;
use marscf_test_support::temp_dir;

/// The fixture's network: the formula's convolution weights, the batch norms that
/// pytorch-fid calibrated (read from the `.pth` torch wrote).
fn fixture_network() -> FidInception {
    let path = fixture("inception-bn.pth");
    let mut tensors = read_state_dict(&path).unwrap();
    let shapes: BTreeMap<String, Vec<usize>> =
        serde_json::from_slice(&std::fs::read(fixture("conv-shapes.json")).unwrap()).unwrap();
    assert_eq!(shapes.len(), 94, "every convolution of the FID Inception");
    for (key, shape) in shapes {
        let n: usize = shape.iter().product();
        let bound = (6.0 / (n / shape[0]) as f64).sqrt();
        let values: Vec<f32> = uniform(&key, n)
            .into_iter()
            .map(|u| ((2.0 * u - 1.0) * bound) as f32)
            .collect();
        tensors.insert(key, TensorData::new(values, shape));
    }
    FidInception::from_tensors(tensors, &path, &device()).unwrap()
}

/// The `.npy` fixture `name` as f64 values and its shape.
fn npy(name: &str) -> (Vec<usize>, Vec<f64>) {
    let array = NpyArray::from_vec(std::fs::read(fixture(name)).unwrap(), name).unwrap();
    (array.shape.clone(), array.to_f64(name).unwrap())
}

#[test]
fn pool3_features_match_pytorch_fid() {
    let net = fixture_network();
    // The script's 8 images, uint8 3x32x32 each (C, H, W order), as RGB rows.
    let bytes: Vec<u8> = uniform("test", 8 * 3 * 32 * 32)
        .into_iter()
        .map(|u| (u * 256.0).floor() as u8)
        .collect();
    let mut pixels = Vec::with_capacity(bytes.len());
    for i in 0..8 {
        for y in 0..32 {
            for x in 0..32 {
                for c in 0..3 {
                    pixels.push(bytes[((i * 3 + c) * 32 + y) * 32 + x]);
                }
            }
        }
    }
    let batch = ImageBatch {
        pixels,
        count: 8,
        height: 32,
        width: 32,
    };
    let got: Vec<f32> = net
        .features(batch.tensor(&device()))
        .into_data()
        .try_into_vec()
        .unwrap();
    let (shape, want) = npy("features.npy");
    assert_eq!(shape, [8, FEATURES]);
    let worst = got
        .iter()
        .zip(&want)
        .map(|(g, w)| (*g as f64 - w).abs())
        .fold(0.0, f64::max);
    let scale = want.iter().map(|w| w.abs()).sum::<f64>() / want.len() as f64;
    assert!(
        scale > 0.1,
        "features of a working network: mean |f| {scale}"
    );
    // f32 through 94 convolutions summed in another order than torch's: within 2e-4 of the
    // largest feature (a wrong layer moves features by a tenth of it or more).
    let largest = want.iter().fold(0.0, |m: f64, w| m.max(w.abs()));
    assert!(
        worst < 2e-4 * largest,
        "largest difference {worst} of {largest}"
    );
}

/// The statistics of `x` (`n x 2048`, f64) gathered as f32 features in batches of 64.
fn statistics(x: &[f64]) -> FidStatistics {
    let mut moments = FeatureMoments::new(FEATURES);
    let x: Vec<f32> = x.iter().map(|&v| v as f32).collect();
    for batch in x.chunks(64 * FEATURES) {
        moments.add(batch);
    }
    moments.finish().unwrap()
}

#[test]
fn the_frechet_distance_matches_scipy_sqrtm() {
    let want: BTreeMap<String, f64> =
        serde_json::from_slice(&std::fs::read(fixture("frechet.json")).unwrap()).unwrap();
    // 500 samples in 2048 dimensions (singular covariances) and 5,000.
    for n in [500, 5000] {
        let a = statistics(&feature_set(&format!("a{n}"), n, 0.0));
        let b = statistics(&feature_set(&format!("b{n}"), n, 0.05));
        let got = frechet_distance(&a, &b).unwrap();
        let want = want[&n.to_string()];
        // Measured: 1e-7 apart where the product is singular (scipy's sqrtm against the
        // eigenvalues cut at rounding), 3e-11 at 5,000; a covariance divided by N instead
        // of N - 1 moves either by 1e-4 or more.
        let bound = if n == 500 { 1e-6 } else { 1e-9 };
        assert!(
            ((got - want) / want).abs() < bound,
            "{n} samples: {got} against scipy's {want}"
        );
        let itself = frechet_distance(&a, &a).unwrap();
        let trace: f64 = (0..FEATURES).map(|i| a.sigma[i * FEATURES + i]).sum();
        assert!(itself.abs() < 1e-9 * trace, "FID(A, A) = {itself}");
    }
}

#[test]
fn statistics_files_read_as_numpy_wrote_them_and_back() {
    // numpy.savez of the mean and covariance of the script's 40 x 8 features.
    let stats = FidStatistics::read_npz(&fixture("stats-d8.npz")).unwrap();
    let x: Vec<f64> = feature_set("d8", 40, 0.0)
        .chunks(2048)
        .flat_map(|row| row[..8].to_vec())
        .collect();
    for j in 0..8 {
        let mean = (0..40).map(|i| x[i * 8 + j]).sum::<f64>() / 40.0;
        assert!((stats.mu[j] - mean).abs() < 1e-12);
    }
    let mut moments = FeatureMoments::new(8);
    moments.add(&x.iter().map(|&v| v as f32).collect::<Vec<_>>());
    let ours = moments.finish().unwrap();
    for (o, s) in ours.sigma.iter().zip(&stats.sigma) {
        assert!((o - s).abs() < 1e-6, "{o} against numpy's {s}");
    }

    let dir = temp_dir("fid-stats");
    let path = dir.join("stats.npz");
    stats.write_npz(&path, Existing::Keep).unwrap();
    assert_eq!(FidStatistics::read_npz(&path).unwrap(), stats);
    let err = stats.write_npz(&path, Existing::Keep).unwrap_err();
    assert!(matches!(err, marscf::ModelError::Exists { .. }), "{err}");
    // Not an .npz: an error naming the file.
    let not_npz = FidStatistics::read_npz(&fixture("features.npy")).unwrap_err();
    assert!(not_npz.to_string().contains("features.npy"), "{not_npz}");
}

#[test]
fn folders_and_arrays_read_as_pytorch_fid_lists_them() {
    use marscf::fid::{folder_images, npz_images};
    let dir = temp_dir("fid-images");
    let folder = dir.join("images");
    std::fs::create_dir_all(&folder).unwrap();
    // Listed by name: b.png after a.png; grey read as RGB; other files skipped.
    let rgb = image::RgbImage::from_fn(4, 3, |x, y| image::Rgb([x as u8, y as u8, 7]));
    let grey = image::GrayImage::from_fn(4, 3, |x, y| image::Luma([(10 * x + y) as u8]));
    rgb.save(folder.join("b.png")).unwrap();
    grey.save(folder.join("a.png")).unwrap();
    rgb.save(folder.join("c.png")).unwrap();
    std::fs::write(folder.join("notes.txt"), b"not an image").unwrap();
    let source = folder_images(&folder, 2).unwrap();
    assert_eq!(source.len, 3);
    let batches: Vec<ImageBatch> = source.batches.map(Result::unwrap).collect();
    assert_eq!(batches.iter().map(|b| b.count).collect::<Vec<_>>(), [2, 1]);
    let first = &batches[0];
    assert_eq!((first.height, first.width), (3, 4));
    // a.png's pixel (x 1, y 2) is 12 in each channel; b.png's (3, 0) is (3, 0, 7).
    assert_eq!(first.pixels[(2 * 4 + 1) * 3..][..3], [12, 12, 12]);
    assert_eq!(first.pixels[12 * 3 + 3 * 3..][..3], [3, 0, 7]);
    // [0, 1] channels first, as ToTensor.
    let x: Vec<f32> = first.tensor(&device()).into_data().try_into_vec().unwrap();
    let at =
        |image: usize, channel: usize, y: usize, x: usize| ((image * 3 + channel) * 3 + y) * 4 + x;
    assert_eq!(x[at(1, 1, 1, 3)], 1.0 / 255.0); // b.png's green at (x 3, y 1) is y
    assert_eq!(x[at(1, 2, 1, 3)], 7.0 / 255.0);
    assert_eq!(x[at(0, 0, 2, 1)], 12.0 / 255.0);
    // Two sizes: an error naming both.
    image::RgbImage::new(5, 5)
        .save(folder.join("d.png"))
        .unwrap();
    let err = folder_images(&folder, 8)
        .unwrap()
        .batches
        .find_map(Result::err)
        .expect("an error");
    assert!(err.to_string().contains("5x5"), "{err}");
    // Another format than PNG: refused, naming the file.
    std::fs::write(folder.join("e.jpg"), b"not decoded").unwrap();
    let err = folder_images(&folder, 8).err().expect("an error");
    assert!(err.to_string().contains("e.jpg"), "{err}");
    // No image at all.
    let empty = dir.join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let err = folder_images(&empty, 8).err().expect("an error");
    assert!(matches!(err, marscf::ModelError::NoImages { .. }), "{err}");

    // An .npz of grey images, N x H x W x 1: repeated to RGB.
    let npz = dir.join("grey.npz");
    let data: Vec<u8> = (0..2 * 3 * 4).map(|v| v as u8).collect();
    let file = std::fs::File::create(&npz).unwrap();
    marscf::data::npy::write_npz(
        file,
        vec![marscf::data::npy::NpzMember {
            name: "arr_0",
            descr: "|u1",
            shape: &[2, 3, 4, 1],
            data: Box::new(|out: &mut dyn std::io::Write| out.write_all(&data)),
        }],
    )
    .unwrap();
    let batches: Vec<ImageBatch> = npz_images(&npz, 8)
        .unwrap()
        .batches
        .map(Result::unwrap)
        .collect();
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].count, 2);
    assert_eq!(batches[0].pixels[13 * 3..14 * 3], [13, 13, 13]);
    // Images without pixels: refused.
    let flat = dir.join("flat.npz");
    marscf::data::npy::write_npz(
        std::fs::File::create(&flat).unwrap(),
        vec![marscf::data::npy::NpzMember {
            name: "arr_0",
            descr: "|u1",
            shape: &[2, 0, 4, 3],
            data: Box::new(|_: &mut dyn std::io::Write| Ok(())),
        }],
    )
    .unwrap();
    let err = npz_images(&flat, 8).err().expect("an error");
    assert!(err.to_string().contains("0x4"), "{err}");
}

/// The weights' download: bytes other than the published file's are refused and nothing is
/// left; a server that is not there says what to place where.
#[cfg(feature = "download")]
#[test]
fn downloaded_weights_are_checked_by_their_digest() {
    use marscf::fid::{INCEPTION_FILE, download_inception};
    use marscf_test_support::http::{dead_url, serve};
    let dir = temp_dir("fid-download");
    let base = serve(
        vec![(format!("/{INCEPTION_FILE}"), b"other weights".to_vec())],
        1,
    );
    let err = download_inception(&base, &dir).unwrap_err();
    assert!(
        matches!(&err, marscf::data::DataError::Digest { got, .. }
            if *got == marscf::data::digest::sha256(b"other weights")),
        "{err}"
    );
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0, "nothing left");
    let err = download_inception(&dead_url(), &dir).unwrap_err();
    assert!(err.to_string().contains("--inception"), "{err}");
}
