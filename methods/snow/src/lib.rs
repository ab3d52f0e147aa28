//! graft-snow: SNOW (Yoo, Kang, Cho, "SNOW: Subscribing to Knowledge via Channel Pooling for
//! Transfer & Lifelong Learning of Convolutional Neural Networks", ICLR 2020), registered as
//! `snow`.
//!
//! The source runs forward only. Per task a *delta model* — the source's topology at a fraction
//! of its width, trained from scratch — subscribes at chosen taps to K source channels through
//! *channel pooling*: a weight per source channel; training selects the top K of the weights plus
//! Gaussian noise, evaluation the top K without noise, and the selected maps, scaled by their
//! weights, are fused into the delta at the same depth. One source pass serves any number of
//! deltas ([`graft_core::TaskModel::forward_from_taps`]). See `docs/methods/snow.md`.

pub mod config;
pub mod delta;
pub mod method;
pub mod model;
pub mod net;
pub mod pooling;

pub use config::SnowConfig;
pub use method::Snow;
pub use model::SnowModel;

use graft_core::registry::{default_config_json, parse_config, MethodEntry};
use graft_core::{Result, TransferMethod};

/// Registered name.
pub const NAME: &str = "snow";

fn build(de: &mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>> {
    Ok(Box::new(Snow { config: parse_config(NAME, de)? }))
}

inventory::submit! {
    MethodEntry {
        name: NAME,
        description: "SNOW: per-task delta model subscribing to top-K source channels by channel pooling; one source pass serves many tasks",
        paper: "Yoo, Kang, Cho, ICLR 2020",
        build,
        default_config: default_config_json::<SnowConfig>,
    }
}
