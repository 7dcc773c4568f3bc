//! The workbridge mapping engine: pure, no I/O, no async.
//!
//! A [`Mapping`] is compiled from a TOML spec (`docs/mapping.md` documents the format), checked
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

mod spec;
pub mod transform;

pub use transform::{html_to_text, sanitize_html, text_to_html};

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::Path;

use chrono::{FixedOffset, NaiveDate, TimeZone};
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
    timezone: FixedOffset,
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

fn spec_error(line: usize, field: Option<&str>, problem: impl fmt::Display) -> Error {
    let msg = match field {
        Some(f) => format!("line {line}: field `{f}`: {problem}"),
        None => format!("line {line}: {problem}"),
    };
    let e = Error::config(msg).with_path(format!("line {line}"));
    match field {
        Some(f) => e.with_field(f),
        None => e,
    }
}

fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

fn toml_value(v: &toml::Value) -> FieldValue {
    match v {
        toml::Value::String(s) => FieldValue::Text(s.clone()),
        toml::Value::Integer(i) => FieldValue::Int(*i),
        toml::Value::Float(x) => FieldValue::Float(*x),
        toml::Value::Boolean(b) => FieldValue::Bool(*b),
        other => FieldValue::Text(other.to_string()),
    }
}

fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn compile_filter(line: usize, f: &RawFilter) -> Result<Filter> {
    if let Some(n) = &f.not {
        return Ok(Filter::Not(Box::new(compile_filter(line, n)?)));
    }
    if let Some(all) = &f.all {
        return Ok(Filter::All(
            all.iter()
                .map(|x| compile_filter(line, x))
                .collect::<Result<_>>()?,
        ));
    }
    if let Some(any) = &f.any {
        return Ok(Filter::Any(
            any.iter()
                .map(|x| compile_filter(line, x))
                .collect::<Result<_>>()?,
        ));
    }
    let field = FieldName::from(f.field.clone().ok_or_else(|| {
        spec_error(
            line,
            None,
            "a scope filter needs `field`, `not`, `all` or `any`",
        )
    })?);
    match (&f.equals, &f.in_, f.empty) {
        (Some(v), None, None) => Ok(Filter::Equals(field, toml_text(v))),
        (None, Some(vs), None) => Ok(Filter::In(field, vs.iter().map(toml_text).collect())),
        (None, None, Some(e)) => Ok(Filter::Empty(field, e)),
        _ => Err(spec_error(
            line,
            Some(field.as_str()),
            "a scope filter takes exactly one of `equals`, `in`, `empty`",
        )),
    }
}

fn flow_of(line: usize, field: Option<&str>, s: Option<&str>) -> Result<Flow> {
    match s.unwrap_or("both") {
        "both" => Ok(Flow::Both),
        "left-to-right" => Ok(Flow::LeftToRight),
        "right-to-left" => Ok(Flow::RightToLeft),
        other => Err(spec_error(
            line,
            field,
            format!("direction `{other}` is not both, left-to-right or right-to-left"),
        )),
    }
}

fn visibility(line: usize, s: Option<&str>, default: Visibility) -> Result<Visibility> {
    match s {
        None => Ok(default),
        Some("public") => Ok(Visibility::Public),
        Some("internal") => Ok(Visibility::Internal),
        Some(other) => Err(spec_error(
            line,
            None,
            format!("comment visibility `{other}` is not public or internal"),
        )),
    }
}

