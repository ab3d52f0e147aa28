//! The baselines on a source of every architecture family (wrn, torchvision resnet 18/50,
//! mobilenetv2, vgg): they fit, train exactly the documented parameters (the source head is
//! `fc`, `classifier.1` or `classifier.6` depending on the family), and save→load keeps the
//! logits.

use candle_core::Device;
use graft_core::backbone::is_bn_buffer;
use graft_core::conformance::zoo_cases;
use graft_core::{Backbone, FitContext, Provenance, Source};
use serde_json::json;
use std::collections::BTreeSet;

use graft_baselines as _;

fn scalars(bb: &Backbone, names: &BTreeSet<String>) -> usize {
    names.iter().filter(|n| !is_bn_buffer(n)).map(|n| bb.param(n).unwrap().elem_count()).sum()
}

#[test]
fn baselines_fit_every_architecture_and_train_what_they_document() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    for (spec, task) in zoo_cases() {
        let bb = Backbone::init(spec.clone(), 2, &dev).unwrap();
        let source = Source::new(bb.clone(), Provenance::default()).unwrap();
        let all: BTreeSet<String> = bb.params().keys().cloned().collect();
        let head_names: BTreeSet<String> = bb.head_params().into_iter().collect();
        let pool = bb.tap("pool").unwrap().channels;
        let new_head = (pool + 1) * task.num_classes;
        let body: BTreeSet<String> = all.difference(&head_names).cloned().collect();
        let boundary = bb.last_stage_input_tap();
        let (start, end) = (bb.tap_index(&boundary).unwrap() + 1, bb.tap_index("pool").unwrap());
        let last_stage: BTreeSet<String> =
            bb.units()[start..end].iter().flat_map(|u| u.unit.param_shapes()).map(|(n, _)| n).collect();
        assert!(!last_stage.is_empty(), "{}: empty last stage after '{boundary}'", spec.id());
        for (method, expected) in [
            ("linear-probe", new_head),
            ("feature-extractor", scalars(&bb, &last_stage) + new_head),
            ("fine-tune", scalars(&bb, &body) + new_head),
            ("scratch", scalars(&bb, &body) + new_head),
        ] {
            let m = graft_core::registry::build(method, Some(&json!({ "train": { "epochs": 1, "batch_size": 16 } }))).unwrap();
            let model = m.fit(&source, &task, &mut FitContext::new(dev.clone(), 3)).unwrap_or_else(|e| panic!("{}: {method}: {e}", spec.id()));
            assert_eq!(model.footprint().trainable_params, expected, "{}: {method}", spec.id());
            let x = task.test.images_tensor(&dev).unwrap();
            let y = model.forward(&x).unwrap();
            assert_eq!(y.dims(), &[task.test.len(), task.num_classes]);
            let path = dir.path().join(format!("{}-{method}.safetensors", spec.id()));
            model.save(&path).unwrap();
            let back = graft_core::registry::load_task_model(&source, &path, &dev).unwrap();
            let diff = (back.forward(&x).unwrap() - &y).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "{}: {method}: save→load changed the logits", spec.id());
        }
    }
}
