//! The kit for methods that change a frozen backbone per task (KSM, Piggyback, residual
//! adapters, adaptive attention): which convs they modify ([`ConvChoice`]), the task head
//! ([`TaskHead`]), per-task BatchNorms ([`DomainBns`]), the evaluation model of a method that
//! replaces frozen parameters ([`OverriddenSource`]), the check of a stored delta
//! ([`ExpectedTensors`]), where a forward pass finds a method's tensors ([`ModuleValues`],
//! [`ParamOverrides`]), and the optimiser groups and fit driver. Each method crate keeps only
//! its paper's modules and equations; interconnections come from [`crate::attach`].

mod convs;
mod domain_bn;
mod head;
mod overridden;
mod stored;
mod training;
mod values;

pub use crate::backbone::FEATURE_TAP;
pub use convs::{ConvChoice, UnknownConv};
pub use domain_bn::DomainBns;
pub use head::{stored_head_logits, TaskHead, HEAD_BIAS, HEAD_WEIGHT};
pub use overridden::{kept_fraction, OverriddenSource};
pub use stored::ExpectedTensors;
pub use training::{groups, param_groups, train_on_task};
pub use values::{ModuleValues, ParamOverrides};
