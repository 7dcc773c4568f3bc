//! Durations as text in configuration files: `"30s"`, `"10m"`, `"1h30m"`, `"500ms"`.
//!
//! Use it on a [`Duration`] field with `#[serde(with = "workbridge_core::duration_text")]`:
//! a value is whole numbers each followed by its unit — `d`, `h`, `m`, `s` or `ms` — largest
//! first, each unit at most once. It is written back in the same form (`600 s` as `"10m"`).
//!
//! ```
//! use std::time::Duration;
//! use workbridge_core::duration_text::{parse, format};
//!
//! assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
//! assert_eq!(format(Duration::from_millis(1500)), "1s500ms");
//! assert!(parse("10 minutes").is_err());
//! ```

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The units, largest first, with their length in milliseconds.
const UNITS: [(&str, u128); 5] = [
    ("d", 86_400_000),
    ("h", 3_600_000),
    ("m", 60_000),
    ("s", 1_000),
    ("ms", 1),
];

/// Parses a duration such as `"1h30m"`; the error says what was expected.
///
/// # Errors
/// A message naming the text, when it is not whole numbers each followed by a unit (`d`, `h`,
/// `m`, `s`, `ms`), largest first, each at most once, or when it overflows.
pub fn parse(text: &str) -> Result<Duration, String> {
    let bad =
        || format!("{text:?} is not a duration such as \"30s\", \"10m\", \"1h30m\" or \"500ms\"");
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total: u128 = 0;
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
        if digits == 0 {
            return Err(bad());
        }
        let n: u128 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let k = UNITS[next_unit..]
            .iter()
            .position(|(u, _)| *u == unit)
            .ok_or_else(bad)?
            + next_unit;
        next_unit = k + 1;
        total = n
            .checked_mul(UNITS[k].1)
            .and_then(|ms| total.checked_add(ms))
            .ok_or_else(bad)?;
    }
    u64::try_from(total)
        .map(Duration::from_millis)
        .map_err(|_| bad())
}

/// Writes a duration as [`parse`] reads it, largest units first (`"1h30m"`); below a
/// millisecond is dropped, zero is `"0s"`.
pub fn format(d: Duration) -> String {
    let mut ms = d.as_millis();
    if ms == 0 {
        return "0s".to_owned();
    }
    let mut out = String::new();
    for (unit, len) in UNITS {
        let n = ms / len;
        if n > 0 {
            out.push_str(&n.to_string());
            out.push_str(unit);
            ms -= n * len;
        }
    }
    out
}

/// Serializes a duration as text (for `#[serde(with = …)]`).
///
/// # Errors
/// Only the serializer's own.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// Deserializes a duration from text (for `#[serde(with = …)]`).
///
/// # Errors
/// Text that [`parse`] refuses, or a value that is not text.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text).map_err(serde::de::Error::custom)
}

/// The same for an `Option<Duration>` that may be left out:
/// `#[serde(default, with = "workbridge_core::duration_text::option")]`.
pub mod option {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes a duration that is there as text, and nothing where there is none.
    ///
    /// # Errors
    /// Only the serializer's own.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&super::format(*d)),
            None => s.serialize_none(),
        }
    }

    /// Deserializes a duration from text, where one is given.
    ///
    /// # Errors
    /// Text that [`parse`](super::parse) refuses, or a value that is not text.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.map(|t| super::parse(&t).map_err(serde::de::Error::custom))
            .transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_and_write_as_text() {
        for (text, ms) in [
            ("30s", 30_000),
            ("10m", 600_000),
            ("1h30m", 5_400_000),
            ("500ms", 500),
            ("2d", 172_800_000),
            ("1m0s", 60_000),
        ] {
            assert_eq!(parse(text), Ok(Duration::from_millis(ms)), "{text}");
        }
        for d in [0, 1, 999, 1_000, 61_000, 5_400_000, 90_061_001] {
            let d = Duration::from_millis(d);
            assert_eq!(parse(&format(d)), Ok(d), "{}", format(d));
        }
        assert_eq!(format(Duration::from_secs(600)), "10m");
        for bad in [
            "", "10", "m", "10 m", "1m1h", "1s1s", "-5s", "1.5h", "10min", "s10",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{e}");
        }
        assert!(parse("999999999999999999999d").is_err());
    }
}
