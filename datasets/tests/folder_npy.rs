//! Image folders (torchvision's `ImageFolder` layout) and NumPy `.npy` files.
//!
//! The image-folder tests write real Fashion-MNIST test images (from the committed slice,
//! `datasets/testdata`) as PNG and JPEG files. The `.npy` files are built byte by byte here,
//! following the format's specification.

use graft_datasets::idx::{read_idx_images, read_idx_labels, IdxImages};
use graft_datasets::{
    load_image_folder, load_npy, locate, parse_npy, read_image, test_data_dir, DataLocation,
    DatasetName, NpyData,
};
use image::{GrayImage, ImageBuffer, ImageFormat, Luma, RgbImage, RgbaImage};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

// ---------------------------------------------------------------------------------------------
// Image folders
// ---------------------------------------------------------------------------------------------

/// The Fashion-MNIST test split's raw pixels and labels, read once.
fn fashion_test() -> &'static (IdxImages, Vec<u8>) {
    static DATA: OnceLock<(IdxImages, Vec<u8>)> = OnceLock::new();
    DATA.get_or_init(|| {
        let data = test_data_dir();
        let dir = match locate(DatasetName::FashionMnist, &data).unwrap_or_else(|e| panic!("{e}")) {
            DataLocation::Dir(d) => d,
            DataLocation::Embedded => panic!("Fashion-MNIST is not embedded"),
        };
        let file = |stem: &str| {
            let gz = dir.join(format!("{stem}.gz"));
            if gz.is_file() {
                gz
            } else {
                dir.join(stem)
            }
        };
        let images = read_idx_images(&file("t10k-images-idx3-ubyte")).unwrap();
        let labels = read_idx_labels(&file("t10k-labels-idx1-ubyte")).unwrap();
        assert_eq!((images.count, images.rows, images.cols), (1_000, 28, 28));
        (images, labels)
    })
}

/// Indices of the first `k` test images of Fashion-MNIST class `class`.
fn first_of_class(class: u8, k: usize) -> Vec<usize> {
    let (_, labels) = fashion_test();
    let idx: Vec<usize> = (0..labels.len())
        .filter(|&i| labels[i] == class)
        .take(k)
        .collect();
    assert_eq!(idx.len(), k);
    idx
}

/// The 784 raw bytes of test image `i`.
fn pixels(i: usize) -> &'static [u8] {
    let (images, _) = fashion_test();
    &images.pixels[i * 784..(i + 1) * 784]
}

/// The raw bytes of test image `i`, each divided by 255 (what a 1x28x28 load must give).
fn expected(i: usize) -> Vec<f32> {
    pixels(i).iter().map(|&b| f32::from(b) / 255.0).collect()
}

fn mkdir(p: &Path) {
    std::fs::create_dir_all(p).unwrap();
}

fn grey(w: u32, h: u32, values: &[u8]) -> GrayImage {
    GrayImage::from_raw(w, h, values.to_vec()).unwrap()
}

/// Writes Fashion-MNIST test image `i` as a PNG (whatever `path`'s extension).
fn write_fashion_png(path: &Path, i: usize) {
    mkdir(path.parent().unwrap());
    grey(28, 28, pixels(i))
        .save_with_format(path, ImageFormat::Png)
        .unwrap();
}

fn write_png(path: &Path, img: &GrayImage) {
    mkdir(path.parent().unwrap());
    img.save_with_format(path, ImageFormat::Png).unwrap();
}

fn err_string<T: std::fmt::Debug>(r: graft_datasets::Result<T>) -> String {
    r.expect_err("expected an error").to_string()
}

