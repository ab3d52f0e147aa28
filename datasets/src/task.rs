//! `TaskSpec`: the declarative description of a task in a suite file, and how it is built.
//!
//! Building applies, in this order: load the dataset → class selection or superclass grouping →
//! train/val/test split (stratified, seeded) → caps (`max_train`, `max_val`, `max_test`) →
//! `per_class_limit` and `fraction` (train only) → label noise (train only) → domain (every
//! split) → fit to the backbone input (channels, then resize or pad; every split).

use crate::catalog::DatasetName;
use crate::dataset::Dataset;
use crate::derive::{
    apply_domain, cap_stratified, group_classes, label_noise, limit_per_class, pad_center,
    resize_bilinear, select_classes, stratified_split, sub_seed, take_fraction, to_channels,
    Domain, NoiseKind,
};
use crate::error::{DatasetError, Result};
use crate::fashion::FASHION_SUPERCLASSES;
use crate::locate::DataLocation;
use crate::reference::{DatasetInfo, DatasetRef};
use graft_core::{ImageSet, Task};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::path::Path;

/// How images are fitted to the backbone's input height and width.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Fit {
    /// Bilinear resize (PyTorch `align_corners = false`) to exactly the input size.
    #[default]
    Resize,
    /// Centred zero padding; an error when the images are larger than the input.
    Pad,
}

impl fmt::Display for Fit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Fit::Resize => "resize",
            Fit::Pad => "pad",
        })
    }
}

/// Label noise applied to the training split of a task.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelNoise {
    /// Fraction of training labels replaced by a wrong class, in `[0, 1)`.
    pub rate: f32,
    /// How the wrong class is chosen (default `symmetric`).
    #[serde(default)]
    pub kind: NoiseKind,
}

fn default_val_fraction() -> f32 {
    0.1
}

fn default_test_fraction() -> f32 {
    0.2
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A task, as written in a suite file (`[[task]]` tables in TOML). Unknown keys are an error
/// listing the valid ones.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskSpec {
    /// Short unique task name, e.g. `digits-5to9` (required).
    pub name: String,
    /// Dataset to derive the task from (required): a built-in one by name (`digits`,
    /// `fashion-mnist`, `mnist`) or your own files (see [`DatasetRef`]).
    pub dataset: DatasetRef,
    /// Keep only these classes, relabelled `0..k` in the order given. Exclusive with
    /// `superclasses`. Default: all classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub classes: Option<Vec<u32>>,
    /// Group classes into superclasses (label = group index; classes in no group are dropped).
    /// Exclusive with `classes`. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superclasses: Option<Vec<Vec<u32>>>,
    /// Names of the superclasses, one per group. Default: the Fashion-MNIST superclass name when
    /// a group matches one (`tops`, `footwear`, `other`), else the member class names joined by `+`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superclass_names: Option<Vec<String>>,
    /// Domain transformation applied to every split. Default `identity`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub domain: Domain,
    /// How images are fitted to the backbone input: `resize` (default) or `pad`.
    #[serde(default, skip_serializing_if = "is_default")]
    pub fit: Fit,
    /// Keep at most this many training images per class. Default: no limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per_class_limit: Option<usize>,
    /// Keep this fraction of the training images of each class, in `(0, 1]` (at least one per
    /// class). Default: all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fraction: Option<f32>,
    /// Label noise on the training split. Default: none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label_noise: Option<LabelNoise>,
    /// Fraction of the (non-test) images held out for validation, in `[0, 1)`. Default 0.1.
    #[serde(default = "default_val_fraction")]
    pub val_fraction: f32,
    /// Fraction of the images held out for testing, in `(0, 1)`, for datasets without an official
    /// test split (digits, mnist); Fashion-MNIST uses its `t10k` files. Default 0.2.
    #[serde(default = "default_test_fraction")]
    pub test_fraction: f32,
    /// Stratified cap on the training split size. Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_train: Option<usize>,
    /// Stratified cap on the validation split size. Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_val: Option<usize>,
    /// Stratified cap on the test split size. Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_test: Option<usize>,
    /// Seed of every random step (split, caps, limits, noise). Default 0.
    #[serde(default)]
    pub seed: u64,
}

