//! Reads: the keyset change scan over `last-modified`, entity reads, correlation lookups.

#[allow(clippy::wildcard_imports)]
use super::*;
use workbridge_core::FieldName;

impl AlmRepository {
    pub(crate) async fn query(
        &self,
        op: &'static str,
        t: &ItemType,
        query: Option<String>,
        order: &str,
        page_size: usize,
        start: usize,
    ) -> Result<(Vec<Entity>, usize)> {
        self.query_dated(op, t, query, order, page_size, start)
            .await
            .map(|(rows, total, _)| (rows, total))
    }

    /// As [`query`](Self::query), with the server's time of the answer (its `Date`).
    pub(crate) async fn query_dated(
        &self,
        op: &'static str,
        t: &ItemType,
        query: Option<String>,
        order: &str,
        page_size: usize,
        start: usize,
    ) -> Result<(Vec<Entity>, usize, Option<DateTime<Utc>>)> {
        self.query_fields(op, t, query, order, (page_size, start), None)
            .await
    }

    /// As [`query_dated`](Self::query_dated), the entities carrying only `fields` (ALM's
    /// `fields=`, with the ones every item needs: id, version, time), where given.
    pub(crate) async fn query_fields(
        &self,
        op: &'static str,
        t: &ItemType,
        query: Option<String>,
        order: &str,
        (page_size, start): (usize, usize),
        fields: Option<&[FieldName]>,
    ) -> Result<(Vec<Entity>, usize, Option<DateTime<Utc>>)> {
        let mut q = vec![
            ("order-by", order.to_owned()),
            ("page-size", page_size.to_string()),
            ("start-index", start.to_string()),
        ];
        if let Some(f) = query {
            q.push(("query", f));
        }
        if let Some(p) = projection(fields) {
            q.push(("fields", p));
        }
        let resp = self
            .call(op, Method::GET, &self.coll_path(t), &q, None)
            .await
            .map_err(|e| e.with_item_type(t.clone()))?;
        let (rows, total) = parse_collection(self.config.format, &resp.body)
            .map_err(|e| e.with_operation(op).with_system(self))?;
        Ok((rows, total, resp.date()))
    }

