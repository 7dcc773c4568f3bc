//! Reads: the keyset change scan, batch reads, existence checks, correlation lookups.

#[allow(clippy::wildcard_imports)]
use super::*;

impl ServiceNowRepository {
    pub(crate) fn read_params(fields: Option<&[String]>) -> Vec<(&'static str, String)> {
        let mut p = vec![
            ("sysparm_display_value", "all".to_owned()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
        ];
        if let Some(f) = fields {
            p.push(("sysparm_fields", f.join(",")));
        }
        p
    }

    pub(crate) fn projection(fields: Option<&Vec<FieldName>>) -> Option<Vec<String>> {
        fields.map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        })
    }

    pub(crate) async fn one_item(
        &self,
        op: &'static str,
        table: &ItemType,
        meta: &TableMeta,
        resp: workbridge_http::HttpResponse,
    ) -> Result<WorkItem> {
        let rec = resp
            .json::<ResultOne>()
            .map_err(|e| e.with_operation(op))?
            .result;
        let mut items = vec![
            self.record_to_item(table, meta, &rec, "result", false)
                .map_err(|e| e.with_operation(op))?,
        ];
        self.resolve_persons(&mut items).await?;
        Ok(items.remove(0))
    }

    pub(crate) async fn exists(
        &self,
        op: &'static str,
        table: &ItemType,
        id: &ItemId,
    ) -> Result<()> {
        self.client
            .get(&format!("api/now/table/{table}/{id}"))
            .query(&[("sysparm_fields", "sys_id")])
            .operation(op)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| e.with_item(table.clone(), id.clone()))
    }

    pub(crate) async fn scan(
        &self,
        table: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        let meta = self.table_meta(table).await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::seconds(1))?;
        // The server was at least this far when the page is requested (its own `Date` comes
        // after its read).
        scan.read_after(self.client.server_time_seen());
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 10_000);
        let sq = scan.query();
        let fmt = |t: DateTime<Utc>| t.format(SN_TIME).to_string();
        let upper = sq
            .upper
            .map(|b| format!("^sys_updated_on<={}", fmt(b)))
            .unwrap_or_default();
        let mut query = match (&sq.after, sq.lower) {
            (Some((t, id)), _) => {
                let t = fmt(*t);
                format!(
                    "sys_updated_on={t}^sys_id>{}^NQsys_updated_on>{t}{upper}",
                    q(id.as_str())
                )
            }
            (None, Some(from)) => format!("sys_updated_on>={}{upper}", fmt(from)),
            (None, None) => String::new(),
        };
        if !query.is_empty() {
            query.push('^');
        }
        query.push_str("ORDERBYsys_updated_on^ORDERBYsys_id");
        let projection = Self::projection(opts.fields.as_ref());
        let (parsed, resp) = self
            .list_items(
                "changes",
                table.as_str(),
                &query,
                limit,
                projection.as_deref(),
                |i, rec| {
                    self.record_to_item(
                        table,
                        &meta,
                        rec,
                        &format!("result[{i}]"),
                        projection.is_some(),
                    )
                },
            )
            .await?;
        let server_now = resp.date();
        drop(resp);
        let full = parsed.len() >= limit;
        let mut items = scan.absorb(parsed, full, server_now);
        self.resolve_persons(&mut items).await?;
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }

    pub(crate) async fn do_get_many(
        &self,
        table: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self.table_meta(table).await?;
        let projection = Self::projection(opts.fields.as_ref());
        let mut unique: Vec<&ItemId> = ids.iter().collect();
        unique.sort();
        unique.dedup();
        // The chunks' reads in flight together, as many as the client allows.
        let reads = unique.chunks(self.config.read_batch).map(|chunk| {
            let (meta, projection) = (&meta, &projection);
            async move {
                let list = chunk
                    .iter()
                    .map(|i| q(i.as_str()))
                    .collect::<Vec<_>>()
                    .join(",");
                let (mut items, _) = self
                    .list_items(
                        "get_many",
                        table.as_str(),
                        &format!("sys_idIN{list}"),
                        chunk.len(),
                        projection.as_deref(),
                        |i, r| {
                            self.record_to_item(
                                table,
                                meta,
                                r,
                                &format!("result[{i}]"),
                                projection.is_some(),
                            )
                        },
                    )
                    .await?;
                self.resolve_persons(&mut items).await?;
                Ok::<_, Error>(items)
            }
        });
        let mut found: HashMap<ItemId, WorkItem> = HashMap::new();
        let mut reads =
            futures::stream::iter(reads.collect::<Vec<_>>()).buffered(self.concurrency());
        while let Some(items) = reads.next().await {
            found.extend(items?.into_iter().map(|i| (i.id.clone(), i)));
        }
        Ok(ids.iter().map(|id| found.get(id).cloned()).collect())
    }

    pub(crate) async fn do_find_by_correlation(
        &self,
        table: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self.table_meta(table).await?;
        let (rows, _) = self
            .list(
                "find_by_correlation",
                table.as_str(),
                &format!("correlation_id={}^ORDERBYsys_created_on", q(key.as_str())),
                1,
                None,
                true,
            )
            .await?;
        let mut items = rows
            .iter()
            .map(|r| self.record_to_item(table, &meta, r, "result[0]", false))
            .collect::<Result<Vec<_>>>()?;
        self.resolve_persons(&mut items).await?;
        Ok(items.pop())
    }

    pub(crate) async fn do_find_many_by_correlation(
        &self,
        table: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        const LIMIT: usize = 1000;
        let meta = self.table_meta(table).await?;
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        let mut one_by_one: Vec<&CorrelationKey> = Vec::new();
        // A key holding a comma cannot ride in an `IN` list: it is looked up on its own.
        let mut listable: Vec<&CorrelationKey> = Vec::new();
        for k in keys {
            if k.as_str().contains(',') {
                one_by_one.push(k);
            } else if !listable.contains(&k) {
                listable.push(k);
            }
        }
        for chunk in listable.chunks(50) {
            let list: Vec<String> = chunk.iter().map(|k| q(k.as_str())).collect();
            let query = format!("correlation_idIN{}^ORDERBYsys_created_on", list.join(","));
            let (rows, _) = self
                .list(OP, table.as_str(), &query, LIMIT, None, true)
                .await?;
            let mut items = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let path = format!("result[{i}]");
                let key = match row.get("correlation_id") {
                    Some(v) => read_value(v, &format!("{path}.correlation_id"))?.0,
                    None => continue,
                };
                // Oldest first, as find_by_correlation answers.
                if !found.contains_key(&key) && !items.iter().any(|(k, _)| k == &key) {
                    let item = self.record_to_item(table, &meta, row, &path, false)?;
                    items.push((key, item));
                }
            }
            let (ks, mut its): (Vec<String>, Vec<WorkItem>) = items.into_iter().unzip();
            self.resolve_persons(&mut its).await?;
            found.extend(ks.into_iter().zip(its));
            if rows.len() >= LIMIT {
                // Duplicates filled the page: what it did not reach is asked key by key.
                one_by_one.extend(
                    chunk
                        .iter()
                        .copied()
                        .filter(|k| !found.contains_key(k.as_str())),
                );
            }
        }
        for k in one_by_one {
            if let Some(item) = self.find_by_correlation(table, k).await? {
                found.insert(k.as_str().to_owned(), item);
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned())
            .collect())
    }

    /// Whether any record of the table carries a `correlation_id`: one row asked for.
    pub(crate) async fn do_holds_correlated(&self, table: &ItemType) -> Result<bool> {
        let (rows, _) = self
            .list(
                "holds_correlated",
                table.as_str(),
                "correlation_idISNOTEMPTY",
                1,
                Some(&["sys_id".to_owned()]),
                false,
            )
            .await?;
        Ok(!rows.is_empty())
    }
}
