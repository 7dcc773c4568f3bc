//! The audit trail: whether a write whose answer was lost landed, though the entity has been
//! set back since (ADR 0025). Audits carry no `ver-stamp`, so they cannot give the entity as
//! it stood at a version; they say which field was set to what, and when.

use chrono::Timelike;
use serde_json::Value;

#[allow(clippy::wildcard_imports)]
use super::*;

/// One audit row: when (the database server's local time, as written) and what it set.
#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct AuditRow {
    pub(crate) time: String,
    /// Each property: the field's name and its new value.
    pub(crate) set: Vec<(String, String)>,
}

/// JSON collapses one-element arrays to objects and an empty list to `""` or nothing.
fn many(v: Option<&Value>) -> Vec<&Value> {
    match v {
        Some(Value::Array(a)) => a.iter().collect(),
        Some(o @ Value::Object(_)) => vec![o],
        _ => Vec::new(),
    }
}

fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Null) | None => String::new(),
        Some(other) => other.to_string(),
    }
}

/// Reads `GET …/{collection}/{id}/audits` in either format.
pub(crate) fn parse_audits(format: Format, body: &[u8]) -> Result<Vec<AuditRow>> {
    match format {
        Format::Json => {
            let v: Value = serde_json::from_slice(body)
                .map_err(|e| Error::protocol("Audits", format!("the JSON cannot be read: {e}")))?;
            let root = v
                .get("Audits")
                .ok_or_else(|| Error::protocol("Audits", "the response holds no audit list"))?;
            Ok(many(root.get("Audit"))
                .into_iter()
                .map(|a| AuditRow {
                    time: text(a.get("Time")),
                    set: many(a.get("Properties").and_then(|p| p.get("Property")))
                        .into_iter()
                        .map(|p| (text(p.get("Name")), text(p.get("NewValue"))))
                        .collect(),
                })
                .collect())
        }
        Format::Xml => parse_xml(body),
    }
}

