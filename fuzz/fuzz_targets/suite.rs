//! Suite TOML files: parsing and validation (names, grids, method configs, numbers). A suite
//! that names your own data (`folder`, `images`, `labels`) makes validation read those paths;
//! such inputs are skipped so that the fuzzer never walks or reads the machine's files (the
//! readers themselves have their own targets).
#![no_main]

use graft_harness::suite::Suite;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    // (Also TOML escapes, which could spell those keys.)
    if ["folder", "images", "labels", "\\u", "\\U"].iter().any(|k| text.contains(k)) {
        return;
    }
    if let Ok(suite) = Suite::parse(text, "fuzz/suite.toml") {
        let _ = suite.results_path(None);
    }
});