fn shown(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn fashion_pngs_load_with_sorted_classes_labels_and_exact_pixels() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("fashion");
    // Folder names whose byte-wise order (upper case first) differs from a case-insensitive one.
    let classes = [("sandal", 5u8), ("Bag", 8), ("ankle_boot", 9)];
    // The k-th image of a class gets names[k]; read in byte-wise name order they come as
    // img1 (k = 3), img10 (k = 1), img2 (k = 0), img3 (k = 2).
    let names = ["img2.png", "img10.png", "img3.PNG", "img1.png"];
    let read_order = [3, 1, 0, 2];
    for (folder, class) in classes {
        for (k, &i) in first_of_class(class, 4).iter().enumerate() {
            write_fashion_png(&root.join(folder).join(names[k]), i);
        }
    }
    // Things that must be ignored: files at the root, other extensions, hidden files and folders
    // (each holding a readable image of another size, which would break the load if read).
    std::fs::write(root.join("README.txt"), "not a class").unwrap();
    std::fs::write(root.join("Bag").join("notes.txt"), "not an image").unwrap();
    std::fs::write(root.join("Bag").join("broken.gif"), "not an image either").unwrap();
    write_png(&root.join("Bag").join(".thumb.png"), &grey(5, 5, &[0; 25]));
    write_png(
        &root.join(".cache").join("x").join("a.png"),
        &grey(5, 5, &[0; 25]),
    );

    let ds = load_image_folder(&root, None).unwrap();
    assert_eq!(ds.class_names, vec!["Bag", "ankle_boot", "sandal"]);
    assert_eq!(ds.root, root);
    assert!(ds.val.is_none() && ds.test.is_none());
    let set = &ds.train;
    assert_eq!(set.shape(), (1, 28, 28));
    assert_eq!(set.len(), 12);
    assert_eq!(set.labels, vec![0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2]);
    for (label, class) in [(0, 8u8), (1, 9), (2, 5)] {
        let idx = first_of_class(class, 4);
        for (j, &k) in read_order.iter().enumerate() {
            let pos = label * 4 + j;
            assert_eq!(
                set.image(pos),
                &expected(idx[k])[..],
                "class {class}, position {pos}"
            );
        }
    }
    // The same file through the single-image reader.
    let (values, c, h, w) = read_image(&root.join("Bag").join("img3.PNG"), None).unwrap();
    assert_eq!((c, h, w), (1, 28, 28));
    assert_eq!(values, expected(first_of_class(8, 4)[2]));
}

#[test]
fn train_val_test_split_folders() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let trouser = first_of_class(1, 5);
    let coat = first_of_class(4, 5);
    for (name, idx) in [("trouser", &trouser), ("coat", &coat)] {
        for (j, &i) in idx[..3].iter().enumerate() {
            write_fashion_png(&root.join("train").join(name).join(format!("{j}.png")), i);
        }
        write_fashion_png(&root.join("val").join(name).join("v.png"), idx[3]);
        write_fashion_png(&root.join("test").join(name).join("t.png"), idx[4]);
    }
    mkdir(&root.join(".git").join("objects"));
    std::fs::write(root.join("LICENSE"), "text").unwrap();

    let ds = load_image_folder(root, None).unwrap();
    assert_eq!(ds.class_names, vec!["coat", "trouser"]);
    assert_eq!(ds.train.labels, vec![0, 0, 0, 1, 1, 1]);
    assert_eq!(ds.train.image(0), &expected(coat[0])[..]);
    assert_eq!(ds.train.image(5), &expected(trouser[2])[..]);
    let val = ds.val.as_ref().expect("val split");
    assert_eq!(val.labels, vec![0, 1]);
    assert_eq!(val.image(1), &expected(trouser[3])[..]);
    let test = ds.test.as_ref().expect("test split");
    assert_eq!(test.labels, vec![0, 1]);
    assert_eq!(test.shape(), (1, 28, 28));
    assert_eq!(test.image(0), &expected(coat[4])[..]);

    // Without val/ the split is absent.
    std::fs::remove_dir_all(root.join("val")).unwrap();
    let ds = load_image_folder(root, None).unwrap();
    assert!(ds.val.is_none());
    assert_eq!(ds.test.unwrap().len(), 2);
}