fn compile_rule(line: usize, r: &RawRule) -> Result<Rule> {
    let name = r.right.as_deref().or(r.left.as_deref());
    let flow = flow_of(line, name, r.direction.as_deref())?;
    let source = match (&r.template, &r.constant) {
        (Some(_), Some(_)) => {
            return Err(spec_error(
                line,
                name,
                "a rule has either a template or a constant, not both",
            ));
        }
        (Some(t), None) => Source::Template(t.clone()),
        (None, Some(c)) => Source::Constant(toml_value(c)),
        (None, None) => {
            let natural_source = if flow == Flow::RightToLeft {
                &r.right
            } else {
                &r.left
            };
            Source::Field(FieldName::from(natural_source.clone().ok_or_else(
                || {
                    spec_error(
                        line,
                        name,
                        "the rule names no source field, template or constant",
                    )
                },
            )?))
        }
    };
    if !matches!(source, Source::Field(_)) && flow == Flow::Both {
        return Err(spec_error(
            line,
            name,
            "a template or constant works one way: set direction to left-to-right or right-to-left",
        ));
    }
    let target = if flow == Flow::RightToLeft {
        &r.left
    } else {
        &r.right
    };
    if target.is_none() {
        return Err(spec_error(line, name, "the rule names no target field"));
    }
    if flow == Flow::Both && (r.left.is_none() || r.right.is_none()) {
        return Err(spec_error(
            line,
            name,
            "a two-way rule needs both `left` and `right`",
        ));
    }
    let case_insensitive = match r.case.as_deref() {
        None | Some("sensitive") => false,
        Some("insensitive") => true,
        Some(other) => {
            return Err(spec_error(
                line,
                name,
                format!("case `{other}` is not sensitive or insensitive"),
            ));
        }
    };
    let fallback = match r.fallback.as_deref() {
        None | Some("keep") => Fallback::Keep,
        Some("skip") => Fallback::Skip,
        Some("default") => Fallback::Default,
        Some("error") => Fallback::Error,
        Some(other) => {
            return Err(spec_error(
                line,
                name,
                format!("fallback `{other}` is not keep, skip, default or error"),
            ));
        }
    };
    if fallback == Fallback::Default && r.default.is_none() {
        return Err(spec_error(
            line,
            name,
            "fallback `default` needs a `default` value",
        ));
    }
    let values = if r.map.is_some() || r.groups.is_some() {
        let mut forward: Vec<(String, FieldValue)> = r
            .map
            .iter()
            .flatten()
            .map(|(k, v)| (k.clone(), toml_value(v)))
            .collect();
        for (target, sources) in r.groups.iter().flatten() {
            for s in sources {
                forward.push((toml_text(s), FieldValue::Text(target.clone())));
            }
        }
        let backward = match &r.reverse {
            Some(rev) => Some(
                rev.iter()
                    .map(|(k, v)| (k.clone(), toml_value(v)))
                    .collect(),
            ),
            None if flow == Flow::Both => {
                // Invert, if the map is one-to-one.
                let mut seen: BTreeMap<String, &str> = BTreeMap::new();
                for (k, v) in &forward {
                    let t = value_text(v);
                    let key = if case_insensitive {
                        t.to_lowercase()
                    } else {
                        t.clone()
                    };
                    if let Some(other) = seen.insert(key, k) {
                        return Err(spec_error(
                            line,
                            name,
                            format!(
                                "the value map is not invertible: `{other}` and `{k}` both map to `{t}`; give a `reverse` map or make the rule one-way"
                            ),
                        ));
                    }
                }
                Some(
                    forward
                        .iter()
                        .map(|(k, v)| (value_text(v), FieldValue::Text(k.clone())))
                        .collect(),
                )
            }
            None => None,
        };
        Some(ValueMap {
            forward,
            backward,
            case_insensitive,
            fallback,
        })
    } else {
        if r.reverse.is_some() {
            return Err(spec_error(line, name, "`reverse` needs a `map`"));
        }
        None
    };
    let transform = match r.transform.as_deref() {
        None | Some("none") => Transform::None,
        Some("html-to-text") => Transform::HtmlToText,
        Some("text-to-html") => Transform::TextToHtml,
        Some("number-to-text") => Transform::NumberToText,
        Some("text-to-number") => Transform::TextToNumber,
        Some("datetime-to-date") => Transform::DateTimeToDate,
        Some(other) => {
            return Err(spec_error(
                line,
                name,
                format!(
                    "transform `{other}` is not html-to-text, text-to-html, number-to-text, text-to-number or datetime-to-date"
                ),
            ));
        }
    };
    let timezone = match r.timezone.as_deref() {
        None => FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset")),
        Some(s) => transform::parse_offset(s).ok_or_else(|| {
            spec_error(
                line,
                name,
                format!("timezone `{s}` is not an offset such as +02:00 or UTC"),
            )
        })?,
    };
    let on = match r.on.as_deref() {
        None | Some("always") => false,
        Some("create") => true,
        Some(other) => {
            return Err(spec_error(
                line,
                name,
                format!("on `{other}` is not always or create"),
            ));
        }
    };
    let person = match &r.person {
        None => None,
        Some(p) => Some(PersonRule {
            by_email: match p.by.as_deref() {
                None | Some("login") => false,
                Some("email") => true,
                Some(other) => {
                    return Err(spec_error(
                        line,
                        name,
                        format!("person.by `{other}` is not login or email"),
                    ));
                }
            },
            table: p.table.clone(),
            default: p.default.clone(),
        }),
    };
    let conflict = match r.conflict.as_deref() {
        None | Some("newest") => ConflictPolicy::Newest,
        Some("error") => ConflictPolicy::Error,
        Some("left-wins") => ConflictPolicy::LeftWins,
        Some("right-wins") => ConflictPolicy::RightWins,
        Some(other) => {
            return Err(spec_error(
                line,
                name,
                format!("conflict `{other}` is not error, left-wins, right-wins or newest"),
            ));
        }
    };
    if r.marker.is_some() && r.truncate.is_none() {
        return Err(spec_error(line, name, "`marker` needs `truncate`"));
    }
    Ok(Rule {
        line,
        left: r.left.clone().map(FieldName::from),
        right: r.right.clone().map(FieldName::from),
        flow,
        create_only: on,
        source,
        values,
        default: r.default.as_ref().map(toml_value),
        transform,
        timezone,
        truncate: r
            .truncate
            .map(|n| (n, r.marker.clone().unwrap_or_else(|| "…".into()))),
        person,
        conflict,
    })
}

