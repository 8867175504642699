//! Test helpers: small files in the real formats of every reader, and temporary folders.

use std::io::{Cursor, Write};

use crate::images::ImageSet;

/// A temporary folder, removed when dropped.
pub(crate) fn temp_dir() -> tempfile::TempDir {
    tempfile::tempdir().expect("a temporary folder can be created")
}

/// `n` images of `shape` with pixel `(i, c, y, x) = (i * 7 + c * 50 + y * 3 + x) % 256` and
/// labels `3, 1, 4, 1, 5, 9, 2, 6, ..` (modulo `classes`).
pub(crate) fn test_images(shape: [usize; 3], n: usize, classes: usize) -> ImageSet {
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
        pixels,
        labels,
    }
}

/// An IDX file of `n` images `rows x cols` (raw, not gzipped).
pub(crate) fn idx_images(pixels: &[u8], n: u32, rows: u32, cols: u32) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [crate::idx::IMAGES_MAGIC, n, rows, cols] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(pixels);
    out
}

/// An IDX file of labels (raw, not gzipped).
pub(crate) fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for word in [crate::idx::LABELS_MAGIC, labels.len() as u32] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(labels);
    out
}

/// `bytes` gzip-compressed.
pub(crate) fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    encoder.write_all(bytes).expect("writing to memory");
    encoder.finish().expect("writing to memory")
}

/// A CIFAR-10 binary batch file of the images of `set` (`[3, 32, 32]`, labels `< 256`).
pub(crate) fn cifar_binary(set: &ImageSet) -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..set.len() {
        out.push(set.labels[i] as u8);
        out.extend_from_slice(set.image(i));
    }
    out
}

/// A CIFAR-10 Python batch of `set`, see [`cifar_pickle_with`].
pub(crate) fn cifar_pickle(set: &ImageSet) -> Vec<u8> {
    let labels: Vec<i64> = set.labels.iter().map(|&l| i64::from(l)).collect();
    cifar_pickle_with(&set.pixels, set.len(), &labels)
}

/// A CIFAR-10 batch as Python 2.7's `cPickle.dump(batch, f, 2)` writes it: the dict
/// `{'batch_label': .., 'labels': [..], 'data': array, 'filenames': [..]}` with `data` a
/// `uint8` NumPy array of shape `(n, 3072)` holding `data`, in cPickle's opcodes (`GLOBAL` +
/// `REDUCE` + `BUILD` for the array and its dtype, `SHORT_BINSTRING`/`BINSTRING` for `str`,
/// `BININT*`, `MARK`..`APPENDS`/`SETITEMS`, `NEWFALSE`). This writer memoizes every object,
/// where cPickle skips some temporaries; that does not change what is decoded.
pub(crate) fn cifar_pickle_with(data: &[u8], n: usize, labels: &[i64]) -> Vec<u8> {
    let mut p = Pickler {
        out: b"\x80\x02".to_vec(),
        memo: 0,
    };
    p.op(b"}");
    p.put();
    p.op(b"(");
    p.string(b"batch_label");
    p.string(b"training batch 1 of 5");
    p.string(b"labels");
    p.list(labels, |p, &l| p.int(l));
    p.string(b"data");
    p.op(b"cnumpy.core.multiarray\n_reconstruct\n");
    p.put();
    p.op(b"cnumpy\nndarray\n");
    p.put();
    p.op(b"K\x00\x85");
    p.put();
    p.string(b"b");
    p.op(b"\x87");
    p.put();
    p.op(b"R");
    p.put();
    p.op(b"(K\x01");
    p.int(n as i64);
    p.int(3072);
    p.op(b"\x86");
    p.put();
    p.op(b"cnumpy\ndtype\n");
    p.put();
    p.string(b"u1");
    p.op(b"K\x00K\x01\x87");
    p.put();
    p.op(b"R");
    p.put();
    p.op(b"(K\x03");
    p.string(b"|");
    p.op(b"NNNJ\xff\xff\xff\xffJ\xff\xff\xff\xffK\x00t");
    p.put();
    p.op(b"b\x89");
    p.string(data);
    p.op(b"t");
    p.put();
    p.op(b"b");
    p.string(b"filenames");
    let names: Vec<String> = (0..labels.len())
        .map(|i| format!("image_{i}.png"))
        .collect();
    p.list(&names, |p, name| p.string(name.as_bytes()));
    p.op(b"u.");
    p.out
}

/// Protocol-2 opcodes as Python 2's `cPickle` emits them.
struct Pickler {
    out: Vec<u8>,
    memo: u32,
}

impl Pickler {
    fn op(&mut self, bytes: &[u8]) {
        self.out.extend_from_slice(bytes);
    }

    /// `BINPUT` / `LONG_BINPUT` of the next memo id (cPickle counts from 1).
    fn put(&mut self) {
        self.memo += 1;
        match u8::try_from(self.memo) {
            Ok(id) => self.op(&[b'q', id]),
            Err(_) => {
                self.op(b"r");
                self.op(&self.memo.to_le_bytes());
            }
        }
    }

    /// A Python 2 `str`: `SHORT_BINSTRING` or `BINSTRING`, memoized.
    fn string(&mut self, s: &[u8]) {
        match u8::try_from(s.len()) {
            Ok(len) => self.op(&[b'U', len]),
            Err(_) => {
                self.op(b"T");
                self.op(&(s.len() as u32).to_le_bytes());
            }
        }
        self.op(s);
        self.put();
    }

    /// `BININT1`, `BININT2` or `BININT`.
    fn int(&mut self, v: i64) {
        match v {
            0..=0xff => self.op(&[b'K', v as u8]),
            0x100..=0xffff => {
                self.op(b"M");
                self.op(&(v as u16).to_le_bytes());
            }
            _ => {
                self.op(b"J");
                self.op(&(v as i32).to_le_bytes());
            }
        }
    }

    /// `EMPTY_LIST`, memoized, then `APPEND` for one item or `MARK .. APPENDS` for more.
    fn list<T>(&mut self, items: &[T], mut save: impl FnMut(&mut Self, &T)) {
        self.op(b"]");
        self.put();
        match items {
            [] => {}
            [one] => {
                save(self, one);
                self.op(b"a");
            }
            _ => {
                self.op(b"(");
                for item in items {
                    save(self, item);
                }
                self.op(b"e");
            }
        }
    }
}

/// An `.npy` file (format 1.0) of dtype `descr` and `shape` holding `data`, as NumPy
/// writes it (header padded with spaces to a multiple of 64 bytes, ending in a newline).
pub(crate) fn npy(descr: &str, shape: &[usize], data: &[u8]) -> Vec<u8> {
    let dims = match shape {
        [one] => format!("({one},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': {dims}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// An `.npz` archive with members `NAME.npy`, stored (as `np.savez`) or deflated (as
/// `np.savez_compressed`).
pub(crate) fn npz(members: &[(&str, Vec<u8>)], compressed: bool) -> Vec<u8> {
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
pub(crate) fn imagenet_npz(set: &ImageSet, labels: Option<&[i64]>, compressed: bool) -> Vec<u8> {
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
pub(crate) fn png(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    encode(w, h, rgb, image::ImageFormat::Png)
}

/// A JPEG of `w x h` RGB pixels (interleaved).
pub(crate) fn jpeg(w: u32, h: u32, rgb: &[u8]) -> Vec<u8> {
    encode(w, h, rgb, image::ImageFormat::Jpeg)
}