#[test]
fn colour_and_grey_conversions_by_hand() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    mkdir(&root.join("a"));
    mkdir(&root.join("b"));
    let rgb = RgbImage::from_raw(2, 2, vec![255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30]).unwrap();
    rgb.save(root.join("a").join("rgb.png")).unwrap();
    let rgba = RgbaImage::from_raw(
        2,
        2,
        vec![255, 255, 255, 0, 0, 0, 0, 255, 51, 102, 153, 7, 1, 2, 3, 4],
    )
    .unwrap();
    rgba.save(root.join("b").join("rgba.png")).unwrap();

    // Own channels: colour stays 3 channels (CHW), alpha is dropped.
    let ds = load_image_folder(root, None).unwrap();
    assert_eq!(ds.train.shape(), (3, 2, 2));
    let v = |x: f32| x / 255.0;
    assert_eq!(
        ds.train.image(0),
        &[
            1.0,
            0.0,
            0.0,
            v(10.0),
            0.0,
            1.0,
            0.0,
            v(20.0),
            0.0,
            0.0,
            1.0,
            v(30.0)
        ]
    );
    assert_eq!(
        ds.train.image(1),
        &[
            1.0,
            0.0,
            v(51.0),
            v(1.0),
            1.0,
            0.0,
            v(102.0),
            v(2.0),
            1.0,
            0.0,
            v(153.0),
            v(3.0)
        ]
    );

    // Grey: 0.2126 R + 0.7152 G + 0.0722 B of the [0, 1] values, worked out by hand:
    // (10, 20, 30): 18.596 / 255; (51, 102, 153): 94.8396 / 255; (1, 2, 3): 1.8596 / 255.
    let ds = load_image_folder(root, Some(1)).unwrap();
    assert_eq!(ds.train.shape(), (1, 2, 2));
    let want = [
        [0.2126, 0.7152, 0.0722, 0.072_925_49],
        [1.0, 0.0, 0.371_92, 0.007_292_549],
    ];
    for (i, want) in want.iter().enumerate() {
        for (got, want) in ds.train.image(i).iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "image {i}: {got} vs {want}");
        }
    }

    // A grey image among colour ones: an error naming it with its own channels (set None), or
    // converted: repeated into three identical planes (Some(3)).
    write_png(
        &root.join("c").join("grey.png"),
        &grey(2, 2, &[0, 64, 128, 255]),
    );
    let e = err_string(load_image_folder(root, None));
    assert!(e.contains(&shown(&root.join("c").join("grey.png"))), "{e}");
    assert!(e.contains(&shown(&root.join("a").join("rgb.png"))), "{e}");
    assert!(e.contains("1x2x2") && e.contains("3x2x2"), "{e}");
    let ds = load_image_folder(root, Some(3)).unwrap();
    assert_eq!(ds.train.shape(), (3, 2, 2));
    assert_eq!(ds.train.labels, vec![0, 1, 2]);
    let plane = [0.0, v(64.0), v(128.0), 1.0];
    assert_eq!(ds.train.image(2), &[plane, plane, plane].concat()[..]);
    assert_eq!(ds.train.image(0)[..4], [1.0, 0.0, 0.0, v(10.0)]);

    // 16-bit grey: values / 65535.
    let deep: ImageBuffer<Luma<u16>, Vec<u16>> =
        ImageBuffer::from_raw(2, 1, vec![1000, 65535]).unwrap();
    let path = root.join("deep.png");
    deep.save(&path).unwrap();
    let (values, c, h, w) = read_image(&path, None).unwrap();
    assert_eq!((c, h, w), (1, 1, 2));
    assert_eq!(values, vec![1000.0 / 65535.0, 1.0]);

    let e = err_string(load_image_folder(root, Some(2)));
    assert!(e.contains("2 channels"), "{e}");
}

#[test]
fn jpeg_files_decode_close_to_their_source() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let idx = first_of_class(7, 2);
    for (name, &i) in ["shoe.jpg", "shoe2.JPEG"].iter().zip(&idx) {
        let path = root.join("sneaker").join(name);
        mkdir(path.parent().unwrap());
        let mut file = std::fs::File::create(&path).unwrap();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut file, 95)
            .encode_image(&grey(28, 28, pixels(i)))
            .unwrap();
    }
    let ds = load_image_folder(root, None).unwrap();
    assert_eq!(ds.train.shape(), (1, 28, 28));
    assert_eq!(ds.train.len(), 2);
    for (j, &i) in idx.iter().enumerate() {
        let want = expected(i);
        let diffs: Vec<f32> = ds
            .train
            .image(j)
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .collect();
        let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
        let max = diffs.iter().fold(0.0f32, |m, &d| m.max(d));
        assert!(
            mean < 0.02 && max < 0.25,
            "image {j}: mean abs diff {mean}, max {max}"
        );
    }
}

