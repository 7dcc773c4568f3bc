//! Comments and attachments.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AzureDevOpsRepository {
    pub(crate) async fn do_comments(&self, t: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        match self.config.server.comments_api() {
            Some(version) => {
                let mut out = Vec::new();
                let mut token: Option<String> = None;
                loop {
                    let mut q = vec![("order", "asc".to_owned()), ("$top", "200".to_owned())];
                    if let Some(tk) = &token {
                        q.push(("continuationToken", tk.clone()));
                    }
                    let resp = self
                        .call(
                            "comments",
                            Method::GET,
                            &self.project_path(&format!("workItems/{n}/comments")),
                            version,
                            &q,
                            None,
                        )
                        .await?;
                    let v: CommentList = resp.json()?;
                    for (i, c) in v.comments.into_iter().enumerate() {
                        let at = c.created_at().ok_or_else(|| {
                            Error::protocol(
                                format!("comments[{i}].createdDate"),
                                "missing or not a date-time",
                            )
                        })?;
                        let format = if c.format.as_deref() == Some("markdown") {
                            TextFormat::Plain
                        } else {
                            TextFormat::Html
                        };
                        let mut comment = Comment::new(
                            c.id.to_string(),
                            at,
                            c.text.unwrap_or_default(),
                            format,
                            Visibility::Public,
                        );
                        comment.author = c.created_by.as_ref().and_then(parse_person);
                        out.push(comment);
                    }
                    token = v.continuation_token.filter(|s| !s.is_empty());
                    if token.is_none() {
                        return Ok(out);
                    }
                }
            }
            None => {
                let v: List<Value> = self
                    .call_json(
                        "comments",
                        Method::GET,
                        // Collection level: before 5.0 updates have no project route.
                        &format!("_apis/wit/workItems/{n}/updates"),
                        &[],
                        None,
                    )
                    .await?;
                let mut out = Vec::new();
                for (i, u) in v.value.iter().enumerate() {
                    let Some(text) = u
                        .pointer("/fields/System.History/newValue")
                        .and_then(Value::as_str)
                    else {
                        continue;
                    };
                    let rev = u.get("rev").and_then(Value::as_u64).unwrap_or(0);
                    let at = u
                        .pointer("/fields/System.ChangedDate/newValue")
                        .and_then(date_time)
                        .ok_or_else(|| {
                            Error::protocol(
                                format!("value[{i}].fields.System.ChangedDate"),
                                "missing",
                            )
                        })?;
                    let mut c = Comment::new(
                        format!("rev{rev}"),
                        at,
                        text,
                        TextFormat::Html,
                        Visibility::Public,
                    );
                    c.author = u.get("revisedBy").and_then(parse_person);
                    out.push(c);
                }
                Ok(out)
            }
        }
    }

    pub(crate) async fn do_add_comment(
        &self,
        t: &ItemType,
        id: &ItemId,
        c: &NewComment,
    ) -> Result<Comment> {
        self.capabilities.check_comment(c)?;
        if c.body.trim().is_empty() {
            return Err(
                Error::invalid_input("comment", "", "a comment needs a body")
                    .with_operation("add_comment"),
            );
        }
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        let html = match c.format {
            TextFormat::Html => c.body.clone(),
            _ => c
                .body
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\n', "<br>"),
        };
        match self.config.server.comments_api() {
            Some(version) => {
                let body = serde_json::to_vec(&NewCommentJson { text: &html }).unwrap_or_default();
                let resp = self
                    .call(
                        "add_comment",
                        Method::POST,
                        &self.project_path(&format!("workItems/{n}/comments")),
                        version,
                        &[],
                        Some((body, "application/json")),
                    )
                    .await
                    .map_err(|e| e.with_item(t.clone(), id.clone()))?;
                let v: CommentJson = resp.json()?;
                let at = v.created_at().unwrap_or_else(Utc::now);
                let mut comment = Comment::new(
                    v.id.to_string(),
                    at,
                    html,
                    TextFormat::Html,
                    Visibility::Public,
                );
                comment.author = v.created_by.as_ref().and_then(parse_person);
                Ok(comment)
            }
            None => {
                let ops = json!([{"op": "add", "path": "/fields/System.History", "value": html}]);
                let v: WorkItemJson = self
                    .call_json(
                        "add_comment",
                        Method::PATCH,
                        &format!("_apis/wit/workitems/{n}"),
                        &[],
                        Some((ops.to_string().into_bytes(), "application/json-patch+json")),
                    )
                    .await
                    .map_err(|e| e.with_item(t.clone(), id.clone()))?;
                let item = self.item_from(None, &v, "")?;
                Ok(Comment::new(
                    format!("rev{}", item.version),
                    item.changed_at,
                    html,
                    TextFormat::Html,
                    Visibility::Public,
                ))
            }
        }
    }

    pub(crate) async fn do_attachments(
        &self,
        t: &ItemType,
        id: &ItemId,
    ) -> Result<Vec<AttachmentMeta>> {
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        let v: WorkItemJson = self
            .call_json(
                "attachments",
                Method::GET,
                &format!("_apis/wit/workitems/{n}"),
                &[("$expand", "relations".into())],
                None,
            )
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        Ok(attached_files(t, id, &v))
    }

    /// The attachments of many items: their relations, 200 items per request.
    pub(crate) async fn do_attachments_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<AttachmentMeta>>> {
        let numbers: Vec<u64> = ids.iter().filter_map(number).collect();
        let items: HashMap<u64, WorkItemJson> = self
            .read_json("attachments_many", &numbers, None, None, Some("relations"))
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        Ok(ids
            .iter()
            .map(|id| {
                number(id)
                    .and_then(|n| items.get(&n))
                    .map(|v| attached_files(t, id, v))
                    .unwrap_or_default()
            })
            .collect())
    }

    /// The comments of many items: where the server counts them (`System.CommentCount`, with
    /// the comments API), the counts of 200 items per request, then the comments of the items
    /// that have any; before it, item by item.
    pub(crate) async fn do_comments_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<Comment>>> {
        let mut out = Vec::with_capacity(ids.len());
        if self.config.server.comments_api().is_none() {
            for id in ids {
                out.push(self.do_comments(t, id).await?);
            }
            return Ok(out);
        }
        let numbers: Vec<u64> = ids.iter().filter_map(number).collect();
        let fields = ["System.Id", "System.CommentCount"].map(String::from);
        let counts: HashMap<u64, Option<u64>> = self
            .read_json("comments_many", &numbers, Some(&fields), None, None)
            .await?
            .into_iter()
            .map(|v| {
                (
                    v.id,
                    v.fields.get("System.CommentCount").and_then(Value::as_u64),
                )
            })
            .collect();
        for id in ids {
            let count = number(id).and_then(|n| counts.get(&n));
            out.push(match count {
                // Gone since it was read, or known to have none.
                None | Some(Some(0)) => Vec::new(),
                // Some, or a server that did not say.
                Some(_) => self.do_comments(t, id).await?,
            });
        }
        Ok(out)
    }

    pub(crate) async fn do_download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let resp = self
            .call(
                "download",
                Method::GET,
                &format!("_apis/wit/attachments/{}", seg(&a.id)),
                self.config.server.api(),
                &[
                    ("fileName", a.file_name.clone()),
                    ("download", "true".into()),
                ],
                None,
            )
            .await?;
        Ok(resp.body)
    }

    pub(crate) async fn do_upload(
        &self,
        t: &ItemType,
        id: &ItemId,
        a: &NewAttachment,
    ) -> Result<AttachmentMeta> {
        self.capabilities.check_upload(a)?;
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        let v: AttachmentRef = self
            .call_json(
                "upload",
                Method::POST,
                &self.project_path("attachments"),
                &[("fileName", a.file_name.clone())],
                Some((a.data.to_vec(), "application/octet-stream")),
            )
            .await?;
        let url = v.url.as_str();
        let ops = json!([{"op": "add", "path": "/relations/-", "value": {"rel": "AttachedFile", "url": url, "attributes": {"comment": ""}}}]);
        self.call_json::<Value>(
            "upload",
            Method::PATCH,
            &format!("_apis/wit/workitems/{n}"),
            &[],
            Some((ops.to_string().into_bytes(), "application/json-patch+json")),
        )
        .await
        .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let aid = v.id.as_deref().unwrap_or_default();
        self.attachments(t, id)
            .await?
            .into_iter()
            .find(|m| m.id.eq_ignore_ascii_case(aid))
            .ok_or_else(|| {
                Error::protocol(
                    "relations",
                    "the attachment is not among the item's relations after linking it",
                )
            })
    }
}

/// The files attached to an item: its `AttachedFile` relations.
fn attached_files(t: &ItemType, id: &ItemId, v: &WorkItemJson) -> Vec<AttachmentMeta> {
    let mut out = Vec::new();
    for r in v.relations.iter().flatten() {
        if r.rel != "AttachedFile" {
            continue;
        }
        let aid = r
            .url
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .split('?')
            .next()
            .unwrap_or_default();
        let a = &r.attributes;
        let name = a.get("name").and_then(Value::as_str).unwrap_or(aid);
        let mut m = AttachmentMeta::new(aid, t.clone(), id.clone(), name);
        m.size = a.get("resourceSize").and_then(Value::as_u64);
        m.created_at = a.get("resourceCreatedDate").and_then(date_time);
        m.url = url::Url::parse(&r.url).ok();
        out.push(m);
    }
    out
}

/// A work item's number, from its id.
fn number(id: &ItemId) -> Option<u64> {
    id.as_str().parse().ok()
}
