//! graft-core: the `TransferMethod` trait and registry, backbones with named taps, checkpoints,
//! the shared trainer and metrics.
//!
//! A method crate implements [`TransferMethod`] and [`TaskModel`], and registers itself with
//! `inventory::submit! { graft_core::registry::MethodEntry { .. } }`.

pub mod artefact;
pub mod attach;
pub mod backbone;
pub mod bitpack;
pub mod bench;
pub mod checkpoint;
pub mod conformance;
pub mod data;
pub mod error;
pub mod features;
pub mod import;
pub mod init;
pub mod kernels;
pub mod kit;
pub mod memory;
pub mod merge;
pub mod method;
pub mod optim;
pub mod params;
pub mod pretrain;
pub mod registry;
pub mod serve;
pub mod torch_io;
pub mod train;

pub use attach::{Attachment, Attachments};
pub use backbone::{Backbone, BackboneSpec, Hooks, NoHooks};
pub use checkpoint::{Provenance, Source};
pub use data::{ImageSet, Task};
pub use error::{GraftError, Result};
pub use method::{ContinualMethod, Delta, FitContext, Footprint, TaskInfo, TaskModel, TransferMethod};
pub use params::{ParamMap, Trainables};
pub use registry::{MethodConfig, MethodEntry};
pub use train::{TrainConfig, Trainable};

// Re-exported so method crates register without naming the dependency versions themselves.
pub use erased_serde;
pub use inventory;
