//! A folder of images read like torchvision's `ImageFolder`: one sub-folder per class, the
//! label of an image the index of its folder among the class folders sorted by name, and the
//! images of a class in file-name order. PNG and JPEG files are decoded (by content, not by
//! extension) with the `image` crate and converted to 8-bit RGB.
//!
//! Stricter than torchvision, so that a broken download is noticed: a file that does not
//! decode, an image whose size differs from the first one's, a nested folder, a file beside
//! the class folders, and an empty class folder are errors naming the file. Hidden entries
//! (names starting with `.`) are skipped. A folder with no sub-folders at all is read as a
//! single class (label 0): the layout of the official downsampled-ImageNet PNG archives.

use std::path::{Path, PathBuf};

use crate::DataError;
use crate::images::{Collect, ImageSet, ImageSink};

/// Images of a folder with their class names.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageFolder {
    /// `len` images `[3, H, W]`, channel-major, labels `0..classes.len()`.
    pub images: ImageSet,
    /// Class folder names in label order (the folder's own name when it has no sub-folders).
    pub classes: Vec<String>,
}

/// Decodes a PNG or JPEG image to RGB: `(width, height, 3 * height * width bytes)` in the
/// channel-major `[3, H, W]` layout. `path` names the file in errors.
pub fn decode_rgb(bytes: &[u8], path: &Path) -> Result<(u32, u32, Vec<u8>), DataError> {
    let image = image::ImageReader::new(std::io::Cursor::new(bytes))
        .with_guessed_format()
        .map_err(DataError::io(path))?
        .decode()
        .map_err(DataError::image(path))?
        .into_rgb8();
    let (w, h) = image.dimensions();
    if w == 0 || h == 0 {
        let empty = image::error::DecodingError::new(
            image::error::ImageFormatHint::Unknown,
            format!("the image is {w}x{h} pixels"),
        );
        return Err(DataError::image(path)(image::ImageError::Decoding(empty)));
    }
    let plane = w as usize * h as usize;
    let mut out = vec![0u8; 3 * plane];
    for (i, rgb) in image.as_raw().chunks_exact(3).enumerate() {
        for (c, &v) in rgb.iter().enumerate() {
            out[c * plane + i] = v;
        }
    }
    Ok((w, h, out))
}

/// The files of an image folder with their labels, listed but not decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct FolderListing {
    /// Every image file in reading order (class by class, by name), with its label.
    pub files: Vec<(PathBuf, u16)>,
    /// Class folder names in label order (the folder's own name when it has no sub-folders).
    pub classes: Vec<String>,
}

/// Reads every image under `dir` (see the module doc for the layout). With
/// `expected = Some((width, height))` every image must have that size; otherwise all must
/// have the size of the first.
pub fn read_image_folder(
    dir: &Path,
    expected: Option<(u32, u32)>,
) -> Result<ImageFolder, DataError> {
    let listing = list_image_folder(dir)?;
    let mut images = Collect::default();
    let shape = decode_listing(&listing.files, expected, &mut images)?;
    Ok(ImageFolder {
        images: images.into_set(shape),
        classes: listing.classes,
    })
}

/// Lists the images under `dir` (see the module doc for the layout) without decoding them;
/// a layout error names the file or folder.
pub fn list_image_folder(dir: &Path) -> Result<FolderListing, DataError> {
    let (dirs, files) = entries(dir)?;
    let (classes, items): (Vec<String>, Vec<(PathBuf, u16)>) = if dirs.is_empty() {
        let name = dir
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
        (vec![name], files.into_iter().map(|f| (f, 0)).collect())
    } else {
        if let Some(file) = files.first() {
            return Err(DataError::mismatch(
                file.display().to_string(),
                format!(
                    "a file beside the class folders of {}; expected only one sub-folder per class",
                    dir.display()
                ),
            ));
        }
        if dirs.len() > usize::from(u16::MAX) + 1 {
            return Err(DataError::mismatch(
                dir.display().to_string(),
                format!("{} class folders, at most 65,536 are supported", dirs.len()),
            ));
        }
        let mut items = Vec::new();
        for (label, class_dir) in dirs.iter().enumerate() {
            let (nested, files) = entries(class_dir)?;
            if let Some(nested) = nested.first() {
                return Err(DataError::mismatch(
                    nested.display().to_string(),
                    "a folder inside a class folder; expected only image files",
                ));
            }
            if files.is_empty() {
                return Err(DataError::EmptyFolder {
                    path: class_dir.clone(),
                    message: "class folder holds no images".into(),
                });
            }
            items.extend(files.into_iter().map(|f| (f, label as u16)));
        }
        let names = dirs.iter().map(|d| {
            d.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        });
        (names.collect(), items)
    };
    if items.is_empty() {
        return Err(DataError::EmptyFolder {
            path: dir.to_path_buf(),
            message: "folder holds no images".into(),
        });
    }
    Ok(FolderListing {
        files: items,
        classes,
    })
}