fn compile_state(line: usize, s: &RawState) -> Result<StateRule> {
    let flow = flow_of(line, Some(&s.right), s.direction.as_deref())?;
    // `map` runs in the rule's natural direction, `reverse` the other way.
    let inverted = || -> Result<BTreeMap<String, String>> {
        let mut inv = BTreeMap::new();
        for (k, v) in &s.map {
            if inv.insert(v.clone(), k.clone()).is_some() {
                return Err(spec_error(
                    line,
                    Some(&s.right),
                    format!(
                        "the state map is not invertible: several states map to `{v}`; give a `reverse` map"
                    ),
                ));
            }
        }
        Ok(inv)
    };
    let other = match (&s.reverse, flow) {
        (Some(r), _) => r.clone(),
        (None, Flow::Both) => inverted()?,
        (None, _) => BTreeMap::new(),
    };
    let (forward, backward) = if flow == Flow::RightToLeft {
        (other, s.map.clone())
    } else {
        (s.map.clone(), other)
    };
    let supply =
        |m: &BTreeMap<String, BTreeMap<String, toml::Value>>| -> BTreeMap<String, FieldMap> {
            m.iter()
                .map(|(state, fields)| {
                    (
                        state.clone(),
                        fields
                            .iter()
                            .map(|(k, v)| (FieldName::from(k.as_str()), toml_value(v)))
                            .collect(),
                    )
                })
                .collect()
        };
    Ok(StateRule {
        line,
        left: FieldName::from(s.left.as_str()),
        right: FieldName::from(s.right.as_str()),
        flow,
        forward,
        backward,
        supply_left: supply(&s.supply_left),
        supply_right: supply(&s.supply_right),
    })
}

