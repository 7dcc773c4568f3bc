//! WIQL: a parser and evaluator for what integrators use, and the route that runs a query.

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use std::cmp::Ordering;
use std::sync::Arc;

use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::Response;
use bytes::Bytes;
use serde_json::{Value, json};

#[allow(clippy::wildcard_imports)]
use super::*;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Field(String),
    Word(String),
    Str(String),
    Num(f64),
    Macro(String),
    Op(&'static str),
    LParen,
    RParen,
    Comma,
}

fn tokenize(q: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = q.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '[' => {
                let end = chars[i..]
                    .iter()
                    .position(|&x| x == ']')
                    .ok_or("an unclosed [")?
                    + i;
                out.push(Tok::Field(
                    chars[i + 1..end]
                        .iter()
                        .collect::<String>()
                        .trim()
                        .to_owned(),
                ));
                i = end + 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err("an unclosed string".into()),
                        Some(&x) if x == quote && chars.get(i + 1) == Some(&quote) => {
                            s.push(quote);
                            i += 2;
                        }
                        Some(&x) if x == quote => {
                            i += 1;
                            break;
                        }
                        Some(&x) => {
                            s.push(x);
                            i += 1;
                        }
                    }
                }
                out.push(Tok::Str(s));
            }
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            ',' => {
                out.push(Tok::Comma);
                i += 1;
            }
            '<' | '>' | '=' | '!' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<>" | "!=" => "<>",
                    "<=" => "<=",
                    ">=" => ">=",
                    _ => match c {
                        '<' => "<",
                        '>' => ">",
                        '=' => "=",
                        _ => return Err("!".into()),
                    },
                };
                i += if matches!(two.as_str(), "<>" | "!=" | "<=" | ">=") {
                    2
                } else {
                    1
                };
                out.push(Tok::Op(op));
            }
            '@' => {
                let start = i + 1;
                i = start;
                while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                    i += 1;
                }
                out.push(Tok::Macro(
                    chars[start..i].iter().collect::<String>().to_lowercase(),
                ));
            }
            c if c.is_ascii_digit()
                || ((c == '-' || c == '+')
                    && chars.get(i + 1).is_some_and(char::is_ascii_digit)) =>
            {
                let start = i;
                i += 1;
                while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                out.push(Tok::Num(s.parse().map_err(|_| s.clone())?));
            }
            '-' | '+' => {
                out.push(Tok::Word(c.to_string()));
                i += 1;
            }
            c if c.is_alphabetic() || c == '_' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '.')
                {
                    i += 1;
                }
                out.push(Tok::Word(chars[start..i].iter().collect()));
            }
            other => return Err(other.to_string()),
        }
    }
    Ok(out)
}

