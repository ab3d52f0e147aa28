//! `graft backbones`: every architecture family with example specs, parameter counts, FLOPs per
//! image and taps; or one architecture with its full structural description.

use crate::cli::BackbonesArgs;
use crate::pretrain_cmd::{parse_arch, parse_input};
use crate::report::human_count;
use anyhow::{Context, Result};
use graft_core::backbone::{count_flops, count_params, Arch, BackboneSpec, InputSpec, Layer, UnitDef};
use graft_core::Backbone;

/// One family: its name, what it is, its parameter layout, and example ids with their usual
/// input side and classes.
struct Family {
    name: &'static str,
    about: &'static str,
    keys: &'static str,
    examples: &'static [&'static str],
    imagenet: bool,
}

const FAMILIES: [Family; 5] = [
    Family {
        name: "resnet-cifar",
        about: "CIFAR-style ResNet (He et al. 2016 §4.2): 3 stages of (depth-2)/6 basic blocks, width w, 2w, 4w",
        keys: "conv1, bn1, layer{1-3}.{b}.conv{1,2}/bn{1,2}, layer{s}.0.downsample.{0,1}, fc",
        examples: &["resnet-cifar-20-w16", "resnet-cifar-56-w16"],
        imagenet: false,
    },
    Family {
        name: "wrn",
        about: "wide ResNet WRN-d-k (Zagoruyko & Komodakis 2016): pre-activation blocks, widths 16k, 32k, 64k",
        keys: "conv1, block{1-3}.layer.{b}.bn1/conv1/bn2/conv2/convShortcut, bn1, fc",
        examples: &["wrn-16-1", "wrn-16-4", "wrn-40-4", "wrn-28-10"],
        imagenet: false,
    },
    Family {
        name: "resnet",
        about: "ImageNet ResNet in torchvision's layout (v1.5): 7x7/2 stem, 3x3/2 max pool, 4 stages",
        keys: "conv1, bn1, layer{1-4}.{b}.conv{1,2,3}/bn{1,2,3}, layer{s}.0.downsample.{0,1}, fc (torchvision)",
        examples: &["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
        imagenet: true,
    },
    Family {
        name: "mobilenetv2",
        about: "MobileNetV2 (Sandler et al. 2018) in torchvision's layout, with its width multiplier",
        keys: "features.0.{0,1}, features.{1-17}.conv.{..}, features.18.{0,1}, classifier.1 (torchvision)",
        examples: &["mobilenetv2-1.0", "mobilenetv2-0.5"],
        imagenet: true,
    },
    Family {
        name: "vgg",
        about: "VGG with BatchNorm (torchvision's vgg*_bn); -dN divides widths, -pN sets the adaptive pool",
        keys: "features.{i} (conv, bn, relu, pool indices), classifier.{0,3,6} (torchvision)",
        examples: &["vgg11-bn", "vgg16-bn", "vgg11-bn-d16-p1"],
        imagenet: true,
    },
];

/// The spec for an example or a requested architecture.
fn spec_for(arch: Arch, imagenet: bool, args: &BackbonesArgs) -> Result<BackboneSpec> {
    let cifar_vgg = matches!(arch, Arch::Vgg { pool: 1, .. });
    let (c, h, w) = match &args.input {
        Some(s) => parse_input(s)?,
        None if imagenet && !cifar_vgg => (3, 224, 224),
        None => (3, 32, 32),
    };
    let classes = args.classes.unwrap_or(if imagenet && !cifar_vgg { 1000 } else { 10 });
    Ok(BackboneSpec { arch, input: InputSpec::new(c, h, w), num_classes: classes })
}

fn shape(u: &UnitDef) -> String {
    if u.unit.is_flat() {
        format!("{}", u.channels)
    } else {
        format!("{}x{}x{}", u.channels, u.hw.0, u.hw.1)
    }
}

fn summary_line(spec: &BackboneSpec, layers: &[Layer]) -> String {
    let i = &spec.input;
    let params = count_params(layers);
    let flops = count_flops(layers);
    format!(
        "{:<20} {}x{}x{} → {:<5} {:>12} params ({:>7})  {:>15} FLOPs/image ({:>7})",
        spec.id(),
        i.channels,
        i.height,
        i.width,
        spec.num_classes,
        params,
        human_count(params as f64),
        flops,
        human_count(flops as f64)
    )
}

/// Taps on wrapped lines: consecutive blocks of a stage with the same shape are folded
/// (`stage1.block0..2 256x56x56`).
fn taps_text(units: &[UnitDef]) -> String {
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < units.len() {
        let u = &units[i];
        let (stage, block) = match u.tap.split_once(".block") {
            Some((s, b)) if b.parse::<usize>().is_ok() => (s.to_string(), b.parse::<usize>().unwrap_or(0)),
            _ => (String::new(), 0),
        };
        let mut j = i;
        if !stage.is_empty() {
            while j + 1 < units.len()
                && units[j + 1].tap.starts_with(&format!("{stage}.block"))
                && shape(&units[j + 1]) == shape(u)
            {
                j += 1;
            }
        }
        if j > i {
            items.push(format!("{stage}.block{block}..{} {}", block + (j - i), shape(u)));
        } else {
            items.push(format!("{} {}", u.tap, shape(u)));
        }
        i = j + 1;
    }
    let mut out = String::new();
    let mut line = String::from("    taps:");
    for it in items {
        if line.len() + it.len() + 3 > 100 {
            out.push_str(&line);
            out.push('\n');
            line = String::from("         ");
        }
        line.push(' ');
        line.push_str(&it);
        line.push_str(" ·");
    }
    out.push_str(line.trim_end_matches(" ·"));
    out.push('\n');
    out
}

/// Renders the listing of every family (or one architecture with its layers).
pub fn render(args: &BackbonesArgs) -> Result<String> {
    if let Some(a) = &args.arch {
        return render_one(parse_arch(a, &args.flags)?, args);
    }
    let mut out = String::from(
        "Backbones (FLOPs = 2 × multiply-accumulates of conv and linear layers, per image; params exclude BN running statistics)\n",
    );
    for f in &FAMILIES {
        out.push_str(&format!("\n{}: {}\n  keys: {}\n", f.name, f.about, f.keys));
        for (k, ex) in f.examples.iter().enumerate() {
            let arch: Arch = ex.parse().with_context(|| format!("example {ex}"))?;
            let spec = spec_for(arch, f.imagenet, args)?;
            match Backbone::describe(&spec) {
                Ok((units, layers)) => {
                    out.push_str(&format!("  {}\n", summary_line(&spec, &layers)));
                    if k == 0 {
                        out.push_str(&taps_text(&units));
                        out.push_str(&format!("    spec: {}\n", serde_json::to_string(&spec.arch)?));
                    }
                }
                Err(e) => out.push_str(&format!("  {:<20} {e}\n", spec.id())),
            }
        }
    }
    out.push_str("\n`graft backbones --arch <id>` prints one architecture's layers; `graft pretrain --arch <id>` trains it.\n");
    Ok(out)
}

fn render_one(arch: Arch, args: &BackbonesArgs) -> Result<String> {
    let imagenet = matches!(arch, Arch::Resnet { .. } | Arch::Mobilenetv2 { .. } | Arch::Vgg { .. });
    let spec = spec_for(arch, imagenet, args)?;
    let (units, layers) = Backbone::describe(&spec)?;
    let mut out = format!("{}\n  spec: {}\n", summary_line(&spec, &layers), serde_json::to_string(&spec)?);
    out.push_str(&taps_text(&units));
    out.push_str("  layers (index, name, kind, inputs, output shape, FLOPs):\n");
    for (i, l) in layers.iter().enumerate() {
        let shape: Vec<String> = l.output_shape.iter().map(usize::to_string).collect();
        let inputs: Vec<String> = l.inputs.iter().map(usize::to_string).collect();
        out.push_str(&format!(
            "  {i:>4} {:<34} {:<16} [{}] {} {}\n",
            l.name,
            l.kind.name(),
            inputs.join(","),
            shape.join("x"),
            if l.flops > 0 { l.flops.to_string() } else { String::new() }
        ));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ArchFlags;

    fn args() -> BackbonesArgs {
        BackbonesArgs { arch: None, flags: ArchFlags::default(), input: None, classes: None }
    }

    #[test]
    fn lists_every_family_with_torchvision_sizes() {
        let out = render(&args()).unwrap();
        for f in ["resnet-cifar:", "wrn:", "resnet:", "mobilenetv2:", "vgg:"] {
            assert!(out.contains(f), "{f} missing:\n{out}");
        }
        // torchvision's published parameter counts at 1000 classes.
        for n in ["11689512", "25557032", "3504872", "132868840"] {
            assert!(out.contains(n), "{n} missing:\n{out}");
        }
        assert!(out.contains("stem.maxpool 64x56x56"), "{out}");
    }

    #[test]
    fn one_architecture_prints_its_layers_and_merges() {
        let a = BackbonesArgs { arch: Some("wrn-10-1".into()), input: Some("1x8x8".into()), ..args() };
        let out = render(&a).unwrap();
        assert!(out.contains("77562"), "{out}");
        assert!(out.contains("block2.layer.0.convShortcut") && out.contains(" add "), "{out}");
        let bad = BackbonesArgs { arch: Some("vgg11-bn".into()), input: Some("3x16x16".into()), ..args() };
        assert!(render(&bad).unwrap_err().to_string().contains("too small"));
    }
}
