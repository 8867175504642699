//! A run's output folder: the files it holds, how a new run claims it without losing an
//! old one or anybody's other files, the lock that keeps a second writer out, and the last
//! state saved so that a crash at any moment leaves a complete one.

use std::io::Write;
use std::path::{Path, PathBuf};

use marscf_data::atomic_file::{self, AtomicDir, Existing};

use crate::checkpoint::Origin;
use crate::train::{RunPosition, TrainError, Training};
use crate::{ModelError, files};

/// The lock file of a run's folder: `pid <pid> on <host>` of its last writer.
pub const LOCK_FILE: &str = "marscf-run.lock";

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

    /// The lock file, which marks the folder as a run's and is locked by its writer.
    pub fn lock_file(&self) -> PathBuf {
        self.dir.join(LOCK_FILE)
    }

    /// Whether the folder holds a marscf run: its lock file, or a saved state (runs saved
    /// before the lock file existed).
    pub fn is_run(&self) -> bool {
        self.lock_file().is_file() || self.latest_state().is_some()
    }

    /// Creates the folder for a new run and takes its lock: it must be missing or empty,
    /// else [`TrainError::RunExists`] says what is there (nothing is touched).
    pub fn claim(&self) -> Result<RunLock, TrainError> {
        let found = self.contents();
        if !found.is_empty() {
            return Err(TrainError::RunExists {
                dir: self.dir.clone(),
                found,
            });
        }
        std::fs::create_dir_all(&self.dir).map_err(ModelError::io("create", &self.dir))?;
        self.lock()
    }

    /// Takes the run's exclusive lock (an advisory lock on [`lock_file`](Self::lock_file),
    /// held until the returned guard is dropped or the process ends, so a dead writer's
    /// lock is free again), and writes this process's id and host into the file. A lock
    /// held by a live process is [`TrainError::RunLocked`], naming the holder.
    pub fn lock(&self) -> Result<RunLock, TrainError> {
        let path = self.lock_file();
        let Some(mut file) = files::try_lock(&path)? else {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(TrainError::RunLocked {
                dir: self.dir.clone(),
                holder: holder.trim().to_string(),
            });
        };
        let holder = format!("pid {} on {}\n", std::process::id(), host_name());
        file.set_len(0)
            .and_then(|()| file.write_all(holder.as_bytes()))
            .and_then(|()| file.sync_all())
            .map_err(ModelError::io("write", &path))?;
        Ok(RunLock { _file: file })
    }

    /// Moves the run in the folder, if it holds anything, to the first free
    /// `<dir>.replaced-<n>` and returns where; nothing is deleted. Only a run's folder is
    /// moved, once its lock is taken: anything else is [`TrainError::NotARun`].
    pub fn move_aside(&self) -> Result<Option<PathBuf>, TrainError> {
        let found = self.contents();
        if found.is_empty() {
            return Ok(None);
        }
        if !self.is_run() {
            return Err(TrainError::NotARun {
                dir: self.dir.clone(),
                found,
            });
        }
        let lock = self.lock()?;
        let target = (1..)
            .map(|n| {
                let mut name = self.dir.as_os_str().to_owned();
                name.push(format!(".replaced-{n}"));
                PathBuf::from(name)
            })
            .find(|candidate| !candidate.exists())
            .expect("some index is free");
        std::fs::rename(&self.dir, &target).map_err(ModelError::io("move aside", &self.dir))?;
        drop(lock);
        Ok(Some(target))
    }

    /// The complete last state, if any: `last/`, or `last.old/` when a swap was
    /// interrupted between its two renames.
    pub fn latest_state(&self) -> Option<PathBuf> {
        [self.last.clone(), self.old_state()]
            .into_iter()
            .find(|dir| dir.join("position.json").is_file())
    }

    fn old_state(&self) -> PathBuf {
        self.last.with_extension("old")
    }

    /// Removes what a writer of this run killed in the middle of a write left in the
    /// folder: the temporary files and folders of [`atomic_file`] (nothing else). Needs the
    /// run's lock, so that no live writer's temporary is taken.
    pub fn remove_unfinished_writes(&self, _lock: &RunLock) -> Result<(), TrainError> {
        let entries = std::fs::read_dir(&self.dir).map_err(ModelError::io("list", &self.dir))?;
        for entry in entries {
            let entry = entry.map_err(ModelError::io("list", &self.dir))?;
            if !atomic_file::is_temporary(&entry.file_name()) {
                continue;
            }
            let path = entry.path();
            let removed = if path.is_dir() {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(ModelError::io("remove", &path))?;
        }
        Ok(())
    }

    /// Writes the state to a temporary folder, then swaps it in: at every moment either the
    /// old or the new complete state is on disk (`last.old/` during the swap).
    pub fn save_state(
        &self,
        training: &Training,
        position: &RunPosition,
        origin: &Origin,
        _lock: &RunLock,
    ) -> Result<(), TrainError> {
        let old = self.old_state();
        let pending = AtomicDir::create(&self.last)
            .map_err(ModelError::io("create a folder in", &self.dir))?;
        training.save(pending.path(), origin)?;
        let json = serde_json::to_string_pretty(position).expect("a position serialises");
        files::write(
            &pending.path().join("position.json"),
            json.as_bytes(),
            Existing::Replace,
        )?;
        if self.last.exists() {
            remove_dir_if_present(&old)?;
            std::fs::rename(&self.last, &old).map_err(ModelError::io("rename", &self.last))?;
        }
        pending
            .commit()
            .map_err(ModelError::io("rename a state onto", &self.last))?;
        remove_dir_if_present(&old)
    }
}

/// The run's exclusive lock, held while the value lives (see [`RunFolder::lock`]).
#[derive(Debug)]
pub struct RunLock {
    _file: std::fs::File,
}

/// This machine's name, for the lock file (`unknown host` where it cannot be read).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_string())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "unknown host".to_string())
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
