//! The Fréchet Inception distance as pytorch-fid computes it: pool3 features of its FID
//! Inception network ([`FidInception`]) for every image of two sets, the Gaussian
//! statistics of each set ([`FidStatistics`]), and the Fréchet distance between them
//! ([`frechet_distance`]).
//!
//! An image set is a folder of PNG images (listed as pytorch-fid lists them: the files with
//! an image extension, sorted by name), an `.npz` whose `arr_0` is uint8 `N x H x W x C`
//! (what `marscf sample --npz` and the guided-diffusion evaluator use), or a model's samples
//! drawn batch by batch exactly as `marscf sample` draws them. Images go through the
//! network as pytorch-fid feeds them: RGB (grey repeated), `v / 255`. Statistics can be
//! read from and written to pytorch-fid's `.npz` format (`mu`, `sigma`), and kept in a
//! [`StatisticsCache`].

mod images;
pub mod inception;
mod statistics;

use std::path::{Path, PathBuf};

use burn::tensor::Device;
use marscf_data::atomic_file::{self, Existing};
use marscf_data::digest::sha256;
use marscf_data::npy::Npz;

pub use images::{ImageBatch, ImageSource, folder_images, model_images, npz_images};
pub use inception::{
    FEATURES, FidInception, INCEPTION_BASE_URL, INCEPTION_FILE, INCEPTION_SHA256, INCEPTION_SIZE,
    read_state_dict,
};
pub use statistics::{FeatureMoments, FidStatistics, frechet_distance};

use crate::host::host_f32;
use crate::{ModelError, files};

/// The statistics of the images of `source`, one of its batches at a time through `net`;
/// `progress` is called with the images done after each batch. Fails on fewer than two
/// images (no covariance).
pub fn statistics(
    net: &FidInception,
    source: ImageSource,
    device: &Device,
    progress: &mut dyn FnMut(usize),
) -> Result<FidStatistics, ModelError> {
    let mut moments = FeatureMoments::new(FEATURES);
    let name = source.name.clone();
    for batch in source.batches {
        moments.add(&host_f32(net.features(batch?.tensor(device))));
        progress(moments.count());
    }
    moments.finish().ok_or_else(|| ModelError::NoImages {
        path: name,
        what: "FID needs at least two".into(),
    })
}

/// Downloads pytorch-fid's FID Inception weights from `base_url` (the published
/// [`INCEPTION_BASE_URL`], or a mirror) into `folder` as [`INCEPTION_FILE`], verified against
/// [`INCEPTION_SHA256`] and written whole or not at all; a file there with that digest
/// already is kept. Returns its path.
#[cfg(feature = "download")]
pub fn download_inception(
    base_url: &str,
    folder: &Path,
) -> Result<PathBuf, marscf_data::DataError> {
    let file = marscf_data::download::RemoteFile {
        name: INCEPTION_FILE,
        size: INCEPTION_SIZE,
        sha256: INCEPTION_SHA256,
    };
    let dest = folder.join(INCEPTION_FILE);
    let hint = format!(
        "To work offline, place {INCEPTION_FILE} (from {base_url}) in {}, or give --inception FILE",
        folder.display()
    );
    marscf_data::download::fetch_verified(base_url, &file, &dest, &hint)?;
    Ok(dest)
}

/// A folder of statistics files, one per image set, named by a SHA-256 of what the set is
/// (its path, and its files' sizes and modification times, or the model and sampling
/// settings), in pytorch-fid's `.npz` format. A set that changes gets a new name; nothing
/// is ever replaced. Writes take the folder's lock file ([`CACHE_LOCK`]), under which the
/// temporary files of writes cut short by a kill are removed.
#[derive(Debug, Clone)]
pub struct StatisticsCache {
    /// The folder.
    pub folder: PathBuf,
}

/// The lock file of a [`StatisticsCache`]'s folder.
pub const CACHE_LOCK: &str = ".marscf-cache.lock";

