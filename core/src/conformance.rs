//! The conformance table every method crate runs from its tests (see `docs/adding-a-method.md`).
//!
//! A method crate lists one [`Case`] per configuration worth checking and calls [`check`] on
//! each. The checks are the invariants every transfer method must keep: the source is never
//! modified, only the method's own parameters are stored, save→load reproduces the logits
//! bit for bit (without the source too, for a model that needs none), configs round-trip and reject unknown keys, and the reported footprint matches
//! the stored delta and the method's documented parameter-count formula.

use crate::backbone::{Arch, BackboneSpec, InputSpec};
use crate::checkpoint::{Provenance, Source};
use crate::data::{ImageSet, Task};
use crate::init::SeededRng;
use crate::method::{FitContext, TaskModel};
use crate::registry;
use crate::Backbone;
use candle_core::{Device, Tensor};

/// One row of a method crate's conformance table.
pub struct Case {
    /// Registered method name.
    pub method: &'static str,
    /// Config to use (keep training short: one or two epochs).
    pub config: serde_json::Value,
    /// The documented trainable-parameter count for this source and task.
    pub expected_trainable: fn(&Source, &Task) -> usize,
    /// The documented stored bytes for this source and task, computed by the test from the
    /// method's formula (not from the delta's tensors).
    pub expected_stored_bytes: fn(&Source, &Task) -> usize,
    /// The interconnections counted by hand on [`tiny_source`] (resnet-cifar-8 width 4: convs
    /// `conv1`, `layer{1,2,3}.0.conv{1,2}`, `layer{2,3}.0.downsample.0` (9); BNs `bn1`,
    /// `layer{1,2,3}.0.bn{1,2}`, `layer{2,3}.0.downsample.1` (9); taps `stem`,
    /// `stage{1,2,3}.block0`, `pool`, `logits`).
    pub expected_interconnections: usize,
}

/// A tiny random source: resnet-cifar depth 8, width 4, input 1x8x8, 3 classes, with non-trivial
/// BN statistics so that eval-mode BN is not the identity.
pub fn tiny_source(seed: u64) -> Source {
    let spec = BackboneSpec {
        arch: Arch::ResnetCifar { depth: 8, width: 4 },
        input: InputSpec::new(1, 8, 8),
        num_classes: 3,
    };
    let dev = Device::Cpu;
    let b = Backbone::init(spec.clone(), seed, &dev).expect("tiny backbone builds");
    let mut rng = SeededRng::derived(seed, "conformance-bn");
    let mut params = b.params().clone();
    for (name, t) in params.iter_mut() {
        let n = t.elem_count();
        let v = if name.ends_with("running_var") {
            rng.uniform_vec(n, 0.5, 1.5)
        } else if name.ends_with("running_mean") || name.contains("bn") && name.ends_with(".bias") {
            rng.uniform_vec(n, -0.2, 0.2)
        } else if name.contains("bn") && name.ends_with(".weight") {
            rng.uniform_vec(n, 0.8, 1.2)
        } else {
            continue;
        };
        *t = Tensor::from_vec(v, t.dims(), &dev).expect("shape matches");
    }
    let b = Backbone::from_params(spec, params, &dev).expect("same shapes");
    Source::new(b, Provenance { dataset: "conformance (random init)".into(), ..Default::default() })
        .expect("source hashes")
}

/// A seeded synthetic 3-class task on 1x8x8 images: each class brightens one region, plus noise.
pub fn tiny_task(seed: u64) -> Task {
    let mut rng = SeededRng::derived(seed, "conformance-task");
    let mut make = |n: usize| {
        let mut images = Vec::with_capacity(n * 64);
        let mut labels = Vec::with_capacity(n);
        for i in 0..n {
            let class = (i % 3) as u32;
            let noise = rng.uniform_vec(64, 0.0, 0.3);
            for (p, v) in noise.into_iter().enumerate() {
                let (r, c) = (p / 8, p % 8);
                let lit = match class {
                    0 => r < 3,
                    1 => r >= 5,
                    _ => (3..6).contains(&c),
                };
                images.push(if lit { v + 0.7 } else { v });
            }
            labels.push(class);
        }
        ImageSet::new(images, labels, 1, 8, 8).expect("consistent sizes")
    };
    let (train, val, test) = (make(48), make(24), make(24));
    Task {
        name: "conformance".into(),
        num_classes: 3,
        class_names: vec!["top".into(), "bottom".into(), "middle".into()],
        class_ids: vec![vec![0], vec![1], vec![2]],
        train,
        val,
        test,
        provenance: format!("synthetic, seed {seed}"),
    }
}