    pub(crate) async fn read(&self, t: &ItemType, id: &ItemId) -> Result<WorkItem> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let resp = self
            .call("get", Method::GET, &self.entity_path(t, id)?, &[], None)
            .await
            .map_err(|e| e.with_item(t.clone(), id.clone()))?;
        let e = parse_entity(self.config.format, &resp.body)?;
        self.to_item(t, &meta, &e, offset, "")
    }

    pub(crate) async fn scan(
        &self,
        t: &ItemType,
        since: &Cursor,
        opts: &ChangeOptions,
    ) -> Result<ChangePage> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let mut scan = KeysetScan::resume(since, TimeDelta::seconds(1))?;
        // The server was at least this far when the page is requested (its own `Date` comes
        // after its read).
        scan.read_after(self.client.server_time_seen());
        let limit = opts
            .page_size
            .unwrap_or(self.config.page_size)
            .clamp(1, 2000);
        let sq = scan.query();
        let local = |u: DateTime<Utc>| (u + offset).format(ALM_TIME).to_string();
        let upper = sq
            .upper
            .map(|u| format!(" AND <=\"{}\"", local(u)))
            .unwrap_or_default();
        let order = "{last-modified[ASC];id[ASC]}";
        // The sync's own writes, where there are enough of them that reading them back would
        // cost pages: left out of the scan, and those changed since read apart (ADR 0023).
        let known = KnownSplit::of(&opts.known, limit);
        let except = known.as_ref().map(|k| k.except.as_str());
        let mut rows: Vec<Entity> = Vec::new();
        let mut full = false;
        let mut date = None;
        if let Some((at, id)) = &sq.after {
            let n: u64 = id.as_str().parse().unwrap_or(0);
            let ids = match except {
                Some(x) => format!(">{n} AND ({x})"),
                None => format!(">{n}"),
            };
            let (tie, total, tie_date) = self
                .query_fields(
                    "changes",
                    t,
                    Some(format!("{{last-modified[\"{}\"];id[{ids}]}}", local(*at))),
                    "{id[ASC]}",
                    (limit, 1),
                    opts.fields.as_deref(),
                )
                .await?;
            full = total > tie.len();
            date = tie_date;
            rows.extend(tie);
        }
        if !full && rows.len() < limit {
            let ids = except.map(|x| format!(";id[{x}]")).unwrap_or_default();
            let filter = match (&sq.after, sq.lower) {
                (Some((at, _)), _) => Some(format!(
                    "{{last-modified[>\"{}\"{upper}]{ids}}}",
                    local(*at)
                )),
                (None, Some(from)) => Some(format!(
                    "{{last-modified[>=\"{}\"{upper}]{ids}}}",
                    local(from)
                )),
                (None, None) => except.map(|x| format!("{{id[{x}]}}")),
            };
            let want = limit - rows.len();
            let mut q = vec![
                ("order-by", order.to_owned()),
                ("page-size", want.to_string()),
                ("start-index", "1".to_owned()),
            ];
            if let Some(f) = filter {
                q.push(("query", f));
            }
            if let Some(p) = projection(opts.fields.as_deref()) {
                q.push(("fields", p));
            }
            let resp = self
                .call("changes", Method::GET, &self.coll_path(t), &q, None)
                .await?;
            date = resp.date().or(date);
            let (more, total) = parse_collection(self.config.format, &resp.body)?;
            full = total > more.len();
            rows.extend(more);
        } else {
            full = true;
        }
        let items = rows
            .iter()
            .enumerate()
            .map(|(i, e)| {
                let item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                Ok(super::write::narrow(item, opts.fields.as_deref()))
            })
            .collect::<Result<Vec<_>>>()?;
        let mut items = scan.absorb(items, full, date);
        // Read after the page, so that the cursor, which follows the page's rows alone, never
        // passes a change to one of them that this read did not see.
        if let Some(k) = &known {
            let changed = self.changed_since(t, k, opts.fields.as_deref()).await?;
            for (i, e) in changed.iter().enumerate() {
                let item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                items.push(super::write::narrow(item, opts.fields.as_deref()));
            }
        }
        Ok(ChangePage::new(items, scan.cursor()?, scan.has_more()))
    }

    /// The entities of `known` changed since the sync wrote them (`ver-stamp` past the version
    /// its write left): one query per version its writes left (and per thousand characters of
    /// ids), each read to its end.
    async fn changed_since(
        &self,
        t: &ItemType,
        known: &KnownSplit,
        fields: Option<&[FieldName]>,
    ) -> Result<Vec<Entity>> {
        let mut out = Vec::new();
        for (ids, version) in &known.groups {
            let query = format!("{{id[{ids}];ver-stamp[>{version}]}}");
            let mut start = 1;
            loop {
                let (rows, total, _) = self
                    .query_fields(
                        "changes",
                        t,
                        Some(query.clone()),
                        "{id[ASC]}",
                        (MAX_PAGE, start),
                        fields,
                    )
                    .await?;
                let n = rows.len();
                out.extend(rows);
                start += n;
                if n == 0 || start > total {
                    break;
                }
            }
        }
        Ok(out)
    }

    pub(crate) async fn do_get_many(
        &self,
        t: &ItemType,
        ids: &[ItemId],
        opts: &GetOptions,
    ) -> Result<Vec<Option<WorkItem>>> {
        let meta = self.meta(t).await?;
        let offset = self.offset().await?;
        let numeric = ItemId::distinct_numbers(ids);
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        for (filter, covered) in id_filters(&numeric, ID_FILTER_CHARS, MAX_PAGE) {
            let (rows, _, _) = self
                .query_fields(
                    "get_many",
                    t,
                    Some(format!("{{id[{filter}]}}")),
                    "{id[ASC]}",
                    (covered, 1),
                    opts.fields.as_deref(),
                )
                .await?;
            for (i, e) in rows.iter().enumerate() {
                let item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                let item = super::write::narrow(item, opts.fields.as_deref());
                found.insert(item.id.to_string(), item);
            }
        }
        Ok(ids
            .iter()
            .map(|id| found.get(id.as_str()).cloned())
            .collect())
    }

    pub(crate) async fn do_find_by_correlation(
        &self,
        t: &ItemType,
        key: &CorrelationKey,
    ) -> Result<Option<WorkItem>> {
        let meta = self.meta(t).await?;
        let field = self.correlation_name(&meta)?;
        if key.as_str().contains('"') {
            return Err(Error::invalid_input(
                "correlation key",
                key,
                "an ALM query cannot hold a double quote",
            ));
        }
        let offset = self.offset().await?;
        let (rows, _) = self
            .query(
                "find_by_correlation",
                t,
                Some(format!("{{{field}[\"{key}\"]}}")),
                "{id[ASC]}",
                1,
                1,
            )
            .await?;
        rows.first()
            .map(|e| self.to_item(t, &meta, e, offset, "entities[0]"))
            .transpose()
    }

    /// Whether any entity of `t` holds a key the sync wrote: one query for a value starting
    /// with [`CorrelationKey::PREFIX`] (`{user-02['wb:*']}`, the `*` wildcard of ALM's filter
    /// grammar), one entity asked, its id alone. Without a correlation field, none can.
    pub(crate) async fn do_holds_correlated(&self, t: &ItemType) -> Result<bool> {
        if self.config.correlation_field.is_none() {
            return Ok(false);
        }
        let meta = self.meta(t).await?;
        let field = self.correlation_name(&meta)?;
        let (rows, total, _) = self
            .query_fields(
                "holds_correlated",
                t,
                Some(format!("{{{field}['{}*']}}", CorrelationKey::PREFIX)),
                "{id[ASC]}",
                (1, 1),
                Some(&[]),
            )
            .await?;
        Ok(total > 0 || !rows.is_empty())
    }

    pub(crate) async fn do_find_many_by_correlation(
        &self,
        t: &ItemType,
        keys: &[CorrelationKey],
    ) -> Result<Vec<Option<WorkItem>>> {
        const OP: &str = "find_many_by_correlation";
        const PAGE: usize = 1000;
        let meta = self.meta(t).await?;
        let field = self.correlation_name(&meta)?;
        if let Some(k) = keys.iter().find(|k| k.as_str().contains('"')) {
            return Err(Error::invalid_input(
                "correlation key",
                k,
                "an ALM query cannot hold a double quote",
            ));
        }
        let offset = self.offset().await?;
        let mut found: HashMap<String, WorkItem> = HashMap::new();
        let mut distinct: Vec<&CorrelationKey> = Vec::new();
        for k in keys {
            if !distinct.contains(&k) {
                distinct.push(k);
            }
        }
        for chunk in distinct.chunks(50) {
            let alternatives: Vec<String> = chunk.iter().map(|k| format!("\"{k}\"")).collect();
            let query = format!("{{{field}[{}]}}", alternatives.join(" OR "));
            let (rows, _) = self.query(OP, t, Some(query), "{id[ASC]}", PAGE, 1).await?;
            for (i, e) in rows.iter().enumerate() {
                let item = self.to_item(t, &meta, e, offset, &format!("entities[{i}]"))?;
                let Some(key) = item.field(&field).map(ToString::to_string) else {
                    continue;
                };
                // Lowest id first, as find_by_correlation answers.
                found.entry(key).or_insert(item);
            }
            if rows.len() >= PAGE {
                // Duplicates filled the page: what it did not reach is asked key by key.
                let missing: Vec<&CorrelationKey> = chunk
                    .iter()
                    .copied()
                    .filter(|k| !found.contains_key(k.as_str()))
                    .collect();
                for k in missing {
                    if let Some(item) = self.find_by_correlation(t, k).await? {
                        found.insert(k.as_str().to_owned(), item);
                    }
                }
            }
        }
        Ok(keys
            .iter()
            .map(|k| found.get(k.as_str()).cloned())
            .collect())
    }
}