fn render_template(t: &str, fields: &FieldMap) -> String {
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let name = &rest[open + 1..open + close];
                out.push_str(&fields.get(name).map(transform::as_text).unwrap_or_default());
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

fn truncate(s: &str, max: usize, marker: &str) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(marker.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(marker);
    out
}

fn compatible(source: FieldKind, target: FieldKind, t: Transform) -> bool {
    use FieldKind as K;
    match t {
        Transform::HtmlToText => {
            matches!(source, K::Html | K::Text | K::Any) && matches!(target, K::Text | K::Any)
        }
        Transform::TextToHtml => {
            matches!(source, K::Text | K::Choice | K::Any) && matches!(target, K::Html | K::Any)
        }
        Transform::NumberToText => {
            matches!(source, K::Int | K::Float | K::Any)
                && matches!(target, K::Text | K::Choice | K::Any)
        }
        Transform::TextToNumber => {
            matches!(source, K::Text | K::Choice | K::Any)
                && matches!(target, K::Int | K::Float | K::Any)
        }
        Transform::DateTimeToDate => {
            matches!(source, K::DateTime | K::Any) && matches!(target, K::Date | K::Text | K::Any)
        }
        Transform::None => {
            source == target
                || matches!((source, target), (K::Any, _) | (_, K::Any))
                || matches!(
                    (source, target),
                    (K::Text | K::Choice, K::Text | K::Choice)
                        | (K::Int, K::Float | K::Choice)
                        | (K::Choice, K::Int)
                        | (K::Text, K::Html)
                        | (K::Date, K::DateTime)
                )
        }
    }
}

/// A field named by its name or its label, as the schema calls it (unchanged when the schema
/// does not know it).
fn resolved_name(schema: Option<&Schema>, f: &FieldName) -> FieldName {
    match schema.and_then(|s| s.resolve(f.as_str())) {
        Some(d) if d.name != *f => d.name.clone(),
        _ => f.clone(),
    }
}

/// A template with every `{field}` named as the schema calls it.
fn resolved_template(schema: Option<&Schema>, t: &str) -> String {
    if schema.is_none() {
        return t.to_owned();
    }
    let mut out = String::new();
    let mut rest = t;
    while let Some(open) = rest.find('{') {
        out.push_str(&rest[..open]);
        match rest[open..].find('}') {
            Some(close) => {
                let name = &rest[open + 1..open + close];
                out.push('{');
                out.push_str(resolved_name(schema, &FieldName::from(name)).as_str());
                out.push('}');
                rest = &rest[open + close + 1..];
            }
            None => {
                out.push_str(&rest[open..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

impl Filter {
    fn resolved(&self, schema: Option<&Schema>) -> Filter {
        match self {
            Filter::Equals(f, v) => Filter::Equals(resolved_name(schema, f), v.clone()),
            Filter::In(f, v) => Filter::In(resolved_name(schema, f), v.clone()),
            Filter::Empty(f, e) => Filter::Empty(resolved_name(schema, f), *e),
            Filter::Not(x) => Filter::Not(Box::new(x.resolved(schema))),
            Filter::All(x) => Filter::All(x.iter().map(|f| f.resolved(schema)).collect()),
            Filter::Any(x) => Filter::Any(x.iter().map(|f| f.resolved(schema)).collect()),
        }
    }
}

fn resolved_supply(
    keys: Option<&Schema>,
    templates: Option<&Schema>,
    supply: &BTreeMap<String, FieldMap>,
) -> BTreeMap<String, FieldMap> {
    supply
        .iter()
        .map(|(state, fields)| {
            let mut out = FieldMap::new();
            for (k, v) in fields {
                let v = match v {
                    FieldValue::Text(t) if t.contains('{') => {
                        FieldValue::Text(resolved_template(templates, t))
                    }
                    other => other.clone(),
                };
                out.insert(resolved_name(keys, k), v);
            }
            (state.clone(), out)
        })
        .collect()
}

impl Mapping {
    /// The mapping with every field it names by label named as the schemas call it
    /// (`Azure DevOps Bug` → `user-03` in ALM), so what it writes by label it also reads back.
    /// A side without a schema keeps its names.
    pub fn resolve_labels(&self, left: Option<&Schema>, right: Option<&Schema>) -> Mapping {
        let mut m = self.clone();
        for r in &mut m.rules {
            r.left = r.left.as_ref().map(|f| resolved_name(left, f));
            r.right = r.right.as_ref().map(|f| resolved_name(right, f));
            let from = if r.flow == Flow::RightToLeft {
                right
            } else {
                left
            };
            match &mut r.source {
                Source::Field(f) => *f = resolved_name(from, f),
                Source::Template(t) => *t = resolved_template(from, t),
                Source::Constant(_) => {}
            }
        }
        m.scope_left = m.scope_left.as_ref().map(|f| f.resolved(left));
        m.scope_right = m.scope_right.as_ref().map(|f| f.resolved(right));
        if let Some(st) = &mut m.state {
            st.left = resolved_name(left, &st.left);
            st.right = resolved_name(right, &st.right);
            st.supply_left = resolved_supply(left, right, &st.supply_left);
            st.supply_right = resolved_supply(right, left, &st.supply_right);
        }
        m
    }

    /// Compiles a spec.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the line and field of the first problem.
    pub fn from_toml_str(src: &str) -> Result<Self> {
        let raw: RawSpec = toml::from_str(src).map_err(|e| {
            let line = e.span().map_or(0, |s| line_of(src, s.start));
            Error::config(format!("line {line}: {}", e.message())).with_path(format!("line {line}"))
        })?;
        let mut rules = Vec::new();
        for r in &raw.field {
            let line = line_of(src, r.span().start);
            rules.push(compile_rule(line, r.get_ref())?);
        }
        let state = match &raw.state {
            Some(s) => Some(compile_state(line_of(src, s.span().start), s.get_ref())?),
            None => None,
        };
        let (create_left_to_right, create_right_to_left, create_line) = match &raw.create {
            Some(c) => (
                c.get_ref().left_to_right,
                c.get_ref().right_to_left,
                line_of(src, c.span().start),
            ),
            None => (false, false, 1),
        };
        let comments = CommentRouting {
            to_left: visibility(1, raw.comments.to_left.as_deref(), Visibility::Internal)?,
            to_right: visibility(1, raw.comments.to_right.as_deref(), Visibility::Public)?,
            copy_internal: raw.comments.copy_internal.unwrap_or(false),
        };
        Ok(Mapping {
            left_type: raw.left,
            right_type: raw.right,
            rules,
            state,
            scope_left: raw
                .scope
                .left
                .as_ref()
                .map(|f| compile_filter(1, f))
                .transpose()?,
            scope_right: raw
                .scope
                .right
                .as_ref()
                .map(|f| compile_filter(1, f))
                .transpose()?,
            create_left_to_right,
            create_right_to_left,
            create_line,
            comments,
        })
    }

    /// Reads and compiles a spec file.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) when the file cannot be read or compiled.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Self> {
        let p = path.as_ref();
        let src = std::fs::read_to_string(p)
            .map_err(|e| Error::config(format!("cannot read the mapping {}: {e}", p.display())))?;
        Self::from_toml_str(&src)
            .map_err(|e| Error::config(format!("{}: {}", p.display(), e.message())))
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

    /// Checks the spec against both sides' schemas: unknown fields, kinds that cannot convert,
    /// values the target does not allow, required fields nothing fills on create.
    ///
    /// # Errors
    /// Every problem found, each naming its spec line and field.
    pub fn validate(
        &self,
        left: &Schema,
        right: &Schema,
    ) -> std::result::Result<(), MappingErrors> {
        let mut errors = Vec::new();
        // Fields may be named by their label too (ALM `user-NN` fields).
        let known =
            |s: &Schema, f: &FieldName| s.fields.is_empty() || s.resolve(f.as_str()).is_some();
        let kind =
            |s: &Schema, f: &FieldName| s.resolve(f.as_str()).map_or(FieldKind::Any, |d| d.kind);
        for r in &self.rules {
            for (side, schema, f) in [("left", left, &r.left), ("right", right, &r.right)] {
                if let Some(f) = f
                    && !known(schema, f)
                {
                    errors.push(spec_error(
                        r.line,
                        Some(f.as_str()),
                        format!("the {side} type {} has no field `{f}`", schema.item_type),
                    ));
                }
            }
            for d in [Direction::LeftToRight, Direction::RightToLeft] {
                if !r.flow.allows(d) {
                    continue;
                }
                let (src_schema, dst_schema) = match d {
                    Direction::LeftToRight => (left, right),
                    Direction::RightToLeft => (right, left),
                };
                let Some(target) = r.target(d) else { continue };
                let t = if d == r.flow.natural() {
                    r.transform
                } else {
                    r.transform.reversed()
                };
                if let Some(src) = r.source_field(d) {
                    let (sk, tk) = (kind(src_schema, src), kind(dst_schema, target));
                    let through_map = r.values.is_some() || r.person.is_some();
                    if !through_map
                        && known(src_schema, src)
                        && known(dst_schema, target)
                        && !compatible(sk, tk, t)
                    {
                        errors.push(spec_error(
                            r.line,
                            Some(target.as_str()),
                            format!("a {sk:?} value from `{src}` cannot be written to this {tk:?} field without a transform"),
                        ));
                    }
                }
                let allowed = dst_schema
                    .resolve(target.as_str())
                    .map(|d| d.allowed_values.clone())
                    .unwrap_or_default();
                if !allowed.is_empty() {
                    let mut produced: Vec<String> = Vec::new();
                    if let Some(vm) = &r.values {
                        let list = if d == r.flow.natural() {
                            Some(&vm.forward)
                        } else {
                            vm.backward.as_ref()
                        };
                        produced.extend(list.into_iter().flatten().map(|(_, v)| value_text(v)));
                    }
                    if let Source::Constant(c) = &r.source {
                        produced.push(value_text(c));
                    }
                    if let Some(dv) = &r.default {
                        produced.push(value_text(dv));
                    }
                    for v in produced {
                        if !allowed.contains(&v) {
                            errors.push(spec_error(
                                r.line,
                                Some(target.as_str()),
                                format!(
                                    "`{v}` is not one of the allowed values: {}",
                                    allowed.join(", ")
                                ),
                            ));
                        }
                    }
                }
            }
        }
        for (side, schema, filter) in [
            ("left", left, &self.scope_left),
            ("right", right, &self.scope_right),
        ] {
            let mut names = Vec::new();
            if let Some(f) = filter {
                f.fields(&mut names);
            }
            for f in names.iter().filter(|f| !known(schema, f)) {
                errors.push(spec_error(
                    1,
                    Some(f.as_str()),
                    format!(
                        "the {side} scope names `{f}`, which {} does not have",
                        schema.item_type
                    ),
                ));
            }
        }
        if let Some(s) = &self.state {
            for (side, schema, f) in [("left", left, &s.left), ("right", right, &s.right)] {
                if !known(schema, f) {
                    errors.push(spec_error(
                        s.line,
                        Some(f.as_str()),
                        format!("the {side} type {} has no field `{f}`", schema.item_type),
                    ));
                }
            }
            let check = |graph: Option<&TransitionGraph>,
                         states: &mut dyn Iterator<Item = &String>,
                         field: &FieldName,
                         errors: &mut Vec<Error>| {
                if let Some(g) = graph.filter(|g| !g.states.is_empty()) {
                    for st in states {
                        if !g.states.contains(st) {
                            errors.push(spec_error(
                                s.line,
                                Some(field.as_str()),
                                format!("`{st}` is not a state of the target workflow"),
                            ));
                        }
                    }
                }
            };
            if s.flow.allows(Direction::LeftToRight) {
                check(
                    right.workflow.as_ref(),
                    &mut s.forward.values(),
                    &s.right,
                    &mut errors,
                );
            }
            if s.flow.allows(Direction::RightToLeft) {
                check(
                    left.workflow.as_ref(),
                    &mut s.backward.values(),
                    &s.left,
                    &mut errors,
                );
            }
        }
        for (d, target_schema, allowed) in [
            (Direction::LeftToRight, right, self.create_left_to_right),
            (Direction::RightToLeft, left, self.create_right_to_left),
        ] {
            if !allowed {
                continue;
            }
            let produced: BTreeSet<&str> = self
                .rules
                .iter()
                .filter(|r| r.flow.allows(d))
                .filter_map(|r| r.target(d).map(FieldName::as_str))
                .chain(
                    self.state
                        .as_ref()
                        .filter(|s| s.flow.allows(d))
                        .map(|s| match d {
                            Direction::LeftToRight => s.right.as_str(),
                            Direction::RightToLeft => s.left.as_str(),
                        }),
                )
                .collect();
            for def in target_schema
                .fields
                .values()
                .filter(|f| f.required && !f.read_only)
            {
                if !produced.contains(def.name.as_str()) && !produced.contains(def.label.as_str()) {
                    errors.push(spec_error(
                        self.create_line,
                        Some(def.name.as_str()),
                        format!(
                            "{} requires this field on create, and no rule fills it",
                            target_schema.item_type
                        ),
                    ));
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(MappingErrors(errors))
        }
    }

    /// Maps `source` fields in direction `d` for an update (create-only rules left out).
    pub fn map(&self, d: Direction, source: &FieldMap) -> MappedFields {
        self.map_with(d, source, false, &NoDirectory)
    }

    /// Maps `source` fields for a create in direction `d` (create-only rules included).
    pub fn map_for_create(&self, d: Direction, source: &FieldMap) -> MappedFields {
        self.map_with(d, source, true, &NoDirectory)
    }

    /// Maps with a person directory.
    pub fn map_with(
        &self,
        d: Direction,
        source: &FieldMap,
        creating: bool,
        directory: &dyn Directory,
    ) -> MappedFields {
        let mut out = MappedFields::default();
        for r in self
            .rules
            .iter()
            .filter(|r| r.flow.allows(d) && (creating || !r.create_only))
        {
            let Some(target) = r.target(d).cloned() else {
                continue;
            };
            let (mut value, mut kind, src) = match &r.source {
                Source::Field(_) => {
                    let f = r.source_field(d).cloned();
                    (
                        f.as_ref()
                            .and_then(|f| source.get(f.as_str()).cloned())
                            .unwrap_or(FieldValue::Null),
                        "field",
                        f,
                    )
                }
                Source::Template(t) => (
                    FieldValue::Text(render_template(t, source)),
                    "template",
                    None,
                ),
                Source::Constant(c) => (c.clone(), "constant", None),
            };
            if value.is_empty()
                && let Some(dv) = &r.default
            {
                value = dv.clone();
                kind = "default";
            }
            if let (Some(p), FieldValue::Person(person)) = (&r.person, &value) {
                match map_person(p, person, directory) {
                    Some(x) => value = FieldValue::Person(x),
                    None => {
                        out.skipped
                            .push((target, format!("no target person for {person}")));
                        continue;
                    }
                }
            }
            if let Some(vm) = &r.values
                && !value.is_empty()
            {
                let list = if d == r.flow.natural() {
                    Some(&vm.forward)
                } else {
                    vm.backward.as_ref()
                };
                let key = value_text(&value);
                let hit = list.into_iter().flatten().find(|(k, _)| {
                    if vm.case_insensitive {
                        k.eq_ignore_ascii_case(&key)
                    } else {
                        *k == key
                    }
                });
                match (hit, vm.fallback) {
                    (Some((_, v)), _) => value = v.clone(),
                    (None, Fallback::Keep) => {}
                    (None, Fallback::Skip) => {
                        out.skipped
                            .push((target, format!("`{key}` is not in the value map")));
                        continue;
                    }
                    (None, Fallback::Default) => {
                        value = r.default.clone().unwrap_or(FieldValue::Null);
                        kind = "default";
                    }
                    (None, Fallback::Error) => {
                        out.errors.push(Error::invalid_input(
                            target.clone(),
                            &key,
                            format!("line {}: the value is not in the value map", r.line),
                        ));
                        continue;
                    }
                }
            }
            let t = if d == r.flow.natural() {
                r.transform
            } else {
                r.transform.reversed()
            };
            value = match apply_transform(t, value, r.timezone) {
                Ok(v) => v,
                Err(e) => {
                    out.errors.push(e.with_path(format!("line {}", r.line)));
                    continue;
                }
            };
            if let Some((max, marker)) = &r.truncate {
                value = match value {
                    FieldValue::Text(s) => FieldValue::Text(truncate(&s, *max, marker)),
                    FieldValue::Html(s) => FieldValue::Html(truncate(&s, *max, marker)),
                    other => other,
                };
            }
            if let FieldValue::Html(h) = &value {
                value = FieldValue::Html(sanitize_html(h));
            }
            out.provenance.insert(
                target.clone(),
                Provenance {
                    line: r.line,
                    source: src,
                    kind,
                },
            );
            out.fields.insert(target, value);
        }
        out
    }

    /// The steps that move the target's state to the one `source`'s state maps to, through the
    /// target workflow's shortest path, each with the fields its transition requires (from the
    /// spec's `supply_*` tables, templates rendered over `source`). Empty when nothing is to do.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidTransition`](workbridge_core::ErrorKind::InvalidTransition) naming from and to when the workflow has no path, or a
    /// transition requires a field the spec does not supply.
    pub fn plan_state(
        &self,
        d: Direction,
        source: &FieldMap,
        target_current: &FieldMap,
        graph: Option<&TransitionGraph>,
    ) -> Result<Vec<TransitionStep>> {
        self.plan_state_rendering(d, source, source, target_current, graph)
    }

    /// [`Mapping::plan_state`] with the templates of the supplied fields rendered from
    /// `render_from` — the source as it will be once the same round's own writes to it are
    /// applied — while the state to reach is still read from `source`.
    ///
    /// # Errors
    /// As [`Mapping::plan_state`].
    pub fn plan_state_rendering(
        &self,
        d: Direction,
        source: &FieldMap,
        render_from: &FieldMap,
        target_current: &FieldMap,
        graph: Option<&TransitionGraph>,
    ) -> Result<Vec<TransitionStep>> {
        let Some(s) = self.state.as_ref().filter(|s| s.flow.allows(d)) else {
            return Ok(Vec::new());
        };
        let (src_field, dst_field, table, supply) = match d {
            Direction::LeftToRight => (&s.left, &s.right, &s.forward, &s.supply_right),
            Direction::RightToLeft => (&s.right, &s.left, &s.backward, &s.supply_left),
        };
        let Some(from_source) = source
            .get(src_field.as_str())
            .filter(|v| !v.is_empty())
            .map(value_text)
        else {
            return Ok(Vec::new());
        };
        let Some(wanted) = table.get(&from_source).cloned() else {
            return Ok(Vec::new());
        };
        let current = target_current
            .get(dst_field.as_str())
            .map(value_text)
            .unwrap_or_default();
        if current == wanted {
            return Ok(Vec::new());
        }
        let path = match graph {
            Some(g) if !g.transitions.is_empty() => {
                g.shortest_path(&current, &wanted).ok_or_else(|| {
                    Error::invalid_transition(
                        &current,
                        &wanted,
                        format!(
                            "line {}: the target workflow has no path between these states",
                            s.line
                        ),
                    )
                })?
            }
            _ => vec![wanted],
        };
        let mut steps = Vec::new();
        let mut prev = current;
        let mut have: FieldMap = target_current.clone();
        for state in path {
            let mut fields =
                FieldMap::new().with(dst_field.clone(), FieldValue::Choice(state.clone()));
            if let Some(extra) = supply.get(&state) {
                for (k, v) in extra {
                    let v = match v {
                        FieldValue::Text(t) if t.contains('{') => {
                            FieldValue::Text(render_template(t, render_from))
                        }
                        other => other.clone(),
                    };
                    fields.insert(k.clone(), v);
                }
            }
            if let Some(g) = graph {
                let mut after = have.clone();
                after.merge(&fields);
                let missing: Vec<&str> = g
                    .required_for(&prev, &state)
                    .iter()
                    .filter(|f| after.get(f.as_str()).is_none_or(FieldValue::is_empty))
                    .map(FieldName::as_str)
                    .collect();
                if !missing.is_empty() {
                    return Err(Error::invalid_transition(
                        &prev,
                        &state,
                        format!(
                            "line {}: the transition requires {}; supply it in the spec's state table",
                            s.line,
                            missing.join(", ")
                        ),
                    ));
                }
            }
            have.merge(&fields);
            prev = state.clone();
            steps.push(TransitionStep { state, fields });
        }
        Ok(steps)
    }
}

fn map_person(rule: &PersonRule, p: &Person, dir: &dyn Directory) -> Option<Person> {
    let keys = [p.login.as_deref(), p.email.as_deref()];
    if let Some(target) = keys.iter().flatten().find_map(|k| rule.table.get(*k)) {
        return Some(lookup(rule, target, dir));
    }
    let key = if rule.by_email {
        p.email.clone().or_else(|| {
            p.login
                .as_deref()
                .and_then(|l| dir.by_login(l))
                .and_then(|x| x.email)
        })
    } else {
        p.login.clone().or_else(|| {
            p.email
                .as_deref()
                .and_then(|e| dir.by_email(e))
                .and_then(|x| x.login)
        })
    };
    match key {
        Some(k) => {
            let found = if rule.by_email {
                dir.by_email(&k)
            } else {
                dir.by_login(&k)
            };
            Some(found.unwrap_or_else(|| lookup(rule, &k, dir)))
        }
        None => rule.default.as_deref().map(|d| lookup(rule, d, dir)),
    }
}

fn lookup(rule: &PersonRule, key: &str, dir: &dyn Directory) -> Person {
    let found = if rule.by_email || key.contains('@') {
        dir.by_email(key)
    } else {
        dir.by_login(key)
    };
    found.unwrap_or_else(|| {
        if key.contains('@') {
            Person::email(key)
        } else {
            Person::login(key)
        }
    })
}

fn apply_transform(t: Transform, v: FieldValue, tz: FixedOffset) -> Result<FieldValue> {
    Ok(match (t, v) {
        (_, FieldValue::Null) => FieldValue::Null,
        (Transform::None, v) => v,
        (Transform::HtmlToText, FieldValue::Html(h) | FieldValue::Text(h)) => {
            FieldValue::Text(html_to_text(&h))
        }
        (Transform::TextToHtml, FieldValue::Text(s) | FieldValue::Choice(s)) => {
            FieldValue::Html(text_to_html(&s))
        }
        (Transform::TextToHtml, FieldValue::Html(h)) => FieldValue::Html(h),
        (Transform::NumberToText, FieldValue::Int(i)) => FieldValue::Text(i.to_string()),
        (Transform::NumberToText, FieldValue::Float(x)) => FieldValue::Text(x.to_string()),
        (Transform::TextToNumber, FieldValue::Text(s) | FieldValue::Choice(s)) => {
            match s.trim().parse::<i64>() {
                Ok(i) => FieldValue::Int(i),
                Err(_) => FieldValue::Float(
                    s.trim()
                        .parse::<f64>()
                        .map_err(|_| Error::invalid_input("value", &s, "not a number"))?,
                ),
            }
        }
        (Transform::DateTimeToDate, FieldValue::DateTime(t)) => {
            FieldValue::Date(transform::date_in(t, tz))
        }
        (Transform::DateTimeToDate, FieldValue::Date(d)) => FieldValue::Date(d),
        (t, FieldValue::Date(d)) if t == Transform::DateTimeToDate.reversed() => midnight(d, tz),
        (t, v) => {
            return Err(Error::invalid_input(
                "value",
                &v,
                format!(
                    "the {t:?} transform does not apply to a {:?} value",
                    v.kind()
                ),
            ));
        }
    })
}

fn midnight(d: NaiveDate, tz: FixedOffset) -> FieldValue {
    match d
        .and_hms_opt(0, 0, 0)
        .and_then(|n| tz.from_local_datetime(&n).single())
    {
        Some(t) => FieldValue::DateTime(t.with_timezone(&chrono::Utc)),
        None => FieldValue::Date(d),
    }
}