#[test]
fn nested_folders_are_read_in_torchvision_order() {
    // torchvision reads `sorted(os.walk(class_dir))`: folders by their path string, so `a/sub-x`
    // ('-' < '/') comes before `a/sub/deeper`; a depth-first walk would read them the other way.
    let tmp = tempfile::tempdir().unwrap();
    let a = tmp.path().join("a");
    let one = |v: u8| grey(1, 1, &[v]);
    write_png(&a.join("z.png"), &one(10));
    write_png(&a.join("A.png"), &one(40));
    write_png(&a.join("sub").join("b.png"), &one(20));
    write_png(&a.join("sub-x").join("c.png"), &one(30));
    write_png(&a.join("sub").join("deeper").join("d.png"), &one(50));
    let ds = load_image_folder(tmp.path(), None).unwrap();
    let got: Vec<f32> = ds
        .train
        .images
        .iter()
        .map(|v| (v * 255.0).round())
        .collect();
    assert_eq!(got, vec![40.0, 10.0, 20.0, 30.0, 50.0]);
}

#[test]
fn folder_errors_name_the_folder_or_file() {
    let tmp = tempfile::tempdir().unwrap();
    let base = tmp.path();
    let img = first_of_class(0, 1)[0];

    // Missing root, root that is a file.
    let missing = base.join("nowhere");
    let e = err_string(load_image_folder(&missing, None));
    assert!(
        e.contains(&shown(&missing)) && e.contains("does not exist"),
        "{e}"
    );
    let file = base.join("file.png");
    write_fashion_png(&file, img);
    let e = err_string(load_image_folder(&file, None));
    assert!(
        e.contains(&shown(&file)) && e.contains("not a folder"),
        "{e}"
    );

    // No class folders (only files and a hidden folder).
    let flat = base.join("flat");
    write_fashion_png(&flat.join("x.png"), img);
    write_fashion_png(&flat.join(".hidden").join("x.png"), img);
    let e = err_string(load_image_folder(&flat, None));
    assert!(
        e.contains(&shown(&flat)) && e.contains("no class folders"),
        "{e}"
    );

    // An empty class folder (it holds a text file only).
    let empty = base.join("empty");
    write_fashion_png(&empty.join("a").join("x.png"), img);
    mkdir(&empty.join("b"));
    std::fs::write(empty.join("b").join("notes.txt"), "x").unwrap();
    let e = err_string(load_image_folder(&empty, None));
    assert!(
        e.contains(&shown(&empty.join("b"))) && e.contains("no images"),
        "{e}"
    );

    // A file that is not an image despite its name.
    let garbage = base.join("garbage");
    write_fashion_png(&garbage.join("a").join("ok.png"), img);
    let bad = garbage.join("a").join("x.png");
    std::fs::write(&bad, b"these bytes are not a PNG").unwrap();
    let e = err_string(load_image_folder(&garbage, None));
    assert!(e.contains(&shown(&bad)), "{e}");
    let (_, decoder) = e
        .split_once("cannot decode: ")
        .unwrap_or_else(|| panic!("{e}"));
    assert!(!decoder.trim().is_empty(), "{e}");
    assert!(err_string(read_image(&bad, None)).contains("cannot decode"));

    // Mixed sizes: the first differing file is named with both shapes.
    let mixed = base.join("mixed");
    write_fashion_png(&mixed.join("a").join("1.png"), img);
    write_png(&mixed.join("b").join("2.png"), &grey(27, 28, &[7; 27 * 28]));
    write_png(&mixed.join("b").join("3.png"), &grey(5, 5, &[7; 25]));
    let e = err_string(load_image_folder(&mixed, None));
    assert!(e.contains(&shown(&mixed.join("b").join("2.png"))), "{e}");
    assert!(e.contains(&shown(&mixed.join("a").join("1.png"))), "{e}");
    assert!(e.contains("1x28x27") && e.contains("1x28x28"), "{e}");
    assert!(!e.contains("3.png"), "{e}");

    // Splits whose classes differ from train's.
    let split = base.join("split");
    for s in ["train", "test", "val"] {
        for c in ["bag", "shirt"] {
            write_fashion_png(&split.join(s).join(c).join("x.png"), img);
        }
    }
    load_image_folder(&split, None).unwrap();
    write_fashion_png(&split.join("test").join("coat").join("x.png"), img);
    let e = err_string(load_image_folder(&split, None));
    assert!(
        e.contains(&shown(&split.join("test"))) && e.contains("'coat'"),
        "{e}"
    );
    std::fs::remove_dir_all(split.join("test").join("coat")).unwrap();
    std::fs::remove_dir_all(split.join("val").join("shirt")).unwrap();
    let e = err_string(load_image_folder(&split, None));
    assert!(
        e.contains(&shown(&split.join("val"))) && e.contains("'shirt'"),
        "{e}"
    );
    write_fashion_png(&split.join("val").join("shirt").join("x.png"), img);
    // Another folder beside the splits.
    write_fashion_png(&split.join("extra").join("bag").join("x.png"), img);
    let e = err_string(load_image_folder(&split, None));
    assert!(e.contains(&shown(&split)) && e.contains("extra/"), "{e}");
}

