//! Value transforms: HTML ↔ text, sanitising, numbers, dates.

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use workbridge_core::FieldValue;

/// HTML as plain text: no markdown decorations, lists and tables readable, non-breaking spaces
/// normalised, runs of blank lines collapsed.
pub fn html_to_text(html: &str) -> String {
    let rendered = html2text::config::plain_no_decorate()
        .no_table_borders()
        .string_from_read(strip_links(html).as_bytes(), 10_000)
        .unwrap_or_else(|_| html.to_owned());
    let lines: Vec<String> = rendered
        .replace('\u{a0}', " ")
        .lines()
        .map(|l| {
            let l = l.trim_end();
            // List bullets as a plain character, not markdown.
            let indent = l.len() - l.trim_start().len();
            match l.trim_start().strip_prefix("* ") {
                Some(rest) => format!("{}• {rest}", &l[..indent]),
                None => l.to_owned(),
            }
        })
        .collect();
    let start = lines
        .iter()
        .position(|l| !l.is_empty())
        .unwrap_or(lines.len());
    let end = lines
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(start, |e| e + 1);
    lines[start..end].join("\n")
}

/// Drops `<a>` tags, keeping their text: a link's text reads as text, without brackets.
fn strip_links(html: &str) -> String {
    let mut out = String::with_capacity(html.len());
    let mut rest = html;
    while let Some(pos) = rest.find('<') {
        out.push_str(&rest[..pos]);
        let tag = &rest[pos..];
        let lower: String = tag.chars().take(4).collect::<String>().to_ascii_lowercase();
        let is_link = lower.starts_with("</a>")
            || (lower.starts_with("<a")
                && lower[2..].starts_with(|c: char| c.is_whitespace() || c == '>'));
        match (is_link, tag.find('>')) {
            (true, Some(end)) => rest = &tag[end + 1..],
            _ => {
                out.push('<');
                rest = &tag[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// Plain text as HTML: escaped, line breaks kept.
pub fn text_to_html(text: &str) -> String {
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace("\r\n", "\n");
    // Runs of spaces and leading spaces survive as non-breaking spaces.
    escaped
        .split('\n')
        .map(|line| {
            let mut out = String::with_capacity(line.len());
            let mut prev_space = true;
            for c in line.chars() {
                if c == ' ' && prev_space {
                    out.push_str("&nbsp;");
                } else {
                    out.push(c);
                }
                prev_space = c == ' ';
            }
            out
        })
        .collect::<Vec<_>>()
        .join("<br>")
}

/// HTML safe to write to a target: no scripts, no `on*` handlers, no `javascript:` links.
pub fn sanitize_html(html: &str) -> String {
    ammonia::clean(html)
}

/// A value's text for templates and text targets.
pub(crate) fn as_text(v: &FieldValue) -> String {
    match v {
        FieldValue::Null => String::new(),
        FieldValue::Html(h) => html_to_text(h),
        FieldValue::Person(p) => p
            .display_name
            .clone()
            .or_else(|| p.login.clone())
            .or_else(|| p.email.clone())
            .unwrap_or_default(),
        other => other.to_string(),
    }
}

/// Parses a time zone offset (`+02:00`, `-0700`, `Z`, `UTC`).
pub(crate) fn parse_offset(s: &str) -> Option<FixedOffset> {
    let s = s.trim();
    if s.eq_ignore_ascii_case("z") || s.eq_ignore_ascii_case("utc") {
        return FixedOffset::east_opt(0);
    }
    let (sign, rest) = match s.as_bytes().first()? {
        b'+' => (1, &s[1..]),
        b'-' => (-1, &s[1..]),
        _ => return None,
    };
    let digits: String = rest.chars().filter(char::is_ascii_digit).collect();
    if digits.len() != 4 {
        return None;
    }
    let h: i32 = digits[..2].parse().ok()?;
    let m: i32 = digits[2..].parse().ok()?;
    FixedOffset::east_opt(sign * (h * 3600 + m * 60))
}

/// A rule's time zone: a fixed offset (`+02:00`, `UTC`) or a named zone of the IANA database
/// (`Europe/Berlin`), whose offset follows daylight saving.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Zone {
    Fixed(FixedOffset),
    Named(chrono_tz::Tz),
}

impl Zone {
    /// An offset, or a zone's IANA name.
    pub(crate) fn parse(s: &str) -> Option<Zone> {
        parse_offset(s)
            .map(Zone::Fixed)
            .or_else(|| s.trim().parse::<chrono_tz::Tz>().ok().map(Zone::Named))
    }

    /// The calendar date of a point in time here.
    pub(crate) fn date_of(self, t: DateTime<Utc>) -> NaiveDate {
        match self {
            Zone::Fixed(z) => t.with_timezone(&z).date_naive(),
            Zone::Named(z) => t.with_timezone(&z).date_naive(),
        }
    }

    /// The first instant of a calendar day here (midnight, or the first hour after a
    /// daylight-saving gap that skips it).
    pub(crate) fn start_of(self, d: NaiveDate) -> Option<DateTime<Utc>> {
        use chrono::TimeZone;
        (0..3).find_map(|h| {
            let n = d.and_hms_opt(h, 0, 0)?;
            match self {
                Zone::Fixed(z) => z.from_local_datetime(&n).earliest().map(|t| t.to_utc()),
                Zone::Named(z) => z.from_local_datetime(&n).earliest().map(|t| t.to_utc()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_zones_day_starts_at_its_own_midnight() {
        let la = Zone::parse("America/Los_Angeles").unwrap();
        let d = |m, day| NaiveDate::from_ymd_opt(2026, m, day).unwrap();
        let at =
            |m, day, h| chrono::TimeZone::with_ymd_and_hms(&Utc, 2026, m, day, h, 0, 0).single();
        assert_eq!(la.start_of(d(1, 15)), at(1, 15, 8));
        assert_eq!(la.start_of(d(7, 1)), at(7, 1, 7));
        // Where a change skips midnight (Havana, March 2026), the day starts at 01:00.
        let havana = Zone::parse("America/Havana").unwrap();
        assert_eq!(havana.start_of(d(3, 8)), at(3, 8, 5));
        assert_eq!(
            Zone::parse("+02:00").unwrap().start_of(d(1, 1)),
            chrono::TimeZone::with_ymd_and_hms(&Utc, 2025, 12, 31, 22, 0, 0).single()
        );
        assert!(Zone::parse("Mars/Olympus").is_none());
    }

    #[test]
    fn text_and_html() {
        assert_eq!(
            text_to_html("a < b & \"c\"\nnext"),
            "a &lt; b &amp; &quot;c&quot;<br>next"
        );
        assert_eq!(
            html_to_text("<p>One&nbsp;two</p><p>Three</p>"),
            "One two\n\nThree"
        );
        assert_eq!(text_to_html("a  b\n c"), "a &nbsp;b<br>&nbsp;c");
        let clean = sanitize_html(
            "<p onclick=\"x()\">Hi<script>alert(1)</script><a href=\"javascript:x\">l</a></p>",
        );
        assert!(
            !clean.contains("script")
                && !clean.contains("onclick")
                && !clean.contains("javascript"),
            "{clean}"
        );
        assert!(clean.contains("Hi"));
    }

    #[test]
    fn offsets() {
        assert_eq!(parse_offset("+02:00").unwrap().local_minus_utc(), 7200);
        assert_eq!(parse_offset("-0700").unwrap().local_minus_utc(), -25200);
        assert_eq!(parse_offset("UTC").unwrap().local_minus_utc(), 0);
        assert!(parse_offset("2h").is_none());
    }
}
