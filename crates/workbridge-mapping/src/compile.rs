//! A spec compiled: TOML parsed, each rule and the state rule checked and built.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Mapping {
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
}

pub(crate) fn spec_error(line: usize, field: Option<&str>, problem: impl fmt::Display) -> Error {
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

pub(crate) fn line_of(src: &str, offset: usize) -> usize {
    src[..offset.min(src.len())].matches('\n').count() + 1
}

pub(crate) fn toml_value(v: &toml::Value) -> FieldValue {
    match v {
        toml::Value::String(s) => FieldValue::Text(s.clone()),
        toml::Value::Integer(i) => FieldValue::Int(*i),
        toml::Value::Float(x) => FieldValue::Float(*x),
        toml::Value::Boolean(b) => FieldValue::Bool(*b),
        other => FieldValue::Text(other.to_string()),
    }
}

pub(crate) fn toml_text(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(crate) fn compile_filter(line: usize, f: &RawFilter) -> Result<Filter> {
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

pub(crate) fn flow_of(line: usize, field: Option<&str>, s: Option<&str>) -> Result<Flow> {
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

pub(crate) fn visibility(line: usize, s: Option<&str>, default: Visibility) -> Result<Visibility> {
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

pub(crate) fn compile_rule(line: usize, r: &RawRule) -> Result<Rule> {
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
        None => transform::Zone::Fixed(
            FixedOffset::east_opt(0).unwrap_or_else(|| unreachable!("zero is a valid offset")),
        ),
        Some(s) => transform::Zone::parse(s).ok_or_else(|| {
            spec_error(
                line,
                name,
                format!(
                    "timezone `{s}` is neither an offset such as +02:00 or UTC nor a zone such as Europe/Berlin"
                ),
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

pub(crate) fn compile_state(line: usize, s: &RawState) -> Result<StateRule> {
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
