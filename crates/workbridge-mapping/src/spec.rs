//! The TOML spec as written, before it is checked and compiled.

use std::collections::BTreeMap;

use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSpec {
    pub(crate) left: Option<String>,
    pub(crate) right: Option<String>,
    #[serde(default)]
    pub(crate) scope: RawScope,
    pub(crate) create: Option<toml::Spanned<RawCreate>>,
    #[serde(default)]
    pub(crate) comments: RawComments,
    #[serde(default)]
    pub(crate) field: Vec<toml::Spanned<RawRule>>,
    pub(crate) state: Option<toml::Spanned<RawState>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawScope {
    pub(crate) left: Option<RawFilter>,
    pub(crate) right: Option<RawFilter>,
}

#[derive(Debug, Default, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFilter {
    pub(crate) field: Option<String>,
    pub(crate) equals: Option<toml::Value>,
    #[serde(rename = "in")]
    pub(crate) in_: Option<Vec<toml::Value>>,
    pub(crate) empty: Option<bool>,
    pub(crate) not: Option<Box<RawFilter>>,
    pub(crate) all: Option<Vec<RawFilter>>,
    pub(crate) any: Option<Vec<RawFilter>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCreate {
    #[serde(default)]
    pub(crate) left_to_right: bool,
    #[serde(default)]
    pub(crate) right_to_left: bool,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawComments {
    pub(crate) to_left: Option<String>,
    pub(crate) to_right: Option<String>,
    pub(crate) copy_internal: Option<bool>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawPerson {
    pub(crate) by: Option<String>,
    #[serde(default)]
    pub(crate) table: BTreeMap<String, String>,
    pub(crate) default: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRule {
    pub(crate) left: Option<String>,
    pub(crate) right: Option<String>,
    pub(crate) direction: Option<String>,
    pub(crate) on: Option<String>,
    pub(crate) map: Option<BTreeMap<String, toml::Value>>,
    pub(crate) reverse: Option<BTreeMap<String, toml::Value>>,
    pub(crate) groups: Option<BTreeMap<String, Vec<toml::Value>>>,
    pub(crate) fallback: Option<String>,
    pub(crate) default: Option<toml::Value>,
    pub(crate) case: Option<String>,
    pub(crate) transform: Option<String>,
    pub(crate) timezone: Option<String>,
    pub(crate) template: Option<String>,
    pub(crate) constant: Option<toml::Value>,
    pub(crate) truncate: Option<usize>,
    pub(crate) marker: Option<String>,
    pub(crate) person: Option<RawPerson>,
    pub(crate) conflict: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawState {
    pub(crate) left: String,
    pub(crate) right: String,
    pub(crate) direction: Option<String>,
    #[serde(default)]
    pub(crate) map: BTreeMap<String, String>,
    pub(crate) reverse: Option<BTreeMap<String, String>>,
    #[serde(default)]
    pub(crate) supply_left: BTreeMap<String, BTreeMap<String, toml::Value>>,
    #[serde(default)]
    pub(crate) supply_right: BTreeMap<String, BTreeMap<String, toml::Value>>,
}
