//! The suite file: which sources to pretrain, which tasks, methods and seeds to run.
//!
//! ```toml
//! name = "quick"
//! results = "results/quick.jsonl"   # default results/<name>.jsonl (relative to the working dir)
//! seeds = [0, 1]                    # default [0]
//! methods = ["linear-probe", "fine-tune"]
//! eval_every_steps = 25             # optional: validation accuracy every 25 steps (curves)
//! [[sources]]
//! name = "digits-0to4-r8"
//! arch = { name = "resnet-cifar", depth = 8, width = 16 }
//! input = [1, 16, 16]               # channels, height, width
//! task = { name = "digits-0to4", dataset = "digits", classes = [0, 1, 2, 3, 4] }
//! train = { epochs = 30, lr = 0.1 } # graft_core::TrainConfig
//! seed = 0
//! [[tasks]]                         # a graft_datasets::TaskSpec, plus optional `sources`
//! name = "digits-5to9"
//! dataset = "digits"
//! classes = [5, 6, 7, 8, 9]
//! [method_configs.fine-tune]        # passed to graft_core::registry::build
//! train = { epochs = 15 }
//! [[sequences]]                     # optional continual sequences over the tasks
//! name = "two"
//! tasks = ["digits-5to9", "digits-rot90"]
//! ```
//!
//! Every table rejects unknown keys; errors name the file, the table and the key.

use crate::candidates::{overlay, Candidates, SelectBy};
use crate::results::{CurveKind, CurvePosition};
use anyhow::{Context, Result};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::TrainConfig;
use graft_datasets::TaskSpec;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A parsed, validated suite.
#[derive(Clone, Debug)]
pub struct Suite {
    /// Suite name (recorded in every result line).
    pub name: String,
    /// Free-text description.
    pub description: Option<String>,
    /// Results file from the suite (`None`: `results/<name>.jsonl`).
    pub results: Option<PathBuf>,
    /// Seeds of every (source, task, method) cell.
    pub seeds: Vec<u64>,
    /// Registered method names, in grid order.
    pub methods: Vec<String>,
    /// Sources to pretrain (or reuse from the cache).
    pub sources: Vec<SourceEntry>,
    /// Target tasks.
    pub tasks: Vec<TaskEntry>,
    /// Continual sequences over the tasks (evaluated after the grid).
    pub sequences: Vec<SequenceEntry>,
    /// Per-method config (JSON object) passed to the registry; absent = the method's defaults.
    pub method_configs: BTreeMap<String, serde_json::Value>,
    /// Record a convergence curve: validation accuracy every this many optimiser steps (and at
    /// step 0 and the last step) of every run (`None`: per epoch only).
    pub eval_every_steps: Option<usize>,
    /// Candidate settings per method for the selection protocol (`[candidates.<method>]`).
    pub candidates: BTreeMap<String, Candidates>,
    /// Where the protocol picks one setting per method (`select_by`, default `"suite"`).
    pub select_by: SelectBy,
    /// Where the suite was read from (for messages).
    pub origin: String,
}

/// A source backbone of the suite: architecture and input, and either a pretraining task and
/// schedule or a checkpoint file to start from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceEntry {
    /// Unique name; a pretrained source is cached as `<results dir>/sources/<name>.safetensors`.
    pub name: String,
    /// Architecture: an id such as `"resnet-cifar-8-w16"` or `"resnet18"`, or a table such as
    /// `{ name = "resnet-cifar", depth = 8, width = 16 }`.
    #[serde(deserialize_with = "arch_id_or_table")]
    pub arch: Arch,
    /// Input `[channels, height, width]`; every task is fitted to it.
    pub input: [usize; 3],
    /// The pretraining task (exclusive with `checkpoint`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<TaskSpec>,
    /// A checkpoint to start from instead of pretraining (exclusive with `task`): a graft source,
    /// or a PyTorch state dict in torchvision/timm layout saved as safetensors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<PathBuf>,
    /// A state dict's input normalisation, per channel (default: ImageNet's for 3 channels,
    /// 0.5 otherwise). A graft source carries its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f32>>,
    /// A state dict's per-channel standard deviation (see `mean`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f32>>,
    /// Import a state dict strictly (default true): any missing, unexpected or mismatched key is
    /// an error listing them all; `false` keeps a seeded fresh initialisation for those.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strict: Option<bool>,
    /// A prefix to remove from a state dict's keys (e.g. `"module."` of DataParallel).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strip_prefix: Option<String>,
    /// Pretraining schedule (defaults: graft_core's `TrainConfig::default()`).
    #[serde(default)]
    pub train: TrainConfig,
    /// Seed of the initialisation and training order.
    #[serde(default)]
    pub seed: u64,
}

impl SourceEntry {
    /// `(channels, height, width)` of the input.
    pub fn input_shape(&self) -> (usize, usize, usize) {
        (self.input[0], self.input[1], self.input[2])
    }