/// A literal in a condition.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Lit {
    Str(String),
    Num(f64),
    Me,
    Project,
    Today(i64),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cmp(String, &'static str, Lit),
    In(String, Vec<Lit>, bool),
    Contains(String, Lit, bool),
    Under(String, Lit, bool),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Query {
    pub(crate) fields: Vec<String>,
    pub(crate) links: bool,
    pub(crate) filter: Option<Expr>,
    pub(crate) order: Vec<(String, bool)>,
}

struct Parser {
    toks: Vec<Tok>,
    pos: usize,
}

fn kw(t: Option<&Tok>, k: &str) -> bool {
    matches!(t, Some(Tok::Word(w)) if w.eq_ignore_ascii_case(k))
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect_kw(&mut self, k: &str) -> Result<(), String> {
        if kw(self.peek(), k) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.around())
        }
    }

    fn around(&self) -> String {
        match self.peek() {
            Some(Tok::Word(w) | Tok::Field(w) | Tok::Str(w)) => w.clone(),
            Some(t) => format!("{t:?}"),
            None => "end of query".into(),
        }
    }

    fn field(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Tok::Field(f)) => Ok(f),
            Some(Tok::Word(w))
                if !["and", "or", "not", "order", "from", "where"]
                    .contains(&w.to_lowercase().as_str()) =>
            {
                Ok(w)
            }
            _ => {
                self.pos -= 1;
                Err(self.around())
            }
        }
    }

    fn lit(&mut self) -> Result<Lit, String> {
        let base = match self.next() {
            Some(Tok::Str(s)) => Lit::Str(s),
            Some(Tok::Num(n)) => Lit::Num(n),
            Some(Tok::Macro(m)) => match m.as_str() {
                "me" => Lit::Me,
                "project" => Lit::Project,
                "today" => Lit::Today(0),
                other => return Err(format!("@{other}")),
            },
            Some(Tok::Field(f)) => Lit::Str(f),
            _ => {
                self.pos -= 1;
                return Err(self.around());
            }
        };
        if let Lit::Today(_) = base {
            // @Today - 3, @Today + 1 (the sign may be a separate token or part of the number).
            match self.peek().cloned() {
                Some(Tok::Num(n)) if n.fract() == 0.0 => {
                    self.pos += 1;
                    #[allow(clippy::cast_possible_truncation)]
                    return Ok(Lit::Today(n as i64));
                }
                Some(Tok::Word(w)) if w == "-" || w == "+" => {
                    self.pos += 1;
                    let sign = if w == "-" { -1 } else { 1 };
                    return match self.next() {
                        #[allow(clippy::cast_possible_truncation)]
                        Some(Tok::Num(n)) if n.fract() == 0.0 => Ok(Lit::Today(sign * n as i64)),
                        _ => {
                            self.pos -= 1;
                            Err(self.around())
                        }
                    };
                }
                _ => {}
            }
        }
        Ok(base)
    }

    fn primary(&mut self) -> Result<Expr, String> {
        if matches!(self.peek(), Some(Tok::LParen)) {
            self.pos += 1;
            let e = self.or()?;
            match self.next() {
                Some(Tok::RParen) => return Ok(e),
                _ => {
                    self.pos -= 1;
                    return Err(self.around());
                }
            }
        }
        if kw(self.peek(), "not") {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.primary()?)));
        }
        let field = self.field()?;
        let negate = if kw(self.peek(), "not") {
            self.pos += 1;
            true
        } else {
            false
        };
        match self.next() {
            Some(Tok::Op(op)) if !negate => Ok(Expr::Cmp(field, op, self.lit()?)),
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("in") => {
                if !matches!(self.next(), Some(Tok::LParen)) {
                    self.pos -= 1;
                    return Err(self.around());
                }
                let mut list = vec![self.lit()?];
                while matches!(self.peek(), Some(Tok::Comma)) {
                    self.pos += 1;
                    list.push(self.lit()?);
                }
                if !matches!(self.next(), Some(Tok::RParen)) {
                    self.pos -= 1;
                    return Err(self.around());
                }
                Ok(Expr::In(field, list, negate))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("contains") => {
                if kw(self.peek(), "words") {
                    self.pos += 1;
                }
                Ok(Expr::Contains(field, self.lit()?, negate))
            }
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("under") => {
                Ok(Expr::Under(field, self.lit()?, negate))
            }
            _ => {
                self.pos -= 1;
                Err(self.around())
            }
        }
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.primary()?;
        while kw(self.peek(), "and") {
            self.pos += 1;
            e = Expr::And(Box::new(e), Box::new(self.primary()?));
        }
        Ok(e)
    }

    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while kw(self.peek(), "or") {
            self.pos += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }
}

/// Parses a query; the error names the token where it went wrong.
pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let toks = tokenize(q)?;
    let mut p = Parser { toks, pos: 0 };
    p.expect_kw("select")?;
    let mut fields = vec![p.field()?];
    while matches!(p.peek(), Some(Tok::Comma)) {
        p.pos += 1;
        fields.push(p.field()?);
    }
    p.expect_kw("from")?;
    let links = match p.next() {
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("workitems") => false,
        Some(Tok::Word(w)) if w.eq_ignore_ascii_case("workitemlinks") => true,
        _ => {
            p.pos -= 1;
            return Err(p.around());
        }
    };
    let filter = if kw(p.peek(), "where") {
        p.pos += 1;
        Some(p.or()?)
    } else {
        None
    };
    let mut order = Vec::new();
    if kw(p.peek(), "order") {
        p.pos += 1;
        p.expect_kw("by")?;
        loop {
            let f = p.field()?;
            let desc = if kw(p.peek(), "desc") {
                p.pos += 1;
                true
            } else {
                if kw(p.peek(), "asc") {
                    p.pos += 1;
                }
                false
            };
            order.push((f, desc));
            if matches!(p.peek(), Some(Tok::Comma)) {
                p.pos += 1;
            } else {
                break;
            }
        }
    }
    if kw(p.peek(), "asof") {
        p.pos += 1;
        p.lit()?;
    }
    if p.pos < p.toks.len() {
        return Err(p.around());
    }
    Ok(Query {
        fields,
        links,
        filter,
        order,
    })
}

