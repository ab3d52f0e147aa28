//! `graft import` and `graft export`: PyTorch state dicts in and out.

use crate::cli::{ExportArgs, ImportArgs};
use crate::pretrain_cmd::parse_input;
use crate::open_task::open_task_model;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::method::KEY_TASK;
use graft_core::import::source_from_checkpoint;
use graft_core::init::SeededRng;
use graft_core::torch_io::{export_state_dict, export_state_dict_with, ImportOptions};
use graft_core::Source;
use std::collections::BTreeMap;

/// Runs `graft import`: the state dict imported into the architecture, saved as a graft source.
pub fn import(args: &ImportArgs) -> Result<()> {
    let arch: Arch = args.arch.parse().with_context(|| "--arch")?;
    let (c, h, w) = parse_input(&args.input)?;
    let input = InputSpec::imported(c, h, w, args.mean.as_deref(), args.std.as_deref())
        .map_err(|(key, problem)| anyhow::anyhow!("--{key} {problem}"))?;
    let spec = BackboneSpec { arch, input, num_classes: args.num_classes.unwrap_or(0) };
    let opts = ImportOptions { strict: !args.non_strict, strip_prefix: args.strip_prefix.clone(), seed: 0 };
    let imported = source_from_checkpoint(&args.state_dict, &spec, &opts, &Device::Cpu)?;
    if let Some(report) = &imported.report {
        println!("{report}");
    }
    let source = imported.source;
    source.save(&args.out)?;
    println!(
        "source {} ({} classes, input {}x{}x{}) -> {} (hash {})",
        source.backbone.spec().id(),
        source.backbone.spec().num_classes,
        c,
        h,
        w,
        args.out.display(),
        source.short_hash()
    );
    Ok(())
}

/// Runs `graft export`: a source's backbone, or with `--merged` a task model folded into plain
/// weights, as a torchvision-layout state dict.
pub fn export(args: &ExportArgs) -> Result<()> {
    if args.merged {
        return export_merged(args);
    }
    if args.model.given() {
        bail!("--delta, --results, --method, --task and --source choose a task model: add --merged to export one");
    }
    let path = args.checkpoint.as_ref().context("give the source to export")?;
    let source = Source::load(path, &Device::Cpu)?;
    let sha = export_state_dict(&source.backbone, &args.out)?;
    println!(
        "{} ({} classes) -> {} (sha256 {})",
        source.backbone.spec().id(),
        source.backbone.spec().num_classes,
        args.out.display(),
        &sha[..12]
    );
    Ok(())
}

/// Images of the check that the merged network computes what the task model computes.
const CHECK_IMAGES: usize = 8;

/// `graft export --merged`: the task model's merged network, after checking on random images
/// that it gives the task model's logits; the task (name, class names, image fit) goes into the
/// header as `graft.task`.
fn export_merged(args: &ExportArgs) -> Result<()> {
    let opened = open_task_model(&args.model)?;
    let method = opened.model.method().to_string();
    let merged = opened
        .model
        .merged()?
        .with_context(|| format!("method '{method}' adds modules to the network or reroutes it, so its task model has no plain-weights form; export the source and keep the delta"))?;
    let (c, h, w) = opened.input;
    let mut rng = SeededRng::derived(0, "export-check");
    let x = Tensor::from_vec(rng.uniform_vec(CHECK_IMAGES * c * h * w, 0.0, 1.0), (CHECK_IMAGES, c, h, w), &Device::Cpu)?;
    let (want, got) = (opened.model.forward(&x)?, merged.forward(&x)?);
    let diff = (&want - &got)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    let scale = want.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()?;
    // NaN logits count as a difference.
    if diff.is_nan() || diff > 1e-5 * (1.0 + scale) {
        bail!("the merged network of {} differs from the task model by {diff:e} on random images; nothing written", opened.delta_path.display());
    }
    let task = opened.task_info();
    let mut extra = BTreeMap::new();
    extra.insert(KEY_TASK.to_string(), serde_json::to_string(&task).context("task info as JSON")?);
    let sha = export_state_dict_with(&merged, &args.out, &extra)?;
    println!(
        "{method} task '{}' merged into {} ({} classes: {}) -> {} (sha256 {}); max |logit difference| from the task model {diff:e}",
        task.name,
        merged.spec().id(),
        merged.spec().num_classes,
        task.class_names.join(", "),
        args.out.display(),
        &sha[..12]
    );
    Ok(())
}
