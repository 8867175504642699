//! Samples at scale, in the formats FID tools read: `n` images from a model written one PNG
//! per image into a folder (`000000.png`, `000001.png`, ...: what pytorch-fid and clean-fid
//! read), and from the complete folder one `.npz` whose `arr_0` is a uint8 `N x H x W x C`
//! array (the layout of OpenAI's guided-diffusion evaluator).
//!
//! Image `i` is drawn in batch `i / B` (`B` the batch size), after the device is seeded from
//! the run's seed and that batch's number; every batch samples `B` images, the last one's
//! extras unused. So an image does not depend on which batches ran before it or on `n`: a
//! run stopped anywhere and started again with the same settings writes the images the
//! first would have. The folder's [`MANIFEST`] records the settings; a run refuses a folder
//! recorded with other settings or holding files it did not write, keeps and counts the
//! images there, and writes only the missing ones, each whole or not at all.
//!
//! A pixel is the byte of its dequantisation bin at the model's bit depth
//! ([`unit_to_byte`]).

use std::io::Write;
use std::path::{Path, PathBuf};

use burn::tensor::Device;
use marscf_data::atomic_file::{self, Existing};
use marscf_data::npy::{NpzMember, write_npz};
use marscf_data::unit_to_byte;
use serde::{Deserialize, Serialize};

use crate::host::host_f32;
use crate::report::encode_png;
use crate::{MarScf, ModelError, files};

/// The settings file of a sample folder.
pub const MANIFEST: &str = "marscf-samples.json";

/// The side of an MNIST digit as stored.
const MNIST_SIDE: usize = 28;

/// How a sample becomes an image file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PixelLayout {
    /// As the model sees it: `C x H x W` (MNIST's reference layout: 3 grey channels,
    /// padded to 32x32).
    #[default]
    AsModel,
    /// A 28x28 grey digit: the centre 28x28 of a square model image (MNIST's padding
    /// cropped), its channels averaged (each clipped to the pixel range first, so the grey
    /// is the mean of the colour image's bytes, within one level).
    Grey28,
}

/// What a sample folder holds: recorded in its [`MANIFEST`], the same for every run that
/// adds to it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleSettings {
    /// What identifies the model (the CLI: the SHA-256 of its checkpoint's files), so that
    /// two models' samples never share a folder.
    pub model: String,
    /// The prior's temperature (1 is the model).
    pub temperature: f64,
    /// The seed.
    pub seed: u64,
    /// Images per batch `B` (image `i` is drawn in batch `i / B`).
    pub batch_size: usize,
    /// How samples become images.
    pub layout: PixelLayout,
}

/// How far a sample folder is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SampleProgress {
    /// Images found there from earlier runs, kept.
    pub kept: usize,
    /// Images this run wrote.
    pub written: usize,
    /// Images asked for.
    pub total: usize,
}

/// The file of image `index` in a sample folder.
pub fn sample_path(folder: &Path, index: usize) -> PathBuf {
    folder.join(format!("{index:06}.png"))
}

/// Fills `folder` (created if missing) with images `0..n` of `model` as `settings` say,
/// keeping those already there (see the module doc); `progress` is called after each batch.
/// Errors: a folder recorded with other settings or holding other files
/// ([`ModelError::SampleFolder`]), a setting out of range, a model that cannot sample.
pub fn write_sample_folder(
    model: &MarScf,
    settings: &SampleSettings,
    n: usize,
    folder: &Path,
    device: &Device,
    progress: &mut dyn FnMut(SampleProgress),
) -> Result<SampleProgress, ModelError> {
    check_settings(model, settings, n)?;
    let _lock = open_folder(folder, settings)?;
    let missing = |i: &usize| !sample_path(folder, *i).exists();
    let mut done = SampleProgress {
        kept: n - (0..n).filter(missing).count(),
        written: 0,
        total: n,
    };
    progress(done);
    let batch = settings.batch_size;
    for first in (0..n).step_by(batch) {
        let wanted: Vec<usize> = (first..n.min(first + batch)).filter(missing).collect();
        if wanted.is_empty() {
            continue;
        }
        let images = draw_batch(model, settings, first / batch, device)?;
        for &i in &wanted {
            let png = encode_png(&images[i - first])
                .map_err(ModelError::format(folder, "cannot encode a PNG"))?;
            files::write(&sample_path(folder, i), &png, Existing::Keep)?;
            done.written += 1;
        }
        progress(done);
    }
    Ok(done)
}

