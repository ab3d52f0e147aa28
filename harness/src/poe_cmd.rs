//! `graft poe build` and `graft poe query`: Pool of Experts' pool as an artefact on disk.
//! `build` distils a pool from an oracle into `<pool>/pool.safetensors`, or extends an existing
//! pool with the primitive tasks it lacks (training only their experts); `query` assembles the
//! model of a set of primitive tasks without training and prints its build time, size, FLOPs
//! and accuracy on the query's test set.

use crate::cli::{PoeBuildArgs, PoeCommand, PoeQueryArgs};
use anyhow::{bail, Context, Result};
use candle_core::Device;
use graft_core::train::{accuracy, Split};
use graft_core::{FitContext, Source};
use graft_datasets::{DatasetName, TaskSpec};
use graft_poe::config::{default_pool_data, paper_train, PoeConfig, PoolData, PrimitiveTask};
use graft_poe::method::pool_images;
use graft_poe::pool::POOL_FILE;
use graft_poe::baseline::{train_baseline, Baseline};
use graft_poe::{Consolidated, Pool};
use std::fmt::Write;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

/// Runs a `graft poe` subcommand and returns what it prints.
pub fn run(cmd: &PoeCommand, data_dir: &Path) -> Result<String> {
    match cmd {
        PoeCommand::Build(args) => build(args),
        PoeCommand::Query(args) => query(args, data_dir),
    }
}

/// Parses `name=c,c,...;name=c,...` into primitive tasks.
pub fn parse_groups(text: &str) -> Result<Vec<PrimitiveTask>> {
    text.split(';')
        .filter(|g| !g.trim().is_empty())
        .map(|g| {
            let (name, classes) = g.split_once('=').with_context(|| format!("--groups: '{g}' is not name=class,class,..."))?;
            let classes = classes
                .split(',')
                .map(|c| c.trim().parse::<u32>().with_context(|| format!("--groups: '{c}' in '{g}' is not a class id")))
                .collect::<Result<Vec<_>>>()?;
            Ok(PrimitiveTask { name: name.trim().to_string(), classes })
        })
        .collect()
}

fn load_oracle(path: &Path) -> Result<Source> {
    Source::load(path, &Device::Cpu).map_err(|e| anyhow::anyhow!("--oracle {}: {e}", path.display()))
}

fn build(args: &PoeBuildArgs) -> Result<String> {
    let oracle = load_oracle(&args.oracle)?;
    let mut config = PoeConfig::default();
    if let Some(g) = &args.groups {
        config.groups = parse_groups(g)?;
    }
    if let Some(e) = args.epochs {
        config.library.train = paper_train(e);
        config.expert.train = paper_train(e);
    }
    let mut data = default_pool_data();
    if let Some(n) = args.max_train {
        data.max_train = Some(n);
    }
    config.data = PoolData::Dataset(data);
    graft_core::registry::MethodConfig::validate(&config).map_err(|m| anyhow::anyhow!("{m}"))?;
    let images = pool_images(&config.data, &oracle, None, &Device::Cpu)?;
    let mut ctx = FitContext::new(Device::Cpu, args.seed);
    ctx.progress = true;
    let path = args.pool.join(POOL_FILE);
    let start = Instant::now();
    let mut out = String::new();
    let pool = if path.exists() {
        let mut pool = Pool::load(&path, &Device::Cpu)?;
        pool.check_oracle(&oracle)?;
        let known = pool.names();
        let new: Vec<&PrimitiveTask> = config.groups.iter().filter(|g| !known.contains(&g.name)).collect();
        if new.is_empty() {
            bail!("{} already has experts for every primitive task given ({})", path.display(), known.join(", "));
        }
        for g in new {
            pool.add_expert(&oracle, &images, g, &config.expert, args.seed, &mut ctx)?;
            writeln!(out, "added expert '{}' {:?}", g.name, g.classes)?;
        }
        pool
    } else {
        Pool::build(&oracle, &images, &config.groups, &config.library, &config.expert, args.seed, &mut ctx)?
    };
    let seconds = start.elapsed().as_secs_f64();
    let hash = pool.save(&path)?;
    let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    writeln!(out, "pool {} ({} bytes, sha256 {hash})", path.display(), bytes)?;
    writeln!(out, "oracle {} ({})", oracle.short_hash(), oracle.backbone.spec().id())?;
    writeln!(out, "library {} up to {}: {} params, {} FLOPs/image", pool.library.spec().id(), pool.library_tap, pool.library_params(), pool.library_flops())?;
    for e in &pool.experts {
        writeln!(out, "expert {} {:?}: {} params, {} FLOPs/image", e.name, e.classes, e.net.num_params(), e.net.flops_per_image())?;
    }
    writeln!(out, "prepared in {seconds:.1} s on {} images", images.dim(0)?)?;
    Ok(out)
}

