//! The error type of graft-datasets: every variant names the file, row, key or shape involved and
//! what was expected instead.

use crate::catalog::DatasetName;
use std::path::PathBuf;

/// Result alias used across graft-datasets.
pub type Result<T> = std::result::Result<T, DatasetError>;

/// Everything that can go wrong while loading, fetching or deriving data.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    /// Reading, writing or listing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A gzip stream could not be decompressed (corrupt or truncated).
    #[error("{file}: gzip data is corrupt or truncated: {source}")]
    Gzip {
        /// The file (or in-memory name) whose gzip stream failed.
        file: String,
        /// The decompression error.
        source: std::io::Error,
    },

    /// A row of the embedded UCI digits CSV is malformed.
    #[error("UCI digits CSV, row {row}: {msg}")]
    DigitsRow {
        /// 1-based row number in the CSV.
        row: usize,
        /// What is wrong with the row and what was expected.
        msg: String,
    },

    /// An IDX file starts with the wrong magic number.
    #[error("IDX file {file}: magic number is 0x{actual:08x}, expected 0x{expected:08x} ({what})")]
    IdxMagic {
        /// The file (or in-memory name).
        file: String,
        /// The magic number the caller asked for.
        expected: u32,
        /// The magic number found in the file.
        actual: u32,
        /// What the expected magic stands for (e.g. "unsigned-byte images, 3 dimensions").
        what: &'static str,
    },

    /// An IDX file does not hold exactly as many bytes as its header announces.
    #[error("IDX file {file}: expected {expected} bytes ({detail}), found {actual} bytes{}",
        if actual < expected { " (file is truncated)" } else { " (trailing bytes)" })]
    IdxSize {
        /// The file (or in-memory name).
        file: String,
        /// Bytes the header (and dimensions) require.
        expected: usize,
        /// Bytes actually present (after gzip decompression).
        actual: usize,
        /// How `expected` was computed, e.g. "16-byte header + 2x28x28 pixels".
        detail: String,
    },

    /// An IDX file's header holds invalid dimensions.
    #[error("IDX file {file}: {msg}")]
    IdxHeader {
        /// The file (or in-memory name).
        file: String,
        /// What is wrong with the header.
        msg: String,
    },

    /// An MNIST json file is malformed.
    #[error("MNIST json file {}: {msg}", file.display())]
    Json {
        /// The json file.
        file: PathBuf,
        /// What is wrong and what was expected.
        msg: String,
    },

    /// A dataset's files are not installed.
    #[error("{dataset} not found (looked in {}); run `graft data fetch` to install it",
        searched.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", "))]
    Missing {
        /// The dataset that was looked for.
        dataset: DatasetName,
        /// Every directory that was searched.
        searched: Vec<PathBuf>,
    },

    /// Installing a dataset failed or is not possible here; the message says what to run instead.
    #[error("cannot fetch {dataset}: {msg}")]
    Fetch {
        /// The dataset being fetched.
        dataset: DatasetName,
        /// What went wrong and the exact command or step that would fix it.
        msg: String,
    },

    /// No data directory could be resolved from the environment.
    #[error("cannot resolve the graft data directory: {0}")]
    DataDir(String),

    /// A derivation (class selection, domain, resize, split...) got invalid arguments or data.
    #[error("{op}: {msg}")]
    Derive {
        /// The derivation, e.g. `select_classes`.
        op: &'static str,
        /// What is wrong, naming the shapes or values involved.
        msg: String,
    },

    /// An image folder (torchvision's `ImageFolder` layout, `root/<class>/<images>`) is missing,
    /// empty or inconsistent; `path` is the folder at fault.
    #[error("image folder {}: {msg}", path.display())]
    ImageFolder {
        /// The root, split or class folder at fault.
        path: PathBuf,
        /// What is wrong and what was expected.
        msg: String,
    },

    /// An image file could not be decoded, or its pixels cannot be used.
    #[error("image {}: {msg}", path.display())]
    Image {
        /// The image file.
        path: PathBuf,
        /// What went wrong (the decoder's message when decoding failed).
        msg: String,
    },

    /// The images of one image folder do not all have the same channels and size.
    #[error("image {} is {}x{}x{} (channels x height x width) but {} is {}x{}x{}; every image must \
        have the same size and channels (resizing to the backbone's input happens later; pass \
        `channels` to convert grey and colour images to one channel count)",
        file.display(), shape.0, shape.1, shape.2,
        first.display(), first_shape.0, first_shape.1, first_shape.2)]
    ImageShape {
        /// The first file whose shape differs from the first image's.
        file: PathBuf,
        /// Its `(channels, height, width)`.
        shape: (usize, usize, usize),
        /// The first image read, which set the expected shape.
        first: PathBuf,
        /// The first image's `(channels, height, width)`.
        first_shape: (usize, usize, usize),
    },

    /// A NumPy `.npy` file is malformed or holds an array graft cannot use.
    #[error("NumPy file {file}: {msg}")]
    Npy {
        /// The file (or in-memory name).
        file: String,
        /// What was found and what was expected.
        msg: String,
    },

    /// A task spec is invalid or could not be built.
    #[error("task spec '{task}': {msg}")]
    Spec {
        /// The task's name.
        task: String,
        /// What is wrong, naming the key and the valid values.
        msg: String,
    },

    /// An error from graft-core (e.g. an inconsistent `ImageSet` or an invalid `Task`).
    #[error(transparent)]
    Core(#[from] graft_core::GraftError),
}

impl DatasetError {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DatasetError::Io {
            path: path.into(),
            source,
        }
    }

    pub(crate) fn derive(op: &'static str, msg: impl Into<String>) -> Self {
        DatasetError::Derive {
            op,
            msg: msg.into(),
        }
    }
}

impl From<DatasetError> for graft_core::GraftError {
    /// Converts to graft-core's error (as `GraftError::Data`, keeping the message), so method
    /// crates can use `?` on dataset calls.
    fn from(e: DatasetError) -> Self {
        match e {
            DatasetError::Core(inner) => inner,
            DatasetError::Io { path, source } => graft_core::GraftError::Io { path, source },
            other => graft_core::GraftError::Data(other.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_to_graft_error_keeping_the_message() {
        let e = DatasetError::Spec {
            task: "t".into(),
            msg: "`fraction` must be in (0, 1]".into(),
        };
        let g: graft_core::GraftError = e.into();
        assert!(
            matches!(&g, graft_core::GraftError::Data(m) if m.contains("task spec 't'") && m.contains("fraction")),
            "{g}"
        );
        let e = DatasetError::io(
            "/x/y",
            std::io::Error::new(std::io::ErrorKind::NotFound, "gone"),
        );
        let g: graft_core::GraftError = e.into();
        assert!(matches!(g, graft_core::GraftError::Io { .. }));
    }
}
