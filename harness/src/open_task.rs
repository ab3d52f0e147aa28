//! Opening a trained task model from the command line: a delta file, or a run found in a
//! results file, plus the source it needs (given, or the cached one beside the results file).

use crate::cli::TaskModelArgs;
use crate::results;
use anyhow::{bail, Context, Result};
use candle_core::Device;
use graft_core::checkpoint::abbrev;
use graft_core::registry::{restore_standalone, restore_task_model};
use graft_core::{Delta, Source, TaskInfo, TaskModel};
use std::path::{Path, PathBuf};

/// A task model restored from its delta.
pub struct OpenedTask {
    /// The model, ready for inference.
    pub model: Box<dyn TaskModel>,
    /// Its delta as read.
    pub delta: Delta,
    /// The delta file.
    pub delta_path: PathBuf,
    /// The network input `(c, h, w)` its images must have.
    pub input: (usize, usize, usize),
}

impl OpenedTask {
    /// The task's name, class names and image fit as stored with the delta; deltas written
    /// before graft stored them get numbered classes, with a warning.
    pub fn task_info(&self) -> TaskInfo {
        match &self.delta.task {
            Some(t) => t.clone(),
            None => {
                eprintln!(
                    "warning: {} does not name its task's classes (written before graft stored them); classes are numbered",
                    self.delta_path.display()
                );
                TaskInfo { name: "?".into(), class_names: (0..self.delta.num_classes).map(|c| c.to_string()).collect(), fit: "resize".into() }
            }
        }
    }
}

/// Restores the task model `args` name, with its source when it needs one.
pub fn open_task_model(args: &TaskModelArgs) -> Result<OpenedTask> {
    let (delta_path, default_source) = locate_delta(args)?;
    let delta = Delta::load(&delta_path, &Device::Cpu)?;
    let (model, input) = if delta.needs_source {
        let source_path = args.source.clone().or(default_source).with_context(|| {
            format!("the delta needs its source (hash {}): give it with --source", abbrev(&delta.source_hash, 12))
        })?;
        let source = Source::load(&source_path, &Device::Cpu)?;
        let model = restore_task_model(&source, &delta, &delta_path)?;
        (model, source.backbone.spec().input.shape())
    } else {
        let spec = delta.backbone.clone().with_context(|| format!("{}: a standalone delta without its network spec", delta_path.display()))?;
        (restore_standalone(&delta, &delta_path)?, spec.input.shape())
    };
    Ok(OpenedTask { model, delta, delta_path, input })
}

/// The delta file, and the cached source beside the results file when found through one.
fn locate_delta(args: &TaskModelArgs) -> Result<(PathBuf, Option<PathBuf>)> {
    if let Some(d) = &args.delta {
        return Ok((d.clone(), None));
    }
    let Some(path) = &args.results else { bail!("give --delta FILE, or --results FILE with --method and --task") };
    let (method, task) = (args.method.as_deref().unwrap_or_default(), args.task.as_deref().unwrap_or_default());
    let file = results::read_reporting(path)?;
    let runs: Vec<&results::RunRecord> = file
        .records
        .iter()
        .filter(|r| r.method == method && r.task == task && args.seed.is_none_or(|s| r.seed == s))
        .collect();
    let run = match runs.as_slice() {
        [one] => *one,
        [] => bail!("{} has no run of method '{method}' on task '{task}'{}", path.display(), args.seed.map_or(String::new(), |s| format!(" with seed {s}"))),
        many => bail!(
            "{} has {} runs of method '{method}' on task '{task}'; choose one with --seed, or give --delta: {}",
            path.display(),
            many.len(),
            many.iter().map(|r| r.key.as_str()).collect::<Vec<_>>().join(", ")
        ),
    };
    let folder = path.parent().unwrap_or(Path::new("."));
    let cached = folder.join("sources").join(format!("{}.safetensors", run.source));
    Ok((run.delta_file(path), cached.is_file().then_some(cached)))
}
