//! Writes: the checked PATCH and POST, the Batch API of `write_many`, the after-the-fact sequence check (ADR 0011).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A Batch API sub-request: its id, method, URL and body.
pub(crate) type SubRequest = (String, &'static str, String, Option<Value>);

impl ServiceNowRepository {
    /// Checks and encodes the fields of a write.
    pub(crate) async fn body_of(
        &self,
        table: &ItemType,
        meta: &TableMeta,
        fields: &FieldMap,
    ) -> Result<Map<String, Value>> {
        let mut body = Map::new();
        for (name, value) in fields {
            meta::check_write(table, meta, name, value)?;
            let wire = match value {
                FieldValue::Person(p) => self.person_id(name, p).await?,
                other => to_wire(name, other)?,
            };
            body.insert(name.to_string(), Value::String(wire));
        }
        Ok(body)
    }

    pub(crate) fn check_initial_state(&self, table: &ItemType, fields: &FieldMap) -> Result<()> {
        if let Some(wf) = self.workflow(table)
            && !wf.initial.is_empty()
            && let Some(state) = fields
                .get(wf.state_field.as_str())
                .and_then(FieldValue::as_str)
            && !wf.initial.iter().any(|s| s == state)
        {
            return Err(Error::invalid_input(
                wf.state_field.clone(),
                state,
                format!(
                    "a new {table} must start in one of: {}",
                    wf.initial.join(", ")
                ),
            ));
        }
        Ok(())
    }

    /// A Batch API round for `requests` (id → (method, url, body)); retries unserviced ones up
    /// to three times. Returns id → (status, body).
    pub(crate) async fn batch(
        &self,
        requests: Vec<SubRequest>,
    ) -> Result<HashMap<String, (u16, Vec<u8>)>> {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut pending = requests;
        let mut out = HashMap::new();
        for _ in 0..3 {
            if pending.is_empty() {
                break;
            }
            let bodies: Vec<Option<String>> = pending
                .iter()
                .map(|(.., body)| body.as_ref().map(|b| b64.encode(b.to_string())))
                .collect();
            let rest = pending
                .iter()
                .zip(bodies)
                .map(|((id, method, url, _), body)| RestRequest {
                    id,
                    method,
                    url,
                    headers: [
                        NameValue {
                            name: "Content-Type",
                            value: "application/json",
                        },
                        NameValue {
                            name: "Accept",
                            value: "application/json",
                        },
                    ],
                    exclude_response_headers: true,
                    body,
                })
                .collect();
            let batch_id = format!("workbridge-{}", Utc::now().timestamp_micros());
            let resp = self
                .client
                .post("api/now/v1/batch")
                .json(&BatchRequest {
                    batch_request_id: &batch_id,
                    rest_requests: rest,
                })
                .operation("write_many")
                .send()
                .await?;
            let body: BatchResponse = resp
                .json()
                .map_err(|e| e.with_operation("write_many").with_system(self))?;
            for (i, s) in body.serviced_requests.into_iter().enumerate() {
                let decoded = match s.body {
                    Some(b) => b64.decode(b).map_err(|_| {
                        Error::protocol(
                            format!("serviced_requests[{i}].body"),
                            "the body is not base64",
                        )
                    })?,
                    None => Vec::new(),
                };
                out.insert(s.id, (s.status_code, decoded));
            }
            pending.retain(|(id, ..)| !out.contains_key(id));
        }
        Ok(out)
    }

    pub(crate) async fn prepare(
        &self,
        w: &Write,
        i: usize,
        versions: &HashMap<(ItemType, ItemId), Option<WorkItem>>,
    ) -> Result<(String, &'static str, String, Option<Value>, ItemType)> {
        let mut params = "sysparm_display_value=all&sysparm_exclude_reference_link=true".to_owned();
        if let Some(f) = Self::projection(answer_fields(w)) {
            params.push_str("&sysparm_fields=");
            params.push_str(&f.join(","));
        }
        match w {
            Write::Create {
                item_type,
                fields,
                options,
            } => {
                let meta = self.table_meta(item_type).await?;
                self.check_initial_state(item_type, fields)?;
                let mut body = self.body_of(item_type, &meta, fields).await?;
                if let Some(k) = &options.correlation {
                    body.insert("correlation_id".into(), Value::String(k.to_string()));
                    body.insert(
                        "correlation_display".into(),
                        Value::String(self.config.correlation_display.clone()),
                    );
                }
                Ok((
                    format!("w{i}"),
                    "POST",
                    format!("/api/now/table/{item_type}?{params}"),
                    Some(Value::Object(body)),
                    item_type.clone(),
                ))
            }
            Write::Update {
                item_type,
                id,
                changes,
                options,
            } => {
                let meta = self.table_meta(item_type).await?;
                let current = versions
                    .get(&(item_type.clone(), id.clone()))
                    .cloned()
                    .flatten();
                if let Some(cur) = &current {
                    self.check_update(item_type, cur, changes, options)?;
                } else if versions.contains_key(&(item_type.clone(), id.clone())) {
                    return Err(Error::not_found(item_type, id));
                }
                let body = self.body_of(item_type, &meta, changes).await?;
                Ok((
                    format!("w{i}"),
                    "PATCH",
                    format!("/api/now/table/{item_type}/{id}?{params}"),
                    Some(Value::Object(body)),
                    item_type.clone(),
                ))
            }
            _ => Err(Error::unsupported("write_many", "unknown write")),
        }
    }

    pub(crate) fn check_update(
        &self,
        table: &ItemType,
        current: &WorkItem,
        changes: &FieldMap,
        o: &UpdateOptions,
    ) -> Result<()> {
        o.check_version(current, "sys_mod_count")?;
        if let Some(wf) = self.workflow(table) {
            wf.check_update(current, changes)?;
        }
        Ok(())
    }

    pub(crate) fn needs_current(
        &self,
        table: &ItemType,
        changes: &FieldMap,
        o: &UpdateOptions,
    ) -> bool {
        (o.if_version.is_some() && self.config.version_check == VersionCheck::ReadBefore)
            || self
                .workflow(table)
                .is_some_and(|wf| changes.contains(wf.state_field.as_str()))
    }

    pub(crate) async fn do_create(
        &self,
        table: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let meta = self.table_meta(table).await?;
        self.check_initial_state(table, fields)?;
        let mut body = self.body_of(table, &meta, fields).await?;
        if let Some(k) = &opts.correlation {
            body.insert("correlation_id".into(), Value::String(k.to_string()));
            body.insert(
                "correlation_display".into(),
                Value::String(self.config.correlation_display.clone()),
            );
        }
        let resp = self
            .client
            .post(&format!("api/now/table/{table}"))
            .query(&Self::read_params(
                Self::projection(opts.answer_fields.as_ref()).as_deref(),
            ))
            .json(&body)
            .operation("create")
            .send()
            .await?;
        let mut item = self.one_item("create", table, &meta, resp).await?;
        item.partial = opts.answer_fields.is_some();
        Ok(item)
    }

    pub(crate) async fn do_update(
        &self,
        table: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        let meta = self.table_meta(table).await?;
        let body = self.body_of(table, &meta, changes).await?;
        let mut checked = None;
        if self.needs_current(table, changes, opts) {
            let current = self
                .get_many(table, std::slice::from_ref(id), &GetOptions::default())
                .await?
                .pop()
                .flatten()
                .ok_or_else(|| Error::not_found(table, id))?;
            self.check_update(table, &current, changes, opts)?;
            checked = Some(current.version);
        }
        let resp = self
            .client
            .request(Method::PATCH, &format!("api/now/table/{table}/{id}"))
            .query(&Self::read_params(
                Self::projection(opts.answer_fields.as_ref()).as_deref(),
            ))
            .json(&body)
            .operation("update")
            .send()
            .await?;
        let mut item = self.one_item("update", table, &meta, resp).await?;
        item.partial = opts.answer_fields.is_some();
        // Grown by more than one since the version read (here, or by the caller): another
        // update came in between (ADR 0011, ADR 0020).
        match checked.as_ref().or(opts.if_version.as_ref()) {
            Some(before) => workbridge_core::written_in_sequence("sys_mod_count", before, item),
            None => Ok(item),
        }
    }

    /// The versions of many records in one Batch API request: its GET sub-requests read
    /// `read_batch` ids each (`sys_idIN`), their `sys_id` and counts only.
    async fn versions_in_one_batch(
        &self,
        table: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self.table_meta(table).await?;
        let fields = MEMBER_FIELDS.join(",");
        let reads = ids
            .chunks(self.config.read_batch)
            .enumerate()
            .map(|(n, chunk)| {
                let list = chunk
                    .iter()
                    .map(|i| q(i.as_str()))
                    .collect::<Vec<_>>()
                    .join(",");
                (
                    format!("v{n}"),
                    "GET",
                    format!(
                        "/api/now/table/{table}?sysparm_query=sys_idIN{list}&sysparm_limit={}&sysparm_fields={fields}&sysparm_display_value=all&sysparm_exclude_reference_link=true",
                        chunk.len()
                    ),
                    None,
                )
            })
            .collect::<Vec<_>>();
        let n = reads.len();
        let answers = self.batch(reads).await?;
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        for k in 0..n {
            let key = format!("v{k}");
            let (status, body) = answers.get(&key).ok_or_else(|| {
                Error::new(
                    ErrorKind::Unavailable,
                    "the Batch API did not service a read of versions after 3 tries",
                )
                .with_operation("write_many")
                .with_system(self)
            })?;
            if !(200..300).contains(status) {
                return Err(sub_request_error(*status, body)
                    .with_operation("write_many")
                    .with_system(self));
            }
            let list: ResultList = serde_json::from_slice(body).map_err(|e| {
                Error::protocol(
                    format!("serviced_requests[{key}].body"),
                    format!("the batched read is not a list of records: {e}"),
                )
                .with_operation("write_many")
                .with_system(self)
            })?;
            for (i, rec) in list.result.iter().enumerate() {
                let item = self
                    .record_to_item(table, &meta, rec, &format!("result[{i}]"), true)
                    .map_err(|e| e.with_operation("write_many").with_system(self))?;
                found.insert(item.id.to_string(), item);
            }
        }
        Ok(ids.iter().map(|id| found.remove(id.as_str())).collect())
    }

    pub(crate) async fn do_write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        // Current versions for updates that need a check, one read per table.
        let mut by_table: BTreeMap<ItemType, Vec<ItemId>> = BTreeMap::new();
        for w in writes {
            if let Write::Update {
                item_type,
                id,
                changes,
                options,
            } = w
                && self.needs_current(item_type, changes, options)
            {
                by_table
                    .entry(item_type.clone())
                    .or_default()
                    .push(id.clone());
            }
        }
        let mut versions: HashMap<(ItemType, ItemId), Option<WorkItem>> = HashMap::new();
        for (t, ids) in by_table {
            let workflow = writes.iter().any(|w| {
                matches!(w, Write::Update { item_type, changes, .. }
                    if *item_type == t && self.workflow(&t).is_some_and(|wf| changes.contains(wf.state_field.as_str())))
            });
            let got = if workflow || ids.len() <= self.config.read_batch {
                // Whole records where a transition is checked; one read otherwise.
                let opts = if workflow {
                    GetOptions::default()
                } else {
                    GetOptions::default().fields(Vec::<FieldName>::new())
                };
                self.get_many(&t, &ids, &opts).await?
            } else {
                self.versions_in_one_batch(&t, &ids).await?
            };
            versions.extend(
                ids.into_iter()
                    .zip(got)
                    .map(|(id, item)| ((t.clone(), id), item)),
            );
        }
        let mut results: Vec<Option<Result<WorkItem>>> = Vec::with_capacity(writes.len());
        let mut requests = Vec::new();
        for (i, w) in writes.iter().enumerate() {
            match self.prepare(w, i, &versions).await {
                Ok((id, method, url, body, t)) => {
                    requests.push((id, method, url, body, t, i));
                    results.push(None);
                }
                Err(e) => results.push(Some(Err(e.with_operation("write_many").with_system(self)))),
            }
        }
        // The call's Batch API requests in flight together, as many as the client allows.
        let batches: Vec<Vec<SubRequest>> = requests
            .chunks(self.config.write_batch)
            .map(|chunk| {
                chunk
                    .iter()
                    .map(|(id, m, u, b, _, _)| (id.clone(), *m, u.clone(), b.clone()))
                    .collect()
            })
            .collect();
        let sends: Vec<_> = batches.into_iter().map(|b| self.batch(b)).collect();
        let answered: Vec<_> = futures::stream::iter(sends)
            .buffered(self.concurrency())
            .collect()
            .await;
        for (chunk, answers) in requests.chunks(self.config.write_batch).zip(answered) {
            let answers = answers?;
            for (id, _, _, _, t, i) in chunk {
                let r = match answers.get(id) {
                    None => Err(Error::new(
                        ErrorKind::Unavailable,
                        "the Batch API did not service this request after 3 tries",
                    )),
                    Some((status, body)) if (200..300).contains(status) => {
                        let meta = self.table_meta(t).await?;
                        serde_json::from_slice::<ResultOne>(body)
                            .map_err(|e| {
                                Error::protocol(
                                    "body",
                                    format!("the batched answer is not a record: {e}"),
                                )
                            })
                            .and_then(|one| {
                                let projected = answer_fields(&writes[*i]).is_some();
                                self.record_to_item(t, &meta, &one.result, "result", projected)
                            })
                    }
                    Some((status, body)) => Err(sub_request_error(*status, body)),
                };
                let r = match (r, &writes[*i]) {
                    (
                        Ok(item),
                        Write::Update {
                            item_type,
                            id,
                            options,
                            ..
                        },
                    ) => {
                        let read = versions
                            .get(&(item_type.clone(), id.clone()))
                            .and_then(|v| v.as_ref().map(|i| &i.version));
                        match read.or(options.if_version.as_ref()) {
                            Some(before) => {
                                workbridge_core::written_in_sequence("sys_mod_count", before, item)
                            }
                            None => Ok(item),
                        }
                    }
                    (r, _) => r,
                };
                results[*i] = Some(r.map_err(|e| e.with_operation("write_many").with_system(self)));
            }
        }
        let mut out: Vec<Result<WorkItem>> = results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "write not processed")))
            })
            .collect();
        let mut ok: Vec<WorkItem> = out
            .iter()
            .filter_map(|r| r.as_ref().ok().cloned())
            .collect();
        self.resolve_persons(&mut ok).await?;
        let mut ok = ok.into_iter();
        for r in &mut out {
            if r.is_ok()
                && let Some(item) = ok.next()
            {
                *r = Ok(item);
            }
        }
        Ok(out)
    }
}

/// The fields a write asks to be answered with, if it narrows its answer.
fn answer_fields(w: &Write) -> Option<&Vec<FieldName>> {
    match w {
        Write::Create { options, .. } => options.answer_fields.as_ref(),
        Write::Update { options, .. } => options.answer_fields.as_ref(),
        _ => None,
    }
}

/// The error a Batch API sub-request answered, read as the Table API's own.
fn sub_request_error(status: u16, body: &[u8]) -> Error {
    error::parse_error(
        workbridge_http::StatusCode::from_u16(status)
            .unwrap_or(workbridge_http::StatusCode::BAD_GATEWAY),
        &workbridge_http::header::HeaderMap::new(),
        body,
    )
}
