//! The method registry: every method crate submits one [`MethodEntry`] with `inventory::submit!`,
//! and configs are read through erased-serde so the harness never names a config type.

use crate::checkpoint::Source;
use crate::error::{GraftError, Result};
use crate::method::{Delta, TaskModel, TransferMethod};
use candle_core::Device;
use serde::de::DeserializeOwned;
use serde::Serialize;
use std::path::Path;

/// A method configuration: serde with `deny_unknown_fields`, `Default` = the paper's setting.
pub trait MethodConfig: Serialize + DeserializeOwned + Default + Clone + Send + Sync + 'static {
    /// Checks value ranges; the message says which key is wrong and what is allowed.
    fn validate(&self) -> std::result::Result<(), String> {
        Ok(())
    }
}

/// One registered method.
pub struct MethodEntry {
    /// Unique name (the crate's folder name or a baseline's name), e.g. `fine-tune`.
    pub name: &'static str,
    /// One-line description.
    pub description: &'static str,
    /// The paper it implements (authors, venue, year) or `baseline`.
    pub paper: &'static str,
    /// Builds the method from a config read through erased-serde.
    pub build: fn(&mut dyn erased_serde::Deserializer) -> Result<Box<dyn TransferMethod>>,
    /// The default config as JSON.
    pub default_config: fn() -> serde_json::Value,
}

inventory::collect!(MethodEntry);

/// Every registered method, sorted by name.
pub fn methods() -> Vec<&'static MethodEntry> {
    let mut v: Vec<_> = inventory::iter::<MethodEntry>.into_iter().collect();
    v.sort_by_key(|e| e.name);
    v
}

/// The method called `name`, or an error listing what is registered.
pub fn find(name: &str) -> Result<&'static MethodEntry> {
    inventory::iter::<MethodEntry>.into_iter().find(|e| e.name == name).ok_or_else(|| GraftError::UnknownMethod {
        name: name.to_string(),
        available: methods().iter().map(|e| e.name.to_string()).collect(),
    })
}

/// Names registered more than once (should be empty; a test checks it).
pub fn duplicate_names() -> Vec<&'static str> {
    let names: Vec<_> = methods().iter().map(|e| e.name).collect();
    let mut dups: Vec<_> = names.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]).collect();
    dups.dedup();
    dups
}

/// Builds method `name` from a JSON config (`None` = defaults). The given keys are laid over the
/// method's defaults, table by table, so `{"train": {"epochs": 3}}` changes only the epochs and
/// keeps the method's own learning rate and optimiser.
pub fn build(name: &str, config: Option<&serde_json::Value>) -> Result<Box<dyn TransferMethod>> {
    let entry = find(name)?;
    let mut value = (entry.default_config)();
    match config {
        // Anything but a table goes to the config reader as is, which rejects it with the defaults.
        Some(c) if !c.is_object() => value = c.clone(),
        Some(c) => overlay(&mut value, c),
        None => {}
    }
    let mut de = <dyn erased_serde::Deserializer>::erase(value);
    (entry.build)(&mut de)
}

/// Lays `top` over `base`: objects merge key by key (recursively), anything else replaces.
pub fn overlay(base: &mut serde_json::Value, top: &serde_json::Value) {
    match (base, top) {
        (serde_json::Value::Object(b), serde_json::Value::Object(t)) => {
            for (k, v) in t {
                match b.get_mut(k) {
                    Some(slot) => overlay(slot, v),
                    None => {
                        b.insert(k.clone(), v.clone());
                    }
                }
            }
        }
        (b, t) => *b = t.clone(),
    }
}

/// Reads a config of type `C` for `method`; unknown keys, wrong types and invalid values give an
/// error naming the key, the valid keys and the defaults.
pub fn parse_config<C: MethodConfig>(method: &str, de: &mut dyn erased_serde::Deserializer) -> Result<C> {
    let defaults = || serde_json::to_string(&C::default()).unwrap_or_default();
    let config: C = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let at = if path == "." { String::new() } else { format!("key '{path}': ") };
        GraftError::Config { method: method.to_string(), msg: format!("{at}{}; defaults: {}", e.inner(), defaults()) }
    })?;
    config.validate().map_err(|msg| GraftError::Config { method: method.to_string(), msg })?;
    Ok(config)
}

/// The default config of `C` as JSON.
pub fn default_config_json<C: MethodConfig>() -> serde_json::Value {
    serde_json::to_value(C::default()).unwrap_or(serde_json::Value::Null)
}

/// Loads a saved task model: reads the delta, rebuilds its method from the stored config, checks
/// the source hash, and restores the model.
pub fn load_task_model(source: &Source, path: &Path, device: &Device) -> Result<Box<dyn TaskModel>> {
    restore_task_model(source, &Delta::load(path, device)?, path)
}

/// [`load_task_model`] for a delta already read (from `path`, named in errors).
pub fn restore_task_model(source: &Source, delta: &Delta, path: &Path) -> Result<Box<dyn TaskModel>> {
    let method = build(&delta.method, Some(&delta.config))
        .map_err(|e| GraftError::checkpoint(path, format!("stored config cannot be used: {e}")))?;
    delta.check(source, method.name())?;
    method.load(source, delta)
}

/// Loads a saved task model that needs no source (its delta says `needs_source = false`, e.g. a
/// TLI student): reads the delta, rebuilds its method and restores the model on its own. A delta
/// that needs its source is refused with a message saying to use [`load_task_model`].
pub fn load_standalone(path: &Path, device: &Device) -> Result<Box<dyn TaskModel>> {
    restore_standalone(&Delta::load(path, device)?, path)
}

/// [`load_standalone`] for a delta already read (from `path`, named in errors).
pub fn restore_standalone(delta: &Delta, path: &Path) -> Result<Box<dyn TaskModel>> {
    if delta.needs_source {
        return Err(GraftError::checkpoint(
            path,
            format!("the delta of method '{}' needs its source; load it with the source it was fitted on", delta.method),
        ));
    }
    let method = build(&delta.method, Some(&delta.config))
        .map_err(|e| GraftError::checkpoint(path, format!("stored config cannot be used: {e}")))?;
    method.load_standalone(delta)
}

#[cfg(test)]
mod tests {
    use super::overlay;
    use serde_json::json;

    #[test]
    fn overlay_merges_tables_and_replaces_values() {
        let mut base = json!({"a": 1, "t": {"x": 1, "y": 2}, "l": [1, 2]});
        overlay(&mut base, &json!({"t": {"y": 5, "z": 6}, "l": [3], "b": true}));
        assert_eq!(base, json!({"a": 1, "t": {"x": 1, "y": 5, "z": 6}, "l": [3], "b": true}));
    }
}
