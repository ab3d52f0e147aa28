//! Loading a whole dataset, built in or your own, wherever it is.

use crate::catalog::DatasetName;
use crate::digits::load_digits;
use crate::error::Result;
use crate::fashion::{load_fashion_mnist, Split};
use crate::folder::load_image_folder;
use crate::locate::{locate, DataLocation};
use crate::mnist_json::load_mnist_json;
use crate::npy::load_npy;
use crate::reference::DatasetRef;
use graft_core::ImageSet;
use std::path::Path;

/// A loaded dataset: its images and where they came from. Load it once and build many tasks from
/// it with [`crate::TaskSpec::build_from`].
#[derive(Clone, Debug)]
pub struct Dataset {
    /// Which dataset this is.
    pub name: DatasetRef,
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// The training split, or every image when the dataset has no test split of its own.
    pub train: ImageSet,
    /// The dataset's own validation split (an image folder's `val/`), if it has one; else a
    /// task draws one from `train` by its `val_fraction`.
    pub val: Option<ImageSet>,
    /// The dataset's own test split (Fashion-MNIST's `t10k` files, a folder's `test/`, NumPy
    /// test arrays), if it has one.
    pub test: Option<ImageSet>,
    /// Where the data was read from.
    pub location: DataLocation,
}

impl Dataset {
    /// Loads `dataset`: a built-in one is found (see [`crate::locate()`]) in `data_dir`, and a
    /// missing one is an error that says to run `graft data fetch`; your own files are read
    /// from their paths.
    pub fn load(dataset: &DatasetRef, data_dir: &Path) -> Result<Self> {
        match dataset {
            DatasetRef::Named(name) => Self::load_named(*name, data_dir),
            DatasetRef::Folder(f) => {
                let folder = load_image_folder(&f.folder, f.channels)?;
                Ok(Self {
                    name: dataset.clone(),
                    class_names: folder.class_names,
                    train: folder.train,
                    val: folder.val,
                    test: folder.test,
                    location: DataLocation::Dir(f.folder.clone()),
                })
            }
            DatasetRef::Npy(n) => {
                let train = load_npy(&n.images, &n.labels)?;
                let test = match (&n.test_images, &n.test_labels) {
                    (Some(images), Some(labels)) => Some(load_npy(images, labels)?),
                    _ => None,
                };
                // From the labels just read, not a second read of the files.
                let labels: Vec<u32> = train.labels.iter().chain(test.iter().flat_map(|t| &t.labels)).copied().collect();
                let class_names = n.class_names_for(&labels)?;
                let dir = n.images.parent().map(Path::to_path_buf).unwrap_or_default();
                Ok(Self { name: dataset.clone(), class_names, train, val: None, test, location: DataLocation::Dir(dir) })
            }
        }
    }

    fn load_named(name: DatasetName, data_dir: &Path) -> Result<Self> {
        let location = locate(name, data_dir)?;
        let (train, test) = match (&location, name) {
            (DataLocation::Dir(dir), DatasetName::FashionMnist) => (
                load_fashion_mnist(dir, Split::Train)?,
                Some(load_fashion_mnist(dir, Split::Test)?),
            ),
            (DataLocation::Dir(dir), DatasetName::Mnist) => (load_mnist_json(dir)?, None),
            _ => (load_digits()?, None),
        };
        Ok(Self::from_sets(name, train, test, location))
    }

    /// Wraps already-loaded images (e.g. synthetic data in tests) as built-in dataset `name`.
    pub fn from_sets(name: DatasetName, train: ImageSet, test: Option<ImageSet>, location: DataLocation) -> Self {
        Self { name: DatasetRef::Named(name), class_names: name.class_names(), train, val: None, test, location }
    }
}
