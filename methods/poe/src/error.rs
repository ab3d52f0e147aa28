//! The errors of graft-poe; each converts into a [`graft_core::GraftError`] that keeps its
//! message (which names the primitive task, hash or tensor at fault).

use graft_core::GraftError;

/// Everything Pool of Experts itself can reject.
#[derive(Debug, thiserror::Error)]
pub enum PoeError {
    /// A query names a primitive task the pool has no expert for.
    #[error("unknown primitive task '{name}'; the pool's primitive tasks: {}", known.join(", "))]
    UnknownPrimitiveTask {
        /// The requested name.
        name: String,
        /// Every primitive task of the pool.
        known: Vec<String>,
    },

    /// A pool is used with an oracle other than the one it was distilled from.
    #[error("the pool was distilled from oracle {pool} but the given oracle is {given}")]
    OracleMismatch {
        /// SHA-256 of the pool's oracle.
        pool: String,
        /// SHA-256 of the oracle given.
        given: String,
    },

    /// A task's classes are not exactly a union of primitive tasks.
    #[error("task '{task}': {msg}")]
    NotAUnion {
        /// The task.
        task: String,
        /// What does not fit, with the primitive tasks and their classes.
        msg: String,
    },

    /// A pool file or a delta lacks a tensor or metadata, or has a wrong one.
    #[error("{0}")]
    Pool(String),
}

impl From<PoeError> for GraftError {
    fn from(e: PoeError) -> Self {
        GraftError::Incompatible(format!("{}: {e}", crate::NAME))
    }
}
