//! The ALM Core query grammar: `{field[expr];field[expr]}`.

use std::cmp::Ordering;

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expr {
    Or(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    /// An operator (`=` when none was written) and a value (may hold `*` wildcards).
    Term(&'static str, String),
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Op(&'static str),
    And,
    Or,
    Not,
    LParen,
    RParen,
    Val(String),
}

fn tokenize(s: &str) -> Result<Vec<Tok>, String> {
    let chars: Vec<char> = s.chars().collect();
    let mut i = 0;
    let mut out = Vec::new();
    while i < chars.len() {
        let c = chars[i];
        match c {
            c if c.is_whitespace() => i += 1,
            '(' => {
                out.push(Tok::LParen);
                i += 1;
            }
            ')' => {
                out.push(Tok::RParen);
                i += 1;
            }
            '<' | '>' | '=' => {
                let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
                let op = match two.as_str() {
                    "<>" => "<>",
                    ">=" => ">=",
                    "<=" => "<=",
                    _ => match c {
                        '<' => "<",
                        '>' => ">",
                        _ => "=",
                    },
                };
                i += op.len();
                out.push(Tok::Op(op));
            }
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or("an unclosed quote")?
                    + i
                    + 1;
                out.push(Tok::Val(chars[i + 1..end].iter().collect()));
                i = end + 1;
            }
            _ => {
                let start = i;
                while i < chars.len() && !chars[i].is_whitespace() && !"()<>=".contains(chars[i]) {
                    i += 1;
                }
                let word: String = chars[start..i].iter().collect();
                out.push(match word.to_ascii_uppercase().as_str() {
                    "AND" => Tok::And,
                    "OR" => Tok::Or,
                    "NOT" => Tok::Not,
                    "GT" => Tok::Op(">"),
                    "LT" => Tok::Op("<"),
                    "EQ" => Tok::Op("="),
                    "GE" => Tok::Op(">="),
                    "LE" => Tok::Op("<="),
                    _ => Tok::Val(word),
                });
            }
        }
    }
    Ok(out)
}

struct P {
    t: Vec<Tok>,
    i: usize,
}

impl P {
    fn or(&mut self) -> Result<Expr, String> {
        let mut e = self.and()?;
        while self.t.get(self.i) == Some(&Tok::Or) {
            self.i += 1;
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, String> {
        let mut e = self.not()?;
        while self.t.get(self.i) == Some(&Tok::And) {
            self.i += 1;
            e = Expr::And(Box::new(e), Box::new(self.not()?));
        }
        Ok(e)
    }

    fn not(&mut self) -> Result<Expr, String> {
        if self.t.get(self.i) == Some(&Tok::Not) {
            self.i += 1;
            return Ok(Expr::Not(Box::new(self.not()?)));
        }
        self.atom()
    }

    fn atom(&mut self) -> Result<Expr, String> {
        match self.t.get(self.i).cloned() {
            Some(Tok::LParen) => {
                self.i += 1;
                let e = self.or()?;
                if self.t.get(self.i) != Some(&Tok::RParen) {
                    return Err("a missing )".into());
                }
                self.i += 1;
                Ok(e)
            }
            Some(Tok::Op(op)) => {
                self.i += 1;
                match self.t.get(self.i).cloned() {
                    Some(Tok::Val(v)) => {
                        self.i += 1;
                        Ok(Expr::Term(op, v))
                    }
                    _ => Err(format!("a value after {op}")),
                }
            }
            Some(Tok::Val(v)) => {
                self.i += 1;
                Ok(Expr::Term("=", v))
            }
            other => Err(format!("{other:?}")),
        }
    }
}

/// Parses one field's expression.
pub(crate) fn parse_expr(s: &str) -> Result<Expr, String> {
    let t = tokenize(s)?;
    if t.is_empty() {
        return Err("an empty expression".into());
    }
    let mut p = P { t, i: 0 };
    let e = p.or()?;
    if p.i < p.t.len() {
        return Err(format!("{:?}", p.t[p.i]));
    }
    Ok(e)
}

/// Parses `{f1[e1];f2[e2]}` into (field, expression) pairs, AND'ed.
pub(crate) fn parse(q: &str) -> Result<Vec<(String, Expr)>, String> {
    let q = q.trim();
    let inner = q
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .ok_or("the query must be in braces")?;
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    let bytes: Vec<char> = inner.chars().collect();
    let mut parts = Vec::new();
    for (i, c) in bytes.iter().enumerate() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            ';' if depth == 0 => {
                parts.push(bytes[start..i].iter().collect::<String>());
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(bytes[start..].iter().collect::<String>());
    for part in parts.into_iter().filter(|p| !p.trim().is_empty()) {
        let part = part.trim();
        let open = part.find('[').ok_or_else(|| format!("no [ in {part}"))?;
        let close = part.rfind(']').ok_or_else(|| format!("no ] in {part}"))?;
        out.push((
            part[..open].trim().to_owned(),
            parse_expr(&part[open + 1..close])?,
        ));
    }
    Ok(out)
}

fn compare(a: &str, b: &str) -> Ordering {
    match (a.parse::<f64>(), b.parse::<f64>()) {
        (Ok(x), Ok(y)) => x.partial_cmp(&y).unwrap_or(Ordering::Equal),
        _ => a.to_lowercase().cmp(&b.to_lowercase()),
    }
}

fn wildcard(pattern: &str, value: &str) -> bool {
    let p = pattern.to_lowercase();
    let v = value.to_lowercase();
    let parts: Vec<&str> = p.split('*').collect();
    if parts.len() == 1 {
        return p == v;
    }
    let mut pos = 0;
    for (i, part) in parts.iter().enumerate() {
        if part.is_empty() {
            continue;
        }
        match v[pos..].find(part) {
            Some(at) if i > 0 || at == 0 => pos += at + part.len(),
            _ => return false,
        }
    }
    parts.last().is_some_and(|l| l.is_empty()) || v.ends_with(parts[parts.len() - 1])
}

impl Expr {
    /// Whether any of a field's values matches.
    pub(crate) fn matches(&self, values: &[String]) -> bool {
        match self {
            Expr::Or(a, b) => a.matches(values) || b.matches(values),
            Expr::And(a, b) => a.matches(values) && b.matches(values),
            Expr::Not(e) => !e.matches(values),
            Expr::Term(op, v) => {
                let one = |x: &str| match *op {
                    "=" => wildcard(v, x),
                    "<>" => !wildcard(v, x),
                    ">" => compare(x, v) == Ordering::Greater,
                    ">=" => compare(x, v) != Ordering::Less,
                    "<" => compare(x, v) == Ordering::Less,
                    _ => compare(x, v) != Ordering::Greater,
                };
                if values.is_empty() {
                    one("")
                } else {
                    values.iter().any(|x| one(x))
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(e: &str, v: &str) -> bool {
        parse_expr(e).unwrap().matches(&[v.to_owned()])
    }

    #[test]
    fn grammar() {
        assert!(m(">1 AND NOT 5", "3"));
        assert!(!m(">1 AND NOT 5", "5"));
        assert!(m("Open or New", "new"));
        assert!(m("'*login*'", "Cannot login today"));
        assert!(m(">='2024-01-01 10:00:00'", "2024-01-01 10:00:00"));
        assert!(!m(">\"2024-01-01 10:00:00\"", "2024-01-01 10:00:00"));
        assert!(m("GT 4", "10"), "numeric, not text, comparison");
        assert!(m("1 OR 2 OR 3", "2"));
        let q = parse("{status[Open or New]; id[>5]}").unwrap();
        assert_eq!(q.len(), 2);
        assert_eq!(q[1].0, "id");
        assert!(parse("status[Open]").is_err());
        assert!(parse("{status[>]}").is_err());
        assert!(parse("{status[(Open]}").is_err());
    }
}
