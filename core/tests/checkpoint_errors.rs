//! Source and delta checkpoints: exact round trips, and an error that names the file and the
//! problem for every way a file can be wrong.

use candle_core::{DType, Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::checkpoint::{
    self, write_atomic, write_safetensors, GRAFT_VERSION, KEY_BACKBONE, KEY_KIND, KEY_PROVENANCE, KEY_VERSION,
};
use graft_core::init::SeededRng;
use graft_core::{Backbone, Delta, GraftError, ParamMap, Provenance, Source, TaskInfo};
use std::collections::BTreeMap;
use std::path::Path;

fn spec() -> BackboneSpec {
    BackboneSpec {
        arch: Arch::ResnetCifar { depth: 8, width: 2 },
        input: InputSpec { channels: 1, height: 8, width: 8, mean: vec![0.4], std: vec![0.3] },
        num_classes: 3,
    }
}

fn provenance() -> Provenance {
    Provenance {
        dataset: "synthetic blobs 1x8x8".into(),
        epochs: 7,
        test_accuracy: 0.8125,
        seed: 42,
        graft_version: GRAFT_VERSION.into(),
    }
}

/// A source whose BN buffers are not at their init values (so a mix-up would show).
fn source(seed: u64) -> Source {
    let dev = Device::Cpu;
    let bb = Backbone::init(spec(), seed, &dev).unwrap();
    let mut p = bb.params().clone();
    let mut rng = SeededRng::new(seed);
    for k in p.keys().cloned().collect::<Vec<_>>() {
        if k.ends_with("running_mean") || k.ends_with("bn1.bias") {
            let n = p[&k].elem_count();
            p.insert(k, rng.normal(n, 0.5, &dev).unwrap());
        }
    }
    Source::new(Backbone::from_params(spec(), p, &dev).unwrap(), provenance()).unwrap()
}

/// The metadata a source checkpoint carries.
fn source_meta() -> BTreeMap<String, String> {
    BTreeMap::from([
        (KEY_KIND.to_string(), "source".to_string()),
        (KEY_VERSION.to_string(), GRAFT_VERSION.to_string()),
        (KEY_BACKBONE.to_string(), serde_json::to_string(&spec()).unwrap()),
        (KEY_PROVENANCE.to_string(), serde_json::to_string(&provenance()).unwrap()),
    ])
}

/// Writes `src` as a source checkpoint without `Source::save` (whose hash check is broken, see
/// `source_hash_is_the_saved_files_hash`): same tensors, same metadata.
fn save_source(src: &Source, path: &Path) {
    assert_eq!(src.provenance, provenance());
    assert_eq!(src.backbone.spec(), &spec());
    write_safetensors(path, src.backbone.params(), &source_meta()).unwrap();
}

fn bits(t: &Tensor) -> Vec<u8> {
    // Raw bytes of any dtype: f32 via bits, others via f64/u8 views.
    match t.dtype() {
        DType::F32 => t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::U8 => t.flatten_all().unwrap().to_vec1::<u8>().unwrap(),
        DType::U32 => t.flatten_all().unwrap().to_vec1::<u32>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        DType::F64 => t.flatten_all().unwrap().to_vec1::<f64>().unwrap().iter().flat_map(|v| v.to_le_bytes()).collect(),
        d => panic!("unhandled dtype {d:?}"),
    }
}

fn assert_same_params(a: &ParamMap, b: &ParamMap) {
    assert_eq!(a.keys().collect::<Vec<_>>(), b.keys().collect::<Vec<_>>());
    for (k, t) in a {
        assert_eq!(t.dims(), b[k].dims(), "{k}: shape");
        assert_eq!(t.dtype(), b[k].dtype(), "{k}: dtype");
        assert_eq!(bits(t), bits(&b[k]), "{k}: values");
    }
}

/// The error of loading `path` as a source.
fn load_err(path: &Path) -> GraftError {
    match Source::load(path, &Device::Cpu) {
        Ok(_) => panic!("{} loaded although it is invalid", path.display()),
        Err(e) => e,
    }
}

/// Asserts a `Checkpoint` error on `path` whose message contains every word.
fn assert_checkpoint_err(e: &GraftError, path: &Path, words: &[&str]) {
    match e {
        GraftError::Checkpoint { path: p, .. } => assert_eq!(p, path, "error names another file"),
        other => panic!("expected GraftError::Checkpoint, got {other:?}"),
    }
    let m = e.to_string();
    assert!(m.contains(&path.display().to_string()), "path missing from: {m}");
    for w in words {
        assert!(m.contains(w), "'{w}' missing from: {m}");
    }
}

#[test]
fn source_round_trip_is_exact() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.safetensors");
    let src = source(1);
    save_source(&src, &path);
    let back = Source::load(&path, &Device::Cpu).unwrap();
    assert_same_params(src.backbone.params(), back.backbone.params());
    assert_eq!(back.backbone.spec(), src.backbone.spec());
    assert_eq!(back.provenance, src.provenance);
    // The identity is the checkpoint's hash without its data hash: Source::new's, not the file's.
    assert_eq!(back.hash, src.hash, "the loaded source has another identity");
    assert_ne!(back.hash, checkpoint::sha256_hex(&std::fs::read(&path).unwrap()), "the file carries its data hash too");
    assert_eq!(back.hash.len(), 64);
    assert_eq!(back.short_hash(), &back.hash[..12]);
    // Same logits, bit for bit.
    let x = SeededRng::new(3).uniform((2, 1, 8, 8), 0.0, 1.0, &Device::Cpu).unwrap();
    assert_eq!(bits(&src.backbone.forward(&x).unwrap()), bits(&back.backbone.forward(&x).unwrap()));
    // Different weights or provenance give a different identity.
    assert_ne!(source(2).hash, src.hash);
    let other = Source::new(src.backbone.clone(), Provenance { epochs: 8, ..provenance() }).unwrap();
    assert_ne!(other.hash, src.hash);
}

