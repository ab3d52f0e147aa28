//! The parameter budget that sets attention's defaults: on the residual adapters' reference net
//! (a ResNet-26 of three stages of 4 basic blocks at 64/128/256 channels; graft's resnet-cifar-26
//! at width 64, whose stem has 64 channels where theirs has 32), 10 classes, 3x32x32 input, the
//! counts worked out by hand, and attention's ratio to the adapters.

use candle_core::Device;
use graft_adapters::{AdapterConfig, Placement};
use graft_attention::{AttentionConfig, Layout};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::Backbone;

/// γ, β of the BNs: 64 (stem) + 8·64 + (8·128 + 128) + (8·256 + 256) = 4,032 channels.
const DOMAIN_BN: usize = 2 * 4032;
/// (256 + 1) × 10.
const HEAD: usize = 2570;
/// Series adapters on the 25 3x3 convs, `C_out² + 2·C_out` each: stem 4,224; stage 1 8·4,224;
/// stage 2 8·16,640; stage 3 8·66,048.
const SERIES: usize = 4224 + 8 * 4224 + 8 * 16640 + 8 * 66048;
/// Parallel adapters, `C_out·C_in`: stem 64·3; stage 1 8·64²; stage 2 128·64 + 7·128²; stage 3
/// 256·128 + 7·256².
const PARALLEL: usize = 64 * 3 + 8 * 4096 + (8192 + 7 * 16384) + (32768 + 7 * 65536);
/// Channel gates at r = 16 after the 12 blocks, `2·C·h + h + C`: 4·580 + 4·2,184 + 4·8,464.
const ATTENTION: usize = 4 * 580 + 4 * 2184 + 4 * 8464;
/// The same at the default r = 4 (h = 16, 32, 64): 4·2,128 + 4·8,352 + 4·33,088 = 174,272.
const ATTENTION_R4: usize = 4 * 2128 + 4 * 8352 + 4 * 33088;

#[test]
fn attention_at_r16_trains_about_ten_times_fewer_parameters_than_adapters_on_the_reference_net_and_at_r4_about_four() {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 26, width: 64 }, input: InputSpec::new(3, 32, 32), num_classes: 10 };
    let bb = Backbone::init(spec, 0, &Device::Cpu).unwrap();
    let r16 = AttentionConfig { reduction: 16, ..AttentionConfig::default() };
    let attention = Layout::new(&r16, &bb).unwrap().trainable_params(10);
    let series = graft_adapters::Layout::new(&AdapterConfig::default(), Placement::Series, &bb).unwrap().trainable_params(10);
    let parallel = graft_adapters::Layout::new(&AdapterConfig::default(), Placement::Parallel, &bb).unwrap().trainable_params(10);
    assert_eq!(attention, ATTENTION + DOMAIN_BN + HEAD);
    assert_eq!(series, SERIES + DOMAIN_BN + HEAD);
    assert_eq!(parallel, PARALLEL + DOMAIN_BN + HEAD);
    // 55,546 vs 710,154 and 657,994: 12.8x and 11.8x fewer (15.6x and 14.4x for the modules alone).
    assert!(series >= 10 * attention && parallel >= 10 * attention, "attention {attention}, series {series}, parallel {parallel}");
    // The registered default, r = 4 (chosen on validation accuracy by the protocol run), trains
    // 184,906: 3.8x and 3.6x fewer than the adapters.
    let default = Layout::new(&AttentionConfig::default(), &bb).unwrap().trainable_params(10);
    assert_eq!(default, ATTENTION_R4 + DOMAIN_BN + HEAD);
    assert_eq!(ATTENTION_R4, 174_272);
    assert!(10 * series >= 38 * default && 10 * parallel >= 35 * default, "default {default}");
}
