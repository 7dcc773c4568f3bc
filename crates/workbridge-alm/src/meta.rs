//! Field metadata from the customization API, the schema, and entity fields <-> `FieldValue`.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AlmRepository {
    pub(crate) async fn meta(&self, t: &ItemType) -> Result<Arc<Meta>> {
        if let Some(m) = self.meta.read().await.get(t.as_str()) {
            return Ok(m.clone());
        }
        let kind = entity_type(t.as_str());
        let resp = self
            .call(
                "schema",
                Method::GET,
                &format!("{}/customization/entities/{kind}/fields", self.project_path),
                &[],
                None,
            )
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        let lists_resp = self
            .call(
                "schema",
                Method::GET,
                &format!("{}/customization/used-lists", self.project_path),
                &[],
                None,
            )
            .await?;
        let mut lists: HashMap<String, Vec<String>> = HashMap::new();
        let mut fields = BTreeMap::new();
        match self.config.format {
            wire::Format::Json => {
                let v: serde_json::Value = lists_resp.json()?;
                for l in v
                    .get("lists")
                    .and_then(|l| l.as_array())
                    .into_iter()
                    .flatten()
                {
                    let id = l
                        .get("Id")
                        .map(|i| i.to_string().trim_matches('"').to_owned())
                        .unwrap_or_default();
                    let items = l
                        .get("Items")
                        .and_then(|i| i.as_array())
                        .into_iter()
                        .flatten()
                        .filter_map(|i| {
                            i.get("value")
                                .and_then(|v| v.as_str())
                                .map(ToOwned::to_owned)
                        })
                        .collect();
                    lists.insert(id, items);
                }
                let v: serde_json::Value = resp.json()?;
                let list = v
                    .pointer("/Fields/Field")
                    .and_then(|f| f.as_array())
                    .ok_or_else(|| Error::protocol("Fields.Field", "the field list is missing"))?;
                for (i, f) in list.iter().enumerate() {
                    let name = f.get("name").and_then(|n| n.as_str()).ok_or_else(|| {
                        Error::protocol(format!("Fields.Field[{i}].name"), "missing")
                    })?;
                    let list_id = f
                        .get("listId")
                        .map(|x| x.to_string().trim_matches('"').to_owned());
                    fields.insert(
                        name.to_owned(),
                        FieldMeta {
                            label: f
                                .get("label")
                                .and_then(|l| l.as_str())
                                .unwrap_or(name)
                                .to_owned(),
                            ty: f
                                .get("type")
                                .and_then(|t| t.as_str())
                                .unwrap_or("String")
                                .to_owned(),
                            required: f
                                .get("required")
                                .and_then(serde_json::Value::as_bool)
                                .unwrap_or(false),
                            editable: f
                                .get("editable")
                                .and_then(serde_json::Value::as_bool)
                                .unwrap_or(true),
                            history: f
                                .get("history")
                                .and_then(serde_json::Value::as_bool)
                                .unwrap_or(false),
                            allowed: list_id
                                .and_then(|l| lists.get(&l).cloned())
                                .unwrap_or_default(),
                        },
                    );
                }
            }
            wire::Format::Xml => {
                let text = lists_resp.text();
                for list in text.split("<List>").skip(1) {
                    let id = xml_text(list, "Id").unwrap_or_default();
                    let items = list
                        .split("<Item ")
                        .skip(1)
                        .filter_map(|i| {
                            i.split("value=\"").nth(1).and_then(|v| v.split('"').next())
                        })
                        .map(|v| v.replace("&amp;", "&"))
                        .collect();
                    lists.insert(id, items);
                }
                let text = resp.text();
                for (i, f) in text
                    .split("<Field ")
                    .skip(1)
                    .map(|f| format!(" {f}"))
                    .enumerate()
                {
                    let attr = |a: &str| {
                        f.split(&format!(" {a}=\""))
                            .nth(1)
                            .and_then(|v| v.split('"').next())
                            .map(ToOwned::to_owned)
                    };
                    let name = attr("Name").ok_or_else(|| {
                        Error::protocol(format!("Fields.Field[{i}].Name"), "missing")
                    })?;
                    fields.insert(
                        name.clone(),
                        FieldMeta {
                            label: attr("Label").unwrap_or(name),
                            ty: xml_text(&f, "Type").unwrap_or_else(|| "String".into()),
                            required: xml_text(&f, "Required").is_some_and(|r| r == "true"),
                            editable: xml_text(&f, "Editable").is_none_or(|r| r == "true"),
                            history: xml_text(&f, "History").is_some_and(|r| r == "true"),
                            allowed: xml_text(&f, "List-Id")
                                .and_then(|l| lists.get(&l).cloned())
                                .unwrap_or_default(),
                        },
                    );
                }
            }
        }
        let meta = Arc::new(fields);
        self.meta.write().await.insert(t.to_string(), meta.clone());
        Ok(meta)
    }

    /// The field a name or label stands for.
    pub(crate) fn resolve<'a>(meta: &'a Meta, name: &str) -> Option<(&'a String, &'a FieldMeta)> {
        meta.get_key_value(name).or_else(|| {
            meta.iter()
                .find(|(_, m)| m.label.eq_ignore_ascii_case(name))
        })
    }

    pub(crate) fn to_item(
        &self,
        t: &ItemType,
        meta: &Meta,
        e: &Entity,
        offset: TimeDelta,
        path: &str,
    ) -> Result<WorkItem> {
        let one = |f: &str| {
            e.fields
                .get(f)
                .cloned()
                .flatten()
                .and_then(|v| v.into_iter().next())
                .filter(|v| !v.is_empty())
        };
        let id = one("id")
            .ok_or_else(|| Error::protocol(format!("{path}.id"), "an entity without id"))?;
        let ver = one("ver-stamp").unwrap_or_else(|| "0".into());
        let lm = one("last-modified").ok_or_else(|| {
            Error::protocol(
                format!("{path}.last-modified"),
                "an entity without last-modified",
            )
        })?;
        let changed_at = NaiveDateTime::parse_from_str(&lm, ALM_TIME)
            .map_err(|_| {
                Error::protocol(
                    format!("{path}.last-modified"),
                    format!("`{lm}` is not yyyy-MM-dd HH:mm:ss"),
                )
            })?
            .and_utc()
            - offset;
        let mut fields = FieldMap::new();
        for (name, values) in &e.fields {
            let m = meta.get(name);
            let p = format!("{path}.{name}");
            let v = match (values, m.map(FieldMeta::kind)) {
                (None, _) => FieldValue::Null,
                (Some(vs), Some(FieldKind::Text | FieldKind::Html))
                    if vs.len() == 1 && vs[0].is_empty() =>
                {
                    if m.is_some_and(|m| m.ty == "Memo") {
                        FieldValue::Html(String::new())
                    } else {
                        FieldValue::Text(String::new())
                    }
                }
                (Some(vs), _) if vs.iter().all(String::is_empty) => FieldValue::Null,
                (Some(vs), Some(FieldKind::Choice)) if vs.len() > 1 => {
                    FieldValue::MultiChoice(vs.clone())
                }
                (Some(vs), kind) => {
                    let s = vs[0].clone();
                    let bad = |what: &str| Error::protocol(&p, format!("`{s}` is not {what}"));
                    match kind {
                        Some(FieldKind::Int) => {
                            FieldValue::Int(s.parse().map_err(|_| bad("a number"))?)
                        }
                        Some(FieldKind::Date) => FieldValue::Date(
                            NaiveDate::parse_from_str(&s, "%Y-%m-%d").map_err(|_| bad("a date"))?,
                        ),
                        Some(FieldKind::DateTime) => FieldValue::DateTime(
                            NaiveDateTime::parse_from_str(&s, ALM_TIME)
                                .map_err(|_| bad("a date-time"))?
                                .and_utc()
                                - offset,
                        ),
                        Some(FieldKind::Choice) => FieldValue::Choice(s),
                        Some(FieldKind::Person) => FieldValue::from(Person::login(s)),
                        Some(FieldKind::Html) => FieldValue::Html(s),
                        Some(FieldKind::Reference) => FieldValue::from(Reference {
                            target: None,
                            id: s,
                            display: None,
                        }),
                        _ => FieldValue::Text(s),
                    }
                }
            };
            fields.insert(name.as_str(), v);
        }
        let mut item = WorkItem::new(
            ItemId::new(id),
            t.clone(),
            Version::new(ver),
            changed_at,
            fields,
        );
        item.url = None;
        Ok(item)
    }

    /// Checks and encodes the fields of a write (labels resolved to names).
    pub(crate) fn encode_fields(
        &self,
        t: &ItemType,
        meta: &Meta,
        fields: &FieldMap,
        offset: TimeDelta,
    ) -> Result<Vec<(String, Values)>> {
        let mut out = Vec::new();
        for (name, value) in fields {
            let Some((real, m)) = Self::resolve(meta, name.as_str()) else {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    format!("{t} has no field `{name}` (by name or label)"),
                ));
            };
            if !m.editable {
                return Err(Error::invalid_input(
                    real.as_str(),
                    value,
                    "the field is read-only",
                ));
            }
            FieldDef::new(real.as_str(), m.kind())
                .allowed(m.allowed.clone())
                .check(value)?;
            let values: Values = match value {
                FieldValue::Null => None,
                FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => {
                    Some(vec![s.clone()])
                }
                FieldValue::Int(i) => Some(vec![i.to_string()]),
                FieldValue::Float(x) => Some(vec![x.to_string()]),
                FieldValue::Bool(b) => Some(vec![if *b { "Y" } else { "N" }.to_owned()]),
                FieldValue::Date(d) => Some(vec![d.format("%Y-%m-%d").to_string()]),
                FieldValue::DateTime(dt) => Some(vec![(*dt + offset).format(ALM_TIME).to_string()]),
                FieldValue::MultiChoice(v) => Some(v.clone()),
                FieldValue::Reference(r) => Some(vec![r.id.clone()]),
                FieldValue::Url(u) => Some(vec![u.to_string()]),
                FieldValue::Person(p) => Some(vec![p.login.clone().ok_or_else(|| {
                    Error::invalid_input(real.as_str(), p, "ALM names users by login")
                })?]),
            };
            out.push((real.clone(), values));
        }
        Ok(out)
    }

    pub(crate) fn workflow(&self, t: &ItemType) -> Option<&workbridge_core::TransitionGraph> {
        (t.as_str() == "defects")
            .then_some(self.config.defect_workflow.as_ref())
            .flatten()
    }

    pub(crate) fn correlation_name(&self, meta: &Meta) -> Result<String> {
        let f = self.config.correlation_field.as_deref().ok_or_else(|| {
            Error::unsupported("find_by_correlation", "no correlation field is configured")
        })?;
        Self::resolve(meta, f)
            .map(|(n, _)| n.clone())
            .ok_or_else(|| {
                Error::config(format!(
                    "the correlation field `{f}` is not a field of this entity (by name or label)"
                ))
            })
    }

    pub(crate) async fn do_schema(&self, t: &ItemType) -> Result<Schema> {
        let meta = self.meta(t).await?;
        let mut s = Schema::new(t.clone());
        for (name, m) in meta.iter() {
            let mut d = FieldDef::new(name.as_str(), m.kind())
                .label(m.label.clone())
                .allowed(m.allowed.clone());
            if m.required {
                d = d.required();
            }
            if !m.editable {
                d = d.read_only();
            }
            s = s.field(d);
        }
        if let Some(g) = self.workflow(t) {
            s = s.workflow(g.clone());
        }
        Ok(s)
    }
}

