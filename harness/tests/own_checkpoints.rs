//! Your own pretrained network through the command line: the committed PyTorch fixtures
//! (core/tests/fixtures, made by make_fixtures.py from torchvision models) imported with
//! `graft import`, exported back with `graft export`, and used as a suite's source with
//! `[[sources]] checkpoint = ...`.

mod common;

// The methods whose task models the tests restore in process.
use graft_baselines as _;
use graft_ksm as _;

use candle_core::{Device, Tensor};
use common::{graft, read_lines, text, write_suite};
use graft_core::backbone::BackboneSpec;
use graft_core::checkpoint::{read_safetensors, KEY_BACKBONE};
use graft_core::import::source_from_checkpoint;
use graft_core::torch_io::ImportOptions;
use graft_core::Source;
use std::path::{Path, PathBuf};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/fixtures").join(name)
}

/// (spec, input, PyTorch's logits) of a fixture.
fn reference(name: &str) -> (BackboneSpec, Tensor, Tensor) {
    let f = read_safetensors(&fixture(&format!("{name}.ref.safetensors")), &Device::Cpu).unwrap();
    let spec: BackboneSpec = serde_json::from_str(&f.metadata[KEY_BACKBONE]).unwrap();
    (spec, f.tensors["input"].clone(), f.tensors["logits"].clone())
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar::<f32>().unwrap()
}

#[test]
fn import_gives_pytorchs_logits_and_export_gives_back_the_same_weights() {
    let dir = tempfile::tempdir().unwrap();
    for (name, arch, input) in [("wrn_10_1", "wrn-10-1", "3x20x20"), ("resnet18_w8", "resnet18-w8", "3x37x45")] {
        let weights = fixture(&format!("{name}.safetensors"));
        let out = graft(dir.path(), &["import", weights.to_str().unwrap(), "--arch", arch, "--input", input, "--out", "src.safetensors"]);
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{stdout}\n{stderr}");
        let (spec, x, logits) = reference(name);
        let source = Source::load(&dir.path().join("src.safetensors"), &Device::Cpu).unwrap();
        // The head's 10 classes were read from the file; ImageNet normalisation by default.
        assert_eq!(source.backbone.spec(), &spec, "{name}");
        let d = max_abs_diff(&source.backbone.forward(&x).unwrap(), &logits);
        assert!(d <= 1e-4, "{name}: max |graft - pytorch| = {d}");

        let out = graft(dir.path(), &["export", "src.safetensors", "--out", "sd.safetensors"]);
        assert!(out.status.success(), "{}", text(&out).1);
        let original = read_safetensors(&weights, &Device::Cpu).unwrap().tensors;
        let exported = read_safetensors(&dir.path().join("sd.safetensors"), &Device::Cpu).unwrap().tensors;
        let keys = |m: &graft_core::ParamMap| m.keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(&exported), keys(&original), "{name}: the same state-dict keys");
        for (k, t) in &original {
            if k.ends_with("num_batches_tracked") {
                continue;
            }
            let want = t.to_dtype(candle_core::DType::F32).unwrap();
            assert_eq!(max_abs_diff(&exported[k], &want), 0.0, "{name}: {k}");
        }
    }
}

#[test]
fn normalisation_that_does_not_fit_the_input_is_named_by_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("wrn_10_1.safetensors");
    let w = weights.to_str().unwrap();
    for (flag, value, needle) in [("--mean", "0.5,0.5", "--mean has 2 values for 3 input channels"), ("--std", "0.2,0,0.2", "--std must be positive in every channel")] {
        let out = graft(dir.path(), &["import", w, "--arch", "wrn-10-1", "--input", "3x20x20", flag, value, "--out", "x.safetensors"]);
        let (_, stderr) = text(&out);
        assert!(!out.status.success() && stderr.contains(needle), "{stderr}");
    }
    let suite = checkpoint_suite(&weights, "[0]").replace("input = [3, 20, 20]", "input = [3, 20, 20]\nmean = [0.5]");
    let (_, stderr) = text(&graft(dir.path(), &["run", write_suite(dir.path(), &suite).to_str().unwrap()]));
    assert!(stderr.contains("sources[0] ('wrn'): key `mean` has 1 values for 3 input channels"), "{stderr}");
    assert!(!dir.path().join("x.safetensors").exists());
}