    /// The backbone spec for `num_classes`. The normalisation of a pretrained source is a
    /// placeholder (pretraining computes it); a state dict's is `mean`/`std`, by default
    /// ImageNet's for 3 channels and 0.5 otherwise.
    pub fn backbone_spec(&self, num_classes: usize) -> BackboneSpec {
        let (c, h, w) = self.input_shape();
        let input = if self.checkpoint.is_some() {
            InputSpec::imported(c, h, w, self.mean.as_deref(), self.std.as_deref())
                .expect("mean and std are checked when the suite is loaded")
        } else {
            InputSpec::new(c, h, w)
        };
        BackboneSpec { arch: self.arch.clone(), input, num_classes }
    }

    /// The pretraining task; an error for a source given as a checkpoint.
    pub fn pretraining_task(&self) -> Result<&TaskSpec> {
        self.task.as_ref().ok_or_else(|| anyhow::anyhow!("source '{}' is a checkpoint, not pretrained", self.name))
    }

    /// Checks the keys that go together: `task` or `checkpoint`, and what only a checkpoint takes.
    fn validate(&self) -> std::result::Result<(), String> {
        match (&self.task, &self.checkpoint) {
            (Some(_), Some(_)) => return Err("give `task` (pretrain) or `checkpoint` (start from a file), not both".into()),
            (None, None) => return Err("needs `task` (what to pretrain on) or `checkpoint` (a file to start from)".into()),
            (None, Some(path)) if !path.is_file() => {
                return Err(format!("key `checkpoint`: {} is not a file", path.display()))
            }
            (Some(_), None) => {
                for (key, set) in [("mean", self.mean.is_some()), ("std", self.std.is_some()), ("strict", self.strict.is_some()), ("strip_prefix", self.strip_prefix.is_some())] {
                    if set {
                        return Err(format!("key `{key}` applies to a `checkpoint` only"));
                    }
                }
            }
            (None, Some(_)) => {}
        }
        let (c, h, w) = self.input_shape();
        InputSpec::imported(c, h, w, self.mean.as_deref(), self.std.as_deref())
            .map(|_| ())
            .map_err(|(key, problem)| format!("key `{key}` {problem}"))
    }
}

/// An architecture written as an id (`"resnet-cifar-8-w16"`) or as a table.
fn arch_id_or_table<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Arch, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum IdOrTable {
        Id(String),
        Table(serde_json::Value),
    }
    match IdOrTable::deserialize(d)? {
        IdOrTable::Id(id) => id.parse().map_err(serde::de::Error::custom),
        IdOrTable::Table(v) => serde_json::from_value(v).map_err(serde::de::Error::custom),
    }
}

/// One setting a method runs with.
#[derive(Clone, Debug, PartialEq)]
pub struct Variant {
    /// The candidate combination (`k=4, train.lr=0.001`); `None` without candidates.
    pub label: Option<String>,
    /// The config given to the registry (`None`: the method's defaults).
    pub config: Option<serde_json::Value>,
}

/// Where in a suite a setting of `method` comes from, for messages: `[method_configs.<method>]`,
/// or `[candidates.<method>] (<label>)` for a candidate combination.
pub fn setting_origin(method: &str, candidate: Option<&str>) -> String {
    match candidate {
        None => format!("[method_configs.{method}]"),
        Some(label) => format!("[candidates.{method}] ({label})"),
    }
}

/// A target task: a dataset task spec plus the sources it is run on.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskEntry {
    /// The task.
    pub spec: TaskSpec,
    /// Names of the sources to run it on (`None`: every source).
    pub sources: Option<Vec<String>>,
    /// The only methods to run on it (`None`: every method of the suite).
    pub methods: Option<Vec<String>>,
    /// Methods of the suite not to run on it (e.g. Pool of Experts, whose queries must be
    /// classes of its oracle, on a task of new classes).
    pub skip_methods: Vec<String>,
    /// For a task derived by a metric curve (`sample_fractions`, `label_noise`): the declared
    /// task, the curve and its x value; `None` for a task as declared.
    pub axis: Option<CurvePosition>,
}

impl TaskEntry {
    /// Whether `method` runs on this task.
    pub fn uses_method(&self, method: &str) -> bool {
        self.methods.as_ref().is_none_or(|m| m.iter().any(|n| n == method)) && !self.skip_methods.iter().any(|n| n == method)
    }

    /// Whether this task runs on source `name`.
    pub fn uses_source(&self, name: &str) -> bool {
        self.sources
            .as_ref()
            .is_none_or(|s| s.iter().any(|n| n == name))
    }
}

/// A continual sequence: tasks learned one after another on the same frozen source; after each
/// new task every earlier task is evaluated again (its reloaded delta on its test split).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SequenceEntry {
    /// Unique name.
    pub name: String,
    /// Names of `[[tasks]]`, in learning order (at least two, each once).
    pub tasks: Vec<String>,
}

