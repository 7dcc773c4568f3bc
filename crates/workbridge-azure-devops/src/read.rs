//! Reads: the WIQL change scan, batch reads, revisions, correlation lookups.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AzureDevOpsRepository {
    /// Reads items by id, 200 per request, as of a time if given; `None` for missing ids.
    pub(crate) async fn read_many(
        &self,
        meta: Option<&TypeMeta>,
        ids: &[u64],
        fields: Option<&[String]>,
        as_of: Option<&str>,
    ) -> Result<HashMap<u64, WorkItem>> {
        let mut out = HashMap::new();
        for (i, v) in self
            .read_json("get_many", ids, fields, as_of, None)
            .await?
            .iter()
            .enumerate()
        {
            let item = self.item_from(meta, v, &format!("value[{i}]"))?;
            let id: u64 = item.id.as_str().parse().unwrap_or_default();
            out.insert(id, item);
        }
        Ok(out)
    }

    /// Items by id as the API answers them, 200 per request (`workitemsbatch`, or the list of
    /// `workitems?ids=` before it): some fields, or all with `$expand` (the API takes one or the
    /// other); missing ids left out.
    pub(crate) async fn read_json(
        &self,
        op: &'static str,
        ids: &[u64],
        fields: Option<&[String]>,
        as_of: Option<&str>,
        expand: Option<&'static str>,
    ) -> Result<Vec<WorkItemJson>> {
        // The chunks' reads in flight together, as many as the client allows.
        let reads: Vec<_> = ids
            .chunks(BATCH)
            .map(|chunk| async move {
                let body = if self.config.server.has_batch_read() {
                    let req = BatchRead {
                        ids: chunk,
                        error_policy: "omit",
                        fields,
                        as_of,
                        expand,
                    };
                    self.call_json::<List<Option<WorkItemJson>>>(
                        op,
                        Method::POST,
                        &self.project_path("workitemsbatch"),
                        &[],
                        Some((
                            serde_json::to_vec(&req).unwrap_or_default(),
                            "application/json",
                        )),
                    )
                    .await?
                } else {
                    let mut q = vec![
                        (
                            "ids",
                            chunk
                                .iter()
                                .map(ToString::to_string)
                                .collect::<Vec<_>>()
                                .join(","),
                        ),
                        ("errorPolicy", "omit".to_owned()),
                    ];
                    if let Some(f) = fields {
                        q.push(("fields", f.join(",")));
                    }
                    if let Some(t) = as_of {
                        q.push(("asOf", t.to_owned()));
                    }
                    if let Some(e) = expand {
                        q.push(("$expand", e.to_owned()));
                    }
                    self.call_json::<List<Option<WorkItemJson>>>(
                        op,
                        Method::GET,
                        &self.project_path("workitems"),
                        &q,
                        None,
                    )
                    .await?
                };
                // A missing id is a `null` entry (errorPolicy omit).
                Ok::<_, Error>(body.value.into_iter().flatten().collect::<Vec<_>>())
            })
            .collect();
        let mut out = Vec::new();
        let mut reads = futures::stream::iter(reads).buffered(self.concurrency());
        while let Some(items) = reads.next().await {
            out.extend(items?);
        }
        Ok(out)
    }

    pub(crate) async fn wiql(
        &self,
        op: &'static str,
        query: &str,
        top: usize,
    ) -> Result<(Vec<u64>, Option<DateTime<Utc>>)> {
        let body = serde_json::to_vec(&WiqlQuery { query }).unwrap_or_default();
        let v: WiqlResult = self
            .call_json(
                op,
                Method::POST,
                &self.project_path("wiql"),
                &[("timePrecision", "true".into()), ("$top", top.to_string())],
                Some((body, "application/json")),
            )
            .await?;
        let ids = v.work_items.iter().map(|w| w.id).collect();
        let as_of = v.as_of.as_deref().and_then(parse_time);
        Ok((ids, as_of))
    }

    pub(crate) fn type_clause(&self, meta: &TypeMeta) -> String {
        format!(
            "[System.TeamProject] = @project AND [System.WorkItemType] = {}",
            lit(&meta.name)
        )
    }

    pub(crate) async fn scan(
        &self,
        t: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        let meta = self.type_meta(t).await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::milliseconds(1))?;
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 19_999);
        let q = scan.query();
        let mut cond = self.type_clause(&meta);
        match (&q.after, q.lower) {
            (Some((at, id)), _) => {
                let at = lit(&fmt_time(*at));
                let id: u64 = id.as_str().parse().unwrap_or(0);
                cond.push_str(&format!(" AND ([System.ChangedDate] > {at} OR ([System.ChangedDate] = {at} AND [System.Id] > {id}))"));
            }
            (None, Some(from)) => cond.push_str(&format!(
                " AND [System.ChangedDate] >= {}",
                lit(&fmt_time(from))
            )),
            (None, None) => {}
        }
        if let Some(upper) = q.upper {
            cond.push_str(&format!(
                " AND [System.ChangedDate] <= {}",
                lit(&fmt_time(upper))
            ));
        }
        // The caller's own writes, still at the revs it wrote, are not listed: each would cost
        // a read only to be taken for an echo.
        cond.push_str(&echo_clause(&opts.known, ECHO_CLAUSE_CHARS));
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE {cond} ORDER BY [System.ChangedDate] ASC, [System.Id] ASC"
        );
        let (ids, as_of) = self.wiql("changes", &query, limit).await?;
        let fields: Option<Vec<String>> = opts.fields.as_ref().map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        });
        let as_of_s = as_of.map(fmt_time);
        let mut found = self
            .read_many(Some(&meta), &ids, fields.as_deref(), as_of_s.as_deref())
            .await?;
        let rows: Vec<WorkItem> = ids
            .iter()
            .filter_map(|id| found.remove(id))
            .map(|mut i| {
                i.partial = fields.is_some();
                i
            })
            .collect();
        let items = scan.absorb_as_of(rows, ids.len() >= limit, as_of);
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }

    pub(crate) async fn do_get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self.type_meta(t).await?;
        let numeric = ItemId::distinct_numbers(ids);
        let fields: Option<Vec<String>> = opts.fields.as_ref().map(|f| {
            MEMBER_FIELDS
                .iter()
                .map(|s| (*s).to_owned())
                .chain(f.iter().map(ToString::to_string))
                .collect()
        });
        let found = self
            .read_many(Some(&meta), &numeric, fields.as_deref(), None)
            .await?;
        Ok(ids
            .iter()
            .map(|id| {
                id.as_str()
                    .parse::<u64>()
                    .ok()
                    .and_then(|n| found.get(&n))
                    .filter(|i| i.item_type.as_str().eq_ignore_ascii_case(&meta.name))
                    .cloned()
                    .map(|mut i| {
                        i.partial = fields.is_some();
                        i
                    })
            })
            .collect())
    }

    pub(crate) async fn do_revision_after(
        &self,
        t: &ItemType,
        id: &ItemId,
        version: &Version,
        n: u32,
    ) -> Result<Option<WorkItem>> {
        const OP: &str = "revision_after";
        let meta = self.type_meta(t).await?;
        let num: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        let rev: u64 = version.as_str().parse().map_err(|_| {
            Error::invalid_input("version", version.as_str(), "a work item rev is a number")
        })?;
        // Revisions are numbered from 1: rev r is the list's entry r - 1.
        let want = rev + u64::from(n.max(1));
        let body: List<WorkItemJson> = self
            .call_json(
                OP,
                Method::GET,
                // Collection-level: TFS 2018 has no project-scoped route for revisions.
                &format!("_apis/wit/workitems/{num}/revisions"),
                &[("$top", "1".to_owned()), ("$skip", (want - 1).to_string())],
                None,
            )
            .await?;
        let Some(v) = body.value.first() else {
            return Ok(None);
        };
        let item = self.item_from(Some(&meta), v, "value[0]")?;
        if item.version.as_str() != want.to_string() {
            return Err(Error::protocol(
                "value[0].rev",
                format!(
                    "asked for rev {want}, the server answered rev {}",
                    item.version
                ),
            ));
        }
        Ok(Some(item))
    }

    pub(crate) async fn do_find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self.type_meta(t).await?;
        let cond = match &self.config.correlation_field {
            Some(f) => format!("[{f}] = {}", lit(key.as_str())),
            None => format!(
                "[System.Tags] CONTAINS {}",
                lit(&format!("workbridge:{}", key.as_str().replace(';', "_")))
            ),
        };
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE {} AND {cond} ORDER BY [System.Id] ASC",
            self.type_clause(&meta)
        );
        let (ids, _) = self.wiql("find_by_correlation", &query, 1).await?;
        let Some(first) = ids.first() else {
            return Ok(None);
        };
        let mut found = self.read_many(Some(&meta), &[*first], None, None).await?;
        Ok(found.remove(first))
    }

    pub(crate) async fn do_find_many_by_correlation(
        &self,
        t: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        let meta = self.type_meta(t).await?;
        let tag_of = |k: &CorrelationKey| format!("workbridge:{}", k.as_str().replace(';', "_"));
        let carries = |item: &WorkItem, k: &CorrelationKey| match &self.config.correlation_field {
            Some(f) => item.field(f).is_some_and(|v| v.to_string() == k.as_str()),
            None => item.field("System.Tags").is_some_and(|v| {
                let tag = tag_of(k);
                v.to_string()
                    .split(';')
                    .any(|t| t.trim().eq_ignore_ascii_case(&tag))
            }),
        };
        let mut found: HashMap<&str, WorkItem> = HashMap::new();
        // One WIQL query per 50 keys (far inside the query-length limit), one batched read.
        for chunk in keys.chunks(50) {
            let conds: Vec<String> = chunk
                .iter()
                .map(|k| match &self.config.correlation_field {
                    Some(f) => format!("[{f}] = {}", lit(k.as_str())),
                    None => format!("[System.Tags] CONTAINS {}", lit(&tag_of(k))),
                })
                .collect();
            let query = format!(
                "SELECT [System.Id] FROM WorkItems WHERE {} AND ({}) ORDER BY [System.Id] ASC",
                self.type_clause(&meta),
                conds.join(" OR ")
            );
            let (ids, _) = self.wiql(OP, &query, 1000).await?;
            if ids.is_empty() {
                continue;
            }
            let items = self.read_many(Some(&meta), &ids, None, None).await?;
            // Lowest id first, as find_by_correlation answers.
            for id in &ids {
                let Some(item) = items.get(id) else { continue };
                for k in chunk {
                    if !found.contains_key(k.as_str()) && carries(item, k) {
                        found.insert(k.as_str(), item.clone());
                    }
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned())
            .collect())
    }

    /// Whether any item of the type carries a correlation key in the correlation field: one
    /// WIQL query for one id. With tags as keys (no field), it cannot tell, and says so.
    pub(crate) async fn do_holds_correlated(&self, t: &ItemType) -> Result<bool> {
        let Some(f) = &self.config.correlation_field else {
            return Ok(true);
        };
        let meta = self.type_meta(t).await?;
        let query = format!(
            "SELECT [System.Id] FROM WorkItems WHERE {} AND [{f}] <> ''",
            self.type_clause(&meta)
        );
        let (ids, _) = self.wiql("holds_correlated", &query, 1).await?;
        Ok(!ids.is_empty())
    }
}

