//! Writes: PUT and POST of entities, under the entity's lock (or check-out, when versioned).

#[allow(clippy::wildcard_imports)]
use super::*;

impl AlmRepository {
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

    pub(crate) async fn do_create(
        &self,
        t: &ItemType,
        fields: &FieldMap,
        opts: &CreateOptions,
    ) -> Result<WorkItem> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let mut body = self.encode_fields(t, &meta, fields, offset)?;
        if let Some(k) = &opts.correlation {
            let field = self.correlation_name(&meta).map_err(|e| {
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
        self.with_lock("update", t, id, || async {
            let current = self.read(t, id).await?;
            opts.check_version(&current, "ver-stamp")?;
            if let Some(wf) = self.workflow(t) {
                wf.check_update(&current, changes)?;
            }
            let e = self.put_entity("update", t, id, &body).await?;
            self.to_item(t, &meta, &e, offset, "")
        })
        .await
    }
}