#[test]
fn source_hash_is_the_saved_files_hash() {
    let src = source(1);
    let meta = source_meta();
    let first = checkpoint::to_safetensors_bytes(src.backbone.params(), &meta).unwrap();
    for i in 0..20 {
        let again = checkpoint::to_safetensors_bytes(src.backbone.params(), &meta).unwrap();
        assert!(again == first, "serialising the same tensors and metadata gave different bytes on try {i}");
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.safetensors");
    src.save(&path).unwrap();
    let back = Source::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.hash, src.hash, "a task model fitted on Source::new's source would not match the saved one");
    src.save(&dir.path().join("again.safetensors")).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), std::fs::read(dir.path().join("again.safetensors")).unwrap());
}

#[test]
fn missing_file_is_an_io_error_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.safetensors");
    let e = load_err(&path);
    assert!(matches!(&e, GraftError::Io { path: p, .. } if p == &path), "{e:?}");
    assert!(e.to_string().contains(&path.display().to_string()));
}

#[test]
fn truncated_files_are_reported_as_invalid_safetensors() {
    let dir = tempfile::tempdir().unwrap();
    let full = dir.path().join("full.safetensors");
    save_source(&source(4), &full);
    let bytes = std::fs::read(&full).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let data_start = 8 + header_len;
    assert!(bytes.len() > data_start + 16);
    let cuts = [
        ("empty", 0),
        ("inside the length prefix", 5),
        ("inside the header", 8 + header_len / 2),
        ("at the end of the header", data_start),
        ("inside the data", data_start + (bytes.len() - data_start) / 2),
        ("one byte short", bytes.len() - 1),
    ];
    for (what, cut) in cuts {
        let path = dir.path().join(format!("cut-{cut}.safetensors"));
        std::fs::write(&path, &bytes[..cut]).unwrap();
        let e = load_err(&path);
        assert_checkpoint_err(&e, &path, &["not a valid safetensors file"]);
        let m = e.to_string();
        assert!(m.contains(&format!("{cut} bytes")), "{what}: size missing from: {m}");
    }
    // Trailing garbage is not accepted either.
    let path = dir.path().join("long.safetensors");
    let mut long = bytes.clone();
    long.extend_from_slice(&[0u8; 7]);
    std::fs::write(&path, &long).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["not a valid safetensors file"]);
}

