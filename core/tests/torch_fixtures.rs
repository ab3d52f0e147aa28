//! PyTorch interoperation: state dicts written by PyTorch (torchvision key names and layout,
//! f16/bf16/f32, `num_batches_tracked` included) load into graft's backbones, and graft's
//! forward pass reproduces PyTorch's eval-mode logits to 1e-4. The fixtures and their reference
//! logits are made by `core/tests/fixtures/make_fixtures.py`; this test needs no Python.

use candle_core::{DType, Device, Tensor};
use graft_core::backbone::BackboneSpec;
use graft_core::checkpoint::{parse_safetensors, read_safetensors, to_safetensors_bytes, KEY_BACKBONE};
use graft_core::torch_io::{export_state_dict, import_state_dict, import_state_dict_bytes, ImportOptions, ShapeMismatch};
use graft_core::{GraftError, ParamMap};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 5] = ["resnet18_w8", "resnet50_w4", "mobilenetv2_0.25", "vgg11_bn_d32", "wrn_10_1"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

struct Reference {
    spec: BackboneSpec,
    input: Tensor,
    logits: Tensor,
    weights_dtype: String,
}

fn reference(name: &str) -> Reference {
    let f = read_safetensors(&dir().join(format!("{name}.ref.safetensors")), &Device::Cpu).unwrap();
    let spec: BackboneSpec = serde_json::from_str(&f.metadata[KEY_BACKBONE]).unwrap();
    Reference {
        spec,
        input: f.tensors["input"].clone(),
        logits: f.tensors["logits"].clone(),
        weights_dtype: f.metadata["weights.dtype"].clone(),
    }
}

fn weights(name: &str) -> PathBuf {
    dir().join(format!("{name}.safetensors"))
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

fn state_dict(name: &str) -> ParamMap {
    read_safetensors(&weights(name), &Device::Cpu).unwrap().tensors
}

fn bytes_of(sd: &ParamMap) -> Vec<u8> {
    to_safetensors_bytes(sd, &BTreeMap::new()).unwrap()
}

#[test]
fn fixtures_stay_small() {
    let total: u64 = std::fs::read_dir(dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "safetensors"))
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert!(total < 2_000_000, "fixtures take {total} bytes");
}

#[test]
fn graft_logits_match_pytorch_for_every_fixture() {
    for name in FIXTURES {
        let r = reference(name);
        let (bb, report) = import_state_dict(&weights(name), r.spec.clone(), &ImportOptions::default(), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.is_clean(), "{name}: {report}");
        assert_eq!(report.loaded, bb.params().len(), "{name}: every parameter comes from the file");
        if r.weights_dtype == "float32" {
            assert!(report.converted.is_empty(), "{name}: {:?}", report.converted);
        } else {
            assert_eq!(report.converted.len(), report.loaded, "{name}: every {} tensor is converted", r.weights_dtype);
        }
        let got = bb.forward(&r.input).unwrap();
        let d = max_abs_diff(&got, &r.logits);
        eprintln!("{name}: max |graft - pytorch| = {d:e}");
        assert!(d <= 1e-4, "{name}: max |graft - pytorch| = {d}");
        // The logits are not trivially small, so the tolerance means something.
        let scale = r.logits.abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(scale > 0.05, "{name}: reference logits are all near zero ({scale})");
    }
}

#[test]
fn one_wrong_shape_is_named_with_both_shapes() {
    let r = reference("resnet18_w8");
    let mut sd = state_dict("resnet18_w8");
    sd.insert("layer2.0.conv1.weight".into(), Tensor::zeros((16, 8, 5, 5), DType::F16, &Device::Cpu).unwrap());
    let e = import_state_dict_bytes(&bytes_of(&sd), Path::new("edited.safetensors"), r.spec.clone(), &ImportOptions::default(), &Device::Cpu)
        .err()
        .expect("a wrong shape fails a strict import");
    assert!(matches!(e, GraftError::Checkpoint { .. }), "{e:?}");
    let m = e.to_string();
    for want in ["edited.safetensors", "layer2.0.conv1.weight", "[16, 8, 5, 5]", "[16, 8, 3, 3]", "resnet18-w8"] {
        assert!(m.contains(want), "'{want}' missing from: {m}");
    }
    assert_eq!(m.matches("size mismatch").count(), 1, "only that key is reported: {m}");

    // Non-strict: reported, the rest loads.
    let opts = ImportOptions { strict: false, ..Default::default() };
    let (_, report) = import_state_dict_bytes(&bytes_of(&sd), Path::new("edited"), r.spec, &opts, &Device::Cpu).unwrap();
    assert_eq!(
        report.mismatched,
        vec![ShapeMismatch { key: "layer2.0.conv1.weight".into(), file_shape: vec![16, 8, 5, 5], expected_shape: vec![16, 8, 3, 3] }]
    );
    assert!(report.missing.is_empty() && report.unexpected.is_empty());
}

#[test]
fn missing_and_unexpected_keys_are_reported_like_load_state_dict() {
    let r = reference("wrn_10_1");
    let mut sd = state_dict("wrn_10_1");
    sd.remove("fc.bias");
    sd.remove("block2.layer.0.bn1.running_var");
    sd.insert("head.extra.weight".into(), Tensor::zeros((3, 3), DType::F32, &Device::Cpu).unwrap());
    sd.insert("no_such_bn.num_batches_tracked".into(), Tensor::new(5i64, &Device::Cpu).unwrap());
    sd.insert("conv1.weight_int".into(), Tensor::zeros(2, DType::F32, &Device::Cpu).unwrap());
    sd.insert("fc.weight".into(), Tensor::zeros((10, 64), DType::U8, &Device::Cpu).unwrap());

    let strict = import_state_dict_bytes(&bytes_of(&sd), Path::new("x"), r.spec.clone(), &ImportOptions::default(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    for want in [
        "missing key 'fc.bias' (expected shape [10])",
        "missing key 'block2.layer.0.bn1.running_var' (expected shape [16])",
        "unexpected key 'head.extra.weight'",
        "unexpected key 'no_such_bn.num_batches_tracked'",
        "unexpected key 'conv1.weight_int'",
        "'fc.weight' has dtype U8",
    ] {
        assert!(strict.contains(want), "'{want}' missing from: {strict}");
    }

    let opts = ImportOptions { strict: false, ..Default::default() };
    let (bb, report) = import_state_dict_bytes(&bytes_of(&sd), Path::new("x"), r.spec.clone(), &opts, &Device::Cpu).unwrap();
    assert_eq!(report.missing, vec![("block2.layer.0.bn1.running_var".to_string(), vec![16]), ("fc.bias".to_string(), vec![10])]);
    assert_eq!(report.unexpected, vec!["conv1.weight_int", "head.extra.weight", "no_such_bn.num_batches_tracked"]);
    assert_eq!(report.wrong_dtype, vec![("fc.weight".to_string(), "U8".to_string())]);
    assert!(!report.is_clean());
    // What was found is loaded as is.
    let want = state_dict("wrn_10_1")["conv1.weight"].clone();
    assert_eq!(max_abs_diff(bb.param("conv1.weight").unwrap(), &want), 0.0);
}

#[test]
fn a_different_head_loads_non_strictly_for_transfer() {
    let r = reference("mobilenetv2_0.25");
    let (full, _) = import_state_dict(&weights("mobilenetv2_0.25"), r.spec.clone(), &ImportOptions::default(), &Device::Cpu).unwrap();
    let spec = BackboneSpec { num_classes: 3, ..r.spec.clone() };
    let opts = ImportOptions { strict: false, seed: 9, ..Default::default() };
    let (bb, report) = import_state_dict(&weights("mobilenetv2_0.25"), spec, &opts, &Device::Cpu).unwrap();
    let keys: Vec<&str> = report.mismatched.iter().map(|m| m.key.as_str()).collect();
    assert_eq!(keys, ["classifier.1.bias", "classifier.1.weight"]);
    assert_eq!(bb.forward(&r.input).unwrap().dims(), &[2, 3]);
    let a = bb.features(&r.input, "pool", 8).unwrap();
    let b = full.features(&r.input, "pool", 8).unwrap();
    assert_eq!(max_abs_diff(&a, &b), 0.0);
}

#[test]
fn a_data_parallel_prefix_can_be_stripped() {
    let r = reference("vgg11_bn_d32");
    let sd: ParamMap = state_dict("vgg11_bn_d32").into_iter().map(|(k, v)| (format!("module.{k}"), v)).collect();
    let e = import_state_dict_bytes(&bytes_of(&sd), Path::new("dp"), r.spec.clone(), &ImportOptions::default(), &Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("unexpected key 'module.features.0.weight'") && e.contains("missing key 'features.0.weight'"), "{e}");
    let opts = ImportOptions { strip_prefix: Some("module.".into()), ..Default::default() };
    let (bb, _) = import_state_dict_bytes(&bytes_of(&sd), Path::new("dp"), r.spec, &opts, &Device::Cpu).unwrap();
    assert!(max_abs_diff(&bb.forward(&r.input).unwrap(), &r.logits) <= 1e-4);
}

#[test]
fn export_writes_the_same_layout_and_reimports_identically() {
    let tmp = tempfile::tempdir().unwrap();
    for name in FIXTURES {
        let r = reference(name);
        let (bb, _) = import_state_dict(&weights(name), r.spec.clone(), &ImportOptions::default(), &Device::Cpu).unwrap();
        let out = tmp.path().join(format!("{name}.safetensors"));
        let hash = export_state_dict(&bb, &out).unwrap();
        let bytes = std::fs::read(&out).unwrap();
        assert_eq!(hash, graft_core::checkpoint::sha256_hex(&bytes));
        let exported = parse_safetensors(&bytes, &out, &Device::Cpu).unwrap();
        // Same keys and shapes as PyTorch's state dict, num_batches_tracked included.
        let original = state_dict(name);
        let shapes = |m: &ParamMap| m.iter().map(|(k, v)| (k.clone(), v.dims().to_vec())).collect::<Vec<_>>();
        assert_eq!(shapes(&exported.tensors), shapes(&original), "{name}");
        for (k, v) in &exported.tensors {
            let want = if k.ends_with(".num_batches_tracked") { DType::I64 } else { DType::F32 };
            assert_eq!(v.dtype(), want, "{name}: {k}");
        }
        assert_eq!(exported.metadata["format"], "pt");
        let spec: BackboneSpec = serde_json::from_str(&exported.metadata[KEY_BACKBONE]).unwrap();
        assert_eq!(spec, r.spec);
        let (again, report) = import_state_dict(&out, spec, &ImportOptions::default(), &Device::Cpu).unwrap();
        assert!(report.is_clean() && report.converted.is_empty(), "{name}: {report}");
        let (a, b) = (bb.forward(&r.input).unwrap(), again.forward(&r.input).unwrap());
        assert_eq!(max_abs_diff(&a, &b), 0.0, "{name}");
        // Exporting the re-imported backbone gives the same bytes.
        assert_eq!(export_state_dict(&again, &tmp.path().join("again.safetensors")).unwrap(), hash, "{name}");
    }
}
