//! The frozen-source feature cache: exact features, f16 storage, the budget, and the on-disk
//! cache's reuse, invalidation and recovery from a damaged file.

use candle_core::{DType, Device};
use graft_core::backbone::{Arch, BackboneSpec, InputSpec};
use graft_core::features::{CacheDType, CacheOutcome, FeatureCache, TapFeatures};
use graft_core::init::SeededRng;
use graft_core::{Backbone, ImageSet, NoHooks};

fn backbone() -> Backbone {
    let spec = BackboneSpec { arch: Arch::ResnetCifar { depth: 8, width: 4 }, input: InputSpec::new(1, 8, 8), num_classes: 3 };
    Backbone::init(spec, 7, &Device::Cpu).unwrap()
}

fn images(n: usize, seed: u64) -> ImageSet {
    let px = SeededRng::new(seed).uniform_vec(n * 64, 0.0, 1.0);
    ImageSet::new(px, vec![0; n], 1, 8, 8).unwrap()
}

fn cache(dir: Option<&std::path::Path>) -> FeatureCache {
    FeatureCache { enabled: true, dtype: CacheDType::F32, budget_bytes: 1 << 30, dir: dir.map(Into::into), batch_size: 4 }
}

fn ready(o: CacheOutcome) -> TapFeatures {
    match o {
        CacheOutcome::Ready(f) => f,
        CacheOutcome::OverBudget(m) => panic!("expected features, got: {m}"),
    }
}

fn flat(t: &candle_core::Tensor) -> Vec<f32> {
    t.to_dtype(DType::F32).unwrap().flatten_all().unwrap().to_vec1().unwrap()
}

#[test]
fn cached_taps_equal_a_fresh_forward_bit_for_bit() {
    let b = backbone();
    let set = images(10, 1);
    let taps = ["stage1.block0", "pool"];
    let f = ready(cache(None).taps(&b, "h", &set, &taps).unwrap());
    assert!(!f.from_disk);
    let x = set.images_tensor(&Device::Cpu).unwrap();
    let fresh = b.run(&x, None, "pool", &taps, &NoHooks).unwrap();
    for t in taps {
        assert_eq!(f.get(t).unwrap().dims(), fresh.taps[t].dims(), "{t}");
        assert_eq!(flat(f.get(t).unwrap()), flat(&fresh.taps[t]), "{t}");
    }
    assert!(f.get("stem").unwrap_err().to_string().contains("pool"));
}

#[test]
fn f16_cache_halves_the_bytes_and_stays_close() {
    let b = backbone();
    let set = images(6, 2);
    let mut c = cache(None);
    let f32_bytes = c.bytes_needed(&b, 6, &["stage1.block0"]).unwrap();
    c.dtype = CacheDType::F16;
    assert_eq!(c.bytes_needed(&b, 6, &["stage1.block0"]).unwrap() * 2, f32_bytes);
    let f = ready(c.taps(&b, "h", &set, &["stage1.block0"]).unwrap());
    let t = f.get("stage1.block0").unwrap();
    assert_eq!(t.dtype(), DType::F16);
    let exact = b.features(&set.images_tensor(&Device::Cpu).unwrap(), "stage1.block0", 6).unwrap();
    for (a, e) in flat(t).iter().zip(flat(&exact)) {
        assert!((a - e).abs() <= 2e-3 * e.abs().max(1.0), "{a} vs {e}");
    }
}

#[test]
fn over_budget_says_how_much_and_how_to_raise_it() {
    let b = backbone();
    let mut c = cache(None);
    c.budget_bytes = 1000;
    let needed = c.bytes_needed(&b, 50, &["stage1.block0"]).unwrap();
    assert_eq!(needed, 50 * 4 * 8 * 8 * 4);
    match c.taps(&b, "h", &images(50, 3), &["stage1.block0"]).unwrap() {
        CacheOutcome::OverBudget(m) => assert!(m.contains("50 images") && m.contains("GRAFT_FEATURE_CACHE_MB"), "{m}"),
        CacheOutcome::Ready(_) => panic!("51 KB of features fit a 1000-byte budget"),
    }
    assert!(matches!(FeatureCache::disabled().taps(&b, "h", &images(2, 3), &["pool"]).unwrap(), CacheOutcome::OverBudget(_)));
    assert!(c.taps(&b, "h", &images(2, 3), &["nope"]).unwrap_err().to_string().contains("nope"));
}

#[test]
fn disk_cache_is_reused_keyed_by_content_and_recovers_from_damage() {
    let dir = tempfile::tempdir().unwrap();
    let b = backbone();
    let set = images(9, 4);
    let c = cache(Some(dir.path()));
    let first = ready(c.taps(&b, "src-a", &set, &["pool"]).unwrap());
    let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().path()).collect();
    assert_eq!(files.len(), 1);
    let second = ready(c.taps(&b, "src-a", &set, &["pool"]).unwrap());
    assert!(second.from_disk);
    assert_eq!(flat(first.get("pool").unwrap()), flat(second.get("pool").unwrap()));

    // Another source hash or one changed pixel is another entry.
    assert!(!ready(c.taps(&b, "src-b", &set, &["pool"]).unwrap()).from_disk);
    let mut changed = set.clone();
    changed.images[5] += 0.25;
    assert!(!ready(c.taps(&b, "src-a", &changed, &["pool"]).unwrap()).from_disk);
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);

    // A truncated file is a miss: recomputed, rewritten, and then read back.
    let bytes = std::fs::read(&files[0]).unwrap();
    std::fs::write(&files[0], &bytes[..bytes.len() / 2]).unwrap();
    let again = ready(c.taps(&b, "src-a", &set, &["pool"]).unwrap());
    assert!(!again.from_disk);
    assert_eq!(flat(again.get("pool").unwrap()), flat(first.get("pool").unwrap()));
    assert!(ready(c.taps(&b, "src-a", &set, &["pool"]).unwrap()).from_disk);
}
