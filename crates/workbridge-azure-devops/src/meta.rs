//! Field and type metadata, the schema, and wire values <-> `FieldValue`.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AzureDevOpsRepository {
    pub(crate) async fn field_types(&self) -> Result<Arc<FieldTypes>> {
        if let Some(f) = self.field_types.read().await.clone() {
            return Ok(f);
        }
        let body: List<FieldJson> = self
            .call_json(
                "schema",
                Method::GET,
                &self.project_path("fields"),
                &[],
                None,
            )
            .await?;
        let map = Arc::new(parse_field_list(body));
        *self.field_types.write().await = Some(map.clone());
        Ok(map)
    }

    pub(crate) async fn type_meta(&self, t: &ItemType) -> Result<Arc<TypeMeta>> {
        let key = t.as_str().to_lowercase();
        if let Some(m) = self.types.read().await.get(&key) {
            return Ok(m.clone());
        }
        let ftypes = self.field_types().await?;
        let type_path = format!("workitemtypes/{}", seg(t.as_str()));
        let body: TypeJson = self
            .call_json(
                "schema",
                Method::GET,
                &self.project_path(&type_path),
                &[],
                None,
            )
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        // The type's own field list with defaults and allowed values (api 4.1 and later; the
        // type itself carries neither on real servers).
        let details = if self.config.server.has_type_field_details() {
            let body = self
                .call(
                    "schema",
                    Method::GET,
                    &self.project_path(&format!("{type_path}/fields")),
                    self.config.server.api(),
                    &[("$expand", "allowedValues".to_owned())],
                    None,
                )
                .await
                .and_then(|r| r.json::<List<FieldInstanceJson>>())
                .map_err(|e| e.with_item_type(t.clone()))?;
            Some(body)
        } else {
            None
        };
        let fields = type_fields(&body, details.as_ref(), &ftypes)?;
        let name = body.name.unwrap_or_else(|| t.as_str().to_owned());
        let mut graph = TransitionGraph::new("System.State");
        for (from, tos) in &body.transitions {
            for to in tos {
                graph = if from.is_empty() {
                    graph.initial(to.to.as_str())
                } else {
                    graph.transition(from.as_str(), to.to.as_str())
                };
            }
        }
        for s in body.states {
            graph.states.insert(s.name);
        }
        let meta = Arc::new(TypeMeta {
            name,
            fields,
            graph,
        });
        self.types.write().await.insert(key, meta.clone());
        Ok(meta)
    }

    pub(crate) fn item_from(
        &self,
        meta: Option<&TypeMeta>,
        v: &WorkItemJson,
        path: &str,
    ) -> Result<WorkItem> {
        let f = &v.fields;
        let changed = f
            .get("System.ChangedDate")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Error::protocol(format!("{path}.fields.System.ChangedDate"), "missing")
            })?;
        let changed_at = parse_time(changed).ok_or_else(|| {
            Error::protocol(
                format!("{path}.fields.System.ChangedDate"),
                format!("`{changed}` is not an ISO 8601 date-time"),
            )
        })?;
        let wtype = f
            .get("System.WorkItemType")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let mut fields = FieldMap::new();
        for (k, raw) in f {
            if k == "System.History" {
                continue;
            }
            let m = meta.and_then(|m| m.fields.get(k));
            fields.insert(
                k.as_str(),
                to_field_value(m, raw, &format!("{path}.fields.{k}"))?,
            );
        }
        let mut item = WorkItem::new(
            ItemId::new(v.id.to_string()),
            ItemType::from(wtype),
            Version::new(v.rev.to_string()),
            changed_at,
            fields,
        );
        item.changed_by = f.get("System.ChangedBy").and_then(parse_person);
        item.url = v
            .links
            .as_ref()
            .and_then(|l| l.html.as_ref())
            .and_then(|h| url::Url::parse(&h.href).ok());
        Ok(item)
    }

    pub(crate) async fn do_schema(&self, t: &ItemType) -> Result<Schema> {
        let meta = self.type_meta(t).await?;
        let mut s = Schema::new(t.clone());
        for (r, m) in &meta.fields {
            let mut d = FieldDef::new(r.as_str(), m.kind())
                .label(m.name.clone())
                .allowed(m.allowed.clone());
            if m.required {
                d = d.required();
            }
            if m.read_only {
                d = d.read_only();
            }
            s = s.field(d);
        }
        Ok(s.workflow(meta.graph.clone()))
    }
}

pub(crate) const MEMBER_FIELDS: [&str; 5] = [
    "System.Id",
    "System.Rev",
    "System.ChangedDate",
    "System.ChangedBy",
    "System.WorkItemType",
];

#[derive(Debug, Clone)]
pub(crate) struct FieldMeta {
    pub(crate) name: String,
    pub(crate) ty: String,
    pub(crate) identity: bool,
    pub(crate) read_only: bool,
    pub(crate) required: bool,
    pub(crate) allowed: Vec<String>,
}

