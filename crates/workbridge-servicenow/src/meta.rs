//! Table metadata from `sys_dictionary` and `sys_choice`, and conversion between ServiceNow's
//! all-strings encoding and typed [`FieldValue`]s.

use std::collections::BTreeMap;

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde_json::Value;
use workbridge_core::{
    Error, FieldDef, FieldKind, FieldName, FieldValue, ItemType, Person, Reference, Result, Schema,
    TransitionGraph,
};

/// ServiceNow's date-time format (UTC).
pub(crate) const SN_TIME: &str = "%Y-%m-%d %H:%M:%S";

/// What the instance says of one field.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldMeta {
    pub(crate) label: String,
    pub(crate) internal_type: String,
    pub(crate) reference: Option<String>,
    pub(crate) choices: Vec<(String, String)>,
    pub(crate) mandatory: bool,
    pub(crate) read_only: bool,
}

impl FieldMeta {
    pub(crate) fn is_journal(&self) -> bool {
        self.internal_type.starts_with("journal")
    }

    pub(crate) fn kind(&self) -> FieldKind {
        if !self.choices.is_empty() {
            return FieldKind::Choice;
        }
        match self.internal_type.as_str() {
            "boolean" => FieldKind::Bool,
            "integer" | "longint" => FieldKind::Int,
            "decimal" | "float" | "currency" | "price" => FieldKind::Float,
            "glide_date_time" | "due_date" => FieldKind::DateTime,
            "glide_date" => FieldKind::Date,
            "reference" if self.reference.as_deref() == Some("sys_user") => FieldKind::Person,
            "reference" => FieldKind::Reference,
            "html" | "translated_html" => FieldKind::Html,
            "url" => FieldKind::Url,
            _ => FieldKind::Text,
        }
    }
}

/// The fields of one table.
#[derive(Debug, Clone, Default)]
pub(crate) struct TableMeta {
    pub(crate) fields: BTreeMap<String, FieldMeta>,
}

const SYSTEM_FIELDS: [&str; 7] = [
    "sys_id",
    "sys_created_on",
    "sys_created_by",
    "sys_updated_on",
    "sys_updated_by",
    "sys_mod_count",
    "sys_class_name",
];

impl TableMeta {
    /// Builds the metadata from dictionary and choice rows (display_value=false), for `table`
    /// and its parents (`chain`, parents first: the table's own entries win).
    pub(crate) fn from_rows(
        chain: &[String],
        dictionary: &[Record],
        choices: &[Record],
    ) -> Result<TableMeta> {
        let s = |row: &Record, k: &str| {
            row.get(k)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        let mut fields = BTreeMap::new();
        for table in chain {
            for row in dictionary {
                if s(row, "name") != *table {
                    continue;
                }
                let element = s(row, "element");
                if element.is_empty() {
                    continue;
                }
                let reference = Some(s(row, "reference")).filter(|r| !r.is_empty());
                fields.insert(
                    element.clone(),
                    FieldMeta {
                        label: Some(s(row, "column_label"))
                            .filter(|l| !l.is_empty())
                            .unwrap_or_else(|| element.clone()),
                        internal_type: s(row, "internal_type"),
                        reference,
                        choices: Vec::new(),
                        mandatory: s(row, "mandatory") == "true",
                        read_only: s(row, "read_only") == "true"
                            || SYSTEM_FIELDS.contains(&element.as_str())
                            || element == "number",
                    },
                );
            }
        }
        for table in chain {
            let mut own: BTreeMap<String, Vec<(i64, String, String)>> = BTreeMap::new();
            for row in choices
                .iter()
                .filter(|r| s(r, "name") == *table && s(r, "inactive") != "true")
            {
                let seq = s(row, "sequence").parse().unwrap_or(0);
                own.entry(s(row, "element")).or_default().push((
                    seq,
                    s(row, "value"),
                    s(row, "label"),
                ));
            }
            for (element, mut list) in own {
                list.sort_by_key(|(seq, _, _)| *seq);
                if let Some(f) = fields.get_mut(&element) {
                    f.choices = list.into_iter().map(|(_, v, l)| (v, l)).collect();
                }
            }
        }
        Ok(TableMeta { fields })
    }

    pub(crate) fn get(&self, name: &str) -> Option<&FieldMeta> {
        self.fields.get(name)
    }

    pub(crate) fn schema(&self, table: &ItemType, workflow: Option<&TransitionGraph>) -> Schema {
        let mut schema = Schema::new(table.clone());
        for (name, f) in self.fields.iter().filter(|(_, f)| !f.is_journal()) {
            let mut def = FieldDef::new(name.as_str(), f.kind()).label(f.label.clone());
            if f.mandatory {
                def = def.required();
            }
            if f.read_only {
                def = def.read_only();
            }
            if !f.choices.is_empty() {
                def = def.allowed(f.choices.iter().map(|(v, _)| v.clone()));
            }
            schema = schema.field(def);
        }
        if let Some(g) = workflow {
            schema = schema.workflow(g.clone());
        }
        schema
    }
}

/// Reads one field of a record (display_value=all: `{"display_value","value"}`; plain strings
/// are accepted too).
pub(crate) fn read_value(raw: &Value, path: &str) -> Result<(String, Option<String>)> {
    match raw {
        Value::String(s) => Ok((s.clone(), None)),
        Value::Null => Ok((String::new(), None)),
        Value::Object(m) => {
            let value = match m.get("value") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Null) | None => String::new(),
                Some(other) => other.to_string(),
            };
            let display = match m.get("display_value") {
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Null) | None => None,
                Some(other) => Some(other.to_string()),
            };
            Ok((value, display))
        }
        Value::Bool(b) => Ok((b.to_string(), None)),
        Value::Number(n) => Ok((n.to_string(), None)),
        Value::Array(_) => Err(Error::protocol(
            path,
            "expected a string or a {display_value, value} object, found an array",
        )),
    }
}

