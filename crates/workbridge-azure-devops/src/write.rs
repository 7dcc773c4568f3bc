//! Writes: JSON Patch documents for create and update, the `$batch` of `write_many`.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AzureDevOpsRepository {
    pub(crate) fn check_fields(
        &self,
        t: &ItemType,
        meta: &TypeMeta,
        fields: &FieldMap,
    ) -> Result<Vec<Value>> {
        let mut ops = Vec::new();
        for (name, value) in fields {
            let Some(m) = meta.fields.get(name.as_str()) else {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    format!("{t} has no field `{name}`"),
                ));
            };
            if m.read_only {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    "the field is read-only",
                ));
            }
            FieldDef::new(name.clone(), m.kind())
                .allowed(m.allowed.clone())
                .check(value)?;
            match to_wire(m, name, value)? {
                Some(v) => {
                    ops.push(json!({"op": "add", "path": format!("/fields/{name}"), "value": v}));
                }
                None => ops.push(json!({"op": "remove", "path": format!("/fields/{name}")})),
            }
        }
        Ok(ops)
    }

    pub(crate) fn correlation_ops(&self, fields: &FieldMap, key: &CorrelationKey) -> Vec<Value> {
        match &self.config.correlation_field {
            Some(f) => {
                vec![json!({"op": "add", "path": format!("/fields/{f}"), "value": key.as_str()})]
            }
            None => {
                let tag = format!("workbridge:{}", key.as_str().replace(';', "_"));
                let tags = match fields
                    .get("System.Tags")
                    .and_then(FieldValue::as_str)
                    .filter(|s| !s.is_empty())
                {
                    Some(existing) => format!("{existing}; {tag}"),
                    None => tag,
                };
                vec![json!({"op": "add", "path": "/fields/System.Tags", "value": tags})]
            }
        }
    }

    pub(crate) fn create_ops(
        &self,
        t: &ItemType,
        meta: &TypeMeta,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<Vec<Value>> {
        let mut ops = self.check_fields(t, meta, fields)?;
        if let Some(k) = &opts.correlation {
            ops.retain(|o| {
                !(self.config.correlation_field.is_none() && o["path"] == "/fields/System.Tags")
            });
            ops.extend(self.correlation_ops(fields, k));
        }
        if let Some(required) = meta
            .fields
            .iter()
            .find(|(n, m)| m.required && !fields.contains(n.as_str()))
        {
            return Err(Error::invalid_input(
                required.0.as_str(),
                "null",
                "the field is required",
            ));
        }
        Ok(ops)
    }

    pub(crate) fn update_ops(
        &self,
        t: &ItemType,
        meta: &TypeMeta,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<Vec<Value>> {
        let mut ops = Vec::new();
        if let Some(v) = &opts.if_version {
            let rev: u64 = v.as_str().parse().map_err(|_| {
                Error::invalid_input("if_version", v, "an Azure DevOps revision is a number")
            })?;
            ops.push(json!({"op": "test", "path": "/rev", "value": rev}));
        }
        ops.extend(self.check_fields(t, meta, changes)?);
        Ok(ops)
    }

    pub(crate) async fn finish_write(
        &self,
        op: &'static str,
        t: &ItemType,
        id: Option<&ItemId>,
        changes: &FieldMap,
        r: Result<WorkItemJson>,
    ) -> Result<WorkItem> {
        let meta = self.type_meta(t).await?;
        match r {
            Ok(v) => self
                .item_from(Some(&meta), &v, "")
                .map_err(|e| e.with_operation(op)),
            Err(e)
                if e.kind() == ErrorKind::InvalidInput
                    && e.field().is_some_and(|f| f.as_str() == "System.State") =>
            {
                let to = changes
                    .get("System.State")
                    .map(ToString::to_string)
                    .unwrap_or_default();
                let from = match id {
                    Some(id) => self
                        .get_many(t, std::slice::from_ref(id), &GetOptions::default())
                        .await?
                        .pop()
                        .flatten()
                        .and_then(|i| i.field("System.State").map(ToString::to_string))
                        .unwrap_or_default(),
                    None => String::new(),
                };
                Err(Error::invalid_transition(from, to, e.message().to_owned())
                    .with_operation(op)
                    .with_system(self))
            }
            Err(e) => Err(e),
        }
    }

    pub(crate) async fn do_create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let meta = self.type_meta(t).await?;
        let ops = self.create_ops(t, &meta, fields, opts)?;
        let r = self
            .call_json(
                "create",
                Method::POST,
                &self.project_path(&format!("workitems/${}", seg(&meta.name))),
                &[],
                Some((
                    serde_json::to_vec(&ops).unwrap_or_default(),
                    "application/json-patch+json",
                )),
            )
            .await;
        self.finish_write("create", t, None, fields, r).await
    }

    pub(crate) async fn do_update(
        &self,
        t: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        let meta = self.type_meta(t).await?;
        let ops = self.update_ops(t, &meta, changes, opts)?;
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        let r = self
            .call_json(
                "update",
                Method::PATCH,
                &format!("_apis/wit/workitems/{n}"),
                &[],
                Some((
                    serde_json::to_vec(&ops).unwrap_or_default(),
                    "application/json-patch+json",
                )),
            )
            .await;
        self.finish_write("update", t, Some(id), changes, r).await
    }

    pub(crate) async fn do_write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        let api = self.config.server.api();
        let mut results: Vec<Option<Result<WorkItem>>> = Vec::with_capacity(writes.len());
        let mut requests: Vec<(usize, ItemType, Value)> = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            let prepared = match w {
                Write::Create { item_type, fields, options } => match self.type_meta(item_type).await {
                    Ok(meta) => self.create_ops(item_type, &meta, fields, options).map(|ops| {
                        (item_type.clone(), json!({"method": "PATCH", "uri": format!("/{}/_apis/wit/workitems/${}?api-version={api}", seg(&self.config.project), seg(&meta.name)), "headers": {"Content-Type": "application/json-patch+json"}, "body": ops}))
                    }),
                    Err(e) => Err(e),
                },
                Write::Update { item_type, id, changes, options } => match self.type_meta(item_type).await {
                    Ok(meta) => self.update_ops(item_type, &meta, changes, options).map(|ops| {
                        (item_type.clone(), json!({"method": "PATCH", "uri": format!("/_apis/wit/workitems/{}?api-version={api}", seg(id.as_str())), "headers": {"Content-Type": "application/json-patch+json"}, "body": ops}))
                    }),
                    Err(e) => Err(e),
                },
                _ => Err(Error::unsupported("write_many", "unknown write")),
            };
            match prepared {
                Ok((t, req)) => {
                    requests.push((i, t, req));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.with_operation("write_many").with_system(self)))),
            }
        }
        for chunk in requests.chunks(BATCH) {
            let body: Vec<&Value> = chunk.iter().map(|(_, _, r)| r).collect();
            let v: List<BatchAnswer> = self
                .call_json(
                    "write_many",
                    Method::PATCH,
                    "_apis/wit/$batch",
                    &[],
                    Some((
                        serde_json::to_vec(&body).unwrap_or_default(),
                        "application/json",
                    )),
                )
                .await?;
            for (k, (i, t, _)) in chunk.iter().enumerate() {
                let r = match v.value.get(k) {
                    None => Err(Error::protocol(
                        format!("value[{k}]"),
                        "the batch response has fewer answers than requests",
                    )),
                    Some(answer) => {
                        let text = answer.body.as_deref().unwrap_or_default();
                        if (200..300).contains(&answer.code) {
                            let meta = self.type_meta(t).await?;
                            serde_json::from_str::<WorkItemJson>(text)
                                .map_err(|e| {
                                    Error::protocol(
                                        format!("value[{k}].body"),
                                        format!("not a work item: {e}"),
                                    )
                                })
                                .and_then(|v| {
                                    self.item_from(Some(&meta), &v, &format!("value[{k}].body"))
                                })
                        } else {
                            Err(error::parse_error(
                                StatusCode::from_u16(answer.code)
                                    .unwrap_or(StatusCode::BAD_GATEWAY),
                                &workbridge_http::header::HeaderMap::new(),
                                text.as_bytes(),
                            ))
                        }
                    }
                };
                results[*i] = Some(r.map_err(|e| e.with_operation("write_many").with_system(self)));
            }
        }
        Ok(results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "write not processed")))
            })
            .collect())
    }
}