impl TaskSpec {
    /// A spec with every optional key at its default: all classes, identity domain, resize,
    /// val 0.1, test 0.2, no limits, no noise, seed 0.
    pub fn new(name: impl Into<String>, dataset: impl Into<DatasetRef>) -> Self {
        Self {
            name: name.into(),
            dataset: dataset.into(),
            classes: None,
            superclasses: None,
            superclass_names: None,
            domain: Domain::Identity,
            fit: Fit::Resize,
            per_class_limit: None,
            fraction: None,
            label_noise: None,
            val_fraction: default_val_fraction(),
            test_fraction: default_test_fraction(),
            max_train: None,
            max_val: None,
            max_test: None,
            seed: 0,
        }
    }

    fn err(&self, msg: impl Into<String>) -> DatasetError {
        DatasetError::Spec {
            task: self.name.clone(),
            msg: msg.into(),
        }
    }

    /// Checks the spec without loading data: class ids, groups, fractions, rates and caps. For
    /// your own files this reads the folder's layout or the labels file ([`DatasetRef::info`]).
    pub fn validate(&self) -> Result<()> {
        self.validate_with(&self.dataset.info()?)
    }

    /// [`TaskSpec::validate`] against what the dataset holds, already known.
    fn validate_with(&self, info: &DatasetInfo) -> Result<()> {
        if self.name.trim().is_empty() {
            return Err(self.err("`name` is empty"));
        }
        let k = info.class_names.len() as u32;
        if k == 0 {
            return Err(self.err(format!("dataset {} has no classes", self.dataset)));
        }
        let check_id = |key: &str, c: u32| -> Result<()> {
            if c >= k {
                return Err(self.err(format!(
                    "`{key}`: unknown class id {c}; {} has classes 0..={}",
                    self.dataset,
                    k - 1
                )));
            }
            Ok(())
        };
        match (&self.classes, &self.superclasses) {
            (Some(_), Some(_)) => {
                return Err(self.err("set `classes` or `superclasses`, not both (superclasses already drop the classes they omit)"))
            }
            (Some(classes), None) => {
                if classes.is_empty() {
                    return Err(self.err("`classes` is empty"));
                }
                let mut seen = BTreeSet::new();
                for &c in classes {
                    check_id("classes", c)?;
                    if !seen.insert(c) {
                        return Err(self.err(format!("`classes`: class {c} is listed twice")));
                    }
                }
            }
            (None, Some(groups)) => {
                if groups.is_empty() {
                    return Err(self.err("`superclasses` is empty"));
                }
                let mut seen = BTreeSet::new();
                for (g, group) in groups.iter().enumerate() {
                    if group.is_empty() {
                        return Err(self.err(format!("`superclasses`: group {g} is empty")));
                    }
                    for &c in group {
                        check_id("superclasses", c)?;
                        if !seen.insert(c) {
                            return Err(self.err(format!("`superclasses`: class {c} is in more than one group")));
                        }
                    }
                }
            }
            (None, None) => {}
        }
        if let Some(names) = &self.superclass_names {
            match &self.superclasses {
                None => return Err(self.err("`superclass_names` is set but `superclasses` is not")),
                Some(groups) if groups.len() != names.len() => {
                    return Err(self.err(format!(
                        "`superclass_names` has {} names for {} superclasses",
                        names.len(),
                        groups.len()
                    )))
                }
                _ => {}
            }
        }
        if let Domain::Noise { std } = self.domain {
            if !std.is_finite() || std < 0.0 {
                return Err(self.err(format!(
                    "`domain`: noise std must be finite and >= 0, got {std}"
                )));
            }
        }
        if self.per_class_limit == Some(0) {
            return Err(self.err("`per_class_limit` must be at least 1"));
        }
        if let Some(f) = self.fraction {
            if !(f > 0.0 && f <= 1.0) {
                return Err(self.err(format!("`fraction` must be in (0, 1], got {f}")));
            }
        }
        if let Some(noise) = &self.label_noise {
            if !(0.0..1.0).contains(&noise.rate) {
                return Err(self.err(format!(
                    "`label_noise.rate` must be in [0, 1), got {}",
                    noise.rate
                )));
            }
        }
        if !(0.0..1.0).contains(&self.val_fraction) {
            return Err(self.err(format!(
                "`val_fraction` must be in [0, 1), got {}",
                self.val_fraction
            )));
        }
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(self.err(format!(
                "`test_fraction` must be in (0, 1), got {}",
                self.test_fraction
            )));
        }
        if !info.has_test_split && self.val_fraction + self.test_fraction >= 1.0 {
            return Err(self.err(format!(
                "`val_fraction` + `test_fraction` = {} leaves no training data; their sum must be < 1",
                self.val_fraction + self.test_fraction
            )));
        }
        for (key, v) in [
            ("max_train", self.max_train),
            ("max_val", self.max_val),
            ("max_test", self.max_test),
        ] {
            if v == Some(0) {
                return Err(self.err(format!("`{key}` must be at least 1")));
            }
        }
        Ok(())
    }

    /// Number of classes of the built task. For your own files this reads the folder's layout
    /// or the labels file (see [`DatasetRef::info`]).
    pub fn num_classes(&self) -> Result<usize> {
        Ok(match (&self.classes, &self.superclasses) {
            (Some(c), _) => c.len(),
            (None, Some(g)) => g.len(),
            (None, None) => self.dataset.info()?.class_names.len(),
        })
    }

    /// Class names of the built task (from the dataset, or the superclass names).
    pub fn class_names(&self) -> Result<Vec<String>> {
        Ok(self.class_names_from(self.dataset.info()?.class_names))
    }

    /// Class names of the built task given the dataset's class names `base`.
    fn class_names_from(&self, base: Vec<String>) -> Vec<String> {
        let name_of = |c: u32| {
            base.get(c as usize)
                .cloned()
                .unwrap_or_else(|| c.to_string())
        };
        match (&self.classes, &self.superclasses) {
            (Some(classes), _) => classes.iter().map(|&c| name_of(c)).collect(),
            (None, Some(groups)) => match &self.superclass_names {
                Some(names) => names.clone(),
                None => groups
                    .iter()
                    .map(|g| {
                        let set: BTreeSet<u32> = g.iter().copied().collect();
                        let known = (self.dataset.named() == Some(DatasetName::FashionMnist))
                            .then(|| {
                                FASHION_SUPERCLASSES.iter().find(|(_, members)| {
                                    members.iter().copied().collect::<BTreeSet<u32>>() == set
                                })
                            })
                            .flatten();
                        match known {
                            Some((name, _)) => name.to_string(),
                            None => g.iter().map(|&c| name_of(c)).collect::<Vec<_>>().join("+"),
                        }
                    })
                    .collect(),
            },
            (None, None) => base,
        }
    }

    /// For each class of the built task, the dataset class ids it holds (see
    /// [`graft_core::Task::class_ids`]): `[[c]]` per selected class, the members of each
    /// superclass, or every dataset class on its own.
    pub fn class_ids(&self) -> Result<Vec<Vec<u32>>> {
        Ok(self.class_ids_from(self.dataset.info()?.class_names.len()))
    }

    /// [`TaskSpec::class_ids`] for a dataset of `dataset_classes` classes.
    fn class_ids_from(&self, dataset_classes: usize) -> Vec<Vec<u32>> {
        match (&self.classes, &self.superclasses) {
            (Some(classes), _) => classes.iter().map(|&c| vec![c]).collect(),
            (None, Some(groups)) => groups.clone(),
            (None, None) => (0..dataset_classes as u32).map(|c| vec![c]).collect(),
        }
    }

    /// Loads the dataset from `data_dir` (see [`crate::locate()`]) and builds the task for a
    /// backbone whose input is `input = (channels, height, width)`.
    pub fn build(&self, data_dir: &Path, input: (usize, usize, usize)) -> Result<Task> {
        self.validate()?;
        let data = Dataset::load(&self.dataset, data_dir)?;
        self.build_from(&data, input)
    }

    /// Builds the task from an already-loaded dataset (load once, build many tasks).
    pub fn build_from(&self, data: &Dataset, input: (usize, usize, usize)) -> Result<Task> {
        if data.name != self.dataset {
            return Err(self.err(format!(
                "spec wants dataset {} but was given {}",
                self.dataset, data.name
            )));
        }
        // What the loaded data holds: no second look at the files.
        self.validate_with(&DatasetInfo { class_names: data.class_names.clone(), has_test_split: data.test.is_some() })?;
        let (ic, ih, iw) = input;
        if ic == 0 || ih == 0 || iw == 0 {
            return Err(self.err(format!(
                "backbone input {ic}x{ih}x{iw} has a zero dimension"
            )));
        }
        let (sc, sh, sw) = data.train.shape();
        if self.fit == Fit::Pad && (sh > ih || sw > iw) {
            return Err(self.err(format!(
                "fit = \"pad\" but the {sh}x{sw} images are larger than the backbone input {ih}x{iw}; use fit = \"resize\""
            )));
        }
        if !(sc == ic || sc == 1 || ic == 1) {
            return Err(self.err(format!(
                "cannot convert {sc}-channel images to the backbone's {ic} channels"
            )));
        }
        let seed = self.seed;
        let mut steps: Vec<String> = Vec::new();
        let location = match &data.location {
            DataLocation::Embedded => "embedded".to_string(),
            DataLocation::Dir(d) => d.display().to_string(),
        };
        steps.push(format!(
            "dataset={} ({location}; {})",
            self.dataset,
            data.name.credit()
        ));
        let dataset_classes = data.class_names.len();

        // Classes.
        let relabel = |set: &ImageSet| -> Result<ImageSet> {
            match (&self.classes, &self.superclasses) {
                (Some(c), _) => select_classes(set, c),
                (None, Some(g)) => group_classes(set, g),
                (None, None) => Ok(set.clone()),
            }
        };
        if let Some(c) = &self.classes {
            steps.push(format!("classes={c:?}"));
        }
        if let Some(g) = &self.superclasses {
            steps.push(format!("superclasses={g:?}"));
        }
        let pool = relabel(&data.train)?;

        // Splits.
        let (mut train, mut val, mut test) = match (&data.val, &data.test) {
            (Some(own_val), Some(official)) => {
                steps.push("split=the dataset's own train/val/test".to_string());
                (pool, relabel(own_val)?, relabel(official)?)
            }
            (None, Some(official)) => {
                let parts = stratified_split(
                    &pool,
                    &[1.0 - self.val_fraction, self.val_fraction],
                    sub_seed(seed, 1),
                )?;
                let [train, val]: [ImageSet; 2] = parts
                    .try_into()
                    .map_err(|_| self.err("internal: split count"))?;
                steps.push(format!(
                    "split=official test, train/val {}/{} stratified",
                    1.0 - self.val_fraction,
                    self.val_fraction
                ));
                (train, val, relabel(official)?)
            }
            (_, None) => {
                let tr = 1.0 - self.val_fraction - self.test_fraction;
                let parts = stratified_split(
                    &pool,
                    &[tr, self.val_fraction, self.test_fraction],
                    sub_seed(seed, 1),
                )?;
                let [train, val, test]: [ImageSet; 3] = parts
                    .try_into()
                    .map_err(|_| self.err("internal: split count"))?;
                steps.push(format!(
                    "split=train/val/test {tr:.3}/{}/{} stratified",
                    self.val_fraction, self.test_fraction
                ));
                (train, val, test)
            }
        };

        // Caps.
        if let Some(m) = self.max_train {
            train = cap_stratified(&train, m, sub_seed(seed, 2))?;
            steps.push(format!("max_train={m}"));
        }
        if let Some(m) = self.max_val {
            val = cap_stratified(&val, m, sub_seed(seed, 3))?;
            steps.push(format!("max_val={m}"));
        }
        if let Some(m) = self.max_test {
            test = cap_stratified(&test, m, sub_seed(seed, 4))?;
            steps.push(format!("max_test={m}"));
        }

        // Sample-count limits (train only).
        if let Some(n) = self.per_class_limit {
            train = limit_per_class(&train, n, sub_seed(seed, 5))?;
            steps.push(format!("per_class_limit={n}"));
        }
        if let Some(f) = self.fraction {
            train = take_fraction(&train, f, sub_seed(seed, 6))?;
            steps.push(format!("fraction={f}"));
        }

        // Label noise (train only).
        let num_classes = match (&self.classes, &self.superclasses) {
            (Some(c), _) => c.len(),
            (None, Some(g)) => g.len(),
            (None, None) => dataset_classes,
        };
        if let Some(noise) = &self.label_noise {
            let (noisy, flipped) = label_noise(
                &train,
                noise.rate,
                num_classes,
                noise.kind,
                sub_seed(seed, 7),
            )?;
            steps.push(format!(
                "label_noise={} rate={} flipped={flipped}/{}",
                noise.kind,
                noise.rate,
                train.len()
            ));
            train = noisy;
        }

        // Domain.
        if self.domain != Domain::Identity {
            train = apply_domain(&train, self.domain, sub_seed(seed, 8))?;
            val = apply_domain(&val, self.domain, sub_seed(seed, 9))?;
            test = apply_domain(&test, self.domain, sub_seed(seed, 10))?;
            steps.push(format!("domain={}", self.domain));
        }

        // Fit to the backbone input.
        let fit = |set: &ImageSet| -> Result<ImageSet> {
            let set = to_channels(set, ic)?;
            match self.fit {
                Fit::Resize => resize_bilinear(&set, ih, iw),
                Fit::Pad => pad_center(&set, ih, iw),
            }
        };
        let (train, val, test) = (fit(&train)?, fit(&val)?, fit(&test)?);
        steps.push(format!("fit={} {sc}x{sh}x{sw}->{ic}x{ih}x{iw}", self.fit));
        steps.push(format!(
            "sizes train/val/test={}/{}/{}",
            train.len(),
            val.len(),
            test.len()
        ));
        steps.push(format!("seed={seed}"));

        let task = Task {
            name: self.name.clone(),
            num_classes,
            class_names: self.class_names_from(data.class_names.clone()),
            class_ids: self.class_ids_from(dataset_classes),
            train,
            val,
            test,
            provenance: steps.join("; "),
        };
        task.validate().map_err(|e| self.err(e.to_string()))?;
        Ok(task)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digits::load_digits;

    fn digits() -> Dataset {
        Dataset::from_sets(
            DatasetName::Digits,
            load_digits().unwrap(),
            None,
            DataLocation::Embedded,
        )
    }

    #[test]
    fn digits_task_for_16x16_input() {
        let spec = TaskSpec::new("digits-all", DatasetName::Digits);
        let task = spec.build_from(&digits(), (1, 16, 16)).unwrap();
        task.validate().unwrap();
        assert_eq!(task.input_shape(), (1, 16, 16));
        assert_eq!(task.val.shape(), (1, 16, 16));
        assert_eq!(task.num_classes, 10);
        assert_eq!(task.class_names[3], "3");
        assert_eq!(task.train.len() + task.val.len() + task.test.len(), 1797);
        assert!(
            (task.test.len() as f32 - 0.2 * 1797.0).abs() <= 10.0,
            "{}",
            task.test.len()
        );
        assert!(
            (task.val.len() as f32 - 0.1 * 1797.0).abs() <= 10.0,
            "{}",
            task.val.len()
        );
        assert!(
            task.provenance.contains("dataset=digits (embedded"),
            "{}",
            task.provenance
        );
        assert!(
            task.provenance.contains("seed=0")
                && task.provenance.contains("fit=resize 1x8x8->1x16x16")
        );
        // Same spec, same task; the path through `build` (embedded data) agrees.
        let again = spec.build(Path::new("/nonexistent"), (1, 16, 16)).unwrap();
        assert_eq!(again.train, task.train);
        assert_eq!(again.test, task.test);
    }

    #[test]
    fn derived_digits_task_applies_everything() {
        let mut spec = TaskSpec::new("digits-5to9-rot", DatasetName::Digits);
        spec.classes = Some(vec![9, 5, 6]);
        spec.domain = Domain::Rotate90;
        spec.fit = Fit::Pad;
        spec.fraction = Some(0.5);
        spec.label_noise = Some(LabelNoise {
            rate: 0.2,
            kind: NoiseKind::Asymmetric,
        });
        spec.max_test = Some(40);
        spec.seed = 3;
        let task = spec.build_from(&digits(), (3, 12, 12)).unwrap();
        assert_eq!(task.num_classes, 3);
        assert_eq!(task.class_names, vec!["9", "5", "6"]);
        assert_eq!(task.class_ids, vec![vec![9], vec![5], vec![6]]);
        assert_eq!(task.input_shape(), (3, 12, 12));
        assert_eq!(task.test.len(), 40);
        // ~0.7 * 540 = 378 train images, halved.
        assert!(
            (170..=210).contains(&task.train.len()),
            "{}",
            task.train.len()
        );
        for key in [
            "classes=[9, 5, 6]",
            "domain=rotate90",
            "fraction=0.5",
            "label_noise=asymmetric",
            "max_test=40",
            "fit=pad",
        ] {
            assert!(
                task.provenance.contains(key),
                "{key} missing from {}",
                task.provenance
            );
        }
        // Pad keeps a zero border of 2 pixels.
        assert!(task.train.image(0)[..12].iter().all(|&v| v == 0.0));
        // Channels are replicated.
        let img = task.test.image(0);
        assert_eq!(&img[..144], &img[144..288]);
    }

    #[test]
    fn superclass_names_default_and_explicit() {
        let mut spec = TaskSpec::new("f-super", DatasetName::FashionMnist);
        spec.superclasses = Some(vec![vec![7, 5, 9], vec![1, 3]]);
        assert_eq!(spec.class_names().unwrap(), vec!["footwear", "Trouser+Dress"]);
        assert_eq!(spec.class_ids().unwrap(), vec![vec![7, 5, 9], vec![1, 3]]);
        assert_eq!(TaskSpec::new("all", DatasetName::Digits).class_ids().unwrap()[3], vec![3]);
        spec.superclass_names = Some(vec!["shoes".into(), "misc".into()]);
        assert_eq!(spec.class_names().unwrap(), vec!["shoes", "misc"]);
        assert_eq!(spec.num_classes().unwrap(), 2);
        spec.superclass_names = Some(vec!["one".into()]);
        assert!(spec
            .validate()
            .unwrap_err()
            .to_string()
            .contains("1 names for 2 superclasses"));
    }

    #[test]
    fn invalid_specs_are_explained() {
        let base = TaskSpec::new("t", DatasetName::Digits);
        let check = |f: &dyn Fn(&mut TaskSpec), want: &str| {
            let mut s = base.clone();
            f(&mut s);
            let err = s.validate().unwrap_err().to_string();
            assert!(
                err.contains(want) && err.contains("task spec 't'"),
                "{err} (wanted {want})"
            );
        };
        check(&|s| s.classes = Some(vec![1, 10]), "unknown class id 10");
        check(
            &|s| s.superclasses = Some(vec![vec![1], vec![]]),
            "group 1 is empty",
        );
        check(&|s| s.fraction = Some(0.0), "`fraction` must be in (0, 1]");
        check(&|s| s.fraction = Some(1.5), "`fraction` must be in (0, 1]");
        check(
            &|s| {
                s.label_noise = Some(LabelNoise {
                    rate: 1.0,
                    kind: NoiseKind::Symmetric,
                })
            },
            "[0, 1)",
        );
        check(&|s| s.val_fraction = 0.85, "sum must be < 1");
        check(
            &|s| s.val_fraction = 1.0,
            "`val_fraction` must be in [0, 1)",
        );
        check(&|s| s.max_train = Some(0), "`max_train`");
        let mut s = base.clone();
        s.fit = Fit::Pad;
        let err = s.build_from(&digits(), (1, 4, 4)).unwrap_err().to_string();
        assert!(err.contains("8x8") && err.contains("4x4"), "{err}");
    }

    #[test]
    fn unknown_key_is_named_with_valid_keys() {
        let json = r#"{"name": "t", "dataset": "digits", "clases": [1, 2]}"#;
        let err = serde_json::from_str::<TaskSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `clases`"), "{err}");
        assert!(
            err.contains("`classes`") && err.contains("`superclasses`"),
            "{err}"
        );
        let err = serde_json::from_str::<TaskSpec>(r#"{"name": "t", "dataset": "cifar"}"#)
            .unwrap_err()
            .to_string();
        assert!(err.contains("fashion-mnist"), "{err}");
        let json = r#"{"name": "t", "dataset": "digits", "label_noise": {"rate": 0.1, "kynd": "symmetric"}}"#;
        let err = serde_json::from_str::<TaskSpec>(json)
            .unwrap_err()
            .to_string();
        assert!(err.contains("kynd"), "{err}");
    }

    #[test]
    fn defaults_and_round_trips() {
        let s: TaskSpec = serde_json::from_str(r#"{"name": "t", "dataset": "mnist"}"#).unwrap();
        assert_eq!(s, TaskSpec::new("t", DatasetName::Mnist));
        let mut full = TaskSpec::new("full", DatasetName::FashionMnist);
        full.superclasses = Some(vec![vec![0, 2, 4, 6], vec![5, 7, 9]]);
        full.superclass_names = Some(vec!["tops".into(), "footwear".into()]);
        full.domain = Domain::Noise { std: 0.1 };
        full.fit = Fit::Pad;
        full.per_class_limit = Some(50);
        full.fraction = Some(0.25);
        full.label_noise = Some(LabelNoise {
            rate: 0.3,
            kind: NoiseKind::Asymmetric,
        });
        full.val_fraction = 0.15;
        full.max_train = Some(1000);
        full.max_val = Some(100);
        full.max_test = Some(500);
        full.seed = 42;
        for spec in [s, full] {
            let json = serde_json::to_string(&spec).unwrap();
            assert_eq!(
                serde_json::from_str::<TaskSpec>(&json).unwrap(),
                spec,
                "{json}"
            );
            let value = serde_json::to_value(&spec).unwrap();
            assert_eq!(serde_json::from_value::<TaskSpec>(value).unwrap(), spec);
            let text = toml::to_string(&spec).unwrap();
            assert_eq!(toml::from_str::<TaskSpec>(&text).unwrap(), spec, "{text}");
        }
    }

    #[test]
    fn suite_toml_parses() {
        #[derive(Deserialize)]
        struct Suite {
            task: Vec<TaskSpec>,
        }
        let text = r#"
            [[task]]
            name = "mnist-rot90"
            dataset = "mnist"
            domain = "rotate90"
            max_train = 2000

            [[task]]
            name = "fashion-noisy"
            dataset = "fashion-mnist"
            superclasses = [[0, 2, 4, 6], [5, 7, 9], [1, 3, 8]]
            domain = { noise = { std = 0.05 } }
            label_noise = { rate = 0.2 }
            fit = "pad"
            seed = 7
        "#;
        let suite: Suite = toml::from_str(text).unwrap();
        assert_eq!(suite.task[0].domain, Domain::Rotate90);
        assert_eq!(suite.task[0].max_train, Some(2000));
        assert_eq!(suite.task[1].domain, Domain::Noise { std: 0.05 });
        assert_eq!(
            suite.task[1].label_noise,
            Some(LabelNoise {
                rate: 0.2,
                kind: NoiseKind::Symmetric
            })
        );
        assert_eq!(
            suite.task[1].class_names().unwrap(),
            vec!["tops", "footwear", "other"]
        );
        let err =
            toml::from_str::<Suite>("[[task]]\nname = \"x\"\ndataset = \"digits\"\nnoise = 0.1\n")
                .err()
                .unwrap()
                .to_string();
        assert!(
            err.contains("unknown field `noise`") && err.contains("label_noise"),
            "{err}"
        );
    }
}
