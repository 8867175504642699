//! The image sets FID reads, as batches of RGB bytes.

use std::path::{Path, PathBuf};

use burn::tensor::{Device, Tensor, TensorData};
use marscf_data::npy::Npz;

use crate::samples::{SampleSettings, check_settings, draw_batch, read_png};
use crate::{MarScf, ModelError};

/// The extensions pytorch-fid lists a folder's images by (`IMAGE_EXTENSIONS`); of these,
/// PNG is read (the others are refused, naming the file).
const IMAGE_EXTENSIONS: [&str; 9] = [
    "bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp",
];

/// `count` RGB images of one size: `count x height x width x 3` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageBatch {
    /// The pixels, image by image, row by row, `R G B`.
    pub pixels: Vec<u8>,
    /// Images.
    pub count: usize,
    /// Rows per image.
    pub height: usize,
    /// Columns per image.
    pub width: usize,
}

impl ImageBatch {
    /// `(N, 3, H, W)` in `[0, 1]`: `v / 255`, as torchvision's `ToTensor`.
    pub fn tensor(&self, device: &Device) -> Tensor<4> {
        let (n, h, w) = (self.count, self.height, self.width);
        let values: Vec<f32> = self.pixels.iter().map(|&v| v as f32 / 255.0).collect();
        Tensor::<4>::from_data(TensorData::new(values, [n, h, w, 3]), device).permute([0, 3, 1, 2])
    }

    /// `images`, which must share one size, as a batch.
    fn of(images: Vec<image::RgbImage>, name: &Path) -> Result<Self, ModelError> {
        let (width, height) = images.first().map_or((0, 0), |i| i.dimensions());
        if let Some(other) = images.iter().find(|i| i.dimensions() != (width, height)) {
            return Err(ModelError::invalid(
                name,
                format!(
                    "images of two sizes, {width}x{height} and {}x{}: FID reads one size",
                    other.width(),
                    other.height()
                ),
            ));
        }
        Ok(Self {
            count: images.len(),
            height: height as usize,
            width: width as usize,
            pixels: images.into_iter().flat_map(|i| i.into_raw()).collect(),
        })
    }
}

/// An image set: its name (for errors), its number of images and their batches.
pub struct ImageSource<'a> {
    /// The folder or file (or the checkpoint) it is read from.
    pub name: PathBuf,
    /// Images in all.
    pub len: usize,
    /// The batches, in order.
    pub batches: Box<dyn Iterator<Item = Result<ImageBatch, ModelError>> + 'a>,
}

/// The images of `folder` in batches of `batch_size`: its files with one of pytorch-fid's
/// image extensions, sorted by name, each read as RGB; all must be PNG (other formats'
/// decoders are not PIL's, whose pixels pytorch-fid sees) and of one size. A folder
/// without images is [`ModelError::NoImages`].
pub fn folder_images(folder: &Path, batch_size: usize) -> Result<ImageSource<'static>, ModelError> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(ModelError::io("read", folder))? {
        let path = entry.map_err(ModelError::io("read", folder))?.path();
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or_default();
        if !IMAGE_EXTENSIONS.contains(&extension) {
            continue;
        }
        if extension != "png" {
            return Err(ModelError::invalid(
                &path,
                "FID reads PNG images only (another format's decoder is not PIL's, whose \
                 pixels pytorch-fid sees): convert the folder to PNG",
            ));
        }
        files.push(path);
    }
    files.sort();
    if files.is_empty() {
        return Err(ModelError::NoImages {
            path: folder.to_path_buf(),
            what: format!("no file ending in .{}", IMAGE_EXTENSIONS.join(", .")),
        });
    }
    let name = folder.to_path_buf();
    let len = files.len();
    let batches = files
        .chunks(batch_size.max(1))
        .map(|chunk| chunk.to_vec())
        .collect::<Vec<_>>()
        .into_iter()
        .map(move |chunk| {
            let images = chunk
                .iter()
                .map(|path| read_png(path).map(|image| image.to_rgb8()))
                .collect::<Result<Vec<_>, _>>()?;
            ImageBatch::of(images, &name)
        });
    Ok(ImageSource {
        name: folder.to_path_buf(),
        len,
        batches: Box::new(batches),
    })
}

/// The images of `arr_0` in the `.npz` at `path`, uint8 `N x H x W x C` with `C` 1 (grey,
/// repeated to RGB) or 3, in batches of `batch_size`.
pub fn npz_images(path: &Path, batch_size: usize) -> Result<ImageSource<'static>, ModelError> {
    let name = path.display().to_string();
    let file = std::fs::File::open(path).map_err(ModelError::io("read", path))?;
    let array = Npz::new(file, &name)
        .and_then(|mut npz| npz.array("arr_0"))
        .map_err(ModelError::format(path, "not an .npz of images"))?
        .ok_or_else(|| ModelError::invalid(path, "no array arr_0"))?;
    let [n, h, w, c] = array.shape[..] else {
        return Err(ModelError::invalid(
            path,
            format!("arr_0 has shape {:?}, not N x H x W x C", array.shape),
        ));
    };
    if array.dtype.size != 1 || array.dtype.signed || array.dtype.float || !matches!(c, 1 | 3) {
        return Err(ModelError::invalid(
            path,
            format!(
                "arr_0 is {:?} with {c} channels: uint8 with 1 or 3 expected",
                array.dtype
            ),
        ));
    }
    if h == 0 || w == 0 {
        return Err(ModelError::invalid(
            path,
            format!("arr_0's images are {h}x{w}: an image has pixels"),
        ));
    }
    if n == 0 {
        return Err(ModelError::NoImages {
            path: path.to_path_buf(),
            what: "arr_0 is empty".into(),
        });
    }
    let data = array.data;
    let per_image = h * w * c;
    let batch_size = batch_size.max(1);
    let batches = (0..n).step_by(batch_size).map(move |first| {
        let count = batch_size.min(n - first);
        let bytes = &data[first * per_image..(first + count) * per_image];
        let pixels = match c {
            1 => bytes.iter().flat_map(|&v| [v, v, v]).collect(),
            _ => bytes.to_vec(),
        };
        Ok(ImageBatch {
            pixels,
            count,
            height: h,
            width: w,
        })
    });
    Ok(ImageSource {
        name: path.to_path_buf(),
        len: n,
        batches: Box::new(batches),
    })
}

/// Images `0..n` of `model` drawn as `settings` say, batch by batch, exactly as
/// [`crate::samples::write_sample_folder`] writes them (so FID of a checkpoint equals FID of
/// its sample folder made with the same settings); `name` names the model in errors.
/// Settings out of range are refused as [`crate::samples::write_sample_folder`] refuses
/// them.
pub fn model_images<'a>(
    model: &'a MarScf,
    settings: &'a SampleSettings,
    n: usize,
    name: &Path,
    device: &'a Device,
) -> Result<ImageSource<'a>, ModelError> {
    check_settings(model, settings, n)?;
    let batch_size = settings.batch_size;
    let source = name.to_path_buf();
    let batches = (0..n).step_by(batch_size).map(move |first| {
        let images = draw_batch(model, settings, first / batch_size, device)?;
        let wanted = batch_size.min(n - first);
        let rgb = images
            .into_iter()
            .take(wanted)
            .map(|i| i.to_rgb8())
            .collect();
        ImageBatch::of(rgb, &source)
    });
    Ok(ImageSource {
        name: name.to_path_buf(),
        len: n,
        batches: Box::new(batches),
    })
}
