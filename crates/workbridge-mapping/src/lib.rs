//! The workbridge mapping engine: pure, no I/O, no async.
//!
//! A [`Mapping`] is compiled from a TOML spec ([the mapping guide](https://github.com/workbridge/workbridge/blob/main/docs/mapping.md) documents the format), checked
//! against both sides' [`Schema`]s with [`Mapping::validate`], and then turns one side's fields
//! into the other's with [`Mapping::map`], keeping for each produced field the rule that made it.
//!
//! ```
//! use workbridge_core::{FieldMap, FieldValue};
//! use workbridge_mapping::{Direction, Mapping};
//!
//! let spec = r#"
//! left = "incident"
//! right = "Bug"
//!
//! [[field]]
//! left = "short_description"
//! right = "System.Title"
//! truncate = 20
//! marker = "…"
//!
//! [[field]]
//! left = "priority"
//! right = "Microsoft.VSTS.Common.Priority"
//! map = { "1" = "1", "2" = "2", "3" = "3", "4" = "4" }
//! fallback = "default"
//! default = "4"
//! "#;
//! let mapping = Mapping::from_toml_str(spec)?;
//! let ticket = FieldMap::new()
//!     .with("short_description", "Invoices print blank pages since Monday")
//!     .with("priority", FieldValue::Choice("5".into()));
//! let bug = mapping.map(Direction::LeftToRight, &ticket);
//! assert_eq!(bug.fields.get("System.Title"), Some(&FieldValue::Text("Invoices print blan…".into())));
//! assert_eq!(bug.fields.get("Microsoft.VSTS.Common.Priority"), Some(&FieldValue::Text("4".into())));
//! assert_eq!(bug.provenance["System.Title"].line, 5);
//! # Ok::<(), workbridge_core::Error>(())
//! ```
#![cfg_attr(docsrs, feature(doc_cfg))]

mod compile;
mod map;
mod spec;
mod state;
pub mod transform;
mod validate;

pub use transform::{html_to_text, sanitize_html, text_to_html};

// The helpers of one concern that another uses.
use compile::spec_error;
use map::render_template;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use chrono::{FixedOffset, NaiveDate};
use workbridge_core::{
    Error, FieldKind, FieldMap, FieldName, FieldValue, Person, Result, Schema, TransitionGraph,
    Visibility,
};

use spec::{RawFilter, RawRule, RawSpec, RawState};

/// Which way values flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// From the left side to the right side.
    LeftToRight,
    /// From the right side to the left side.
    RightToLeft,
}

impl Direction {
    /// The other way.
    pub fn reverse(self) -> Self {
        match self {
            Direction::LeftToRight => Direction::RightToLeft,
            Direction::RightToLeft => Direction::LeftToRight,
        }
    }
}

/// Which directions a rule works in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Both ways.
    Both,
    /// Left to right only.
    LeftToRight,
    /// Right to left only.
    RightToLeft,
}

impl Flow {
    fn allows(self, d: Direction) -> bool {
        matches!(
            (self, d),
            (Flow::Both, _)
                | (Flow::LeftToRight, Direction::LeftToRight)
                | (Flow::RightToLeft, Direction::RightToLeft)
        )
    }

    fn natural(self) -> Direction {
        if self == Flow::RightToLeft {
            Direction::RightToLeft
        } else {
            Direction::LeftToRight
        }
    }
}

/// What happens to a value the value map does not list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fallback {
    /// Pass it through unchanged.
    Keep,
    /// Write nothing for this field.
    Skip,
    /// Write the rule's default.
    Default,
    /// Report an error naming the value (the other fields still map).
    Error,
}

/// How a field changed on both sides since the last sync is settled (the sync kernel applies it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConflictPolicy {
    /// Park the field with a conflict; the other fields still flow.
    Error,
    /// The left side's value wins.
    LeftWins,
    /// The right side's value wins.
    RightWins,
    /// The side changed last wins.
    #[default]
    Newest,
}

/// A transform applied to values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transform {
    /// None.
    None,
    /// HTML → plain text (text → HTML the other way).
    HtmlToText,
    /// Plain text → HTML (HTML → text the other way).
    TextToHtml,
    /// Number → text (text → number the other way).
    NumberToText,
    /// Text → number (number → text the other way).
    TextToNumber,
    /// Date-time → calendar date in the rule's time zone (date → midnight there, the other way).
    DateTimeToDate,
}