fn query(args: &PoeQueryArgs, data_dir: &Path) -> Result<String> {
    let path = args.pool.join(POOL_FILE);
    let pool = Arc::new(Pool::load(&path, &Device::Cpu)?);
    if let Some(o) = &args.oracle {
        pool.check_oracle(&load_oracle(o)?)?;
    }
    let names: Vec<String> = args.tasks.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
    let start = Instant::now();
    let model = Consolidated::new(pool.clone(), &names, None)?;
    let build_ms = start.elapsed().as_secs_f64() * 1e3;
    let mut out = String::new();
    writeln!(out, "query {} -> classes {:?}", names.join("+"), model.classes)?;
    writeln!(out, "built in {build_ms:.3} ms (no training)")?;
    writeln!(out, "model: {} params, {} bytes, {} FLOPs/image", model.num_params(), model.bytes(), model.flops_per_image())?;
    let dataset: DatasetName = args.dataset.parse().map_err(|e| anyhow::anyhow!("--dataset: {e}"))?;
    let mut spec = TaskSpec::new(names.join("+"), dataset);
    spec.classes = Some(model.classes.clone());
    spec.max_train = Some(if args.baselines { args.baseline_train } else { 600 });
    spec.max_val = Some(400);
    spec.max_test = args.max_test;
    let input = pool.library.spec().input.shape();
    let task = spec.build(data_dir, input)?;
    let x = task.test.images_tensor(&Device::Cpu)?;
    let start = Instant::now();
    let acc = accuracy(&|t| model.forward(t), Split { x: &x, y: &task.test.labels }, 256)?;
    writeln!(out, "test accuracy {acc:.4} on {} images of {dataset} ({:.0} images/s)", task.test.len(), task.test.len() as f64 / start.elapsed().as_secs_f64())?;
    let split = Split { x: &x, y: &task.test.labels };
    if let Some(o) = &args.oracle {
        let oracle = load_oracle(o)?;
        let ids = candle_core::Tensor::from_slice(&model.classes, model.classes.len(), &Device::Cpu)?;
        let oracle_acc = accuracy(&|t| Ok(oracle.backbone.forward(t)?.index_select(&ids, 1)?), split, 256)?;
        writeln!(
            out,
            "oracle {} on the same classes: accuracy {oracle_acc:.4}, {} params, {} FLOPs/image",
            oracle.backbone.spec().id(),
            oracle.backbone.num_params(),
            oracle.backbone.flops_per_image()
        )?;
    }
    if args.baselines {
        // Multi-teacher KD distils from the oracle, so it runs only when one is given.
        let oracle = args.oracle.as_deref().map(load_oracle).transpose()?;
        let defaults = PoeConfig::default().expert;
        let mut kinds = vec![Baseline::Scratch, Baseline::FrozenLibrary];
        if oracle.is_some() {
            kinds.push(Baseline::MultiTeacherKd { temperature: defaults.temperature, alpha: defaults.alpha });
        }
        for kind in kinds {
            let mut cfg = paper_train(args.baseline_epochs);
            cfg.batch_size = 64;
            let mut ctx = FitContext::new(Device::Cpu, args.seed);
            ctx.progress = true;
            let (trained, report) = train_baseline(&model, &task, kind, &cfg, args.seed, oracle.as_ref(), &mut ctx)?;
            let acc = accuracy(&|t| trained.forward(t), split, 256)?;
            writeln!(
                out,
                "baseline {kind:?} (same size, {} epochs on {} images): accuracy {acc:.4}, trained in {:.1} s",
                args.baseline_epochs,
                task.train.len(),
                report.seconds
            )?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::parse_groups;

    #[test]
    fn groups_parse_and_bad_ones_are_named() {
        let g = parse_groups("footwear=5,7,9; bags=8").unwrap();
        assert_eq!((g[0].name.as_str(), g[0].classes.clone()), ("footwear", vec![5, 7, 9]));
        assert_eq!((g[1].name.as_str(), g[1].classes.clone()), ("bags", vec![8]));
        assert!(parse_groups("footwear").unwrap_err().to_string().contains("'footwear'"));
        assert!(parse_groups("a=1,x").unwrap_err().to_string().contains("'x'"));
    }

    #[test]
    fn the_poe_suite_parses_and_its_configs_build() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("experiments/poe/fashion-queries.toml");
        let suite = crate::suite::Suite::load(&path).unwrap();
        for m in &suite.methods {
            let config = suite.method_configs.get(m).cloned();
            graft_core::registry::build(m, config.as_ref()).unwrap_or_else(|e| panic!("{m}: {e}"));
        }
        // Every task is a union of the default primitive tasks (the Fashion superclasses).
        let groups = graft_poe::PoeConfig::default().groups;
        for t in &suite.tasks {
            let classes = t.spec.classes.clone().unwrap();
            for g in &groups {
                let inside = g.classes.iter().filter(|c| classes.contains(c)).count();
                assert!(inside == 0 || inside == g.classes.len(), "{}: cuts {}", t.spec.name, g.name);
            }
        }
    }
}
