//! Suite TOML files: parsing and validation (names, grids, method configs, numbers).
#![no_main]

use graft_harness::suite::Suite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(suite) = Suite::parse(text, "fuzz/suite.toml") {
        let _ = suite.results_path(None);
    }
});
