//! The report's table rows as CSV or JSON (`graft report --format csv|json`): one line or object
//! per row the markdown tables show, with the same figures ([`crate::report::Row`]).

use crate::report::Row;

/// The CSV columns, in order: the fields of [`Row`] by their serialised names.
pub const COLUMNS: [&str; 20] = [
    "source",
    "task",
    "method",
    "label",
    "config_hash",
    "n_seeds",
    "test_acc_mean",
    "test_acc_std",
    "trainable_params",
    "stored_bytes",
    "flops_per_image",
    "train_flops_per_image",
    "interconnections",
    "train_seconds_per_epoch",
    "train_seconds_per_run",
    "train_size",
    "axis_kind",
    "axis_value",
    "axis_base_task",
    "reload_identical",
];

/// A CSV field: quoted (quotes doubled) when it holds a comma, quote or line break.
fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// The rows as CSV with a header line ([`COLUMNS`]); an absent value (no std over one run, no
/// curve) is an empty field; numbers are written in full precision.
pub fn csv<'a>(rows: impl IntoIterator<Item = &'a Row>) -> String {
    let mut out = COLUMNS.join(",");
    out.push('\n');
    for row in rows {
        let value = serde_json::to_value(row).expect("a row serialises");
        let fields: Vec<String> = COLUMNS
            .iter()
            .map(|c| match &value[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(s) => field(s),
                other => field(&other.to_string()),
            })
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// The rows as a pretty-printed JSON array of objects (keys as in [`COLUMNS`]; absent values
/// are null).
pub fn json<'a>(rows: impl IntoIterator<Item = &'a Row>) -> String {
    let rows: Vec<&Row> = rows.into_iter().collect();
    let mut out = serde_json::to_string_pretty(&rows).expect("rows serialise");
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::aggregate;
    use crate::report::tests::rec;
    use crate::results::{CurveKind, CurvePosition};

    /// Records with accuracies exact in binary: linear-probe 75 % and 87.5 % (seeds 0, 1),
    /// fine-tune 93.75 % once with its own footprint, and fine-tune on the task cut to a quarter.
    fn records() -> Vec<crate::results::RunRecord> {
        let mut ft = rec("fine-tune", 0, 0.9375);
        ft.footprint.trainable_params = 77_400;
        ft.footprint.stored_bytes = 309_600;
        ft.footprint.interconnections = 0;
        ft.train_seconds = 7.5;
        // Training FLOPs measured 1M in two epochs, 3M in the other two: 2M per image.
        for (i, e) in ft.epochs.iter_mut().enumerate() {
            e.train_flops_per_image = Some(if i < 2 { 1e6 } else { 3e6 });
        }
        let mut quarter = rec("fine-tune", 0, 0.5);
        quarter.key = "s/t-frac0.25/fine-tune/s0/h".into();
        quarter.task = "t-frac0.25".into();
        quarter.train_size = 25;
        quarter.axis = Some(CurvePosition { base_task: "t".into(), kind: CurveKind::SampleFraction, value: 0.25 });
        quarter.epochs.clear();
        vec![rec("linear-probe", 0, 0.75), rec("linear-probe", 1, 0.875), ft, quarter]
    }

    #[test]
    fn csv_rows_hold_the_tables_figures() {
        let records = records();
        let agg = aggregate(&records, &["fine-tune", "linear-probe"]);
        let text = csv(agg.rows());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], COLUMNS.join(","));
        assert_eq!(lines.len(), 4, "{text}");
        // Registry order within the table: fine-tune before linear-probe.
        assert_eq!(lines[1], "s,t,fine-tune,fine-tune,h,1,93.75,,77400.0,309600.0,2000000.0,2000000.0,0.0,0.25,7.5,100,,,,true");
        let lp: Vec<&str> = lines[2].split(',').collect();
        assert_eq!(lp[..6], ["s", "t", "linear-probe", "linear-probe", "h", "2"]);
        // Mean of 75 and 87.5; sample std √((6.25² + 6.25²) / 1) = 8.8388.
        assert_eq!(lp[6].parse::<f64>().unwrap(), 81.25);
        assert!((lp[7].parse::<f64>().unwrap() - 8.838_834_764_831_844).abs() < 1e-9, "{}", lp[7]);
        // 4 epochs in 1 s; 2 s per run; 100 training images.
        // The fixture's epochs measured 3M training FLOPs per image each.
        assert_eq!(lp[11..16], ["3000000.0", "1.0", "0.25", "2.0", "100"]);
        // The curve's point: no epochs recorded (empty), its axis filled in.
        assert_eq!(lines[3], "s,t-frac0.25,fine-tune,fine-tune,h,1,50.0,,1000.0,4000.0,2000000.0,,1.0,,2.0,25,sample_fraction,0.25,t,true");
    }

    #[test]
    fn a_label_with_commas_is_quoted() {
        let mut a = rec("piggyback", 0, 0.5);
        a.config = serde_json::json!({"tune_bn": false, "lr": 0.1});
        a.config_hash = "aaaa".into();
        a.key = "s/t/piggyback/s0/aaaa".into();
        let mut b = rec("piggyback", 0, 0.5);
        b.config = serde_json::json!({"tune_bn": true, "lr": 0.2});
        b.config_hash = "bbbb".into();
        let records = [a, b];
        let text = csv(aggregate(&records, &[]).rows());
        assert!(text.contains("\ns,t,piggyback,\"piggyback (lr=0.1, tune_bn=false)\",aaaa,1,50.0,"), "{text}");
    }

    #[test]
    fn json_rows_have_the_same_values() {
        let records = records();
        let agg = aggregate(&records, &["fine-tune", "linear-probe"]);
        let v: serde_json::Value = serde_json::from_str(&json(agg.rows())).unwrap();
        let rows = v.as_array().unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[1]["label"], "linear-probe");
        assert_eq!(rows[1]["n_seeds"], 2);
        assert_eq!(rows[1]["test_acc_mean"], 81.25);
        assert_eq!(rows[0]["test_acc_std"], serde_json::Value::Null, "no std over one run");
        assert_eq!(rows[2]["axis_kind"], "sample_fraction");
        assert_eq!(rows[2]["axis_value"], 0.25);
        assert_eq!(rows[2]["axis_base_task"], "t");
        assert_eq!(rows[2]["train_seconds_per_epoch"], serde_json::Value::Null);
        assert_eq!(rows[0]["train_flops_per_image"], 2e6);
        assert_eq!(rows[2]["train_flops_per_image"], serde_json::Value::Null);
        let mut keys: Vec<&String> = rows[0].as_object().unwrap().keys().collect();
        keys.sort();
        let mut columns = COLUMNS.to_vec();
        columns.sort();
        assert_eq!(keys, columns, "the JSON keys are the CSV columns");
    }
}