/// What a condition needs to know while evaluating.
pub(crate) struct EvalCtx<'a> {
    pub(crate) project: &'a str,
    pub(crate) me: &'a [String],
    pub(crate) today: NaiveDate,
    pub(crate) time_precision: bool,
}

/// A value as a condition sees it: text forms (for identities, several), or a number or time.
pub(crate) enum Val {
    Text(Vec<String>),
    Num(f64),
    Time(DateTime<Utc>),
    Empty,
}

pub(crate) fn parse_time_literal(s: &str) -> Option<(DateTime<Utc>, bool)> {
    let s = s.trim().trim_end_matches(" GMT");
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some((t.with_timezone(&Utc), true));
    }
    for f in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
            return Some((Utc.from_utc_datetime(&t), true));
        }
    }
    for f in ["%Y-%m-%d", "%m/%d/%Y"] {
        if let Ok(d) = NaiveDate::parse_from_str(s, f) {
            return Some((Utc.from_utc_datetime(&d.and_hms_opt(0, 0, 0)?), false));
        }
    }
    None
}

fn lit_texts(l: &Lit, ctx: &EvalCtx<'_>) -> Vec<String> {
    match l {
        Lit::Str(s) => vec![s.to_lowercase()],
        Lit::Num(n) => vec![n.to_string()],
        Lit::Me => ctx.me.iter().map(|s| s.to_lowercase()).collect(),
        Lit::Project => vec![ctx.project.to_lowercase()],
        Lit::Today(d) => vec![(ctx.today + TimeDelta::days(*d)).to_string()],
    }
}

fn compare(field: &str, op: &str, lit: &Lit, v: &Val, ctx: &EvalCtx<'_>) -> Result<bool, String> {
    let ord_ok = |o: Ordering| match op {
        "=" => o == Ordering::Equal,
        "<>" => o != Ordering::Equal,
        ">" => o == Ordering::Greater,
        ">=" => o != Ordering::Less,
        "<" => o == Ordering::Less,
        _ => o != Ordering::Greater,
    };
    Ok(match v {
        Val::Time(t) => {
            let (lt, has_time) = match lit {
                Lit::Today(d) => (
                    Utc.from_utc_datetime(
                        &(ctx.today + TimeDelta::days(*d))
                            .and_hms_opt(0, 0, 0)
                            .unwrap_or_default(),
                    ),
                    false,
                ),
                Lit::Str(s) => parse_time_literal(s).ok_or_else(|| format!("'{s}'"))?,
                _ => return Err(format!("[{field}]")),
            };
            if has_time && !ctx.time_precision {
                return Err(format!(
                    "DATEPRECISION:[{field}] {op} '{}'",
                    match lit {
                        Lit::Str(s) => s.clone(),
                        _ => String::new(),
                    }
                ));
            }
            if ctx.time_precision {
                ord_ok(t.cmp(&lt))
            } else {
                ord_ok(t.date_naive().cmp(&lt.date_naive()))
            }
        }
        Val::Num(n) => {
            let x = match lit {
                Lit::Num(x) => *x,
                Lit::Str(s) => s.trim().parse().map_err(|_| format!("'{s}'"))?,
                _ => return Err(format!("[{field}]")),
            };
            ord_ok(n.partial_cmp(&x).unwrap_or(Ordering::Equal))
        }
        Val::Text(forms) => {
            let wanted = lit_texts(lit, ctx);
            match op {
                "=" => forms.iter().any(|f| wanted.contains(f)),
                "<>" => !forms.iter().any(|f| wanted.contains(f)),
                _ => {
                    let f = forms.first().cloned().unwrap_or_default();
                    let w = wanted.first().cloned().unwrap_or_default();
                    ord_ok(f.cmp(&w))
                }
            }
        }
        Val::Empty => {
            let wanted = lit_texts(lit, ctx);
            let empty = wanted.iter().any(String::is_empty);
            match op {
                "=" => empty,
                "<>" => !empty,
                _ => false,
            }
        }
    })
}

