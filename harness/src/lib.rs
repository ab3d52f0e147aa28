//! The harness's file formats as a library: suite files, results files (grid runs and
//! continual sequences) and the markdown report built from them. The `graft` binary uses these;
//! they are a library so the fuzz targets in `fuzz/` and other tools can read the same files.

pub mod report;
pub mod results;
pub mod sequence;
pub mod suite;