fn default_seeds() -> Vec<u64> {
    vec![0]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSuite {
    name: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    results: Option<PathBuf>,
    #[serde(default = "default_seeds")]
    seeds: Vec<u64>,
    methods: MethodList,
    #[serde(default)]
    sources: Vec<SourceEntry>,
    #[serde(default)]
    sample_fractions: Vec<f64>,
    #[serde(default)]
    label_noise: Vec<f64>,
    #[serde(default)]
    curve_tasks: Option<Vec<String>>,
    #[serde(default)]
    tasks: Vec<toml::Table>,
    #[serde(default)]
    sequences: Vec<SequenceEntry>,
    #[serde(default)]
    method_configs: BTreeMap<String, toml::Value>,
    #[serde(default)]
    eval_every_steps: Option<usize>,
    #[serde(default)]
    candidates: BTreeMap<String, toml::Value>,
    #[serde(default)]
    select_by: SelectBy,
}

/// `methods`: a list of registered names, or `"all"` for every registered method.
#[derive(Deserialize)]
#[serde(untagged)]
enum MethodList {
    All(String),
    Names(Vec<String>),
}

impl MethodList {
    /// The names, `"all"` read from the registry (sorted by name, so a newly linked method joins
    /// with no edit).
    fn resolve(self) -> std::result::Result<Vec<String>, String> {
        match self {
            MethodList::Names(names) => Ok(names),
            MethodList::All(word) if word == "all" => {
                Ok(graft_core::registry::methods().iter().map(|e| e.name.to_string()).collect())
            }
            MethodList::All(word) => Err(format!("`methods` is \"{word}\": give a list of method names or \"all\"")),
        }
    }
}

/// The tasks a metric curve adds after each declared task in `curve_tasks` (default every
/// task): one per fraction below 1 of `sample_fractions` (the task keeping that fraction of each
/// class's training images) and one per rate above 0 of `label_noise` (symmetric noise at that
/// rate on the training labels). A fraction of 1 and a rate of 0 are the declared task itself.
fn expand_curves(
    tasks: Vec<TaskEntry>,
    fractions: &[f64],
    noise_rates: &[f64],
    curve_tasks: Option<&[String]>,
) -> std::result::Result<Vec<TaskEntry>, String> {
    for (key, values, ok, range) in [
        ("sample_fractions", fractions, (|v: f64| v > 0.0 && v <= 1.0) as fn(f64) -> bool, "(0, 1]"),
        ("label_noise", noise_rates, |v: f64| (0.0..1.0).contains(&v), "[0, 1)"),
    ] {
        for (i, &v) in values.iter().enumerate() {
            if !ok(v) {
                return Err(format!("`{key}`: {v} is outside {range}"));
            }
            if values[..i].contains(&v) {
                return Err(format!("`{key}`: {v} is listed twice"));
            }
        }
    }
    if let Some(names) = curve_tasks {
        if fractions.is_empty() && noise_rates.is_empty() {
            return Err("`curve_tasks` is given without `sample_fractions` or `label_noise`".into());
        }
        for n in names {
            if !tasks.iter().any(|t| &t.spec.name == n) {
                let declared: Vec<_> = tasks.iter().map(|t| t.spec.name.as_str()).collect();
                return Err(format!("`curve_tasks` names unknown task '{n}'; tasks: {}", declared.join(", ")));
            }
        }
    }
    let mut out = Vec::new();
    for task in tasks {
        let on_curve = curve_tasks.is_none_or(|names| names.contains(&task.spec.name));
        let base = task.clone();
        out.push(task);
        if !on_curve {
            continue;
        }
        for &f in fractions.iter().filter(|&&f| f < 1.0) {
            if base.spec.fraction.is_some() {
                return Err(format!("task '{}' sets `fraction` itself, so `sample_fractions` cannot vary it; name the other tasks in `curve_tasks`", base.spec.name));
            }
            let mut spec = base.spec.clone();
            spec.name = format!("{}-frac{f}", base.spec.name);
            spec.fraction = Some(f as f32);
            out.push(derived(&base, spec, CurveKind::SampleFraction, f));
        }
        for &rate in noise_rates.iter().filter(|&&r| r > 0.0) {
            if base.spec.label_noise.is_some() {
                return Err(format!("task '{}' sets `label_noise` itself, so the suite's `label_noise` cannot vary it; name the other tasks in `curve_tasks`", base.spec.name));
            }
            let mut spec = base.spec.clone();
            spec.name = format!("{}-noise{rate}", base.spec.name);
            spec.label_noise = Some(graft_datasets::LabelNoise { rate: rate as f32, kind: graft_datasets::NoiseKind::Symmetric });
            out.push(derived(&base, spec, CurveKind::LabelNoise, rate));
        }
    }
    Ok(out)
}

/// A task on `base`'s curve `kind` at `value`.
fn derived(base: &TaskEntry, spec: TaskSpec, kind: CurveKind, value: f64) -> TaskEntry {
    TaskEntry { spec, sources: base.sources.clone(), methods: base.methods.clone(), skip_methods: base.skip_methods.clone(), axis: Some(CurvePosition { base_task: base.spec.name.clone(), kind, value }) }
}

/// Lays `--set KEY=VALUE` overrides over a suite document: `METHOD.key.path=VALUE` sets
/// `[method_configs.METHOD] key.path` for a method the suite runs; any other `key.path=VALUE`
/// sets that key of the suite itself (e.g. `seeds=[0]`). VALUE is read as TOML (a number, a
/// boolean, a list, a quoted string), else taken as a bare string.
pub fn apply_overrides(text: &str, sets: &[String]) -> std::result::Result<String, String> {
    let mut doc: toml::Table = toml::from_str(text).map_err(|e| e.to_string())?;
    let methods: Vec<String> = match doc.get("methods") {
        Some(toml::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(String::from)).collect(),
        Some(toml::Value::String(s)) if s == "all" => graft_core::registry::methods().iter().map(|e| e.name.to_string()).collect(),
        _ => Vec::new(),
    };
    for set in sets {
        let (path, value) = set.split_once('=').ok_or_else(|| format!("--set {set}: expected KEY=VALUE, e.g. fine-tune.train.lr=0.01"))?;
        let keys: Vec<&str> = path.trim().split('.').collect();
        if keys.iter().any(|k| k.is_empty()) {
            return Err(format!("--set {set}: the key '{path}' has an empty part"));
        }
        let value = value.trim();
        let value = match toml::from_str::<toml::Table>(&format!("v = {value}")) {
            Ok(mut t) => t.remove("v").expect("the table has v"),
            Err(_) => toml::Value::String(value.to_string()),
        };
        let (mut table, rest) = if methods.iter().any(|m| m == keys[0]) {
            if keys.len() < 2 {
                return Err(format!("--set {set}: name a key of {}, e.g. {}.train.lr=0.01", keys[0], keys[0]));
            }
            let configs = doc.entry("method_configs").or_insert_with(|| toml::Value::Table(Default::default()));
            let configs = configs.as_table_mut().ok_or_else(|| format!("--set {set}: `method_configs` is not a table"))?;
            let own = configs.entry(keys[0]).or_insert_with(|| toml::Value::Table(Default::default()));
            (own.as_table_mut().ok_or_else(|| format!("--set {set}: `method_configs.{}` is not a table", keys[0]))?, &keys[1..])
        } else {
            (&mut doc, &keys[..])
        };
        for (i, k) in rest[..rest.len() - 1].iter().enumerate() {
            let next = table.entry(*k).or_insert_with(|| toml::Value::Table(Default::default()));
            table = next.as_table_mut().ok_or_else(|| format!("--set {set}: `{}` is not a table", rest[..=i].join(".")))?;
        }
        table.insert(rest[rest.len() - 1].to_string(), value);
    }
    toml::to_string(&doc).map_err(|e| e.to_string())
}

/// A name usable in run keys and file names: letters, digits, `.`, `_`, `-`.
fn check_name(kind: &str, name: &str) -> std::result::Result<(), String> {
    if name.is_empty() || name.starts_with('.') {
        return Err(format!(
            "{kind} name '{name}' must be non-empty and not start with '.'"
        ));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "{kind} name '{name}' contains '{c}'; use letters, digits, '.', '_' or '-'"
        ));
    }
    Ok(())
}

