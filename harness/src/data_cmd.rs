//! `graft data fetch` and `graft data status`.

use anyhow::{bail, Context, Result};
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

/// Prints, for every dataset, whether it is present and where; a present one is loaded in full,
/// so a damaged file is reported as such. Fails when any dataset is missing or damaged.
pub fn status(data_dir: &Path) -> Result<()> {
    println!("data directory: {}", data_dir.display());
    let mut unusable = Vec::new();
    for s in graft_datasets::status(data_dir) {
        if !s.present() {
            println!("{s}");
            unusable.push(format!("{} is missing", s.dataset.key()));
            continue;
        }
        match graft_datasets::Dataset::load(&s.dataset.into(), data_dir) {
            Ok(_) => println!("{s}"),
            Err(e) => {
                println!("{:<14} DAMAGED  {e:#}", s.dataset.key());
                unusable.push(format!("{} cannot be read", s.dataset.key()));
            }
        }
    }
    if !unusable.is_empty() {
        bail!("{}; run `graft data fetch` (delete a damaged dataset's files first)", unusable.join(", "));
    }
    Ok(())
}
