//! graft-baselines: the classic transfer baselines every method is compared with, registered as
//! `linear-probe` (FO), `feature-extractor` (FE), `fine-tune` (FT) and `scratch`, and the
//! forgetting baseline of continual sequences, `sequential-fine-tune`.
//!
//! They share one trainable network ([`net::Net`]: an optional tuned slice of the backbone plus
//! a new linear head) and one task model ([`model::BaselineModel`]); each method file decides what
//! is frozen and what trains.

pub mod feature_extractor;
pub mod fine_tune;
pub mod linear_probe;
pub mod model;
pub mod net;
pub mod scratch;
pub mod sequential_fine_tune;

pub use feature_extractor::{FeatureExtractor, FeatureExtractorConfig};
pub use fine_tune::{FineTune, FineTuneConfig};
pub use linear_probe::{LinearProbe, LinearProbeConfig};
pub use scratch::{Scratch, ScratchConfig};
pub use sequential_fine_tune::{SequentialFineTune, SequentialFineTuneConfig};
