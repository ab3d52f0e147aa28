//! The TLI score of a teacher for a student: how well the student's units find a counterpart.
//!
//! `score(teacher → student) = (1/|U_s|) · Σ_{u ∈ U_s} max_{t ∈ U_t, class(t) = class(u)} pair_score(t, u)`,
//! with 0 for a student unit no teacher unit shares the class with. It lies in `[0, 1]`, equals
//! 1 for identical networks and is directional: the mean runs over the *student's* units.
//! Scoring reads structures only; it never touches (let alone injects into) any tensor.

use crate::matching::{match_layers, Matching};
use graft_core::backbone::Layer;
use graft_core::{Backbone, BackboneSpec, Result};

/// The mean over the student's units of their best candidate's score (0 for a unit without a
/// candidate); 0 when the student has no unit at all.
pub fn matching_score(matching: &Matching) -> f64 {
    let n = matching.matches.len();
    if n == 0 {
        return 0.0;
    }
    let total: f64 = (0..n).map(|i| matching.best(i).map_or(0.0, |c| c.score)).sum();
    total / n as f64
}

/// The TLI score of the teacher structure for the student structure.
pub fn score_layers(teacher: &[Layer], student: &[Layer]) -> f64 {
    matching_score(&match_layers(teacher, student))
}

/// The TLI score of a built teacher for a student spec. The student is only described
/// ([`Backbone::describe`]), so an invalid spec or an input too small for the student gives
/// that error; the teacher is not modified.
pub fn score(teacher: &Backbone, student: &BackboneSpec) -> Result<f64> {
    let (_, student_layers) = Backbone::describe(student)?;
    Ok(score_layers(teacher.structure(), &student_layers))
}

/// The TLI score of a teacher spec for a student spec (both only described, never built).
pub fn score_specs(teacher: &BackboneSpec, student: &BackboneSpec) -> Result<f64> {
    let (_, teacher_layers) = Backbone::describe(teacher)?;
    let (_, student_layers) = Backbone::describe(student)?;
    Ok(score_layers(&teacher_layers, &student_layers))
}

/// The score matrix as the paper lays it out: `matrix[i][j]` is the score of `teachers[j]` for
/// `students[i]` (rows students, columns teachers). Each spec is described once.
pub fn score_matrix(students: &[BackboneSpec], teachers: &[BackboneSpec]) -> Result<Vec<Vec<f64>>> {
    let describe = |s: &BackboneSpec| Backbone::describe(s).map(|(_, l)| l);
    let students = students.iter().map(describe).collect::<Result<Vec<_>>>()?;
    let teachers = teachers.iter().map(describe).collect::<Result<Vec<_>>>()?;
    Ok(students.iter().map(|s| teachers.iter().map(|t| score_layers(t, s)).collect()).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;
    use graft_core::backbone::{Arch, InputSpec};
    use graft_core::GraftError;

    fn spec(arch: &str, input: (usize, usize, usize)) -> BackboneSpec {
        BackboneSpec { arch: arch.parse::<Arch>().unwrap(), input: InputSpec::new(input.0, input.1, input.2), num_classes: 10 }
    }

    const ARCHS: [&str; 5] = ["resnet-cifar-8-w4", "wrn-10-1", "resnet18-w4", "mobilenetv2-0.25", "vgg11-bn-d16-p1"];

    fn bits(b: &Backbone) -> Vec<(String, Vec<u32>)> {
        b.params()
            .iter()
            .map(|(k, t)| (k.clone(), t.flatten_all().unwrap().to_vec1::<f32>().unwrap().iter().map(|x| x.to_bits()).collect()))
            .collect()
    }

    #[test]
    fn scoring_does_not_touch_the_teacher() {
        let teacher = Backbone::init(spec("resnet-cifar-8-w4", (3, 32, 32)), 7, &Device::Cpu).unwrap();
        let before = bits(&teacher);
        for a in ARCHS {
            let s = score(&teacher, &spec(a, (3, 32, 32))).unwrap();
            assert!((0.0..=1.0).contains(&s), "{a}: {s}");
        }
        assert_eq!(bits(&teacher), before);
    }

    #[test]
    fn self_score_is_one_and_the_row_maximum() {
        let specs: Vec<BackboneSpec> = ARCHS.iter().map(|a| spec(a, (3, 32, 32))).collect();
        let m = score_matrix(&specs, &specs).unwrap();
        for (i, row) in m.iter().enumerate() {
            assert_eq!(row[i], 1.0, "{} on itself", ARCHS[i]);
            for (j, &s) in row.iter().enumerate() {
                assert!((0.0..=1.0).contains(&s));
                if j != i {
                    assert!(s < row[i], "{} as teacher of {}: {s}", ARCHS[j], ARCHS[i]);
                }
            }
        }
        // The matrix agrees with the single-pair entry points.
        assert_eq!(m[4][0], score_specs(&specs[0], &specs[4]).unwrap());
    }

    #[test]
    fn score_is_directional() {
        let rn = spec("resnet-cifar-8-w4", (3, 32, 32));
        let vgg = spec("vgg11-bn-d16-p1", (3, 32, 32));
        let a = score_specs(&rn, &vgg).unwrap();
        let b = score_specs(&vgg, &rn).unwrap();
        assert!((a - b).abs() > 1e-3, "resnet→vgg {a}, vgg→resnet {b}");
    }

    #[test]
    fn mobilenet_student_of_a_net_without_depthwise_loses_those_units() {
        // Every depthwise unit of the student scores 0 against a teacher without one, so the
        // score is at most the fraction of non-depthwise units.
        let rn = spec("resnet-cifar-8-w4", (3, 32, 32));
        let mb = spec("mobilenetv2-0.25", (3, 32, 32));
        let (_, layers) = Backbone::describe(&mb).unwrap();
        let units = crate::matching::match_units(&layers);
        let dw = units.iter().filter(|u| u.class == crate::LayerClass::Depthwise).count();
        let bound = (units.len() - dw) as f64 / units.len() as f64;
        assert!(score_specs(&rn, &mb).unwrap() <= bound + 1e-12);
    }

    #[test]
    fn too_small_student_input_is_a_clear_error() {
        // VGG's five 2x2 max pools need at least 32 pixels.
        let teacher = Backbone::init(spec("resnet-cifar-8-w4", (1, 16, 16)), 0, &Device::Cpu).unwrap();
        let err = score(&teacher, &spec("vgg11-bn-d16-p1", (1, 16, 16))).unwrap_err();
        assert!(matches!(err, GraftError::Backbone(_)), "{err}");
        assert!(err.to_string().contains("too small"), "{err}");
    }
}