impl StatisticsCache {
    /// The statistics recorded for `identity`, or those `compute` gives, then recorded.
    /// `label` starts the file's name (say, the set's file name).
    pub fn get_or_compute<E: From<ModelError>>(
        &self,
        label: &str,
        identity: &str,
        compute: impl FnOnce() -> Result<FidStatistics, E>,
    ) -> Result<(FidStatistics, PathBuf), E> {
        let digest = sha256(identity.as_bytes());
        let label: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = self.folder.join(format!("{label}-{}.npz", &digest[..16]));
        if path.exists() {
            return Ok((FidStatistics::read_npz(&path)?, path));
        }
        let stats = compute()?;
        std::fs::create_dir_all(&self.folder).map_err(ModelError::io("create", &self.folder))?;
        let _lock = files::lock(&self.folder.join(CACHE_LOCK))?;
        self.remove_unfinished_writes()?;
        match stats.write_npz(&path, Existing::Keep) {
            Ok(()) | Err(ModelError::Exists { .. }) => Ok((stats, path)),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes the temporary files of statistics writes a kill cut short (with the lock).
    fn remove_unfinished_writes(&self) -> Result<(), ModelError> {
        let folder = &self.folder;
        for entry in std::fs::read_dir(folder).map_err(ModelError::io("read", folder))? {
            let entry = entry.map_err(ModelError::io("read", folder))?;
            let name = entry.file_name();
            if atomic_file::temporary_destination(&name).is_some_and(is_cache_name) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(ModelError::io("remove", &path))?;
            }
        }
        Ok(())
    }
}

/// A [`StatisticsCache`] file's name: `{label}-{16 hex digits}.npz`.
fn is_cache_name(name: &str) -> bool {
    name.strip_suffix(".npz")
        .and_then(|stem| stem.rsplit_once('-'))
        .is_some_and(|(_, hex)| hex.len() == 16 && hex.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// What a path given as an FID input holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FidInput {
    /// pytorch-fid's statistics: an `.npz` with `mu` and `sigma`.
    Statistics,
    /// A folder of images ([`folder_images`]).
    Folder,
    /// An `.npz` of images in `arr_0` ([`npz_images`]).
    Images,
    /// Anything else: a checkpoint, whose samples are the set ([`model_images`]).
    Model,
}

impl FidInput {
    /// What `path` holds, by its kind, its extension and, for an `.npz`, its arrays.
    pub fn of(path: &Path) -> Result<Self, ModelError> {
        if path.is_dir() {
            return Ok(Self::Folder);
        }
        if path.extension().is_none_or(|e| e != "npz") {
            return Ok(Self::Model);
        }
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(ModelError::io("read", path))?;
        let mut npz = Npz::new(file, &name).map_err(ModelError::format(path, "not an .npz"))?;
        let statistics = npz
            .stream("mu")
            .map_err(ModelError::format(path, "not an .npz"))?
            .is_some();
        Ok(if statistics {
            Self::Statistics
        } else {
            Self::Images
        })
    }
}

/// What identifies a file or folder's content for [`StatisticsCache`]: its absolute path,
/// and the name, size and modification time of it or of each file in it.
pub fn content_identity(path: &Path) -> Result<String, ModelError> {
    let absolute = std::fs::canonicalize(path).map_err(ModelError::io("read", path))?;
    let describe = |p: &Path| -> Result<String, ModelError> {
        let meta = std::fs::metadata(p).map_err(ModelError::io("read", p))?;
        let modified = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos());
        Ok(format!("{}:{}:{modified}", p.display(), meta.len()))
    };
    if !absolute.is_dir() {
        return describe(&absolute);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&absolute)
        .map_err(ModelError::io("read", path))?
        .map(|e| e.map(|e| e.path()))
        .collect::<Result<_, _>>()
        .map_err(ModelError::io("read", path))?;
    entries.sort();
    entries
        .iter()
        .map(|p| describe(p))
        .collect::<Result<Vec<_>, _>>()
        .map(|lines| lines.join("\n"))
}