pub(crate) fn parse_time(s: &str, path: &str) -> Result<chrono::DateTime<Utc>> {
    NaiveDateTime::parse_from_str(s, SN_TIME)
        .map(|t| Utc.from_utc_datetime(&t))
        .map_err(|_| {
            Error::protocol(
                path,
                format!("`{s}` is not a date-time of the form YYYY-MM-DD HH:MM:SS"),
            )
        })
}

/// A stored string as a typed value.
pub(crate) fn to_field_value(
    meta: Option<&FieldMeta>,
    value: &str,
    display: Option<&str>,
    path: &str,
) -> Result<FieldValue> {
    if value.is_empty() {
        return Ok(FieldValue::Null);
    }
    let Some(meta) = meta else {
        return Ok(FieldValue::Text(value.to_owned()));
    };
    let bad = |what: &str| Error::protocol(path, format!("`{value}` is not {what}"));
    Ok(match meta.kind() {
        FieldKind::Choice => FieldValue::Choice(value.to_owned()),
        FieldKind::Bool => match value {
            "true" | "1" => FieldValue::Bool(true),
            "false" | "0" => FieldValue::Bool(false),
            _ => return Err(bad("a boolean")),
        },
        FieldKind::Int => FieldValue::Int(value.parse().map_err(|_| bad("an integer"))?),
        FieldKind::Float => FieldValue::Float(value.parse().map_err(|_| bad("a number"))?),
        FieldKind::DateTime => FieldValue::DateTime(parse_time(value, path)?),
        FieldKind::Date => FieldValue::Date(
            NaiveDate::parse_from_str(value, "%Y-%m-%d").map_err(|_| bad("a date"))?,
        ),
        FieldKind::Person => FieldValue::from(Person {
            id: Some(value.to_owned()),
            display_name: display.filter(|d| !d.is_empty()).map(ToOwned::to_owned),
            ..Person::default()
        }),
        FieldKind::Reference => FieldValue::from(Reference {
            target: meta.reference.as_deref().map(ItemType::from),
            id: value.to_owned(),
            display: display.filter(|d| !d.is_empty()).map(ToOwned::to_owned),
        }),
        FieldKind::Html => FieldValue::Html(value.to_owned()),
        FieldKind::Url => url::Url::parse(value)
            .map_or_else(|_| FieldValue::Text(value.to_owned()), FieldValue::from),
        _ => FieldValue::Text(value.to_owned()),
    })
}

/// Checks a value written to `name` against the table's metadata.
pub(crate) fn check_write(
    table: &ItemType,
    meta: &TableMeta,
    name: &FieldName,
    value: &FieldValue,
) -> Result<()> {
    let Some(f) = meta.get(name.as_str()) else {
        return Err(Error::invalid_input(
            name.clone(),
            value,
            format!("{table} has no field `{name}`"),
        ));
    };
    if f.is_journal() {
        return Err(Error::invalid_input(
            name.clone(),
            value,
            "journal fields are written with add_comment",
        ));
    }
    if f.read_only {
        return Err(Error::invalid_input(
            name.clone(),
            value,
            "the field is read-only",
        ));
    }
    let def =
        FieldDef::new(name.clone(), f.kind()).allowed(f.choices.iter().map(|(v, _)| v.clone()));
    def.check(value)
}