/// The sync's own writes as a change scan leaves them out (ADR 0023): `except`, an id filter
/// matching every id but theirs; `groups`, id filters of them by the version their write
/// left, to read those changed since.
#[derive(Debug)]
pub(crate) struct KnownSplit {
    pub(crate) except: String,
    pub(crate) groups: Vec<(String, u64)>,
}

impl KnownSplit {
    /// The split of `known` for a scan of pages of `limit`, where it saves requests: at
    /// least a page of them (fewer are read back in the page at no cost, where the query for
    /// those changed since would cost one). Only ids and versions that are numbers, and as
    /// many runs of ids as an id filter of a thousand characters holds.
    pub(crate) fn of(known: &[(ItemId, Version)], limit: usize) -> Option<KnownSplit> {
        if known.len() < limit.max(1) {
            return None;
        }
        let mut numbered: Vec<(u64, u64)> = known
            .iter()
            .filter_map(|(id, v)| Some((id.as_str().parse().ok()?, v.as_str().parse().ok()?)))
            .collect();
        numbered.sort_unstable();
        numbered.dedup_by_key(|(id, _)| *id);
        // Runs of consecutive ids, taken while the filter of the ids around them fits.
        let mut runs: Vec<(u64, u64)> = Vec::new();
        let mut except_len = 0usize;
        let mut taken = 0usize;
        for &(id, _) in &numbered {
            if let Some((_, b)) = runs.last_mut()
                && id == *b + 1
            {
                *b = id;
                taken += 1;
                continue;
            }
            // `(>b AND <a) OR ` and the last `>b` come to about this much per run.
            let grown = except_len + 2 * id.to_string().len() + 20;
            if grown > ID_FILTER_CHARS {
                break;
            }
            except_len = grown;
            runs.push((id, id));
            taken += 1;
        }
        if taken < limit.max(1) {
            return None;
        }
        let mut terms = Vec::with_capacity(runs.len() + 1);
        let mut before: Option<u64> = None;
        for &(a, b) in &runs {
            terms.push(match before {
                None => format!("<{a}"),
                Some(p) => format!("(>{p} AND <{a})"),
            });
            before = Some(b);
        }
        if let Some(p) = before {
            terms.push(format!(">{p}"));
        }
        let within = |id: u64| runs.iter().any(|&(a, b)| a <= id && id <= b);
        let mut by_version: BTreeMap<u64, Vec<u64>> = BTreeMap::new();
        for &(id, v) in numbered.iter().filter(|(id, _)| within(*id)) {
            by_version.entry(v).or_default().push(id);
        }
        let groups = by_version
            .into_iter()
            .flat_map(|(v, ids)| {
                id_filters(&ids, ID_FILTER_CHARS, usize::MAX)
                    .into_iter()
                    .map(move |(f, _)| (f, v))
            })
            .collect();
        Some(KnownSplit {
            except: terms.join(" OR "),
            groups,
        })
    }
}

