//! The encoded query grammar of `sysparm_query`.

use std::cmp::Ordering;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Eq,
    Ne,
    Gt,
    Ge,
    Lt,
    Le,
    In,
    NotIn,
    Like,
    NotLike,
    StartsWith,
    EndsWith,
    IsEmpty,
    IsNotEmpty,
    Between,
    Anything,
}

/// Operators, longest first so that `>=` wins over `>` and `NOT IN` over `IN`.
const OPS: [(&str, Op); 16] = [
    ("ISNOTEMPTY", Op::IsNotEmpty),
    ("ISEMPTY", Op::IsEmpty),
    ("STARTSWITH", Op::StartsWith),
    ("ENDSWITH", Op::EndsWith),
    ("NOT LIKE", Op::NotLike),
    ("ANYTHING", Op::Anything),
    ("NOT IN", Op::NotIn),
    ("BETWEEN", Op::Between),
    ("LIKE", Op::Like),
    ("IN", Op::In),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=", Op::Eq),
    (">", Op::Gt),
    ("<", Op::Lt),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Cond {
    pub(crate) field: String,
    pub(crate) op: Op,
    pub(crate) value: String,
}

/// A parsed query: groups (`^NQ`) OR'ed; within a group, clauses AND'ed (`^`); within a clause,
/// conditions OR'ed (`^OR`); and the order (`ORDERBY`, `ORDERBYDESC`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Query {
    pub(crate) groups: Vec<Vec<Vec<Cond>>>,
    pub(crate) order: Vec<(String, bool)>,
}

fn parse_cond(term: &str) -> Result<Cond, String> {
    let end = term
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '.'))
        .unwrap_or(term.len());
    let (field, rest) = term.split_at(end);
    if field.is_empty() {
        return Err(term.to_owned());
    }
    let (op, value) = OPS
        .iter()
        .find_map(|(s, op)| rest.strip_prefix(s).map(|v| (*op, v)))
        .ok_or_else(|| term.to_owned())?;
    Ok(Cond {
        field: field.to_owned(),
        op,
        value: value.to_owned(),
    })
}

/// Splits on `^` not doubled (`^^` is a literal caret).
fn split_terms(q: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = q.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '^' {
            if chars.peek() == Some(&'^') {
                chars.next();
                if let Some(last) = out.last_mut() {
                    last.push('^');
                }
            } else {
                out.push(String::new());
            }
        } else if let Some(last) = out.last_mut() {
            last.push(c);
        }
    }
    out.into_iter().filter(|t| !t.is_empty()).collect()
}

/// Parses a query. A term that cannot be read is an error naming it.
pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let mut query = Query::default();
    let mut group: Vec<Vec<Cond>> = Vec::new();
    for term in split_terms(q) {
        if let Some(f) = term.strip_prefix("ORDERBYDESC") {
            query.order.push((f.to_owned(), true));
        } else if let Some(f) = term.strip_prefix("ORDERBY") {
            query.order.push((f.to_owned(), false));
        } else if let Some(rest) = term.strip_prefix("NQ") {
            query.groups.push(std::mem::take(&mut group));
            if !rest.is_empty() {
                group.push(vec![parse_cond(rest)?]);
            }
        } else if let Some(rest) = term.strip_prefix("OR") {
            let cond = parse_cond(rest)?;
            match group.last_mut() {
                Some(clause) => clause.push(cond),
                None => group.push(vec![cond]),
            }
        } else {
            group.push(vec![parse_cond(&term)?]);
        }
    }
    query.groups.push(group);
    Ok(query)
}

/// Compares two stored values: numerically when both are numbers, else as text.
pub(crate) fn compare(a: &str, b: &str, numeric: bool) -> Ordering {
    if numeric && let (Ok(x), Ok(y)) = (a.parse::<f64>(), b.parse::<f64>()) {
        return x.partial_cmp(&y).unwrap_or(Ordering::Equal);
    }
    a.cmp(b)
}

impl Cond {
    pub(crate) fn matches(&self, value: &str, numeric: bool) -> bool {
        let v = self.value.as_str();
        let lower = |s: &str| s.to_lowercase();
        match self.op {
            Op::Eq => value == v,
            Op::Ne => value != v,
            Op::Gt => compare(value, v, numeric) == Ordering::Greater,
            Op::Ge => compare(value, v, numeric) != Ordering::Less,
            Op::Lt => compare(value, v, numeric) == Ordering::Less,
            Op::Le => compare(value, v, numeric) != Ordering::Greater,
            Op::In => v.split(',').any(|x| x == value),
            Op::NotIn => !v.split(',').any(|x| x == value),
            Op::Like => lower(value).contains(&lower(v)),
            Op::NotLike => !lower(value).contains(&lower(v)),
            Op::StartsWith => lower(value).starts_with(&lower(v)),
            Op::EndsWith => lower(value).ends_with(&lower(v)),
            Op::IsEmpty => value.is_empty(),
            Op::IsNotEmpty => !value.is_empty(),
            Op::Between => match v.split_once('@') {
                Some((lo, hi)) => {
                    compare(value, lo, numeric) != Ordering::Less
                        && compare(value, hi, numeric) != Ordering::Greater
                }
                None => false,
            },
            Op::Anything => true,
        }
    }
}

impl Query {
    /// Drops the conditions on fields `known` rejects (as real instances silently ignore
    /// them); returns whether any was dropped.
    pub(crate) fn drop_unknown(&mut self, known: impl Fn(&str) -> bool) -> bool {
        let mut dropped = false;
        for group in &mut self.groups {
            for clause in group.iter_mut() {
                let before = clause.len();
                clause.retain(|c| known(&c.field));
                dropped |= clause.len() != before;
            }
            group.retain(|c| !c.is_empty());
        }
        self.order.retain(|(f, _)| {
            let k = known(f);
            dropped |= !k;
            k
        });
        dropped
    }

