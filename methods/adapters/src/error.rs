//! The errors of graft-adapters; each converts into a [`graft_core::GraftError`] that keeps its
//! message (which names the conv, tensor or key at fault).

use graft_core::GraftError;

/// Everything the residual adapters themselves can reject (tensor and I/O errors come from
/// graft-core).
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// `convs.only` names a conv the backbone does not have, or one that is not a 3x3 conv.
    #[error("convs.only names conv '{name}', which is not a 3x3 conv of the backbone; its 3x3 convs: {}", available.join(", "))]
    UnknownConv {
        /// The requested conv.
        name: String,
        /// Every 3x3 conv of the backbone, in forward order.
        available: Vec<String>,
    },

    /// The configuration selects no conv on this backbone.
    #[error("the backbone has no 3x3 conv to adapt after skipping the first")]
    NothingToAdapt,

    /// A stored delta lacks a tensor, has one too many, or one of the wrong shape.
    #[error("delta: {0}")]
    Delta(String),
}

impl From<AdapterError> for GraftError {
    fn from(e: AdapterError) -> Self {
        match e {
            AdapterError::Delta(_) => GraftError::Incompatible(format!("residual adapters: {e}")),
            other => GraftError::Config { method: "residual-adapter".into(), msg: other.to_string() },
        }
    }
}
