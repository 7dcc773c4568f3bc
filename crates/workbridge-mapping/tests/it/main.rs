//! The mapping engine: every rule kind, bad specs, HTML conversion, round trips.

mod golden;
mod rules;
mod specs;
