//! Your own data through the command line: an image folder of real Fashion-MNIST images written
//! as PNG files and NumPy arrays of the same images, used by a suite for both the source's
//! pretraining and the target task. The images come from the committed slice of Fashion-MNIST
//! (`datasets/testdata`), so nothing needs to be fetched.

mod common;

use common::{graft, read_lines, text, write_suite};
use graft_datasets::idx::{read_idx_images, read_idx_labels, IdxImages};
use graft_datasets::{locate, test_data_dir, DataLocation, DatasetName};
use std::path::Path;

/// Fashion-MNIST's test images (the committed slice's first 1,000), read with the library's IDX
/// reader.
fn fashion_test() -> (IdxImages, Vec<u8>) {
    let data = test_data_dir();
    let DataLocation::Dir(dir) = locate(DatasetName::FashionMnist, &data).unwrap_or_else(|e| panic!("{e}")) else {
        panic!("Fashion-MNIST is not embedded")
    };
    let file = |stem: &str| {
        let gz = dir.join(format!("{stem}.gz"));
        if gz.is_file() {
            gz
        } else {
            dir.join(stem)
        }
    };
    (
        read_idx_images(&file("t10k-images-idx3-ubyte")).unwrap(),
        read_idx_labels(&file("t10k-labels-idx1-ubyte")).unwrap(),
    )
}

/// The classes used: (folder name, Fashion-MNIST label). Sorted by name they are bag, sneaker,
/// trouser, so the folder's labels are 0, 1, 2 in that order.
const CLASSES: [(&str, u8); 3] = [("trouser", 1), ("sneaker", 7), ("bag", 8)];

/// The images of each split, in the order an image folder lists them (classes by name, files by
/// name): `(image index, folder label)`; the first `train` images of each class for training,
/// the next `test` for testing.
fn splits(labels: &[u8], train: usize, test: usize) -> [Vec<(usize, u8)>; 2] {
    let mut by_name = CLASSES;
    by_name.sort();
    let mut out = [Vec::new(), Vec::new()];
    for (folder_label, (_, label)) in by_name.iter().enumerate() {
        let of_class: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == *label).take(train + test).collect();
        for (n, &i) in of_class.iter().enumerate() {
            out[usize::from(n >= train)].push((i, folder_label as u8));
        }
    }
    out
}

/// Writes `root/{train,test}/<class>/<index>.png` (see [`splits`]); the zero-padded names keep
/// the folder's byte-wise file order equal to the index order.
fn write_image_folder(root: &Path, train: usize, test: usize) {
    let (images, labels) = fashion_test();
    let mut by_name = CLASSES;
    by_name.sort();
    for (split, items) in ["train", "test"].iter().zip(splits(&labels, train, test)) {
        for (i, label) in items {
            let dir = root.join(split).join(by_name[label as usize].0);
            std::fs::create_dir_all(&dir).unwrap();
            image::GrayImage::from_raw(28, 28, images.pixels[i * 784..(i + 1) * 784].to_vec())
                .unwrap()
                .save_with_format(dir.join(format!("{i:05}.png")), image::ImageFormat::Png)
                .unwrap();
        }
    }
}

/// Writes a version 1.0 `.npy` file (header padded to 64 bytes, as NumPy writes it).
fn write_npy(path: &Path, descr: &str, shape: &[usize], payload: &[u8]) {
    let dims: String = shape.iter().map(|d| format!("{d}, ")).collect();
    let dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    let pad = 64 - (10 + dict.len() + 1) % 64;
    let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
    bytes.extend_from_slice(&((dict.len() + pad + 1) as u16).to_le_bytes());
    bytes.extend_from_slice(dict.as_bytes());
    bytes.extend(std::iter::repeat_n(b' ', pad));
    bytes.push(b'\n');
    bytes.extend_from_slice(payload);
    std::fs::write(path, bytes).unwrap();
}

/// Writes the same images as [`write_image_folder`] as `x.npy`, `y.npy` (train) and `xt.npy`,
/// `yt.npy` (test): uint8 `(N, 28, 28)` and int64 labels.
fn write_npy_arrays(dir: &Path, train: usize, test: usize) {
    let (images, labels) = fashion_test();
    for ((x, y), items) in [("x", "y"), ("xt", "yt")].iter().zip(splits(&labels, train, test)) {
        let pixels: Vec<u8> = items.iter().flat_map(|&(i, _)| images.pixels[i * 784..(i + 1) * 784].to_vec()).collect();
        let ys: Vec<u8> = items.iter().flat_map(|&(_, l)| i64::from(l).to_le_bytes()).collect();
        write_npy(&dir.join(format!("{x}.npy")), "|u1", &[items.len(), 28, 28], &pixels);
        write_npy(&dir.join(format!("{y}.npy")), "<i8", &[items.len()], &ys);
    }
}

fn suite(dataset: &str) -> String {
    format!(
        r#"
name = "own"
methods = ["linear-probe"]
[[sources]]
name = "own-src"
arch = {{ name = "resnet-cifar", depth = 8, width = 8 }}
input = [1, 16, 16]
task = {{ name = "own-pretrain", dataset = {dataset} }}
train = {{ epochs = 4, batch_size = 32, optimizer = "adam", lr = 0.01 }}
[[tasks]]
name = "own-task"
dataset = {dataset}
[method_configs.linear-probe]
train = {{ epochs = 5, optimizer = "adam", lr = 0.01 }}
"#
    )
}

