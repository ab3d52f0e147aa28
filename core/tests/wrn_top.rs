//! `wrn-top`: the top of a Wide ResNet (fractional widths allowed) whose input is another
//! network's tap.

use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::init::SeededRng;
use graft_core::{Backbone, NoHooks};

fn top_spec(widen: f64, in_channels: usize, hw: usize, classes: usize) -> BackboneSpec {
    let mut input = InputSpec::new(in_channels, hw, hw);
    input.mean = vec![0.0; in_channels];
    input.std = vec![1.0; in_channels];
    BackboneSpec { arch: Arch::WrnTop { depth: 16, widen, from_stage: 3 }, input, num_classes: classes }
}

#[test]
fn the_top_of_a_wrn_on_its_own_tap_equals_running_the_wrn_from_that_tap() {
    let dev = Device::Cpu;
    let full_spec = BackboneSpec { arch: Arch::Wrn { depth: 16, widen: 1 }, input: InputSpec::new(1, 16, 16), num_classes: 5 };
    let full = Backbone::init(full_spec, 3, &dev).unwrap();
    let tap = full.tap("stage2.block1").unwrap();
    let spec = top_spec(1.0, tap.channels, tap.hw.0, 5);
    // Same parameter names: the top takes the full network's stage-3 and head parameters.
    let top_shapes = Backbone::init(spec.clone(), 0, &dev).unwrap();
    let params = top_shapes.params().keys().map(|k| (k.clone(), full.param(k).unwrap().clone())).collect();
    let top = Backbone::from_params(spec, params, &dev).unwrap();
    let x = SeededRng::new(1).uniform((4, 1, 16, 16), 0.0, 1.0, &dev).unwrap();
    let mid = full.run(&x, None, "stage2.block1", &[], &NoHooks).unwrap().output;
    let upper = full.run(&mid, Some("stage2.block1"), "logits", &[], &NoHooks).unwrap().output;
    let bits = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&top.forward(&mid).unwrap()), bits(&upper));
    assert_eq!(bits(&full.forward(&x).unwrap()), bits(&upper));
    // FLOPs of the top are those of the full network after the tap.
    assert_eq!(top.flops_per_image(), full.flops_between(Some("stage2.block1"), "logits").unwrap());
}

#[test]
fn fractional_widths_shape_the_top() {
    let dev = Device::Cpu;
    // A quarter of WRN-16-1's last stage (64 channels) reading a 32-channel 16x16 map.
    let top = Backbone::init(top_spec(0.25, 32, 16, 3), 0, &dev).unwrap();
    let taps: Vec<(String, usize, (usize, usize))> = top.taps().into_iter().map(|t| (t.name, t.channels, t.hw)).collect();
    assert_eq!(
        taps,
        vec![
            ("stage3.block0".to_string(), 16, (8, 8)),
            ("stage3.block1".to_string(), 16, (8, 8)),
            ("norm".to_string(), 16, (8, 8)),
            ("pool".to_string(), 16, (1, 1)),
            ("logits".to_string(), 3, (1, 1)),
        ]
    );
    assert_eq!(top.param("block3.layer.0.conv1.weight").unwrap().dims(), [16, 32, 3, 3]);
    assert_eq!(top.param("block3.layer.0.convShortcut.weight").unwrap().dims(), [16, 32, 1, 1]);
    // Hand count: conv1 16·32·9, shortcut 16·32, conv2 and block-1 convs 3·16·16·9, BNs 5·2·16
    // (block0 bn1 reads 32 channels: 2·32 + 4·2·16), fc 16·3 + 3.
    let expected = 16 * 32 * 9 + 16 * 32 + 3 * 16 * 16 * 9 + (2 * 32 + 4 * 2 * 16) + 16 * 3 + 3;
    assert_eq!(top.num_params(), expected);
    // The id names the fraction and parses back; integer WRN ids are unchanged.
    let arch = &top.spec().arch;
    assert_eq!(arch.id(), "wrn-16-0.25-from-stage3");
    assert_eq!(arch.id().parse::<Arch>().unwrap(), *arch);
    assert_eq!("wrn-16-4".parse::<Arch>().unwrap(), Arch::Wrn { depth: 16, widen: 4 });
    for (bad, want) in [("wrn-16-0-from-stage3", "widen"), ("wrn-16-1-from-stage4", "from_stage"), ("wrn-12-1-from-stage3", "6n+4")] {
        let err = bad.parse::<Arch>().unwrap_err().to_string();
        assert!(err.contains(want), "{bad}: {err}");
    }
}
