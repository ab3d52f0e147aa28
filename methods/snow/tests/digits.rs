//! SNOW on real data (the embedded UCI digits): learning, shared serving, the feature cache.

use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::features::FeatureCache;
use graft_core::pretrain::pretrain;
use graft_core::serve::SharedServing;
use graft_core::train::{accuracy, Split, TrainConfig};
use graft_core::{registry, FitContext, Source, Task, TaskModel};
use graft_datasets::{DatasetName, TaskSpec};
use serde_json::json;
use std::path::Path;

use graft_baselines as _;
use graft_snow as _;

fn digits_task(name: &str, classes: &[u32]) -> Task {
    let mut spec = TaskSpec::new(name, DatasetName::Digits);
    spec.classes = Some(classes.to_vec());
    spec.build(Path::new("unused: digits are embedded"), (1, 8, 8)).unwrap()
}

fn source() -> Source {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let cfg = TrainConfig { epochs: 10, batch_size: 32, lr: 0.05, ..TrainConfig::default() };
    let (source, _) = pretrain(spec, &digits_task("digits-0to4", &[0, 1, 2, 3, 4]), &cfg, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    source
}

fn fit(source: &Source, task: &Task, method: &str, config: serde_json::Value, seed: u64, cache: FeatureCache) -> Box<dyn TaskModel> {
    let m = registry::build(method, Some(&config)).unwrap();
    let mut ctx = FitContext::new(Device::Cpu, seed);
    ctx.features = cache;
    m.fit(source, task, &mut ctx).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

#[test]
fn snow_learns_new_digits_and_serves_many_tasks_from_one_source_pass() {
    let source = source();
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    let cfg = json!({ "width_fraction": 0.25, "train": { "epochs": 12, "batch_size": 32 } });
    let snow = fit(&source, &target, "snow", cfg.clone(), 1, FeatureCache::default());
    let x = target.test.images_tensor(&Device::Cpu).unwrap();
    let acc = accuracy(&|x| snow.forward(x), Split { x: &x, y: &target.test.labels }, 256).unwrap();
    eprintln!("snow digits 0-4 -> 5-9: test accuracy {acc:.3}");
    assert!(acc > 0.7, "snow reached only {acc} (chance 0.2)");

    // Several SNOW tasks and a model that does not share the source, served together: every
    // model's logits equal its own forward bit for bit.
    let other = digits_task("digits-all", &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    let short = json!({ "width_fraction": 0.25, "train": { "epochs": 1, "batch_size": 32 } });
    let models: Vec<Box<dyn TaskModel>> = vec![
        snow,
        fit(&source, &other, "snow", short.clone(), 2, FeatureCache::default()),
        fit(&source, &target, "snow", json!({ "k": 4, "taps": ["stage2.block0"], "train": { "epochs": 1 } }), 3, FeatureCache::default()),
        fit(&source, &target, "linear-probe", json!({ "train": { "epochs": 1 } }), 4, FeatureCache::default()),
    ];
    let server = SharedServing::new(&source, &models).unwrap();
    assert_eq!(server.taps(), ["stage1.block0", "stage2.block0", "stage3.block0"]);
    let batch = x.narrow(0, 0, 40).unwrap();
    let shared = server.forward(&batch).unwrap();
    for (m, s) in models.iter().zip(&shared) {
        assert_eq!(bits(s), bits(&m.forward(&batch).unwrap()), "{}: shared serving differs from its own forward", m.method());
    }
}

#[test]
fn cached_and_recomputed_source_taps_train_the_same_model() {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 8 }, input: InputSpec::new(1, 8, 8), num_classes: 5 };
    let source = Source::new(graft_core::Backbone::init(spec, 3, &Device::Cpu).unwrap(), graft_core::Provenance::default()).unwrap();
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    let cfg = json!({ "train": { "epochs": 2, "batch_size": 32 } });
    let x = target.test.images_tensor(&Device::Cpu).unwrap();
    let cached = fit(&source, &target, "snow", cfg.clone(), 1, FeatureCache::default());
    let recomputed = fit(&source, &target, "snow", cfg.clone(), 1, FeatureCache::disabled());
    let tight = fit(&source, &target, "snow", cfg, 1, FeatureCache { budget_bytes: 1024, ..FeatureCache::default() });
    let want = bits(&cached.forward(&x).unwrap());
    assert_eq!(want, bits(&recomputed.forward(&x).unwrap()), "cache on vs off");
    assert_eq!(want, bits(&tight.forward(&x).unwrap()), "cache over budget");
}

#[test]
fn a_damaged_delta_is_rejected_with_the_tensor_named() {
    let source = source();
    let target = digits_task("digits-5to9", &[5, 6, 7, 8, 9]);
    // K = 8 at every tap, so the damaged index below has the right length and one bad entry.
    let model = fit(&source, &target, "snow", json!({ "k": 8, "train": { "epochs": 1 } }), 1, FeatureCache::default());
    let dir = tempfile::tempdir().unwrap();
    let method = registry::build("snow", Some(&model.config_json())).unwrap();
    let mut delta = model.delta().unwrap();
    let key = "snow.pool.stage2.block0.index";
    delta.tensors.insert(key.into(), Tensor::new(&[0u32, 1, 2, 3, 4, 5, 6, 99], &Device::Cpu).unwrap());
    let err = method.load(&source, &delta).err().unwrap().to_string();
    assert!(err.contains(key) && err.contains("99"), "{err}");
    delta.tensors.remove(key);
    let err = method.load(&source, &delta).err().unwrap().to_string();
    assert!(err.contains(key), "{err}");
    // And a file cut short on disk names the file.
    let path = dir.path().join("snow.safetensors");
    model.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    let err = registry::load_task_model(&source, &path, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("snow.safetensors"), "{err}");
}