// ---------------------------------------------------------------------------------------------
// NumPy .npy
// ---------------------------------------------------------------------------------------------

/// A `.npy` file written as the format specifies: magic, version, header length (u16 for 1.0,
/// u32 for 2.0 and 3.0), the dict padded with spaces so that the data starts at a multiple of
/// `align` bytes (64; 16 in files from old NumPy versions) and ending in '\n', then the data.
fn npy_file(version: u8, align: usize, dict: &str, data: &[u8]) -> Vec<u8> {
    let prefix = if version == 1 { 10 } else { 12 };
    let mut header = dict.to_string();
    let pad = (align - (prefix + header.len() + 1) % align) % align;
    header.push_str(&" ".repeat(pad));
    header.push('\n');
    let mut out = b"\x93NUMPY".to_vec();
    out.extend_from_slice(&[version, 0]);
    if version == 1 {
        out.extend_from_slice(&u16::try_from(header.len()).unwrap().to_le_bytes());
    } else {
        out.extend_from_slice(&u32::try_from(header.len()).unwrap().to_le_bytes());
    }
    out.extend_from_slice(header.as_bytes());
    assert_eq!(out.len() % align, 0);
    out.extend_from_slice(data);
    out
}

/// The dict NumPy writes for an array.
fn dict(descr: &str, fortran: bool, shape: &str) -> String {
    let f = if fortran { "True" } else { "False" };
    format!("{{'descr': '{descr}', 'fortran_order': {f}, 'shape': {shape}, }}")
}

fn npy(descr: &str, shape: &str, data: &[u8]) -> Vec<u8> {
    npy_file(1, 64, &dict(descr, false, shape), data)
}

