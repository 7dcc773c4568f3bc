//! Writes: PUT and POST of entities, one by one or in bulk, their versions checked; a
//! versioned entity checked out and in.

#[allow(clippy::wildcard_imports)]
use super::*;
use workbridge_core::Write;
use workbridge_http::StatusCode;

/// An entity's fields, encoded to write.
type Encoded = Vec<(String, Values)>;

/// Each write's result, once every one has been given its own.
fn processed(results: Vec<Option<Result<WorkItem>>>) -> Vec<Result<WorkItem>> {
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(Error::new(ErrorKind::Unexpected, "write not processed"))))
        .collect()
}

/// `item` with only the fields asked for, where some were (ALM answers whole entities where
/// `fields=` cannot narrow the answer).
pub(crate) fn narrow(mut item: WorkItem, keep: Option<&[workbridge_core::FieldName]>) -> WorkItem {
    if let Some(keep) = keep {
        item.fields = std::mem::take(&mut item.fields)
            .into_iter()
            .filter(|(k, _)| keep.contains(k))
            .collect();
        item.partial = true;
    }
    item
}

/// `item` as an update answered it, checked against the version the update followed (when
/// known): a `ver-stamp` grown by more than one is a conflict after the fact.
fn in_sequence(before: Option<&Version>, item: WorkItem) -> Result<WorkItem> {
    match before {
        Some(before) => workbridge_core::written_in_sequence("ver-stamp", before, item),
        None => Ok(item),
    }
}

impl AlmRepository {
    /// Whether an update is checked on the entity as it is now: its version, where versions
    /// are read before writing (`VersionCheck::ReadBefore`), or the state it leaves, where
    /// the workflow checks it.
    fn needs_current(&self, t: &ItemType, changes: &FieldMap, opts: &UpdateOptions) -> bool {
        (self.config.version_check == VersionCheck::ReadBefore && opts.if_version.is_some())
            || self
                .workflow(t)
                .is_some_and(|wf| changes.contains(wf.state_field.as_str()))
    }

