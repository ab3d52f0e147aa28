//! Loading a whole dataset by name, wherever it is installed.

use crate::catalog::DatasetName;
use crate::digits::load_digits;
use crate::error::Result;
use crate::fashion::{load_fashion_mnist, Split};
use crate::locate::{locate, DataLocation};
use crate::mnist_json::load_mnist_json;
use graft_core::ImageSet;
use std::path::Path;

/// A loaded dataset: its images and where they came from. Load it once and build many tasks from
/// it with [`crate::TaskSpec::build_from`].
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which dataset this is.
    pub name: DatasetName,
    /// The official training split, or every image when the dataset has no official test split
    /// (digits, MNIST json).
    pub train: ImageSet,
    /// The official test split (Fashion-MNIST's `t10k` files), if the dataset has one.
    pub test: Option<ImageSet>,
    /// Where the data was read from.
    pub location: DataLocation,
}

impl Dataset {
    /// Finds (see [`crate::locate()`]) and loads `name`. A missing dataset is an error that says to
    /// run `graft data fetch`.
    pub fn load(name: DatasetName, data_dir: &Path) -> Result<Self> {
        let location = locate(name, data_dir)?;
        let (train, test) = match (&location, name) {
            (DataLocation::Dir(dir), DatasetName::FashionMnist) => (
                load_fashion_mnist(dir, Split::Train)?,
                Some(load_fashion_mnist(dir, Split::Test)?),
            ),
            (DataLocation::Dir(dir), DatasetName::Mnist) => (load_mnist_json(dir)?, None),
            _ => (load_digits()?, None),
        };
        Ok(Self {
            name,
            train,
            test,
            location,
        })
    }

    /// Wraps already-loaded images (e.g. synthetic data in tests) as dataset `name`.
    pub fn from_sets(
        name: DatasetName,
        train: ImageSet,
        test: Option<ImageSet>,
        location: DataLocation,
    ) -> Self {
        Self {
            name,
            train,
            test,
            location,
        }
    }
}
