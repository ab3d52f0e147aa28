//! `poe` as a transfer method: the pool is prepared once per oracle and reused from the artefact
//! cache, preparation and query times are recorded apart, and tasks that are not a union of
//! primitive tasks are refused with the pool's primitive tasks listed.

use candle_core::Device;
use graft_core::artefact::ArtefactCache;
use graft_core::conformance::{tiny_source, tiny_task};
use graft_core::{registry, FitContext, Task};
use serde_json::json;
use graft_poe as _;

fn method() -> Box<dyn graft_core::TransferMethod> {
    let config = json!({
        "groups": [{"name": "top", "classes": [0]}, {"name": "rest", "classes": [1, 2]}],
        "library": {"depth": 10, "train": {"epochs": 1, "batch_size": 16}},
        "expert": {"train": {"epochs": 1, "batch_size": 16}},
        "data": "task",
        "pool_seed": 11
    });
    registry::build("poe", Some(&config)).unwrap()
}

/// The tiny task restricted to `keep` (oracle classes), relabelled in that order.
fn subtask(task: &Task, keep: &[u32]) -> Task {
    let pick = |set: &graft_core::ImageSet| {
        let idx: Vec<usize> = (0..set.len()).filter(|&i| keep.contains(&set.labels[i])).collect();
        let mut s = set.subset(&idx);
        s.labels = s.labels.iter().map(|l| keep.iter().position(|k| k == l).unwrap() as u32).collect();
        s
    };
    Task {
        name: format!("sub{keep:?}"),
        num_classes: keep.len(),
        class_names: keep.iter().map(|c| c.to_string()).collect(),
        class_ids: keep.iter().map(|&c| vec![c]).collect(),
        // Every training image (labels unused by PoE), so all subtasks share one pool.
        train: { let mut t = task.train.clone(); t.labels.iter_mut().for_each(|l| *l = 0); t },
        val: pick(&task.val),
        test: pick(&task.test),
        provenance: "test".into(),
    }
}

#[test]
fn the_pool_is_prepared_once_and_queries_are_answered_from_it() {
    let dir = tempfile::tempdir().unwrap();
    let source = tiny_source(7);
    let task = tiny_task(7);
    let m = method();
    let mut ctx = FitContext::new(Device::Cpu, 0);
    ctx.artefacts = ArtefactCache::at(dir.path());
    let first = m.fit(&source, &subtask(&task, &[0, 1, 2]), &mut ctx).unwrap();
    let mf = first.metrics();
    assert_eq!(mf["pool_reused"], 0.0);
    assert!(mf["pool_prep_s"] > 0.0 && mf["query_ms"] >= 0.0, "{mf:?}");
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().to_string()).collect();
    assert!(files.len() == 1 && files[0].starts_with("poe-pool-"), "{files:?}");
    // A second query (labels in another order) reuses the pool.
    let second = m.fit(&source, &subtask(&task, &[2, 1]), &mut ctx).unwrap();
    let ms = second.metrics();
    assert_eq!((ms["pool_reused"], ms["pool_prep_s"], ms["experts"]), (1.0, 0.0, 1.0), "{ms:?}");
    let pool_hash = |m: &dyn graft_core::TaskModel| m.delta().unwrap().tensors["poe.pool_sha256"].to_vec1::<u8>().unwrap();
    assert_eq!(pool_hash(first.as_ref()), pool_hash(second.as_ref()));
    // Its outputs are the first model's columns 2 and 1: the same experts, reordered.
    let x = task.test.images_tensor(&Device::Cpu).unwrap();
    let a = first.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    let b = second.forward(&x).unwrap().to_vec2::<f32>().unwrap();
    assert!(a.iter().zip(&b).all(|(a, b)| a[2].to_bits() == b[0].to_bits() && a[1].to_bits() == b[1].to_bits()));
    // The delta is the query, not weights.
    let delta = second.delta().unwrap();
    assert_eq!(delta.tensors["poe.classes"].to_vec1::<u32>().unwrap(), vec![2, 1]);
    assert_eq!(delta.tensor_bytes(), 2 * 4 + 32);
}

#[test]
fn tasks_that_are_not_unions_of_primitive_tasks_are_refused() {
    let source = tiny_source(7);
    let task = tiny_task(7);
    let m = method();
    let mut ctx = FitContext::new(Device::Cpu, 0);
    let half = subtask(&task, &[0, 1]);
    let err = m.fit(&source, &half, &mut ctx).err().unwrap().to_string();
    assert!(err.contains("'rest'") && err.contains("class 2") && err.contains("top [0], rest [1, 2]"), "{err}");
    let mut grouped = subtask(&task, &[0, 1]);
    grouped.class_ids = vec![vec![0], vec![1, 2]];
    let err = m.fit(&source, &grouped, &mut ctx).err().unwrap().to_string();
    assert!(err.contains("label 1 holds classes [1, 2]"), "{err}");
    let mut unknown = task.clone();
    unknown.class_ids.clear();
    let err = m.fit(&source, &unknown, &mut ctx).err().unwrap().to_string();
    assert!(err.contains("class_ids are empty"), "{err}");
}