impl Transform {
    fn reversed(self) -> Self {
        match self {
            Transform::HtmlToText => Transform::TextToHtml,
            Transform::TextToHtml => Transform::HtmlToText,
            Transform::NumberToText => Transform::TextToNumber,
            Transform::TextToNumber => Transform::NumberToText,
            other => other,
        }
    }
}

/// Where a rule's value comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// A field of the other side.
    Field(FieldName),
    /// A template over the other side's fields (`"{number}: {short_description}"`).
    Template(String),
    /// A constant.
    Constant(FieldValue),
}

#[derive(Debug, Clone)]
struct ValueMap {
    forward: Vec<(String, FieldValue)>,
    backward: Option<Vec<(String, FieldValue)>>,
    case_insensitive: bool,
    fallback: Fallback,
}

#[derive(Debug, Clone)]
struct PersonRule {
    by_email: bool,
    table: BTreeMap<String, String>,
    default: Option<String>,
}

/// One field rule.
#[derive(Debug, Clone)]
pub struct Rule {
    line: usize,
    left: Option<FieldName>,
    right: Option<FieldName>,
    flow: Flow,
    create_only: bool,
    source: Source,
    values: Option<ValueMap>,
    default: Option<FieldValue>,
    transform: Transform,
    timezone: transform::Zone,
    truncate: Option<(usize, String)>,
    person: Option<PersonRule>,
    conflict: ConflictPolicy,
}

impl Rule {
    /// The spec line the rule starts on.
    pub fn line(&self) -> usize {
        self.line
    }

    /// The left field.
    pub fn left(&self) -> Option<&FieldName> {
        self.left.as_ref()
    }

    /// The right field.
    pub fn right(&self) -> Option<&FieldName> {
        self.right.as_ref()
    }

    /// Its directions.
    pub fn flow(&self) -> Flow {
        self.flow
    }

    /// Whether it applies only when creating.
    pub fn create_only(&self) -> bool {
        self.create_only
    }

    /// How conflicts on its field are settled.
    pub fn conflict(&self) -> ConflictPolicy {
        self.conflict
    }

    /// The field it writes in `d`.
    pub fn target(&self, d: Direction) -> Option<&FieldName> {
        match d {
            Direction::LeftToRight => self.right.as_ref(),
            Direction::RightToLeft => self.left.as_ref(),
        }
    }

    /// The field it reads in `d`, when it reads one.
    pub fn source_field(&self, d: Direction) -> Option<&FieldName> {
        match (&self.source, d) {
            (Source::Field(_), Direction::LeftToRight) => self.left.as_ref(),
            (Source::Field(_), Direction::RightToLeft) => self.right.as_ref(),
            _ => None,
        }
    }
}

/// A scope filter over one side's fields.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    /// The field equals the value.
    Equals(FieldName, String),
    /// The field is one of the values.
    In(FieldName, Vec<String>),
    /// The field is empty (or, with false, not empty).
    Empty(FieldName, bool),
    /// Negation.
    Not(Box<Filter>),
    /// Every filter holds.
    All(Vec<Filter>),
    /// Some filter holds.
    Any(Vec<Filter>),
}

fn value_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Person(p) => p
            .login
            .clone()
            .or_else(|| p.email.clone())
            .unwrap_or_default(),
        FieldValue::Reference(r) => r.id.clone(),
        other => other.to_string(),
    }
}

impl Filter {
    /// Whether `fields` pass.
    pub fn matches(&self, fields: &FieldMap) -> bool {
        let text = |f: &FieldName| fields.get(f.as_str()).map(value_text).unwrap_or_default();
        match self {
            Filter::Equals(f, v) => text(f).eq_ignore_ascii_case(v),
            Filter::In(f, vs) => vs.iter().any(|v| text(f).eq_ignore_ascii_case(v)),
            Filter::Empty(f, want) => {
                fields.get(f.as_str()).is_none_or(FieldValue::is_empty) == *want
            }
            Filter::Not(x) => !x.matches(fields),
            Filter::All(xs) => xs.iter().all(|x| x.matches(fields)),
            Filter::Any(xs) => xs.iter().any(|x| x.matches(fields)),
        }
    }

