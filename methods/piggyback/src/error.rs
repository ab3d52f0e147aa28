//! The errors of graft-piggyback; each converts into a [`graft_core::GraftError`] that keeps its
//! message (which names the tensor, conv or key at fault).

use graft_core::GraftError;

/// Everything Piggyback itself can reject (tensor, I/O and bit-packing errors come from
/// graft-core).
#[derive(Debug, thiserror::Error)]
pub enum PiggybackError {
    /// `layers.only` names a conv the backbone does not have.
    #[error("layers.only names conv '{name}', which the backbone does not have; its convs: {}", available.join(", "))]
    UnknownConv {
        /// The requested conv.
        name: String,
        /// Every conv of the backbone, in forward order.
        available: Vec<String>,
    },

    /// A stored delta lacks a tensor, has one too many, or one of the wrong shape or dtype.
    #[error("delta: {0}")]
    Delta(String),
}

impl From<PiggybackError> for GraftError {
    fn from(e: PiggybackError) -> Self {
        match e {
            PiggybackError::UnknownConv { .. } => GraftError::Config { method: crate::NAME.into(), msg: e.to_string() },
            other => GraftError::Incompatible(format!("{}: {other}", crate::NAME)),
        }
    }
}