    /// The entity as the caller's previous write was answered with a moment ago
    /// ([`UpdateOptions::answered`]), where it serves to check an update in place of a read:
    /// at the version the update expects, with the workflow's state field where the update
    /// changes the state.
    fn answered<'a>(
        &self,
        t: &ItemType,
        changes: &FieldMap,
        opts: &'a UpdateOptions,
    ) -> Option<&'a WorkItem> {
        match self.workflow(t) {
            Some(wf) if changes.contains(wf.state_field.as_str()) => {
                opts.answered_at_version(&[wf.state_field.as_str()])
            }
            _ => opts.answered_at_version(&[]),
        }
    }

    /// Checks an update against the entity as it is now (`if_version`, the workflow's
    /// transition): the version its answer must follow.
    fn check_current(
        &self,
        t: &ItemType,
        current: &WorkItem,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<Version> {
        opts.check_version(current, "ver-stamp")?;
        if let Some(wf) = self.workflow(t) {
            wf.check_update(current, changes)?;
        }
        Ok(current.version.clone())
    }

    /// Writes encoded fields to an entity (`PUT`) and parses the entity the server answers.
    pub(crate) async fn put_entity(
        &self,
        op: &'static str,
        t: &ItemType,
        id: &ItemId,
        fields: &[(String, Values)],
    ) -> Result<Entity> {
        let resp = self
            .call(
                op,
                Method::PUT,
                &self.entity_path(t, id)?,
                &[],
                Some(encode(self.config.format, &entity_type(t.as_str()), fields)),
            )
            .await?;
        parse_entity(self.config.format, &resp.body)
    }

    pub(crate) fn versioned(&self, t: &ItemType) -> bool {
        self.config.versioned.iter().any(|v| v == t.as_str())
    }

    /// Runs `f` with the entity locked (or checked out), releasing it whatever happens.
    pub(crate) async fn with_lock<T, F, Fut>(
        &self,
        op: &'static str,
        t: &ItemType,
        id: &ItemId,
        f: F,
    ) -> Result<T>
    where
        F: FnOnce() -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let path = self.entity_path(t, id)?;
        let (take, release) = if self.versioned(t) {
            (
                format!("{path}/versions/check-out"),
                (Method::POST, format!("{path}/versions/check-in")),
            )
        } else {
            (
                format!("{path}/lock"),
                (Method::DELETE, format!("{path}/lock")),
            )
        };
        self.call(op, Method::POST, &take, &[], None)
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let result = f().await;
        let released = self.call(op, release.0, &release.1, &[], None).await;
        match (result, released) {
            (Ok(v), Ok(_)) => Ok(v),
            (Ok(_), Err(e)) => Err(e.with_item(t.clone(), id.clone())),
            (Err(e), _) => Err(e),
        }
    }

    /// The encoded fields of a new entity: checked (a workflow's initial state) and with the
    /// correlation key in its field.
    async fn create_body(
        &self,
        t: &ItemType,
        meta: &Meta,
        fields: &FieldMap,
        opts: &CreateOptions,
        offset: TimeDelta,
    ) -> Result<Encoded> {
        let mut body = self.encode_fields(t, meta, fields, offset)?;
        if let Some(k) = &opts.correlation {
            let field = self.correlation_name(meta).map_err(|e| {
                if e.kind() == ErrorKind::Unsupported {
                    Error::config(
                        "a correlation key was given but no correlation field is configured",
                    )
                } else {
                    e
                }
            })?;
            body.retain(|(n, _)| *n != field);
            body.push((field, Some(vec![k.to_string()])));
        }
        if let Some(wf) = self.workflow(t)
            && let Some(state) = fields
                .get(wf.state_field.as_str())
                .and_then(FieldValue::as_str)
            && !wf.initial.is_empty()
            && !wf.initial.iter().any(|i| i == state)
        {
            return Err(Error::invalid_input(
                wf.state_field.clone(),
                state,
                format!(
                    "a new entity must start in one of: {}",
                    wf.initial.join(", ")
                ),
            ));
        }
        Ok(body)
    }

    pub(crate) async fn do_create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let body = self.create_body(t, &meta, fields, opts, offset).await?;
        let resp = self
            .call(
                "create",
                Method::POST,
                &self.coll_path(t),
                &[],
                Some(encode(self.config.format, &entity_type(t.as_str()), &body)),
            )
            .await?;
        let e = parse_entity(self.config.format, &resp.body)?;
        self.to_item(t, &meta, &e, offset, "")
    }

    /// Creates in bulk — one collection `POST` per type and up to `bulk_size` entities, each
    /// with its own result (a partial success answers 409, a total failure 500, both with an
    /// entry per entity); updates of entities that are not versioned likewise, after one read
    /// of their versions (see `bulk_update`); versioned ones one by one, each checked out.
    pub(crate) async fn do_write_many(&self, writes: &[Write]) -> Result<Vec<Result<WorkItem>>> {
        let mut out: Vec<Option<Result<WorkItem>>> = writes.iter().map(|_| None).collect();
        let mut creates: BTreeMap<ItemType, Vec<(usize, Encoded)>> = BTreeMap::new();
        let mut updates: BTreeMap<ItemType, Vec<usize>> = BTreeMap::new();
        for (i, w) in writes.iter().enumerate() {
            match w {
                Write::Create {
                    item_type,
                    fields,
                    options,
                } => {
                    let prepared = match self.meta(item_type).await {
                        Ok(meta) => {
                            let offset = self.offset().await?;
                            self.create_body(item_type, &meta, fields, options, offset)
                                .await
                        }
                        Err(e) => Err(e),
                    };
                    match prepared {
                        Ok(body) => creates
                            .entry(item_type.clone())
                            .or_default()
                            .push((i, body)),
                        Err(e) => out[i] = Some(Err(e)),
                    }
                }
                Write::Update { item_type, .. } if !self.versioned(item_type) => {
                    updates.entry(item_type.clone()).or_default().push(i);
                }
                Write::Update {
                    item_type,
                    id,
                    changes,
                    options,
                } => out[i] = Some(self.do_update(item_type, id, changes, options).await),
                _ => out[i] = Some(Err(Error::unsupported("write_many", "unknown write"))),
            }
        }
        for (t, list) in updates {
            if let [i] = list[..] {
                // One alone: as `update` does it.
                if let Write::Update {
                    item_type,
                    id,
                    changes,
                    options,
                } = &writes[i]
                {
                    out[i] = Some(self.do_update(item_type, id, changes, options).await);
                }
                continue;
            }
            for chunk in list.chunks(self.config.bulk_size.max(1)) {
                let results = self.bulk_update(&t, writes, chunk).await?;
                for (i, r) in chunk.iter().zip(results) {
                    out[*i] = Some(r);
                }
            }
        }
        for (t, list) in creates {
            for chunk in list.chunks(self.config.bulk_size.max(1)) {
                let bodies: Vec<Encoded> = chunk.iter().map(|(_, b)| b.clone()).collect();
                let results = self.bulk_create(&t, &bodies).await?;
                for ((i, _), r) in chunk.iter().zip(results) {
                    out[*i] = Some(r);
                }
            }
        }
        Ok(processed(out)
            .into_iter()
            .zip(writes)
            .map(|(r, w)| {
                r.map(|item| {
                    // ALM answers whole entities: each keeps what its caller asked for.
                    let keep = match w {
                        Write::Create { options, .. } => options.answer_fields.as_deref(),
                        Write::Update { options, .. } => options.answer_fields.as_deref(),
                        _ => None,
                    };
                    narrow(item, keep)
                })
                .map_err(|e| e.with_operation("write_many").with_system(self))
            })
            .collect())
    }

    /// One bulk `POST` of new entities of `t`: a result per entity, in order.
    async fn bulk_create(&self, t: &ItemType, bodies: &[Encoded]) -> Result<Vec<Result<WorkItem>>> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let entries = self.bulk_request(Method::POST, t, bodies).await?;
        Ok(entries
            .into_iter()
            .enumerate()
            .map(|(i, e)| {
                e.and_then(|e| self.to_item(t, &meta, &e, offset, &format!("entities[{i}]")))
            })
            .collect())
    }

    /// Updates of several entities of `t` in one bulk `PUT`. ALM has no conditional write and no
    /// lock for many entities at once: as ServiceNow's (ADR 0011), the versions are read just
    /// before (one collection read, consecutive ids as ranges) and checked — unless
    /// [`VersionCheck::AfterWrite`] leaves that out for an update whose state the workflow need
    /// not check — and the answer's `ver-stamp` tells whether another update came between
    /// (grown by more than one: a conflict after the fact). An entity another session holds
    /// locked fails on its own (`qccore.lock-failure`, a conflict).
    async fn bulk_update(
        &self,
        t: &ItemType,
        writes: &[Write],
        chunk: &[usize],
    ) -> Result<Vec<Result<WorkItem>>> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let asked: Vec<(&ItemId, &FieldMap, &UpdateOptions)> = chunk
            .iter()
            .filter_map(|&i| match &writes[i] {
                Write::Update {
                    id,
                    changes,
                    options,
                    ..
                } => Some((id, changes, options)),
                _ => None,
            })
            .collect();
        let ids: Vec<ItemId> = asked.iter().map(|(id, ..)| (*id).clone()).collect();
        // Checked on the entity as it is now: as the caller's previous write was answered a
        // moment ago where it says so, else read.
        let needs: Vec<bool> = asked
            .iter()
            .map(|(_, changes, options)| {
                self.needs_current(t, changes, options)
                    && self.answered(t, changes, options).is_none()
            })
            .collect();
        let wanted: Vec<ItemId> = ids
            .iter()
            .zip(&needs)
            .filter(|(_, n)| **n)
            .map(|(id, _)| id.clone())
            .collect();
        let mut current = if wanted.is_empty() {
            Vec::new()
        } else {
            self.do_get_many(t, &wanted, &GetOptions::default()).await?
        }
        .into_iter();
        let mut out: Vec<Option<Result<WorkItem>>> = asked.iter().map(|_| None).collect();
        let mut sent: Vec<(usize, Option<Version>)> = Vec::new();
        let mut bodies: Vec<Encoded> = Vec::new();
        for (k, ((id, changes, options), need)) in asked.iter().zip(&needs).enumerate() {
            let given = self
                .needs_current(t, changes, options)
                .then(|| self.answered(t, changes, options))
                .flatten();
            let checked = if let Some(cur) = given {
                self.check_current(t, cur, changes, options).map(Some)
            } else if *need {
                let Some(cur) = current.next().flatten() else {
                    out[k] = Some(Err(Error::not_found(t, id)));
                    continue;
                };
                self.check_current(t, &cur, changes, options).map(Some)
            } else {
                // Checked on the answer alone, against the caller's version.
                Ok(options.if_version.clone())
            };
            match checked.and_then(|before| {
                self.encode_fields(t, &meta, changes, offset)
                    .map(|body| (before, body))
            }) {
                Ok((before, mut body)) => {
                    body.push(("id".to_owned(), Some(vec![id.to_string()])));
                    sent.push((k, before));
                    bodies.push(body);
                }
                Err(e) => out[k] = Some(Err(e)),
            }
        }
        if !bodies.is_empty() {
            let entries = self.bulk_request(Method::PUT, t, &bodies).await?;
            for ((k, before), e) in sent.into_iter().zip(entries) {
                let item = e
                    .and_then(|e| self.to_item(t, &meta, &e, offset, &format!("entities[{k}]")))
                    .and_then(|item| in_sequence(before.as_ref(), item))
                    .map_err(|e| e.with_item(t.clone(), ids[k].clone()));
                out[k] = Some(item);
            }
        }
        Ok(processed(out))
    }

    /// One bulk request (`POST` creates, `PUT` updates) of entities of `t`: each entity's
    /// result, in the order sent.
    async fn bulk_request(
        &self,
        method: Method,
        t: &ItemType,
        bodies: &[Encoded],
    ) -> Result<Vec<Result<Entity>>> {
        let format = self.config.format;
        let media = format.media();
        let resp = self
            .client
            .request(method, &self.coll_path(t))
            // Neither a bulk PUT nor a bulk POST carries a condition: one that may have
            // reached the server is not sent again (see `unconditional`).
            .idempotent(false)
            .header(ACCEPT, media)
            .body(
                encode_collection(format, &entity_type(t.as_str()), bodies),
                &format!("{media};type=collection"),
            )
            // A partial success is an answer, and so is a total failure that lists each
            // entity's error; neither may be sent again.
            .answers(&[StatusCode::CONFLICT, StatusCode::INTERNAL_SERVER_ERROR])
            .operation("write_many")
            .send()
            .await?;
        let entries: Vec<Result<Entity>> = if resp.status.is_success() {
            let (entities, _) = parse_collection(format, &resp.body)?;
            entities.into_iter().map(Ok).collect()
        } else {
            match parse_bulk_failure(format, &resp.body)? {
                Some(entries) => entries
                    .into_iter()
                    .map(|e| match e {
                        BulkEntry::Written(entity) => Ok(entity),
                        BulkEntry::Failed(body) => Err(error::parse_error(
                            StatusCode::BAD_REQUEST,
                            &workbridge_http::header::HeaderMap::new(),
                            &body,
                        )),
                    })
                    .collect(),
                // Another failure: which entities were written is unknown.
                None => {
                    return Err(error::parse_error(
                        resp.status,
                        &workbridge_http::header::HeaderMap::new(),
                        &resp.body,
                    )
                    .with_maybe_applied(true)
                    .with_operation("write_many"));
                }
            }
        };
        if entries.len() != bodies.len() {
            return Err(Error::protocol(
                "entities",
                format!(
                    "the bulk write of {} entities answered {} results",
                    bodies.len(),
                    entries.len()
                ),
            )
            .with_maybe_applied(true)
            .with_operation("write_many"));
        }
        Ok(entries)
    }

    pub(crate) async fn do_update(
        &self,
        t: &ItemType,
        id: &ItemId,
        changes: &FieldMap,
        opts: &UpdateOptions,
    ) -> Result<WorkItem> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let body = self.encode_fields(t, &meta, changes, offset)?;
        if !self.versioned(t) {
            // No lock of our own: ALM's locks are optional, a PUT on an entity another session
            // holds locked fails (`qccore.lock-failure`, a conflict), and the version is held
            // as in a bulk update.
            let before = if self.needs_current(t, changes, opts) {
                match self.answered(t, changes, opts) {
                    Some(current) => Some(self.check_current(t, current, changes, opts)?),
                    None => {
                        let current = self.read(t, id).await?;
                        Some(self.check_current(t, &current, changes, opts)?)
                    }
                }
            } else {
                opts.if_version.clone()
            };
            let e = self.put_entity("update", t, id, &body).await?;
            let item = self.to_item(t, &meta, &e, offset, "")?;
            return in_sequence(before.as_ref(), item)
                .map_err(|e| e.with_item(t.clone(), id.clone()));
        }
        self.with_lock("update", t, id, || async {
            let current = self.read(t, id).await?;
            self.check_current(t, &current, changes, opts)?;
            let e = self.put_entity("update", t, id, &body).await?;
            self.to_item(t, &meta, &e, offset, "")
        })
        .await
    }
}
