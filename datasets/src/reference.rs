//! Which dataset a task draws from: one of the built-in datasets by name, or your own files, an
//! image folder or NumPy arrays. In a suite:
//!
//! ```toml
//! dataset = "fashion-mnist"                                  # built in
//! dataset = { folder = "my-images" }                         # root/<class>/*.png|jpg
//! dataset = { folder = "my-images", channels = 1 }           # colour turned grey on loading
//! dataset = { images = "x.npy", labels = "y.npy" }           # NumPy arrays
//! dataset = { images = "x.npy", labels = "y.npy", test_images = "xt.npy", test_labels = "yt.npy",
//!             class_names = ["cat", "dog"] }
//! ```
//!
//! Relative paths are relative to the working directory.

use crate::catalog::DatasetName;
use crate::error::{DatasetError, Result};
use crate::folder::image_folder_layout;
use crate::npy::{npy_labels, read_npy};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;

/// Where a task's images come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(untagged, try_from = "serde_json::Value")]
pub enum DatasetRef {
    /// A built-in dataset: `"digits"`, `"fashion-mnist"` or `"mnist"`.
    Named(DatasetName),
    /// An image folder in torchvision's `ImageFolder` layout ([`crate::folder`]).
    Folder(FolderRef),
    /// Images and labels in NumPy `.npy` files ([`crate::npy`]).
    Npy(NpyRef),
}

/// An image folder: `{ folder = "path", channels = 1 }`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FolderRef {
    /// The root folder (`root/<class>/<images>`, or `root/{train,val,test}/<class>/<images>`).
    pub folder: PathBuf,
    /// Channels to convert every image to (1: grey, 3: colour); default: the images' own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub channels: Option<usize>,
}

/// NumPy arrays: images `(N, H, W)` or `(N, H, W, C)` (uint8, or floats in `[0, 1]`), labels
/// `(N,)` integers; optionally a test split and class names.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NpyRef {
    /// The images file.
    pub images: PathBuf,
    /// The labels file.
    pub labels: PathBuf,
    /// The test split's images (with `test_labels`); without, the test split is drawn from
    /// `images` by the task's `test_fraction`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_images: Option<PathBuf>,
    /// The test split's labels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_labels: Option<PathBuf>,
    /// Names of the classes, indexed by label; default `"0"`, `"1"`, ...
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_names: Option<Vec<String>>,
}

/// What a dataset holds, known before its images are decoded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetInfo {
    /// Class names, indexed by label.
    pub class_names: Vec<String>,
    /// Whether the dataset has its own test split (else a task draws one by `test_fraction`).
    pub has_test_split: bool,
}

const EXPECTED: &str = "a dataset is a name (digits, fashion-mnist, mnist), an image folder \
    { folder = \"path\" } or NumPy arrays { images = \"x.npy\", labels = \"y.npy\" }";

impl TryFrom<serde_json::Value> for DatasetRef {
    type Error = String;

    fn try_from(v: serde_json::Value) -> std::result::Result<Self, String> {
        use serde_json::Value;
        match v {
            Value::String(name) => name.parse().map(DatasetRef::Named),
            Value::Object(map) if map.contains_key("folder") => serde_json::from_value(Value::Object(map))
                .map(DatasetRef::Folder)
                .map_err(|e| format!("image folder dataset: {e}")),
            Value::Object(map) if map.contains_key("images") || map.contains_key("labels") => {
                let npy: NpyRef = serde_json::from_value(Value::Object(map)).map_err(|e| format!("NumPy dataset: {e}"))?;
                if npy.test_images.is_some() != npy.test_labels.is_some() {
                    return Err("NumPy dataset: give both `test_images` and `test_labels`, or neither".into());
                }
                Ok(DatasetRef::Npy(npy))
            }
            other => Err(format!("{EXPECTED}; got {other}")),
        }
    }
}

impl From<DatasetName> for DatasetRef {
    fn from(name: DatasetName) -> Self {
        DatasetRef::Named(name)
    }
}

impl DatasetRef {
    /// The built-in dataset, if this is one.
    pub fn named(&self) -> Option<DatasetName> {
        match self {
            DatasetRef::Named(n) => Some(*n),
            _ => None,
        }
    }

    /// Class names and splits: constant for a built-in dataset; for your own files, read from
    /// the folder's layout or the labels file (no image is decoded). Errors name the file.
    pub fn info(&self) -> Result<DatasetInfo> {
        match self {
            DatasetRef::Named(n) => Ok(DatasetInfo { class_names: n.class_names(), has_test_split: n.has_test_split() }),
            DatasetRef::Folder(f) => {
                let layout = image_folder_layout(&f.folder)?;
                Ok(DatasetInfo { class_names: layout.class_names, has_test_split: layout.has_test })
            }
            DatasetRef::Npy(n) => {
                let mut labels = npy_labels(&read_npy(&n.labels)?, &n.labels.display().to_string())?;
                if let Some(test) = &n.test_labels {
                    labels.extend(npy_labels(&read_npy(test)?, &test.display().to_string())?);
                }
                Ok(DatasetInfo { class_names: n.class_names_for(&labels)?, has_test_split: n.test_images.is_some() })
            }
        }
    }

