//! A model directory the daemon trains into (learning mode, scheduled retraining): bundles
//! kept side by side, one of them current, switched atomically.
//!
//! ```text
//! MODEL_DIR/
//!   current -> bundles/20261201T140000Z-3f2a9c1d0e4b5a67   (symlink; replaced by rename(2))
//!   bundles/20261201T140000Z-3f2a9c1d0e4b5a67/            (a bundle or a multi-scale set)
//!   bundles/20261130T140000Z-…/                           (kept for rollback)
//! ```
//!
//! A new model is written whole under `bundles/<name>.tmp/`, renamed to `bundles/<name>/`, and
//! only then pointed at by `current` (a new symlink renamed over the old one): a reader sees the
//! old model or the new one, never a mix, and a training killed half-way leaves only a `.tmp`
//! directory, removed at the next start. `current` takes precedence over a bundle written
//! directly into MODEL_DIR (by `netanom train --out MODEL_DIR`): the first retrain leaves that
//! bundle in place. To roll back, point `current` at an older bundle (`ln -sfn
//! bundles/<name> MODEL_DIR/current`) and reload (SIGHUP).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::bundle::{BundleError, META_FILE};
use super::set::{ModelSet, SCALES_FILE};

/// The symlink naming the model in force.
pub const CURRENT: &str = "current";

/// The directory of kept bundles.
pub const BUNDLES: &str = "bundles";

/// Suffix of a bundle being written.
const PARTIAL: &str = ".tmp";

/// A bundle written under `bundles/<name>.tmp/` and not yet current.
#[derive(Debug)]
pub struct Staged {
    name: String,
    path: PathBuf,
}