/// `task` with every image enlarged `k` times by pixel repetition (for backbones that need a
/// larger input than [`tiny_task`]'s 8x8, e.g. VGG's five poolings).
pub fn upsample(task: &Task, k: usize) -> Task {
    let up = |s: &ImageSet| {
        let (c, h, w) = s.shape();
        let mut out = Vec::with_capacity(s.len() * c * h * w * k * k);
        for i in 0..s.len() {
            let img = s.image(i);
            for ch in 0..c {
                for y in 0..h * k {
                    for x in 0..w * k {
                        out.push(img[(ch * h + y / k) * w + x / k]);
                    }
                }
            }
        }
        ImageSet::new(out, s.labels.clone(), c, h * k, w * k).expect("consistent sizes")
    };
    Task { train: up(&task.train), val: up(&task.val), test: up(&task.test), ..task.clone() }
}

/// One small backbone of every zoo family (pre-activation WRN, torchvision ResNet-18 and -50,
/// MobileNetV2 with depthwise convs, VGG-11), 5 classes, each with the tiny task at its input
/// size (8x8; VGG's five poolings need 32x32, so its task is upsampled 4x).
pub fn zoo_cases() -> Vec<(BackboneSpec, Task)> {
    use crate::backbone::VggConfig;
    let archs = [
        (Arch::Wrn { depth: 10, widen: 1 }, 1),
        (Arch::Resnet { depth: 18, width: 2 }, 1),
        (Arch::Resnet { depth: 50, width: 2 }, 1),
        (Arch::Mobilenetv2 { width_mult: 0.25 }, 1),
        (Arch::Vgg { config: VggConfig::Vgg11, width_div: 64, pool: 1 }, 4),
    ];
    archs
        .into_iter()
        .map(|(arch, k)| (BackboneSpec { arch, input: InputSpec::new(1, 8 * k, 8 * k), num_classes: 5 }, upsample(&tiny_task(1), k)))
        .collect()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().and_then(|t| t.to_vec1::<f32>()).expect("f32 tensor").into_iter().map(f32::to_bits).collect()
}

fn logits(model: &dyn TaskModel, x: &Tensor) -> Vec<u32> {
    bits(&model.forward(x).expect("forward works"))
}

fn logits_of_backbone(backbone: &Backbone, x: &Tensor) -> Vec<u32> {
    bits(&backbone.forward(x).expect("forward works"))
}