#[test]
fn wrong_shape_names_the_key_and_both_shapes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shape.safetensors");
    let mut p = source(5).backbone.params().clone();
    p.insert("layer2.0.conv1.weight".into(), Tensor::zeros((4, 2, 1, 1), DType::F32, &Device::Cpu).unwrap());
    write_safetensors(&path, &p, &source_meta()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["layer2.0.conv1.weight", "[4, 2, 1, 1]", "[4, 2, 3, 3]"]);
}

#[test]
fn wrong_dtype_names_the_key_and_dtypes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dtype.safetensors");
    let mut p = source(5).backbone.params().clone();
    let t = p["fc.weight"].to_dtype(DType::F64).unwrap();
    p.insert("fc.weight".into(), t);
    write_safetensors(&path, &p, &source_meta()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["fc.weight", "F64", "F32"]);
}

#[test]
fn missing_and_unexpected_keys_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let base = source(6).backbone.params().clone();

    let path = dir.path().join("missing.safetensors");
    let mut p = base.clone();
    p.remove("layer1.0.bn2.running_var");
    write_safetensors(&path, &p, &source_meta()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["missing", "layer1.0.bn2.running_var", "[2]"]);

    let path = dir.path().join("unexpected.safetensors");
    let mut p = base.clone();
    p.insert("head.weight".into(), Tensor::zeros((3, 8), DType::F32, &Device::Cpu).unwrap());
    write_safetensors(&path, &p, &source_meta()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["unexpected", "head.weight"]);

    // Both at once: every problem is listed.
    let path = dir.path().join("both.safetensors");
    let mut p = base.clone();
    p.remove("fc.bias");
    p.insert("fc.extra".into(), Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap());
    write_safetensors(&path, &p, &source_meta()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &["fc.bias", "fc.extra"]);

    // torchvision's BN counters are tolerated and dropped.
    let path = dir.path().join("tv.safetensors");
    let mut p = base.clone();
    p.insert("bn1.num_batches_tracked".into(), Tensor::new(&[5u32], &Device::Cpu).unwrap());
    write_safetensors(&path, &p, &source_meta()).unwrap();
    let s = Source::load(&path, &Device::Cpu).unwrap();
    assert!(!s.backbone.params().contains_key("bn1.num_batches_tracked"));
    assert_same_params(s.backbone.params(), &base);
}

#[test]
fn a_delta_is_not_a_source_and_a_source_is_not_a_delta() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(7);
    let dpath = dir.path().join("task.safetensors");
    delta(&src).save(&dpath).unwrap();
    assert_checkpoint_err(&load_err(&dpath), &dpath, &["'delta'", "'source'"]);

    let spath = dir.path().join("src.safetensors");
    save_source(&src, &spath);
    let e = Delta::load(&spath, &Device::Cpu).unwrap_err();
    assert_checkpoint_err(&e, &spath, &["'source'", "'delta'"]);
}