fn le_bytes<const N: usize, T>(values: &[T], f: impl Fn(&T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(f).collect()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

#[test]
fn npy_uint8_images_with_int64_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let pixels: Vec<u8> = (0..24u8).map(|i| i * 10).collect();
    let images = write(tmp.path(), "x.npy", &npy("|u1", "(2, 3, 4)", &pixels));
    let labels = write(
        tmp.path(),
        "y.npy",
        &npy("<i8", "(2,)", &le_bytes(&[1i64, 0], |v| v.to_le_bytes())),
    );
    let set = load_npy(&images, &labels).unwrap();
    assert_eq!(set.shape(), (1, 3, 4));
    assert_eq!(set.labels, vec![1, 0]);
    let want: Vec<f32> = pixels.iter().map(|&b| f32::from(b) / 255.0).collect();
    assert_eq!(set.images, want);
    assert_eq!(set.image(1)[0], 120.0 / 255.0);
}

#[test]
fn npy_float32_nhwc_rgb_becomes_nchw() {
    let tmp = tempfile::tempdir().unwrap();
    // v[n][y][x][c] = (12 n + 6 y + 3 x + c) / 32, exact in binary.
    let nhwc: Vec<f32> = (0..24).map(|i| i as f32 / 32.0).collect();
    let images = write(
        tmp.path(),
        "x.npy",
        &npy_file(
            2,
            64,
            &dict("<f4", false, "(2, 2, 2, 3)"),
            &le_bytes(&nhwc, |v| v.to_le_bytes()),
        ),
    );
    let labels = write(tmp.path(), "y.npy", &npy("|u1", "(2,)", &[3, 7]));
    let set = load_npy(&images, &labels).unwrap();
    assert_eq!(set.shape(), (3, 2, 2));
    assert_eq!(set.labels, vec![3, 7]);
    // Image 0, green plane: pixels (y, x) = (0,0), (0,1), (1,0), (1,1) -> 1, 4, 7, 10 (/32).
    assert_eq!(
        set.image(0)[4..8],
        [1.0 / 32.0, 4.0 / 32.0, 7.0 / 32.0, 10.0 / 32.0]
    );
    for n in 0..2 {
        for c in 0..3 {
            for y in 0..2 {
                for x in 0..2 {
                    let want = (12 * n + 6 * y + 3 * x + c) as f32 / 32.0;
                    assert_eq!(set.image(n)[c * 4 + y * 2 + x], want, "n{n} c{c} y{y} x{x}");
                }
            }
        }
    }
}

#[test]
fn npy_versions_dtypes_and_alignment() {
    // Version 3.0, float64, one channel in the last dimension, int32 labels.
    let tmp = tempfile::tempdir().unwrap();
    let values = [0.0f64, 0.25, 0.5, 1.0];
    let images = write(
        tmp.path(),
        "x.npy",
        &npy_file(
            3,
            64,
            &dict("<f8", false, "(1, 2, 2, 1)"),
            &le_bytes(&values, |v| v.to_le_bytes()),
        ),
    );
    let labels = write(
        tmp.path(),
        "y.npy",
        &npy("<i4", "(1,)", &5i32.to_le_bytes()),
    );
    let set = load_npy(&images, &labels).unwrap();
    assert_eq!((set.shape(), set.labels.clone()), ((1, 2, 2), vec![5]));
    assert_eq!(set.images, vec![0.0, 0.25, 0.5, 1.0]);

    // A version-1.0 header aligned to 16 bytes, as old NumPy wrote it; uint16 values.
    let bytes = npy_file(
        1,
        16,
        &dict("<u2", false, "(3,)"),
        &le_bytes(&[1u16, 256, 65535], |v| v.to_le_bytes()),
    );
    let arr = parse_npy(&bytes, "mem").unwrap();
    assert_eq!(arr.shape, vec![3]);
    assert_eq!(arr.data, NpyData::U64(vec![1, 256, 65535]));
    // int8 and a scalar.
    let arr = parse_npy(&npy("|i1", "(2,)", &[0xff, 0x7f]), "mem").unwrap();
    assert_eq!(arr.data, NpyData::I64(vec![-1, 127]));
    let arr = parse_npy(&npy("<u8", "()", &7u64.to_le_bytes()), "mem").unwrap();
    assert_eq!((arr.shape.len(), arr.data), (0, NpyData::U64(vec![7])));
}

#[test]
fn npy_header_errors_name_the_file_and_what_was_found() {
    let check = |bytes: &[u8], says: &[&str]| {
        let e = err_string(parse_npy(bytes, "arr.npy"));
        assert!(e.contains("arr.npy"), "{e}");
        for s in says {
            assert!(e.contains(s), "expected {s:?} in: {e}");
        }
    };
    let good = npy("|u1", "(2, 3)", &[0; 6]);
    parse_npy(&good, "arr.npy").unwrap();

    // Truncated data, trailing bytes.
    check(
        &good[..good.len() - 1],
        &["(2, 3)", "needs 6 bytes", "found 5", "truncated"],
    );
    check(&[&good[..], &[0]].concat(), &["found 7", "trailing"]);
    // A header that claims far more than the file holds is refused before any allocation (an
    // allocation of 3.1 TB would abort the test process).
    let start = std::time::Instant::now();
    check(
        &npy("|u1", "(4000000000, 28, 28)", &[0; 10]),
        &["needs 3136000000000 bytes", "found 10"],
    );
    check(
        &npy("<f8", "(4294967296, 4294967296, 2)", &[]),
        &["more bytes than can be addressed"],
    );
    assert!(start.elapsed().as_secs() < 5);
    // Big-endian, Fortran order, unsupported dtypes, structured dtypes.
    check(
        &npy(">f4", "(1,)", &[0; 4]),
        &["'>f4'", "big-endian", "<f4"],
    );
    check(
        &npy_file(1, 64, &dict("<f4", true, "(2, 2)"), &[0; 16]),
        &["fortran_order is True"],
    );
    check(
        &npy("<c8", "(1,)", &[0; 8]),
        &["'<c8'", "not supported", "|u1"],
    );
    check(
        &npy_file(
            1,
            64,
            "{'descr': [('x', '<f4')], 'fortran_order': False, 'shape': (1,), }",
            &[0; 4],
        ),
        &["structured"],
    );
    // Wrong magic, unknown version, header length beyond the file.
    check(b"PK\x03\x04 a zip file", &["not a NumPy .npy file"]);
    let mut v4 = good.clone();
    v4[6] = 4;
    check(&v4, &["version 4.0", "expected 1.0, 2.0 or 3.0"]);
    let mut long = good.clone();
    long[8..10].copy_from_slice(&60000u16.to_le_bytes());
    check(&long, &["60000-byte header", "truncated"]);
}

#[test]
fn npy_content_errors() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let labels2 = write(
        dir,
        "y2.npy",
        &npy("<i8", "(2,)", &le_bytes(&[0i64, 1], |v| v.to_le_bytes())),
    );
    let u8_images = write(dir, "x.npy", &npy("|u1", "(2, 2, 2)", &[0; 8]));
    load_npy(&u8_images, &labels2).unwrap();

    // Label count differs from the image count: both files and counts named.
    let labels3 = write(
        dir,
        "y3.npy",
        &npy("<i8", "(3,)", &le_bytes(&[0i64, 1, 2], |v| v.to_le_bytes())),
    );
    let e = err_string(load_npy(&u8_images, &labels3));
    for s in [
        shown(&u8_images),
        shown(&labels3),
        "2 images".into(),
        "3 labels".into(),
    ] {
        assert!(e.contains(&s), "expected {s:?} in: {e}");
    }

    // Floats outside [0, 1] (NaN included), named with their index in the file's shape.
    for (bad, at, shows) in [
        (1.5f32, 8, "1.5"),
        (f32::NAN, 11, "NaN"),
        (-0.25, 0, "-0.25"),
    ] {
        let mut v = vec![0.5f32; 12];
        v[at] = bad;
        let f = write(
            dir,
            "f.npy",
            &npy("<f4", "(1, 2, 2, 3)", &le_bytes(&v, |v| v.to_le_bytes())),
        );
        let e = err_string(load_npy(
            &f,
            &write(dir, "y1.npy", &npy("|u1", "(1,)", &[0])),
        ));
        let index = match at {
            8 => "(0, 1, 0, 2)",
            11 => "(0, 1, 1, 2)",
            _ => "(0, 0, 0, 0)",
        };
        assert!(
            e.contains(&shown(&f)) && e.contains(shows) && e.contains(index),
            "{e}"
        );
        assert!(e.contains("outside [0, 1]"), "{e}");
    }
    // Bad labels: negative, float, 2-D.
    let neg = write(
        dir,
        "neg.npy",
        &npy("<i8", "(2,)", &le_bytes(&[0i64, -1], |v| v.to_le_bytes())),
    );
    let e = err_string(load_npy(&u8_images, &neg));
    assert!(
        e.contains(&shown(&neg)) && e.contains("label -1 at index 1 "),
        "{e}"
    );
    let fl = write(dir, "fl.npy", &npy("<f4", "(2,)", &[0; 8]));
    assert!(err_string(load_npy(&u8_images, &fl)).contains("not integers"));
    let two_d = write(dir, "2d.npy", &npy("|u1", "(2, 1)", &[0, 1]));
    assert!(err_string(load_npy(&u8_images, &two_d)).contains("expected (N,)"));
    // Bad images: four channels last, two dimensions, int32 pixels.
    let rgba = write(dir, "rgba.npy", &npy("|u1", "(2, 1, 1, 4)", &[0; 8]));
    assert!(err_string(load_npy(&rgba, &labels2)).contains("4 channels"));
    let flat = write(dir, "flat.npy", &npy("|u1", "(2, 4)", &[0; 8]));
    assert!(err_string(load_npy(&flat, &labels2)).contains("2 dimensions"));
    let ints = write(dir, "ints.npy", &npy("<i4", "(2, 1, 1)", &[0; 8]));
    assert!(err_string(load_npy(&ints, &labels2)).contains("<i4"));
    // A missing file is an I/O error naming it.
    let gone = dir.join("gone.npy");
    assert!(err_string(load_npy(&gone, &labels2)).contains(&shown(&gone)));
}
