//! Results files (grid runs and continual sequences, JSON lines) read as resuming and reporting
//! read them, then rendered as the report renders them.
#![no_main]

use graft_harness::results::{parse_lines, RunRecord};
use graft_harness::sequence::SequenceRecord;
use graft_harness::{report, sequence};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (runs, _) = parse_lines::<RunRecord>(&text);
    let (seqs, _) = parse_lines::<SequenceRecord>(&text);
    let _ = report::render(&runs, &["linear-probe", "fine-tune"]);
    let _ = sequence::render(&seqs, &runs, &["linear-probe", "fine-tune"]);
});
