//! Folding a task model into one plain backbone: the source's architecture with some of its
//! parameters replaced and the task's head in place of the source's classifier. This is what
//! `graft export --merged` writes as a torchvision-layout state dict, for the methods whose
//! evaluation forward is exactly the source's forward with other parameter values (fine-tune,
//! feature extractor, linear probe, scratch, KSM, Piggyback).

use crate::backbone::{Act, Backbone, BackboneSpec, Unit, FEATURE_TAP};
use crate::error::{GraftError, Result};
use crate::params::ParamMap;
use candle_core::Tensor;

/// The name of the backbone's classifier when it is one linear layer right after
/// [`FEATURE_TAP`] (`fc` for ResNets, `classifier.1` for MobileNetV2, `classifier.6` for VGG,
/// whose `pool` tap is fc7's output); an error naming the architecture and what follows the
/// pooled features otherwise (no zoo family has such a head today; this guards new ones).
pub fn single_linear_classifier(backbone: &Backbone) -> Result<String> {
    let units = backbone.units();
    let start = units.iter().position(|u| u.tap == FEATURE_TAP).map_or(units.len(), |i| i + 1);
    let after = &units[start..];
    match after {
        [only] => match &only.unit {
            Unit::Linear { name, act: Act::None, .. } => Ok(name.clone()),
            _ => Err(not_mergeable(backbone, &format!("the unit after '{FEATURE_TAP}' is not a linear layer without activation"))),
        },
        _ => Err(not_mergeable(
            backbone,
            &format!("its classifier after '{FEATURE_TAP}' has {} layers, not one linear layer", after.len()),
        )),
    }
}

fn not_mergeable(backbone: &Backbone, why: &str) -> GraftError {
    GraftError::Incompatible(format!(
        "a task on {} cannot be merged into plain weights: {why} (the task's head reads the pooled features)",
        backbone.spec().id()
    ))
}

/// `base` with every parameter in `overrides` (by backbone name, same shape) replaced and its
/// classifier replaced by the task head `head_weight` `(classes, features)`, `head_bias`
/// `(classes,)`, which reads the features at [`FEATURE_TAP`]. The result's spec is `base`'s
/// with `num_classes = classes`; its [`Backbone::forward`] is the task model's evaluation
/// forward. An override of a classifier parameter, an unknown name or a wrong shape is an error.
pub fn merge_into_backbone(base: &Backbone, overrides: &ParamMap, head_weight: &Tensor, head_bias: &Tensor) -> Result<Backbone> {
    let classifier = single_linear_classifier(base)?;
    let (weight_key, bias_key) = (format!("{classifier}.weight"), format!("{classifier}.bias"));
    let features = base.feature_tap()?.channels;
    let classes = head_weight.dims().first().copied().unwrap_or(0);
    if head_weight.dims() != [classes, features] || head_bias.dims() != [classes] || classes == 0 {
        return Err(GraftError::Incompatible(format!(
            "the task head is {:?} + {:?}; expected ({{classes}}, {features}) + ({{classes}},) on the pooled features of {}",
            head_weight.dims(),
            head_bias.dims(),
            base.spec().id()
        )));
    }
    let mut params = base.params().clone();
    for (name, value) in overrides {
        let frozen = base
            .params()
            .get(name)
            .ok_or_else(|| GraftError::Incompatible(format!("replaced parameter '{name}' is not a parameter of {}", base.spec().id())))?;
        if *name == weight_key || *name == bias_key {
            return Err(not_mergeable(base, &format!("the task replaces the source classifier's '{name}' as well as adding a head")));
        }
        if frozen.dims() != value.dims() {
            return Err(GraftError::Incompatible(format!(
                "replaced parameter '{name}' has shape {:?}, the backbone's is {:?}",
                value.dims(),
                frozen.dims()
            )));
        }
        params.insert(name.clone(), value.to_dtype(candle_core::DType::F32)?);
    }
    params.insert(weight_key, head_weight.to_dtype(candle_core::DType::F32)?);
    params.insert(bias_key, head_bias.to_dtype(candle_core::DType::F32)?);
    let spec = BackboneSpec { num_classes: classes, ..base.spec().clone() };
    Backbone::from_params(spec, params, base.device())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::{Arch, InputSpec};
    use candle_core::{DType, Device};

    fn backbone(arch: &str) -> Backbone {
        let spec = BackboneSpec { arch: arch.parse::<Arch>().unwrap(), input: InputSpec::new(1, 32, 32), num_classes: 3 };
        Backbone::init(spec, 0, &Device::Cpu).unwrap()
    }

    fn zeros(shape: &[usize]) -> Tensor {
        Tensor::zeros(shape, DType::F32, &Device::Cpu).unwrap()
    }

    #[test]
    fn what_cannot_be_merged_is_named() {
        // VGG's `pool` tap is fc7's output, so its classifier is the last linear layer alone;
        // MobileNetV2's is `classifier.1` (dropout before it is the identity at evaluation).
        assert_eq!(single_linear_classifier(&backbone("vgg11-bn-d16-p1")).unwrap(), "classifier.6");
        assert_eq!(single_linear_classifier(&backbone("mobilenetv2-0.25")).unwrap(), "classifier.1");
        let r8 = backbone("resnet-cifar-8-w4");
        assert_eq!(single_linear_classifier(&r8).unwrap(), "fc");
        let d = r8.feature_tap().unwrap().channels;
        // A head of the wrong width, an unknown parameter, a wrong shape, the classifier itself.
        let err = merge_into_backbone(&r8, &ParamMap::new(), &zeros(&[5, d + 1]), &zeros(&[5])).err().unwrap().to_string();
        assert!(err.contains(&format!("expected ({{classes}}, {d})")), "{err}");
        let (w, b) = (zeros(&[5, d]), zeros(&[5]));
        for (name, shape, needle) in [
            ("no.such.weight", vec![2], "'no.such.weight' is not a parameter of resnet-cifar-8-w4".to_string()),
            ("conv1.weight", vec![1, 1, 3, 3], "'conv1.weight' has shape [1, 1, 3, 3]".to_string()),
            ("fc.weight", vec![3, d], "replaces the source classifier's 'fc.weight'".to_string()),
        ] {
            let overrides = ParamMap::from([(name.to_string(), zeros(&shape))]);
            let err = merge_into_backbone(&r8, &overrides, &w, &b).err().unwrap().to_string();
            assert!(err.contains(&needle), "{err}");
        }
        // A valid merge takes the task's classes.
        assert_eq!(merge_into_backbone(&r8, &ParamMap::new(), &w, &b).unwrap().spec().num_classes, 5);
    }
}