impl Suite {
    /// Reads and validates the suite file at `path`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::load_with(path, &[])
    }

    /// Reads the suite file at `path`, lays `--set` overrides over it ([`apply_overrides`]) and
    /// validates the result.
    pub fn load_with(path: &Path, sets: &[String]) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read suite {}", path.display()))?;
        let origin = path.display().to_string();
        if sets.is_empty() {
            return Self::parse(&text, &origin);
        }
        let text = apply_overrides(&text, sets).map_err(|e| anyhow::anyhow!("suite {origin}: {e}"))?;
        Self::parse(&text, &format!("{origin} (with --set {})", sets.join(" ")))
    }

    /// Parses and validates suite `text`; `origin` (a file name) prefixes every error.
    pub fn parse(text: &str, origin: &str) -> Result<Self> {
        let raw: RawSuite =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("suite {origin}: {e}"))?;
        let err = |msg: String| anyhow::anyhow!("suite {origin}: {msg}");
        let document: toml::Value = toml::from_str(text).map_err(|e| anyhow::anyhow!("suite {origin}: {e}"))?;
        if let Some((key, v)) = first_non_finite("", &document) {
            return Err(err(format!("`{key}` is {v}: every number in a suite must be finite")));
        }

        let mut tasks = Vec::with_capacity(raw.tasks.len());
        for (i, mut table) in raw.tasks.into_iter().enumerate() {
            let label = match table.get("name").and_then(|v| v.as_str()) {
                Some(n) => format!("tasks[{i}] ('{n}')"),
                None => format!("tasks[{i}]"),
            };
            let sources = match table.remove("sources") {
                None => None,
                Some(v) => Some(v.try_into::<Vec<String>>().map_err(|e| {
                    err(format!(
                        "{label}: key `sources` must be a list of source names: {e}"
                    ))
                })?),
            };
            let mut names = |key: &str| -> Result<Option<Vec<String>>> {
                table
                    .remove(key)
                    .map(|v| v.try_into::<Vec<String>>().map_err(|e| err(format!("{label}: key `{key}` must be a list of method names: {e}"))))
                    .transpose()
            };
            let methods = names("methods")?;
            let skip_methods = names("skip_methods")?.unwrap_or_default();
            let spec: TaskSpec =
                toml::Value::Table(table)
                    .try_into()
                    .map_err(|e: toml::de::Error| {
                        err(format!(
                            "{label}: {} (a task also accepts `sources`, `methods` and `skip_methods`)",
                            e.message().trim_end()
                        ))
                    })?;
            tasks.push(TaskEntry { spec, sources, methods, skip_methods, axis: None });
        }
        let tasks = expand_curves(tasks, &raw.sample_fractions, &raw.label_noise, raw.curve_tasks.as_deref()).map_err(err)?;
        let methods = raw.methods.resolve().map_err(err)?;

        let mut method_configs = BTreeMap::new();
        for (name, value) in raw.method_configs {
            if !value.is_table() {
                return Err(err(format!(
                    "method_configs.{name} must be a table of the method's config keys"
                )));
            }
            let json = serde_json::to_value(&value).map_err(|e| {
                err(format!(
                    "method_configs.{name} cannot be converted to JSON: {e}"
                ))
            })?;
            method_configs.insert(name, json);
        }

        let mut candidates = BTreeMap::new();
        for (name, value) in &raw.candidates {
            candidates.insert(name.clone(), Candidates::parse(value, &format!("candidates.{name}")).map_err(err)?);
        }

        let suite = Suite {
            name: raw.name,
            description: raw.description,
            results: raw.results,
            seeds: raw.seeds,
            methods,
            sources: raw.sources,
            tasks,
            sequences: raw.sequences,
            method_configs,
            eval_every_steps: raw.eval_every_steps,
            candidates,
            select_by: raw.select_by,
            origin: origin.to_string(),
        };
        suite.validate().map_err(err)?;
        Ok(suite)
    }

    /// Checks names, references, seeds, task specs and method configs (by building each method).
    fn validate(&self) -> std::result::Result<(), String> {
        check_name("suite", &self.name)?;
        if self.seeds.is_empty() {
            return Err("`seeds` is empty".into());
        }
        let mut seen = BTreeSet::new();
        for s in &self.seeds {
            if !seen.insert(s) {
                return Err(format!("`seeds`: seed {s} is listed twice"));
            }
        }
        if self.methods.is_empty() {
            return Err("`methods` is empty".into());
        }
        if self.sources.is_empty() {
            return Err("no [[sources]]".into());
        }
        if self.tasks.is_empty() {
            return Err("no [[tasks]]".into());
        }
        let mut names = BTreeSet::new();
        for (i, s) in self.sources.iter().enumerate() {
            check_name("source", &s.name).map_err(|m| format!("sources[{i}]: {m}"))?;
            if !names.insert(s.name.as_str()) {
                return Err(format!(
                    "sources[{i}]: source name '{}' is used twice",
                    s.name
                ));
            }
            s.validate().map_err(|e| format!("sources[{i}] ('{}'): {e}", s.name))?;
            let classes = match &s.task {
                Some(task) => {
                    task.validate().map_err(|e| format!("sources[{i}] ('{}'): key `task`: {e}", s.name))?;
                    task.num_classes().map_err(|e| format!("sources[{i}] ('{}'): key `task`: {e}", s.name))?
                }
                // The head's size is read from the file when the source is loaded.
                None => 1,
            };
            s.backbone_spec(classes)
                .validate()
                .map_err(|e| format!("sources[{i}] ('{}'): key `arch`/`input`: {e}", s.name))?;
            s.train
                .validate()
                .map_err(|e| format!("sources[{i}] ('{}'): key `train`: {e}", s.name))?;
        }
        let mut task_names = BTreeSet::new();
        for (i, t) in self.tasks.iter().enumerate() {
            check_name("task", &t.spec.name).map_err(|m| format!("tasks[{i}]: {m}"))?;
            if !task_names.insert(t.spec.name.as_str()) {
                return Err(format!(
                    "tasks[{i}]: task name '{}' is used twice",
                    t.spec.name
                ));
            }
            t.spec.validate().map_err(|e| format!("tasks[{i}]: {e}"))?;
            if let Some(srcs) = &t.sources {
                if srcs.is_empty() {
                    return Err(format!(
                        "tasks[{i}] ('{}'): `sources` is empty",
                        t.spec.name
                    ));
                }
                for s in srcs {
                    if !names.contains(s.as_str()) {
                        return Err(format!(
                            "tasks[{i}] ('{}'): `sources` names unknown source '{s}'; sources: {}",
                            t.spec.name,
                            names.iter().copied().collect::<Vec<_>>().join(", ")
                        ));
                    }
                }
            }
        }
        for (i, t) in self.tasks.iter().enumerate().filter(|(_, t)| t.axis.is_none()) {
            for (key, list) in [("methods", t.methods.as_deref().unwrap_or(&[])), ("skip_methods", &t.skip_methods[..])] {
                if let Some(m) = list.iter().find(|m| !self.methods.contains(m)) {
                    return Err(format!("tasks[{i}] ('{}'): `{key}` names '{m}', which is not in `methods` ({})", t.spec.name, self.methods.join(", ")));
                }
            }
            if !self.methods.iter().any(|m| t.uses_method(m)) {
                return Err(format!("tasks[{i}] ('{}'): no method of the suite runs on it (`methods`/`skip_methods`)", t.spec.name));
            }
        }
        let mut sequence_names = BTreeSet::new();
        for (i, q) in self.sequences.iter().enumerate() {
            check_name("sequence", &q.name).map_err(|m| format!("sequences[{i}]: {m}"))?;
            if !sequence_names.insert(q.name.as_str()) {
                return Err(format!("sequences[{i}]: sequence name '{}' is used twice", q.name));
            }
            if q.tasks.len() < 2 {
                return Err(format!("sequences[{i}] ('{}'): `tasks` needs at least two tasks", q.name));
            }
            let mut in_sequence = BTreeSet::new();
            for t in &q.tasks {
                if !task_names.contains(t.as_str()) {
                    return Err(format!(
                        "sequences[{i}] ('{}'): `tasks` names unknown task '{t}'; tasks: {}",
                        q.name,
                        task_names.iter().copied().collect::<Vec<_>>().join(", ")
                    ));
                }
                if !in_sequence.insert(t.as_str()) {
                    return Err(format!("sequences[{i}] ('{}'): task '{t}' is listed twice", q.name));
                }
            }
        }
        if self.eval_every_steps == Some(0) {
            return Err("`eval_every_steps` must be at least 1 (or left out for per-epoch evaluation only)".into());
        }
        let mut methods = BTreeSet::new();
        for m in &self.methods {
            if !methods.insert(m.as_str()) {
                return Err(format!("`methods`: '{m}' is listed twice"));
            }
            graft_core::registry::find(m).map_err(|e| format!("`methods`: {e}"))?;
        }
        for name in self.method_configs.keys() {
            if !methods.contains(name.as_str()) {
                return Err(format!(
                    "[method_configs.{name}]: '{name}' is not in `methods` ({})",
                    self.methods.join(", ")
                ));
            }
        }
        for name in self.candidates.keys() {
            if !methods.contains(name.as_str()) {
                return Err(format!("[candidates.{name}]: '{name}' is not in `methods` ({})", self.methods.join(", ")));
            }
        }
        if !self.candidates.is_empty() && !self.sequences.is_empty() {
            return Err("[candidates] and [[sequences]] cannot share a suite: select the settings first, then run the \
                        sequences with the chosen values in [method_configs]"
                .into());
        }
        for m in &self.methods {
            for variant in self.variants(m) {
                graft_core::registry::build(m, variant.config.as_ref())
                    .map_err(|e| format!("{}: {e}", setting_origin(m, variant.label.as_deref())))?;
            }
        }
        Ok(())
    }

    /// The settings `method` runs with: its `[method_configs]` table, or with candidates one
    /// variant per combination laid over that table.
    pub fn variants(&self, method: &str) -> Vec<Variant> {
        let base = self.method_configs.get(method);
        match self.candidates.get(method) {
            None => vec![Variant { label: None, config: base.cloned() }],
            Some(c) => {
                let empty = serde_json::Value::Object(Default::default());
                c.combinations()
                    .into_iter()
                    .map(|combo| Variant { config: Some(overlay(base.unwrap_or(&empty), &combo.overlay)), label: Some(combo.label) })
                    .collect()
            }
        }
    }

    /// The results file: `override_path`, else the suite's `results`, else `results/<name>.jsonl`.
    pub fn results_path(&self, override_path: Option<&Path>) -> PathBuf {
        override_path
            .map(Path::to_path_buf)
            .or_else(|| self.results.clone())
            .unwrap_or_else(|| PathBuf::from("results").join(format!("{}.jsonl", self.name)))
    }
}