/// The most entities an ALM collection read answers (`REST_API_MAX_PAGE_SIZE`).
pub(crate) const MAX_PAGE: usize = 2000;

/// The longest id filter a read sends, in characters before URL encoding: as long as a list
/// of a hundred five-digit ids, well within what servers take in a query string.
const ID_FILTER_CHARS: usize = 1000;

/// The id filters that read `numbers` (sorted, distinct), each with how many ids it covers:
/// a run of three or more consecutive ids as one range (`(>=101 AND <=2100)`, the
/// parentheses and keywords of ALM's filter grammar), others one by one, joined by `OR`; each
/// filter at most `chars` long (one id or range always fits) and covering at most `rows` ids
/// (the page it is read in). A backfill's twins, created in bulk, have consecutive ids: a
/// chunk of them is read in one request.
pub(crate) fn id_filters(numbers: &[u64], chars: usize, rows: usize) -> Vec<(String, usize)> {
    let rows = rows.max(1);
    // Runs of consecutive ids, none longer than a page.
    let mut runs: Vec<(u64, u64)> = Vec::new();
    for &n in numbers {
        match runs.last_mut() {
            Some((a, b)) if n == *b + 1 && (n - *a) < rows as u64 => *b = n,
            _ => runs.push((n, n)),
        }
    }
    let mut out = Vec::new();
    let mut terms: Vec<String> = Vec::new();
    let (mut len, mut covered) = (0usize, 0usize);
    let mut push = |terms: &mut Vec<String>, len: &mut usize, covered: &mut usize| {
        if !terms.is_empty() {
            out.push((terms.join(" OR "), *covered));
            terms.clear();
            (*len, *covered) = (0, 0);
        }
    };
    for (a, b) in runs {
        let pieces: Vec<(String, usize)> = if b - a >= 2 {
            vec![(format!("(>={a} AND <={b})"), (b - a + 1) as usize)]
        } else {
            (a..=b).map(|n| (n.to_string(), 1)).collect()
        };
        for (term, n) in pieces {
            let grown = len + term.len() + if terms.is_empty() { 0 } else { 4 };
            if !terms.is_empty() && (grown > chars || covered + n > rows) {
                push(&mut terms, &mut len, &mut covered);
            }
            len += term.len() + if terms.is_empty() { 0 } else { 4 };
            covered += n;
            terms.push(term);
        }
    }
    push(&mut terms, &mut len, &mut covered);
    out
}

