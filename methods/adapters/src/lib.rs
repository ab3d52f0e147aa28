//! graft-adapters: **residual adapters** (Rebuffi, Bilen, Vedaldi: "Learning multiple visual
//! domains with residual adapters", NeurIPS 2017; "Efficient parametrization of multi-domain deep
//! neural networks", CVPR 2018), registered as `residual-adapter-series` and
//! `residual-adapter-parallel`.
//!
//! The source's weights stay frozen. Per domain, every chosen 3x3 conv gets a 1x1 conv adapter —
//! in series on its output with a BN of its own and an identity skip, or in parallel on its input,
//! summed with its output ([`adapter`]) — and, by default, a domain copy of every BatchNorm; a new
//! head reads the pooled features. Adapters start as the identity, so an untrained domain sees the
//! source's features. A domain stores its adapters, BNs and head.
//!
//! See `docs/methods/adapters.md` for the equations, defaults and their sources.

#![warn(missing_docs)]

pub mod adapter;
pub mod config;
pub mod error;
pub mod model;

pub use adapter::Placement;
pub use config::{AdaptedConvs, AdapterConfig};
pub use error::AdapterError;
pub use model::{AdapterModel, AdapterNet, Layout};

use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Delta, FitContext, Result, Source, Task, TaskModel, TransferMethod};

/// Registered name of the series adapters.
pub const SERIES: &str = "residual-adapter-series";
/// Registered name of the parallel adapters.
pub const PARALLEL: &str = "residual-adapter-parallel";

/// Residual adapters of one placement.
pub struct ResidualAdapters {
    /// Series or parallel.
    pub placement: Placement,
    /// Its configuration.
    pub config: AdapterConfig,
}

impl ResidualAdapters {
    /// [`TransferMethod::fit`] with the concrete model type.
    pub fn fit_model(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<AdapterModel> {
        model::fit(&self.config, self.placement, source, task, ctx)
    }

    /// [`TransferMethod::load`] with the concrete model type.
    pub fn load_model(&self, source: &Source, delta: &Delta) -> Result<AdapterModel> {
        delta.check(source, self.placement.method_name())?;
        AdapterModel::from_tensors(self.config.clone(), self.placement, source, delta.tensors.clone(), delta.num_classes)
    }
}

impl TransferMethod for ResidualAdapters {
    fn name(&self) -> &str {
        self.placement.method_name()
    }

    fn config_json(&self) -> serde_json::Value {
        serde_json::to_value(&self.config).expect("config serialises")
    }

    fn fit(&self, source: &Source, task: &Task, ctx: &mut FitContext) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(self.fit_model(source, task, ctx)?))
    }

    fn load(&self, source: &Source, delta: &Delta) -> Result<Box<dyn TaskModel>> {
        Ok(Box::new(self.load_model(source, delta)?))
    }
}

fn build_series(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(ResidualAdapters { placement: Placement::Series, config: parse_config(SERIES, de)? }))
}

fn build_parallel(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(ResidualAdapters { placement: Placement::Parallel, config: parse_config(PARALLEL, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: SERIES,
        description: "Residual adapters in series: a 1x1 conv + BN with an identity skip after each frozen 3x3 conv, domain BNs and a new head",
        paper: "Rebuffi, Bilen, Vedaldi, NeurIPS 2017",
        build: build_series,
        default_config: default_config_json::<AdapterConfig>,
    }
}

inventory::submit! {
    MethodEntry {
        name: PARALLEL,
        description: "Residual adapters in parallel: a 1x1 conv beside each frozen 3x3 conv, summed before its BN, domain BNs and a new head",
        paper: "Rebuffi, Bilen, Vedaldi, CVPR 2018",
        build: build_parallel,
        default_config: default_config_json::<AdapterConfig>,
    }
}
