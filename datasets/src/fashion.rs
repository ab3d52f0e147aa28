//! Fashion-MNIST (Zalando Research, MIT): 60,000 train and 10,000 test images of 28x28 in 10
//! classes, read from the gzip IDX files of the Debian package `dataset-fashion-mnist`.

use crate::error::{DatasetError, Result};
use crate::idx::{read_idx_images, read_idx_labels};
use graft_core::ImageSet;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The ten Fashion-MNIST class names, indexed by label.
pub const FASHION_CLASS_NAMES: [&str; 10] = [
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
];

/// Superclass groups of Fashion-MNIST used as primitive tasks: `(name, class labels)`.
/// Every class is in exactly one group.
pub const FASHION_SUPERCLASSES: [(&str, &[u32]); 3] = [
    ("tops", &[0, 2, 4, 6]),
    ("footwear", &[5, 7, 9]),
    ("other", &[1, 3, 8]),
];

/// The superclass groups of [`FASHION_SUPERCLASSES`] as `Vec`s, ready for
/// [`crate::derive::group_classes`].
pub fn fashion_superclass_groups() -> Vec<Vec<u32>> {
    FASHION_SUPERCLASSES
        .iter()
        .map(|(_, g)| g.to_vec())
        .collect()
}

/// One of the two official Fashion-MNIST splits.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// The 60,000 training images (`train-*` files).
    Train,
    /// The 10,000 test images (`t10k-*` files).
    Test,
}

impl Split {
    /// File name prefix of the split: `train` or `t10k`.
    pub fn prefix(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Test => "t10k",
        }
    }

    /// Number of images in the official split (60,000 or 10,000).
    pub fn expected_len(self) -> usize {
        match self {
            Split::Train => 60_000,
            Split::Test => 10_000,
        }
    }
}

/// Number of Fashion-MNIST classes.
pub const FASHION_NUM_CLASSES: usize = 10;

/// The file names a Fashion-MNIST directory must hold (gzip variants).
pub const FASHION_FILES: [&str; 4] = [
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
];

/// Path of `<prefix>-<kind>-ubyte` in `dir`, with `.gz` when that file exists, else the plain name
/// when that exists, else `None`.
pub(crate) fn find_file(dir: &Path, stem: &str) -> Option<PathBuf> {
    let gz = dir.join(format!("{stem}.gz"));
    if gz.is_file() {
        return Some(gz);
    }
    let plain = dir.join(stem);
    plain.is_file().then_some(plain)
}

/// True when `dir` holds all four Fashion-MNIST files (gzip or uncompressed).
pub fn is_fashion_dir(dir: &Path) -> bool {
    [Split::Train, Split::Test].iter().all(|s| {
        find_file(dir, &format!("{}-images-idx3-ubyte", s.prefix())).is_some()
            && find_file(dir, &format!("{}-labels-idx1-ubyte", s.prefix())).is_some()
    })
}

/// Loads one Fashion-MNIST split from `dir` (files `train-*`/`t10k-*`, `.gz` or plain): images
/// 1x28x28 divided by 255, labels 0..9. Errors name the file when it is missing, malformed, or
/// when image and label counts disagree.
pub fn load_fashion_mnist(dir: &Path, split: Split) -> Result<ImageSet> {
    let p = split.prefix();
    let locate = |stem: String| {
        find_file(dir, &stem).ok_or_else(|| {
            DatasetError::io(
                dir.join(format!("{stem}.gz")),
                std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    "Fashion-MNIST file not found (run `graft data fetch`)",
                ),
            )
        })
    };
    let image_path = locate(format!("{p}-images-idx3-ubyte"))?;
    let label_path = locate(format!("{p}-labels-idx1-ubyte"))?;
    idx_to_image_set(&image_path, &label_path, FASHION_NUM_CLASSES)
}