    /// Where the data comes from and under what terms, for provenance.
    pub fn credit(&self) -> String {
        match self {
            DatasetRef::Named(n) => n.credit().to_string(),
            DatasetRef::Folder(f) => format!("your image folder {}", f.folder.display()),
            DatasetRef::Npy(n) => format!("your NumPy arrays {} and {}", n.images.display(), n.labels.display()),
        }
    }
}

impl NpyRef {
    /// The class names of arrays holding `labels` (train and test): `class_names`, which must
    /// name every label, or `"0"`, `"1"`, ... up to the largest label.
    pub fn class_names_for(&self, labels: &[u32]) -> Result<Vec<String>> {
        let classes = labels.iter().max().map_or(0, |&m| m as usize + 1);
        match &self.class_names {
            Some(names) if names.len() < classes => Err(DatasetError::Npy {
                file: self.labels.display().to_string(),
                msg: format!("holds label {} but `class_names` names only {} classes", classes - 1, names.len()),
            }),
            Some(names) => Ok(names.clone()),
            None => Ok((0..classes).map(|c| c.to_string()).collect()),
        }
    }
}

impl fmt::Display for DatasetRef {
    /// The name of a built-in dataset, `folder <path>` or `npy <images>`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DatasetRef::Named(n) => write!(f, "{n}"),
            DatasetRef::Folder(r) => write!(f, "folder {}", r.folder.display()),
            DatasetRef::Npy(r) => write!(f, "npy {}", r.images.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(toml_value: &str) -> std::result::Result<DatasetRef, String> {
        #[derive(Deserialize)]
        struct Doc {
            dataset: DatasetRef,
        }
        toml::from_str::<Doc>(&format!("dataset = {toml_value}")).map(|d| d.dataset).map_err(|e| e.to_string())
    }

    #[test]
    fn names_folders_and_arrays_parse() {
        assert_eq!(parse(r#""fashion-mnist""#).unwrap(), DatasetRef::Named(DatasetName::FashionMnist));
        assert_eq!(
            parse(r#"{ folder = "imgs", channels = 3 }"#).unwrap(),
            DatasetRef::Folder(FolderRef { folder: "imgs".into(), channels: Some(3) })
        );
        let DatasetRef::Npy(n) = parse(r#"{ images = "x.npy", labels = "y.npy" }"#).unwrap() else { panic!() };
        assert_eq!((n.images, n.labels, n.test_images), ("x.npy".into(), "y.npy".into(), None));
    }

    #[test]
    fn a_built_in_dataset_serialises_as_its_name() {
        // The settings fingerprint of recorded runs hashes a task spec's JSON: a built-in
        // dataset must stay the plain string it was before your own files were possible.
        assert_eq!(serde_json::to_string(&DatasetRef::Named(DatasetName::Digits)).unwrap(), r#""digits""#);
        let folder = DatasetRef::Folder(FolderRef { folder: "imgs".into(), channels: None });
        assert_eq!(serde_json::to_string(&folder).unwrap(), r#"{"folder":"imgs"}"#);
        assert_eq!(serde_json::from_str::<DatasetRef>(r#"{"folder":"imgs"}"#).unwrap(), folder);
    }

    #[test]
    fn bad_references_say_what_is_expected() {
        let e = parse(r#""cifar""#).unwrap_err();
        assert!(e.contains("unknown dataset 'cifar'") && e.contains("fashion-mnist"), "{e}");
        let e = parse(r#"{ folder = "imgs", chanels = 1 }"#).unwrap_err();
        assert!(e.contains("chanels") && e.contains("channels"), "{e}");
        let e = parse(r#"{ images = "x.npy", labels = "y.npy", test_images = "xt.npy" }"#).unwrap_err();
        assert!(e.contains("test_labels"), "{e}");
        let e = parse(r#"{ path = "imgs" }"#).unwrap_err();
        assert!(e.contains("{ folder = \"path\" }"), "{e}");
        let e = parse("3").unwrap_err();
        assert!(e.contains("a dataset is a name"), "{e}");
    }

    #[test]
    fn npy_class_names_cover_every_label() {
        let mut n = NpyRef { images: "x.npy".into(), labels: "y.npy".into(), test_images: None, test_labels: None, class_names: None };
        assert_eq!(n.class_names_for(&[0, 2, 1]).unwrap(), ["0", "1", "2"]);
        n.class_names = Some(vec!["cat".into(), "dog".into()]);
        assert_eq!(n.class_names_for(&[1, 0]).unwrap(), ["cat", "dog"]);
        let e = n.class_names_for(&[0, 2]).unwrap_err().to_string();
        assert!(e.contains("y.npy") && e.contains("holds label 2 but `class_names` names only 2 classes"), "{e}");
    }

    #[test]
    fn info_of_a_missing_folder_names_it() {
        let r = DatasetRef::Folder(FolderRef { folder: "/no/such/graft/folder".into(), channels: None });
        let e = r.info().unwrap_err().to_string();
        assert!(e.contains("/no/such/graft/folder") && e.contains("does not exist"), "{e}");
    }
}
