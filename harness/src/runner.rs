//! Running a suite: the grid (sources × tasks × methods × seeds), sharding, resume, the source
//! cache, and one fit → evaluate → save → reload-check → record cycle per run.

use crate::candidates::CandidateTag;
use crate::cli::Verbosity;
use crate::lock::ResultsLock;
use crate::report::human_count;
use crate::results::{self, ResultsWriter, RunRecord};
use crate::sequence::{sequences_path, step_key, SequenceRecord, TaskAccuracy};
use crate::suite::{setting_origin, SourceEntry, Suite};
use anyhow::{anyhow, bail, Context, Result};
use candle_core::{Device, Tensor};
use graft_core::checkpoint::{abbrev, sha256_hex, write_atomic, GRAFT_VERSION};
use graft_core::train::{accuracy, CurvePoint, EpochMetrics, Split};
use graft_core::import::source_from_checkpoint;
use graft_core::torch_io::ImportOptions;
use graft_core::{Delta, FitContext, Source, Task, TaskInfo, TaskModel};
use graft_datasets::{Dataset, DatasetRef, TaskSpec};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Images per batch when evaluating.
const EVAL_BATCH: usize = 256;

/// `--shard i/n`: this process runs the grid entries whose index % n == i.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shard {
    /// This shard, `< count`.
    pub index: usize,
    /// Number of shards, `>= 1`.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let bad = || format!("--shard '{s}': expected i/n with 0 <= i < n, e.g. 0/4");
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        let index: usize = i.trim().parse().map_err(|_| bad())?;
        let count: usize = n.trim().parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(format!("--shard '{s}': the shard count must be at least 1"));
        }
        if index >= count {
            return Err(format!(
                "--shard '{s}': shard index {index} is out of range; with {count} shards use 0..={}",
                count - 1
            ));
        }
        Ok(Self { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// How to run a suite.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// The results file (JSONL) to append to; its folder also holds `deltas/` (and `sources/`
    /// unless `sources` says otherwise).
    pub results: PathBuf,
    /// Where pretrained sources are cached (`None`: `sources/` beside the results file).
    pub sources: Option<PathBuf>,
    /// How much to print per run and per epoch.
    pub verbosity: Verbosity,
    /// Only this shard of the grid.
    pub shard: Option<Shard>,
    /// Draw training progress bars.
    pub progress: bool,
    /// Where the datasets are.
    pub data_dir: PathBuf,
}

/// One cell of the grid.
#[derive(Clone, Debug)]
pub struct GridEntry {
    /// Position in the full grid (sources, then tasks, methods, seeds; seeds vary fastest).
    pub index: usize,
    /// Index into `suite.sources`.
    pub source: usize,
    /// Index into `suite.tasks`.
    pub task: usize,
    /// Method name.
    pub method: String,
    /// Seed.
    pub seed: u64,
    /// The method's full config (defaults filled in).
    pub config: serde_json::Value,
    /// First 8 hex digits of the SHA-256 of the config JSON (compact, keys sorted).
    pub config_hash: String,
    /// Unique run key.
    pub key: String,
    /// The candidate combination this run tries (`[candidates.<method>]`), if any.
    pub candidate: Option<String>,
    /// First 12 hex digits of the SHA-256 of the source entry and the task spec (canonical
    /// JSON): recorded with the run and checked on resume, so editing a task's classes or
    /// domain, or the source's training, under the same names cannot keep stale results.
    pub settings_fingerprint: String,
}

/// A method's setting as the grid runs it: the full config, its hash and candidate label.
struct MethodSetting {
    config: serde_json::Value,
    hash: String,
    candidate: Option<String>,
}

/// The full grid of `suite`, in a fixed order (sharding relies on it): sources, tasks, methods,
/// a method's candidate settings, seeds.
pub fn grid(suite: &Suite) -> Result<Vec<GridEntry>> {
    let mut settings: HashMap<&str, Vec<MethodSetting>> = HashMap::new();
    for m in &suite.methods {
        let mut list = Vec::new();
        for variant in suite.variants(m) {
            let method = graft_core::registry::build(m, variant.config.as_ref())
                .with_context(|| format!("suite {}: {}", suite.origin, setting_origin(m, variant.label.as_deref())))?;
            let config = method.config_json();
            let hash = sha256_hex(canonical_json(&config).as_bytes())[..8].to_string();
            if list.iter().any(|s: &MethodSetting| s.hash == hash) {
                bail!("suite {}: [candidates.{m}]: '{}' gives a config another combination gives too", suite.origin, variant.label.unwrap_or_default());
            }
            list.push(MethodSetting { config, hash, candidate: variant.label });
        }
        settings.insert(m.as_str(), list);
    }
    for source in &suite.sources {
        check_names_against_source(suite, source, &settings)?;
    }
    let mut out = Vec::new();
    for (si, source) in suite.sources.iter().enumerate() {
        for (ti, task) in suite.tasks.iter().enumerate() {
            if !task.uses_source(&source.name) {
                continue;
            }
            let settings_json = serde_json::json!({ "source": json_of(source), "task": json_of(&task.spec) });
            let settings_fingerprint = sha256_hex(canonical_json(&settings_json).as_bytes())[..12].to_string();
            for method in suite.methods.iter().filter(|m| task.uses_method(m)) {
                for setting in &settings[method.as_str()] {
                    for &seed in &suite.seeds {
                        out.push(GridEntry {
                            index: out.len(),
                            source: si,
                            task: ti,
                            method: method.clone(),
                            seed,
                            config: setting.config.clone(),
                            config_hash: setting.hash.clone(),
                            key: format!("{}/{}/{method}/s{seed}/{}", source.name, task.spec.name, setting.hash),
                            candidate: setting.candidate.clone(),
                            settings_fingerprint: settings_fingerprint.clone(),
                        });
                    }
                }
            }
        }
    }
    Ok(out)
}

/// Checks, before anything is trained, that the taps (`taps = [...]`) and convolutions
/// (`<key> = { only = [...] }`, e.g. KSM's `layers`) each method's config names exist in `source`'s architecture
/// (read from its description; nothing is allocated). Which of them a method accepts is the
/// method's to check when it fits.
fn check_names_against_source(suite: &Suite, source: &SourceEntry, settings: &HashMap<&str, Vec<MethodSetting>>) -> Result<()> {
    let spec = source.backbone_spec(1);
    let (units, layers) = graft_core::Backbone::describe(&spec)
        .with_context(|| format!("suite {}: source '{}'", suite.origin, source.name))?;
    let taps: Vec<&str> = units.iter().map(|u| u.tap.as_str()).collect();
    let convs: Vec<&str> = layers
        .iter()
        .filter(|l| matches!(l.kind, graft_core::backbone::LayerKind::Conv(_)))
        .map(|l| l.name.as_str())
        .collect();
    for (method, setting) in suite.methods.iter().flat_map(|m| settings[m.as_str()].iter().map(move |s| (m, s))) {
        let config = &setting.config;
        let table = setting_origin(method, setting.candidate.as_deref());
        let names = |v: &serde_json::Value| -> Vec<String> {
            v.as_array().map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect()).unwrap_or_default()
        };
        // A conv choice is `{ only = [...] }` under whatever key the method gives it.
        let mut checks = vec![("taps".to_string(), names(&config["taps"]), &taps)];
        if let Some(tap) = config["tap"].as_str() {
            checks.push(("tap".to_string(), vec![tap.to_string()], &taps));
        }
        for (key, value) in config.as_object().into_iter().flatten() {
            if let Some(only) = value.get("only") {
                checks.push((format!("{key}.only"), names(only), &convs));
            }
        }
        for (key, named, known) in checks {
            if let Some(bad) = named.iter().find(|n| !known.contains(&n.as_str())) {
                bail!(
                    "suite {}: {table} `{key}` names '{bad}', which {} (source '{}') does not have; it has: {}",
                    suite.origin,
                    spec.id(),
                    source.name,
                    known.join(", ")
                );
            }
        }
    }
    Ok(())
}