/// Images decoded per thread before a chunk goes to the sink.
const CHUNK_PER_THREAD: usize = 64;
/// Bytes of decoded images in a chunk at most, unless one image per thread is more: the
/// images' size comes from their headers (each bounded by the `image` crate's default limit of
/// 512 MiB per decode), so a chunk is sized by bytes, not by count alone.
const CHUNK_BYTES: usize = 64 << 20;

/// Decodes `files` in order into `sink`, a chunk at a time on all cores, so that memory holds
/// one chunk, not the folder. The first file fixes the size (or must have `expected`); the
/// `[3, H, W]` of the images.
pub(crate) fn decode_listing(
    files: &[(PathBuf, u16)],
    expected: Option<(u32, u32)>,
    sink: &mut dyn ImageSink,
) -> Result<[usize; 3], DataError> {
    let Some((first, first_label)) = files.first() else {
        return Err(DataError::EmptyFolder {
            path: PathBuf::new(),
            message: "no images to decode".into(),
        });
    };
    let (w, h, first_pixels) = decode_rgb(&crate::error::read_file(first)?, first)?;
    if let Some(expected) = expected.filter(|&e| e != (w, h)) {
        return Err(DataError::ImageSize {
            path: first.clone(),
            expected,
            got: (w, h),
        });
    }
    let image_bytes = first_pixels.len();
    sink.reserve(files.len(), image_bytes);
    sink.push(&first_pixels, &[*first_label])?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let per_chunk = (threads * CHUNK_PER_THREAD).min((CHUNK_BYTES / image_bytes).max(threads));
    let mut buf = vec![0u8; per_chunk.min(files.len() - 1) * image_bytes];
    let mut labels = Vec::with_capacity(per_chunk);
    for chunk in files[1..].chunks(per_chunk) {
        let out = &mut buf[..chunk.len() * image_bytes];
        decode_all(chunk, (w, h), out)?;
        labels.clear();
        labels.extend(chunk.iter().map(|&(_, label)| label));
        sink.push(out, &labels)?;
    }
    Ok([3, h as usize, w as usize])
}

/// Decodes `items` into `out` (one `3 H W` slot each) on all cores; the error reported is
/// the one of the first failing file.
fn decode_all(items: &[(PathBuf, u16)], size: (u32, u32), out: &mut [u8]) -> Result<(), DataError> {
    if items.is_empty() {
        return Ok(());
    }
    let image_bytes = out.len() / items.len();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len());
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(per_thread)
            .zip(out.chunks_mut(per_thread * image_bytes))
            .map(|(items, out)| {
                scope.spawn(move || {
                    for ((path, _), slot) in items.iter().zip(out.chunks_exact_mut(image_bytes)) {
                        let (w, h, pixels) = decode_rgb(&crate::error::read_file(path)?, path)?;
                        if (w, h) != size {
                            return Err(DataError::ImageSize {
                                path: path.clone(),
                                expected: size,
                                got: (w, h),
                            });
                        }
                        slot.copy_from_slice(&pixels);
                    }
                    Ok(())
                })
            })
            .collect();
        // Joined in order, so the first error is the earliest file's.
        workers.into_iter().try_for_each(|w| {
            w.join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    })
}

/// `(sub-folders, files)` of `dir`, each sorted by name, hidden entries skipped.
fn entries(dir: &Path) -> Result<(Vec<PathBuf>, Vec<PathBuf>), DataError> {
    let mut dirs = Vec::new();
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(DataError::io(dir))? {
        let entry = entry.map_err(DataError::io(dir))?;
        if entry.file_name().as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // Follows symbolic links, as torchvision does.
        if path.is_dir() {
            dirs.push(path);
        } else {
            files.push(path);
        }
    }
    dirs.sort();
    files.sort();
    Ok((dirs, files))
}
