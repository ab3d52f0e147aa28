//! graft-poe: Pool of Experts (Kim & Choi, *Pool of Experts: Realtime Querying Specialized
//! Knowledge in Massive Neural Networks*, SIGMOD 2021), registered as `poe`.
//!
//! Once per oracle (any graft source): a *library* — the lower part (stem and first two stages)
//! of a small WRN distilled from the oracle by KD — is frozen, and one *expert* per primitive
//! task (a group of the oracle's classes) — the small WRN's last stage at a quarter of its
//! width, BN and FC — is trained by conditional KD ([`loss::conditional_kd`]) on the library's
//! features. The [`pool::Pool`] is one safetensors file. A query (a set of primitive tasks)
//! becomes a model without training ([`pool::Consolidated`]): the library once, the chosen
//! experts, their logits concatenated over the sorted union of their classes.
//!
//! As a [`graft_core::TransferMethod`], `fit(oracle, task)` prepares the pool (or reuses it
//! from this process or the artefact cache, `GRAFT_ARTEFACT_DIR`) and answers the task, whose
//! classes must be a union of primitive tasks ([`graft_core::Task::class_ids`]).
//!
//! The same-size baselines PoE is compared with are registered too
//! ([`baseline_method`]): `poe-scratch`, `poe-frozen-library`, `poe-multi-kd`.

pub mod baseline;
pub mod baseline_method;
pub mod config;
pub mod distill;
pub mod error;
pub mod loss;
pub mod method;
pub mod model;
pub mod pool;

pub use config::{ExpertConfig, LibraryConfig, PoeConfig, PoolData, PrimitiveTask};
pub use error::PoeError;
pub use method::Poe;
pub use model::PoeModel;
pub use pool::{Consolidated, Expert, Pool};

/// Registered name.
pub const NAME: &str = "poe";

fn build(de: &mut dyn erased_serde::Deserializer) -> graft_core::Result<Box<dyn graft_core::TransferMethod>> {
    Ok(Box::new(Poe { config: graft_core::registry::parse_config(NAME, de)? }))
}

inventory::submit! {
    graft_core::MethodEntry {
        name: NAME,
        description: "Pool of Experts: library + per-primitive-task experts distilled once from an oracle; task models assembled without training",
        paper: "Kim & Choi, SIGMOD 2021",
        build,
        default_config: graft_core::registry::default_config_json::<PoeConfig>,
    }
}

macro_rules! register_baseline {
    ($build:ident, $name:expr, $description:expr) => {
        fn $build(de: &mut dyn erased_serde::Deserializer) -> graft_core::Result<Box<dyn graft_core::TransferMethod>> {
            Ok(Box::new(baseline_method::PoeBaseline { name: $name, config: graft_core::registry::parse_config($name, de)? }))
        }
        inventory::submit! {
            graft_core::MethodEntry {
                name: $name,
                description: $description,
                paper: "Kim & Choi, SIGMOD 2021 (baseline)",
                build: $build,
                default_config: graft_core::registry::default_config_json::<baseline_method::BaselineConfig>,
            }
        }
    };
}

register_baseline!(build_scratch, baseline_method::SCRATCH, "PoE baseline: the consolidated model's architecture trained from scratch on the query (cross-entropy)");
register_baseline!(build_frozen_library, baseline_method::FROZEN_LIBRARY, "PoE baseline: the pool's frozen library with fresh experts trained on the query (cross-entropy)");
register_baseline!(build_multi_kd, baseline_method::MULTI_KD, "PoE baseline: the consolidated model's architecture distilled on the query from the oracle, one teacher per primitive task (conditional KD, summed)");