/// A typed value as the string ServiceNow stores (persons must carry their sys_id by now).
pub(crate) fn to_wire(name: &FieldName, value: &FieldValue) -> Result<String> {
    Ok(match value {
        FieldValue::Null => String::new(),
        FieldValue::Bool(b) => b.to_string(),
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Float(x) => x.to_string(),
        FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => s.clone(),
        FieldValue::Date(d) => d.format("%Y-%m-%d").to_string(),
        FieldValue::DateTime(t) => t.format(SN_TIME).to_string(),
        FieldValue::MultiChoice(v) => v.join(","),
        FieldValue::Reference(r) => r.id.clone(),
        FieldValue::Url(u) => u.to_string(),
        FieldValue::Person(p) => p.id.clone().ok_or_else(|| {
            Error::invalid_input(
                name.clone(),
                p,
                "the person is not known on the instance (no sys_user matches)",
            )
        })?,
    })
}

#[allow(clippy::wildcard_imports)]
use super::*;

impl ServiceNowRepository {
    pub(crate) async fn table_meta(&self, table: &ItemType) -> Result<Arc<TableMeta>> {
        if let Some(m) = self.meta.read().await.get(table.as_str()) {
            return Ok(m.clone());
        }
        let mut chain: Vec<String> = self
            .config
            .parents
            .get(table.as_str())
            .cloned()
            .unwrap_or_default();
        chain.push(table.to_string());
        let names = chain.join(",");
        let (dictionary, _) = self
            .list(
                "schema",
                "sys_dictionary",
                &format!("nameIN{names}^elementISNOTEMPTY"),
                10_000,
                Some(
                    &[
                        "name",
                        "element",
                        "column_label",
                        "internal_type",
                        "reference",
                        "mandatory",
                        "read_only",
                    ]
                    .map(String::from),
                ),
                false,
            )
            .await?;
        if !dictionary
            .iter()
            .any(|r| r.get("name").and_then(Value::as_str) == Some(table.as_str()))
        {
            // No dictionary entries of its own: make sure the table exists (else 400 Invalid table).
            self.list(
                "schema",
                table.as_str(),
                "",
                1,
                Some(&["sys_id".to_owned()]),
                false,
            )
            .await
            .map_err(|e| e.with_item_type(table.clone()))?;
        }
        let (choices, _) = self
            .list(
                "schema",
                "sys_choice",
                &format!("nameIN{names}^inactive=false^language=en"),
                10_000,
                Some(
                    &["name", "element", "value", "label", "sequence", "inactive"]
                        .map(String::from),
                ),
                false,
            )
            .await?;
        let meta = Arc::new(
            TableMeta::from_rows(&chain, &dictionary, &choices)
                .map_err(|e| e.with_operation("schema").with_system(self))?,
        );
        self.meta
            .write()
            .await
            .insert(table.to_string(), meta.clone());
        Ok(meta)
    }

    pub(crate) fn record_to_item(
        &self,
        table: &ItemType,
        meta: &TableMeta,
        obj: &Record,
        path: &str,
        partial: bool,
    ) -> Result<WorkItem> {
        let member = |k: &str| -> Result<String> {
            let p = format!("{path}.{k}");
            let raw = obj
                .get(k)
                .ok_or_else(|| Error::protocol(&p, format!("the record has no `{k}`")))?;
            Ok(read_value(raw, &p)?.0)
        };
        let id = member("sys_id")?;
        if id.is_empty() {
            return Err(Error::protocol(format!("{path}.sys_id"), "empty sys_id"));
        }
        let version = member("sys_mod_count")?;
        let changed_at = parse_time(
            &member("sys_updated_on")?,
            &format!("{path}.sys_updated_on"),
        )?;
        let changed_by = member("sys_updated_by")
            .ok()
            .filter(|s| !s.is_empty())
            .map(Person::login);
        let mut fields = FieldMap::new();
        for (k, raw) in obj {
            if MEMBER_FIELDS.contains(&k.as_str()) || JOURNAL_FIELDS.contains(&k.as_str()) {
                continue;
            }
            let m = meta.get(k);
            if m.is_some_and(FieldMeta::is_journal) {
                continue;
            }
            let p = format!("{path}.{k}");
            let (value, display) = read_value(raw, &p)?;
            fields.insert(
                k.as_str(),
                to_field_value(m, &value, display.as_deref(), &p)?,
            );
        }
        let mut item = WorkItem::new(
            ItemId::new(id.clone()),
            table.clone(),
            Version::new(version),
            changed_at,
            fields,
        );
        item.changed_by = changed_by;
        item.url = url::Url::parse(&format!(
            "{}/nav_to.do?uri={table}.do?sys_id={id}",
            self.instance
        ))
        .ok();
        item.partial = partial;
        Ok(item)
    }