pub(crate) const ALM_TIME: &str = "%Y-%m-%d %H:%M:%S";

#[derive(Debug, Clone)]
pub(crate) struct FieldMeta {
    pub(crate) label: String,
    pub(crate) ty: String,
    pub(crate) required: bool,
    pub(crate) editable: bool,
    pub(crate) allowed: Vec<String>,
    /// Whether ALM audits the field's changes (its History setting).
    pub(crate) history: bool,
}

impl FieldMeta {
    pub(crate) fn kind(&self) -> FieldKind {
        match self.ty.as_str() {
            "Memo" => FieldKind::Html,
            "Number" => FieldKind::Int,
            "Date" => FieldKind::Date,
            "DateTime" => FieldKind::DateTime,
            "LookupList" => FieldKind::Choice,
            "UsersList" => FieldKind::Person,
            "Reference" => FieldKind::Reference,
            _ => FieldKind::Text,
        }
    }
}

pub(crate) type Meta = BTreeMap<String, FieldMeta>;

pub(crate) fn entity_type(collection: &str) -> String {
    match collection {
        "defects" => "defect".into(),
        "requirements" => "requirement".into(),
        "tests" => "test".into(),
        "runs" => "run".into(),
        "test-sets" => "test-set".into(),
        other => other.trim_end_matches('s').to_owned(),
    }
}