/// Compact JSON with object keys sorted at every level, so a config's hash does not depend on
/// how serde_json orders maps.
pub fn canonical_json(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Object(m) => {
            let mut entries: Vec<(&String, &serde_json::Value)> = m.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let body: Vec<String> = entries
                .into_iter()
                .map(|(k, v)| {
                    format!(
                        "{}:{}",
                        serde_json::Value::String(k.clone()),
                        canonical_json(v)
                    )
                })
                .collect();
            format!("{{{}}}", body.join(","))
        }
        serde_json::Value::Array(a) => format!(
            "[{}]",
            a.iter().map(canonical_json).collect::<Vec<_>>().join(",")
        ),
        other => other.to_string(),
    }
}

/// What a suite run did.
#[derive(Clone, Debug, Default)]
pub struct RunSummary {
    /// Runs finished and recorded by this call.
    pub done: usize,
    /// Runs skipped because their key was already recorded.
    pub skipped: usize,
    /// Runs that failed: key and error.
    pub failed: Vec<(String, String)>,
}

/// `git rev-parse HEAD` of the graft sources (or of the working directory), if git can say.
pub fn git_commit() -> Option<String> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let try_in = |dir: &Path| -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(["rev-parse", "HEAD"])
            .stderr(std::process::Stdio::null())
            .output()
            .ok()?;
        let s = String::from_utf8(out.stdout).ok()?.trim().to_string();
        (out.status.success() && !s.is_empty()).then_some(s)
    };
    try_in(manifest).or_else(|| try_in(Path::new(".")))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A built target task with its test images as one tensor, or why it could not be built.
type BuiltTask = std::result::Result<(Task, Tensor), String>;

struct Runner<'a> {
    suite: &'a Suite,
    opts: &'a RunOptions,
    device: Device,
    results_dir: PathBuf,
    datasets: HashMap<DatasetRef, Dataset>,
    sources: HashMap<usize, std::result::Result<Source, String>>,
    tasks: HashMap<(usize, (usize, usize, usize)), BuiltTask>,
    git_commit: Option<String>,
    /// Source name → the source hashes the recorded runs were made with.
    recorded_hashes: BTreeMap<String, BTreeSet<String>>,
}