    fn fields(&self, out: &mut Vec<FieldName>) {
        match self {
            Filter::Equals(f, _) | Filter::In(f, _) | Filter::Empty(f, _) => out.push(f.clone()),
            Filter::Not(x) => x.fields(out),
            Filter::All(xs) | Filter::Any(xs) => xs.iter().for_each(|x| x.fields(out)),
        }
    }
}

/// Where copied comments land, and which are copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentRouting {
    /// The visibility of comments copied to the left side (default internal: ServiceNow work notes).
    pub to_left: Visibility,
    /// The visibility of comments copied to the right side (default public).
    pub to_right: Visibility,
    /// Whether internal comments are copied at all (default false: work notes stay put).
    pub copy_internal: bool,
}

/// The state-to-state rule.
#[derive(Debug, Clone)]
pub struct StateRule {
    line: usize,
    left: FieldName,
    right: FieldName,
    flow: Flow,
    forward: BTreeMap<String, String>,
    backward: BTreeMap<String, String>,
    supply_left: BTreeMap<String, FieldMap>,
    supply_right: BTreeMap<String, FieldMap>,
}

impl StateRule {
    /// The left state field.
    pub fn left(&self) -> &FieldName {
        &self.left
    }

    /// The right state field.
    pub fn right(&self) -> &FieldName {
        &self.right
    }

    /// The state field read from in direction `d`, and the one written, when the rule works
    /// that way.
    pub fn fields(&self, d: Direction) -> Option<(&FieldName, &FieldName)> {
        if !self.flow.allows(d) {
            return None;
        }
        Some(match d {
            Direction::LeftToRight => (&self.left, &self.right),
            Direction::RightToLeft => (&self.right, &self.left),
        })
    }
}

/// One step of a state change: the state to enter and the fields to write with it.
#[derive(Debug, Clone, PartialEq)]
pub struct TransitionStep {
    /// The state entered.
    pub state: String,
    /// The fields written with it (the state field included).
    pub fields: FieldMap,
}

/// Which rule produced a field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    /// The spec line of the rule.
    pub line: usize,
    /// The source field, when the value came from one.
    pub source: Option<FieldName>,
    /// `field`, `template`, `constant` or `default`.
    pub kind: &'static str,
}

/// What [`Mapping::map`] produced.
#[derive(Debug, Clone, Default)]
pub struct MappedFields {
    /// The target fields.
    pub fields: FieldMap,
    /// For each target field, the rule that made it.
    pub provenance: BTreeMap<FieldName, Provenance>,
    /// Target fields left alone, and why (a `skip` fallback, a person not found).
    pub skipped: Vec<(FieldName, String)>,
    /// Values that could not be mapped (an `error` fallback): each names the field and value.
    pub errors: Vec<Error>,
}

/// People known to the target system, for person mapping. The caller provides it (a cached
/// user list, say).
pub trait Directory {
    /// The person with this login.
    fn by_login(&self, login: &str) -> Option<Person>;
    /// The person with this email.
    fn by_email(&self, email: &str) -> Option<Person>;
}

/// A directory that knows no one: persons are mapped by their keys alone.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoDirectory;

impl Directory for NoDirectory {
    fn by_login(&self, _: &str) -> Option<Person> {
        None
    }
    fn by_email(&self, _: &str) -> Option<Person> {
        None
    }
}

/// A compiled mapping between a left and a right item type.
#[derive(Debug, Clone)]
pub struct Mapping {
    left_type: Option<String>,
    right_type: Option<String>,
    rules: Vec<Rule>,
    state: Option<StateRule>,
    scope_left: Option<Filter>,
    scope_right: Option<Filter>,
    create_left_to_right: bool,
    create_right_to_left: bool,
    create_line: usize,
    comments: CommentRouting,
}

/// Every problem validation found.
#[derive(Debug, Clone)]
pub struct MappingErrors(pub Vec<Error>);

impl fmt::Display for MappingErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{}", e.message())?;
        }
        Ok(())
    }
}

impl std::error::Error for MappingErrors {}

