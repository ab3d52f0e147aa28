//! The `tli` method's configuration: the student architecture, how it starts, the injection
//! settings and its training schedule.

use graft_core::backbone::Arch;
use graft_core::init::WeightInit;
use graft_core::optim::{OptimizerKind, Schedule};
use graft_core::registry::MethodConfig;
use graft_core::train::TrainConfig;
use serde::{Deserialize, Serialize};

/// How the student's weights start.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum StudentInit {
    /// Transfer learning by injection from the frozen source (the teacher); tensors without a
    /// match keep the `fallback_init` values.
    Tli,
    /// Kaiming-normal convs, PyTorch-default linear layers (no injection).
    Kaiming,
    /// Xavier-uniform conv and linear weights, zero biases (no injection).
    #[serde(alias = "xavier")]
    XavierUniform,
    /// Xavier-normal conv and linear weights, zero biases (no injection).
    XavierNormal,
}

impl StudentInit {
    /// The random initialisation of a fresh student (for `tli`: `fallback`, which the injection
    /// then overwrites where it finds a match).
    pub fn weight_init(self, fallback: WeightInit) -> WeightInit {
        match self {
            StudentInit::Tli => fallback,
            StudentInit::Kaiming => WeightInit::Kaiming,
            StudentInit::XavierUniform => WeightInit::XavierUniform,
            StudentInit::XavierNormal => WeightInit::XavierNormal,
        }
    }
}

/// Configuration of TLI (Czyzewski, arXiv 2101.02757).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct TliConfig {
    /// The student architecture, any zoo id (`graft backbones`): e.g. `mobilenetv2-0.5`,
    /// `vgg11-bn-d16-p1`, `wrn-16-2`. It takes the source's input format; its head has the
    /// task's classes. Default `mobilenetv2-0.5`, a different family from the usual
    /// resnet-cifar source.
    pub student: String,
    /// `tli` (inject from the source), `kaiming`, `xavier` (= `xavier-uniform`) or
    /// `xavier-normal`. The last three ignore the source's weights: the controls of the paper.
    pub init: StudentInit,
    /// Initialisation of the student tensors the injection leaves unmatched, and of the new
    /// task head (paper: unspecified; graft: `kaiming`).
    pub fallback_init: WeightInit,
    /// λ in λ·(centre crop / zero pad) + (1 − λ)·(resize) (paper: 0.75).
    pub lambda: f64,
    /// Number of best-scoring teacher tensors blended into each student tensor, weighted by a
    /// softmax of their scores (1 = the best match only; graft's default, the paper's rule).
    pub blend_top: usize,
    /// Temperature of that softmax (scores are in [0, 1]; graft: 0.1).
    pub blend_temperature: f64,
    /// Inject the teacher's classifier into the student's task head too (reshaped like every
    /// other tensor). The paper injects every layer; graft's default keeps the student's fresh
    /// head, since a task's classes are usually not the teacher's and a reshaped classifier maps
    /// unrelated classes. Turn it on when the task has the teacher's label set.
    pub inject_head: bool,
    /// Training of the whole student (paper: Adam, lr 3e-3, batch 64, no augmentation).
    pub train: TrainConfig,
}

impl Default for TliConfig {
    fn default() -> Self {
        let mut train = TrainConfig::default().with(10, OptimizerKind::Adam, 3e-3);
        train.batch_size = 64;
        train.schedule = Schedule::Constant;
        train.weight_decay = 0.0;
        Self {
            student: "mobilenetv2-0.5".into(),
            init: StudentInit::Tli,
            fallback_init: WeightInit::Kaiming,
            lambda: 0.75,
            blend_top: 1,
            blend_temperature: 0.1,
            inject_head: false,
            train,
        }
    }
}

impl TliConfig {
    /// The student architecture parsed from its id.
    pub fn student_arch(&self) -> Result<Arch, String> {
        self.student.parse::<Arch>().map_err(|e| format!("student: {e}"))
    }
}

impl MethodConfig for TliConfig {
    fn validate(&self) -> Result<(), String> {
        self.student_arch()?;
        if !(0.0..=1.0).contains(&self.lambda) {
            return Err(format!("lambda must be in [0, 1], got {}", self.lambda));
        }
        if self.blend_top == 0 {
            return Err("blend_top must be at least 1 (1 = the best match only)".into());
        }
        if !(self.blend_temperature.is_finite() && self.blend_temperature > 0.0) {
            return Err(format!("blend_temperature must be positive, got {}", self.blend_temperature));
        }
        self.train.validate()
    }
}
