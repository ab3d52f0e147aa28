//! Which convolutions of a frozen backbone a method modifies (masks, adapters): the config value
//! and its resolution on a backbone.

use crate::backbone::ConvInfo;
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;

/// A config's choice of convolutions, as written in a suite: `"all"`, `"all-but-first"` or
/// `{ "only": ["layer1.0.conv1", …] }`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub enum ConvChoice {
    /// Every candidate conv (`"all"`).
    #[default]
    All,
    /// Every candidate but the first in forward order (`"all-but-first"`).
    AllButFirst,
    /// Exactly these convs, by module name (`{ "only": ["layer1.0.conv1", …] }`).
    Only(Vec<String>),
}

/// A conv named in `only` that is not among the candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct UnknownConv {
    /// The requested conv.
    pub name: String,
    /// Every candidate conv, in forward order.
    pub available: Vec<String>,
}

impl ConvChoice {
    /// Checks the config value under `key` (e.g. `layers`): `only` names at least one conv and
    /// none twice.
    pub fn validate(&self, key: &str) -> Result<(), String> {
        let ConvChoice::Only(names) = self else { return Ok(()) };
        if names.is_empty() {
            return Err(format!("{key}.only must name at least one conv (or use \"all\")"));
        }
        let mut sorted = names.clone();
        sorted.sort();
        match sorted.windows(2).find(|w| w[0] == w[1]) {
            Some(w) => Err(format!("{key}.only names conv '{}' twice", w[0])),
            None => Ok(()),
        }
    }

    /// The chosen convs among `candidates` (in forward order), keeping that order.
    pub fn select(&self, candidates: Vec<ConvInfo>) -> Result<Vec<ConvInfo>, UnknownConv> {
        match self {
            ConvChoice::All => Ok(candidates),
            ConvChoice::AllButFirst => Ok(candidates.into_iter().skip(1).collect()),
            ConvChoice::Only(names) => {
                if let Some(missing) = names.iter().find(|n| !candidates.iter().any(|c| &c.conv.name == *n)) {
                    return Err(UnknownConv { name: missing.clone(), available: candidates.iter().map(|c| c.conv.name.clone()).collect() });
                }
                let wanted: BTreeSet<&str> = names.iter().map(String::as_str).collect();
                Ok(candidates.into_iter().filter(|c| wanted.contains(c.conv.name.as_str())).collect())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backbone::ConvDef;

    fn conv(name: &str) -> ConvInfo {
        let def = ConvDef { name: name.into(), in_channels: 1, out_channels: 1, kernel: 3, stride: 1, padding: 1, groups: 1, bias: false };
        ConvInfo { conv: def, bn: None, tap: "stem".into(), input_hw: (4, 4) }
    }

    fn names(v: &[ConvInfo]) -> Vec<&str> {
        v.iter().map(|c| c.conv.name.as_str()).collect()
    }

    #[test]
    fn choices_select_in_forward_order_and_name_what_is_missing() {
        let all = vec![conv("a"), conv("b"), conv("c")];
        assert_eq!(names(&ConvChoice::All.select(all.clone()).unwrap()), ["a", "b", "c"]);
        assert_eq!(names(&ConvChoice::AllButFirst.select(all.clone()).unwrap()), ["b", "c"]);
        assert_eq!(names(&ConvChoice::Only(vec!["c".into(), "a".into()]).select(all.clone()).unwrap()), ["a", "c"]);
        let err = ConvChoice::Only(vec!["z".into()]).select(all).unwrap_err();
        assert_eq!(err, UnknownConv { name: "z".into(), available: vec!["a".into(), "b".into(), "c".into()] });
    }

    #[test]
    fn only_must_name_each_conv_once() {
        assert!(ConvChoice::All.validate("layers").is_ok());
        assert_eq!(ConvChoice::Only(vec![]).validate("layers").unwrap_err(), "layers.only must name at least one conv (or use \"all\")");
        let twice = ConvChoice::Only(vec!["b".into(), "a".into(), "b".into()]);
        assert_eq!(twice.validate("convs").unwrap_err(), "convs.only names conv 'b' twice");
    }

    #[test]
    fn the_suite_spelling_round_trips() {
        for (json, choice) in [
            (r#""all""#, ConvChoice::All),
            (r#""all-but-first""#, ConvChoice::AllButFirst),
            (r#"{"only":["x"]}"#, ConvChoice::Only(vec!["x".into()])),
        ] {
            assert_eq!(serde_json::from_str::<ConvChoice>(json).unwrap(), choice);
            assert_eq!(serde_json::to_string(&choice).unwrap(), json);
        }
        assert!(serde_json::from_str::<ConvChoice>(r#"{"only":["x"],"extra":1}"#).is_err());
    }
}
