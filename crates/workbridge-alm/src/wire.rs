//! The payloads of ALM's REST API: entities and entity collections, in JSON and XML, both
//! ways. ALM has no schema per payload beyond this shape (`Fields` of `Name` and `values`), so
//! one codec reads every entity type; values are read by field type in `meta.rs`.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use workbridge_core::{Error, Result};

/// Which representation to speak.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Format {
    /// `application/json` (default).
    #[default]
    Json,
    /// `application/xml`.
    Xml,
}

impl Format {
    pub(crate) fn media(self) -> &'static str {
        match self {
            Format::Json => "application/json",
            Format::Xml => "application/xml",
        }
    }
}

/// A field's values as ALM sends them: `None` is null (`values: []`), `Some(vec![""])` is the
/// empty string.
pub(crate) type Values = Option<Vec<String>>;

/// An entity as read: its type and fields.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Entity {
    pub(crate) kind: String,
    pub(crate) fields: BTreeMap<String, Values>,
}

fn json_entity(v: &Value, path: &str) -> Result<Entity> {
    let kind = v
        .get("Type")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let fields = v
        .get("Fields")
        .and_then(Value::as_array)
        .ok_or_else(|| Error::protocol(format!("{path}.Fields"), "an entity without Fields"))?;
    let mut out = BTreeMap::new();
    for (i, f) in fields.iter().enumerate() {
        let name = f.get("Name").and_then(Value::as_str).ok_or_else(|| {
            Error::protocol(format!("{path}.Fields[{i}].Name"), "a field without a name")
        })?;
        let values = match f.get("values") {
            None | Some(Value::Null) => None,
            Some(Value::Array(a)) if a.is_empty() => None,
            Some(Value::Array(a)) => Some(
                a.iter()
                    .enumerate()
                    .map(|(j, x)| match x.get("value") {
                        None | Some(Value::Null) => Ok(String::new()),
                        Some(Value::String(s)) => Ok(s.clone()),
                        Some(Value::Number(n)) => Ok(n.to_string()),
                        Some(Value::Bool(b)) => Ok(b.to_string()),
                        Some(_) => Err(Error::protocol(
                            format!("{path}.Fields[{i}].values[{j}].value"),
                            "expected a string",
                        )),
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
            Some(_) => {
                return Err(Error::protocol(
                    format!("{path}.Fields[{i}].values"),
                    "expected an array",
                ));
            }
        };
        out.insert(name.to_owned(), values);
    }
    Ok(Entity { kind, fields: out })
}

/// Parses a single entity.
pub(crate) fn parse_entity(format: Format, body: &[u8]) -> Result<Entity> {
    match format {
        Format::Json => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| Error::protocol("", format!("the entity is not JSON: {e}")))?;
            json_entity(&v, "")
        }
        Format::Xml => xml_entities(body)?
            .0
            .into_iter()
            .next()
            .ok_or_else(|| Error::protocol("Entity", "no entity in the response")),
    }
}

/// Parses a collection: the entities and `TotalResults`.
pub(crate) fn parse_collection(format: Format, body: &[u8]) -> Result<(Vec<Entity>, usize)> {
    match format {
        Format::Json => {
            // Entity by entity: a collection of 1,000 defects is never one tree of JSON values.
            use serde_json::value::RawValue;
            let c: std::collections::HashMap<String, &RawValue> = serde_json::from_slice(body)
                .map_err(|e| Error::protocol("", format!("the collection is not JSON: {e}")))?;
            let list: Vec<&RawValue> = c
                .get("entities")
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .ok_or_else(|| {
                    Error::protocol("entities", "the collection has no entities array")
                })?;
            let total: u64 = c
                .get("TotalResults")
                .and_then(|raw| serde_json::from_str(raw.get()).ok())
                .ok_or_else(|| Error::protocol("TotalResults", "missing"))?;
            let entities = list
                .iter()
                .enumerate()
                .map(|(i, raw)| {
                    let path = format!("entities[{i}]");
                    let v: Value = serde_json::from_str(raw.get()).map_err(|e| {
                        Error::protocol(&path, format!("the entity is not JSON: {e}"))
                    })?;
                    json_entity(&v, &path)
                })
                .collect::<Result<Vec<_>>>()?;
            Ok((entities, usize::try_from(total).unwrap_or(usize::MAX)))
        }
        Format::Xml => {
            let (entities, total) = xml_entities(body)?;
            let total = total.ok_or_else(|| Error::protocol("Entities.TotalResults", "missing"))?;
            Ok((entities, total))
        }
    }
}

fn xml_err(e: impl std::fmt::Display) -> Error {
    Error::protocol("", format!("the XML cannot be read: {e}"))
}

/// The character a predefined XML entity (`lt`, `amp`, …) stands for.
pub(crate) fn entity_ref(name: &str) -> Option<char> {
    match name {
        "lt" => Some('<'),
        "gt" => Some('>'),
        "amp" => Some('&'),
        "quot" => Some('"'),
        "apos" => Some('\''),
        _ => None,
    }
}

/// Reads `<Entities TotalResults="n"><Entity Type="t"><Fields><Field Name="x"><Value>…`.
fn xml_entities(body: &[u8]) -> Result<(Vec<Entity>, Option<usize>)> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(body).map_err(xml_err)?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut total = None;
    let mut out = Vec::new();
    let mut entity: Option<Entity> = None;
    let mut field: Option<(String, Vec<String>)> = None;
    let mut value: Option<String> = None;
    let attr = |e: &quick_xml::events::BytesStart<'_>, name: &str| -> Option<String> {
        e.try_get_attribute(name).ok().flatten().and_then(|a| {
            a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .ok()
                .map(|v| v.into_owned())
        })
    };
    let mut saw_root = false;
    loop {
        let ev = reader.read_event().map_err(xml_err)?;
        match ev {
            Event::Start(e) | Event::Empty(e) if e.name().0 == "Entities" => {
                saw_root = true;
                total = attr(&e, "TotalResults").and_then(|t| t.parse().ok());
            }
            Event::Start(e) if e.name().0 == "Entity" => {
                saw_root = true;
                entity = Some(Entity {
                    kind: attr(&e, "Type").unwrap_or_default(),
                    fields: BTreeMap::new(),
                });
            }
            Event::End(e) if e.name().0 == "Entity" => {
                if let Some(en) = entity.take() {
                    out.push(en);
                }
            }
            Event::Start(e) if e.name().0 == "Field" => {
                field = Some((
                    attr(&e, "Name").ok_or_else(|| {
                        Error::protocol("Entity.Fields.Field", "a field without Name")
                    })?,
                    Vec::new(),
                ));
            }
            Event::Empty(e) if e.name().0 == "Field" => {
                let name = attr(&e, "Name").ok_or_else(|| {
                    Error::protocol("Entity.Fields.Field", "a field without Name")
                })?;
                if let Some(en) = entity.as_mut() {
                    en.fields.insert(name, None);
                }
            }
            Event::End(e) if e.name().0 == "Field" => {
                if let (Some((name, vals)), Some(en)) = (field.take(), entity.as_mut()) {
                    en.fields
                        .insert(name, if vals.is_empty() { None } else { Some(vals) });
                }
            }
            Event::Start(e) if e.name().0 == "Value" && field.is_some() => {
                value = Some(String::new());
            }
            Event::Empty(e) if e.name().0 == "Value" => {
                if let Some((_, vals)) = field.as_mut() {
                    vals.push(String::new());
                }
            }
            Event::Text(t) => {
                if let Some(v) = value.as_mut() {
                    v.push_str(&t.into_inner());
                }
            }
            Event::CData(t) => {
                if let Some(v) = value.as_mut() {
                    v.push_str(&t.into_inner());
                }
            }
            Event::GeneralRef(r) => {
                if let Some(v) = value.as_mut() {
                    match r.resolve_char_ref().map_err(xml_err)? {
                        Some(c) => v.push(c),
                        None => {
                            let name = r.into_inner();
                            match entity_ref(&name) {
                                Some(c) => v.push(c),
                                None => v.push_str(&format!("&{name};")),
                            }
                        }
                    }
                }
            }
            Event::End(e) if e.name().0 == "Value" => {
                if let (Some(v), Some((_, vals))) = (value.take(), field.as_mut()) {
                    vals.push(v);
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(Error::protocol("Entities", "the response holds no entity"));
    }
    Ok((out, total))
}

/// The fields to write, `name` first, then the others in order.
fn ordered(fields: &[(String, Values)]) -> Vec<&(String, Values)> {
    let mut out: Vec<&(String, Values)> = fields.iter().filter(|(n, _)| n == "name").collect();
    out.extend(fields.iter().filter(|(n, _)| n != "name"));
    out
}

fn entity_value(kind: &str, fields: &[(String, Values)]) -> Value {
    let list: Vec<Value> = ordered(fields)
        .iter()
        .map(|(n, v)| {
            let values: Vec<Value> = v.iter().flatten().map(|x| json!({"value": x})).collect();
            json!({"Name": n, "values": values})
        })
        .collect();
    json!({"Fields": list, "Type": kind})
}

fn entity_xml(kind: &str, fields: &[(String, Values)], s: &mut String) {
    s.push_str(&format!("<Entity Type=\"{kind}\"><Fields>"));
    for (n, v) in ordered(fields) {
        match v {
            None => s.push_str(&format!("<Field Name=\"{n}\"/>")),
            Some(vals) => {
                s.push_str(&format!("<Field Name=\"{n}\">"));
                for x in vals {
                    s.push_str(&format!(
                        "<Value>{}</Value>",
                        quick_xml::escape::escape(x.as_str())
                    ));
                }
                s.push_str("</Field>");
            }
        }
    }
    s.push_str("</Fields></Entity>");
}

/// Encodes an entity to write (`name` first, then the others in order).
pub(crate) fn encode(format: Format, kind: &str, fields: &[(String, Values)]) -> Vec<u8> {
    match format {
        Format::Json => entity_value(kind, fields).to_string().into_bytes(),
        Format::Xml => {
            let mut s = String::new();
            entity_xml(kind, fields, &mut s);
            s.into_bytes()
        }
    }
}

/// Encodes entities to write in one bulk request: a collection, as a collection GET answers.
pub(crate) fn encode_collection(
    format: Format,
    kind: &str,
    entities: &[Vec<(String, Values)>],
) -> Vec<u8> {
    match format {
        Format::Json => {
            let list: Vec<Value> = entities.iter().map(|f| entity_value(kind, f)).collect();
            json!({"entities": list, "TotalResults": entities.len()})
                .to_string()
                .into_bytes()
        }
        Format::Xml => {
            let mut s = format!("<Entities TotalResults=\"{}\">", entities.len());
            for f in entities {
                entity_xml(kind, f, &mut s);
            }
            s.push_str("</Entities>");
            s.into_bytes()
        }
    }
}

/// One entity's result in a bulk write that failed in part or in whole (`BulkEntry`).
#[derive(Debug)]
pub(crate) enum BulkEntry {
    /// Written: the entity as stored.
    Written(Entity),
    /// Not written: the entry's exception, as its own error body (JSON or XML).
    Failed(Vec<u8>),
}

/// The entries of a `qccore.bulk-operation-failed` exception, in the order sent; `None` when
/// the body is another exception. JSON `BulkOperationResponse.BulkEntries` may be a list or, as
/// ALM's JSON collapses lists, `{"BulkEntry": …}` with one entry or a list.
pub(crate) fn parse_bulk_failure(format: Format, body: &[u8]) -> Result<Option<Vec<BulkEntry>>> {
    match format {
        Format::Json => {
            let Ok(v) = serde_json::from_slice::<Value>(body) else {
                return Ok(None);
            };
            if v.get("Id").and_then(Value::as_str) != Some("qccore.bulk-operation-failed") {
                return Ok(None);
            }
            let entries = &v["BulkOperationResponse"]["BulkEntries"];
            let entries = match entries.get("BulkEntry").unwrap_or(entries) {
                Value::Array(a) => a.clone(),
                one @ Value::Object(_) => vec![one.clone()],
                _ => {
                    return Err(Error::protocol(
                        "BulkOperationResponse.BulkEntries",
                        "a bulk failure without its entries",
                    ));
                }
            };
            entries
                .iter()
                .enumerate()
                .map(|(i, e)| {
                    let ok = match e.get("Succeeded") {
                        Some(Value::Bool(b)) => *b,
                        Some(Value::String(s)) => s.eq_ignore_ascii_case("true"),
                        _ => false,
                    };
                    if ok {
                        json_entity(&e["Entity"], &format!("BulkEntries[{i}].Entity"))
                            .map(BulkEntry::Written)
                    } else {
                        Ok(BulkEntry::Failed(e["Exception"].to_string().into_bytes()))
                    }
                })
                .collect::<Result<Vec<_>>>()
                .map(Some)
        }
        Format::Xml => {
            let text = String::from_utf8_lossy(body);
            if xml_text(&text, "Id").as_deref() != Some("qccore.bulk-operation-failed") {
                return Ok(None);
            }
            let mut out = Vec::new();
            for part in text.split("<BulkEntry").skip(1) {
                let part = part.split("</BulkEntry>").next().unwrap_or(part);
                let head = part.split('>').next().unwrap_or_default();
                if head.contains("Succeeded=\"true\"") {
                    let entity =
                        xml_entities(part.split_once('>').map_or("", |(_, b)| b).as_bytes())?
                            .0
                            .into_iter()
                            .next()
                            .ok_or_else(|| {
                                Error::protocol(
                                    "BulkEntry.Entity",
                                    "a written entry without its entity",
                                )
                            })?;
                    out.push(BulkEntry::Written(entity));
                } else {
                    out.push(BulkEntry::Failed(part.as_bytes().to_vec()));
                }
            }
            Ok(Some(out))
        }
    }
}

/// A simple XML element's text (`<TimeInMillis>…</TimeInMillis>`), tolerant of namespaces.
pub(crate) fn xml_text(body: &str, tag: &str) -> Option<String> {
    let open = body.find(&format!("<{tag}"))?;
    let start = body[open..].find('>')? + open + 1;
    let end = body[start..].find(&format!("</{tag}>"))? + start;
    Some(body[start..end].trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_and_xml_read_empty_and_null_alike() {
        let json = br#"{"entities":[{"Fields":[{"Name":"id","values":[{"value":"7"}]},{"Name":"description","values":[{}]},{"Name":"closing-date","values":[]},{"Name":"user-01","values":[{"value":"Alpha"},{"value":"Delta"}]}],"Type":"defect","children-count":0}],"TotalResults":1}"#;
        let xml = br#"<?xml version="1.0"?><Entities TotalResults="1"><Entity Type="defect"><ChildrenCount><Value>0</Value></ChildrenCount><Fields><Field Name="id"><Value>7</Value></Field><Field Name="description"><Value></Value></Field><Field Name="closing-date"/><Field Name="user-01"><Value>Alpha</Value><Value>Delta</Value></Field></Fields><RelatedEntities/></Entity></Entities>"#;
        let (a, ta) = parse_collection(Format::Json, json).unwrap();
        let (b, tb) = parse_collection(Format::Xml, xml).unwrap();
        assert_eq!((ta, tb), (1, 1));
        assert_eq!(a, b);
        assert_eq!(a[0].fields["description"], Some(vec![String::new()]));
        assert_eq!(a[0].fields["closing-date"], None);
        assert_eq!(a[0].fields["user-01"].as_ref().unwrap().len(), 2);
        assert_eq!(a[0].kind, "defect");
    }

    #[test]
    fn xml_entities_are_unescaped_and_encoding_round_trips() {
        let fields = vec![
            (
                "description".to_owned(),
                Some(vec!["<b>a & b</b>".to_owned()]),
            ),
            ("name".to_owned(), Some(vec!["x".to_owned()])),
            ("owner".to_owned(), None),
        ];
        for f in [Format::Json, Format::Xml] {
            let body = encode(f, "defect", &fields);
            let e = parse_entity(f, &body).unwrap();
            assert_eq!(
                e.fields["description"],
                Some(vec!["<b>a & b</b>".to_owned()]),
                "{f:?}"
            );
            assert_eq!(e.fields["owner"], None);
        }
        let body = String::from_utf8(encode(Format::Json, "defect", &fields)).unwrap();
        assert!(
            body.find("\"name\"").unwrap() < body.find("\"description\"").unwrap(),
            "name goes first"
        );
    }

    #[test]
    fn malformed_bodies_name_the_path() {
        let e = parse_collection(
            Format::Json,
            br#"{"entities":[{"Type":"defect"}],"TotalResults":1}"#,
        )
        .unwrap_err();
        assert_eq!(e.context().path.as_deref(), Some("entities[0].Fields"));
        let e = parse_collection(Format::Json, br#"{"entities":[{"Fields":[{"Name":"x","values":[{"value":[1]}]}]}],"TotalResults":1}"#).unwrap_err();
        assert_eq!(
            e.context().path.as_deref(),
            Some("entities[0].Fields[0].values[0].value")
        );
        assert!(parse_collection(Format::Json, b"{\"entities\":[").is_err());
        assert!(parse_collection(Format::Xml, b"<html><body>Login</body></html>").is_err());
        assert!(
            parse_collection(
                Format::Xml,
                b"<Entities><Entity Type=\"defect\"></Entity></Entities>"
            )
            .is_err(),
            "TotalResults is required"
        );
    }
}
