//! How a link's field maps are written into a store: compact JSON, read back in either form.
//!
//! A baseline holds a dozen fields per side for every link, so its encoding is most of a
//! store's size. [`FieldValue`]'s own serde form names its kind and value in every field
//! (`{"type":"text","value":"Printer"}`); here plain text, integers, booleans and nulls are
//! bare JSON (`"Printer"`, `5`, `true`, `null`) and every other kind one key naming it
//! (`{"choice":"2"}`, `{"html":"<p>…</p>"}`). Maps written in the tagged form before are read
//! as they are.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use workbridge_core::{FieldMap, FieldValue};

/// Writes `fields` in the compact form.
pub(crate) fn serialize<S: Serializer>(fields: &FieldMap, s: S) -> Result<S::Ok, S::Error> {
    let mut out = Map::new();
    for (name, value) in fields.iter() {
        out.insert(
            name.to_string(),
            encode(value).map_err(serde::ser::Error::custom)?,
        );
    }
    out.serialize(s)
}

/// Reads a map in the compact form or in [`FieldValue`]'s tagged form.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<FieldMap, D::Error> {
    let map = Map::<String, Value>::deserialize(d)?;
    let mut out = FieldMap::new();
    for (name, value) in map {
        let v = decode(value).map_err(|e| D::Error::custom(format!("field {name}: {e}")))?;
        out.insert(name, v);
    }
    Ok(out)
}

fn encode(v: &FieldValue) -> serde_json::Result<Value> {
    Ok(match v {
        FieldValue::Null => Value::Null,
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::Int(i) => Value::from(*i),
        FieldValue::Text(t) => Value::String(t.clone()),
        other => match serde_json::to_value(other)? {
            Value::Object(mut tagged) => {
                let Some(Value::String(kind)) = tagged.remove("type") else {
                    return Err(serde_json::Error::custom("a value without its kind"));
                };
                let value = tagged.remove("value").unwrap_or(Value::Null);
                Value::Object(Map::from_iter([(kind, value)]))
            }
            _ => return Err(serde_json::Error::custom("a value without its kind")),
        },
    })
}

fn decode(v: Value) -> serde_json::Result<FieldValue> {
    Ok(match v {
        Value::Null => FieldValue::Null,
        Value::Bool(b) => FieldValue::Bool(b),
        Value::String(s) => FieldValue::Text(s),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::Int(i),
            None => return Err(serde_json::Error::custom(format!("a bare number {n}"))),
        },
        // As written before the compact form.
        Value::Object(m) if m.contains_key("type") => serde_json::from_value(Value::Object(m))?,
        Value::Object(m) if m.len() == 1 => {
            let Some((kind, value)) = m.into_iter().next() else {
                return Err(serde_json::Error::custom("an empty value"));
            };
            serde_json::from_value(Value::Object(Map::from_iter([
                ("type".to_owned(), Value::String(kind)),
                ("value".to_owned(), value),
            ])))?
        }
        other => {
            return Err(serde_json::Error::custom(format!(
                "not a field value: {other}"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use chrono::{NaiveDate, TimeZone, Utc};
    use workbridge_core::{FieldMap, FieldValue};

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Holder {
        #[serde(with = "super")]
        fields: FieldMap,
    }

    fn every_kind() -> FieldMap {
        FieldMap::new()
            .with("null", FieldValue::Null)
            .with("bool", FieldValue::Bool(true))
            .with("int", FieldValue::Int(-7))
            .with("float", FieldValue::Float(2.0))
            .with("text", "Printer \"3\"")
            .with("numeric_text", "42")
            .with("html", FieldValue::Html("<p>Steps</p>".into()))
            .with(
                "date",
                FieldValue::Date(NaiveDate::from_ymd_opt(2026, 3, 1).unwrap()),
            )
            .with(
                "at",
                FieldValue::DateTime(Utc.with_ymd_and_hms(2026, 3, 1, 9, 30, 0).unwrap()),
            )
            .with("choice", FieldValue::Choice("2".into()))
            .with(
                "multi",
                FieldValue::MultiChoice(vec!["a".into(), "b".into()]),
            )
    }

    #[test]
    fn every_kind_round_trips_in_the_compact_form() {
        let h = Holder {
            fields: every_kind(),
        };
        let json = serde_json::to_string(&h).unwrap();
        assert!(json.contains(r#""text":"Printer \"3\"""#), "{json}");
        assert!(json.contains(r#""numeric_text":"42""#), "{json}");
        assert!(json.contains(r#""choice":{"choice":"2"}"#), "{json}");
        assert!(!json.contains(r#""type""#), "{json}");
        assert_eq!(serde_json::from_str::<Holder>(&json).unwrap(), h);
    }

    #[test]
    fn maps_written_in_the_tagged_form_are_read_as_they_were() {
        let tagged = format!(
            r#"{{"fields":{}}}"#,
            serde_json::to_string(&every_kind()).unwrap()
        );
        assert!(tagged.contains(r#""type":"text""#));
        assert_eq!(
            serde_json::from_str::<Holder>(&tagged).unwrap().fields,
            every_kind()
        );
    }

    #[test]
    fn a_value_of_no_kind_is_an_error_naming_the_field() {
        let e = serde_json::from_str::<Holder>(r#"{"fields":{"priority":[1,2]}}"#).unwrap_err();
        assert!(e.to_string().contains("field priority"), "{e}");
    }
}