#[test]
fn safetensors_without_graft_metadata_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let params = source(8).backbone.params().clone();
    // No metadata at all (as candle or a torchvision converter writes it).
    let path = dir.path().join("plain.safetensors");
    let plain: std::collections::HashMap<String, Tensor> = params.clone().into_iter().collect();
    candle_core::safetensors::save(&plain, &path).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &[KEY_KIND, "graft checkpoint"]);
    let e = Delta::load(&path, &Device::Cpu).unwrap_err();
    assert_checkpoint_err(&e, &path, &[KEY_KIND, "graft checkpoint"]);
    // Empty metadata table.
    let path = dir.path().join("empty-meta.safetensors");
    write_safetensors(&path, &params, &BTreeMap::new()).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &[KEY_KIND]);
    // A source without its backbone spec.
    let path = dir.path().join("no-spec.safetensors");
    let mut meta = source_meta();
    meta.remove(KEY_BACKBONE);
    write_safetensors(&path, &params, &meta).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &[KEY_BACKBONE]);
    // A spec that is not a spec.
    let path = dir.path().join("bad-spec.safetensors");
    let mut meta = source_meta();
    meta.insert(KEY_BACKBONE.into(), r#"{"arch":{"name":"resnet-cifar","depth":8,"width":2},"num_classes":3}"#.into());
    write_safetensors(&path, &params, &meta).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &[KEY_BACKBONE, "input"]);
    // A provenance that is not JSON.
    let path = dir.path().join("bad-prov.safetensors");
    let mut meta = source_meta();
    meta.insert(KEY_PROVENANCE.into(), "{".into());
    write_safetensors(&path, &params, &meta).unwrap();
    assert_checkpoint_err(&load_err(&path), &path, &[KEY_PROVENANCE]);
}

#[test]
fn write_atomic_replaces_and_leaves_no_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.bin");
    write_atomic(&path, b"old content, longer than the new").unwrap();
    write_atomic(&path, b"new").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into()).collect();
    assert_eq!(names, vec!["out.bin".to_string()], "temp files left behind");

    // Creates missing folders.
    let nested = dir.path().join("a/b/c.bin");
    write_atomic(&nested, b"x").unwrap();
    assert_eq!(std::fs::read(&nested).unwrap(), b"x");

    // A failed write (the destination is a non-empty folder) reports the path, removes its
    // temp file and leaves the destination as it was.
    let blocked = dir.path().join("blocked");
    std::fs::create_dir(&blocked).unwrap();
    std::fs::write(blocked.join("keep"), b"k").unwrap();
    let e = write_atomic(&blocked, b"data").unwrap_err();
    assert!(matches!(&e, GraftError::Io { path, .. } if path == &blocked), "{e:?}");
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into())
        .filter(|n: &String| n.contains("tmp"))
        .collect();
    assert!(left.is_empty(), "temp files left behind after a failed write: {left:?}");
    assert_eq!(std::fs::read(blocked.join("keep")).unwrap(), b"k");
}

fn delta(src: &Source) -> Delta {
    let dev = Device::Cpu;
    let mut rng = SeededRng::new(9);
    Delta {
        method: "ksm".into(),
        config: serde_json::json!({"lr": 0.001, "taps": ["stage2.block0"], "train": {"epochs": 3}}),
        source_hash: src.hash.clone(),
        num_classes: 3,
        needs_source: true,
        backbone: None,
        task: Some(TaskInfo { name: "t".into(), class_names: vec!["cat".into(), "dog".into(), "eel".into()], fit: "resize".into() }),
        tensors: ParamMap::from([
            ("ksm.mask".to_string(), rng.normal((4, 2), 1.0, &dev).unwrap()),
            ("ksm.bits".to_string(), Tensor::new(&[1u8, 0, 255, 7], &dev).unwrap()),
            ("head.weight".to_string(), rng.normal((3, 8), 1.0, &dev).unwrap()),
            ("head.bias".to_string(), rng.normal(3, 1.0, &dev).unwrap()),
        ]),
    }
}