/// Runs every invariant on `case`, panicking with a message that names the method and the
/// broken invariant.
pub fn check(case: &Case) {
    let m = case.method;
    let dev = Device::Cpu;
    let source = tiny_source(7);
    let task = tiny_task(7);
    let before: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();

    // Config round trip and unknown keys.
    let method = registry::build(m, Some(&case.config)).unwrap_or_else(|e| panic!("{m}: config rejected: {e}"));
    let again = registry::build(m, Some(&method.config_json())).unwrap_or_else(|e| panic!("{m}: saved config rejected: {e}"));
    assert_eq!(again.config_json(), method.config_json(), "{m}: config does not round-trip");
    let entry = registry::find(m).expect("registered");
    let defaults = registry::build(m, None).expect("defaults build");
    assert_eq!(defaults.config_json(), (entry.default_config)(), "{m}: default_config differs from Default");
    let mut bad = case.config.clone();
    bad.as_object_mut().expect("config is a JSON object").insert("no_such_key".into(), 1.into());
    let err = registry::build(m, Some(&bad)).err().unwrap_or_else(|| panic!("{m}: unknown key accepted"));
    assert!(err.to_string().contains("no_such_key"), "{m}: unknown-key error does not name the key: {err}");

    // Fit: the source stays bit-identical.
    let model = method.fit(&source, &task, &mut FitContext::new(dev.clone(), 3)).unwrap_or_else(|e| panic!("{m}: fit failed: {e}"));
    let after: Vec<(String, Vec<u32>)> = source.backbone.params().iter().map(|(k, v)| (k.clone(), bits(v))).collect();
    assert!(before == after, "{m}: fitting modified the frozen source");
    assert_eq!(model.method(), m);
    assert_eq!(model.num_classes(), task.num_classes);

    // Only the method's own parameters are stored, under `<method>.` or `head.`.
    let delta = model.delta().expect("delta");
    assert!(!delta.tensors.is_empty(), "{m}: empty delta");
    for k in delta.tensors.keys() {
        assert!(
            k.starts_with(&format!("{m}.")) || k.starts_with("head."),
            "{m}: stored tensor '{k}' is not under '{m}.' or 'head.'"
        );
    }

    // Footprint agrees with the delta and the documented formula.
    let fp = model.footprint();
    assert_eq!(fp.stored_bytes, delta.tensor_bytes(), "{m}: footprint.stored_bytes differs from the delta's bytes");
    assert_eq!(fp.stored_bytes, (case.expected_stored_bytes)(&source, &task), "{m}: stored bytes differ from the documented formula");
    assert_eq!(fp.trainable_params, (case.expected_trainable)(&source, &task), "{m}: trainable params differ from the documented formula");
    assert!(fp.flops_per_image > 0, "{m}: FLOPs not reported");
    let attached: Vec<String> = model.attachments().iter().map(ToString::to_string).collect();
    assert_eq!(fp.interconnections, attached.len(), "{m}: footprint.interconnections is not the count of {attached:?}");
    assert_eq!(fp.interconnections, case.expected_interconnections, "{m}: interconnections differ from the hand count: {attached:?}");

    // Evaluation is deterministic and save→load reproduces the logits bit for bit.
    let x = task.test.images_tensor(&dev).expect("tensor");
    let first = logits(model.as_ref(), &x);
    assert_eq!(first, logits(model.as_ref(), &x), "{m}: evaluation is not deterministic");
    // Unique per call: cases of one method may run in parallel test threads of one process.
    static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("graft-conformance-{m}-{}-{call}", std::process::id()));
    let path = dir.join("task.safetensors");
    model.save(&path).unwrap_or_else(|e| panic!("{m}: save failed: {e}"));
    let loaded = registry::load_task_model(&source, &path, &dev).unwrap_or_else(|e| panic!("{m}: load failed: {e}"));
    assert!(first == logits(loaded.as_ref(), &x), "{m}: save→load changed the logits");
    assert_eq!(loaded.footprint(), fp, "{m}: footprint changed by save→load");

    // A model that needs no source reloads from its file alone, to the same logits.
    if !model.needs_source() {
        assert!(!delta.needs_source, "{m}: the delta of a standalone model says it needs its source");
        let alone = registry::load_standalone(&path, &dev).unwrap_or_else(|e| panic!("{m}: standalone load failed: {e}"));
        assert!(first == logits(alone.as_ref(), &x), "{m}: standalone load changed the logits");
        assert_eq!(alone.footprint(), fp, "{m}: footprint changed by the standalone load");
    } else {
        let err = registry::load_standalone(&path, &dev).err().unwrap_or_else(|| panic!("{m}: loaded without its source"));
        assert!(err.to_string().contains("source"), "{m}: standalone-load error does not say it needs the source: {err}");
    }

    // A method whose task folds into plain weights: the merged backbone gives the same logits
    // bit for bit, and so does its torchvision-layout export read back by a strict import.
    match model.merged() {
        Ok(Some(merged)) => {
            assert_eq!(merged.spec().num_classes, task.num_classes, "{m}: the merged network's head is not the task's");
            assert!(first == logits_of_backbone(&merged, &x), "{m}: the merged network gives other logits");
            let sd = dir.join("merged.safetensors");
            crate::torch_io::export_state_dict(&merged, &sd).unwrap_or_else(|e| panic!("{m}: merged export failed: {e}"));
            let opts = crate::torch_io::ImportOptions::default();
            let (back, report) = crate::torch_io::import_state_dict(&sd, merged.spec().clone(), &opts, &dev)
                .unwrap_or_else(|e| panic!("{m}: the merged export does not import strictly: {e}"));
            assert!(report.is_clean(), "{m}: {report}");
            assert!(first == logits_of_backbone(&back, &x), "{m}: the merged export re-imported gives other logits");
        }
        Ok(None) => {}
        Err(e) => panic!("{m}: merging failed: {e}"),
    }

    // A delta refuses a different source.
    let other = tiny_source(8);
    let err = registry::load_task_model(&other, &path, &dev).err().unwrap_or_else(|| panic!("{m}: loaded onto a different source"));
    assert!(err.to_string().contains("source"), "{m}: wrong-source error does not say so: {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Pins what a method stores and computes across refactors. With `write`, fits `method` with
/// `config` on the tiny source and task (seed 3) and saves its delta as `<dir>/<name>.safetensors`
/// and its test logits as `<dir>/<name>.logits.safetensors`. Otherwise loads that delta with the
/// current code, which must give the saved logits, and fits again, which must store tensors of
/// the same names, dtypes and shapes and the same values. Logits are compared to 1e-4, refitted
/// values to 1e-3 (relative, plus absolute) and masks to 99 % of their bytes, not bit for bit:
/// the fixtures were written on another CPU, whose matrix kernels may round differently, and
/// training carries that rounding along.
pub fn check_fixture(method: &str, config: &serde_json::Value, dir: &std::path::Path, name: &str, write: bool) {
    let dev = Device::Cpu;
    let source = tiny_source(7);
    let task = tiny_task(7);
    let x = task.test.images_tensor(&dev).expect("images");
    let delta_path = dir.join(format!("{name}.safetensors"));
    let logits_path = dir.join(format!("{name}.logits.safetensors"));
    let built = registry::build(method, Some(config)).unwrap_or_else(|e| panic!("{method}: {e}"));
    let model = built.fit(&source, &task, &mut FitContext::new(dev.clone(), 3)).unwrap_or_else(|e| panic!("{method}: fit failed: {e}"));
    if write {
        std::fs::create_dir_all(dir).expect("fixture folder");
        model.save(&delta_path).expect("delta saved");
        let out = model.forward(&x).expect("forward");
        candle_core::safetensors::save(&std::collections::HashMap::from([("logits".to_string(), out)]), &logits_path).expect("logits saved");
        return;
    }
    let values = |t: &Tensor| -> Vec<f32> {
        t.flatten_all().and_then(|t| t.to_dtype(candle_core::DType::F32)).and_then(|t| t.to_vec1::<f32>()).expect("numeric tensor")
    };
    let within = |a: &[f32], b: &[f32], tol: f32| a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= tol * (1.0 + y.abs()));
    // Loading is one forward pass: only the kernels' rounding differs between CPUs.
    let close = |a: &[f32], b: &[f32]| within(a, b, 1e-4);
    // A refit trains for epochs through those kernels, which carries their rounding
    // differences along (seen: 1.1e-4 on a KSM scale between two CPUs' BLAS); a changed
    // equation moves values by far more.
    let refit_close = |a: &[f32], b: &[f32]| within(a, b, 1e-3);
    let saved = candle_core::safetensors::load(&logits_path, &dev).unwrap_or_else(|e| panic!("{}: {e}", logits_path.display()));
    let loaded = registry::load_task_model(&source, &delta_path, &dev).unwrap_or_else(|e| panic!("{method}: {} no longer loads: {e}", delta_path.display()));
    let out = loaded.forward(&x).expect("forward");
    assert!(close(&values(&out), &values(&saved["logits"])), "{method}: the saved delta {} gives other logits", delta_path.display());
    let stored = crate::method::Delta::load(&delta_path, &dev).expect("delta reads");
    let now = model.delta_tensors().expect("delta tensors");
    assert_eq!(now.keys().collect::<Vec<_>>(), stored.tensors.keys().collect::<Vec<_>>(), "{method}: stored tensor names changed");
    for (k, v) in &now {
        let old = &stored.tensors[k];
        assert_eq!((v.dtype(), v.dims()), (old.dtype(), old.dims()), "{method}: '{k}' changed dtype or shape");
        let (a, b) = (values(v), values(old));
        let same = if v.dtype() == candle_core::DType::U8 {
            a.iter().zip(&b).filter(|(x, y)| x == y).count() * 100 >= 99 * a.len()
        } else {
            refit_close(&a, &b)
        };
        let (worst, differing) = a.iter().zip(&b).fold((0f32, 0usize), |(w, n), (x, y)| ((x - y).abs().max(w), n + usize::from(x != y)));
        assert!(
            same,
            "{method}: fitting now stores another '{k}' than {} ({differing} of {} values differ, by up to {worst:e})",
            delta_path.display(),
            a.len()
        );
    }
}
