//! `graft pretrain`: trains a source backbone from scratch on a dataset task and saves it.

use crate::cli::{progress_enabled, ArchFlags, PretrainArgs};
use crate::report::human_count;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::{FitContext, Source, TrainConfig};
use graft_datasets::{DatasetName, DatasetRef, FolderRef, TaskSpec};
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

/// The families, the flags each takes (required ones first) and an example.
const FAMILIES: [(&str, &[&str], &str); 5] = [
    ("resnet-cifar", &["--depth", "--width"], "--arch resnet-cifar --depth 20 --width 16"),
    ("wrn", &["--depth", "--widen"], "--arch wrn --depth 16 --widen 4"),
    ("resnet", &["--depth", "--width"], "--arch resnet --depth 50 (or --arch resnet50)"),
    ("mobilenetv2", &["--width-mult"], "--arch mobilenetv2 --width-mult 0.5"),
    ("vgg", &["--config", "--width-div", "--pool"], "--arch vgg --config vgg11 --width-div 16 --pool 1"),
];

/// The architecture from `--arch` and its size flags: a family name with flags, an id such as
/// `resnet18` or `wrn-16-4`, or a JSON object (checked by the core's spec types).
pub fn parse_arch(name: &str, f: &ArchFlags) -> Result<Arch> {
    let given: Vec<(&str, Option<serde_json::Value>)> = vec![
        ("--depth", f.depth.map(Into::into)),
        ("--width", f.width.map(Into::into)),
        ("--widen", f.widen.map(Into::into)),
        ("--width-mult", f.width_mult.map(Into::into)),
        ("--config", f.config.clone().map(Into::into)),
        ("--width-div", f.width_div.map(Into::into)),
        ("--pool", f.pool.map(Into::into)),
    ];
    let any_flag = given.iter().any(|(_, v)| v.is_some());
    let name = name.trim();
    if name.starts_with('{') {
        if any_flag {
            bail!("--arch with a JSON object takes no size flags");
        }
        let arch: Arch = serde_json::from_str(name).map_err(|e| anyhow::anyhow!("--arch {name}: {e}"))?;
        arch.validate().context("--arch")?;
        return Ok(arch);
    }
    let Some((family, allowed, example)) = FAMILIES.iter().find(|(n, _, _)| *n == name) else {
        if any_flag {
            bail!(
                "--arch {name}: size flags need a family name ({}); an id such as resnet18 carries its sizes",
                FAMILIES.map(|f| f.0).join(", ")
            );
        }
        return name.parse::<Arch>().map_err(|e| {
            anyhow::anyhow!("--arch {name}: {e}; families: {} (see `graft backbones`)", FAMILIES.map(|f| f.0).join(", "))
        });
    };
    let mut obj = serde_json::Map::new();
    obj.insert("name".into(), (*family).into());
    for (flag, value) in given {
        let Some(v) = value else { continue };
        if !allowed.contains(&flag) {
            bail!("--arch {family} takes {}, not {flag} (e.g. {example})", allowed.join(", "));
        }
        obj.insert(flag.trim_start_matches("--").replace('-', "_"), v);
    }
    let arch: Arch = serde_json::from_value(serde_json::Value::Object(obj)).map_err(|e| {
        anyhow::anyhow!("--arch {family}: {} (it takes {}; e.g. {example})", flagify(&e.to_string()), allowed.join(", "))
    })?;
    arch.validate().with_context(|| format!("--arch {family}"))?;
    Ok(arch)
}

/// Serde's field names as the command line's flags (`width_mult` → `--width-mult`).
fn flagify(msg: &str) -> String {
    let mut out = msg.to_string();
    for field in ["depth", "width_mult", "width_div", "widen", "width", "config", "pool"] {
        out = out.replace(&format!("`{field}`"), &format!("--{}", field.replace('_', "-")));
    }
    out
}

/// `--dataset`: a built-in dataset's name, or an existing folder of images.
fn parse_dataset(arg: &str) -> Result<DatasetRef> {
    match arg.parse::<DatasetName>() {
        Ok(name) => Ok(DatasetRef::Named(name)),
        Err(_) if Path::new(arg).is_dir() => Ok(DatasetRef::Folder(FolderRef { folder: arg.into(), channels: None })),
        Err(e) => bail!("--dataset: {e}, or the path of a folder of images (DIR/<class>/*.png)"),
    }
}

