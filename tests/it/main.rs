//! Cross-crate tests: the documented specs against the simulators, the sync kernel end to end.

mod common;
mod deploy;
mod escalation;
mod examples;
mod fencing;
mod hostile;
mod locks;
mod mapping_specs;
mod qa;
mod randomized;
mod secrets;