impl Staged {
    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A model directory with kept bundles and a `current` link.
#[derive(Clone, Debug)]
pub struct ModelStore {
    dir: PathBuf,
    keep: usize,
}

/// An I/O error on `path` as a [`BundleError`].
fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> BundleError + 'a {
    move |source| BundleError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// `YYYYMMDDTHHMMSSZ` of a Unix time.
fn utc_stamp(unix: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(unix as i64)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

impl ModelStore {
    /// The store in `dir` keeping the `keep` newest bundles (at least 1). Creates `dir` and
    /// `dir/bundles`, and removes what a killed training left (`bundles/*.tmp`).
    pub fn open(dir: &Path, keep: usize) -> Result<ModelStore, BundleError> {
        let bundles = dir.join(BUNDLES);
        fs::create_dir_all(&bundles).map_err(io_err("create", &bundles))?;
        for entry in fs::read_dir(&bundles).map_err(io_err("read", &bundles))? {
            let path = entry.map_err(io_err("read", &bundles))?.path();
            if path.extension().is_some_and(|e| e == &PARTIAL[1..]) {
                tracing::warn!(path = %path.display(), "removing a model left half-written by an interrupted training");
                fs::remove_dir_all(&path).map_err(io_err("remove", &path))?;
            }
        }
        Ok(ModelStore {
            dir: dir.to_path_buf(),
            keep: keep.max(1),
        })
    }

    /// True when `dir` holds a model to load: a bundle, a multi-scale set, or `current`.
    pub fn has_model(dir: &Path) -> bool {
        dir.join(CURRENT).exists() || dir.join(META_FILE).exists() || dir.join(SCALES_FILE).exists()
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Writes `set` as a new bundle and makes it current; prunes old bundles. Returns the new
    /// bundle's directory.
    pub fn install(&self, set: &ModelSet, created_unix: u64) -> Result<PathBuf, BundleError> {
        let staged = self.stage(set, created_unix)?;
        self.commit(staged)
    }

    /// Writes `set` whole under `bundles/<name>.tmp/`, not yet current (a candidate to check).
    pub fn stage(&self, set: &ModelSet, created_unix: u64) -> Result<Staged, BundleError> {
        let name = format!("{}-{}", utc_stamp(created_unix), set.id());
        let partial = self.dir.join(BUNDLES).join(format!("{name}{PARTIAL}"));
        if partial.exists() {
            fs::remove_dir_all(&partial).map_err(io_err("remove", &partial))?;
        }
        set.save(&partial)?;
        sync_dir(&partial)?;
        Ok(Staged {
            name,
            path: partial,
        })
    }

    /// Makes a staged bundle the current one: renamed into place, then `current` switched by
    /// renaming a new link over it; prunes old bundles. Returns the bundle's directory.
    pub fn commit(&self, staged: Staged) -> Result<PathBuf, BundleError> {
        let done = self.dir.join(BUNDLES).join(&staged.name);
        if done.exists() {
            // The same model retrained in the same second: the bundle is already there.
            fs::remove_dir_all(&staged.path).map_err(io_err("remove", &staged.path))?;
        } else {
            fs::rename(&staged.path, &done).map_err(io_err("rename into", &done))?;
        }
        let link = self.dir.join(format!("{CURRENT}{PARTIAL}"));
        let _ = fs::remove_file(&link);
        std::os::unix::fs::symlink(Path::new(BUNDLES).join(&staged.name), &link)
            .map_err(io_err("create", &link))?;
        let current = self.dir.join(CURRENT);
        fs::rename(&link, &current).map_err(io_err("rename into", &current))?;
        sync_dir(&self.dir)?;
        self.prune()?;
        Ok(done)
    }

    /// Drops a staged bundle (a rejected candidate).
    pub fn discard(&self, staged: Staged) -> Result<(), BundleError> {
        fs::remove_dir_all(&staged.path).map_err(io_err("remove", &staged.path))
    }

    /// The bundle `current` points at.
    pub fn current(&self) -> Option<PathBuf> {
        let target = fs::read_link(self.dir.join(CURRENT)).ok()?;
        Some(self.dir.join(target))
    }

    /// The kept bundles, oldest first (their names start with the UTC time they were made).
    pub fn bundles(&self) -> Result<Vec<PathBuf>, BundleError> {
        let dir = self.dir.join(BUNDLES);
        let mut out: Vec<PathBuf> = fs::read_dir(&dir)
            .map_err(io_err("read", &dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.is_dir() && p.extension().is_none_or(|e| e != &PARTIAL[1..]))
            .collect();
        out.sort();
        Ok(out)
    }

    /// Removes the oldest bundles beyond `keep`, never the current one.
    fn prune(&self) -> Result<(), BundleError> {
        let current = self.current().and_then(|p| p.canonicalize().ok());
        let all = self.bundles()?;
        let excess = all.len().saturating_sub(self.keep);
        for old in all.into_iter().take(excess) {
            if old.canonicalize().ok() == current {
                continue;
            }
            fs::remove_dir_all(&old).map_err(io_err("remove", &old))?;
        }
        Ok(())
    }
}

/// fsync of a directory, so the renames in it survive a power loss.
fn sync_dir(dir: &Path) -> Result<(), BundleError> {
    fs::File::open(dir)
        .and_then(|f| f.sync_all())
        .map_err(io_err("sync", dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::bundle::{Bundle, TrainingData};
    use crate::model::train::synthetic::normal_windows;
    use crate::model::{train, TrainOptions};

    fn set(seed: u64) -> ModelSet {
        let opts = TrainOptions {
            epochs: 1,
            hidden: 4,
            seed,
            ..TrainOptions::default()
        };
        let trained = train(&normal_windows(40, seed), &opts, |_| {}).unwrap();
        let b =
            Bundle::from_trained(trained, "0.5".parse().unwrap(), TrainingData::default()).unwrap();
        ModelSet::new(vec![b]).unwrap()
    }

    #[test]
    fn installs_switch_current_keep_the_newest_and_clean_partial_ones() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!ModelStore::has_model(dir.path()));
        let store = ModelStore::open(dir.path(), 2).unwrap();
        let mut ids = Vec::new();
        for (k, seed) in [1u64, 2, 3].into_iter().enumerate() {
            let s = set(seed);
            let path = store.install(&s, 1_764_590_000 + k as u64).unwrap();
            assert_eq!(store.current().unwrap(), path);
            let loaded = ModelSet::load(dir.path()).unwrap();
            ids.push(loaded.id().to_string());
        }
        assert!(ModelStore::has_model(dir.path()));
        assert_eq!(ids.len(), 3);
        assert_ne!(ids[0], ids[2]);
        let kept = store.bundles().unwrap();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(
            kept[1].ends_with(format!("20251201T115322Z-{}", ids[2])),
            "{kept:?}"
        );
        // A training killed half-way left a .tmp bundle: removed on open, current untouched.
        let partial = dir.path().join(BUNDLES).join("x.tmp");
        fs::create_dir_all(&partial).unwrap();
        fs::write(partial.join("model.json"), "{").unwrap();
        let store = ModelStore::open(dir.path(), 2).unwrap();
        assert!(!partial.exists());
        assert_eq!(ModelSet::load(dir.path()).unwrap().id(), ids[2]);
        assert_eq!(store.bundles().unwrap().len(), 2);
    }

    #[test]
    fn current_wins_over_a_bundle_written_into_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        let plain = set(1);
        plain.save(dir.path()).unwrap();
        let store = ModelStore::open(dir.path(), 3).unwrap();
        let next = set(2);
        store.install(&next, 1_764_590_000).unwrap();
        assert_eq!(ModelSet::load(dir.path()).unwrap().id(), next.id());
        // The plain bundle is still there: removing `current` goes back to it.
        fs::remove_file(dir.path().join(CURRENT)).unwrap();
        assert_eq!(ModelSet::load(dir.path()).unwrap().id(), plain.id());
    }
}
