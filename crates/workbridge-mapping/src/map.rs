//! Fields mapped from one side to the other: values, persons, transforms, templates.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Mapping {
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
                    Some(x) => value = FieldValue::from(x),
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
}

pub(crate) fn render_template(t: &str, fields: &FieldMap) -> String {
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

pub(crate) fn truncate(s: &str, max: usize, marker: &str) -> String {
    if s.chars().count() <= max {
        return s.to_owned();
    }
    let keep = max.saturating_sub(marker.chars().count());
    let mut out: String = s.chars().take(keep).collect();
    out.push_str(marker);
    out
}

pub(crate) fn map_person(rule: &PersonRule, p: &Person, dir: &dyn Directory) -> Option<Person> {
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

pub(crate) fn lookup(rule: &PersonRule, key: &str, dir: &dyn Directory) -> Person {
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

pub(crate) fn apply_transform(
    t: Transform,
    v: FieldValue,
    tz: transform::Zone,
) -> Result<FieldValue> {
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
        (Transform::DateTimeToDate, FieldValue::DateTime(t)) => FieldValue::Date(tz.date_of(t)),
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

pub(crate) fn midnight(d: NaiveDate, tz: transform::Zone) -> FieldValue {
    match tz.start_of(d) {
        Some(t) => FieldValue::DateTime(t),
        None => FieldValue::Date(d),
    }
}
