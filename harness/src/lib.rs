//! The harness's file formats as a library: suite files, results files (grid runs and
//! continual sequences) and the markdown report built from them. The `graft` binary uses these;
//! they are a library so the fuzz targets in `fuzz/` and other tools can read the same files.

pub mod candidates;
pub mod export;
pub mod figures;
pub mod plots;
pub mod report;
pub mod results;
pub mod selection;
pub mod serving;
pub mod sequence;
pub mod suite;
pub mod versus;

// The unit tests parse suites that name registered methods: link the method crates for them, as
// the binary does.
#[cfg(test)]
use {graft_adapters as _, graft_attention as _, graft_baselines as _, graft_ksm as _};
#[cfg(test)]
use {graft_piggyback as _, graft_poe as _, graft_snow as _, graft_tli as _};
