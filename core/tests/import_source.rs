//! Sources from checkpoint files: the committed PyTorch fixtures (see torch_fixtures.rs) imported
//! as sources with their head size read from the file, and graft sources taken as they are.

use candle_core::{Device, Tensor};
use graft_core::backbone::BackboneSpec;
use graft_core::checkpoint::{read_safetensors, KEY_BACKBONE};
use graft_core::conformance::tiny_source;
use graft_core::import::{infer_num_classes, source_from_checkpoint};
use graft_core::torch_io::ImportOptions;
use std::path::{Path, PathBuf};

const FIXTURES: [&str; 5] = ["resnet18_w8", "resnet50_w4", "mobilenetv2_0.25", "vgg11_bn_d32", "wrn_10_1"];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// (spec, input, PyTorch's logits) of a fixture.
fn reference(name: &str) -> (BackboneSpec, Tensor, Tensor) {
    let f = read_safetensors(&fixture(&format!("{name}.ref.safetensors")), &Device::Cpu).unwrap();
    let spec: BackboneSpec = serde_json::from_str(&f.metadata[KEY_BACKBONE]).unwrap();
    (spec, f.tensors["input"].clone(), f.tensors["logits"].clone())
}

#[test]
fn each_fixture_imports_as_a_source_with_its_head_read_from_the_file_and_pytorchs_logits() {
    for name in FIXTURES {
        let (spec, input, logits) = reference(name);
        let unknown_head = BackboneSpec { num_classes: 0, ..spec.clone() };
        let path = fixture(&format!("{name}.safetensors"));
        let imported = source_from_checkpoint(&path, &unknown_head, &ImportOptions::default(), &Device::Cpu)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        // The head size the reference was made with, found in the file.
        assert_eq!(imported.source.backbone.spec().num_classes, spec.num_classes, "{name}");
        assert!(imported.report.as_ref().unwrap().is_clean(), "{name}");
        let got = imported.source.backbone.forward(&input).unwrap();
        let d = (got - &logits).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap();
        assert!(d <= 1e-4, "{name}: max |graft - pytorch| = {d}");
    }
}

#[test]
fn an_imported_sources_identity_follows_the_files_content_not_its_name() {
    let (spec, _, _) = reference("wrn_10_1");
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("renamed.safetensors");
    std::fs::copy(fixture("wrn_10_1.safetensors"), &copy).unwrap();
    let load = |p: &Path| source_from_checkpoint(p, &spec, &ImportOptions::default(), &Device::Cpu).unwrap();
    let (a, b) = (load(&fixture("wrn_10_1.safetensors")), load(&copy));
    assert_eq!(a.source.hash, b.source.hash);
    assert_eq!(a.file_sha256, b.file_sha256);
    assert!(a.source.provenance.dataset.contains(&a.file_sha256[..12]), "{}", a.source.provenance.dataset);
    // One changed weight: another file, another source.
    let mut bytes = std::fs::read(&copy).unwrap();
    let n = bytes.len();
    bytes[n - 2] ^= 0x40;
    std::fs::write(&copy, bytes).unwrap();
    assert_ne!(load(&copy).source.hash, a.source.hash);
}

#[test]
fn a_graft_source_is_taken_as_it_is_and_must_be_the_named_architecture() {
    let source = tiny_source(3);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("src.safetensors");
    source.save(&path).unwrap();
    let spec = source.backbone.spec().clone();
    let got = source_from_checkpoint(&path, &spec, &ImportOptions::default(), &Device::Cpu).unwrap();
    assert_eq!(got.source.hash, source.hash);
    assert!(got.report.is_none());
    let (other, _, _) = reference("wrn_10_1");
    let e = source_from_checkpoint(&path, &other, &ImportOptions::default(), &Device::Cpu).err().unwrap().to_string();
    assert!(e.contains("src.safetensors") && e.contains("resnet-cifar-8-w4") && e.contains("wrn-10-1"), "{e}");
}

#[test]
fn a_state_dict_without_the_head_cannot_tell_its_classes_and_says_so() {
    let (spec, _, _) = reference("resnet18_w8");
    let mut sd = read_safetensors(&fixture("resnet18_w8.safetensors"), &Device::Cpu).unwrap().tensors;
    sd.remove("fc.weight");
    let bytes = graft_core::checkpoint::to_safetensors_bytes(&sd, &Default::default()).unwrap();
    let e = infer_num_classes(&bytes, Path::new("headless.safetensors"), &spec, None).unwrap_err().to_string();
    assert!(e.contains("headless.safetensors") && e.contains("fc.weight"), "{e}");
}

#[test]
fn a_saved_graft_source_carries_every_bn_step_counter_and_keeps_its_identity() {
    let src = tiny_source(7);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("source.safetensors");
    src.save(&path).unwrap();
    // Every BN has an int64 scalar `num_batches_tracked`, as PyTorch's state dicts do.
    let file = read_safetensors(&path, &Device::Cpu).unwrap();
    let bns = src.backbone.bn_names();
    assert_eq!(bns.len(), 9, "resnet-cifar-8 has 9 BNs");
    for bn in &bns {
        let t = &file.tensors[&format!("{bn}.num_batches_tracked")];
        assert_eq!((t.dtype(), t.dims()), (candle_core::DType::I64, &[][..]), "{bn}");
    }
    assert_eq!(file.tensors.len(), src.backbone.params().len() + bns.len());
    // The identity is what it was before sources carried the counters: the hash the committed
    // KSM fixture delta recorded for this very source when it was written.
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("../methods/ksm/tests/fixtures/ksm.safetensors");
    let recorded = read_safetensors(&fixture, &Device::Cpu).unwrap().metadata["graft.source_hash"].clone();
    let back = graft_core::Source::load(&path, &Device::Cpu).unwrap();
    assert_eq!(back.hash, recorded);
    assert_eq!(src.hash, recorded);
    // The file is a state dict PyTorch's strict load accepts: a strict import finds nothing
    // missing or unexpected, and the network computes the same logits.
    let spec = src.backbone.spec().clone();
    let (imported, report) =
        graft_core::torch_io::import_state_dict(&path, spec, &ImportOptions::default(), &Device::Cpu).unwrap();
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.loaded, src.backbone.params().len());
    let x = graft_core::conformance::tiny_task(7).test.images_tensor(&Device::Cpu).unwrap();
    let (a, b) = (src.backbone.forward(&x).unwrap(), imported.forward(&x).unwrap());
    assert_eq!(a.flatten_all().unwrap().to_vec1::<f32>().unwrap(), b.flatten_all().unwrap().to_vec1::<f32>().unwrap());
}
