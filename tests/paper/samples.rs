//! Sample folders and their `.npz`: resumable, deterministic, never overwriting.

use std::path::Path;

use marscf::data::atomic_file::Existing;
use marscf::data::npy::Npz;
use marscf::data::{MnistLayout, embedded};
use marscf::samples::{
    MANIFEST, PixelLayout, SampleSettings, remove_sample_folder, sample_path, write_sample_folder,
    write_samples_npz,
};
use marscf::{MarScf, MarScfConfig, ModelError};
use marscf_test_support::model::{device, exclusive_rng, tiny_model};
use marscf_test_support::numerics::perturb;
use marscf_test_support::temp_dir;

/// `config`'s model initialised on 16 embedded digits of `layout`, its weights perturbed
/// so that samples are not the initial model's.
fn model(config: &MarScfConfig, layout: MnistLayout) -> MarScf {
    let set = marscf::data::ImageSet::from_mnist(&embedded::train(), layout).take(16);
    let indices: Vec<usize> = (0..set.len()).collect();
    let options = marscf::data::BatchOptions {
        augment: false,
        dequantize: true,
        bits: config.bits,
    };
    let x = marscf::data::make_batch(
        &set,
        &indices,
        options,
        &mut marscf::data::stream(1, 1, 1),
        &device(),
    );
    perturb(config.init(&device()).unwrap().initialize(x).unwrap(), 0.02)
}

fn settings(temperature: f64) -> SampleSettings {
    SampleSettings {
        model: "tiny".into(),
        temperature,
        seed: 5,
        batch_size: 4,
        layout: PixelLayout::AsModel,
    }
}