fn parse_xml(body: &[u8]) -> Result<Vec<AuditRow>> {
    use quick_xml::events::Event;
    let bad = |e: &dyn std::fmt::Display| {
        Error::protocol("Audits", format!("the XML cannot be read: {e}"))
    };
    let text = std::str::from_utf8(body).map_err(|e| bad(&e))?;
    let mut reader = quick_xml::Reader::from_str(text);
    let mut out = Vec::new();
    let mut row: Option<AuditRow> = None;
    let mut name: Option<String> = None;
    // The element whose text is being read: `Time` or `NewValue`.
    let mut reading: Option<&'static str> = None;
    let mut buf = String::new();
    let mut saw_root = false;
    loop {
        match reader.read_event().map_err(|e| bad(&e))? {
            Event::Start(e) | Event::Empty(e) if e.name().0 == "Audits" => saw_root = true,
            Event::Start(e) if e.name().0 == "Audit" => row = Some(AuditRow::default()),
            Event::End(e) if e.name().0 == "Audit" => out.extend(row.take()),
            Event::Start(e) if e.name().0 == "Property" => {
                name = e.try_get_attribute("Name").ok().flatten().and_then(|a| {
                    a.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .ok()
                        .map(|v| v.into_owned())
                });
            }
            Event::Empty(e) if e.name().0 == "NewValue" => {
                if let (Some(r), Some(n)) = (row.as_mut(), name.clone()) {
                    r.set.push((n, String::new()));
                }
            }
            Event::Start(e) if e.name().0 == "Time" => {
                reading = Some("Time");
                buf.clear();
            }
            Event::Start(e) if e.name().0 == "NewValue" => {
                reading = Some("NewValue");
                buf.clear();
            }
            Event::Text(t) if reading.is_some() => buf.push_str(&t.into_inner()),
            Event::CData(t) if reading.is_some() => buf.push_str(&t.into_inner()),
            Event::GeneralRef(r) if reading.is_some() => {
                match r.resolve_char_ref().map_err(|e| bad(&e))? {
                    Some(c) => buf.push(c),
                    None => {
                        let name = r.into_inner();
                        match super::wire::entity_ref(&name) {
                            Some(c) => buf.push(c),
                            None => buf.push_str(&format!("&{name};")),
                        }
                    }
                }
            }
            Event::End(e) if reading.is_some_and(|r| e.name().0 == r) => {
                if let Some(r) = row.as_mut() {
                    match reading {
                        Some("Time") => r.time = buf.trim().to_owned(),
                        _ => {
                            if let Some(n) = name.clone() {
                                r.set.push((n, buf.clone()));
                            }
                        }
                    }
                }
                reading = None;
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !saw_root {
        return Err(Error::protocol(
            "Audits",
            "the response holds no audit list",
        ));
    }
    Ok(out)
}

impl AlmRepository {
    /// [`Repository::written_since`] from the entity's audits: each field set to its value by
    /// an audit at or after `since` (server time, to the second). `None` where a field's
    /// history is off: ALM audits only the fields whose History is on, and memo fields never.
    pub(crate) async fn do_written_since(
        &self,
        t: &ItemType,
        id: &ItemId,
        fields: &FieldMap,
        since: DateTime<Utc>,
    ) -> Result<Option<bool>> {
        if fields.is_empty() {
            return Ok(None);
        }
        let meta = self.meta(t).await?;
        for (name, _) in fields {
            match Self::resolve(&meta, name.as_str()) {
                Some((_, m)) if m.history && m.ty != "Memo" => {}
                _ => return Ok(None),
            }
        }
        let offset = self.offset().await?;
        let wanted = self.encode_fields(t, &meta, fields, offset)?;
        let resp = self
            .call(
                "written_since",
                Method::GET,
                &format!("{}/audits", self.entity_path(t, id)?),
                &[],
                None,
            )
            .await?;
        let rows = parse_audits(self.config.format, &resp.body)?;
        // Audit times are to the second.
        let from = (since + offset).naive_utc();
        let from = from.with_nanosecond(0).unwrap_or(from);
        let at_or_after = |r: &AuditRow| {
            NaiveDateTime::parse_from_str(&r.time, ALM_TIME).is_ok_and(|t| t >= from)
        };
        for (real, values) in &wanted {
            let value = values.as_ref().map(|v| v.join(";")).unwrap_or_default();
            let set = rows
                .iter()
                .filter(|r| at_or_after(r))
                .any(|r| r.set.iter().any(|(n, v)| n == real && *v == value));
            if !set {
                return Ok(Some(false));
            }
        }
        Ok(Some(true))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audits_read_alike_in_json_and_xml_whatever_the_collapsing() {
        let json = br#"{"Audits":{"Audit":[
            {"Id":1,"Action":"UPDATE","ParentId":4,"ParentType":"defect","Time":"2026-12-04 10:00:01","User":"qa",
             "Properties":{"Property":{"Name":"status","Label":"Status","OldValue":"New","NewValue":"Open"}}},
            {"Id":2,"Action":"UPDATE","ParentId":4,"ParentType":"defect","Time":"2026-12-04 10:00:02","User":"qa",
             "Properties":{"Property":[{"Name":"status","NewValue":"Fixed","OldValue":"Open"},{"Name":"owner","NewValue":null,"OldValue":"dev1"}]}},
            {"Id":3,"Action":"UPDATE","ParentId":4,"ParentType":"defect","Time":"2026-12-04 10:00:03","User":"qa","Properties":""}
        ],"TotalResults":3}}"#;
        let xml = br#"<Audits TotalResults="3"><Audit><Id>1</Id><Action>UPDATE</Action><Time>2026-12-04 10:00:01</Time><User>qa</User><Properties><Property Label="Status" Name="status"><NewValue>Open</NewValue><OldValue>New</OldValue></Property></Properties></Audit><Audit><Id>2</Id><Time>2026-12-04 10:00:02</Time><Properties><Property Label="Status" Name="status"><NewValue>Fixed</NewValue><OldValue>Open</OldValue></Property><Property Label="Owner" Name="owner"><NewValue/><OldValue>dev1</OldValue></Property></Properties></Audit><Audit><Id>3</Id><Time>2026-12-04 10:00:03</Time><Properties/></Audit></Audits>"#;
        let want = vec![
            AuditRow {
                time: "2026-12-04 10:00:01".into(),
                set: vec![("status".into(), "Open".into())],
            },
            AuditRow {
                time: "2026-12-04 10:00:02".into(),
                set: vec![
                    ("status".into(), "Fixed".into()),
                    ("owner".into(), String::new()),
                ],
            },
            AuditRow {
                time: "2026-12-04 10:00:03".into(),
                set: vec![],
            },
        ];
        assert_eq!(parse_audits(Format::Json, json).unwrap(), want);
        assert_eq!(parse_audits(Format::Xml, xml).unwrap(), want);
        let one = br#"{"Audits":{"Audit":{"Id":1,"Time":"2026-12-04 10:00:01","Properties":{"Property":{"Name":"status","NewValue":"Open"}}},"TotalResults":1}}"#;
        assert_eq!(parse_audits(Format::Json, one).unwrap(), want[..1]);
        let none = br#"{"Audits":{"TotalResults":0}}"#;
        assert!(parse_audits(Format::Json, none).unwrap().is_empty());
        for bad in [&b"{}"[..], b"<Entities/>", b"not json"] {
            let format = if bad.starts_with(b"<") {
                Format::Xml
            } else {
                Format::Json
            };
            let e = parse_audits(format, bad).unwrap_err();
            assert_eq!(e.kind(), workbridge_core::ErrorKind::Protocol, "{e}");
        }
    }
}