/// Runs `suite` with `opts`: skips recorded runs, pretrains or reuses sources, appends one line
/// per finished run. Failed runs are reported and recorded in the summary, not in the file; the
/// call fails only on errors that stop everything (results file, source cache mismatch).
pub fn run_suite(suite: &Suite, opts: &RunOptions) -> Result<RunSummary> {
    let all = grid(suite)?;
    // Held until the run ends: a second whole-suite run on this file stops here.
    let _lock = ResultsLock::acquire(&opts.results, opts.shard.is_some())?;
    match &suite.description {
        Some(d) => println!("suite {}: {d}", suite.name),
        None => println!("suite {}", suite.name),
    }
    let selected: Vec<&GridEntry> = match opts.shard {
        None => all.iter().collect(),
        Some(s) => all
            .iter()
            .filter(|e| e.index % s.count == s.index)
            .collect(),
    };
    if let Some(s) = opts.shard {
        println!(
            "shard {s}: {} of {} grid entries",
            selected.len(),
            all.len()
        );
    }

    let folder = opts.results.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    let stale = ["sources", "deltas"].iter().flat_map(|d| graft_core::checkpoint::remove_stale_temp_files(&folder.join(d)));
    for tmp in stale.collect::<Vec<_>>() {
        println!("removed {} (left by an interrupted run)", tmp.display());
    }
    let existing = results::read_reporting(&opts.results)?;
    let mut finished: Vec<RunRecord> = existing.records.clone();
    let done: BTreeSet<&str> = existing.records.iter().map(|r| r.key.as_str()).collect();
    let stale: Vec<String> = all
        .iter()
        .filter_map(|e| {
            let r = existing.records.iter().find(|r| r.key == e.key)?;
            let recorded = r.settings_fingerprint.as_deref()?;
            (recorded != e.settings_fingerprint).then(|| format!("{} (recorded with settings {recorded}, the suite now gives {})", e.key, e.settings_fingerprint))
        })
        .collect();
    if !stale.is_empty() {
        bail!(
            "{} holds runs made with other source or task settings than suite {} now gives (a task's classes, domain or \
             sizes, or the source's training, were edited under the same names):\n  - {}\nuse a new results file, give the \
             edited task or source a new name, or delete those lines to run them again",
            opts.results.display(),
            suite.origin,
            stale.join("\n  - ")
        );
    }
    let mut summary = RunSummary::default();
    let mut pending = Vec::new();
    for e in selected {
        if done.contains(e.key.as_str()) {
            println!("skip {} (already in {})", e.key, opts.results.display());
            summary.skipped += 1;
        } else {
            pending.push(e);
        }
    }
    if pending.is_empty() && suite.sequences.is_empty() {
        println!(
            "nothing to run: {} runs already recorded in {}",
            summary.skipped,
            opts.results.display()
        );
        return Ok(summary);
    }

    let results_dir = opts
        .results
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut runner = Runner {
        suite,
        opts,
        device: Device::Cpu,
        results_dir,
        datasets: HashMap::new(),
        sources: HashMap::new(),
        tasks: HashMap::new(),
        git_commit: git_commit(),
        recorded_hashes: recorded_source_hashes(&finished),
    };

    // Sources first: a stale cache stops everything before any training (or any sequence
    // evaluation, which reloads deltas onto the cached sources).
    let evaluates_sequences = !suite.sequences.is_empty() && opts.shard.is_none();
    let needed: BTreeSet<usize> =
        pending.iter().map(|e| e.source).chain(all.iter().filter(|_| evaluates_sequences).map(|e| e.source)).collect();
    for &si in &needed {
        runner.check_cached_source(si)?;
    }

    let mut writer = ResultsWriter::open(&opts.results)?;
    let total = pending.len();
    let started = Instant::now();
    for (k, entry) in pending.into_iter().enumerate() {
        if opts.verbosity > Verbosity::Quiet {
            // The suite's ETA from the mean time of the runs finished so far.
            let eta = (k > 0).then(|| started.elapsed().as_secs_f64() / k as f64 * (total - k) as f64);
            eprintln!("[{}/{total}] {}{}", k + 1, entry.key, eta.map_or(String::new(), |s| format!("  (suite ETA {})", human_seconds(s))));
        }
        match runner.run_entry(entry) {
            Ok(record) => {
                writer.append(&record)?;
                finished.push(record.clone());
                summary.done += 1;
                if opts.verbosity == Verbosity::Quiet {
                    continue;
                }
                println!(
                    "done {}  test acc {:.4}  params {}  {:.1}s{}",
                    record.key,
                    record.test_accuracy,
                    human_count(record.footprint.trainable_params as f64),
                    record.train_seconds,
                    if record.reload_identical {
                        ""
                    } else {
                        "  (reloaded delta differs!)"
                    }
                );
            }
            Err(e) => {
                let msg = format!("{e:#}");
                eprintln!("FAILED {}: {msg}", entry.key);
                summary.failed.push((entry.key.clone(), msg));
            }
        }
    }
    println!(
        "{} runs done, {} skipped, {} failed; results in {}",
        summary.done,
        summary.skipped,
        summary.failed.len(),
        opts.results.display()
    );
    if !suite.sequences.is_empty() {
        if opts.shard.is_some() {
            println!(
                "sequences: not evaluated in a shard; once every shard has finished, run the suite again without --shard \
                 (it skips the finished runs and evaluates the sequences)"
            );
        } else {
            runner.run_sequences(&all, &finished, &mut summary)?;
        }
    }
    Ok(summary)
}

