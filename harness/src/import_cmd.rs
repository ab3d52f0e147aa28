//! `graft import` and `graft export`: PyTorch state dicts in and out.

use crate::cli::{ExportArgs, ImportArgs};
use crate::pretrain_cmd::parse_input;
use anyhow::{Context, Result};
use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::import::source_from_checkpoint;
use graft_core::torch_io::{export_state_dict, ImportOptions};
use graft_core::Source;

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

/// Runs `graft export`: a source's backbone as a torchvision-layout state dict.
pub fn export(args: &ExportArgs) -> Result<()> {
    let source = Source::load(&args.source, &Device::Cpu)?;
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
