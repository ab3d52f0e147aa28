//! `graft tli match` and `graft tli scores`: TLI's matching and score from the command line.
//! Both only read: nothing is written.

use crate::cli::{TliCommand, TliMatchArgs, TliScoresArgs};
use crate::pretrain_cmd::parse_input;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::torch_io::{import_state_dict, ImportOptions};
use graft_core::{Backbone, Source};
use graft_tli::{inject, InjectOptions, Reshape};
use std::fmt::Write;
use std::path::Path;

/// Runs a `graft tli` subcommand and returns what it prints.
pub fn run(cmd: &TliCommand) -> Result<String> {
    match cmd {
        TliCommand::Match(args) => match_table(args),
        TliCommand::Scores(args) => scores_table(args),
    }
}

fn parse_arch(id: &str, flag: &str) -> Result<Arch> {
    id.trim().parse::<Arch>().with_context(|| format!("{flag} '{id}'"))
}

/// The teacher of `graft tli match`: a graft source, or a state dict of `--teacher-arch`.
fn load_teacher(args: &TliMatchArgs) -> Result<Backbone> {
    let path: &Path = &args.teacher;
    if !path.exists() {
        bail!("--teacher {}: no such file", path.display());
    }
    let Some(id) = &args.teacher_arch else {
        let source = Source::load(path, &Device::Cpu).map_err(|e| {
            anyhow::anyhow!(
                "--teacher {}: not a graft source ({e}); for a torchvision-layout state dict, name its architecture with --teacher-arch",
                path.display()
            )
        })?;
        return Ok(source.backbone);
    };
    let (c, h, w) = parse_input(args.teacher_input.as_deref().unwrap_or("3x224x224"))?;
    let spec = BackboneSpec {
        arch: parse_arch(id, "--teacher-arch")?,
        input: InputSpec::new(c, h, w),
        num_classes: args.teacher_classes.unwrap_or(1000),
    };
    let (backbone, _) = import_state_dict(path, spec, &ImportOptions::default(), &Device::Cpu)
        .with_context(|| format!("--teacher {} as a {id} state dict", path.display()))?;
    Ok(backbone)
}

/// How a report line's value was obtained, in words.
fn how(r: &Reshape) -> String {
    match r {
        Reshape::Copy => "copy".into(),
        Reshape::CropPadResize { from, to } => format!("crop/pad+resize {from:?}→{to:?}"),
        Reshape::Blend { sources } => format!("blend of {}", sources.len()),
        Reshape::Unmatched => "unmatched (student init)".into(),
        Reshape::Skipped => "skipped (student init)".into(),
        Reshape::Reset => "reset".into(),
    }
}

/// `graft tli match`: one line per student tensor.
fn match_table(args: &TliMatchArgs) -> Result<String> {
    let teacher = load_teacher(args)?;
    let spec = BackboneSpec {
        arch: parse_arch(&args.student, "--student")?,
        input: teacher.spec().input.clone(),
        num_classes: args.classes.unwrap_or(teacher.spec().num_classes),
    };
    let student = Backbone::init(spec, 0, &Device::Cpu).with_context(|| format!("--student {}", args.student))?;
    let opts = InjectOptions { lambda: args.lambda, ..InjectOptions::default() };
    let injected = inject(&teacher, &student, &opts).context("injection")?;
    let mut out = String::new();
    let _ = writeln!(out, "# TLI: {} (teacher) → {} (student)\n", teacher.spec().id(), student.spec().id());
    let _ = writeln!(out, "| student tensor | shape | ← teacher tensor | shape | score | reshape |");
    let _ = writeln!(out, "|---|---|---|---|---:|---|");
    let (mut matched, mut params) = (0, 0);
    for line in &injected.report {
        let shape = student.param(&line.student).map(|t| format!("{:?}", t.dims())).unwrap_or_default();
        let (tname, tshape) = match &line.teacher {
            Some(t) => (t.clone(), teacher.param(t).map(|t| format!("{:?}", t.dims())).unwrap_or_default()),
            None => ("–".to_string(), "–".to_string()),
        };
        if !graft_core::backbone::is_bn_buffer(&line.student) {
            params += 1;
            matched += usize::from(line.teacher.is_some());
        }
        let _ = writeln!(out, "| {} | {shape} | {tname} | {tshape} | {:.3} | {} |", line.student, line.score, how(&line.how));
    }
    let _ = writeln!(
        out,
        "\nTLI score of the teacher for the student: {:.4}; {matched} of {params} student parameter tensors injected (λ = {}).",
        injected.score, opts.lambda
    );
    Ok(out)
}

/// `graft tli scores`: the student × teacher matrix.
fn scores_table(args: &TliScoresArgs) -> Result<String> {
    let (c, h, w) = parse_input(&args.input)?;
    let mut specs = Vec::new();
    for id in &args.archs {
        let spec = BackboneSpec { arch: parse_arch(id, "--archs")?, input: InputSpec::new(c, h, w), num_classes: args.classes };
        spec.validate().with_context(|| format!("--archs {id}"))?;
        specs.push(spec);
    }
    let matrix = graft_tli::score_matrix(&specs, &specs)?;
    let ids: Vec<String> = specs.iter().map(|s| s.id()).collect();
    let mut out = String::new();
    let _ = writeln!(out, "TLI scores on {c}x{h}x{w} inputs: rows are students, columns teachers.\n");
    let _ = writeln!(out, "| student \\ teacher | {} |", ids.join(" | "));
    let _ = writeln!(out, "|---|{}", "---:|".repeat(ids.len()));
    for (id, row) in ids.iter().zip(&matrix) {
        let cells: Vec<String> = row.iter().map(|v| format!("{v:.3}")).collect();
        let _ = writeln!(out, "| {id} | {} |", cells.join(" | "));
    }
    Ok(out)
}