impl FieldMeta {
    pub(crate) fn kind(&self) -> FieldKind {
        if self.identity {
            return FieldKind::Person;
        }
        if !self.allowed.is_empty() {
            return FieldKind::Choice;
        }
        match self.ty.as_str() {
            "integer" => FieldKind::Int,
            "double" => FieldKind::Float,
            "dateTime" => FieldKind::DateTime,
            "boolean" => FieldKind::Bool,
            "html" | "history" => FieldKind::Html,
            _ => FieldKind::Text,
        }
    }
}

/// One entry of the organization's field list.
#[derive(Debug, Clone)]
pub(crate) struct FieldInfo {
    pub(crate) ty: String,
    pub(crate) read_only: bool,
    pub(crate) identity: bool,
}

/// Fields a work item type may mark `alwaysRequired` that the server fills in itself on create
/// (the initial state and its reason, the project's root area and iteration and their ids), so
/// a caller is never asked for them.
pub(crate) const SERVER_FILLED: [&str; 6] = [
    "System.State",
    "System.Reason",
    "System.AreaId",
    "System.IterationId",
    "System.AreaPath",
    "System.IterationPath",
];

#[derive(Debug)]
pub(crate) struct TypeMeta {
    pub(crate) name: String,
    pub(crate) fields: BTreeMap<String, FieldMeta>,
    pub(crate) graph: TransitionGraph,
}

/// Field reference name → what the field list says of it.
pub(crate) type FieldTypes = HashMap<String, FieldInfo>;

/// A JSON string holding an ISO 8601 date-time, in UTC.
pub(crate) fn date_time(v: &Value) -> Option<DateTime<Utc>> {
    v.as_str().and_then(parse_time)
}

/// An ISO 8601 date-time as the API writes them.
pub(crate) fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

pub(crate) fn parse_person(v: &Value) -> Option<Person> {
    match v {
        Value::Object(m) => {
            let s = |k: &str| {
                m.get(k)
                    .and_then(Value::as_str)
                    .filter(|x| !x.is_empty())
                    .map(ToOwned::to_owned)
            };
            let unique = s("uniqueName");
            Some(Person {
                email: unique.clone().filter(|u| u.contains('@')),
                login: unique,
                display_name: s("displayName"),
                id: s("id"),
            })
        }
        Value::String(text) => {
            let (display, unique) = match text.rsplit_once('<') {
                Some((d, u)) => (
                    d.trim().to_owned(),
                    u.trim_end_matches('>').trim().to_owned(),
                ),
                None => (text.clone(), String::new()),
            };
            Some(Person {
                email: Some(unique.clone()).filter(|u| u.contains('@')),
                login: Some(unique).filter(|u| !u.is_empty()),
                display_name: Some(display).filter(|d| !d.is_empty()),
                id: None,
            })
        }
        _ => None,
    }
}

pub(crate) fn to_field_value(
    meta: Option<&FieldMeta>,
    v: &Value,
    path: &str,
) -> Result<FieldValue> {
    if v.is_null() {
        return Ok(FieldValue::Null);
    }
    let bad = |what: &str| Error::protocol(path, format!("expected {what}, found {v}"));
    let kind = meta.map(FieldMeta::kind);
    Ok(match (kind, v) {
        (Some(FieldKind::Person), _) | (None, Value::Object(_)) => {
            FieldValue::from(parse_person(v).ok_or_else(|| bad("an identity"))?)
        }
        (Some(FieldKind::Int), Value::Number(n)) => {
            FieldValue::Int(n.as_i64().ok_or_else(|| bad("an integer"))?)
        }
        (Some(FieldKind::Int), Value::String(s)) => {
            FieldValue::Int(s.parse().map_err(|_| bad("an integer"))?)
        }
        (Some(FieldKind::Float), Value::Number(n)) => {
            FieldValue::Float(n.as_f64().ok_or_else(|| bad("a number"))?)
        }
        (Some(FieldKind::Bool), Value::Bool(b)) => FieldValue::Bool(*b),
        (Some(FieldKind::DateTime), Value::String(s)) => {
            FieldValue::DateTime(parse_time(s).ok_or_else(|| bad("an ISO 8601 date-time"))?)
        }
        (Some(FieldKind::Choice), Value::String(s)) => FieldValue::Choice(s.clone()),
        (Some(FieldKind::Choice), Value::Number(n)) => FieldValue::Choice(n.to_string()),
        (Some(FieldKind::Html), Value::String(s)) => FieldValue::Html(s.clone()),
        (Some(FieldKind::Text) | None, Value::String(s)) => FieldValue::Text(s.clone()),
        (Some(FieldKind::Text), Value::Number(n)) => FieldValue::Text(n.to_string()),
        (None, Value::Number(n)) => n.as_i64().map_or_else(
            || FieldValue::Float(n.as_f64().unwrap_or_default()),
            FieldValue::Int,
        ),
        (None, Value::Bool(b)) => FieldValue::Bool(*b),
        (Some(k), _) => return Err(bad(&format!("a {k:?} value"))),
        (None, _) => return Err(bad("a scalar")),
    })
}

