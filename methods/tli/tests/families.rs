//! Every architecture family can be teacher and student of every other.

mod common;

use common::{bits, images, init};
use graft_core::backbone::is_bn_buffer;
use graft_tli::{inject, match_units, score, InjectOptions, LayerClass, Reshape};
use std::collections::{BTreeSet, HashMap};

const ARCHS: [&str; 5] = ["resnet-cifar-8-w4", "wrn-10-1", "resnet18-w4", "mobilenetv2-0.25", "vgg11-bn-d16-p1"];
const INPUT: (usize, usize, usize) = (3, 32, 32);

/// Tensor name → class of the unit it belongs to.
fn classes(b: &graft_core::Backbone) -> HashMap<String, LayerClass> {
    match_units(b.structure())
        .into_iter()
        .flat_map(|u| u.tensors.iter().chain(&u.buffers).map(|t| (t.name.clone(), u.class)).collect::<Vec<_>>())
        .collect()
}

#[test]
fn every_family_injects_into_every_other() {
    let nets: Vec<_> = ARCHS.iter().enumerate().map(|(i, a)| init(a, INPUT, i as u64)).collect();
    let before: Vec<_> = nets.iter().map(bits).collect();
    for (ti, teacher) in nets.iter().enumerate() {
        let teacher_classes = classes(teacher);
        for (si, student) in nets.iter().enumerate() {
            let pair = format!("{} → {}", ARCHS[ti], ARCHS[si]);
            let student_classes = classes(student);
            for reset_bn_stats in [true, false] {
                let opts = InjectOptions { reset_bn_stats, ..Default::default() };
                let out = inject(teacher, student, &opts).unwrap_or_else(|e| panic!("{pair}: {e}"));
                // Every student tensor is reported exactly once.
                let reported: BTreeSet<&str> = out.report.iter().map(|r| r.student.as_str()).collect();
                assert_eq!(reported.len(), out.report.len(), "{pair}: a tensor is reported twice");
                assert_eq!(reported, student.params().keys().map(String::as_str).collect(), "{pair}");
                for r in &out.report {
                    let student_shape = student.param(&r.student).unwrap().dims().to_vec();
                    assert_eq!(out.backbone.param(&r.student).unwrap().dims(), student_shape.as_slice());
                    match &r.teacher {
                        Some(t) => {
                            // Same class, same role, a real teacher tensor.
                            assert_eq!(teacher_classes[t], student_classes[&r.student], "{pair}: {} ← {t}", r.student);
                            assert_eq!(t.rsplit('.').next(), r.student.rsplit('.').next(), "{pair}: {} ← {t}", r.student);
                            let teacher_shape = teacher.param(t).unwrap().dims().to_vec();
                            assert!(r.score > 0.0 && r.score <= 1.0, "{pair}: {} score {}", r.student, r.score);
                            match &r.how {
                                Reshape::Copy => assert_eq!(teacher_shape, student_shape),
                                Reshape::CropPadResize { from, to } => {
                                    assert_ne!(from, to);
                                    assert_eq!((from, to), (&teacher_shape, &student_shape));
                                }
                                other => panic!("{pair}: {} matched but reported {other:?}", r.student),
                            }
                            assert!(!reset_bn_stats || !is_bn_buffer(&r.student));
                        }
                        None => {
                            assert_eq!(r.score, 0.0);
                            let expected = if reset_bn_stats && is_bn_buffer(&r.student) { Reshape::Reset } else { Reshape::Unmatched };
                            assert_eq!(r.how, expected, "{pair}: {}", r.student);
                        }
                    }
                    // Depthwise units exist only in MobileNetV2: only it can feed them.
                    if student_classes[&r.student] == LayerClass::Depthwise && !is_bn_buffer(&r.student) {
                        assert_eq!(r.teacher.is_some(), ARCHS[ti].starts_with("mobilenetv2"), "{pair}: {}", r.student);
                    }
                }
                let s = score(teacher, student.spec()).unwrap();
                assert_eq!(out.score, s, "{pair}");
                assert!((0.0..=1.0).contains(&s));
                let logits = out.backbone.forward(&images(student, 2, 9)).unwrap();
                let v = logits.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                assert_eq!(v.len(), 20);
                assert!(v.iter().all(|x| x.is_finite()), "{pair}: {v:?}");
            }
        }
    }
    let after: Vec<_> = nets.iter().map(bits).collect();
    assert!(before == after, "an input backbone was modified");
}