impl Expr {
    /// Evaluates against an item; `get` reads a field as a condition sees it.
    pub(crate) fn eval(
        &self,
        get: &dyn Fn(&str) -> Val,
        ctx: &EvalCtx<'_>,
    ) -> Result<bool, String> {
        Ok(match self {
            Expr::And(a, b) => a.eval(get, ctx)? && b.eval(get, ctx)?,
            Expr::Or(a, b) => a.eval(get, ctx)? || b.eval(get, ctx)?,
            Expr::Not(e) => !e.eval(get, ctx)?,
            Expr::Cmp(f, op, lit) => compare(f, op, lit, &get(f), ctx)?,
            Expr::In(f, list, negate) => {
                let v = get(f);
                let mut any = false;
                for l in list {
                    any |= compare(f, "=", l, &v, ctx)?;
                }
                any != *negate
            }
            Expr::Contains(f, lit, negate) => {
                let hay = match get(f) {
                    Val::Text(forms) => forms.join(" "),
                    Val::Num(n) => n.to_string(),
                    Val::Time(t) => t.to_rfc3339(),
                    Val::Empty => String::new(),
                };
                let needle = lit_texts(lit, ctx).first().cloned().unwrap_or_default();
                hay.contains(&needle) != *negate
            }
            Expr::Under(f, lit, negate) => {
                let path = match get(f) {
                    Val::Text(forms) => forms.first().cloned().unwrap_or_default(),
                    _ => String::new(),
                };
                let root = lit_texts(lit, ctx).first().cloned().unwrap_or_default();
                let under = path == root || path.starts_with(&format!("{root}\\"));
                under != *negate
            }
        })
    }

    /// Every field the expression names.
    pub(crate) fn fields(&self, out: &mut Vec<String>) {
        match self {
            Expr::And(a, b) | Expr::Or(a, b) => {
                a.fields(out);
                b.fields(out);
            }
            Expr::Not(e) => e.fields(out),
            Expr::Cmp(f, ..) | Expr::In(f, ..) | Expr::Contains(f, ..) | Expr::Under(f, ..) => {
                out.push(f.clone());
            }
        }
    }
}

pub(crate) fn text_forms(v: &Value) -> Vec<String> {
    match v {
        Value::Object(m) => {
            let g = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_lowercase()
            };
            vec![
                g("displayName"),
                g("uniqueName"),
                format!("{} <{}>", g("displayName"), g("uniqueName")),
            ]
        }
        Value::String(s) => vec![s.to_lowercase()],
        other => vec![other.to_string().to_lowercase()],
    }
}

