//! Adaptive attention on a frozen trunk: identity at initialisation, every zoo family, and the
//! errors of a bad tap or a damaged delta.

use candle_core::Device;
use graft_attention::{AdaptiveAttention, AttentionConfig, AttentionNet, AttentionModel, AttentionTaps, GatePlacement, Layout};
use graft_core::backbone::linear;
use graft_core::conformance::{tiny_source, tiny_task, zoo_cases};
use graft_core::kit::{HEAD_BIAS, HEAD_WEIGHT};
use graft_core::{Backbone, FitContext, Provenance, Source, TaskModel, Trainable};

fn bits(t: &candle_core::Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

/// Modules as initialised leave the trunk's logits bit-identical: the model's logits are the
/// frozen pooled features through the same head, for both placements, with spatial gates.
#[test]
fn fresh_modules_are_the_identity_bit_for_bit() {
    let source = tiny_source(4);
    let task = tiny_task(4);
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    let features = source.backbone.features(&x, "pool", 64).unwrap();
    for placement in [GatePlacement::Multiplicative, GatePlacement::Residual] {
        let config = AttentionConfig { placement, spatial: true, ..AttentionConfig::default() };
        let layout = Layout::new(&config, &source.backbone).unwrap();
        let net = AttentionNet::new(&source.backbone, &layout, task.num_classes, 9).unwrap();
        let state = net.state().unwrap();
        let expected = linear(&features, &state[HEAD_WEIGHT], &state[HEAD_BIAS]).unwrap();
        let model = AttentionModel::from_tensors(config, &source, state, task.num_classes).unwrap();
        assert_eq!(bits(&model.forward(&x).unwrap()), bits(&expected), "{placement:?}");
        assert_eq!(bits(&net.eval_logits(&x).unwrap()), bits(&expected), "{placement:?}: training net");
    }
}

/// Trained modules do change the logits.
#[test]
fn trained_modules_change_the_logits() {
    let source = tiny_source(4);
    let task = tiny_task(4);
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    let mut config = AttentionConfig { domain_bn: false, ..AttentionConfig::default() };
    config.train.epochs = 3;
    config.train.batch_size = 16;
    let model = AdaptiveAttention { config }.fit_model(&source, &task, &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let stored = model.delta_tensors().unwrap();
    let features = source.backbone.features(&x, "pool", 64).unwrap();
    let head_only = linear(&features, &stored[HEAD_WEIGHT], &stored[HEAD_BIAS]).unwrap();
    let diff: f32 = (model.forward(&x).unwrap() - head_only).unwrap().abs().unwrap().flatten_all().unwrap().max(0).unwrap().to_scalar().unwrap();
    assert!(diff > 1e-3, "the modules did nothing ({diff})");
}

#[test]
fn every_zoo_family_takes_attention() {
    let dev = Device::Cpu;
    let dir = tempfile::tempdir().unwrap();
    for (spec, task) in zoo_cases() {
        let bb = Backbone::init(spec.clone(), 2, &dev).unwrap();
        let source = Source::new(bb.clone(), Provenance::default()).unwrap();
        let taps = graft_attention::model::block_taps(&bb);
        assert!(!taps.is_empty(), "{}: no block taps", spec.id());
        let gates: usize = taps
            .iter()
            .map(|t| {
                let c = bb.tap(t).unwrap().channels;
                let h = c.div_ceil(4); // the default reduction r = 4
                2 * c * h + h + c
            })
            .sum();
        let bn: usize = bb.bn_names().iter().map(|n| 2 * bb.param(&format!("{n}.weight")).unwrap().elem_count()).sum();
        let head = (bb.tap("pool").unwrap().channels + 1) * task.num_classes;
        let mut config = AttentionConfig::default();
        config.train.epochs = 1;
        config.train.batch_size = 16;
        let model = AdaptiveAttention { config }
            .fit_model(&source, &task, &mut FitContext::new(dev.clone(), 3))
            .unwrap_or_else(|e| panic!("{}: {e}", spec.id()));
        let fp = model.footprint();
        assert_eq!(fp.trainable_params, gates + bn + head, "{}", spec.id());
        assert_eq!(fp.stored_bytes, model.delta().unwrap().tensor_bytes(), "{}", spec.id());
        let x = task.test.images_tensor(&dev).unwrap();
        let path = dir.path().join(format!("{}.safetensors", spec.id()));
        model.save(&path).unwrap();
        let loaded = graft_core::registry::load_task_model(&source, &path, &dev).unwrap();
        assert_eq!(bits(&model.forward(&x).unwrap()), bits(&loaded.forward(&x).unwrap()), "{}", spec.id());
    }
}

#[test]
fn a_tap_that_is_not_a_feature_map_is_refused_with_the_block_taps() {
    let source = tiny_source(1);
    for bad in ["pool", "logits", "stage9.block0"] {
        let config = AttentionConfig { taps: AttentionTaps::Only(vec![bad.into()]), ..AttentionConfig::default() };
        let err = Layout::new(&config, &source.backbone).unwrap_err().to_string();
        assert!(err.contains(&format!("'{bad}'")) && err.contains("stage1.block0, stage2.block0, stage3.block0"), "{err}");
    }
    // The stem is a feature map before the pooled features: accepted.
    let config = AttentionConfig { taps: AttentionTaps::Only(vec!["stem".into()]), ..AttentionConfig::default() };
    assert_eq!(Layout::new(&config, &source.backbone).unwrap().gates[0].0.name, "stem");
}

#[test]
fn a_damaged_delta_names_the_tensor() {
    let source = tiny_source(1);
    let task = tiny_task(1);
    let mut config = AttentionConfig::default();
    config.train.epochs = 1;
    let model = AdaptiveAttention { config: config.clone() }.fit_model(&source, &task, &mut FitContext::new(Device::Cpu, 1)).unwrap();
    let mut tensors = model.delta_tensors().unwrap();
    let key = "adaptive-attention.stage2.block0.fc1.weight".to_string();
    tensors.insert(key.clone(), candle_core::Tensor::zeros((1, 4), candle_core::DType::F32, &Device::Cpu).unwrap());
    let err = AttentionModel::from_tensors(config.clone(), &source, tensors.clone(), 3).err().unwrap().to_string();
    // stage 2 of the tiny net has 8 channels: h = ceil(8 / 4) = 2 at the default r = 4.
    assert!(err.contains(&key) && err.contains("[2, 8]"), "{err}");
    tensors.remove(&key);
    let err = AttentionModel::from_tensors(config, &source, tensors, 3).err().unwrap().to_string();
    assert!(err.contains("missing tensor") && err.contains(&key), "{err}");
}
