//! Helpers shared by the end-to-end tests of the `graft` binary: run it in a temporary
//! directory, read its JSONL output, and the tiny suite (embedded digits, width-2 ResNet-8 on
//! 8x8 inputs, one epoch).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub fn graft(dir: &Path, args: &[&str]) -> Output {
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    Command::new(env!("CARGO_BIN_EXE_graft"))
        .current_dir(dir)
        .arg("--data-dir")
        .arg(&data)
        .args(args)
        .output()
        .expect("graft runs")
}

pub fn text(out: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A tiny suite: one width-2 source, `tasks`, linear-probe only, 1 epoch everywhere.
pub fn tiny_suite(seeds: &str, tasks: &str) -> String {
    format!(
        r#"
name = "tiny"
seeds = {seeds}
methods = ["linear-probe"]
[[sources]]
name = "d04"
arch = {{ name = "resnet-cifar", depth = 8, width = 2 }}
input = [1, 8, 8]
task = {{ name = "digits-0to4", dataset = "digits", classes = [0, 1, 2, 3, 4] }}
train = {{ epochs = 1, batch_size = 128 }}
seed = 0
{tasks}
[method_configs.linear-probe]
train = {{ epochs = 1, optimizer = "adam", lr = 0.01 }}
"#
    )
}

pub const DIGITS_5TO9: &str = r#"
[[tasks]]
name = "digits-5to9"
dataset = "digits"
classes = [5, 6, 7, 8, 9]
"#;

pub const DIGITS_ROT: &str = r#"
[[tasks]]
name = "digits-rot90"
dataset = "digits"
classes = [0, 1, 2]
domain = "rotate90"
"#;

pub fn write_suite(dir: &Path, body: &str) -> PathBuf {
    let p = dir.join("suite.toml");
    std::fs::write(&p, body).unwrap();
    p
}

/// (valid records as JSON, number of unparseable non-empty lines).
pub fn read_lines(path: &Path) -> (Vec<serde_json::Value>, usize) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut ok = Vec::new();
    let mut bad = 0;
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        match serde_json::from_str::<serde_json::Value>(line) {
            Ok(v) => ok.push(v),
            Err(_) => bad += 1,
        }
    }
    (ok, bad)
}

pub fn keys(records: &[serde_json::Value]) -> Vec<String> {
    let mut k: Vec<String> = records
        .iter()
        .map(|r| r["key"].as_str().unwrap().to_string())
        .collect();
    k.sort();
    k
}

