//! Prints where each dataset is and, with `--fetch`, installs the missing ones
//! (the same as `graft data fetch`): `cargo run -p graft-datasets --example data_fetch -- --fetch`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = graft_datasets::data_dir()?;
    println!("data directory: {}", dir.display());
    if std::env::args().any(|a| a == "--fetch") {
        let report = graft_datasets::fetch(&graft_datasets::DatasetName::ALL, &dir)?;
        print!("{report}");
    }
    for s in graft_datasets::status(&dir) {
        println!("{s}");
    }
    Ok(())
}