#[test]
fn delta_round_trip_and_check() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.safetensors");
    let src = source(10);
    let d = delta(&src);
    d.save(&path).unwrap();
    let back = Delta::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.method, d.method);
    assert_eq!(back.config, d.config);
    assert_eq!(back.source_hash, d.source_hash);
    assert_eq!(back.num_classes, d.num_classes);
    assert_eq!(back.task.as_ref().unwrap().class_names, ["cat", "dog", "eel"]);
    assert_eq!(back.task, d.task);
    assert_same_params(&back.tensors, &d.tensors);
    assert_eq!(back.tensor_bytes(), (8 + 24 + 3) * 4 + 4);
    back.check(&src, "ksm").unwrap();

    let e = back.check(&src, "piggyback").unwrap_err();
    assert!(matches!(e, GraftError::Incompatible(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains("'ksm'") && m.contains("'piggyback'"), "{m}");

    let other = source(11);
    let e = back.check(&other, "ksm").unwrap_err();
    assert!(matches!(e, GraftError::Incompatible(_)), "{e:?}");
    let m = e.to_string();
    assert!(m.contains(&src.hash[..12]) && m.contains(other.short_hash()), "{m}");

    // Tensor lookups name the key and shapes.
    let m = back.tensor("ksm.scale").unwrap_err().to_string();
    assert!(m.contains("ksm.scale") && m.contains("ksm"), "{m}");
    let m = back.tensor_shaped("head.weight", &[3, 16]).unwrap_err().to_string();
    assert!(m.contains("head.weight") && m.contains("[3, 8]") && m.contains("[3, 16]"), "{m}");
    assert_eq!(back.tensor_shaped("head.weight", &[3, 8]).unwrap().dims(), &[3, 8]);
}

#[test]
fn delta_with_incomplete_metadata_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(12);
    let path = dir.path().join("task.safetensors");
    delta(&src).save(&path).unwrap();
    let file = checkpoint::read_safetensors(&path, &Device::Cpu).unwrap();
    for key in ["graft.method", "graft.config", "graft.source_hash", "graft.num_classes"] {
        let p = dir.path().join(format!("no-{key}.safetensors"));
        let mut meta = file.metadata.clone();
        assert!(meta.remove(key).is_some(), "delta metadata lacks {key}");
        write_safetensors(&p, &file.tensors, &meta).unwrap();
        assert_checkpoint_err(&Delta::load(&p, &Device::Cpu).unwrap_err(), &p, &[key]);
    }
    let p = dir.path().join("bad-classes.safetensors");
    let mut meta = file.metadata.clone();
    meta.insert("graft.num_classes".into(), "three".into());
    write_safetensors(&p, &file.tensors, &meta).unwrap();
    assert_checkpoint_err(&Delta::load(&p, &Device::Cpu).unwrap_err(), &p, &["graft.num_classes"]);
    let p = dir.path().join("bad-config.safetensors");
    let mut meta = file.metadata.clone();
    meta.insert("graft.config".into(), "{lr: 1".into());
    write_safetensors(&p, &file.tensors, &meta).unwrap();
    assert_checkpoint_err(&Delta::load(&p, &Device::Cpu).unwrap_err(), &p, &["graft.config"]);
    let p = dir.path().join("bad-needs-source.safetensors");
    let mut meta = file.metadata.clone();
    meta.insert("graft.needs_source".into(), "maybe".into());
    write_safetensors(&p, &file.tensors, &meta).unwrap();
    assert_checkpoint_err(&Delta::load(&p, &Device::Cpu).unwrap_err(), &p, &["graft.needs_source", "maybe"]);
    // The task's class names must be one per output.
    for (task, needle) in [
        (r#"{"name":"t","class_names":["a","b"],"fit":"resize"}"#, "names 2 classes but 'graft.num_classes' is 3"),
        (r#"{"name":"t","class_names":["a","b","c"]}"#, "missing field `fit`"),
    ] {
        let p = dir.path().join("bad-task.safetensors");
        let mut meta = file.metadata.clone();
        meta.insert("graft.task".into(), task.into());
        write_safetensors(&p, &file.tensors, &meta).unwrap();
        assert_checkpoint_err(&Delta::load(&p, &Device::Cpu).unwrap_err(), &p, &["graft.task", needle]);
    }
}

#[test]
fn needs_source_is_stored_only_when_false_and_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let src = source(13);
    let (with, without) = (dir.path().join("with.safetensors"), dir.path().join("without.safetensors"));
    let d = delta(&src);
    d.save(&with).unwrap();
    // Deltas that need their source keep the metadata of older versions: no key at all.
    let meta = checkpoint::read_safetensors(&with, &Device::Cpu).unwrap().metadata;
    assert!(!meta.contains_key("graft.needs_source"), "{meta:?}");
    assert!(Delta::load(&with, &Device::Cpu).unwrap().needs_source);
    assert!(!meta.contains_key("graft.backbone"), "{meta:?}");
    let spec = src.backbone.spec().clone();
    Delta { needs_source: false, backbone: Some(spec.clone()), ..d }.save(&without).unwrap();
    let meta = checkpoint::read_safetensors(&without, &Device::Cpu).unwrap().metadata;
    assert_eq!(meta.get("graft.needs_source").map(String::as_str), Some("false"));
    let back = Delta::load(&without, &Device::Cpu).unwrap();
    assert!(!back.needs_source);
    assert_eq!(back.backbone, Some(spec));
    // A damaged spec is named.
    let file = checkpoint::read_safetensors(&without, &Device::Cpu).unwrap();
    let mut meta = file.metadata.clone();
    meta.insert("graft.backbone".into(), "{\"arch\": 3}".into());
    let bad = dir.path().join("bad-spec.safetensors");
    write_safetensors(&bad, &file.tensors, &meta).unwrap();
    assert_checkpoint_err(&Delta::load(&bad, &Device::Cpu).unwrap_err(), &bad, &["graft.backbone"]);
}

#[test]
fn concurrent_writes_to_one_path_stay_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("shared.bin");
    let len = 1 << 20;
    let handles: Vec<_> = (0..6u8)
        .map(|i| {
            let path = path.clone();
            std::thread::spawn(move || {
                let payload = vec![i; len];
                (0..10).map(|_| write_atomic(&path, &payload).map_err(|e| e.to_string())).collect::<Vec<_>>()
            })
        })
        .collect();
    let results: Vec<_> = handles.into_iter().flat_map(|h| h.join().unwrap()).collect();
    let failures: Vec<_> = results.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(failures.is_empty(), "{} of {} writes failed, e.g. {}", failures.len(), results.len(), failures[0]);
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(bytes.len(), len, "the file is not one complete write");
    assert!(bytes.iter().all(|b| *b == bytes[0]), "the file mixes two writes");
}