pub(crate) async fn wiql(
    State(ado): State<Arc<Ado>>,
    path: Path<Vec<(String, String)>>,
    RawQuery(raw): RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    // Project and team are optional route segments; a team narrows nothing here.
    let (org, project) = org_project(&path);
    let ctx = pre!(ado, org, project.as_deref(), raw, headers, Method::POST);
    let Some(text) = serde_json::from_slice::<Value>(&body).ok().and_then(|v| {
        v.get("query")
            .and_then(Value::as_str)
            .map(ToOwned::to_owned)
    }) else {
        return bad_request("The request body must be a WIQL object: {\"query\": \"SELECT ...\"}.");
    };
    if text.len() > 32 * 1024 {
        return bad_request(
            "TF51006: The query is too long: a WIQL query is limited to 32K characters.",
        );
    }
    let q = match parse(&text) {
        Ok(q) => q,
        Err(at) => {
            return ado_error(
                StatusCode::BAD_REQUEST,
                "SyntaxException",
                &format!(
                    "TF51006: The query statement is not valid. The error is caused by «{at}»."
                ),
            );
        }
    };
    let mut named = q.fields.clone();
    if let Some(f) = &q.filter {
        f.fields(&mut named);
    }
    named.extend(q.order.iter().map(|(f, _)| f.clone()));
    if let Some(bad) = named.iter().find(|f| field_type(&ado, f).is_none()) {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "QueryException",
            &format!(
                "TF51005: The query references a field that does not exist. The error is caused by «{bad}»."
            ),
        );
    }
    let time_precision = ctx
        .p
        .get("timePrecision")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    let top: Option<usize> = ctx.p.get("$top").and_then(|v| v.parse().ok());
    let now = ado.now();
    let me = vec![
        ado.config.me.display.clone(),
        ado.config.me.unique.clone(),
        format!("{} <{}>", ado.config.me.display, ado.config.me.unique),
    ];
    let ectx = EvalCtx {
        project: &ado.config.project,
        me: &me,
        today: now.date_naive(),
        time_precision,
    };
    let st = lock(&ado.store);
    let get_val = |wi: &Wi, f: &str| -> Val {
        let key = wi
            .fields
            .keys()
            .find(|k| k.eq_ignore_ascii_case(f))
            .cloned();
        match key.and_then(|k| wi.fields.get(&k)) {
            None | Some(Value::Null) => Val::Empty,
            Some(v) => match field_type(&ado, f) {
                Some("dateTime") => v
                    .as_str()
                    .and_then(parse_date)
                    .map_or(Val::Empty, Val::Time),
                Some("integer" | "double") => v.as_f64().map_or(Val::Empty, Val::Num),
                _ => Val::Text(text_forms(v)),
            },
        }
    };
    let mut hits: Vec<&Wi> = Vec::new();
    // With a lower bound on ChangedDate (the change scan's), only the items from it on, by the
    // index; in its order (ChangedDate, then Id) a `$top` page ends at its last hit.
    let bound = q
        .filter
        .as_ref()
        .and_then(|e| changed_from(e, time_precision));
    let in_index_order = q.order.len() == 2
        && q.order[0].0.eq_ignore_ascii_case("System.ChangedDate")
        && q.order[1].0.eq_ignore_ascii_case("System.Id")
        && !q.order[0].1
        && !q.order[1].1;
    let candidates: Box<dyn Iterator<Item = &Wi>> = match bound {
        Some(t) => Box::new(
            st.by_changed
                .range((t, 0)..)
                .filter_map(|(_, id)| st.items.get(id)),
        ),
        None => Box::new(st.items.values()),
    };
    for wi in candidates {
        if in_index_order && bound.is_some() && top.is_some_and(|n| hits.len() >= n) {
            break;
        }
        let keep = match &q.filter {
            None => true,
            Some(e) => match e.eval(&|f| get_val(wi, f), &ectx) {
                Ok(b) => b,
                Err(e) if e.starts_with("DATEPRECISION:") => {
                    return ado_error(
                        StatusCode::BAD_REQUEST,
                        "QueryException",
                        &format!(
                            "You cannot supply a time with the date when running a query using date precision. The error is caused by «{}».",
                            e.trim_start_matches("DATEPRECISION:")
                        ),
                    );
                }
                Err(at) => {
                    return ado_error(
                        StatusCode::BAD_REQUEST,
                        "QueryException",
                        &format!(
                            "TF51006: The query statement is not valid. The error is caused by «{at}»."
                        ),
                    );
                }
            },
        };
        if keep {
            hits.push(wi);
        }
    }
    let cmp_val = |a: &Val, b: &Val| -> std::cmp::Ordering {
        use Val::{Empty, Num, Text, Time};
        match (a, b) {
            (Num(x), Num(y)) => x.partial_cmp(y).unwrap_or(std::cmp::Ordering::Equal),
            (Time(x), Time(y)) => x.cmp(y),
            (Text(x), Text(y)) => x.first().cmp(&y.first()),
            (Empty, Empty) => std::cmp::Ordering::Equal,
            (Empty, _) => std::cmp::Ordering::Less,
            (_, Empty) => std::cmp::Ordering::Greater,
            _ => std::cmp::Ordering::Equal,
        }
    };
    hits.sort_by(|a, b| {
        for (f, desc) in &q.order {
            let o = cmp_val(&get_val(a, f), &get_val(b, f));
            let o = if *desc { o.reverse() } else { o };
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        a.id.cmp(&b.id)
    });
    if top.is_none() && hits.len() > ado.config.wiql_cap {
        return ado_error(
            StatusCode::BAD_REQUEST,
            "WorkItemTrackingQueryResultSizeLimitExceededException",
            &format!(
                "VS402337: The number of work items returned exceeds the size limit of {}. Change the query to return fewer items.",
                ado.config.wiql_cap
            ),
        );
    }
    if let Some(n) = top {
        hits.truncate(n);
    }
    let base = ado.collection_url();
    let col = |f: &str| json!({"referenceName": f, "name": f.rsplit('.').next().unwrap_or(f), "url": format!("{base}/_apis/wit/fields/{f}")});
    let body = json!({
        "queryType": "flat",
        "queryResultType": "workItem",
        // A real server's clock is never behind a ChangedDate it wrote; a frozen test clock can be.
        "asOf": fmt_date(st.by_changed.last().map_or(now, |(m, _)| (*m).max(now))),
        "columns": q.fields.iter().map(|f| col(f)).collect::<Vec<_>>(),
        "sortColumns": q.order.iter().map(|(f, d)| json!({"field": col(f), "descending": d})).collect::<Vec<_>>(),
        "workItems": hits.iter().map(|w| json!({"id": w.id, "url": format!("{base}/_apis/wit/workItems/{}", w.id)})).collect::<Vec<_>>(),
    });
    ok(&ctx.v, &body)
}