    /// Fills login and email of the persons in `items` from `sys_user`, in one request per
    /// batch of unknown users.
    pub(crate) async fn resolve_persons(&self, items: &mut [WorkItem]) -> Result<()> {
        let unknown: Vec<String> = {
            let users = lock(&self.users);
            let mut ids: Vec<String> = items
                .iter()
                .flat_map(|i| i.fields.iter())
                .filter_map(|(_, v)| match v {
                    FieldValue::Person(p) => p.id.clone(),
                    _ => None,
                })
                .filter(|id| !users.by_id.contains_key(id))
                .collect();
            ids.sort();
            ids.dedup();
            ids
        };
        for chunk in unknown.chunks(self.config.read_batch) {
            let (rows, _) = self
                .list(
                    "get_many",
                    "sys_user",
                    &format!("sys_idIN{}", chunk.join(",")),
                    chunk.len(),
                    Some(&["sys_id", "user_name", "email", "name"].map(String::from)),
                    false,
                )
                .await?;
            let mut users = lock(&self.users);
            for r in rows {
                let s = |k: &str| {
                    r.get(k)
                        .and_then(Value::as_str)
                        .filter(|v| !v.is_empty())
                        .map(ToOwned::to_owned)
                };
                let Some(id) = s("sys_id") else { continue };
                let p = Person {
                    login: s("user_name"),
                    email: s("email"),
                    display_name: s("name"),
                    id: Some(id.clone()),
                };
                if let Some(l) = &p.login {
                    users.by_key.insert(format!("login:{l}"), id.clone());
                }
                if let Some(e) = &p.email {
                    users
                        .by_key
                        .insert(format!("email:{}", e.to_lowercase()), id.clone());
                }
                users.by_id.insert(id, p);
            }
        }
        let users = lock(&self.users);
        for item in items.iter_mut() {
            let names: Vec<FieldName> = item.fields.names().cloned().collect();
            for n in names {
                if let Some(FieldValue::Person(p)) = item.fields.get(n.as_str())
                    && let Some(full) = p.id.as_ref().and_then(|id| users.by_id.get(id))
                {
                    let full = full.clone();
                    item.fields.insert(n, FieldValue::from(full));
                }
            }
        }
        Ok(())
    }

    /// The sys_id of a person, looked up by login, then email.
    pub(crate) async fn person_id(&self, field: &FieldName, p: &Person) -> Result<String> {
        if let Some(id) = &p.id {
            return Ok(id.clone());
        }
        let keys: Vec<(String, &str, String)> = [
            p.login
                .as_ref()
                .map(|l| (format!("login:{l}"), "user_name", l.clone())),
            p.email
                .as_ref()
                .map(|e| (format!("email:{}", e.to_lowercase()), "email", e.clone())),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (key, column, value) in keys {
            if let Some(id) = lock(&self.users).by_key.get(&key) {
                return Ok(id.clone());
            }
            let (rows, _) = self
                .list(
                    "update",
                    "sys_user",
                    &format!("{column}={}", q(&value)),
                    1,
                    Some(&["sys_id".to_owned()]),
                    false,
                )
                .await?;
            if let Some(id) = rows
                .first()
                .and_then(|r| r.get("sys_id"))
                .and_then(Value::as_str)
            {
                lock(&self.users).by_key.insert(key, id.to_owned());
                return Ok(id.to_owned());
            }
        }
        Err(Error::invalid_input(
            field.clone(),
            p,
            "no sys_user has this login or email",
        ))
    }

    pub(crate) fn workflow(&self, table: &ItemType) -> Option<&workbridge_core::TransitionGraph> {
        self.config.workflows.get(table.as_str())
    }

    pub(crate) async fn do_schema(&self, table: &ItemType) -> Result<Schema> {
        let meta = self.table_meta(table).await?;
        Ok(meta.schema(table, self.workflow(table)))
    }
}

/// Fields every read asks for, whatever projection the caller wants.
pub(crate) const MEMBER_FIELDS: [&str; 4] = [
    "sys_id",
    "sys_mod_count",
    "sys_updated_on",
    "sys_updated_by",
];

pub(crate) const JOURNAL_FIELDS: [&str; 3] = ["comments", "work_notes", "comments_and_work_notes"];

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta() -> TableMeta {
        let dict = vec![
            json!({"name":"task","element":"state","column_label":"State","internal_type":"integer","mandatory":"false","read_only":"false"}),
            json!({"name":"task","element":"active","column_label":"Active","internal_type":"boolean"}),
            json!({"name":"task","element":"assigned_to","column_label":"Assigned to","internal_type":"reference","reference":"sys_user"}),
            json!({"name":"task","element":"opened_at","internal_type":"glide_date_time"}),
            json!({"name":"task","element":"comments","internal_type":"journal_input"}),
            json!({"name":"task","element":"number","internal_type":"string"}),
            json!({"name":"incident","element":"state","column_label":"Incident state","internal_type":"integer"}),
            json!({"name":"incident","element":"u_count","internal_type":"integer"}),
        ];
        let choices = vec![
            json!({"name":"task","element":"state","value":"1","label":"Open","sequence":"1","inactive":"false"}),
            json!({"name":"incident","element":"state","value":"2","label":"In Progress","sequence":"2","inactive":"false"}),
            json!({"name":"incident","element":"state","value":"1","label":"New","sequence":"1","inactive":"false"}),
            json!({"name":"incident","element":"state","value":"9","label":"Old","sequence":"9","inactive":"true"}),
        ];
        let records = |v: Vec<serde_json::Value>| -> Vec<Record> {
            v.into_iter()
                .map(|r| r.as_object().cloned().unwrap())
                .collect()
        };
        TableMeta::from_rows(
            &["task".into(), "incident".into()],
            &records(dict),
            &records(choices),
        )
        .unwrap()
    }

