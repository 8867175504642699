//! A run's output folder: the files it holds, how a new run claims it without losing an
//! old one, and the last state saved so that a crash at any moment leaves a complete one.

use std::path::{Path, PathBuf};

use crate::ModelError;
use crate::checkpoint::{Origin, write_atomic};
use crate::train::{RunPosition, TrainError, Training};

/// The files of a run, all inside `dir` (and the best checkpoint, named after the model:
/// see [`checkpoint_name`](crate::train::checkpoint_name)).
#[derive(Debug, Clone, PartialEq)]
pub struct RunFolder {
    /// The folder.
    pub dir: PathBuf,
    /// `last/`: the complete state to resume from (model, optimizer, counters, position).
    pub last: PathBuf,
    /// `metrics.jsonl`: one line per step and per evaluation.
    pub metrics: PathBuf,
    /// `bits_per_dim.png`: the learning curve.
    pub plot: PathBuf,
    /// `samples.png`: the grid drawn at the last evaluation.
    pub samples: PathBuf,
}

impl RunFolder {
    /// The files of a run in `dir`.
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_path_buf(),
            last: dir.join("last"),
            metrics: dir.join("metrics.jsonl"),
            plot: dir.join("bits_per_dim.png"),
            samples: dir.join("samples.png"),
        }
    }

    /// The best checkpoint (`<name>.bpk` and `<name>.json`).
    pub fn best(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// What the folder holds, by name, sorted (empty if it is missing or empty).
    pub fn contents(&self) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Creates the folder for a new run: it must be missing or empty, else
    /// [`TrainError::RunExists`] says what is there (nothing is touched).
    pub fn claim(&self) -> Result<(), TrainError> {
        let found = self.contents();
        if !found.is_empty() {
            return Err(TrainError::RunExists {
                dir: self.dir.clone(),
                found,
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(ModelError::io("create", &self.dir))?;
        Ok(())
    }

    /// Moves the folder, if it holds anything, to the first free `<dir>.replaced-<n>` and
    /// returns where; nothing is deleted.
    pub fn move_aside(&self) -> Result<Option<PathBuf>, TrainError> {
        if self.contents().is_empty() {
            return Ok(None);
        }
        let target = (1..)
            .map(|n| {
                let mut name = self.dir.as_os_str().to_owned();
                name.push(format!(".replaced-{n}"));
                PathBuf::from(name)
            })
            .find(|candidate| !candidate.exists())
            .expect("some index is free");
        std::fs::rename(&self.dir, &target).map_err(ModelError::io("move aside", &self.dir))?;
        Ok(Some(target))
    }

    /// The complete last state, if any: `last/`, or `last.old/` when a swap was
    /// interrupted between its two renames.
    pub fn latest_state(&self) -> Option<PathBuf> {
        [self.last.clone(), self.last.with_extension("old")]
            .into_iter()
            .find(|dir| dir.join("position.json").is_file())
    }

    /// Removes what a run killed in the middle of a write leaves: `last.tmp/` and the
    /// temporary files (`*.tmp-<pid>`, `*.tmp.png`) of checkpoints and images.
    pub fn remove_unfinished_writes(&self) -> Result<(), TrainError> {
        remove_dir_if_present(&self.last.with_extension("tmp"))?;
        for name in self.contents() {
            let path = self.dir.join(&name);
            if (name.contains(".tmp-") || name.ends_with(".tmp.png")) && path.is_file() {
                std::fs::remove_file(&path).map_err(ModelError::io("remove", &path))?;
            }
        }
        Ok(())
    }

    /// Writes the state to `last.tmp/`, then swaps it in: at every moment either the old
    /// or the new complete state is on disk (`last.old/` during the swap).
    pub fn save_state(
        &self,
        training: &Training,
        position: &RunPosition,
        origin: &Origin,
    ) -> Result<(), TrainError> {
        let temporary = self.last.with_extension("tmp");
        let old = self.last.with_extension("old");
        remove_dir_if_present(&temporary)?;
        training.save(&temporary, origin)?;
        let json = serde_json::to_string_pretty(position).expect("a position serialises");
        write_atomic(&temporary.join("position.json"), json.as_bytes())?;
        if self.last.exists() {
            remove_dir_if_present(&old)?;
            std::fs::rename(&self.last, &old).map_err(ModelError::io("rename", &self.last))?;
        }
        std::fs::rename(&temporary, &self.last).map_err(ModelError::io("rename", &temporary))?;
        remove_dir_if_present(&old)
    }
}

/// The position saved in the state folder `state`.
pub fn read_position(state: &Path) -> Result<RunPosition, TrainError> {
    let path = state.join("position.json");
    let text = std::fs::read_to_string(&path).map_err(ModelError::io("read", &path))?;
    Ok(serde_json::from_str(&text).map_err(ModelError::format(&path, "not a valid position"))?)
}

fn remove_dir_if_present(dir: &Path) -> Result<(), TrainError> {
    match std::fs::remove_dir_all(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(ModelError::io("remove", dir)(e).into())
        }
        _ => Ok(()),
    }
}
