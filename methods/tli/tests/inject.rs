//! Injection between networks of the same architecture: exact reproduction, BN resets, skips,
//! blending, purity.

mod common;

use common::{bits, images, init, tensor_bits, trained_like, values};
use graft_core::backbone::is_bn_buffer;
use graft_core::GraftError;
use graft_tli::{inject, match_layers, reshape_tensor, InjectOptions, Reshape};

const ARCH: &str = "resnet-cifar-8-w4";
const INPUT: (usize, usize, usize) = (1, 16, 16);

#[test]
fn identical_architecture_with_kept_statistics_reproduces_the_teacher_exactly() {
    let teacher = trained_like(ARCH, INPUT, 1);
    let student = init(ARCH, INPUT, 2);
    let (teacher_before, student_before) = (bits(&teacher), bits(&student));
    let opts = InjectOptions { reset_bn_stats: false, ..Default::default() };
    let out = inject(&teacher, &student, &opts).unwrap();

    let x = images(&teacher, 3, 5);
    let want = tensor_bits(&teacher.forward(&x).unwrap());
    let got = tensor_bits(&out.backbone.forward(&x).unwrap());
    assert_eq!(got, want, "logits differ from the teacher's");
    assert_eq!(bits(&out.backbone), teacher_before);

    assert_eq!(out.report.len(), student.params().len());
    for r in &out.report {
        assert_eq!(r.how, Reshape::Copy, "{}", r.student);
        assert_eq!(r.teacher.as_deref(), Some(r.student.as_str()));
        assert_eq!(r.score, 1.0, "{}", r.student);
    }
    assert_eq!(out.score, 1.0);
    // Neither input moved.
    assert_eq!(bits(&teacher), teacher_before);
    assert_eq!(bits(&student), student_before);
}

#[test]
fn reset_statistics_are_zero_and_one_and_everything_else_is_copied() {
    let teacher = trained_like(ARCH, INPUT, 3);
    let student = init(ARCH, INPUT, 4);
    let out = inject(&teacher, &student, &InjectOptions::default()).unwrap();
    let mut resets = 0;
    for (name, t) in out.backbone.params() {
        let v = values(t);
        if name.ends_with(".running_mean") {
            assert!(v.iter().all(|&x| x == 0.0), "{name}");
        } else if name.ends_with(".running_var") {
            assert!(v.iter().all(|&x| x == 1.0), "{name}");
        } else {
            assert_eq!(tensor_bits(t), tensor_bits(teacher.param(name).unwrap()), "{name}");
        }
    }
    for r in &out.report {
        if is_bn_buffer(&r.student) {
            assert_eq!((r.how.clone(), r.teacher.clone(), r.score), (Reshape::Reset, None, 0.0), "{}", r.student);
            resets += 1;
        } else {
            assert_eq!(r.how, Reshape::Copy, "{}", r.student);
        }
    }
    assert_eq!(resets, 2 * student.bn_names().len());
}

#[test]
fn skipped_tensors_keep_the_student_init() {
    let teacher = trained_like(ARCH, INPUT, 5);
    let student = init(ARCH, INPUT, 6);
    let skip = vec!["fc.weight".to_string(), "fc.bias".to_string()];
    let out = inject(&teacher, &student, &InjectOptions { skip: skip.clone(), ..Default::default() }).unwrap();
    for name in &skip {
        assert_eq!(tensor_bits(out.backbone.param(name).unwrap()), tensor_bits(student.param(name).unwrap()));
        let r = out.report.iter().find(|r| &r.student == name).unwrap();
        assert_eq!((r.how.clone(), r.teacher.clone()), (Reshape::Skipped, None));
    }
    assert_eq!(
        tensor_bits(out.backbone.param("conv1.weight").unwrap()),
        tensor_bits(teacher.param("conv1.weight").unwrap())
    );
    let err = inject(&teacher, &student, &InjectOptions { skip: vec!["fc.wieght".into()], ..Default::default() })
        .err()
        .expect("an unknown skip name is an error");
    assert!(matches!(err, GraftError::Config { .. }), "{err}");
    assert!(err.to_string().contains("fc.wieght") && err.to_string().contains("fc.weight"), "{err}");
}

#[test]
fn invalid_options_are_rejected() {
    let teacher = init(ARCH, INPUT, 0);
    let err = inject(&teacher, &teacher, &InjectOptions { lambda: -0.1, ..Default::default() }).err().unwrap();
    assert!(matches!(err, GraftError::Config { .. }), "{err}");
}

#[test]
fn blending_two_candidates_is_the_softmax_weighted_sum() {
    let teacher = trained_like(ARCH, INPUT, 7);
    let student = init(ARCH, INPUT, 8);
    let t = 0.1;
    let opts = InjectOptions { blend_top: 2, blend_temperature: t, ..Default::default() };
    let blended = inject(&teacher, &student, &opts).unwrap();
    let single = inject(&teacher, &student, &InjectOptions::default()).unwrap();

    // Hand-checkable case: layer1.0.conv2.weight [4, 4, 3, 3]. Its best candidate is itself
    // (score 1); the runner-up must be another conv; both are reshaped to [4, 4, 3, 3].
    let m = match_layers(teacher.structure(), student.structure());
    let su = m.student.iter().position(|u| u.name == "layer1.0.conv2").unwrap();
    let c = &m.matches[su].candidates;
    assert_eq!((m.teacher[c[0].teacher].name.as_str(), c[0].score), ("layer1.0.conv2", 1.0));
    assert!(c[1].score < 1.0);
    let (w0, w1) = {
        let e1 = ((c[1].score - 1.0) / t).exp();
        (1.0 / (1.0 + e1), e1 / (1.0 + e1))
    };
    let second = &m.teacher[c[1].teacher];
    let second_w = teacher.param(&format!("{}.weight", second.name)).unwrap();
    let a = values(teacher.param("layer1.0.conv2.weight").unwrap());
    let b = reshape_tensor(&values(second_w), second_w.dims(), &[4, 4, 3, 3], 0.75);
    let expected: Vec<f32> = a.iter().zip(&b).map(|(&x, &y)| (w0 * x as f64 + w1 * y as f64) as f32).collect();
    let got = values(blended.backbone.param("layer1.0.conv2.weight").unwrap());
    for (g, e) in got.iter().zip(&expected) {
        assert!((g - e).abs() <= 1e-6 * (1.0 + e.abs()), "{g} vs {e}");
    }
    assert_ne!(got, values(single.backbone.param("layer1.0.conv2.weight").unwrap()));
    let r = blended.report.iter().find(|r| r.student == "layer1.0.conv2.weight").unwrap();
    match &r.how {
        Reshape::Blend { sources } => {
            assert_eq!(sources.len(), 2);
            assert_eq!(sources[0].0, "layer1.0.conv2.weight");
            assert!((sources[0].1 - w0).abs() < 1e-12 && (sources[1].1 - w1).abs() < 1e-12);
        }
        other => panic!("expected a blend, got {other:?}"),
    }
    assert_eq!(r.teacher.as_deref(), Some("layer1.0.conv2.weight"));
    // The only linear layer has a single candidate: nothing to blend.
    let fc = blended.report.iter().find(|r| r.student == "fc.weight").unwrap();
    assert_eq!(fc.how, Reshape::Copy);
}
