//! TLI as a [`TransferMethod`]: inject the frozen source (the teacher) into a fresh student of
//! another architecture, then train the whole student on the task.

use crate::config::{StudentInit, TliConfig};
use crate::inject::{inject, InjectOptions};
use crate::model::{student_net, InjectionSummary, TliModel, NAME, PREFIX};
use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Backbone, BackboneSpec, Delta, FitContext, GraftError, Result, Source, Task, TaskModel, TransferMethod};

/// The TLI method.
pub struct Tli {
    /// Its configuration.
    pub config: TliConfig,
}

impl Tli {
    /// The student's spec for a `classes`-way task on `source`'s input format.
    pub fn student_spec(&self, source: &Source, classes: usize) -> Result<BackboneSpec> {
        let arch = self.config.student_arch().map_err(|msg| GraftError::Config { method: NAME.into(), msg })?;
        let spec = BackboneSpec { arch, input: source.backbone.spec().input.clone(), num_classes: classes };
        spec.validate()?;
        Ok(spec)
    }

    /// The student before training: a fresh seeded initialisation, with the source's weights
    /// injected when `init = "tli"` (the student's task head always keeps its own values).
    pub fn initial_student(&self, source: &Source, classes: usize, seed: u64) -> Result<(Backbone, InjectionSummary)> {
        let spec = self.student_spec(source, classes)?;
        let c = &self.config;
        let fresh = Backbone::init_with(spec.clone(), seed, c.init.weight_init(c.fallback_init), source.backbone.device())?;
        let score = crate::score::score(&source.backbone, &spec)?;
        if c.init != StudentInit::Tli {
            let kept = fresh.params().keys().filter(|k| !graft_core::backbone::is_bn_buffer(k)).count();
            return Ok((fresh, InjectionSummary { score, injected_tensors: 0, kept_tensors: kept }));
        }
        let opts = InjectOptions {
            lambda: c.lambda,
            blend_top: c.blend_top,
            blend_temperature: c.blend_temperature,
            reset_bn_stats: true,
            skip: if c.inject_head { Vec::new() } else { fresh.head_params() },
        };
        let injected = inject(&source.backbone, &fresh, &opts)?;
        let params: Vec<_> = injected.report.iter().filter(|t| !graft_core::backbone::is_bn_buffer(&t.student)).collect();
        let injected_tensors = params.iter().filter(|t| t.teacher.is_some()).count();
        let summary = InjectionSummary { score, injected_tensors, kept_tensors: params.len() - injected_tensors };
        Ok((injected.backbone, summary))
    }

    fn restore(&self, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        let spec = delta.backbone.clone().ok_or_else(|| {
            GraftError::Incompatible("TLI delta lacks the student's spec (metadata 'graft.backbone')".into())
        })?;
        let want = self.config.student_arch().map_err(|msg| GraftError::Config { method: NAME.into(), msg })?;
        if spec.arch != want {
            return Err(GraftError::Incompatible(format!(
                "TLI delta holds a {} student but its config names '{}'",
                spec.id(),
                self.config.student
            )));
        }
        if spec.num_classes != delta.num_classes {
            return Err(GraftError::Incompatible(format!(
                "TLI delta's student has {} outputs but the delta says {} classes",
                spec.num_classes, delta.num_classes
            )));
        }
        let device = delta.tensors.values().next().map(|t| t.device().clone()).unwrap_or(candle_core::Device::Cpu);
        let mut params = graft_core::ParamMap::new();
        for (k, t) in &delta.tensors {
            let name = k.strip_prefix(PREFIX).ok_or_else(|| {
                GraftError::Incompatible(format!("TLI delta tensor '{k}' does not start with '{PREFIX}'"))
            })?;
            params.insert(name.to_string(), t.clone());
        }
        let student = Backbone::from_params(spec, params, &device)?;
        let net = student_net(&student)?;
        Ok(Box::new(TliModel::new(net, self.config_json(), delta.source_hash.clone(), delta.num_classes, InjectionSummary::default())))
    }
}

impl TransferMethod for Tli {
    fn name(&self) -> &str {
        NAME
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        task.validate()?;
        let (student, summary) = self.initial_student(source, task.num_classes, ctx.seed)?;
        let mut net = student_net(&student)?;
        net.fit(task, &self.config.train, ctx, &format!("{NAME} {}", task.name))?;
        Ok(Box::new(TliModel::new(net, self.config_json(), source.hash.clone(), task.num_classes, summary)))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        delta.check(source, NAME)?;
        self.restore(delta)
    }

    fn load_standalone(&self, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        if delta.method != NAME {
            return Err(GraftError::Incompatible(format!("delta was written by method '{}', not '{NAME}'", delta.method)));
        }
        self.restore(delta)
    }
}

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(Tli { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "TLI: inject the source's weights into a student of another architecture (graph matching, crop/pad + resize), then train the whole student",
        paper: "Czyzewski, Transfer Learning by Injection, arXiv 2101.02757 (2021)",
        build,
        default_config: default_config_json::<TliConfig>,
    }
}
