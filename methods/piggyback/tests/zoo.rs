//! Piggyback on a source of every architecture family (pre-activation wrn, whose shortcut convs have no
//! BN; torchvision resnet 18/50; mobilenetv2 with depthwise convs; vgg): it fits, trains exactly
//! the documented parameters, stores the documented bytes, and save→load keeps the logits.

use candle_core::Device;
use graft_core::conformance::zoo_cases;
use graft_core::{Backbone, FitContext, Provenance, Source, TaskModel};
use graft_piggyback::{Piggyback, PiggybackConfig};

#[test]
fn piggyback_fits_every_architecture_and_trains_what_it_documents() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    for (spec, task) in zoo_cases() {
        let bb = Backbone::init(spec.clone(), 2, &dev).unwrap();
        let source = Source::new(bb.clone(), Provenance::default()).unwrap();
        let weights: usize = bb.convs().iter().map(|c| c.conv.weight_shape().iter().product::<usize>()).sum();
        let bn: usize = bb.bn_names().iter().map(|n| 2 * bb.param(&format!("{n}.weight")).unwrap().elem_count()).sum();
        let head = (bb.tap("pool").unwrap().channels + 1) * task.num_classes;
        for tune_bn in [false, true] {
            let mut config = PiggybackConfig { tune_bn, ..PiggybackConfig::default() };
            config.train.epochs = 1;
            config.train.batch_size = 16;
            let model = Piggyback { config }.fit_model(&source, &task, &mut FitContext::new(dev.clone(), 3)).unwrap_or_else(|e| panic!("{}: {e}", spec.id()));
            let fp = model.footprint();
            assert_eq!(fp.trainable_params, weights + if tune_bn { bn } else { 0 } + head, "{} tune_bn {tune_bn}", spec.id());
            assert_eq!(fp.stored_bytes, model.delta().unwrap().tensor_bytes(), "{}", spec.id());
            assert_eq!(fp.stored_bytes, model.layout().stored_bytes(task.num_classes), "{}", spec.id());
            let x = task.test.images_tensor(&dev).unwrap();
            let y = model.forward(&x).unwrap();
            let path = dir.path().join(format!("{}-{tune_bn}.safetensors", spec.id()));
            model.save(&path).unwrap();
            let back = graft_core::registry::load_task_model(&source, &path, &dev).unwrap();
            let diff = (back.forward(&x).unwrap() - &y).unwrap().abs().unwrap().sum_all().unwrap().to_scalar::<f32>().unwrap();
            assert_eq!(diff, 0.0, "{}: save→load changed the logits", spec.id());
            eprintln!("{} tune_bn {tune_bn}: {:.1}% of a fine-tuned copy", spec.id(), 100.0 * model.fraction_of_fine_tune());
        }
    }
}
