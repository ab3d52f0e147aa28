//! `graft list`: every registered method with its description, paper and default config.

use crate::cli::ConfigFormat;
use anyhow::{Context, Result};

/// Renders the registry listing.
pub fn render(format: ConfigFormat) -> Result<String> {
    let methods = graft_core::registry::methods();
    let mut out = String::new();
    if methods.is_empty() {
        out.push_str("no methods registered (is a method crate linked into the binary?)\n");
        return Ok(out);
    }
    for (i, m) in methods.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}\n  {}\n  paper: {}\n  default config:\n",
            m.name, m.description, m.paper
        ));
        let config = (m.default_config)();
        let text = match format {
            ConfigFormat::Json => {
                serde_json::to_string_pretty(&config).context("config serialises")?
            }
            ConfigFormat::Toml => {
                let wrapped =
                    serde_json::json!({ "method_configs": { m.name: without_nulls(config) } });
                let body = toml::to_string(&wrapped).with_context(|| {
                    format!(
                        "the default config of '{}' cannot be written as TOML",
                        m.name
                    )
                })?;
                body.trim().to_string()
            }
        };
        for line in text.lines() {
            out.push_str("    ");
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// TOML has no null: keys whose value is null (an unset option) are left out.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        serde_json::Value::Array(a) => {
            serde_json::Value::Array(a.into_iter().map(without_nulls).collect())
        }
        other => other,
    }
}
