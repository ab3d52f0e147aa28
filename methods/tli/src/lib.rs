//! graft-tli: transfer learning by injection (Czyzewski, "Transfer Learning Between Different
//! Architectures Via Weights Injection", arXiv 2101.02757).
//!
//! TLI moves the weights of a trained *teacher* into a *student* of a different architecture,
//! without data, as an initialisation. This part of the crate is pure and data-free:
//!
//! - [`matching`]: both networks' structural descriptions
//!   ([`graft_core::Backbone::structure`]) are reduced to matchable units (convs, depthwise
//!   convs, BatchNorms, linear layers), split into clusters at merge points, and every same-kind
//!   (teacher, student) pair is scored from depth, shape and relative position, at tensor level
//!   and at cluster (path) level.
//! - [`inject`](mod@inject): each student tensor takes the reshaped tensor of its best-matching teacher
//!   unit, `λ·crop_or_pad + (1−λ)·resize` (or a softmax blend of the top k).
//! - [`score`](mod@score): the TLI score of a teacher for a student, the mean best-match score over the
//!   student's units; directional.
//!
//! None of these functions modifies its inputs. See `docs/methods/tli.md`.

pub mod config;
pub mod inject;
pub mod matching;
pub mod method;
pub mod model;
pub mod score;

pub use inject::{crop_or_pad, inject, reshape_tensor, resize, InjectOptions, Injected, InjectedTensor, Reshape};
pub use matching::{
    match_layers, match_units, pair_score, Candidate, LayerClass, MatchUnit, Matching, TensorPair, TensorSource,
    UnitMatch, UnitTensor,
};
pub use config::{StudentInit, TliConfig};
pub use method::Tli;
pub use model::{student_net, InjectionSummary, StudentNet, TliModel};
pub use score::{matching_score, score, score_layers, score_matrix, score_specs};