/// Parses the organization's field list. A field is a person when the list says
/// `isIdentity` (real servers say `"type": "string"` for identities) or, on servers that have
/// the type, `"type": "identity"`. Tree paths are listed read-only but are written by path.
pub(crate) fn parse_field_list(body: List<FieldJson>) -> FieldTypes {
    body.value
        .into_iter()
        .map(|f| {
            let ty = f.ty.unwrap_or_else(|| "string".to_owned());
            let identity = f.is_identity || ty == "identity";
            let read_only = f.read_only && ty != "treePath";
            (
                f.reference_name,
                FieldInfo {
                    ty,
                    read_only,
                    identity,
                },
            )
        })
        .collect()
}

/// A work item type's fields from the type (names, `alwaysRequired`) and, where the server
/// has it, the type's field list (`defaultValue`, `allowedValues`). A field is required of the
/// caller only when the type says `alwaysRequired`, it is writable, it has no default and the
/// server does not fill it in itself. Without the type's field list (servers before 4.1) the
/// defaults are unknown, so only the title is demanded and the server's rule error names any
/// other field it misses.
pub(crate) fn type_fields(
    ty: &TypeJson,
    details: Option<&List<FieldInstanceJson>>,
    ftypes: &FieldTypes,
) -> Result<BTreeMap<String, FieldMeta>> {
    let instances = ty
        .field_instances
        .as_ref()
        .or(ty.fields.as_ref())
        .ok_or_else(|| Error::protocol("fieldInstances", "the work item type lists no fields"))?;
    let detail: HashMap<&str, &FieldInstanceJson> = details
        .into_iter()
        .flat_map(|d| &d.value)
        .map(|f| (f.reference_name.as_str(), f))
        .collect();
    let mut fields = BTreeMap::new();
    for f in instances {
        let r = f.reference_name.as_str();
        let info = ftypes.get(r).cloned().unwrap_or(FieldInfo {
            ty: "string".into(),
            read_only: false,
            identity: false,
        });
        let d = detail.get(r).copied();
        // The type's field list where it has the member, else the type's own entry.
        let allowed_values = d
            .and_then(|d| d.allowed_values.as_ref())
            .or(f.allowed_values.as_ref());
        let default_value = d
            .and_then(|d| d.default_value.as_ref())
            .or(f.default_value.as_ref());
        let always = d
            .and_then(|d| d.always_required.as_ref())
            .or(f.always_required.as_ref())
            .and_then(Value::as_bool)
            .unwrap_or(false);
        // Identities list people as objects; only plain values make a choice list.
        let allowed = if info.identity {
            Vec::new()
        } else {
            allowed_values
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| match v {
                            Value::String(s) => Some(s.clone()),
                            Value::Number(n) => Some(n.to_string()),
                            _ => None,
                        })
                        .collect()
                })
                .unwrap_or_default()
        };
        let has_default = default_value.is_some_and(|v| !v.is_null());
        fields.insert(
            r.to_owned(),
            FieldMeta {
                name: f.name.clone().unwrap_or_else(|| r.to_owned()),
                required: always
                    && !info.read_only
                    && !has_default
                    && !SERVER_FILLED.contains(&r)
                    && (details.is_some() || r == "System.Title"),
                ty: info.ty,
                identity: info.identity,
                read_only: info.read_only,
                allowed,
            },
        );
    }
    Ok(fields)
}

/// The JSON a field is written with; `None` for a value that clears the field.
pub(crate) fn to_wire(meta: &FieldMeta, name: &FieldName, v: &FieldValue) -> Result<Option<Value>> {
    Ok(Some(match v {
        FieldValue::Null => return Ok(None),
        FieldValue::Bool(b) => json!(b),
        FieldValue::Int(i) => json!(i),
        FieldValue::Float(x) => json!(x),
        FieldValue::Choice(s) if meta.ty == "integer" && !meta.identity => {
            json!(s.parse::<i64>().map_err(|_| Error::invalid_input(
                name.clone(),
                s,
                "the field holds integers"
            ))?)
        }
        FieldValue::Text(s) | FieldValue::Html(s) | FieldValue::Choice(s) => json!(s),
        FieldValue::Date(d) => json!(d.format("%Y-%m-%dT00:00:00Z").to_string()),
        FieldValue::DateTime(t) => json!(fmt_time(*t)),
        FieldValue::Person(p) => {
            let unique = p.email.clone().or_else(|| p.login.clone());
            json!(match (&p.display_name, unique) {
                (Some(d), Some(u)) => format!("{d} <{u}>"),
                (None, Some(u)) => u,
                (Some(d), None) => d.clone(),
                (None, None) =>
                    return Err(Error::invalid_input(
                        name.clone(),
                        p,
                        "a person needs a login, an email or a name"
                    )),
            })
        }
        FieldValue::MultiChoice(v) => json!(v.join("; ")),
        FieldValue::Reference(r) => json!(r.id),
        FieldValue::Url(u) => json!(u.as_str()),
    }))
}
