//! Comments (the journal) and attachments, and the attachment feed (ADR 0016).

#[allow(clippy::wildcard_imports)]
use super::*;

impl ServiceNowRepository {
    pub(crate) async fn journal(&self, id: &ItemId, elements: &str) -> Result<Vec<Comment>> {
        let query = format!(
            "element_id={}^elementIN{elements}^ORDERBYsys_created_on",
            q(id.as_str())
        );
        Ok(self
            .journal_rows("comments", &query)
            .await?
            .into_iter()
            .map(|(_, c)| c)
            .collect())
    }

    /// The journal entries a query selects, oldest first, each with its record's `sys_id`;
    /// page after page while pages come back full.
    async fn journal_rows(&self, op: &'static str, query: &str) -> Result<Vec<(String, Comment)>> {
        const PAGE: usize = 10_000;
        let fields = [
            "sys_id",
            "element",
            "element_id",
            "value",
            "sys_created_on",
            "sys_created_by",
        ]
        .map(String::from);
        let mut out = Vec::new();
        loop {
            let (rows, _) = self
                .list_at(
                    op,
                    "sys_journal_field",
                    query,
                    (PAGE, out.len()),
                    Some(&fields),
                    false,
                )
                .await?;
            let full = rows.len() >= PAGE;
            let base = out.len();
            for (i, r) in rows.iter().enumerate() {
                let path = format!("result[{}]", base + i);
                let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
                let at = parse_time(s("sys_created_on"), &format!("{path}.sys_created_on"))
                    .map_err(|e| e.with_operation(op).with_system(self))?;
                let visibility = match s("element") {
                    "work_notes" => Visibility::Internal,
                    _ => Visibility::Public,
                };
                let raw = s("value");
                let (body, format) = match raw
                    .strip_prefix("[code]")
                    .and_then(|b| b.strip_suffix("[/code]"))
                {
                    Some(html) => (html.to_owned(), TextFormat::Html),
                    None => (raw.to_owned(), TextFormat::Plain),
                };
                let mut c = Comment::new(s("sys_id"), at, body, format, visibility);
                c.author = Some(s("sys_created_by"))
                    .filter(|a| !a.is_empty())
                    .map(Person::login);
                out.push((s("element_id").to_owned(), c));
            }
            if !full {
                return Ok(out);
            }
        }
    }