#[test]
fn a_suite_trains_and_tests_on_an_image_folder_of_png_files() {
    let dir = tempfile::tempdir().unwrap();
    write_image_folder(&dir.path().join("images"), 60, 30);
    let suite_path = write_suite(dir.path(), &suite(r#"{ folder = "images" }"#));
    let out = graft(dir.path(), &["run", suite_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let (records, bad) = read_lines(&dir.path().join("results/own.jsonl"));
    assert_eq!((records.len(), bad), (1, 0));
    let r = &records[0];
    assert_eq!(r["num_classes"], 3);
    // The folder's own splits: 3 x 30 test images; train 3 x 60 less the 10 % validation.
    assert_eq!(r["test_size"], 90);
    assert_eq!(r["train_size"], 162);
    let provenance = r["task_provenance"].as_str().unwrap();
    eprintln!("{provenance} acc {}", r["test_accuracy"]);
    assert!(provenance.contains("dataset=folder images") && provenance.contains("split=official test"), "{provenance}");
    // Trousers, sneakers and bags are far apart: well above the 1/3 of chance.
    let acc = r["test_accuracy"].as_f64().unwrap();
    assert!(acc > 0.8, "test accuracy {acc}");

    // graft predict on the test folder's PNG files, the delta found by method and task: its
    // predictions, scored against the folder names, are the run's test accuracy exactly.
    let out = graft(
        dir.path(),
        &["predict", "--results", "results/own.jsonl", "--method", "linear-probe", "--task", "own-task", "--format", "csv", "images/test"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let rows: Vec<Vec<&str>> = stdout.lines().skip(1).map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 90);
    let correct = rows.iter().filter(|r| Path::new(r[0]).parent().unwrap().file_name().unwrap().to_str() == Some(r[2])).count();
    assert_eq!(correct as f32 / 90.0, r["test_accuracy"].as_f64().unwrap() as f32, "{stdout}");
    assert!(rows.iter().all(|r| r[1] == "1" && (0.0..=1.0).contains(&r[3].parse::<f32>().unwrap())));

    // The same delta by path, top 3 as JSON: the probabilities of the three classes sum to 1.
    let delta = format!("results/{}", r["delta_path"].as_str().unwrap());
    let out = graft(
        dir.path(),
        &["predict", "--delta", &delta, "--source", "results/sources/own-src.safetensors", "--top", "3", "--format", "json", "images/test/bag/"],
    );
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stderr}");
    let all: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(all.len(), 30);
    for p in &all {
        let preds = p["predictions"].as_array().unwrap();
        let total: f64 = preds.iter().map(|q| q["probability"].as_f64().unwrap()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{p}");
        let mut names: Vec<&str> = preds.iter().map(|q| q["class"].as_str().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["bag", "sneaker", "trouser"]);
    }
}

#[test]
fn predict_names_what_it_cannot_use() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("notes.txt"), "hello").unwrap();
    let out = graft(dir.path(), &["predict", "--delta", "missing.safetensors", "notes.txt"]);
    assert!(!out.status.success());
    assert!(text(&out).1.contains("missing.safetensors"), "{}", text(&out).1);
    std::fs::write(dir.path().join("r.jsonl"), "").unwrap();
    let out = graft(dir.path(), &["predict", "--results", "r.jsonl", "--method", "linear-probe", "--task", "t", "x.png"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("r.jsonl has no run of method 'linear-probe' on task 't'"), "{stderr}");
}

#[test]
fn numpy_arrays_of_the_same_images_give_bit_identical_results() {
    let folder = tempfile::tempdir().unwrap();
    write_image_folder(&folder.path().join("images"), 30, 10);
    let npy = tempfile::tempdir().unwrap();
    write_npy_arrays(npy.path(), 30, 10);
    let runs = [
        (folder.path(), r#"{ folder = "images" }"#),
        (npy.path(), r#"{ images = "x.npy", labels = "y.npy", test_images = "xt.npy", test_labels = "yt.npy", class_names = ["bag", "sneaker", "trouser"] }"#),
    ]
    .map(|(dir, dataset)| {
        let suite_path = write_suite(dir, &suite(dataset));
        let out = graft(dir, &["run", suite_path.to_str().unwrap()]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let (records, _) = read_lines(&dir.join("results/own.jsonl"));
        assert_eq!(records.len(), 1);
        records[0].clone()
    });
    // Two readers, one set of pixels and labels: the same training, loss for loss. (The
    // source hashes differ: a source records which files it was trained on.)
    for key in ["test_accuracy", "best_val_accuracy", "train_size", "test_size", "num_classes"] {
        assert_eq!(runs[0][key], runs[1][key], "{key}");
    }
    let learning = |r: &serde_json::Value| -> Vec<[serde_json::Value; 3]> {
        r["epochs"].as_array().unwrap().iter().map(|e| [e["train_loss"].clone(), e["train_acc"].clone(), e["val_acc"].clone()]).collect()
    };
    assert_eq!(learning(&runs[0]).len(), 5);
    assert_eq!(learning(&runs[0]), learning(&runs[1]));
    assert_ne!(runs[0]["source_hash"], runs[1]["source_hash"]);
}

#[test]
fn a_missing_image_folder_is_named_before_anything_is_trained() {
    let dir = tempfile::tempdir().unwrap();
    let suite_path = write_suite(dir.path(), &suite(r#"{ folder = "no-such-folder" }"#));
    let out = graft(dir.path(), &["run", suite_path.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("no-such-folder") && stderr.contains("does not exist"), "{stderr}");
    assert!(!stdout.contains("pretraining") && !stderr.contains("pretraining"), "{stdout}\n{stderr}");
    assert!(!dir.path().join("results/own.jsonl").exists());
}

#[test]
fn an_unknown_key_in_a_dataset_table_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let suite_path = write_suite(dir.path(), &suite(r#"{ folder = "images", chanels = 1 }"#));
    let out = graft(dir.path(), &["run", suite_path.to_str().unwrap()]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("chanels") && stderr.contains("own-pretrain"), "{stderr}");
}