/// The dotted key and value of the first NaN or infinite float in `v` (TOML accepts `nan` and
/// `inf`, which JSON cannot hold).
fn first_non_finite(path: &str, v: &toml::Value) -> Option<(String, f64)> {
    let join = |k: &str| if path.is_empty() { k.to_string() } else { format!("{path}.{k}") };
    match v {
        toml::Value::Float(f) if !f.is_finite() => Some((path.to_string(), *f)),
        toml::Value::Table(t) => t.iter().find_map(|(k, v)| first_non_finite(&join(k), v)),
        toml::Value::Array(a) => a.iter().enumerate().find_map(|(i, v)| first_non_finite(&format!("{path}[{i}]"), v)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
name = "t"
methods = []
[[sources]]
name = "s"
arch = { name = "resnet-cifar", depth = 8, width = 4 }
input = [1, 8, 8]
task = { name = "d04", dataset = "digits", classes = [0, 1, 2, 3, 4] }
train = { epochs = 2, lr = 0.1 }
[[tasks]]
name = "d59"
dataset = "digits"
classes = [5, 6, 7, 8, 9]
sources = ["s"]
"#;

    // `methods = []` fails validation; these tests exercise parsing paths that fail first or
    // check the messages of validation itself.
    #[test]
    fn unknown_top_level_key_is_named() {
        let err = Suite::parse(&format!("colour = 1\n{BASE}"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(err.contains("x.toml") && err.contains("colour"), "{err}");
    }

    #[test]
    fn a_nan_or_infinite_number_is_named_by_its_key() {
        let text = format!("{BASE}[method_configs.linear-probe]\ntrain = {{ lr = nan }}\n");
        let err = Suite::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("`method_configs.linear-probe.train.lr` is NaN") && err.contains("finite"), "{err}");
        let err = Suite::parse(&BASE.replace("lr = 0.1", "lr = -inf"), "x.toml").unwrap_err().to_string();
        assert!(err.contains("`sources[0].train.lr` is -inf"), "{err}");
    }

    #[test]
    fn unknown_task_key_is_named() {
        let err = Suite::parse(&format!("{BASE}clases = [1]\n"), "x.toml")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("x.toml") && err.contains("clases") && err.contains("tasks[0] ('d59')"),
            "{err}"
        );
    }

    #[test]
    fn unknown_source_and_train_keys_are_named() {
        let text = BASE.replace("lr = 0.1", "lr = 0.1, epoch = 3");
        let err = Suite::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("x.toml") && err.contains("epoch"), "{err}");
        let text = BASE.replace("input = [1, 8, 8]", "input = [1, 8, 8]\nsead = 1");
        let err = Suite::parse(&text, "x.toml").unwrap_err().to_string();
        assert!(err.contains("sead"), "{err}");
    }

    #[test]
    fn empty_methods_and_bad_source_reference_are_explained() {
        let err = Suite::parse(BASE, "x.toml").unwrap_err().to_string();
        assert!(err.contains("`methods` is empty"), "{err}");
    }

    #[test]
    fn sequences_must_name_known_tasks_once() {
        let base = format!(
            "{}\n[[tasks]]\nname = \"a\"\ndataset = \"digits\"\n[[tasks]]\nname = \"b\"\ndataset = \"digits\"\n",
            BASE.replace("methods = []", "methods = [\"linear-probe\"]")
        );
        let ok = format!("{base}[[sequences]]\nname = \"ab\"\ntasks = [\"a\", \"b\"]\n");
        assert_eq!(Suite::parse(&ok, "x.toml").unwrap().sequences[0].tasks, ["a", "b"]);
        for (body, needle) in [
            ("name = \"q\"\ntasks = [\"a\", \"c\"]", "unknown task 'c'; tasks: a, b, d59"),
            ("name = \"q\"\ntasks = [\"a\", \"a\"]", "task 'a' is listed twice"),
            ("name = \"q\"\ntasks = [\"a\"]", "at least two tasks"),
            ("name = \"q\"\ntasks = [\"a\", \"b\"]\norder = 1", "unknown field `order`"),
        ] {
            let err = Suite::parse(&format!("{base}[[sequences]]\n{body}\n"), "x.toml").unwrap_err().to_string();
            assert!(err.contains(needle), "{body}: {err}");
        }
    }

    #[test]
    fn results_path_precedence() {
        let mut s = Suite {
            name: "q".into(),
            description: None,
            results: None,
            seeds: vec![0],
            methods: vec![],
            sources: vec![],
            tasks: vec![],
            sequences: vec![],
            method_configs: BTreeMap::new(),
            eval_every_steps: None,
            candidates: BTreeMap::new(),
            select_by: SelectBy::Suite,
            origin: String::new(),
        };
        assert_eq!(s.results_path(None), PathBuf::from("results/q.jsonl"));
        s.results = Some("a/b.jsonl".into());
        assert_eq!(s.results_path(None), PathBuf::from("a/b.jsonl"));
        assert_eq!(
            s.results_path(Some(Path::new("c.jsonl"))),
            PathBuf::from("c.jsonl")
        );
    }

    /// BASE with `methods` and extra top-level lines (top-level keys must come before tables).
    fn with_top(top: &str) -> String {
        BASE.replace("methods = []", &format!("methods = [\"linear-probe\", \"fine-tune\"]\n{top}"))
    }

    #[test]
    fn curves_add_one_task_per_fraction_below_one_and_rate_above_zero_after_their_task() {
        let text = format!(
            "{}[[tasks]]\nname = \"rot\"\ndataset = \"digits\"\ndomain = \"rotate90\"\n",
            with_top("sample_fractions = [0.05, 0.25, 1.0]\nlabel_noise = [0.0, 0.2]\ncurve_tasks = [\"d59\"]")
        );
        let suite = Suite::parse(&text, "x.toml").unwrap();
        let names: Vec<_> = suite.tasks.iter().map(|t| t.spec.name.as_str()).collect();
        assert_eq!(names, ["d59", "d59-frac0.05", "d59-frac0.25", "d59-noise0.2", "rot"]);
        assert_eq!(suite.tasks[1].spec.fraction, Some(0.05));
        assert_eq!(suite.tasks[1].spec.classes, suite.tasks[0].spec.classes);
        assert_eq!(suite.tasks[1].sources.as_deref(), Some(&["s".to_string()][..]));
        assert_eq!(
            suite.tasks[3].axis,
            Some(CurvePosition { base_task: "d59".into(), kind: CurveKind::LabelNoise, value: 0.2 })
        );
        let noise = suite.tasks[3].spec.label_noise.as_ref().unwrap();
        assert_eq!((noise.rate, noise.kind), (0.2, graft_datasets::NoiseKind::Symmetric));
        assert_eq!(suite.tasks[3].spec.fraction, None);
        assert_eq!(suite.tasks[0].axis, None);
        assert_eq!(suite.tasks[4].axis, None);
        // Without `curve_tasks` every declared task gets its curves.
        let suite = Suite::parse(&format!("{}[[tasks]]\nname = \"rot\"\ndataset = \"digits\"\n", with_top("label_noise = [0.4]")), "x.toml").unwrap();
        let names: Vec<_> = suite.tasks.iter().map(|t| t.spec.name.as_str()).collect();
        assert_eq!(names, ["d59", "d59-noise0.4", "rot", "rot-noise0.4"]);
    }

    #[test]
    fn bad_curves_are_refused_by_key() {
        for (top, want) in [
            ("sample_fractions = [0.0]", "`sample_fractions`: 0 is outside (0, 1]"),
            ("sample_fractions = [1.5]", "`sample_fractions`: 1.5 is outside (0, 1]"),
            ("label_noise = [1.0]", "`label_noise`: 1 is outside [0, 1)"),
            ("label_noise = [0.2, 0.2]", "`label_noise`: 0.2 is listed twice"),
            ("sample_fractions = [0.1]\ncurve_tasks = [\"nope\"]", "`curve_tasks` names unknown task 'nope'; tasks: d59"),
            ("curve_tasks = [\"d59\"]", "without `sample_fractions` or `label_noise`"),
        ] {
            let err = Suite::parse(&with_top(top), "x.toml").unwrap_err().to_string();
            assert!(err.contains("x.toml") && err.contains(want), "{top}: {err}");
        }
        let own_fraction = format!("{}fraction = 0.5\n", with_top("sample_fractions = [0.1]"));
        let err = Suite::parse(&own_fraction, "x.toml").unwrap_err().to_string();
        assert!(err.contains("task 'd59' sets `fraction` itself"), "{err}");
    }

    #[test]
    fn methods_all_lists_every_registered_method() {
        let suite = Suite::parse(&BASE.replace("methods = []", "methods = \"all\""), "x.toml").unwrap();
        let registered: Vec<_> = graft_core::registry::methods().iter().map(|e| e.name.to_string()).collect();
        assert_eq!(suite.methods, registered);
        for m in ["linear-probe", "fine-tune", "ksm", "snow", "piggyback", "tli", "poe"] {
            assert!(suite.methods.iter().any(|n| n == m), "{m} missing from {:?}", suite.methods);
        }
        let err = Suite::parse(&BASE.replace("methods = []", "methods = \"every\""), "x.toml").unwrap_err().to_string();
        assert!(err.contains("`methods` is \"every\""), "{err}");
    }

    #[test]
    fn overrides_set_method_keys_and_suite_keys() {
        let text = format!("{}[method_configs.fine-tune]\ntrain = {{ epochs = 3 }}\n", with_top(""));
        let sets = ["fine-tune.train.lr=0.01".to_string(), "linear-probe.train.optimizer=adam".to_string(), "seeds=[4, 5]".to_string()];
        let out = apply_overrides(&text, &sets).unwrap();
        let suite = Suite::parse(&out, "x.toml").unwrap();
        assert_eq!(suite.method_configs["fine-tune"], serde_json::json!({ "train": { "epochs": 3, "lr": 0.01 } }));
        assert_eq!(suite.method_configs["linear-probe"], serde_json::json!({ "train": { "optimizer": "adam" } }));
        assert_eq!(suite.seeds, [4, 5]);
        // An unknown key is refused by the method's config, as in the file.
        let out = apply_overrides(&text, &["fine-tune.train.lrr=0.01".to_string()]).unwrap();
        let err = Suite::parse(&out, "x.toml").unwrap_err().to_string();
        assert!(err.contains("lrr"), "{err}");
        for (set, want) in [("fine-tune", "expected KEY=VALUE"), ("fine-tune=1", "name a key of fine-tune"), ("a..b=1", "empty part"), ("name.x=1", "`name` is not a table")] {
            let err = apply_overrides(&text, &[set.to_string()]).unwrap_err();
            assert!(err.contains(want), "{set}: {err}");
        }
    }


    #[test]
    fn a_task_can_name_or_skip_methods() {
        let text = format!("{}skip_methods = [\"fine-tune\"]\n[[tasks]]\nname = \"rot\"\ndataset = \"digits\"\nmethods = [\"fine-tune\"]\n", with_top(""));
        let suite = Suite::parse(&text, "x.toml").unwrap();
        assert!(suite.tasks[0].uses_method("linear-probe") && !suite.tasks[0].uses_method("fine-tune"));
        assert!(!suite.tasks[1].uses_method("linear-probe") && suite.tasks[1].uses_method("fine-tune"));
        let err = Suite::parse(&format!("{}skip_methods = [\"snow\"]\n", with_top("")), "x.toml").unwrap_err().to_string();
        assert!(err.contains("tasks[0] ('d59'): `skip_methods` names 'snow', which is not in `methods`"), "{err}");
        let err = Suite::parse(&format!("{}skip_methods = [\"fine-tune\", \"linear-probe\"]\n", with_top("")), "x.toml").unwrap_err().to_string();
        assert!(err.contains("no method of the suite runs on it"), "{err}");
    }

}
