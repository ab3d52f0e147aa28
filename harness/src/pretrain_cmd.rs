//! `graft pretrain`: trains a source backbone from scratch on a dataset task and saves it.

use crate::cli::{progress_enabled, PretrainArgs};
use crate::runner::human_count;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::{FitContext, Source, TrainConfig};
use graft_datasets::{DatasetName, TaskSpec};
use std::path::Path;

/// Parses `CxHxW` (e.g. `1x32x32`).
pub fn parse_input(s: &str) -> Result<(usize, usize, usize)> {
    let parts: Vec<&str> = s.split(['x', 'X']).collect();
    let dims: Option<Vec<usize>> = parts
        .iter()
        .map(|p| p.trim().parse::<usize>().ok().filter(|&d| d > 0))
        .collect();
    match dims.as_deref() {
        Some(&[c, h, w]) if parts.len() == 3 => Ok((c, h, w)),
        _ => bail!("--input '{s}': expected CxHxW with positive sizes, e.g. 1x32x32"),
    }
}

/// The architecture from `--arch` and its size flags (checked by the core's spec types).
pub fn parse_arch(name: &str, depth: Option<usize>, width: Option<usize>) -> Result<Arch> {
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), name.into());
    if let Some(d) = depth {
        obj.insert("depth".into(), d.into());
    }
    if let Some(w) = width {
        obj.insert("width".into(), w.into());
    }
    serde_json::from_value(serde_json::Value::Object(obj))
        .map_err(|e| anyhow::anyhow!("--arch {name}: {e} (resnet-cifar needs --depth and --width)"))
}

/// Runs `graft pretrain`.
pub fn run(args: &PretrainArgs, data_dir: &Path) -> Result<()> {
    let input = parse_input(&args.input)?;
    let arch = parse_arch(&args.arch, args.depth, args.width)?;
    let dataset: DatasetName = args
        .dataset
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--dataset: {e}"))?;
    let name = args.name.clone().unwrap_or_else(|| match &args.classes {
        Some(c) => format!(
            "{dataset}-c{}",
            c.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("-")
        ),
        None => dataset.to_string(),
    });
    let mut spec = TaskSpec::new(name, dataset);
    spec.classes = args.classes.clone();
    spec.max_train = args.max_train;
    spec.seed = args.seed;

    let mut cfg = TrainConfig::default();
    if let Some(e) = args.epochs {
        cfg.epochs = e;
    }
    if let Some(lr) = args.lr {
        cfg.lr = lr;
    }
    if let Some(b) = args.batch_size {
        cfg.batch_size = b;
    }
    cfg.validate().map_err(|m| anyhow::anyhow!("{m}"))?;

    let (c, h, w) = input;
    let backbone = BackboneSpec {
        arch,
        input: InputSpec::new(c, h, w),
        num_classes: spec.num_classes(),
    };
    backbone.validate().context("backbone")?;
    let task = spec
        .build(data_dir, input)
        .with_context(|| format!("building task '{}'", spec.name))?;
    eprintln!(
        "pretraining {} on {} ({} train / {} val / {} test images, {} epochs)",
        backbone.id(),
        task.name,
        task.train.len(),
        task.val.len(),
        task.test.len(),
        cfg.epochs
    );
    let device = Device::Cpu;
    let mut ctx = FitContext::new(device.clone(), args.seed);
    ctx.progress = progress_enabled(args.progress, args.no_progress);
    let (source, report) = graft_core::pretrain::pretrain(backbone, &task, &cfg, &mut ctx)?;
    source
        .save(&args.out)
        .with_context(|| format!("saving {}", args.out.display()))?;
    let saved = Source::load(&args.out, &device)
        .with_context(|| format!("reading back {}", args.out.display()))?;
    if saved.hash != source.hash {
        eprintln!(
            "warning: {}: the file's hash {} differs from the in-memory source's {} (the file's is the one task models record)",
            args.out.display(),
            saved.hash,
            source.hash
        );
    }
    println!("source      {}", args.out.display());
    println!("backbone    {}", source.backbone.spec().id());
    println!("task        {}", task.provenance);
    println!("test acc    {:.4}", source.provenance.test_accuracy);
    println!(
        "params      {} ({})",
        source.backbone.num_params(),
        human_count(source.backbone.num_params() as f64)
    );
    println!(
        "FLOPs/img   {} ({})",
        source.backbone.flops_per_image(),
        human_count(source.backbone.flops_per_image() as f64)
    );
    println!(
        "train time  {:.1} s ({} epochs)",
        report.seconds,
        report.epochs.len()
    );
    println!("sha256      {}", saved.hash);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_and_arch_parsing() {
        assert_eq!(parse_input("1x32x32").unwrap(), (1, 32, 32));
        assert!(parse_input("1x32").is_err());
        assert!(parse_input("0x8x8").is_err());
        assert_eq!(
            parse_arch("resnet-cifar", Some(20), Some(16)).unwrap(),
            Arch::ResnetCifar {
                depth: 20,
                width: 16
            }
        );
        let err = parse_arch("resnet-cifar", Some(20), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("width"), "{err}");
        assert!(parse_arch("vgg", None, None).is_err());
    }
}