#[test]
fn import_refuses_a_state_dict_of_another_architecture_naming_the_keys() {
    let dir = tempfile::tempdir().unwrap();
    let weights = fixture("wrn_10_1.safetensors");
    let out = graft(dir.path(), &["import", weights.to_str().unwrap(), "--arch", "resnet18-w8", "--input", "3x32x32", "--out", "x.safetensors"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success());
    assert!(stderr.contains("wrn_10_1.safetensors") && stderr.contains("layer1.0.conv1.weight"), "{stderr}");
    assert!(!dir.path().join("x.safetensors").exists());
}

fn checkpoint_suite(checkpoint: &Path, seeds: &str) -> String {
    format!(
        r#"
name = "ckpt"
seeds = {seeds}
methods = ["linear-probe"]
[[sources]]
name = "wrn"
arch = "wrn-10-1"
input = [3, 20, 20]
checkpoint = "{}"
[[tasks]]
name = "digits-0to4"
dataset = "digits"
classes = [0, 1, 2, 3, 4]
[method_configs.linear-probe]
train = {{ epochs = 1, optimizer = "adam", lr = 0.01 }}
"#,
        checkpoint.display()
    )
}

#[test]
fn a_suite_source_given_as_a_state_dict_is_the_imported_source_and_a_changed_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let ckpt = dir.path().join("wrn.safetensors");
    std::fs::copy(fixture("wrn_10_1.safetensors"), &ckpt).unwrap();
    let suite = write_suite(dir.path(), &checkpoint_suite(&ckpt, "[0]"));
    let out = graft(dir.path(), &["run", suite.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(!stderr.contains("pretraining"), "{stderr}");
    let (records, _) = read_lines(&dir.path().join("results/ckpt.jsonl"));
    assert_eq!(records.len(), 1);
    // The source the runs used is the library's import of the same file.
    let (spec, _, _) = reference("wrn_10_1");
    let imported = source_from_checkpoint(&ckpt, &spec, &ImportOptions::default(), &Device::Cpu).unwrap();
    assert_eq!(records[0]["source_hash"], imported.source.hash.as_str());
    assert!(!dir.path().join("results/sources").exists(), "nothing is pretrained or cached");

    // The file changes under the recorded runs: a new seed must not mix two sources.
    let mut bytes = std::fs::read(&ckpt).unwrap();
    let n = bytes.len();
    bytes[n - 3] ^= 0x40;
    std::fs::write(&ckpt, bytes).unwrap();
    let suite = write_suite(dir.path(), &checkpoint_suite(&ckpt, "[0, 1]"));
    let out = graft(dir.path(), &["run", suite.to_str().unwrap()]);
    let (stdout, stderr) = text(&out);
    assert!(!out.status.success(), "{stdout}");
    assert!(stderr.contains("wrn.safetensors") && stderr.contains("the file changed"), "{stderr}");
    assert_eq!(read_lines(&dir.path().join("results/ckpt.jsonl")).0.len(), 1);
}

#[test]
fn a_checkpoint_source_takes_no_pretraining_task_and_must_exist() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.safetensors");
    let suite = write_suite(dir.path(), &checkpoint_suite(&missing, "[0]"));
    let (_, stderr) = text(&graft(dir.path(), &["run", suite.to_str().unwrap()]));
    assert!(stderr.contains("nope.safetensors") && stderr.contains("is not a file"), "{stderr}");
    let both = checkpoint_suite(&fixture("wrn_10_1.safetensors"), "[0]")
        .replace("[[tasks]]", "task = { name = \"d\", dataset = \"digits\" }\n[[tasks]]");
    let suite = write_suite(dir.path(), &both);
    let (_, stderr) = text(&graft(dir.path(), &["run", suite.to_str().unwrap()]));
    assert!(stderr.contains("sources[0] ('wrn')") && stderr.contains("not both"), "{stderr}");
}

/// A run's delta file, from its results line.
fn delta_of(dir: &Path, records: &[serde_json::Value], method: &str) -> PathBuf {
    let r = records.iter().find(|r| r["method"] == method).unwrap_or_else(|| panic!("no {method} run"));
    dir.join("results").join(r["delta_path"].as_str().unwrap())
}

#[test]
fn merged_linear_probe_fine_tune_and_ksm_exports_import_strictly_with_the_task_models_logits() {
    let dir = tempfile::tempdir().unwrap();
    let suite = common::tiny_suite("[0]", common::DIGITS_5TO9).replace(
        r#"methods = ["linear-probe"]"#,
        r#"methods = ["linear-probe", "fine-tune", "ksm", "snow"]
[method_configs.fine-tune]
train = { epochs = 1 }
[method_configs.ksm]
train = { epochs = 1 }
[method_configs.snow]
k = 1
train = { epochs = 1 }"#,
    );
    let out = graft(dir.path(), &["run", write_suite(dir.path(), &suite).to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out).1);
    let (records, _) = read_lines(&dir.path().join("results/tiny.jsonl"));
    let source = Source::load(&dir.path().join("results/sources/d04.safetensors"), &Device::Cpu).unwrap();
    let mut rng = graft_core::init::SeededRng::derived(5, "merged-test");
    let x = Tensor::from_vec(rng.uniform_vec(16 * 64, 0.0, 1.0), (16, 1, 8, 8), &Device::Cpu).unwrap();
    let bits = |t: Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect::<Vec<_>>();
    for method in ["linear-probe", "fine-tune", "ksm"] {
        let file = format!("{method}.safetensors");
        let out = graft(
            dir.path(),
            &["export", "--merged", "--results", "results/tiny.jsonl", "--method", method, "--task", "digits-5to9", "--out", &file],
        );
        let (stdout, stderr) = text(&out);
        assert!(out.status.success(), "{method}: {stdout}\n{stderr}");
        assert!(stdout.contains(&format!("{method} task 'digits-5to9' merged into resnet-cifar-8-w2 (5 classes: 5, 6, 7, 8, 9)")), "{stdout}");
        // What PyTorch's strict load_state_dict needs: exactly the architecture's keys (with
        // every BN's step counter) for a 5-class head, no more, no less.
        let exported = read_safetensors(&dir.path().join(&file), &Device::Cpu).unwrap();
        let spec: BackboneSpec = serde_json::from_str(&exported.metadata[KEY_BACKBONE]).unwrap();
        assert_eq!(spec, BackboneSpec { num_classes: 5, ..source.backbone.spec().clone() });
        assert!(exported.metadata["graft.task"].contains(r#""class_names":["5","6","7","8","9"]"#), "{:?}", exported.metadata);
        let (merged, report) =
            graft_core::torch_io::import_state_dict(&dir.path().join(&file), spec, &ImportOptions::default(), &Device::Cpu).unwrap();
        assert!(report.is_clean(), "{method}: {report}");
        // The merged network computes the task model's logits, bit for bit.
        let delta = graft_core::Delta::load(&delta_of(dir.path(), &records, method), &Device::Cpu).unwrap();
        let model = graft_core::registry::restore_task_model(&source, &delta, Path::new("delta")).unwrap();
        assert!(bits(merged.forward(&x).unwrap()) == bits(model.forward(&x).unwrap()), "{method}: other logits");
        // Below the head, the linear probe exports the source as it is; the others changed it.
        let changed = source.backbone.params().iter().filter(|(k, v)| !k.starts_with("fc.") && bits((*v).clone()) != bits(merged.params()[*k].clone())).count();
        assert_eq!(changed == 0, method == "linear-probe", "{method}: {changed} tensors changed");
    }
    // SNOW adds modules to the network: no plain-weights form, and nothing is written.
    let out = graft(dir.path(), &["export", "--merged", "--results", "results/tiny.jsonl", "--method", "snow", "--task", "digits-5to9", "--out", "snow.safetensors"]);
    let (_, stderr) = text(&out);
    assert!(!out.status.success() && stderr.contains("method 'snow' adds modules"), "{stderr}");
    assert!(!dir.path().join("snow.safetensors").exists());
    // Choosing a task model without --merged is a mistake, said as such.
    let delta = delta_of(dir.path(), &records, "ksm");
    let out = graft(dir.path(), &["export", "results/sources/d04.safetensors", "--delta", delta.to_str().unwrap(), "--out", "x.safetensors"]);
    assert!(!out.status.success() && text(&out).1.contains("add --merged"), "{}", text(&out).1);
}