/// Most characters of a change query's clause leaving out known echoes (WIQL takes 32,768 in
/// all): beyond it, the rest are listed and read.
pub(crate) const ECHO_CLAUSE_CHARS: usize = 16_000;

/// ` AND …` clauses leaving out the items `known` lists while they are at the revs given
/// (`[System.Rev] <> r OR` the id is none of them), at most `chars` long: for each rev, runs of
/// three or more consecutive ids as `[System.Id] < a OR [System.Id] > b`, the others in one
/// `NOT IN`. Ids or versions that are not numbers are left alone.
pub(crate) fn echo_clause(known: &[(ItemId, Version)], chars: usize) -> String {
    let mut by_rev: std::collections::BTreeMap<u64, Vec<u64>> = std::collections::BTreeMap::new();
    for (id, v) in known {
        if let (Ok(id), Ok(rev)) = (id.as_str().parse::<u64>(), v.as_str().parse::<u64>()) {
            by_rev.entry(rev).or_default().push(id);
        }
    }
    let mut out = String::new();
    for (rev, mut ids) in by_rev {
        ids.sort_unstable();
        ids.dedup();
        let mut runs: Vec<(u64, u64)> = Vec::new();
        for n in ids {
            match runs.last_mut() {
                Some((_, b)) if n == *b + 1 => *b = n,
                _ => runs.push((n, n)),
            }
        }
        let mut terms: Vec<String> = Vec::new();
        let mut singles: Vec<String> = Vec::new();
        for (a, b) in runs {
            if b - a >= 2 {
                terms.push(format!("([System.Id] < {a} OR [System.Id] > {b})"));
            } else {
                singles.extend((a..=b).map(|n| n.to_string()));
            }
        }
        let head = format!(" AND ([System.Rev] <> {rev} OR (");
        let mut len = out.len() + head.len() + 2;
        let mut kept: Vec<String> = Vec::new();
        for t in terms {
            if len + t.len() + 5 > chars {
                break;
            }
            len += t.len() + 5;
            kept.push(t);
        }
        // As many single ids as still fit.
        let mut fit = Vec::new();
        let not_in = "[System.Id] NOT IN ()".len() + 5;
        if len + not_in < chars {
            len += not_in;
            for n in singles {
                if len + n.len() + 2 > chars {
                    break;
                }
                len += n.len() + 2;
                fit.push(n);
            }
        }
        if !fit.is_empty() {
            kept.push(format!("[System.Id] NOT IN ({})", fit.join(", ")));
        }
        if kept.is_empty() {
            break;
        }
        out.push_str(&head);
        out.push_str(&kept.join(" AND "));
        out.push_str("))");
    }
    out
}

