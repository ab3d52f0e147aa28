//! The UCI optical hand-written digits (1,797 images of 8x8, 10 classes), embedded in the crate.
//!
//! The file is `sklearn/datasets/data/digits.csv.gz` from scikit-learn's wheel (BSD-3-Clause):
//! each row holds 64 pixel values `0..=16` followed by the label `0..=9`. Credit: E. Alpaydin and
//! C. Kaynak, UCI Machine Learning Repository.

use crate::error::{DatasetError, Result};
use crate::gzip::maybe_gunzip;
use graft_core::ImageSet;

/// The embedded gzip CSV, exactly as shipped by scikit-learn.
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../data/digits.csv.gz");

/// Number of images in the UCI digits set.
pub const DIGITS_LEN: usize = 1797;

/// Side of a digits image in pixels (images are 1x8x8).
pub const DIGITS_SIDE: usize = 8;

/// Largest pixel value in the CSV; pixels are divided by it to land in `[0, 1]`.
pub const DIGITS_MAX_VALUE: f32 = 16.0;

/// Loads the embedded UCI digits: 1,797 images of shape 1x8x8, pixel/16 in `[0, 1]`, labels 0..9.
pub fn load_digits() -> Result<ImageSet> {
    parse_digits_csv(DIGITS_CSV_GZ)
}

/// Parses a digits CSV (gzip or plain text): every row must hold 65 numbers, 64 integer pixels in
/// `0..=16` and an integer label in `0..=9`. Errors name the 1-based row.
pub fn parse_digits_csv(bytes: &[u8]) -> Result<ImageSet> {
    let text = maybe_gunzip(bytes, "digits.csv.gz")?;
    let text = std::str::from_utf8(&text).map_err(|e| DatasetError::DigitsRow {
        row: 0,
        msg: format!("file is not UTF-8 text: {e}"),
    })?;
    let per = DIGITS_SIDE * DIGITS_SIDE;
    let mut images = Vec::with_capacity(DIGITS_LEN * per);
    let mut labels = Vec::with_capacity(DIGITS_LEN);
    for (i, line) in text.lines().enumerate() {
        let row = i + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != per + 1 {
            return Err(DatasetError::DigitsRow {
                row,
                msg: format!(
                    "expected {} comma-separated values (64 pixels + label), found {}",
                    per + 1,
                    fields.len()
                ),
            });
        }
        for (col, field) in fields.iter().enumerate() {
            let v: f32 = field.trim().parse().map_err(|_| DatasetError::DigitsRow {
                row,
                msg: format!("column {}: '{field}' is not a number", col + 1),
            })?;
            let (max, what) = if col < per {
                (DIGITS_MAX_VALUE, "pixel")
            } else {
                (9.0, "label")
            };
            if !(0.0..=max).contains(&v) || v.fract() != 0.0 {
                return Err(DatasetError::DigitsRow {
                    row,
                    msg: format!(
                        "column {}: {what} {v} is not an integer in 0..={max}",
                        col + 1
                    ),
                });
            }
            if col < per {
                images.push(v / DIGITS_MAX_VALUE);
            } else {
                labels.push(v as u32);
            }
        }
    }
    if labels.is_empty() {
        return Err(DatasetError::DigitsRow {
            row: 0,
            msg: "the CSV holds no rows".into(),
        });
    }
    Ok(ImageSet::new(images, labels, 1, DIGITS_SIDE, DIGITS_SIDE)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_digits_have_known_counts_and_range() {
        let set = load_digits().unwrap();
        assert_eq!(set.len(), DIGITS_LEN);
        assert_eq!(set.shape(), (1, 8, 8));
        assert_eq!(
            set.class_counts(),
            vec![178, 182, 177, 183, 181, 182, 181, 179, 174, 180]
        );
        assert!(set.images.iter().all(|&v| (0.0..=1.0).contains(&v)));
        // Both ends of the range occur: the data really was scaled by 1/16, not by 1/255.
        assert!(set.images.contains(&1.0));
        assert!(set.images.contains(&0.0));
        // First row of the file: 0,0,5,13,... label 0.
        assert_eq!(&set.image(0)[..4], &[0.0, 0.0, 5.0 / 16.0, 13.0 / 16.0]);
        assert_eq!(set.labels[0], 0);
    }

    #[test]
    fn short_row_is_named() {
        let mut csv = String::new();
        csv.push_str(&vec!["0"; 65].join(","));
        csv.push('\n');
        csv.push_str(&vec!["0"; 64].join(","));
        csv.push('\n');
        let err = parse_digits_csv(csv.as_bytes()).unwrap_err().to_string();
        assert!(err.contains("row 2"), "{err}");
        assert!(err.contains("expected 65"), "{err}");
        assert!(err.contains("found 64"), "{err}");
    }

    #[test]
    fn out_of_range_values_are_rejected() {
        let mut fields = vec!["0"; 65];
        fields[3] = "17";
        let err = parse_digits_csv(fields.join(",").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("row 1") && err.contains("column 4") && err.contains("0..=16"),
            "{err}"
        );
        let mut fields = vec!["0"; 65];
        fields[64] = "10";
        let err = parse_digits_csv(fields.join(",").as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("label 10"), "{err}");
        let mut fields = vec!["0"; 65];
        fields[0] = "x";
        assert!(parse_digits_csv(fields.join(",").as_bytes()).is_err());
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let cut = &DIGITS_CSV_GZ[..DIGITS_CSV_GZ.len() / 2];
        let err = parse_digits_csv(cut).unwrap_err().to_string();
        assert!(
            err.contains("digits.csv.gz") && err.contains("gzip"),
            "{err}"
        );
    }
}
