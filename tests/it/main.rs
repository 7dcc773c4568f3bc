//! Cross-crate tests: the documented mapping specs against the simulators' real schemas.

mod escalation;
mod mapping_specs;
mod randomized;
