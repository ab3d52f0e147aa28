//! `graft predict`: a trained task model on your own image files.

use crate::cli::{PredictArgs, PredictFormat};
use crate::open_task::open_task_model;
use anyhow::{bail, Context, Result};
use candle_core::{Device, Tensor};
use graft_core::ImageSet;
use graft_datasets::{fitted_image, image_files, Fit};
use serde::Serialize;
use std::path::PathBuf;

/// Images per forward pass.
const BATCH: usize = 64;

/// One class and its probability.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Prediction {
    /// Class name.
    pub class: String,
    /// Softmax probability.
    pub probability: f32,
}

/// An image and its most probable classes.
#[derive(Clone, Debug, Serialize)]
pub struct ImagePredictions {
    /// The image file.
    pub image: PathBuf,
    /// Most probable first.
    pub predictions: Vec<Prediction>,
}

/// Runs `graft predict` and prints the predictions.
pub fn run(args: &PredictArgs) -> Result<()> {
    if args.top == 0 {
        bail!("--top must be at least 1");
    }
    let opened = open_task_model(&args.model)?;
    let task = opened.task_info();
    let fit: Fit = serde_json::from_value(serde_json::Value::String(task.fit.clone()))
        .with_context(|| format!("{}: the task's image fit '{}'", opened.delta_path.display(), task.fit))?;
    let input = opened.input;
    let files = image_files(&args.images)?;
    let mut out = Vec::with_capacity(files.len());
    for chunk in files.chunks(BATCH) {
        let sets: Vec<ImageSet> = chunk.iter().map(|f| fitted_image(f, input, fit)).collect::<std::result::Result<_, _>>()?;
        let images: Vec<f32> = sets.iter().flat_map(|s| s.images.iter().copied()).collect();
        let x = Tensor::from_vec(images, (chunk.len(), input.0, input.1, input.2), &Device::Cpu)?;
        let logits: Vec<Vec<f32>> = opened.model.forward(&x)?.to_vec2()?;
        for (file, row) in chunk.iter().zip(logits) {
            out.push(ImagePredictions { image: file.clone(), predictions: top_k(&row, &task.class_names, args.top) });
        }
    }
    print!("{}", render(&out, args.format)?);
    Ok(())
}

/// The `k` most probable classes of one image's logits (softmax), most probable first.
pub fn top_k(logits: &[f32], class_names: &[String], k: usize) -> Vec<Prediction> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exps: Vec<f32> = logits.iter().map(|&z| (z - max).exp()).collect();
    let sum: f32 = exps.iter().sum();
    let mut order: Vec<usize> = (0..logits.len()).collect();
    // Highest first; ties keep the lower class index first.
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]).then(a.cmp(&b)));
    order
        .into_iter()
        .take(k)
        .map(|c| Prediction { class: class_names.get(c).cloned().unwrap_or_else(|| c.to_string()), probability: exps[c] / sum })
        .collect()
}

/// The predictions as text, CSV or JSON.
pub fn render(all: &[ImagePredictions], format: PredictFormat) -> Result<String> {
    let mut s = String::new();
    match format {
        PredictFormat::Json => s = serde_json::to_string_pretty(all)? + "\n",
        PredictFormat::Csv => {
            s.push_str("image,rank,class,probability\n");
            for p in all {
                for (rank, q) in p.predictions.iter().enumerate() {
                    s.push_str(&format!("{},{},{},{:.6}\n", csv_field(&p.image.display().to_string()), rank + 1, csv_field(&q.class), q.probability));
                }
            }
        }
        PredictFormat::Text => {
            for p in all {
                for q in &p.predictions {
                    s.push_str(&format!("{}\t{}\t{:.4}\n", p.image.display(), q.class, q.probability));
                }
            }
        }
    }
    Ok(s)
}

/// A CSV field, quoted when it holds a comma, quote or line break.
fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_k_is_the_softmax_in_order() {
        let names: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let p = top_k(&[0.0, 2.0, 1.0], &names, 2);
        // e^2 / (1 + e^2 + e) and e / (1 + e^2 + e), by hand.
        let z = 1.0 + 2f32.exp() + 1f32.exp();
        assert_eq!(p.iter().map(|q| q.class.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert!((p[0].probability - 2f32.exp() / z).abs() < 1e-6);
        assert!((p[1].probability - 1f32.exp() / z).abs() < 1e-6);
    }

    #[test]
    fn csv_quotes_only_what_needs_it() {
        let all = [ImagePredictions {
            image: PathBuf::from("dir/a,b.png"),
            predictions: vec![Prediction { class: "say \"hi\"".into(), probability: 0.5 }],
        }];
        assert_eq!(render(&all, PredictFormat::Csv).unwrap(), "image,rank,class,probability\n\"dir/a,b.png\",1,\"say \"\"hi\"\"\",0.500000\n");
    }
}