impl Runner<'_> {
    /// Evaluates every step of every sequence not yet recorded: after task `i` of a sequence,
    /// the reloaded deltas of tasks `0..=i` (from their grid runs) on their test splits.
    fn run_sequences(&mut self, grid: &[GridEntry], finished: &[RunRecord], summary: &mut RunSummary) -> Result<()> {
        let path = sequences_path(&self.opts.results);
        let (existing, _) = results::read_lines_reporting::<SequenceRecord>(&path)?;
        let done: BTreeSet<String> = existing.iter().map(|r| r.key.clone()).collect();
        let done_records: HashMap<String, SequenceRecord> = existing.into_iter().map(|r| (r.key.clone(), r)).collect();
        let run_by_key: HashMap<&str, &RunRecord> = finished.iter().map(|r| (r.key.as_str(), r)).collect();
        let mut writer = ResultsWriter::open(&path)?;
        let suite = self.suite;
        for q in &suite.sequences {
            let order: Vec<usize> = q
                .tasks
                .iter()
                .map(|n| suite.tasks.iter().position(|t| &t.spec.name == n).expect("validated"))
                .collect();
            for (si, source_entry) in suite.sources.iter().enumerate() {
                if !order.iter().all(|&ti| suite.tasks[ti].uses_source(&source_entry.name)) {
                    continue;
                }
                for method in suite.methods.iter().filter(|m| order.iter().all(|&ti| suite.tasks[ti].uses_method(m))) {
                    for &seed in &suite.seeds {
                        let entries: Vec<&GridEntry> = order
                            .iter()
                            .map(|&ti| {
                                grid.iter()
                                    .find(|e| e.source == si && e.task == ti && &e.method == method && e.seed == seed)
                                    .expect("every task of a sequence is in the grid")
                            })
                            .collect();
                        let continual = graft_core::registry::build(method, Some(&entries[0].config))?;
                        let continual = continual.continual();
                        // A continual method's deltas step by step (step 0's is its grid run's).
                        let mut carried: Vec<Delta> = Vec::new();
                        for step in 0..order.len() {
                            let key = step_key(&source_entry.name, &q.name, step, method, seed, &entries[0].config_hash);
                            if done.contains(&key) {
                                summary.skipped += 1;
                                if continual.is_some() {
                                    match self.recorded_step_delta(&done_records, &key, step, entries[0], &run_by_key) {
                                        Ok(d) => carried.push(d),
                                        Err(e) => {
                                            let msg = format!("{e:#}");
                                            eprintln!("FAILED {key}: {msg}");
                                            summary.failed.push((key, msg));
                                            break;
                                        }
                                    }
                                }
                                continue;
                            }
                            let outcome = match continual {
                                None => self.sequence_step(&key, &q.name, step, &entries[..=step], &run_by_key),
                                Some(c) => self.continual_step(c, &key, &q.name, step, &entries[..=step], &run_by_key, &mut carried),
                            };
                            match outcome {
                                Ok(record) => {
                                    writer.append(&record)?;
                                    summary.done += 1;
                                    let accs: Vec<String> =
                                        record.accuracies.iter().map(|a| format!("{} {:.4}", a.task, a.test_accuracy)).collect();
                                    println!("done {key}  {}", accs.join(", "));
                                }
                                Err(e) => {
                                    let msg = format!("{e:#}");
                                    eprintln!("FAILED {key}: {msg}");
                                    summary.failed.push((key, msg));
                                    // A continual method's later steps need this one.
                                    if continual.is_some() {
                                        break;
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        println!("sequences in {}", path.display());
        Ok(())
    }

    /// One sequence step: every task learned so far, its recorded delta reloaded and evaluated.
    fn sequence_step(
        &mut self,
        key: &str,
        sequence: &str,
        step: usize,
        entries: &[&GridEntry],
        runs: &HashMap<&str, &RunRecord>,
    ) -> Result<SequenceRecord> {
        let last = entries[entries.len() - 1];
        let input = self.suite.sources[last.source].input_shape();
        self.source(last.source).map_err(|e| anyhow!(e))?;
        let mut accuracies = Vec::new();
        for e in entries {
            let run = self.finished_run(e, runs)?;
            self.task(e.task, input).map_err(|m| anyhow!(m))?;
            let source = self.sources[&e.source].as_ref().map_err(|m| anyhow!(m.clone()))?;
            let (task, test_x) = self.tasks[&(e.task, input)].as_ref().map_err(|m| anyhow!(m.clone()))?;
            let model = graft_core::registry::load_task_model(source, &run.delta_file(&self.opts.results), &self.device)
                .with_context(|| format!("reloading the delta of '{}'", run.key))?;
            accuracies.push(evaluate(model.as_ref(), task, test_x)?);
        }
        let source_hash = self.sources[&last.source].as_ref().map_err(|m| anyhow!(m.clone()))?.hash.clone();
        Ok(self.step_record(key, sequence, step, last, source_hash, accuracies, None, None))
    }

    /// The record of one sequence step whose last task is `last`'s.
    #[allow(clippy::too_many_arguments)]
    fn step_record(
        &self,
        key: &str,
        sequence: &str,
        step: usize,
        last: &GridEntry,
        source_hash: String,
        accuracies: Vec<TaskAccuracy>,
        delta_path: Option<PathBuf>,
        train_seconds: Option<f32>,
    ) -> SequenceRecord {
        SequenceRecord {
            key: key.to_string(),
            suite: self.suite.name.clone(),
            sequence: sequence.to_string(),
            source: self.suite.sources[last.source].name.clone(),
            source_hash,
            method: last.method.clone(),
            seed: last.seed,
            config_hash: last.config_hash.clone(),
            step,
            task: self.suite.tasks[last.task].spec.name.clone(),
            accuracies,
            delta_path,
            train_seconds,
            git_commit: self.git_commit.clone(),
            timestamp: now_secs(),
        }
    }

    /// The finished grid run of `entry`, or an error naming its task and key.
    fn finished_run<'r>(&self, entry: &GridEntry, runs: &HashMap<&str, &'r RunRecord>) -> Result<&'r RunRecord> {
        runs.get(entry.key.as_str()).copied().ok_or_else(|| {
            anyhow!("task '{}' has no finished run '{}' (it failed or has not run yet)", self.suite.tasks[entry.task].spec.name, entry.key)
        })
    }

    /// The delta a continual method left at a recorded `step`: step 0's grid run's, or the one
    /// the step record names.
    fn recorded_step_delta(
        &self,
        records: &HashMap<String, SequenceRecord>,
        key: &str,
        step: usize,
        first: &GridEntry,
        runs: &HashMap<&str, &RunRecord>,
    ) -> Result<Delta> {
        let path = if step == 0 {
            self.finished_run(first, runs)?.delta_file(&self.opts.results)
        } else {
            let rel = records[key].delta_path.clone().ok_or_else(|| {
                anyhow!("the recorded step {key} names no delta, so the steps after it cannot go on from it; remove its line from the sequences file to fit it again")
            })?;
            self.results_dir.join(rel)
        };
        Delta::load(&path, &self.device).with_context(|| format!("reloading the delta of sequence step {key} from {}", path.display()))
    }

    /// One step of a continual method (sequential fine-tuning): the step's task fitted from the
    /// network the previous step left (step 0: its grid run), its delta saved, then every task
    /// so far evaluated with its own head on the network as it is now.
    #[allow(clippy::too_many_arguments)]
    fn continual_step(
        &mut self,
        method: &dyn graft_core::ContinualMethod,
        key: &str,
        sequence: &str,
        step: usize,
        entries: &[&GridEntry],
        runs: &HashMap<&str, &RunRecord>,
        carried: &mut Vec<Delta>,
    ) -> Result<SequenceRecord> {
        let last = entries[entries.len() - 1];
        let input = self.suite.sources[last.source].input_shape();
        self.source(last.source).map_err(|e| anyhow!(e))?;
        for e in entries {
            self.task(e.task, input).map_err(|m| anyhow!(m))?;
        }
        if carried.len() != step {
            bail!("sequence step {key}: the steps before it are not all available");
        }
        let source = self.sources[&last.source].as_ref().map_err(|m| anyhow!(m.clone()))?;
        let (delta, delta_path, train_seconds) = if step == 0 {
            let run = self.finished_run(last, runs)?;
            let path = run.delta_file(&self.opts.results);
            let delta = Delta::load(&path, &self.device).with_context(|| format!("reloading the delta of '{}'", run.key))?;
            (delta, None, run.train_seconds)
        } else {
            let (task, _) = self.tasks[&(last.task, input)].as_ref().map_err(|m| anyhow!(m.clone()))?;
            let start = Instant::now();
            let mut ctx = FitContext::new(self.device.clone(), last.seed);
            ctx.progress = self.opts.progress;
            let model = method.fit_after(source, &carried[step - 1], task, &mut ctx)?;
            let train_seconds = start.elapsed().as_secs_f32();
            let mut delta = model.delta()?;
            delta.task = Some(TaskInfo {
                name: task.name.clone(),
                class_names: task.class_names.clone(),
                fit: self.suite.tasks[last.task].spec.fit.to_string(),
            });
            let rel = PathBuf::from("deltas").join(format!("{key}.safetensors"));
            let path = self.results_dir.join(&rel);
            delta.save(&path).with_context(|| format!("saving the delta to {}", path.display()))?;
            (delta, Some(rel), train_seconds)
        };
        carried.push(delta);
        let mut accuracies = Vec::new();
        for (i, e) in entries.iter().enumerate() {
            let (task, test_x) = self.tasks[&(e.task, input)].as_ref().map_err(|m| anyhow!(m.clone()))?;
            let model = method.as_of(source, &carried[i], &carried[step]).with_context(|| format!("task '{}' as of step {step}", task.name))?;
            accuracies.push(evaluate(model.as_ref(), task, test_x)?);
        }
        Ok(self.step_record(key, sequence, step, last, source.hash.clone(), accuracies, delta_path, Some(train_seconds)))
    }

    fn source_paths(&self, entry: &SourceEntry) -> (PathBuf, PathBuf) {
        let dir = self.opts.sources.clone().unwrap_or_else(|| self.results_dir.join("sources"));
        (
            dir.join(format!("{}.safetensors", entry.name)),
            dir.join(format!("{}.json", entry.name)),
        )
    }

    fn dataset(&mut self, dataset: &DatasetRef) -> Result<&Dataset> {
        if !self.datasets.contains_key(dataset) {
            let d = Dataset::load(dataset, &self.opts.data_dir)?;
            self.datasets.insert(dataset.clone(), d);
        }
        Ok(&self.datasets[dataset])
    }

    fn build_task(&mut self, spec: &TaskSpec, input: (usize, usize, usize)) -> Result<Task> {
        let data = self.dataset(&spec.dataset)?;
        Ok(spec.build_from(data, input)?)
    }

    /// When a cached checkpoint exists for source `si`, loads it and checks it against the suite;
    /// a mismatch is an error naming the files to delete.
    fn check_cached_source(&mut self, si: usize) -> Result<()> {
        let entry = &self.suite.sources[si];
        if entry.checkpoint.is_some() {
            return self.load_checkpoint_source(si);
        }
        let task = entry.pretraining_task()?;
        let (path, sidecar) = self.source_paths(entry);
        if !path.exists() {
            return Ok(());
        }
        let source = Source::load(&path, &self.device).with_context(|| {
            format!(
                "source '{}': cannot read the cached checkpoint; delete {} to pretrain it again",
                entry.name,
                path.display()
            )
        })?;
        let mut diffs = source_mismatch(entry, task, &source);
        if let Some(recorded) = self.recorded_other_than(&entry.name, &source.hash) {
            diffs.push(format!(
                "its content hashes to {} but the runs recorded in {} were made with {recorded} (the file was damaged or replaced)",
                source.short_hash(),
                self.opts.results.display(),
            ));
        }
        match std::fs::read_to_string(&sidecar) {
            Ok(text) => match serde_json::from_str::<SourceEntry>(&text) {
                Ok(stored) => diffs.extend(entry_differences(&stored, entry)),
                Err(e) => diffs.push(format!("{} cannot be read ({e})", sidecar.display())),
            },
            Err(_) => diffs.push(format!(
                "its settings file {} is missing, so the settings it was pretrained with cannot be checked",
                sidecar.display()
            )),
        }
        if !diffs.is_empty() {
            bail!(
                "source '{}': the cached checkpoint {} does not match suite {}:\n  - {}\ndelete {} and {} to pretrain it again (or give the source a new name)",
                entry.name,
                path.display(),
                self.suite.origin,
                diffs.join("\n  - "),
                path.display(),
                sidecar.display()
            );
        }
        println!(
            "source {}: reusing {} ({}, test acc {:.4}, hash {})",
            entry.name,
            path.display(),
            source.backbone.spec().id(),
            source.provenance.test_accuracy,
            source.short_hash()
        );
        self.sources.insert(si, Ok(source));
        Ok(())
    }

    /// The source of entry `si`: cached (loaded and checked against the suite by
    /// [`Runner::check_cached_source`], never overwritten), or pretrained now and saved with its
    /// sidecar when no checkpoint exists.
    fn source(&mut self, si: usize) -> std::result::Result<&Source, String> {
        if !self.sources.contains_key(&si) {
            if let Err(e) = self.check_cached_source(si) {
                self.sources.insert(si, Err(format!("{e:#}")));
            }
        }
        if !self.sources.contains_key(&si) {
            let r = self.pretrain_source(si).map_err(|e| {
                format!(
                    "pretraining source '{}': {e:#}",
                    self.suite.sources[si].name
                )
            });
            self.sources.insert(si, r);
        }
        self.sources[&si].as_ref().map_err(Clone::clone)
    }

    /// The source hashes the recorded runs of source `name` were made with (shortened, joined),
    /// when `hash` is not among them; `None` when it is, or when nothing is recorded.
    fn recorded_other_than(&self, name: &str, hash: &str) -> Option<String> {
        let recorded = self.recorded_hashes.get(name).filter(|h| !h.contains(hash))?;
        Some(recorded.iter().map(|h| abbrev(h, 12)).collect::<Vec<_>>().join(", "))
    }

    /// Loads source `si` from its `checkpoint` (a graft source, or a state dict imported into
    /// the entry's architecture) and checks it is the source the recorded runs were made with.
    fn load_checkpoint_source(&mut self, si: usize) -> Result<()> {
        let entry = &self.suite.sources[si];
        let path = entry.checkpoint.clone().context("a checkpoint source")?;
        let opts = ImportOptions {
            strict: entry.strict.unwrap_or(true),
            strip_prefix: entry.strip_prefix.clone(),
            seed: entry.seed,
        };
        // The head's size comes from the file.
        let imported = source_from_checkpoint(&path, &entry.backbone_spec(0), &opts, &self.device)
            .with_context(|| format!("source '{}'", entry.name))?;
        if let Some(report) = imported.report.as_ref().filter(|r| !r.is_clean()) {
            eprintln!("source {}: imported {} non-strictly: {}", entry.name, path.display(), report.problems().join("; "));
        }
        let source = imported.source;
        if let Some(recorded) = self.recorded_other_than(&entry.name, &source.hash) {
            bail!(
                "source '{}': {} now gives source {} but the runs recorded in {} were made with {recorded}: the file changed; \
                 restore it, or record the new file's runs under another source name or results file",
                entry.name,
                path.display(),
                source.short_hash(),
                self.opts.results.display(),
            );
        }
        println!(
            "source {}: {} from {} ({} classes, hash {})",
            entry.name,
            source.backbone.spec().id(),
            path.display(),
            source.backbone.spec().num_classes,
            source.short_hash()
        );
        self.sources.insert(si, Ok(source));
        Ok(())
    }

    fn pretrain_source(&mut self, si: usize) -> Result<Source> {
        let entry = self.suite.sources[si].clone();
        let (path, sidecar) = self.source_paths(&entry);
        let task = self.build_task(entry.pretraining_task()?, entry.input_shape())?;
        // A cache of the same name beside the suite's own results file is not this run's cache:
        // say so, rather than silently pretraining a second source under the same name.
        let default_cache = self.suite.results_path(None).parent().map(|d| d.join("sources").join(format!("{}.safetensors", entry.name)));
        if let Some(other) = default_cache.filter(|p| p.exists() && *p != path && self.opts.sources.is_none()) {
            eprintln!(
                "source {}: {} exists but this run caches sources beside {}; pretraining another. \
                 Pass --sources {} to use that cache instead.",
                entry.name,
                other.display(),
                self.opts.results.display(),
                other.parent().map_or(String::new(), |d| d.display().to_string())
            );
        }
        eprintln!(
            "source {}: pretraining {} on {} ({} train images, {} epochs)",
            entry.name,
            entry.backbone_spec(task.num_classes).id(),
            task.name,
            task.train.len(),
            entry.train.epochs
        );
        let mut ctx = FitContext::new(self.device.clone(), entry.seed);
        ctx.progress = self.opts.progress;
        let (source, report) = graft_core::pretrain::pretrain(
            entry.backbone_spec(task.num_classes),
            &task,
            &entry.train,
            &mut ctx,
        )?;
        // The settings first: a kill between the two writes leaves settings without a checkpoint
        // (pretrained again on resume), never a checkpoint without its settings (refused).
        let sidecar_json =
            serde_json::to_string_pretty(&entry).context("source entry serialises")?;
        write_atomic(&sidecar, sidecar_json.as_bytes())?;
        // The saved bytes are deterministic, so the in-memory hash is the file's hash.
        source.save(&path)?;
        println!(
            "source {}: test acc {:.4}, {} params, {} FLOPs/img, {:.1}s, hash {} -> {}",
            entry.name,
            source.provenance.test_accuracy,
            human_count(source.backbone.num_params() as f64),
            human_count(source.backbone.flops_per_image() as f64),
            report.seconds,
            source.short_hash(),
            path.display()
        );
        Ok(source)
    }

    /// The target task `ti` fitted to `input`, with its test images as a tensor.
    fn task(
        &mut self,
        ti: usize,
        input: (usize, usize, usize),
    ) -> std::result::Result<&(Task, Tensor), String> {
        if !self.tasks.contains_key(&(ti, input)) {
            let spec = self.suite.tasks[ti].spec.clone();
            let r = self
                .build_task(&spec, input)
                .and_then(|t| {
                    let x = t.test.images_tensor(&self.device)?;
                    Ok((t, x))
                })
                .map_err(|e| format!("building task '{}': {e:#}", spec.name));
            self.tasks.insert((ti, input), r);
        }
        self.tasks[&(ti, input)].as_ref().map_err(Clone::clone)
    }

    fn run_entry(&mut self, entry: &GridEntry) -> Result<RunRecord> {
        let input = self.suite.sources[entry.source].input_shape();
        self.source(entry.source).map_err(|e| anyhow!(e))?;
        self.task(entry.task, input).map_err(|e| anyhow!(e))?;
        let source = self.sources[&entry.source]
            .as_ref()
            .map_err(|e| anyhow!(e.clone()))?;
        let (task, test_x) = self.tasks[&(entry.task, input)]
            .as_ref()
            .map_err(|e| anyhow!(e.clone()))?;
        self.fit_and_record(entry, source, task, test_x)
    }

    fn fit_and_record(
        &self,
        entry: &GridEntry,
        source: &Source,
        task: &Task,
        test_x: &Tensor,
    ) -> Result<RunRecord> {
        let source_name = &self.suite.sources[entry.source].name;
        if task.test.is_empty() {
            bail!("task '{}' has an empty test split", task.name);
        }
        // The grid entry's full config: the method's table, or one candidate combination.
        let method = graft_core::registry::build(&entry.method, Some(&entry.config))?;

        let mut epochs: Vec<EpochMetrics> = Vec::new();
        let mut curve: Vec<CurvePoint> = Vec::new();
        let start = Instant::now();
        let model = {
            // One line per epoch where no bar shows progress (a scheduler's log, say).
            let log_epochs = match self.opts.verbosity {
                Verbosity::Quiet => false,
                Verbosity::Normal => !self.opts.progress,
                Verbosity::Verbose => true,
            };
            let planned = method.config_json()["train"]["epochs"].as_u64();
            let mut on_epoch = |m: &EpochMetrics| {
                if log_epochs {
                    eprintln!("{}", epoch_line(&entry.key, m, planned));
                }
                epochs.push(m.clone())
            };
            let mut on_curve = |p: &CurvePoint| curve.push(p.clone());
            let mut ctx = FitContext::new(self.device.clone(), entry.seed);
            ctx.progress = self.opts.progress;
            ctx.on_epoch = Some(&mut on_epoch);
            ctx.eval_every_steps = self.suite.eval_every_steps;
            ctx.on_curve = Some(&mut on_curve);
            method.fit(source, task, &mut ctx)?
        };
        let train_seconds = start.elapsed().as_secs_f32();

        // Test accuracy, keeping the logits for the reload check.
        let chunks = RefCell::new(Vec::new());
        let forward = |x: &Tensor| {
            let y = model.forward(x)?;
            chunks.borrow_mut().push(y.clone());
            Ok(y)
        };
        let test_accuracy = accuracy(
            &forward,
            Split {
                x: test_x,
                y: &task.test.labels,
            },
            EVAL_BATCH,
        )?;
        let logits = Tensor::cat(&chunks.into_inner(), 0)?;

        // Recorded relative to the results file's folder, so the folder can be moved whole.
        let delta_rel = PathBuf::from("deltas").join(format!("{}.safetensors", entry.key));
        let delta_path = self.results_dir.join(&delta_rel);
        // With its task's class names and image fitting, so that it can predict on its own.
        let mut delta = model.delta()?;
        delta.task = Some(TaskInfo {
            name: task.name.clone(),
            class_names: task.class_names.clone(),
            fit: self.suite.tasks[entry.task].spec.fit.to_string(),
        });
        delta.save(&delta_path).with_context(|| format!("saving the delta to {}", delta_path.display()))?;
        let (reload_identical, reload_max_abs_diff, reload_error) =
            match reload_check(source, &delta_path, &self.device, test_x, &logits) {
                Ok((same, diff)) => (same, Some(diff), None),
                Err(e) => {
                    eprintln!("warning: {}: reloading the delta failed: {e:#}", entry.key);
                    (false, None, Some(format!("{e:#}")))
                }
            };

        // Validation accuracy of the returned model: what the selection protocol compares.
        let val_accuracy = if task.val.is_empty() {
            None
        } else {
            let vx = task.val.images_tensor(&self.device)?;
            Some(accuracy(&|x: &Tensor| model.forward(x), Split { x: &vx, y: &task.val.labels }, EVAL_BATCH)?)
        };
        let best_val_accuracy = epochs
            .iter()
            .filter_map(|m| m.val_acc)
            .fold(None, |b: Option<f32>, a| Some(b.map_or(a, |b| b.max(a))));
        Ok(RunRecord {
            key: entry.key.clone(),
            suite: self.suite.name.clone(),
            source: source_name.clone(),
            source_hash: source.hash.clone(),
            backbone: source.backbone.spec().id(),
            task: task.name.clone(),
            task_provenance: task.provenance.clone(),
            num_classes: task.num_classes,
            train_size: task.train.len(),
            test_size: task.test.len(),
            method: entry.method.clone(),
            seed: entry.seed,
            config: entry.config.clone(),
            config_hash: entry.config_hash.clone(),
            test_accuracy,
            best_val_accuracy,
            val_accuracy,
            candidate: entry.candidate.clone().map(|label| CandidateTag { label, select_by: self.suite.select_by }),
            footprint: model.footprint(),
            train_seconds,
            epochs,
            curve,
            metrics: model.metrics(),
            reload_identical,
            reload_max_abs_diff,
            reload_error,
            delta_path: delta_rel,
            settings_fingerprint: Some(entry.settings_fingerprint.clone()),
            axis: self.suite.tasks[entry.task].axis.clone(),
            graft_version: GRAFT_VERSION.to_string(),
            git_commit: self.git_commit.clone(),
            timestamp: now_secs(),
        })
    }
}

/// Logits of `model` for all of `x`, in batches.
/// `model`'s test accuracy on `task` and the SHA-256 of its test logits.
fn evaluate(model: &dyn TaskModel, task: &Task, test_x: &Tensor) -> Result<TaskAccuracy> {
    let logits = logits_of(model, test_x)?;
    let preds = graft_core::backbone::argmax(&logits)?;
    let correct = preds.iter().zip(&task.test.labels).filter(|(p, y)| p == y).count();
    let bytes: Vec<u8> = logits.flatten_all()?.to_vec1::<f32>()?.iter().flat_map(|v| v.to_le_bytes()).collect();
    Ok(TaskAccuracy { task: task.name.clone(), test_accuracy: correct as f32 / task.test.len().max(1) as f32, logits_sha256: sha256_hex(&bytes) })
}

fn logits_of(model: &dyn TaskModel, x: &Tensor) -> Result<Tensor> {
    let n = x.dim(0)?;
    let mut parts = Vec::new();
    let mut i = 0;
    while i < n {
        let len = EVAL_BATCH.min(n - i);
        parts.push(model.forward(&x.narrow(0, i, len)?)?);
        i += len;
    }
    Ok(Tensor::cat(&parts, 0)?)
}

/// Reloads the delta at `path` and compares its logits on `x` with `expected`: (bit-identical,
/// max |difference|). A delta that needs no source is reloaded without it, which shows that it
/// really runs on its own.
fn reload_check(
    source: &Source,
    path: &Path,
    device: &Device,
    x: &Tensor,
    expected: &Tensor,
) -> Result<(bool, f32)> {
    let reloaded = if Delta::load(path, device)?.needs_source {
        graft_core::registry::load_task_model(source, path, device)?
    } else {
        graft_core::registry::load_standalone(path, device)?
    };
    let got = logits_of(reloaded.as_ref(), x)?;
    if got.dims() != expected.dims() {
        bail!(
            "reloaded logits have shape {:?}, the fitted model's {:?}",
            got.dims(),
            expected.dims()
        );
    }
    let a = got.flatten_all()?.to_vec1::<f32>()?;
    let b = expected.flatten_all()?.to_vec1::<f32>()?;
    let identical = a.iter().zip(&b).all(|(x, y)| x.to_bits() == y.to_bits());
    let diff = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, |m, d| if d.is_nan() { f32::NAN } else { m.max(d) });
    Ok((identical, diff))
}

/// JSON of `v` as it reads back from text (so `f32` fields compare by their printed value).
fn json_of<T: serde::Serialize>(v: &T) -> serde_json::Value {
    serde_json::to_string(v)
        .ok()
        .and_then(|s| serde_json::from_str(&s).ok())
        .unwrap_or(serde_json::Value::Null)
}

/// Source name → the hashes of the sources that the recorded runs were made with.
fn recorded_source_hashes(records: &[RunRecord]) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for r in records {
        out.entry(r.source.clone()).or_default().insert(r.source_hash.clone());
    }
    out
}

/// The settings that differ between the source entry a checkpoint was pretrained with (`stored`)
/// and the suite's (`want`), as `key.subkey: was X, the suite says Y`.
fn entry_differences(stored: &SourceEntry, want: &SourceEntry) -> Vec<String> {
    let (a, b) = (json_of(stored), json_of(want));
    let mut diffs = Vec::new();
    for key in ["arch", "input", "task", "train", "seed"] {
        let (x, y) = (a.get(key), b.get(key));
        if x == y {
            continue;
        }
        match (x, y) {
            (Some(serde_json::Value::Object(x)), Some(serde_json::Value::Object(y))) => {
                let subkeys: BTreeSet<&String> = x.keys().chain(y.keys()).collect();
                for k in subkeys {
                    if x.get(k) != y.get(k) {
                        let show = |v: Option<&serde_json::Value>| {
                            v.map_or("unset".to_string(), |v| v.to_string())
                        };
                        diffs.push(format!(
                            "{key}.{k}: was {} when pretrained, the suite says {}",
                            show(x.get(k)),
                            show(y.get(k))
                        ));
                    }
                }
            }
            _ => diffs.push(format!(
                "{key}: was {} when pretrained, the suite says {}",
                x.map_or("unset".to_string(), |v| v.to_string()),
                y.map_or("unset".to_string(), |v| v.to_string())
            )),
        }
    }
    diffs
}

/// A log line for one finished epoch of run `key`: loss, accuracies, time and the run's ETA when
/// its planned epochs are known.
fn epoch_line(key: &str, m: &EpochMetrics, planned: Option<u64>) -> String {
    let done = m.epoch + 1;
    let mut line = match planned {
        Some(p) => format!("{key} epoch {done}/{p}"),
        None => format!("{key} epoch {done}"),
    };
    line.push_str(&format!("  loss {:.4}  train acc {:.4}", m.train_loss, m.train_acc));
    if let Some(v) = m.val_acc {
        line.push_str(&format!("  val acc {v:.4}"));
    }
    line.push_str(&format!("  {:.1}s", m.elapsed_sec));
    if let Some(p) = planned.filter(|&p| p > done as u64) {
        let eta = f64::from(m.elapsed_sec) / done as f64 * (p - done as u64) as f64;
        line.push_str(&format!("  ETA {}", human_seconds(eta)));
    }
    line
}

/// Seconds as `42s`, `3m07s` or `1h05m`.
fn human_seconds(s: f64) -> String {
    let s = s.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, s % 3600 / 60),
    }
}

/// Differences between a cached source checkpoint and the suite's entry (spec and provenance).
fn source_mismatch(entry: &SourceEntry, task: &TaskSpec, source: &Source) -> Vec<String> {
    let spec = source.backbone.spec();
    let prov = &source.provenance;
    let mut diffs = Vec::new();
    if spec.arch != entry.arch {
        diffs.push(format!(
            "arch is {:?}, the suite says {:?}",
            spec.arch, entry.arch
        ));
    }
    if spec.input.shape() != entry.input_shape() {
        diffs.push(format!(
            "input is {:?}, the suite says {:?}",
            spec.input.shape(),
            entry.input_shape()
        ));
    }
    match task.num_classes() {
        Ok(classes) if classes != spec.num_classes => diffs.push(format!(
            "it has {} classes, the suite's task '{}' has {classes}",
            spec.num_classes, task.name
        )),
        Ok(_) => {}
        Err(e) => diffs.push(format!("the suite's task '{}' cannot be read: {e}", task.name)),
    }
    if prov.seed != entry.seed {
        diffs.push(format!(
            "it was pretrained with seed {}, the suite says {}",
            prov.seed, entry.seed
        ));
    }
    if !prov.dataset.starts_with(&format!("{} (", task.name)) {
        diffs.push(format!(
            "it was pretrained on '{}', the suite's task is '{}'",
            prov.dataset, task.name
        ));
    }
    let epochs_ok = match entry.train.patience {
        None => prov.epochs == entry.train.epochs,
        Some(_) => prov.epochs <= entry.train.epochs,
    };
    if !epochs_ok {
        diffs.push(format!(
            "it was pretrained for {} epochs, the suite says {}",
            prov.epochs, entry.train.epochs
        ));
    }
    diffs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_grid_runs_a_method_only_on_the_tasks_that_take_it() {
        let text = r#"
name = "t"
methods = ["linear-probe", "fine-tune"]
[[sources]]
name = "s"
arch = "resnet-cifar-8-w4"
input = [1, 8, 8]
task = { name = "d04", dataset = "digits", classes = [0, 1, 2, 3, 4] }
[[tasks]]
name = "a"
dataset = "digits"
skip_methods = ["fine-tune"]
[[tasks]]
name = "b"
dataset = "digits"
methods = ["fine-tune"]
"#;
        let suite = Suite::parse(text, "x.toml").unwrap();
        let cells: Vec<(usize, String)> = grid(&suite).unwrap().into_iter().map(|e| (e.task, e.method)).collect();
        assert_eq!(cells, [(0, "linear-probe".to_string()), (1, "fine-tune".to_string())]);
    }

    #[test]
    fn shard_parsing() {
        assert_eq!(
            "1/3".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 3 }
        );
        assert!("3/3".parse::<Shard>().unwrap_err().contains("out of range"));
        assert!("0/0".parse::<Shard>().unwrap_err().contains("at least 1"));
        assert!("x".parse::<Shard>().unwrap_err().contains("i/n"));
    }

    #[test]
    fn source_entry_differences_name_the_keys() {
        let text = r#"
            name = "s"
            arch = { name = "resnet-cifar", depth = 8, width = 4 }
            input = [1, 8, 8]
            task = { name = "t", dataset = "digits", classes = [0, 1], val_fraction = 0.2 }
            train = { epochs = 2, lr = 0.1 }
        "#;
        let a: SourceEntry = toml::from_str(text).unwrap();
        // Through JSON text and back: f32 fields must not differ.
        let b: SourceEntry =
            serde_json::from_str(&serde_json::to_string_pretty(&a).unwrap()).unwrap();
        assert!(
            entry_differences(&b, &a).is_empty(),
            "{:?}",
            entry_differences(&b, &a)
        );
        let mut c = a.clone();
        c.train.lr = 0.2;
        c.seed = 3;
        let d = entry_differences(&a, &c);
        assert_eq!(d.len(), 2, "{d:?}");
        assert!(
            d[0].starts_with("train.lr: was 0.1") && d[1].starts_with("seed: was 0"),
            "{d:?}"
        );
    }

    #[test]
    fn every_committed_suite_loads_and_names_only_taps_and_convs_its_sources_have() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files: Vec<PathBuf> = vec![root.join("suites/quick.toml"), root.join("../fuzz/seed-suite.toml")];
        for dir in std::fs::read_dir(root.join("experiments")).unwrap() {
            for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
                files.push(f.unwrap().path());
            }
        }
        assert!(files.len() > 20, "{files:?}");
        for f in files {
            let suite = Suite::load(&f).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
            grid(&suite).unwrap_or_else(|e| panic!("{}: {e:#}", f.display()));
        }
    }

    #[test]
    fn epoch_lines_give_the_runs_eta_from_its_mean_epoch() {
        let m = EpochMetrics { epoch: 1, train_loss: 0.5, train_acc: 0.75, val_acc: Some(0.8), lr_factor: 1.0, images_per_sec: 10.0, elapsed_sec: 30.0, train_flops_per_image: None };
        // 2 of 10 epochs in 30 s: 8 more at 15 s each.
        assert_eq!(epoch_line("k", &m, Some(10)), "k epoch 2/10  loss 0.5000  train acc 0.7500  val acc 0.8000  30.0s  ETA 2m00s");
        assert_eq!(epoch_line("k", &EpochMetrics { val_acc: None, ..m.clone() }, None), "k epoch 2  loss 0.5000  train acc 0.7500  30.0s");
        assert_eq!(epoch_line("k", &m, Some(2)), "k epoch 2/2  loss 0.5000  train acc 0.7500  val acc 0.8000  30.0s");
        assert_eq!((human_seconds(59.4), human_seconds(187.0), human_seconds(3900.0)), ("59s".into(), "3m07s".into(), "1h05m".into()));
    }

    #[test]
    fn canonical_json_sorts_keys() {
        let v = serde_json::json!({"b": [1, {"d": 2, "c": "x"}], "a": null});
        assert_eq!(canonical_json(&v), r#"{"a":null,"b":[1,{"c":"x","d":2}]}"#);
    }
}