/// One [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) error listing every problem,
/// so `?` works in a function returning `workbridge::Result`; the problems themselves stay
/// reachable as its source.
///
/// ```
/// use workbridge_core::{Error, ErrorKind};
/// use workbridge_mapping::MappingErrors;
/// let e: Error = MappingErrors(vec![Error::config("no field `shrot_description`")]).into();
/// assert_eq!(e.kind(), ErrorKind::Config);
/// assert!(e.to_string().contains("1 problem: no field `shrot_description`"), "{e}");
/// ```
impl From<MappingErrors> for Error {
    fn from(errors: MappingErrors) -> Self {
        let n = errors.0.len();
        let listed = errors
            .0
            .iter()
            .map(Error::message)
            .collect::<Vec<_>>()
            .join("; ");
        let mut e = Error::config(format!(
            "the mapping is not valid for these schemas ({n} problem{}: {listed})",
            if n == 1 { "" } else { "s" }
        ));
        if let Some(field) = errors.0.first().and_then(|f| f.context().field.clone()) {
            e = e.with_field(field);
        }
        e.with_operation("validate").with_source(errors)
    }
}

impl Mapping {
    /// The fields of each side, `(left, right)`, that the spec reads or writes: its rules'
    /// fields and the fields their templates name, the state fields, the fields the state
    /// rule supplies and names, and the scope's fields. A change anywhere else is no change to
    /// the sync, so a pair's baselines need hold only these.
    pub fn fields(&self) -> (BTreeSet<FieldName>, BTreeSet<FieldName>) {
        let (mut left, mut right) = (BTreeSet::new(), BTreeSet::new());
        for r in &self.rules {
            left.extend(r.left.clone());
            right.extend(r.right.clone());
            if let Source::Template(t) = &r.source {
                if r.flow.allows(Direction::LeftToRight) {
                    left.extend(template_fields(t));
                }
                if r.flow.allows(Direction::RightToLeft) {
                    right.extend(template_fields(t));
                }
            }
        }
        if let Some(s) = &self.state {
            left.insert(s.left.clone());
            right.insert(s.right.clone());
            // What a state supplies on one side, with templates over the other's fields.
            let supplied = |supply: &BTreeMap<String, FieldMap>| {
                let (mut own, mut other) = (Vec::new(), Vec::new());
                for (name, value) in supply.values().flat_map(FieldMap::iter) {
                    own.push(name.clone());
                    if let FieldValue::Text(t) = value {
                        other.extend(template_fields(t));
                    }
                }
                (own, other)
            };
            let (own, other) = supplied(&s.supply_left);
            left.extend(own);
            right.extend(other);
            let (own, other) = supplied(&s.supply_right);
            right.extend(own);
            left.extend(other);
        }
        for (out, scope) in [
            (&mut left, &self.scope_left),
            (&mut right, &self.scope_right),
        ] {
            if let Some(f) = scope {
                let mut names = Vec::new();
                f.fields(&mut names);
                out.extend(names);
            }
        }
        (left, right)
    }

    /// The left item type the spec names.
    pub fn left_type(&self) -> Option<&str> {
        self.left_type.as_deref()
    }

    /// The right item type the spec names.
    pub fn right_type(&self) -> Option<&str> {
        self.right_type.as_deref()
    }

    /// The field rules.
    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// The state rule.
    pub fn state(&self) -> Option<&StateRule> {
        self.state.as_ref()
    }

    /// Comment routing.
    pub fn comments(&self) -> &CommentRouting {
        &self.comments
    }

    /// Whether an item of the side `d` reads from (left for left-to-right) is in scope.
    pub fn in_scope(&self, d: Direction, fields: &FieldMap) -> bool {
        let f = match d {
            Direction::LeftToRight => &self.scope_left,
            Direction::RightToLeft => &self.scope_right,
        };
        f.as_ref().is_none_or(|f| f.matches(fields))
    }

    /// Whether items may be created on the target side of `d`.
    pub fn may_create(&self, d: Direction) -> bool {
        match d {
            Direction::LeftToRight => self.create_left_to_right,
            Direction::RightToLeft => self.create_right_to_left,
        }
    }

    /// The conflict policy of a target field in `d` (newest when no rule names it).
    pub fn conflict_policy(&self, d: Direction, target: &str) -> ConflictPolicy {
        self.rules
            .iter()
            .find(|r| r.flow.allows(d) && r.target(d).is_some_and(|t| t.as_str() == target))
            .map_or(ConflictPolicy::Newest, |r| r.conflict)
    }
}

/// The fields a template names (`{number}: {short_description}` names two).
fn template_fields(t: &str) -> Vec<FieldName> {
    let mut out = Vec::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else {
            break;
        };
        out.push(FieldName::from(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    out
}
