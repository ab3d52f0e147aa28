//! The file `graft serve-bench --json FILE` writes and `graft report --serving FILE` reads:
//! serving images/s and memory of N task models sharing one source pass against N separate
//! models, one row per N.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// One `graft serve-bench` measurement.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeBench {
    /// Backbone id of the source served from.
    pub source: String,
    /// The source's parameters, MiB.
    pub source_mib: f64,
    /// Images per batch.
    pub batch: usize,
    /// Threads of the CPU kernels.
    pub threads: usize,
    /// The source-sharing method (its task models are served together).
    pub method: String,
    /// The method of the separate models.
    pub baseline: String,
    /// One row per number of tasks, in the order measured.
    pub rows: Vec<ServeRow>,
}

/// Serving N tasks both ways.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ServeRow {
    /// Number of task models served (N).
    pub tasks: usize,
    /// Images/s through the N sharing models (each image goes through every model).
    pub shared_images_per_sec: f64,
    /// Memory the sharing setup holds: the source once plus N deltas, MiB.
    pub shared_mib: f64,
    /// Images/s through the N separate models.
    pub separate_images_per_sec: f64,
    /// Memory of the N separate models, MiB.
    pub separate_mib: f64,
}

/// Why a serve-bench file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ServingError {
    /// The file could not be read.
    #[error("cannot read serve-bench file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not a serve-bench measurement.
    #[error("{path} is not a `graft serve-bench --json` file: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        source: serde_json::Error,
    },
}

/// Reads a `graft serve-bench --json` file.
pub fn read(path: &Path) -> Result<ServeBench, ServingError> {
    let text = std::fs::read_to_string(path).map_err(|source| ServingError::Read { path: path.to_path_buf(), source })?;
    serde_json::from_str(&text).map_err(|source| ServingError::Parse { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_measurement_round_trips_and_other_json_is_refused() {
        let bench = ServeBench {
            source: "resnet-cifar-20-w16".into(),
            source_mib: 1.04,
            batch: 128,
            threads: 2,
            method: "snow".into(),
            baseline: "fine-tune".into(),
            rows: vec![ServeRow { tasks: 1, shared_images_per_sec: 900.0, shared_mib: 1.2, separate_images_per_sec: 1000.0, separate_mib: 1.1 }],
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("serve.json");
        std::fs::write(&path, serde_json::to_string(&bench).unwrap()).unwrap();
        assert_eq!(read(&path).unwrap(), bench);
        std::fs::write(&path, r#"{"key": "s/t/m/s0/h"}"#).unwrap();
        assert!(matches!(read(&path), Err(ServingError::Parse { .. })));
        assert!(matches!(read(&dir.path().join("none.json")), Err(ServingError::Read { .. })));
    }
}
