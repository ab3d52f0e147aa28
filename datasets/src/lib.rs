//! graft-datasets: the data graft trains and evaluates on, and the tasks derived from it.
//!
//! * Loaders: the embedded UCI digits ([`load_digits`]), IDX files ([`idx`]) and Fashion-MNIST
//!   ([`load_fashion_mnist`]), MNIST json files ([`load_mnist_json`]), image folders in
//!   torchvision's `ImageFolder` layout ([`load_image_folder`], [`read_image`]) and NumPy `.npy`
//!   arrays ([`load_npy`], [`parse_npy`]).
//! * Where data lives and how to install it: [`data_dir`], [`locate()`], [`status()`], [`fetch()`].
//! * Task derivation ([`mod@derive`]): class subsets, superclasses, domains, resize/pad/channels,
//!   sample limits, stratified splits, label noise.
//! * [`TaskSpec`]: a task as written in a suite file, built into a [`graft_core::Task`].
//!
//! Every loader validates its input and returns a [`DatasetError`] naming the file, row, key or
//! shape at fault; nothing panics on bad data. Everything random is seeded.

#![warn(missing_docs)]

pub mod catalog;
pub mod dataset;
pub mod derive;
pub mod digits;
pub mod error;
pub mod fashion;
pub mod fetch;
pub mod folder;
mod gzip;
pub mod idx;
pub mod inference;
pub mod locate;
pub mod mnist_json;
pub mod npy;
pub mod reference;
pub mod task;

pub use catalog::DatasetName;
pub use dataset::Dataset;
pub use derive::{
    apply_domain, cap_stratified, group_classes, label_noise, limit_per_class, pad_center,
    resize_bilinear, select_classes, stratified_split, sub_seed, take_fraction, to_channels,
    Domain, NoiseKind,
};
pub use digits::load_digits;
pub use error::{DatasetError, Result};
pub use fashion::{
    fashion_superclass_groups, load_fashion_mnist, Split, FASHION_CLASS_NAMES, FASHION_SUPERCLASSES,
};
pub use fetch::{fetch, FetchAction, FetchEntry, FetchReport};
pub use folder::{image_folder_layout, load_image_folder, read_image, FolderDataset, FolderLayout};
pub use inference::{fitted_image, image_files};
pub use gzip::{gunzip_at_most, is_gzip, maybe_gunzip};
pub use locate::{data_dir, locate, status, test_data_dir, DataLocation, DatasetStatus};
pub use mnist_json::load_mnist_json;
pub use npy::{
    load_npy, npy_images, npy_labels, parse_npy, parse_npy_header, read_npy, NpyArray, NpyData,
    NpyDtype, NpyHeader, NpyImages,
};
pub use reference::{DatasetInfo, DatasetRef, FolderRef, NpyRef};
pub use task::{Fit, LabelNoise, TaskSpec};
