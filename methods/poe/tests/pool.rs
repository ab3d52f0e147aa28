//! The pool as an artefact: consolidation is exactly the experts' logits concatenated over the
//! sorted union of their classes; a query changes no weight; a saved pool answers identically;
//! adding an expert leaves the others bit-identical; bad queries and foreign oracles are refused
//! with the names and hashes involved.

use candle_core::{Device, Tensor};
use graft_core::conformance::{tiny_source, tiny_task};
use graft_core::{FitContext, NoHooks, TrainConfig};
use graft_poe::config::{paper_train, ExpertConfig, LibraryConfig, PrimitiveTask};
use graft_poe::{Consolidated, Pool};
use std::sync::Arc;

fn short(epochs: usize) -> TrainConfig {
    let mut t = paper_train(epochs);
    t.batch_size = 16;
    t
}

fn group(name: &str, classes: &[u32]) -> PrimitiveTask {
    PrimitiveTask { name: name.into(), classes: classes.to_vec() }
}

fn configs() -> (LibraryConfig, ExpertConfig) {
    (LibraryConfig { depth: 10, train: short(1), ..Default::default() }, ExpertConfig { train: short(1), ..Default::default() })
}

fn build(groups: &[PrimitiveTask]) -> Pool {
    let source = tiny_source(7);
    let images = tiny_task(7).train.images_tensor(&Device::Cpu).unwrap();
    let (lib, exp) = configs();
    Pool::build(&source, &images, groups, &lib, &exp, 4, &mut FitContext::new(Device::Cpu, 0)).unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap().into_iter().map(f32::to_bits).collect()
}

fn all_bits(pool: &Pool) -> Vec<(String, Vec<u32>)> {
    pool.tensors().unwrap().iter().map(|(k, t)| (k.clone(), bits(t))).collect()
}

#[test]
fn consolidation_concatenates_the_experts_over_the_sorted_union_and_touches_no_weight() {
    // Class ids deliberately interleaved across experts: "b" holds 0 and 2, "a" holds 1.
    let pool = Arc::new(build(&[group("a", &[1]), group("b", &[2, 0])]));
    let before = all_bits(&pool);
    let x = tiny_task(7).test.images_tensor(&Device::Cpu).unwrap();
    let model = Consolidated::new(pool.clone(), &["a".into(), "b".into()], None).unwrap();
    assert_eq!(model.classes, vec![0, 1, 2]);
    let got = model.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    // By hand: library once, each expert on its output, columns placed by class id.
    let f = pool.library.run(&x, None, &pool.library_tap, &[], &NoHooks).unwrap().output;
    let a = pool.expert("a").unwrap();
    let b = pool.expert("b").unwrap();
    assert_eq!(b.classes, vec![0, 2], "an expert's outputs are its classes in ascending order");
    let za = a.net.run(&f, None, "logits", &[], &NoHooks).unwrap().output.to_vec2::<f32>().unwrap();
    let zb = b.net.run(&f, None, "logits", &[], &NoHooks).unwrap().output.to_vec2::<f32>().unwrap();
    for (i, row) in got.iter().enumerate() {
        let want = [zb[i][0], za[i][0], zb[i][1]];
        assert_eq!(row.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), want.iter().map(|v| v.to_bits()).collect::<Vec<_>>(), "row {i}");
    }
    // A one-expert query is that expert's logits.
    let only_b = Consolidated::new(pool.clone(), &["b".into()], None).unwrap();
    assert_eq!(bits(&only_b.forward(&x).unwrap()), zb.iter().flatten().map(|v| v.to_bits()).collect::<Vec<_>>());
    // Another output order permutes the columns.
    let perm = Consolidated::new(pool.clone(), &["b".into(), "a".into()], Some(&[2, 0, 1])).unwrap();
    let p = perm.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    assert!(p.iter().zip(&got).all(|(p, g)| p[0].to_bits() == g[2].to_bits() && p[1].to_bits() == g[0].to_bits() && p[2].to_bits() == g[1].to_bits()));
    // No weight of the pool changed.
    assert!(all_bits(&pool) == before, "a query changed the pool");
    // FLOPs and size: library plus the chosen experts.
    assert_eq!(model.flops_per_image(), pool.library_flops() + a.net.flops_per_image() + b.net.flops_per_image());
    assert!(only_b.num_params() < model.num_params());
}

