//! Where graft's data lives: the data directory and each dataset's files.
//!
//! The data directory is `$GRAFT_DATA_DIR`, else `$XDG_DATA_HOME/graft`, else
//! `$HOME/.local/share/graft` (empty variables count as unset). Fashion-MNIST is looked up in
//! `<data>/fashion-mnist/` then in the Debian package's `/usr/share/datasets/fashion-mnist/`;
//! MNIST in `<data>/mnist/`; the UCI digits are embedded and always present.

use crate::catalog::DatasetName;
use crate::error::{DatasetError, Result};
use crate::fashion::is_fashion_dir;
use crate::mnist_json::is_mnist_dir;
use std::fmt;
use std::path::{Path, PathBuf};

/// Environment variable that overrides the data directory.
pub const DATA_DIR_ENV: &str = "GRAFT_DATA_DIR";

/// Where the Debian package `dataset-fashion-mnist` installs its files.
pub const SYSTEM_FASHION_DIR: &str = "/usr/share/datasets/fashion-mnist";

/// Resolves the data directory from the process environment (see the module docs).
pub fn data_dir() -> Result<PathBuf> {
    data_dir_from(|k| std::env::var_os(k).map(PathBuf::from))
}

/// Resolves the data directory with `get` as the environment lookup (for tests and embedding).
pub fn data_dir_from(get: impl Fn(&str) -> Option<PathBuf>) -> Result<PathBuf> {
    let get = |k: &str| get(k).filter(|v| !v.as_os_str().is_empty());
    if let Some(dir) = get(DATA_DIR_ENV) {
        return Ok(dir);
    }
    if let Some(xdg) = get("XDG_DATA_HOME") {
        return Ok(xdg.join("graft"));
    }
    if let Some(home) = get("HOME") {
        return Ok(home.join(".local").join("share").join("graft"));
    }
    Err(DatasetError::DataDir(format!(
        "none of {DATA_DIR_ENV}, XDG_DATA_HOME or HOME is set; set {DATA_DIR_ENV} to a directory"
    )))
}

/// Where a dataset's data was found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataLocation {
    /// Compiled into the crate (the UCI digits).
    Embedded,
    /// A directory holding the dataset's files.
    Dir(PathBuf),
}

impl fmt::Display for DataLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataLocation::Embedded => f.write_str("embedded"),
            DataLocation::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}

/// The committed slices of the real datasets (`datasets/testdata`: the first 1,200 training and
/// 1,000 test images of Fashion-MNIST, 2 images per MNIST digit file, in their native formats),
/// usable as a data directory: tests build tasks from them on any machine, with nothing fetched.
pub fn test_data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
}

/// The directories searched for `dataset`, in order (empty for the embedded digits).
pub fn candidate_dirs(dataset: DatasetName, data_dir: &Path) -> Vec<PathBuf> {
    match dataset {
        DatasetName::Digits => Vec::new(),
        DatasetName::FashionMnist => vec![
            data_dir.join("fashion-mnist"),
            PathBuf::from(SYSTEM_FASHION_DIR),
        ],
        DatasetName::Mnist => vec![data_dir.join("mnist")],
    }
}

/// Finds `dataset`'s data, or `None` when no candidate directory holds all its files.
pub fn find(dataset: DatasetName, data_dir: &Path) -> Option<DataLocation> {
    match dataset {
        DatasetName::Digits => Some(DataLocation::Embedded),
        DatasetName::FashionMnist => candidate_dirs(dataset, data_dir)
            .into_iter()
            .find(|d| is_fashion_dir(d))
            .map(DataLocation::Dir),
        DatasetName::Mnist => candidate_dirs(dataset, data_dir)
            .into_iter()
            .find(|d| is_mnist_dir(d))
            .map(DataLocation::Dir),
    }
}

/// Finds `dataset`'s data; the error lists the directories searched and says to run
/// `graft data fetch`.
pub fn locate(dataset: DatasetName, data_dir: &Path) -> Result<DataLocation> {
    find(dataset, data_dir).ok_or_else(|| DatasetError::Missing {
        dataset,
        searched: candidate_dirs(dataset, data_dir),
    })
}

/// Whether one dataset is present and where.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetStatus {
    /// The dataset.
    pub dataset: DatasetName,
    /// Where it was found; `None` when missing.
    pub location: Option<DataLocation>,
    /// The directories that were searched (empty for embedded data).
    pub searched: Vec<PathBuf>,
}

impl DatasetStatus {
    /// True when the dataset can be loaded.
    pub fn present(&self) -> bool {
        self.location.is_some()
    }
}

impl fmt::Display for DatasetStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Some(loc) => write!(f, "{:<14} present  {loc}", self.dataset.key()),
            None => write!(
                f,
                "{:<14} MISSING  (looked in {}; run `graft data fetch`)",
                self.dataset.key(),
                self.searched
                    .iter()
                    .map(|p| p.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// Reports, for every dataset, whether it is present and where.
pub fn status(data_dir: &Path) -> Vec<DatasetStatus> {
    DatasetName::ALL
        .into_iter()
        .map(|dataset| DatasetStatus {
            dataset,
            location: find(dataset, data_dir),
            searched: candidate_dirs(dataset, data_dir),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<PathBuf> {
        let m: HashMap<String, PathBuf> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), PathBuf::from(v)))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn data_dir_precedence() {
        let all = [
            ("GRAFT_DATA_DIR", "/g"),
            ("XDG_DATA_HOME", "/x"),
            ("HOME", "/h"),
        ];
        assert_eq!(data_dir_from(env(&all)).unwrap(), PathBuf::from("/g"));
        assert_eq!(
            data_dir_from(env(&all[1..])).unwrap(),
            PathBuf::from("/x/graft")
        );
        assert_eq!(
            data_dir_from(env(&all[2..])).unwrap(),
            PathBuf::from("/h/.local/share/graft")
        );
        // Empty values count as unset.
        assert_eq!(
            data_dir_from(env(&[
                ("GRAFT_DATA_DIR", ""),
                ("XDG_DATA_HOME", ""),
                ("HOME", "/h")
            ]))
            .unwrap(),
            PathBuf::from("/h/.local/share/graft")
        );
        let err = data_dir_from(env(&[])).unwrap_err().to_string();
        assert!(err.contains("GRAFT_DATA_DIR"), "{err}");
    }

    #[test]
    fn missing_mnist_lists_dirs_and_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let err = locate(DatasetName::Mnist, dir.path())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("graft data fetch")
                && err.contains(&dir.path().join("mnist").display().to_string()),
            "{err}"
        );
        assert_eq!(
            locate(DatasetName::Digits, dir.path()).unwrap(),
            DataLocation::Embedded
        );
        let st = status(dir.path());
        assert_eq!(st.len(), 3);
        assert!(st[0].present());
        assert!(!st[2].present());
        assert!(st[2].to_string().contains("MISSING"));
        for d in 0..10 {
            std::fs::create_dir_all(dir.path().join("mnist")).unwrap();
            std::fs::write(dir.path().join("mnist").join(format!("{d}.json")), "{}").unwrap();
        }
        assert_eq!(
            locate(DatasetName::Mnist, dir.path()).unwrap(),
            DataLocation::Dir(dir.path().join("mnist"))
        );
    }
}