/// Reads an IDX images file and its labels file into an [`ImageSet`] (1 channel, pixels/255),
/// checking that the counts agree and that every label is `< num_classes`.
pub fn idx_to_image_set(
    image_path: &Path,
    label_path: &Path,
    num_classes: usize,
) -> Result<ImageSet> {
    let images = read_idx_images(image_path)?;
    let labels = read_idx_labels(label_path)?;
    if images.count != labels.len() {
        return Err(DatasetError::IdxHeader {
            file: label_path.display().to_string(),
            msg: format!(
                "holds {} labels but {} holds {} images",
                labels.len(),
                image_path.display(),
                images.count
            ),
        });
    }
    if let Some((i, &bad)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l as usize >= num_classes)
    {
        return Err(DatasetError::IdxHeader {
            file: label_path.display().to_string(),
            msg: format!("label {bad} at index {i} is out of range; expected 0..{num_classes}"),
        });
    }
    let pixels = images.pixels.iter().map(|&v| v as f32 / 255.0).collect();
    let labels = labels.into_iter().map(u32::from).collect();
    Ok(ImageSet::new(pixels, labels, 1, images.rows, images.cols)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::idx::{encode_idx_images, encode_idx_labels, write_idx_bytes, IdxImages};

    fn write_split(dir: &Path, prefix: &str, n: usize, labels: &[u8], gzip: bool) {
        let suffix = if gzip { ".gz" } else { "" };
        let images = IdxImages {
            count: n,
            rows: 28,
            cols: 28,
            pixels: (0..n * 784).map(|i| (i % 256) as u8).collect(),
        };
        write_idx_bytes(
            &dir.join(format!("{prefix}-images-idx3-ubyte{suffix}")),
            &encode_idx_images(&images).unwrap(),
            gzip,
        )
        .unwrap();
        write_idx_bytes(
            &dir.join(format!("{prefix}-labels-idx1-ubyte{suffix}")),
            &encode_idx_labels(labels).unwrap(),
            gzip,
        )
        .unwrap();
    }

    #[test]
    fn synthetic_fashion_dir_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(!is_fashion_dir(dir.path()));
        write_split(dir.path(), "train", 3, &[0, 9, 4], true);
        write_split(dir.path(), "t10k", 2, &[1, 2], false);
        assert!(is_fashion_dir(dir.path()));
        let train = load_fashion_mnist(dir.path(), Split::Train).unwrap();
        assert_eq!(train.shape(), (1, 28, 28));
        assert_eq!(train.labels, vec![0, 9, 4]);
        assert_eq!(train.images[255], 1.0);
        assert_eq!(train.images[256], 0.0);
        let test = load_fashion_mnist(dir.path(), Split::Test).unwrap();
        assert_eq!(test.labels, vec![1, 2]);
    }

    #[test]
    fn count_mismatch_and_bad_label_are_errors() {
        let dir = tempfile::tempdir().unwrap();
        write_split(dir.path(), "train", 3, &[0, 1], true);
        let err = load_fashion_mnist(dir.path(), Split::Train)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("train-labels-idx1-ubyte.gz")
                && err.contains("2 labels")
                && err.contains("3 images"),
            "{err}"
        );
        write_split(dir.path(), "t10k", 2, &[1, 12], true);
        let err = load_fashion_mnist(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 12"), "{err}");
    }

    #[test]
    fn missing_file_says_fetch() {
        let dir = tempfile::tempdir().unwrap();
        let err = load_fashion_mnist(dir.path(), Split::Test)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("t10k-images-idx3-ubyte.gz") && err.contains("graft data fetch"),
            "{err}"
        );
    }

    #[test]
    fn superclasses_partition_the_classes() {
        let mut all: Vec<u32> = FASHION_SUPERCLASSES
            .iter()
            .flat_map(|(_, g)| g.iter().copied())
            .collect();
        all.sort();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
        assert_eq!(FASHION_CLASS_NAMES[9], "Ankle boot");
    }
}