/// Writes images `0..n` of a complete sample folder to `npz` as `arr_0`, uint8
/// `N x H x W x C` (`C` = 1 for grey images), whole or not at all; an existing `npz` is
/// replaced, or with [`Existing::Keep`] left as it is ([`ModelError::Exists`]). Every image
/// must be there, of one size and colour type.
pub fn write_samples_npz(
    folder: &Path,
    n: usize,
    npz: &Path,
    existing: Existing,
) -> Result<(), ModelError> {
    let first = read_png(&sample_path(folder, 0))?;
    let shape = [
        n,
        first.height() as usize,
        first.width() as usize,
        channels(&first),
    ];
    files::write_with(npz, existing, |file| {
        let mut failure = None;
        let mut data = |out: &mut dyn Write| -> std::io::Result<()> {
            for i in 0..n {
                let path = sample_path(folder, i);
                let image = match read_png(&path) {
                    Ok(image) => image,
                    Err(e) => return Err(std::io::Error::other(failure.insert(e).to_string())),
                };
                let found = [
                    image.height() as usize,
                    image.width() as usize,
                    channels(&image),
                ];
                if found != shape[1..] {
                    let e = ModelError::invalid(
                        &path,
                        format!("is {found:?} (H, W, C), not {:?} as image 0", &shape[1..]),
                    );
                    return Err(std::io::Error::other(failure.insert(e).to_string()));
                }
                out.write_all(image.as_bytes())?;
            }
            Ok(())
        };
        let members = vec![NpzMember {
            name: "arr_0",
            descr: "|u1",
            shape: &shape,
            data: Box::new(&mut data),
        }];
        let written = write_npz(file, members);
        match failure.take() {
            Some(e) => Err(e),
            None => written.map_err(ModelError::format(npz, "cannot write the archive")),
        }
    })
}

/// The settings' ranges, and a layout the model's images allow.
pub(crate) fn check_settings(
    model: &MarScf,
    settings: &SampleSettings,
    n: usize,
) -> Result<(), ModelError> {
    let setting = |name, value: f64, rule| ModelError::Setting { name, value, rule };
    if n == 0 {
        return Err(setting("n", 0.0, "at least 1"));
    }
    if settings.batch_size == 0 {
        return Err(setting("batch_size", 0.0, "at least 1"));
    }
    if !(settings.temperature >= 0.0 && settings.temperature.is_finite()) {
        return Err(setting(
            "temperature",
            settings.temperature,
            "finite and not negative",
        ));
    }
    let [c, h, w] = model.config.flow.image;
    if settings.layout == PixelLayout::AsModel && !matches!(c, 1 | 3) {
        return Err(ModelError::ImageChannels { channels: c });
    }
    if settings.layout == PixelLayout::Grey28
        && (h != w || h < MNIST_SIDE || !(h - MNIST_SIDE).is_multiple_of(2))
    {
        return Err(ModelError::Grey28 {
            image: model.config.flow.image,
        });
    }
    Ok(())
}

/// What a sample folder holds, by name: its manifest, its images, the temporary files of
/// writes to them cut short by a kill, and anything else.
#[derive(Default)]
struct FolderContents {
    manifest: bool,
    images: Vec<PathBuf>,
    /// Of images (a kill's leftovers once the folder's lock is held).
    image_temporaries: Vec<PathBuf>,
    /// Of the manifest (maybe a concurrent first run's, so only removed with the folder).
    manifest_temporaries: Vec<PathBuf>,
    others: Vec<std::ffi::OsString>,
}

impl FolderContents {
    fn of(folder: &Path) -> Result<Self, ModelError> {
        let mut contents = Self::default();
        for entry in std::fs::read_dir(folder).map_err(ModelError::io("read", folder))? {
            let entry = entry.map_err(ModelError::io("read", folder))?;
            let name = entry.file_name();
            let text = name.to_str().unwrap_or_default();
            if name == MANIFEST {
                contents.manifest = true;
            } else if is_image_name(text) {
                contents.images.push(entry.path());
            } else if let Some(dest) = atomic_file::temporary_destination(&name) {
                match dest {
                    MANIFEST => contents.manifest_temporaries.push(entry.path()),
                    dest if is_image_name(dest) => contents.image_temporaries.push(entry.path()),
                    _ => contents.others.push(name),
                }
            } else {
                contents.others.push(name);
            }
        }
        Ok(contents)
    }