    #[test]
    fn child_entries_win_and_choices_are_ordered() {
        let m = meta();
        let state = m.get("state").unwrap();
        assert_eq!(state.label, "Incident state");
        assert_eq!(
            state.choices,
            [
                ("1".into(), "New".into()),
                ("2".into(), "In Progress".into())
            ]
        );
        assert_eq!(state.kind(), FieldKind::Choice);
        assert!(m.get("number").unwrap().read_only);
        assert!(
            !m.schema(&"incident".into(), None)
                .fields
                .contains_key("comments")
        );
    }

    #[test]
    fn strings_become_typed_values() {
        let m = meta();
        let v = |f: &str, s: &str| to_field_value(m.get(f), s, Some("Beth Anglin"), "result[0].x");
        assert_eq!(v("state", "2").unwrap(), FieldValue::Choice("2".into()));
        assert_eq!(v("active", "true").unwrap(), FieldValue::Bool(true));
        assert_eq!(v("u_count", "42").unwrap(), FieldValue::Int(42));
        assert_eq!(v("u_count", "").unwrap(), FieldValue::Null);
        let FieldValue::Person(p) = v("assigned_to", "abc").unwrap() else {
            panic!()
        };
        assert_eq!(
            (p.id.as_deref(), p.display_name.as_deref()),
            (Some("abc"), Some("Beth Anglin"))
        );
        let FieldValue::DateTime(t) = v("opened_at", "2016-12-14 02:46:44").unwrap() else {
            panic!()
        };
        assert_eq!(t.to_rfc3339(), "2016-12-14T02:46:44+00:00");
        let e = v("u_count", "many").unwrap_err();
        assert_eq!(e.context().path.as_deref(), Some("result[0].x"));
        assert!(v("opened_at", "14/12/2016").is_err());
        assert_eq!(
            v("unknown_field_x", "7").unwrap(),
            FieldValue::Text("7".into())
        );
    }

    #[test]
    fn writes_are_checked_and_encoded() {
        let m = meta();
        let t = ItemType::from("incident");
        let e = check_write(&t, &m, &"bogus".into(), &FieldValue::Text("x".into())).unwrap_err();
        assert_eq!(e.field().unwrap().as_str(), "bogus");
        let e = check_write(&t, &m, &"state".into(), &FieldValue::Choice("5".into())).unwrap_err();
        assert_eq!(e.value(), Some("5"));
        assert!(check_write(&t, &m, &"number".into(), &"INC1".into()).is_err());
        assert!(check_write(&t, &m, &"comments".into(), &"hi".into()).is_err());
        check_write(&t, &m, &"state".into(), &"2".into()).unwrap();
        let when = Utc.with_ymd_and_hms(2024, 1, 2, 3, 4, 5).unwrap();
        assert_eq!(
            to_wire(&"x".into(), &FieldValue::DateTime(when)).unwrap(),
            "2024-01-02 03:04:05"
        );
        assert_eq!(to_wire(&"x".into(), &FieldValue::Null).unwrap(), "");
        assert!(
            to_wire(
                &"assigned_to".into(),
                &FieldValue::from(Person::login("nobody"))
            )
            .is_err()
        );
    }
}
