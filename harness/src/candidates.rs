//! Candidate settings of a method, declared in a suite for the selection protocol
//! (docs/protocol.md):
//!
//! ```toml
//! [candidates.snow]                 # every leaf is a list of values to try
//! k = [4, 8]
//! taps = [["stage3.block0"], ["stage2.block0", "stage3.block0"]]
//! [candidates.ksm.train]            # nested keys reach nested config tables
//! lr = [1e-3, 1e-2]
//! ```
//!
//! Each combination (one value per leaf) is laid over the method's `[method_configs]` table and
//! runs as its own config; the report keeps, per method, the one with the best validation
//! accuracy and shows test accuracy for it alone.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where the protocol picks one setting: once per method for the whole suite (the method's
/// defaults), or separately for every source × task cell.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[serde(rename_all = "lowercase")]
pub enum SelectBy {
    /// One choice per method over every source, task and seed of the suite.
    #[default]
    Suite,
    /// One choice per method and source × task cell.
    Task,
}

impl fmt::Display for SelectBy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SelectBy::Suite => "suite",
            SelectBy::Task => "task",
        })
    }
}

/// What a results line records of the candidate a run tried.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct CandidateTag {
    /// The combination, e.g. `k=4, train.lr=0.001`.
    pub label: String,
    /// Where the protocol picks among the method's candidates.
    pub select_by: SelectBy,
}

/// The candidate values of one method: one axis per leaf key.
#[derive(Clone, Debug, PartialEq)]
pub struct Candidates {
    /// `(dotted key, values)` in key order, e.g. `("train.lr", [0.001, 0.01])`.
    pub axes: Vec<(String, Vec<serde_json::Value>)>,
}

/// One combination of candidate values.
#[derive(Clone, Debug, PartialEq)]
pub struct Combination {
    /// `key=value` pairs joined by `, ` (values as compact JSON), e.g. `k=4, train.lr=0.001`.
    pub label: String,
    /// The values as a nested JSON object, to lay over the method's config.
    pub overlay: serde_json::Value,
}

/// At most this many combinations per method (a typo in a list should not plan a week of runs).
pub const MAX_COMBINATIONS: usize = 256;

impl Candidates {
    /// Reads `[candidates.<method>]`: a table whose leaves are non-empty lists; `table` names it
    /// in errors.
    pub fn parse(value: &toml::Value, table: &str) -> Result<Self, String> {
        let mut axes = Vec::new();
        collect(value, "", table, &mut axes)?;
        if axes.is_empty() {
            return Err(format!("[{table}] lists no candidate values"));
        }
        let count = axes.iter().map(|(_, v)| v.len()).product::<usize>();
        if count > MAX_COMBINATIONS {
            return Err(format!("[{table}] makes {count} combinations; at most {MAX_COMBINATIONS}"));
        }
        Ok(Self { axes })
    }

    /// Every combination, the first axis varying slowest.
    pub fn combinations(&self) -> Vec<Combination> {
        let mut out = vec![(Vec::new(), serde_json::Value::Object(Default::default()))];
        for (key, values) in &self.axes {
            let mut next = Vec::with_capacity(out.len() * values.len());
            for (labels, overlay) in &out {
                for v in values {
                    let mut labels: Vec<String> = labels.clone();
                    labels.push(format!("{key}={v}"));
                    let mut overlay = overlay.clone();
                    set_dotted(&mut overlay, key, v.clone());
                    next.push((labels, overlay));
                }
            }
            out = next;
        }
        out.into_iter().map(|(labels, overlay)| Combination { label: labels.join(", "), overlay }).collect()
    }
}

fn collect(value: &toml::Value, prefix: &str, table: &str, axes: &mut Vec<(String, Vec<serde_json::Value>)>) -> Result<(), String> {
    let toml::Value::Table(t) = value else {
        return Err(format!("[{table}] must be a table of the method's keys, each a list of values"));
    };
    for (k, v) in t {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            toml::Value::Table(_) => collect(v, &key, table, axes)?,
            toml::Value::Array(values) => {
                if values.is_empty() {
                    return Err(format!("[{table}] `{key}` is an empty list; give at least one value"));
                }
                let json = values
                    .iter()
                    .map(|x| serde_json::to_value(x).map_err(|e| format!("[{table}] `{key}`: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                axes.push((key, json));
            }
            other => {
                return Err(format!(
                    "[{table}] `{key}` is {other}, not a list: write `{key} = [{other}]` for one value, or put it in [method_configs]"
                ))
            }
        }
    }
    Ok(())
}

fn set_dotted(target: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    let mut node = target;
    let mut parts = key.split('.').peekable();
    while let Some(part) = parts.next() {
        let obj = node.as_object_mut().expect("overlays are objects");
        if parts.peek().is_none() {
            obj.insert(part.to_string(), value);
            return;
        }
        node = obj.entry(part.to_string()).or_insert_with(|| serde_json::Value::Object(Default::default()));
    }
}

/// `base` with every key of `overlay` laid over it, nested objects merged key by key.
pub fn overlay(base: &serde_json::Value, overlay: &serde_json::Value) -> serde_json::Value {
    match (base, overlay) {
        (serde_json::Value::Object(b), serde_json::Value::Object(o)) => {
            let mut out = b.clone();
            for (k, v) in o {
                let merged = match out.get(k) {
                    Some(existing) => self::overlay(existing, v),
                    None => v.clone(),
                };
                out.insert(k.clone(), merged);
            }
            serde_json::Value::Object(out)
        }
        (_, o) => o.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(text: &str) -> Result<Candidates, String> {
        Candidates::parse(&toml::from_str::<toml::Value>(text).unwrap(), "candidates.m")
    }

    #[test]
    fn leaves_are_axes_and_combinations_are_their_product() {
        let c = parse("k = [4, 8]\ntaps = [[\"a\"], [\"a\", \"b\"]]\n[train]\nlr = [0.001, 0.01, 0.1]").unwrap();
        assert_eq!(c.axes.iter().map(|(k, v)| (k.as_str(), v.len())).collect::<Vec<_>>(), vec![("k", 2), ("taps", 2), ("train.lr", 3)]);
        let all = c.combinations();
        assert_eq!(all.len(), 12);
        assert_eq!(all[0].label, r#"k=4, taps=["a"], train.lr=0.001"#);
        assert_eq!(all[0].overlay, json!({"k": 4, "taps": ["a"], "train": {"lr": 0.001}}));
        assert_eq!(all[11].label, r#"k=8, taps=["a","b"], train.lr=0.1"#);
        let labels: std::collections::BTreeSet<&str> = all.iter().map(|c| c.label.as_str()).collect();
        assert_eq!(labels.len(), 12, "labels are unique");
    }

    #[test]
    fn mistakes_are_named_by_key() {
        assert!(parse("k = 4").unwrap_err().contains("`k` is 4, not a list"));
        assert!(parse("k = []").unwrap_err().contains("`k` is an empty list"));
        assert!(parse("").unwrap_err().contains("lists no candidate values"));
        let many = (0..9).map(|i| format!("k{i} = [1, 2]")).collect::<Vec<_>>().join("\n");
        assert!(parse(&many).unwrap_err().contains("512 combinations"));
    }

    #[test]
    fn an_overlay_merges_nested_tables_key_by_key() {
        let base = json!({"k": 8, "train": {"lr": 0.1, "epochs": 5}, "taps": ["x"]});
        let got = overlay(&base, &json!({"train": {"lr": 0.01}, "taps": ["y", "z"]}));
        assert_eq!(got, json!({"k": 8, "train": {"lr": 0.01, "epochs": 5}, "taps": ["y", "z"]}));
    }
}
