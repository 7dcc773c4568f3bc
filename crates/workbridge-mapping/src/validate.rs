//! A spec checked against both sides' schemas, and the labels it names resolved.

#[allow(clippy::wildcard_imports)]
use super::*;

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
}

pub(crate) fn compatible(source: FieldKind, target: FieldKind, t: Transform) -> bool {
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
pub(crate) fn resolved_name(schema: Option<&Schema>, f: &FieldName) -> FieldName {
    match schema.and_then(|s| s.resolve(f.as_str())) {
        Some(d) if d.name != *f => d.name.clone(),
        _ => f.clone(),
    }
}

/// A template with every `{field}` named as the schema calls it.
pub(crate) fn resolved_template(schema: Option<&Schema>, t: &str) -> String {
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

pub(crate) fn resolved_supply(
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