    /// [`ModelError::SampleFolder`] if anything but a sample folder's files is there.
    fn only_samples(&self, folder: &Path) -> Result<(), ModelError> {
        let Some(other) = self.others.first() else {
            return Ok(());
        };
        Err(ModelError::SampleFolder {
            path: folder.to_path_buf(),
            reason: format!(
                "holds {}, which `marscf sample` does not write: give a new or empty folder, \
                 or one it filled",
                other.to_string_lossy()
            ),
        })
    }
}

/// An image's name in a sample folder: [`sample_path`]'s, six digits or more and `.png`.
fn is_image_name(name: &str) -> bool {
    name.strip_suffix(".png")
        .is_some_and(|digits| digits.len() >= 6 && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Makes `folder` ready for `settings` and takes its lock (held while the returned file is
/// open): created with its manifest if new or empty; else it must hold only a sample
/// folder's files and its manifest the same settings. Then, under the lock, the temporary
/// files a killed run left are removed. A refused folder is left as it was.
fn open_folder(folder: &Path, settings: &SampleSettings) -> Result<std::fs::File, ModelError> {
    std::fs::create_dir_all(folder).map_err(ModelError::io("create", folder))?;
    let refuse = |reason: String| ModelError::SampleFolder {
        path: folder.to_path_buf(),
        reason,
    };
    let contents = FolderContents::of(folder)?;
    contents.only_samples(folder)?;
    let manifest = folder.join(MANIFEST);
    if !contents.manifest {
        if let Some(image) = contents.images.first() {
            return Err(refuse(format!(
                "holds {} but no {MANIFEST}: `marscf sample` did not fill it",
                image.display()
            )));
        }
        let json = serde_json::to_vec_pretty(settings).expect("settings serialise");
        match files::write(&manifest, &json, Existing::Keep) {
            Ok(()) | Err(ModelError::Exists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    let (lock, bytes, recorded) = lock_manifest(folder)?;
    // Compared as JSON text: the settings' floats as written, not as read back.
    let json = serde_json::to_vec_pretty(settings).expect("settings serialise");
    if bytes != json {
        return Err(refuse(format!(
            "was filled with other settings: {recorded:?}, now {settings:?} (give the same \
             settings to go on, or another folder)"
        )));
    }
    for temporary in FolderContents::of(folder)?.image_temporaries {
        std::fs::remove_file(&temporary).map_err(ModelError::io("remove", &temporary))?;
    }
    Ok(lock)
}

/// Takes the lock of a sample folder's manifest and reads it: the lock, the manifest's
/// bytes and its settings. A folder without a readable manifest is refused
/// ([`ModelError::SampleFolder`]), as is one another process holds.
fn lock_manifest(folder: &Path) -> Result<(std::fs::File, Vec<u8>, SampleSettings), ModelError> {
    let refuse = |reason: String| ModelError::SampleFolder {
        path: folder.to_path_buf(),
        reason,
    };
    let manifest = folder.join(MANIFEST);
    if !manifest.is_file() {
        return Err(refuse(format!(
            "has no {MANIFEST}: `marscf sample` did not fill it"
        )));
    }
    let lock = files::try_lock(&manifest)?.ok_or_else(|| {
        refuse("another `marscf sample` is writing into it (wait for it to end)".into())
    })?;
    let bytes = std::fs::read(&manifest).map_err(ModelError::io("read", &manifest))?;
    let recorded = serde_json::from_slice::<SampleSettings>(&bytes).map_err(ModelError::format(
        &manifest,
        "not a sample folder's settings",
    ))?;
    Ok((lock, bytes, recorded))
}

/// Removes a sample folder [`write_sample_folder`] filled: its images, temporary files and
/// manifest, then the folder. A folder holding anything else, or that a run is writing
/// into, is refused ([`ModelError::SampleFolder`]) and left as it was.
pub fn remove_sample_folder(folder: &Path) -> Result<(), ModelError> {
    let (lock, _, _) = lock_manifest(folder)?;
    let contents = FolderContents::of(folder)?;
    contents.only_samples(folder)?;
    for path in contents
        .images
        .iter()
        .chain(&contents.image_temporaries)
        .chain(&contents.manifest_temporaries)
    {
        std::fs::remove_file(path).map_err(ModelError::io("remove", path))?;
    }
    let manifest = folder.join(MANIFEST);
    std::fs::remove_file(&manifest).map_err(ModelError::io("remove", &manifest))?;
    drop(lock);
    std::fs::remove_dir(folder).map_err(ModelError::io("remove", folder))
}

/// The images of batch `batch` (`settings.batch_size` of them) as [`write_sample_folder`]
/// draws them.
pub(crate) fn draw_batch(
    model: &MarScf,
    settings: &SampleSettings,
    batch: usize,
    device: &Device,
) -> Result<Vec<image::DynamicImage>, ModelError> {
    device.seed(batch_seed(settings.seed, batch));
    let images = model.sample(settings.batch_size, settings.temperature)?;
    let [n, c, h, w] = images.dims();
    let values = host_f32(images);
    Ok((0..n)
        .map(|i| {
            let image = &values[i * c * h * w..][..c * h * w];
            to_image(image, [c, h, w], settings.layout, model.config.bits)
        })
        .collect())
}

/// The device seed of batch `batch` of a run seeded `seed` (SplitMix64's finaliser of the
/// pair, so that neighbouring seeds and batches draw unrelated noise).
fn batch_seed(seed: u64, batch: usize) -> u64 {
    let mut z = seed ^ (batch as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// One sample `C x H x W` (values in `[-0.5, 0.5]`) as an image file's pixels.
fn to_image(
    values: &[f32],
    [c, h, w]: [usize; 3],
    layout: PixelLayout,
    bits: u32,
) -> image::DynamicImage {
    let byte = |x: f32| unit_to_byte(x, bits);
    match (layout, c) {
        (PixelLayout::Grey28, _) => {
            let border = (h - MNIST_SIDE) / 2;
            let side = MNIST_SIDE as u32;
            image::GrayImage::from_fn(side, side, |x, y| {
                let (x, y) = (x as usize + border, y as usize + border);
                let sum: f32 = (0..c)
                    .map(|ch| values[(ch * h + y) * w + x].clamp(-0.5, 0.5))
                    .sum();
                image::Luma([byte(sum / c as f32)])
            })
            .into()
        }
        (PixelLayout::AsModel, 1) => image::GrayImage::from_fn(w as u32, h as u32, |x, y| {
            image::Luma([byte(values[y as usize * w + x as usize])])
        })
        .into(),
        (PixelLayout::AsModel, _) => image::RgbImage::from_fn(w as u32, h as u32, |x, y| {
            let at = |ch: usize| byte(values[(ch * h + y as usize) * w + x as usize]);
            image::Rgb([at(0), at(1), at(2)])
        })
        .into(),
    }
}

/// The PNG at `path` (decoded as PNG whatever its name), as 8-bit grey or RGB.
pub(crate) fn read_png(path: &Path) -> Result<image::DynamicImage, ModelError> {
    let mut reader = image::ImageReader::open(path).map_err(ModelError::io("read", path))?;
    reader.set_format(image::ImageFormat::Png);
    let image = reader
        .decode()
        .map_err(ModelError::format(path, "not a readable PNG image"))?;
    Ok(match image.color().channel_count() {
        1 | 2 => image.to_luma8().into(),
        _ => image.to_rgb8().into(),
    })
}

/// 1 for grey, 3 for RGB.
fn channels(image: &image::DynamicImage) -> usize {
    image.color().channel_count() as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_seeds_differ() {
        let seeds: std::collections::HashSet<u64> = (0..4)
            .flat_map(|seed| (0..1000).map(move |batch| batch_seed(seed, batch)))
            .collect();
        assert_eq!(seeds.len(), 4000);
    }

    #[test]
    fn grey28_crops_the_padding_and_averages_the_channels() {
        // 3 x 32 x 32, channel ch at (y, x) = (y * 32 + x) / 1023 - 0.5 + ch * 0.001.
        let mut values: Vec<f32> = (0..3)
            .flat_map(|ch| (0..1024).map(move |i| i as f32 / 1023.0 - 0.5 + ch as f32 * 1e-3))
            .collect();
        // Grey (5, 13)'s red past white: clipped to 0.5 before the mean.
        let past = (13 + 2) * 32 + 5 + 2;
        values[past] = 0.9;
        let image = to_image(&values, [3, 32, 32], PixelLayout::Grey28, 8).to_luma8();
        assert_eq!(image.dimensions(), (28, 28));
        for (x, y) in [(0, 0), (27, 0), (5, 13), (27, 27)] {
            let i = (y + 2) * 32 + x + 2;
            let v = i as f32 / 1023.0 - 0.5;
            let mean = match i == past {
                true => (0.5 + (v + 1e-3) + (v + 2e-3)) / 3.0,
                false => v + 1e-3,
            };
            assert_eq!(
                image.get_pixel(x as u32, y as u32).0[0],
                unit_to_byte(mean, 8),
                "({x}, {y})"
            );
        }
    }
}