/// The PNG files of `folder`, by name.
fn pngs(folder: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".png"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_folder_resumes_with_the_same_images_and_refuses_other_settings() {
    let _rng = exclusive_rng();
    let model = model(&tiny_model(), MnistLayout::Grey28);
    let dir = temp_dir("samples-resume");
    let folder = dir.join("samples");
    let mut calls = 0;
    let done = write_sample_folder(&model, &settings(0.7), 10, &folder, &device(), &mut |_| {
        calls += 1
    })
    .unwrap();
    assert_eq!((done.kept, done.written, done.total), (0, 10, 10));
    assert_eq!(calls, 1 + 3, "once before, then after each of 3 batches");
    assert_eq!(pngs(&folder).len(), 10);
    let first: Vec<Vec<u8>> = (0..10)
        .map(|i| std::fs::read(sample_path(&folder, i)).unwrap())
        .collect();
    let image = image::open(sample_path(&folder, 0)).unwrap();
    assert_eq!((image.width(), image.height()), (28, 28));
    assert_eq!(image.color(), image::ColorType::L8);
    assert_ne!(first[0], first[1], "two samples differ");

    // A run cut short: four images gone (one batch whole), then the same settings again
    // and more images: the missing ones come back byte for byte, the rest are kept.
    for i in [2, 5, 8, 9] {
        std::fs::remove_file(sample_path(&folder, i)).unwrap();
    }
    let done =
        write_sample_folder(&model, &settings(0.7), 12, &folder, &device(), &mut |_| {}).unwrap();
    assert_eq!((done.kept, done.written, done.total), (6, 6, 12));
    for (i, bytes) in first.iter().enumerate() {
        assert_eq!(
            &std::fs::read(sample_path(&folder, i)).unwrap(),
            bytes,
            "image {i}"
        );
    }

    // Other settings: refused, nothing touched (not even a killed write's temporary file).
    let temporary = folder.join(".000012.png.a1b2c3.marscf-tmp");
    std::fs::write(&temporary, b"half").unwrap();
    let err = write_sample_folder(&model, &settings(1.0), 12, &folder, &device(), &mut |_| {})
        .unwrap_err();
    assert!(matches!(err, ModelError::SampleFolder { .. }), "{err}");
    assert_eq!(pngs(&folder).len(), 12);
    assert!(temporary.exists());
    // The same settings: the temporary file is the run's own, removed.
    write_sample_folder(&model, &settings(0.7), 12, &folder, &device(), &mut |_| {}).unwrap();
    assert!(!temporary.exists());

    // A file the run did not write, beside its images: refused, then the folder removed
    // only once it holds nothing else.
    std::fs::write(folder.join("notes.txt"), b"mine").unwrap();
    let err = write_sample_folder(&model, &settings(0.7), 12, &folder, &device(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    let err = remove_sample_folder(&folder).unwrap_err();
    assert!(err.to_string().contains("notes.txt"), "{err}");
    assert_eq!(pngs(&folder).len(), 12);
    std::fs::remove_file(folder.join("notes.txt")).unwrap();
    remove_sample_folder(&folder).unwrap();
    assert!(!folder.exists());

    // A folder of someone else's files: refused, the files stay.
    let theirs = dir.join("theirs");
    std::fs::create_dir_all(&theirs).unwrap();
    std::fs::write(theirs.join("photo.png"), b"mine").unwrap();
    let err = write_sample_folder(&model, &settings(0.7), 2, &theirs, &device(), &mut |_| {})
        .unwrap_err();
    assert!(err.to_string().contains("photo.png"), "{err}");
    assert_eq!(std::fs::read(theirs.join("photo.png")).unwrap(), b"mine");
    assert!(!theirs.join(MANIFEST).exists());
}

#[test]
fn the_npz_holds_the_folder_images_in_order() {
    let _rng = exclusive_rng();
    let model = model(&tiny_model(), MnistLayout::Grey28);
    let dir = temp_dir("samples-npz");
    let folder = dir.join("samples");
    write_sample_folder(&model, &settings(1.0), 6, &folder, &device(), &mut |_| {}).unwrap();
    let npz = dir.join("samples.npz");
    write_samples_npz(&folder, 6, &npz, Existing::Keep).unwrap();
    let mut archive = Npz::new(std::fs::File::open(&npz).unwrap(), "samples.npz").unwrap();
    let array = archive.array("arr_0").unwrap().unwrap();
    assert_eq!(array.shape, vec![6, 28, 28, 1]);
    assert!(!array.dtype.signed && array.dtype.size == 1);
    for i in 0..6 {
        let image = image::open(sample_path(&folder, i)).unwrap().to_luma8();
        assert_eq!(
            &array.data[i * 784..(i + 1) * 784],
            image.as_raw().as_slice()
        );
    }
    // An existing file is kept unless replacing was asked for.
    std::fs::write(&npz, b"keep").unwrap();
    let err = write_samples_npz(&folder, 6, &npz, Existing::Keep).unwrap_err();
    assert!(matches!(err, ModelError::Exists { .. }), "{err}");
    assert_eq!(std::fs::read(&npz).unwrap(), b"keep");
    // A missing image is an error naming it, and nothing is written.
    std::fs::remove_file(sample_path(&folder, 4)).unwrap();
    let other = dir.join("other.npz");
    let err = write_samples_npz(&folder, 6, &other, Existing::Keep).unwrap_err();
    assert!(err.to_string().contains("000004.png"), "{err}");
    assert!(!other.exists());
    assert_eq!(
        std::fs::read_dir(&dir).unwrap().count(),
        2,
        "no temporary left"
    );
}

#[test]
fn reference_layout_digits_as_the_model_sees_them_or_as_28x28_grey() {
    let _rng = exclusive_rng();
    let flow = marscf::core::MultiScaleFlowConfig::new([3, 32, 32], 2, 1, 8);
    let config = MarScfConfig::new(flow).with_prior(marscf::PriorKind::StandardNormal);
    let model = model(&config, MnistLayout::Reference);
    let dir = temp_dir("samples-layout");
    let as_model = dir.join("as-model");
    write_sample_folder(&model, &settings(1.0), 2, &as_model, &device(), &mut |_| {}).unwrap();
    let image = image::open(sample_path(&as_model, 1)).unwrap();
    assert_eq!(
        (image.width(), image.height(), image.color()),
        (32, 32, image::ColorType::Rgb8)
    );
    let grey = dir.join("grey");
    let grey_settings = SampleSettings {
        layout: PixelLayout::Grey28,
        ..settings(1.0)
    };
    write_sample_folder(&model, &grey_settings, 2, &grey, &device(), &mut |_| {}).unwrap();
    let digit = image::open(sample_path(&grey, 1)).unwrap().to_luma8();
    assert_eq!(digit.dimensions(), (28, 28));
    // The same draw: the grey digit is the centre of the RGB image, its channels averaged
    // before rounding to a byte (so within one level of the mean of the bytes).
    let rgb = image.to_rgb8();
    for (x, y) in [(0, 0), (13, 14), (27, 27)] {
        let mean = rgb
            .get_pixel(x + 2, y + 2)
            .0
            .iter()
            .map(|&v| v as f64)
            .sum::<f64>()
            / 3.0;
        let got = digit.get_pixel(x, y).0[0] as f64;
        assert!(
            (got - mean).abs() <= 1.0,
            "({x}, {y}): {got} against {mean}"
        );
    }
    // Not an MNIST shape: refused.
    let flow = marscf::core::MultiScaleFlowConfig::new([3, 16, 16], 2, 1, 8);
    let small = MarScfConfig::new(flow).with_prior(marscf::PriorKind::StandardNormal);
    let small = small.init(&device()).unwrap();
    let err = write_sample_folder(
        &small,
        &grey_settings,
        1,
        &dir.join("x"),
        &device(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(matches!(err, ModelError::Grey28 { .. }), "{err}");
    // Two channels are no image file's.
    let flow = marscf::core::MultiScaleFlowConfig::new([2, 16, 16], 2, 1, 8);
    let two = MarScfConfig::new(flow).with_prior(marscf::PriorKind::StandardNormal);
    let two = two.init(&device()).unwrap();
    let err = write_sample_folder(
        &two,
        &settings(1.0),
        1,
        &dir.join("y"),
        &device(),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(err, ModelError::ImageChannels { channels: 2 }),
        "{err}"
    );
    assert!(!dir.join("y").exists(), "refused before the folder is made");
}