/// Runs `graft pretrain`.
pub fn run(args: &PretrainArgs, data_dir: &Path) -> Result<()> {
    let input = parse_input(&args.input)?;
    let arch = parse_arch(&args.arch, &args.flags)?;
    let dataset = parse_dataset(&args.dataset)?;
    let name = args.name.clone().unwrap_or_else(|| match &args.classes {
        Some(c) => format!(
            "{dataset}-c{}",
            c.iter()
                .map(|c| c.to_string())
                .collect::<Vec<_>>()
                .join("-")
        ),
        None => match &dataset {
            DatasetRef::Folder(f) => f.folder.file_name().map_or("folder".into(), |n| n.to_string_lossy().into_owned()),
            other => other.to_string(),
        },
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
        num_classes: spec.num_classes().with_context(|| format!("--dataset {}", args.dataset))?,
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
        let flags = |depth, width| ArchFlags { depth, width, ..Default::default() };
        assert_eq!(
            parse_arch("resnet-cifar", &flags(Some(20), Some(16))).unwrap(),
            Arch::ResnetCifar { depth: 20, width: 16 }
        );
        let err = parse_arch("resnet-cifar", &flags(Some(20), None)).unwrap_err().to_string();
        assert!(err.contains("--width"), "{err}");
        let err = parse_arch("vgg", &ArchFlags::default()).unwrap_err().to_string();
        assert!(err.contains("--config"), "{err}");
    }

    #[test]
    fn every_family_parses_from_flags_ids_and_json() {
        use graft_core::backbone::VggConfig;
        let wrn = Arch::Wrn { depth: 16, widen: 4 };
        let f = ArchFlags { depth: Some(16), widen: Some(4), ..Default::default() };
        assert_eq!(parse_arch("wrn", &f).unwrap(), wrn);
        assert_eq!(parse_arch("wrn-16-4", &ArchFlags::default()).unwrap(), wrn);
        assert_eq!(parse_arch(r#"{"name": "wrn", "depth": 16, "widen": 4}"#, &ArchFlags::default()).unwrap(), wrn);
        let f = ArchFlags { depth: Some(50), ..Default::default() };
        assert_eq!(parse_arch("resnet", &f).unwrap(), Arch::Resnet { depth: 50, width: 64 });
        assert_eq!(parse_arch("resnet18-w8", &ArchFlags::default()).unwrap(), Arch::Resnet { depth: 18, width: 8 });
        let f = ArchFlags { width_mult: Some(0.5), ..Default::default() };
        assert_eq!(parse_arch("mobilenetv2", &f).unwrap(), Arch::Mobilenetv2 { width_mult: 0.5 });
        let f = ArchFlags { config: Some("vgg13".into()), width_div: Some(8), ..Default::default() };
        assert_eq!(parse_arch("vgg", &f).unwrap(), Arch::Vgg { config: VggConfig::Vgg13, width_div: 8, pool: 7 });
        // Clear errors.
        let e = parse_arch("resnet", &ArchFlags { depth: Some(18), widen: Some(2), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("not --widen") && e.contains("--depth, --width"), "{e}");
        let e = format!("{:#}", parse_arch("resnet", &ArchFlags { depth: Some(20), ..Default::default() }).unwrap_err());
        assert!(e.contains("18, 34, 50"), "{e}");
        let e = parse_arch("alexnet", &ArchFlags::default()).unwrap_err().to_string();
        assert!(e.contains("families: resnet-cifar, wrn, resnet, mobilenetv2, vgg"), "{e}");
        let e = parse_arch("resnet18", &ArchFlags { depth: Some(18), ..Default::default() }).unwrap_err().to_string();
        assert!(e.contains("family name"), "{e}");
        let e = parse_arch("mobilenetv2", &ArchFlags::default()).unwrap_err().to_string();
        assert!(e.contains("--width-mult"), "{e}");
    }
}