    /// The conditions of one clause on its own, in every group (an OR of groups, each an AND).
    fn sole_conditions(&self) -> Option<Vec<Vec<&Cond>>> {
        if self.groups.is_empty() || self.groups.iter().any(Vec::is_empty) {
            return None;
        }
        Some(
            self.groups
                .iter()
                .map(|g| g.iter().filter(|c| c.len() == 1).map(|c| &c[0]).collect())
                .collect(),
        )
    }

    /// An indexed field every row that matches must hold one of the values of: each group
    /// names it with `=` or `IN` (the same field in all).
    pub(crate) fn equalities(&self) -> Option<(&str, Vec<&str>)> {
        let groups = self.sole_conditions()?;
        super::store::INDEXED.iter().find_map(|f| {
            let mut values = Vec::new();
            for g in &groups {
                let c = g
                    .iter()
                    .find(|c| c.field == *f && matches!(c.op, Op::Eq | Op::In))?;
                match c.op {
                    Op::In => values.extend(c.value.split(',')),
                    _ => values.push(c.value.as_str()),
                }
            }
            Some((*f, values))
        })
    }

    /// The least value of `field` a matching row can hold, when every group bounds it from
    /// below (`=`, `>`, `>=`); text order.
    pub(crate) fn lower_bound(&self, field: &str) -> Option<&str> {
        self.bound(field, &[Op::Eq, Op::Gt, Op::Ge], std::cmp::min)
    }

    /// The greatest value of `field` a matching row can hold, when every group bounds it from
    /// above (`=`, `<`, `<=`); text order.
    pub(crate) fn upper_bound(&self, field: &str) -> Option<&str> {
        self.bound(field, &[Op::Eq, Op::Lt, Op::Le], std::cmp::max)
    }

    fn bound<'a>(
        &'a self,
        field: &str,
        ops: &[Op],
        pick: fn(&'a str, &'a str) -> &'a str,
    ) -> Option<&'a str> {
        let groups = self.sole_conditions()?;
        let mut out: Option<&str> = None;
        for g in groups {
            let here = g
                .iter()
                .filter(|c| c.field == field && ops.contains(&c.op))
                .map(|c| c.value.as_str())
                .reduce(|a, b| if pick(a, b) == a { b } else { a })?;
            out = Some(out.map_or(here, |o| pick(o, here)));
        }
        out
    }

    /// Whether a record matches: `get` reads a field (dot-walked names included), `numeric`
    /// says whether a field compares as a number.
    pub(crate) fn matches(
        &self,
        get: &dyn Fn(&str) -> String,
        numeric: &dyn Fn(&str) -> bool,
    ) -> bool {
        self.groups.iter().any(|group| {
            group.iter().all(|clause| {
                clause
                    .iter()
                    .any(|c| c.matches(&get(&c.field), numeric(&c.field)))
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn rec(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn m(q: &str, r: &HashMap<String, String>) -> bool {
        let q = parse(q).unwrap();
        q.matches(&|f| r.get(f).cloned().unwrap_or_default(), &|f| {
            f == "priority"
        })
    }

    #[test]
    fn operators() {
        let r = rec(&[
            ("state", "2"),
            ("priority", "10"),
            ("short_description", "Printer on Fire"),
            ("assigned_to", ""),
        ]);
        assert!(m("state=2", &r));
        assert!(m("state!=3", &r));
        assert!(m("priority>9", &r), "numeric compare");
        assert!(m("priority>=10^priority<=10", &r));
        assert!(!m("priority<2", &r));
        assert!(m("stateIN1,2,3", &r));
        assert!(m("stateNOT IN1,3", &r));
        assert!(m("short_descriptionLIKEfire", &r));
        assert!(m("short_descriptionNOT LIKEwater", &r));
        assert!(m("short_descriptionSTARTSWITHprinter", &r));
        assert!(m("short_descriptionENDSWITHfire", &r));
        assert!(m("assigned_toISEMPTY", &r));
        assert!(!m("assigned_toISNOTEMPTY", &r));
        assert!(m("priorityBETWEEN5@15", &r));
        assert!(m("stateANYTHING", &r));
    }

    #[test]
    fn or_binds_to_the_adjacent_condition_and_nq_starts_a_group() {
        let r = rec(&[("state", "2"), ("priority", "1")]);
        assert!(m("state=1^ORstate=2^priority=1", &r));
        assert!(!m("state=1^ORstate=3^priority=1", &r));
        assert!(m("state=9^NQpriority=1", &r));
        assert!(m(
            "sys_updated_on>2024-01-01 00:00:00^NQstate=2^priority=1",
            &r
        ));
    }

    #[test]
    fn order_and_unknown_fields() {
        let mut q = parse("bogus=1^state=2^ORDERBYsys_updated_on^ORDERBYDESCsys_id").unwrap();
        assert_eq!(
            q.order,
            [("sys_updated_on".into(), false), ("sys_id".into(), true)]
        );
        assert!(q.drop_unknown(|f| f != "bogus"));
        assert_eq!(q.groups[0].len(), 1);
        assert!(parse("=x").is_err());
        assert!(parse("state~2").is_err());
    }

    #[test]
    fn doubled_caret_is_literal() {
        let r = rec(&[("short_description", "a^b")]);
        assert!(m("short_description=a^^b", &r));
    }
}
