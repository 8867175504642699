//! Small files in the real formats of every data reader (IDX, CIFAR-10 binary, `.npy`,
//! `.npz`, PNG, JPEG), and the CIFAR-10 batches Python pickled.

use std::io::{Cursor, Write};

use marscf::data::ImageSet;
use marscf::data::idx::{IMAGES_MAGIC, LABELS_MAGIC};

/// CIFAR-10 batches pickled by Python (see `fixtures/make_cifar_pickles.py`): 2 images of
/// [`test_images`] `([3, 32, 32], 2, 10)`, labels `3, 1`, unless the name says otherwise.
pub mod cifar_pickles {
    /// As Python 2's `cPickle.dump(batch, f, 2)` writes the real batches: protocol 2, `str`
    /// as `SHORT_BINSTRING` / `BINSTRING`.
    pub const PY2_CPICKLE: &[u8] = include_bytes!("../fixtures/cifar_py2_cpickle.pickle");
    /// As Python 3's pickler writes a re-pickled batch at protocol 2 (`bytes` via
    /// `_codecs.encode`).
    pub const PY3_PROTOCOL2: &[u8] = include_bytes!("../fixtures/cifar_py3_protocol2.pickle");
    /// Python 3, protocol 4 (frames, `SHORT_BINBYTES`, `MEMOIZE`).
    pub const PY3_PROTOCOL4: &[u8] = include_bytes!("../fixtures/cifar_py3_protocol4.pickle");
    /// Like [`PY2_CPICKLE`] with labels `3, 10`: the second is out of range.
    pub const BAD_LABEL: &[u8] = include_bytes!("../fixtures/cifar_bad_label.pickle");
    /// Like [`PY2_CPICKLE`] with one label for the two images.
    pub const FEW_LABELS: &[u8] = include_bytes!("../fixtures/cifar_few_labels.pickle");
    /// Shape `(2, 3072)` but the bytes of one image only.
    pub const SHORT_DATA: &[u8] = include_bytes!("../fixtures/cifar_short_data.pickle");
    /// Shape `(2, 3072)` with two bytes per element, as a `uint16` array has.
    pub const WIDE_DATA: &[u8] = include_bytes!("../fixtures/cifar_wide_data.pickle");
    /// The valid batches, one per pickler.
    pub const VALID: [&[u8]; 3] = [PY2_CPICKLE, PY3_PROTOCOL2, PY3_PROTOCOL4];
}

/// `n` images of `shape` with pixel `(i, c, y, x) = (i * 7 + c * 50 + y * 3 + x) % 256` and
/// labels `3, 1, 4, 1, 5, 9, 2, 6, ..` (modulo `classes`).
pub fn test_images(shape: [usize; 3], n: usize, classes: usize) -> ImageSet {
    let [c, h, w] = shape;
    let mut pixels = Vec::with_capacity(n * c * h * w);
    for i in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for x in 0..w {
                    pixels.push(((i * 7 + ch * 50 + y * 3 + x) % 256) as u8);
                }
            }
        }
    }
    let labels = (0..n)
        .map(|i| ([3, 1, 4, 1, 5, 9, 2, 6][i % 8] % classes) as u16)
        .collect();
    ImageSet {
        shape,
        pixels: pixels.into(),
        labels,
    }
}

/// The images of `parts` one after another.
pub fn concat(parts: &[ImageSet]) -> ImageSet {
    ImageSet {
        shape: parts[0].shape,
        pixels: parts
            .iter()
            .flat_map(|p| p.pixels.to_vec())
            .collect::<Vec<u8>>()
            .into(),
        labels: parts.iter().flat_map(|p| p.labels.clone()).collect(),
    }
}

/// An IDX file of `n` images `rows x cols` (raw, not gzipped).
pub fn idx_images(pixels: &[u8], n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [IMAGES_MAGIC, n, rows, cols] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// An IDX file of labels (raw, not gzipped).
pub fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [LABELS_MAGIC, labels.len() as u32] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// `bytes` gzip-compressed.
pub fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A CIFAR-10 binary batch file of the images of `set` (`[3, 32, 32]`, labels `< 256`).
pub fn cifar_binary(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..set.len() {
        out.push(set.labels[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    out
}

/// An `.npy` file (format 1.0) of dtype `descr` and `shape` holding `data`, as NumPy
/// writes it (header padded with spaces to a multiple of 64 bytes, ending in a newline).
pub fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut out = npy_header(descr, shape);
    out.extend_from_slice(data);
    out
}

/// The header of [`npy`], up to the first data byte ([`marscf::data::npy::header`]).
pub fn npy_header(descr: &str, shape: &[usize]) -> Vec<u8> {
    marscf::data::npy::header(descr, shape)
}

/// An `.npz` archive with members `NAME.npy`, stored (as `np.savez`) or deflated (as
/// `np.savez_compressed`).
pub fn npz(members: &[(&str, Vec<u8>)], compressed: bool) -> Vec<u8> {
    let method = if compressed {
        zip::CompressionMethod::Deflated
    } else {
        zip::CompressionMethod::Stored
    };
    let options = zip::write::SimpleFileOptions::default().compression_method(method);
    let mut zip = zip::ZipWriter::new(Cursor::new(Vec::new()));
    for (name, bytes) in members {
        zip.start_file(format!("{name}.npy"), options)
            .expect("writing to memory");
        zip.write_all(bytes).expect("writing to memory");
    }
    zip.finish().expect("writing to memory").into_inner()
}

/// An official-style downsampled-ImageNet batch: `data` `(N, 3*S*S)` `uint8` and, if given,
/// `labels` as `int64`.
pub fn imagenet_npz(set: &ImageSet, labels: Option<&[i64]>, compressed: bool) -> Vec<u8> {
    let mut members = vec![(
        "data",
        npy("|u1", &[set.len(), set.image_size()], &set.pixels),
    )];
    if let Some(labels) = labels {
        let bytes: Vec<u8> = labels.iter().flat_map(|l| l.to_le_bytes()).collect();
        members.push(("labels", npy("<i8", &[labels.len()], &bytes)));
    }
    npz(&members, compressed)
}

fn encode(w: u32, h: u32, rgb: &[u8], format: image::ImageFormat) -> Vec<u8> {
    let image = image::RgbImage::from_raw(w, h, rgb.to_vec()).expect("w * h * 3 bytes");
    let mut out = Cursor::new(Vec::new());
    image
        .write_to(&mut out, format)
        .expect("encoding to memory");
    out.into_inner()
}

/// A PNG of `w x h` RGB pixels (interleaved).
pub fn png(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    encode(w, h, rgb, image::ImageFormat::Png)
}

/// A JPEG of `w x h` RGB pixels (interleaved).
pub fn jpeg(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    encode(w, h, rgb, image::ImageFormat::Jpeg)
}