#[test]
fn a_saved_pool_reloads_to_the_same_bytes_and_answers() {
    let pool = Arc::new(build(&[group("a", &[0]), group("b", &[1, 2])]));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pool.safetensors");
    let hash = pool.save(&path).unwrap();
    assert_eq!(hash, pool.hash().unwrap());
    let again = Arc::new(Pool::load(&path, &Device::Cpu).unwrap());
    assert_eq!(again.hash().unwrap(), hash);
    assert_eq!(again.names(), vec!["a", "b"]);
    let x = tiny_task(7).test.images_tensor(&Device::Cpu).unwrap();
    let q = ["a".to_string(), "b".to_string()];
    let before = Consolidated::new(pool, &q, None).unwrap().forward(&x).unwrap();
    let after = Consolidated::new(again, &q, None).unwrap().forward(&x).unwrap();
    assert_eq!(bits(&before), bits(&after));
    // A corrupt file names itself.
    std::fs::write(&path, b"not a pool").unwrap();
    let err = Pool::load(&path, &Device::Cpu).err().unwrap().to_string();
    assert!(err.contains("pool.safetensors"), "{err}");
}

#[test]
fn extending_the_pool_trains_only_the_new_expert() {
    let source = tiny_source(7);
    let images = tiny_task(7).train.images_tensor(&Device::Cpu).unwrap();
    let (_, exp) = configs();
    let mut pool = build(&[group("a", &[0])]);
    let before = all_bits(&pool);
    pool.add_expert(&source, &images, &group("b", &[1, 2]), &exp, 4, &mut FitContext::new(Device::Cpu, 0)).unwrap();
    let after: std::collections::BTreeMap<_, _> = all_bits(&pool).into_iter().collect();
    for (k, v) in &before {
        assert!(after.get(k) == Some(v), "tensor '{k}' changed when an expert was added");
    }
    assert!(after.keys().any(|k| k.starts_with("expert.b.")));
    // Experts draw from their own seed streams: adding "b" later gives the pool built at once.
    assert_eq!(pool.hash().unwrap(), build(&[group("a", &[0]), group("b", &[1, 2])]).hash().unwrap());
    // The same name or a class already served is refused.
    let err = pool.add_expert(&source, &images, &group("b", &[1]), &exp, 4, &mut FitContext::new(Device::Cpu, 0)).unwrap_err().to_string();
    assert!(err.contains("already has an expert for 'b'"), "{err}");
    let err = pool.add_expert(&source, &images, &group("c", &[2]), &exp, 4, &mut FitContext::new(Device::Cpu, 0)).unwrap_err().to_string();
    assert!(err.contains("class 2 is already served by expert 'b'"), "{err}");
}

#[test]
fn unknown_primitive_tasks_and_foreign_oracles_are_refused_by_name() {
    let pool = Arc::new(build(&[group("tops", &[0]), group("footwear", &[1, 2])]));
    let err = Consolidated::new(pool.clone(), &["footwear".into(), "bags".into()], None).err().unwrap().to_string();
    assert!(err.contains("unknown primitive task 'bags'") && err.contains("tops, footwear"), "{err}");
    let other = tiny_source(8);
    let err = pool.check_oracle(&other).unwrap_err().to_string();
    assert!(err.contains(&pool.oracle_hash) && err.contains(&other.hash), "{err}");
    let images = tiny_task(7).train.images_tensor(&Device::Cpu).unwrap();
    let mut extended = (*pool).clone();
    let (_, exp) = configs();
    let err = extended.add_expert(&other, &images, &group("x", &[2]), &exp, 4, &mut FitContext::new(Device::Cpu, 0)).unwrap_err().to_string();
    assert!(err.contains(&other.hash), "{err}");
}

#[test]
fn same_size_baselines_train_their_own_copy_and_leave_the_pool_alone() {
    use graft_poe::baseline::{train_baseline, Baseline};
    let pool = Arc::new(build(&[group("a", &[0]), group("b", &[1, 2])]));
    let before = all_bits(&pool);
    let task = tiny_task(7);
    let model = Consolidated::new(pool.clone(), &["a".into(), "b".into()], None).unwrap();
    let source = tiny_source(7);
    for kind in [Baseline::Scratch, Baseline::FrozenLibrary, Baseline::MultiTeacherKd { temperature: 4.0, alpha: 0.3 }] {
        let (trained, report) = train_baseline(&model, &task, kind, &short(2), 1, Some(&source), &mut FitContext::new(Device::Cpu, 1)).unwrap();
        assert_eq!(report.epochs.len(), 2);
        assert_eq!((trained.classes.clone(), trained.flops_per_image(), trained.num_params()), (model.classes.clone(), model.flops_per_image(), model.num_params()));
        let t = all_bits(&trained.pool);
        let lib_same = t.iter().zip(&before).filter(|(a, _)| a.0.starts_with("library.")).all(|(a, b)| a == b);
        let experts_same = t.iter().zip(&before).filter(|(a, _)| a.0.starts_with("expert.")).all(|(a, b)| a == b);
        assert_eq!(lib_same, !kind.trains_library(), "{kind:?}: library trained?");
        assert!(!experts_same, "{kind:?}: experts were not trained");
    }
    assert!(all_bits(&pool) == before, "a baseline changed the pool");
}
