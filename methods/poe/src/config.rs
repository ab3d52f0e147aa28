//! `PoeConfig`: the primitive tasks, the library, the experts and the data the pool is
//! distilled on. `Default` is the paper's setting where the paper gives one (DESIGN.md, issue 16).

use graft_core::optim::{OptimizerKind, Schedule};
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use graft_datasets::{DatasetName, TaskSpec, FASHION_SUPERCLASSES};
use serde::{Deserialize, Serialize};

/// A primitive task: a named group of the oracle's classes, served by one expert.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PrimitiveTask {
    /// Name used in queries, e.g. `footwear`.
    pub name: String,
    /// The oracle's class ids it holds (its expert outputs them in ascending order).
    pub classes: Vec<u32>,
}

/// The library: the lower part of a small WRN distilled from the oracle, then frozen.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LibraryConfig {
    /// Depth of the small WRN, `6n + 4`. paper (reference code): 16 (WRN-16-1).
    pub depth: usize,
    /// Widen factor of the small WRN. paper (reference code): 1.
    pub widen: usize,
    /// Distillation temperature T. paper: 4.
    pub temperature: f64,
    /// Training of the whole small WRN by KD (the library is its stem and first two stages).
    /// paper recipe: SGD momentum 0.9, wd 5e-4, lr 0.1 ÷ 10 at 40 % and 80 % of the epochs.
    pub train: TrainConfig,
}

/// The experts: the small WRN's last stage at a fraction of its width, plus BN and FC.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ExpertConfig {
    /// Width of an expert's stage relative to the library network's last stage. paper: 0.25.
    pub width: f64,
    /// Temperature T of conditional KD. paper: 4.
    pub temperature: f64,
    /// Weight α of the L1 term `mean |z_E − z_O[H]|`. paper: 0.3.
    pub alpha: f64,
    /// Training of each expert (same recipe as the library's).
    pub train: TrainConfig,
}

/// The images the pool is distilled on (conditional KD needs the oracle's outputs, not labels).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum PoolData {
    /// The training split of the task being fitted (for synthetic tests; the pool is then
    /// specific to that task's images).
    Task,
    /// The training split of this task spec, built for the oracle's input (paper: all of the
    /// oracle's training data).
    Dataset(TaskSpec),
}

/// Configuration of Pool of Experts.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PoeConfig {
    /// The primitive tasks, one expert each. Default: the Fashion-MNIST superclasses of
    /// graft-datasets (`tops`, `footwear`, `other`).
    pub groups: Vec<PrimitiveTask>,
    /// The library network and its distillation.
    pub library: LibraryConfig,
    /// The experts and their conditional distillation.
    pub expert: ExpertConfig,
    /// Images the pool is distilled on. Default: a 5,000-image stratified Fashion-MNIST
    /// training slice (the paper uses all training data; scaled to 2 CPU cores).
    pub data: PoolData,
    /// Seed of pool preparation; `None`: the run's seed.
    pub pool_seed: Option<u64>,
}

/// The paper's optimiser recipe over `epochs` (lr 0.1 divided by 10 at 40 % and 80 %, which a
/// step schedule hits exactly when `epochs` is a multiple of 5).
pub fn paper_train(epochs: usize) -> TrainConfig {
    let mut t = TrainConfig::default().with(epochs, OptimizerKind::Sgd, 0.1);
    t.momentum = 0.9;
    t.weight_decay = 5e-4;
    t.batch_size = 64;
    t.schedule = Schedule::Step { every: (epochs * 2).div_ceil(5).max(1), gamma: 0.1 };
    t
}

impl Default for LibraryConfig {
    fn default() -> Self {
        Self { depth: 16, widen: 1, temperature: 4.0, train: paper_train(5) }
    }
}

impl Default for ExpertConfig {
    fn default() -> Self {
        Self { width: 0.25, temperature: 4.0, alpha: 0.3, train: paper_train(5) }
    }
}

/// The default pool data: 5,000 training images of Fashion-MNIST, all classes.
pub fn default_pool_data() -> TaskSpec {
    let mut spec = TaskSpec::new("poe-pool-fashion-5k", DatasetName::FashionMnist);
    spec.max_train = Some(5000);
    spec.max_val = Some(500);
    spec.max_test = Some(500);
    spec
}

impl Default for PoeConfig {
    fn default() -> Self {
        Self {
            groups: FASHION_SUPERCLASSES
                .iter()
                .map(|(name, classes)| PrimitiveTask { name: name.to_string(), classes: classes.to_vec() })
                .collect(),
            library: LibraryConfig::default(),
            expert: ExpertConfig::default(),
            data: PoolData::Dataset(default_pool_data()),
            pool_seed: None,
        }
    }
}

impl MethodConfig for PoeConfig {
    fn validate(&self) -> std::result::Result<(), String> {
        if self.groups.is_empty() {
            return Err("groups: at least one primitive task is needed".into());
        }
        let mut seen = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for g in &self.groups {
            if g.name.is_empty() || g.name.contains(',') {
                return Err(format!("groups: name '{}' must be non-empty and free of commas", g.name));
            }
            if !names.insert(g.name.clone()) {
                return Err(format!("groups: primitive task '{}' is listed twice", g.name));
            }
            if g.classes.is_empty() {
                return Err(format!("groups: primitive task '{}' has no classes", g.name));
            }
            for c in &g.classes {
                if !seen.insert(*c) {
                    return Err(format!("groups: class {c} is in more than one primitive task"));
                }
            }
        }
        if self.library.depth < 10 || (self.library.depth - 4) % 6 != 0 {
            return Err(format!("library.depth must be 6n+4 (10, 16, 22, ...), got {}", self.library.depth));
        }
        if self.library.widen == 0 {
            return Err("library.widen must be at least 1".into());
        }
        if !(self.expert.width.is_finite() && self.expert.width > 0.0) {
            return Err(format!("expert.width must be positive, got {}", self.expert.width));
        }
        for (key, t) in [("library.temperature", self.library.temperature), ("expert.temperature", self.expert.temperature)] {
            if !(t.is_finite() && t > 0.0) {
                return Err(format!("{key} must be positive, got {t}"));
            }
        }
        if !(self.expert.alpha.is_finite() && self.expert.alpha >= 0.0) {
            return Err(format!("expert.alpha must be >= 0, got {}", self.expert.alpha));
        }
        self.library.train.validate().map_err(|m| format!("library.{m}"))?;
        self.expert.train.validate().map_err(|m| format!("expert.{m}"))?;
        if let PoolData::Dataset(spec) = &self.data {
            spec.validate().map_err(|e| format!("data.dataset: {e}"))?;
        }
        Ok(())
    }
}
