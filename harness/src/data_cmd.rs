//! `graft data fetch` and `graft data status`.

use anyhow::{Context, Result};
use graft_datasets::DatasetName;
use std::path::Path;

/// Parses dataset names given on the command line; none means all.
pub fn parse_datasets(names: &[String]) -> Result<Vec<DatasetName>> {
    if names.is_empty() {
        return Ok(DatasetName::ALL.to_vec());
    }
    names
        .iter()
        .map(|n| {
            n.parse::<DatasetName>()
                .map_err(|e| anyhow::anyhow!("--dataset: {e}"))
        })
        .collect()
}

/// Installs the missing datasets among `names` into `data_dir` and prints where each one is.
pub fn fetch(names: &[String], data_dir: &Path) -> Result<()> {
    let which = parse_datasets(names)?;
    println!("data directory: {}", data_dir.display());
    let report = graft_datasets::fetch(&which, data_dir).context("graft data fetch")?;
    print!("{report}");
    Ok(())
}

/// Prints, for every dataset, whether it is present and where.
pub fn status(data_dir: &Path) -> Result<()> {
    println!("data directory: {}", data_dir.display());
    let st = graft_datasets::status(data_dir);
    for s in &st {
        println!("{s}");
    }
    Ok(())
}