/// Flips one bit of the byte `from_end` bytes before the end of `path` (inside the tensor data).
fn flip(path: &Path, from_end: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    let i = bytes.len() - from_end;
    bytes[i] ^= 0x01;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn damaged_tensor_data_is_refused_naming_the_file_and_both_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let src_path = dir.path().join("src.safetensors");
    let src = source(12);
    src.save(&src_path).unwrap();
    let data = std::fs::read(&src_path).unwrap();
    let header_len = u64::from_le_bytes(data[..8].try_into().unwrap()) as usize;
    let recorded = checkpoint::sha256_hex(&data[8 + header_len..]);
    for from_end in [1, (data.len() - 8 - header_len) / 2, data.len() - 8 - header_len] {
        std::fs::write(&src_path, &data).unwrap();
        flip(&src_path, from_end);
        let damaged = std::fs::read(&src_path).unwrap();
        let actual = checkpoint::sha256_hex(&damaged[8 + header_len..]);
        assert_checkpoint_err(&load_err(&src_path), &src_path, &["damaged", &actual[..12], &recorded[..12]]);
    }

    let delta_path = dir.path().join("task.safetensors");
    delta(&src).save(&delta_path).unwrap();
    flip(&delta_path, 3);
    match Delta::load(&delta_path, &Device::Cpu) {
        Ok(_) => panic!("a damaged delta loaded"),
        Err(e) => assert_checkpoint_err(&e, &delta_path, &["damaged"]),
    }
}