/// ALM's `fields=` for a projection: the fields asked for and those every item is made of.
fn projection(fields: Option<&[FieldName]>) -> Option<String> {
    fields.map(|f| {
        ["id", "ver-stamp", "last-modified"]
            .into_iter()
            .map(str::to_owned)
            .chain(f.iter().map(ToString::to_string))
            .collect::<Vec<_>>()
            .join(",")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_ids_are_read_as_ranges_within_a_page_and_a_length() {
        let ids: Vec<u64> = (101..=2100).chain([2200, 2202, 2203]).collect();
        let filters = id_filters(&ids, 1000, 2000);
        assert_eq!(
            filters,
            vec![
                ("(>=101 AND <=2100)".to_owned(), 2000),
                ("2200 OR 2202 OR 2203".to_owned(), 3),
            ]
        );
        // A run longer than a page is split at the page.
        let long: Vec<u64> = (1..=2500).collect();
        assert_eq!(
            id_filters(&long, 1000, 2000),
            vec![
                ("(>=1 AND <=2000)".to_owned(), 2000),
                ("(>=2001 AND <=2500)".to_owned(), 500)
            ]
        );
        // Scattered ids: as many a filter as its length allows, every id once.
        let scattered: Vec<u64> = (0..300).map(|i| 10_000 + 2 * i).collect();
        let filters = id_filters(&scattered, 1000, 2000);
        assert!(filters.len() > 1);
        assert!(filters.iter().all(|(f, _)| f.len() <= 1000));
        let named: Vec<u64> = filters
            .iter()
            .flat_map(|(f, _)| f.split(" OR ").map(|n| n.parse::<u64>().unwrap()))
            .collect();
        assert_eq!(named, scattered);
        assert_eq!(filters.iter().map(|(_, n)| n).sum::<usize>(), 300);
        assert!(id_filters(&[], 1000, 2000).is_empty());
    }

    #[test]
    fn own_writes_are_split_into_the_ids_around_them_and_their_versions() {
        let k = |id: &str, v: &str| (ItemId::from(id), Version::new(v));
        let mut known: Vec<_> = (101..=110).map(|n| k(&n.to_string(), "3")).collect();
        known.push(k("200", "5"));
        known.push(k("not-a-number", "1"));
        // Fewer than a page: read back in the page.
        assert!(KnownSplit::of(&known, 20).is_none());
        let split = KnownSplit::of(&known, 10).expect("a page of them");
        assert_eq!(split.except, "<101 OR (>110 AND <200) OR >200");
        assert_eq!(
            split.groups,
            vec![("(>=101 AND <=110)".to_owned(), 3), ("200".to_owned(), 5)]
        );
        // Scattered ids: as many runs as a filter of a thousand characters holds.
        let scattered: Vec<_> = (0..2000)
            .map(|n| k(&(100_000 + 2 * n).to_string(), "1"))
            .collect();
        let split = KnownSplit::of(&scattered, 10).expect("some of them");
        assert!(
            split.except.len() <= ID_FILTER_CHARS + 40,
            "{}",
            split.except.len()
        );
        assert!(split.groups.iter().all(|(f, _)| f.len() <= ID_FILTER_CHARS));
    }
}
