//! The error type of graft-core; every variant names what was wrong and where.

use std::path::PathBuf;

/// Result alias used across graft-core and the method crates.
pub type Result<T> = std::result::Result<T, GraftError>;

/// Everything that can go wrong in graft-core.
#[derive(Debug, thiserror::Error)]
pub enum GraftError {
    /// A tensor operation failed (shape mismatch, dtype, device...).
    #[error("tensor operation failed: {0}")]
    Candle(#[from] candle_core::Error),

    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// A checkpoint file is corrupt, truncated or does not match what was expected.
    #[error("checkpoint {path}: {msg}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },

    /// A method configuration is invalid (unknown key, bad value).
    #[error("config for method '{method}': {msg}")]
    Config {
        /// The method whose config was read.
        method: String,
        /// What is wrong, with the valid keys and defaults where relevant.
        msg: String,
    },

    /// No registered method has this name.
    #[error("unknown method '{name}'; registered methods: {}", available.join(", "))]
    UnknownMethod {
        /// The requested name.
        name: String,
        /// Every registered method name.
        available: Vec<String>,
    },

    /// A backbone has no tap with this name.
    #[error("backbone has no tap '{tap}'; available taps: {}", available.join(", "))]
    UnknownTap {
        /// The requested tap.
        tap: String,
        /// The backbone's taps, in forward order.
        available: Vec<String>,
    },

    /// A backbone spec is invalid.
    #[error("invalid backbone spec: {0}")]
    Backbone(String),

    /// Training produced a NaN or infinite loss and was stopped.
    #[error("training stopped: loss is {loss} at epoch {epoch}, step {step} (lower the learning rate or check the data)")]
    NonFiniteLoss {
        /// Epoch (from 0) where it happened.
        epoch: usize,
        /// Step within the epoch (from 0).
        step: usize,
        /// The offending loss value.
        loss: f32,
    },

    /// Training diverged without a non-finite loss: the loss grew far past where it started, or a
    /// weight became NaN or infinite.
    #[error("training stopped: it diverged at epoch {epoch}, step {step}: {detail} (lower the learning rate)")]
    Diverged {
        /// Epoch (from 0) where it was noticed.
        epoch: usize,
        /// Step within the epoch (from 0).
        step: usize,
        /// What was seen.
        detail: String,
    },

    /// Data is malformed or inconsistent.
    #[error("data: {0}")]
    Data(String),

    /// A task model was used with a source it was not trained on, or with the wrong method.
    #[error("incompatible: {0}")]
    Incompatible(String),

    /// A setting asks for more memory than the machine has; found before allocating.
    #[error("too large: {0}")]
    TooLarge(String),
}

impl GraftError {
    /// Wraps an I/O error with the path it concerned.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        GraftError::Io { path: path.into(), source }
    }

    /// A checkpoint error for `path`.
    pub fn checkpoint(path: impl Into<PathBuf>, msg: impl Into<String>) -> Self {
        GraftError::Checkpoint { path: path.into(), msg: msg.into() }
    }
}