    /// The comments of many records: one journal query per `read_batch` records.
    pub(crate) async fn do_comments_many(
        &self,
        _table: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<Comment>>> {
        let queries = ids.chunks(self.config.read_batch).map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|i| q(i.as_str())).collect();
            let query = format!(
                "element_idIN{}^elementINcomments,work_notes^ORDERBYsys_created_on",
                list.join(",")
            );
            async move { self.journal_rows("comments_many", &query).await }
        });
        let mut by_record: HashMap<String, Vec<Comment>> = HashMap::new();
        let mut lists =
            futures::stream::iter(queries.collect::<Vec<_>>()).buffered(self.concurrency());
        while let Some(rows) = lists.next().await {
            for (record, c) in rows? {
                by_record.entry(record).or_default().push(c);
            }
        }
        Ok(ids
            .iter()
            .map(|id| by_record.get(id.as_str()).cloned().unwrap_or_default())
            .collect())
    }

    /// The attachments of many records: one Attachment API query per `read_batch` records.
    pub(crate) async fn do_attachments_many(
        &self,
        table: &ItemType,
        ids: &[ItemId],
    ) -> Result<Vec<Vec<AttachmentMeta>>> {
        const PAGE: usize = 10_000;
        let queries = ids.chunks(self.config.read_batch).map(|chunk| {
            let list: Vec<String> = chunk.iter().map(|i| q(i.as_str())).collect();
            let query = format!(
                "table_name={}^table_sys_idIN{}^ORDERBYsys_created_on^ORDERBYsys_id",
                q(table.as_str()),
                list.join(",")
            );
            async move {
                let mut out = Vec::new();
                loop {
                    let (body, _) = self
                        .get_json::<ResultList>(
                            "attachments_many",
                            "api/now/attachment",
                            &[
                                ("sysparm_query", query.clone()),
                                ("sysparm_limit", PAGE.to_string()),
                                ("sysparm_offset", out.len().to_string()),
                            ],
                        )
                        .await?;
                    for (i, r) in body.result.iter().enumerate() {
                        out.push(self.attachment_meta(r, &format!("result[{}]", out.len() + i))?);
                    }
                    if body.result.len() < PAGE {
                        return Ok::<_, Error>(out);
                    }
                }
            }
        });
        let mut by_record: HashMap<ItemId, Vec<AttachmentMeta>> = HashMap::new();
        let mut lists =
            futures::stream::iter(queries.collect::<Vec<_>>()).buffered(self.concurrency());
        while let Some(files) = lists.next().await {
            for m in files? {
                by_record.entry(m.item_id.clone()).or_default().push(m);
            }
        }
        Ok(ids
            .iter()
            .map(|id| by_record.remove(id).unwrap_or_default())
            .collect())
    }

    pub(crate) fn attachment_meta(&self, r: &Record, path: &str) -> Result<AttachmentMeta> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).unwrap_or_default();
        if s("sys_id").is_empty() {
            return Err(Error::protocol(
                format!("{path}.sys_id"),
                "an attachment without sys_id",
            ));
        }
        let mut m = AttachmentMeta::new(
            s("sys_id"),
            ItemType::from(s("table_name")),
            ItemId::from(s("table_sys_id")),
            s("file_name"),
        );
        m.content_type = Some(s("content_type").to_owned()).filter(|c| !c.is_empty());
        m.size = s("size_bytes").parse().ok();
        m.created_at = parse_time(s("sys_created_on"), &format!("{path}.sys_created_on")).ok();
        m.url = url::Url::parse(s("download_link")).ok();
        Ok(m)
    }

    pub(crate) async fn do_comments(&self, table: &ItemType, id: &ItemId) -> Result<Vec<Comment>> {
        let comments = self.journal(id, "comments,work_notes").await?;
        if comments.is_empty() {
            self.exists("comments", table, id).await?;
        }
        Ok(comments)
    }

    pub(crate) async fn do_add_comment(
        &self,
        table: &ItemType,
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
        let element = match c.visibility {
            Visibility::Internal => "work_notes",
            _ => "comments",
        };
        let value = match c.format {
            TextFormat::Html => format!("[code]{}[/code]", c.body),
            _ => c.body.clone(),
        };
        self.client
            .request(Method::PATCH, &format!("api/now/table/{table}/{id}"))
            .query(&[("sysparm_fields", "sys_id")])
            .json(&json!({ element: value }))
            .operation("add_comment")
            .send()
            .await
            .map_err(|e| e.with_item(table.clone(), id.clone()))?;
        let entries = self.journal(id, element).await?;
        entries
            .into_iter()
            .rev()
            .find(|e| e.body == c.body)
            .ok_or_else(|| {
                Error::protocol(
                    "result",
                    "the new journal entry was not found after writing it",
                )
                .with_operation("add_comment")
            })
    }

    pub(crate) async fn do_attachments(
        &self,
        table: &ItemType,
        id: &ItemId,
    ) -> Result<Vec<AttachmentMeta>> {
        let (body, _) = self
            .get_json::<ResultList>(
                "attachments",
                "api/now/attachment",
                &[(
                    "sysparm_query",
                    format!(
                        "table_name={}^table_sys_id={}^ORDERBYsys_created_on",
                        q(table.as_str()),
                        q(id.as_str())
                    ),
                )],
            )
            .await?;
        let rows = body.result;
        if rows.is_empty() {
            self.exists("attachments", table, id).await?;
        }
        rows.iter()
            .enumerate()
            .map(|(i, r)| self.attachment_meta(r, &format!("result[{i}]")))
            .collect::<Result<Vec<_>>>()
    }

    pub(crate) async fn do_attachments_since(
        &self,
        table: &ItemType,
        since: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<AttachmentMeta>> {
        // A file attached to a record is a `sys_attachment` row: the record's `sys_updated_on`
        // does not move, so `changes` does not show it.
        let (body, _) = self
            .get_json::<ResultList>(
                "attachments_since",
                "api/now/attachment",
                &[
                    (
                        "sysparm_query",
                        format!(
                            "table_name={}^sys_created_on>={}^ORDERBYsys_created_on^ORDERBYsys_id",
                            q(table.as_str()),
                            since.format(SN_TIME)
                        ),
                    ),
                    ("sysparm_limit", limit.max(1).to_string()),
                ],
            )
            .await?;
        let rows = body.result;
        rows.iter()
            .enumerate()
            .map(|(i, r)| {
                let m = self.attachment_meta(r, &format!("result[{i}]"))?;
                if m.created_at.is_none() {
                    return Err(Error::protocol(
                        format!("result[{i}].sys_created_on"),
                        "an attachment without a creation time",
                    ));
                }
                Ok(m)
            })
            .collect::<Result<Vec<_>>>()
    }

    pub(crate) async fn do_download(&self, a: &AttachmentMeta) -> Result<Bytes> {
        let resp = self
            .client
            .get(&format!("api/now/attachment/{}/file", a.id))
            .operation("download")
            .send()
            .await?;
        Ok(resp.body)
    }

    pub(crate) async fn do_upload(
        &self,
        table: &ItemType,
        id: &ItemId,
        a: &NewAttachment,
    ) -> Result<AttachmentMeta> {
        self.capabilities.check_upload(a)?;
        let resp = self
            .client
            .post("api/now/attachment/file")
            .query(&[
                ("table_name", table.as_str()),
                ("table_sys_id", id.as_str()),
                ("file_name", a.file_name.as_str()),
            ])
            .body(a.data.clone(), &a.content_type)
            .header(CONTENT_TYPE, &a.content_type)
            .operation("upload")
            .send()
            .await
            .map_err(|e| e.with_item(table.clone(), id.clone()))?;
        let body: ResultOne = resp.json()?;
        self.attachment_meta(&body.result, "result")
    }
}
