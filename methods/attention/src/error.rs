//! The errors of graft-attention; each converts into a [`graft_core::GraftError`] that keeps its
//! message (which names the tap, tensor or key at fault).

use graft_core::GraftError;

/// Everything the attention method itself can reject (tensor and I/O errors come from
/// graft-core).
#[derive(Debug, thiserror::Error)]
pub enum AttentionError {
    /// `taps.only` names a tap the backbone does not have, or one whose output is not a
    /// feature map.
    #[error("taps.only names tap '{name}', which is not a feature-map tap of the backbone; its block taps: {}", available.join(", "))]
    UnknownTap {
        /// The requested tap.
        name: String,
        /// The backbone's block taps (the default placement), in forward order.
        available: Vec<String>,
    },

    /// The backbone has no block tap for the default placement.
    #[error("the backbone has no block tap (a unit named stage… with convs); name taps with taps.only")]
    NoBlockTaps,

    /// A stored delta lacks a tensor, has one too many, or one of the wrong shape.
    #[error("delta: {0}")]
    Delta(String),
}

impl From<AttentionError> for GraftError {
    fn from(e: AttentionError) -> Self {
        match e {
            AttentionError::Delta(_) => GraftError::Incompatible(format!("{}: {e}", crate::NAME)),
            other => GraftError::Config { method: crate::NAME.into(), msg: other.to_string() },
        }
    }
}