/// The least ChangedDate an item must have to match: a `[System.ChangedDate] >= / > 'T'`
/// among the top-level ANDed conditions (a day earlier without time precision, which compares
/// dates).
fn changed_from(e: &Expr, time_precision: bool) -> Option<DateTime<Utc>> {
    match e {
        Expr::And(a, b) => match (
            changed_from(a, time_precision),
            changed_from(b, time_precision),
        ) {
            (Some(x), Some(y)) => Some(x.max(y)),
            (x, y) => x.or(y),
        },
        Expr::Cmp(f, op, Lit::Str(s))
            if f.eq_ignore_ascii_case("System.ChangedDate") && matches!(*op, ">=" | ">") =>
        {
            let (t, _) = parse_time_literal(s)?;
            Some(if time_precision {
                t
            } else {
                t - TimeDelta::days(1)
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_sync_query() {
        let q = parse(
            "SELECT [System.Id] FROM WorkItems WHERE [System.TeamProject] = @project AND ([System.ChangedDate] > '2024-05-01T10:00:00.000Z' OR ([System.ChangedDate] = '2024-05-01T10:00:00.000Z' AND [System.Id] > 42)) ORDER BY [System.ChangedDate] ASC, [System.Id] ASC",
        )
        .unwrap();
        assert_eq!(q.fields, ["System.Id"]);
        assert_eq!(
            q.order,
            [
                ("System.ChangedDate".into(), false),
                ("System.Id".into(), false)
            ]
        );
        let mut f = Vec::new();
        q.filter.unwrap().fields(&mut f);
        assert_eq!(f.len(), 4);
    }

    #[test]
    fn parses_operators_and_macros() {
        let q = parse("select System.Id, System.Title from workitems where [System.State] in ('Active', 'New') and not [System.Title] contains 'x' and [System.AreaPath] under 'P\\A' and [System.AssignedTo] = @me and [System.CreatedDate] >= @today - 7 and [System.Tags] not contains 'y' and [System.State] not in ('Closed')").unwrap();
        assert_eq!(q.fields.len(), 2);
        assert!(parse("SELECT FROM WorkItems").is_err());
        assert!(parse("SELECT [System.Id] FROM Bugs").is_err());
        assert!(parse("SELECT [System.Id] FROM WorkItems WHERE [System.Id] >").is_err());
        assert!(parse("SELECT [System.Id] FROM WorkItems WHERE ([System.Id] > 1").is_err());
    }
}