#[cfg(test)]
mod echo_tests {
    use super::*;

    fn known(pairs: &[(u64, u64)]) -> Vec<(ItemId, Version)> {
        pairs
            .iter()
            .map(|(i, v)| (ItemId::new(i.to_string()), Version::new(v.to_string())))
            .collect()
    }

    #[test]
    fn runs_fold_and_revs_group() {
        let k = known(&[(10, 1), (11, 1), (12, 1), (13, 1), (20, 1), (7, 3), (8, 3)]);
        assert_eq!(
            echo_clause(&k, ECHO_CLAUSE_CHARS),
            concat!(
                " AND ([System.Rev] <> 1 OR (([System.Id] < 10 OR [System.Id] > 13) AND [System.Id] NOT IN (20)))",
                " AND ([System.Rev] <> 3 OR ([System.Id] NOT IN (7, 8)))"
            )
        );
    }

    #[test]
    fn the_clause_stays_within_its_length_and_leaves_out_what_is_not_a_number() {
        let many: Vec<(u64, u64)> = (0..20_000).map(|i| (i * 2, 1)).collect();
        let c = echo_clause(&known(&many), 2_000);
        assert!(c.len() <= 2_000, "{}", c.len());
        assert!(c.contains("NOT IN (0, 2, 4"), "{c}");
        let odd = vec![
            (ItemId::new("x"), Version::new("1")),
            (ItemId::new("5"), Version::new("r")),
        ];
        assert_eq!(echo_clause(&odd, 2_000), "");
        assert_eq!(echo_clause(&[], 2_000), "");
    }
}
