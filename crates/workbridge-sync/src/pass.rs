//! A side's pass: its changes page by page, each item linked, created or merged, and settled.

#[allow(clippy::wildcard_imports)]
use super::*;

/// The token of a side's twin-lookup record while its first round, which found twins made
/// before, has not caught up.
const CATCHING_UP: &str = "catching-up";

/// What a page's batched lookup and create did for one unlinked item.
pub(crate) enum Ready {
    Found(WorkItem),
    Created(Result<WorkItem>),
}

impl SyncPair {
    /// One side's changes, page by page, in a `pass` tracing span naming the side.
    pub(crate) async fn pass(&self, side: Side, round: &mut Round) -> Result<()> {
        let span = tracing::info_span!("pass", side = %side);
        tracing::Instrument::instrument(self.pass_pages(side, round), span).await
    }

    /// One side's changes, page by page; the cursor is committed after each page is applied.
    async fn pass_pages(&self, side: Side, round: &mut Round) -> Result<()> {
        let repo = &self.repos[side];
        let ty = &self.types[side];
        let stored = self.store.cursor(&self.id, side).await?;
        round.first[side] = stored.is_none();
        round.correlated[side] = None;
        if stored.is_some() && self.catching_up(side).await? {
            // A first round that found twins made before, stopped before it caught up.
            round.correlated[side] = Some(true);
        }
        let mut cursor = stored.unwrap_or_default();
        let mut opts = ChangeOptions::default()
            .fields(self.reads(side))
            .known(self.own_writes_to_skip(side).await?);
        if let Some(n) = self.options.page_size {
            opts = opts.page_size(n);
        }
        // The next page, read while this one is worked on.
        let mut ahead: Option<workbridge_core::ChangePage> = None;
        loop {
            let page = match ahead.take() {
                Some(p) => p,
                None => {
                    round.report.calls[side] += 1;
                    repo.changes(ty, &cursor, &opts).await?
                }
            };
            round.report.read[side] += page.items.len();
            let n = page.items.len();
            tracing::debug!(items = page.items.len(), more = page.has_more, "page read");
            // Worked on `chunk_size` items at a time: a page read at the API's maximum costs
            // the memory of a chunk, its cursor stored once every chunk is done. Meanwhile the
            // next page is read: a keyset scan from this page's cursor skips nothing written
            // while it runs (what this page's merges write moves past it and comes later, as
            // echoes), and it is dropped unread if the round stops here.
            let mut items = page.items;
            let chunk = self
                .options
                .chunk_for(self.repos[side.other()].capabilities().max_batch_write);
            let work = async {
                while !items.is_empty() {
                    let rest = items.split_off(items.len().min(chunk));
                    self.work(side, items, round).await?;
                    self.renew_lease().await?;
                    items = rest;
                }
                Ok::<(), Error>(())
            };
            let next = async {
                if page.has_more {
                    Some(repo.changes(ty, &page.next, &opts).await)
                } else {
                    None
                }
            };
            let (worked, next) = futures::join!(work, next);
            worked?;
            if let Some(next) = next {
                round.report.calls[side] += 1;
                // A failed read ahead is read again, in turn, and its error reported then.
                ahead = next.ok();
            }
            self.store.save_cursor(&self.id, side, &page.next).await?;
            self.renew_lease().await?;
            round.report.cursors[side] = Some(page.next.clone());
            cursor = page.next;
            if let Some(o) = &self.observer {
                let done = PageDone {
                    side,
                    items: n,
                    more: page.has_more,
                    read: round.report.read,
                };
                if o.page(&done).is_break() {
                    tracing::info!("ended between pages by the observer");
                    round.report.interrupted = true;
                    return Ok(());
                }
            }
            if !page.has_more {
                self.own_writes_passed(side, &cursor);
                if round.correlated[side] == Some(true) {
                    self.store
                        .save_cursor(&self.lookup_key(), side, &Cursor::beginning())
                        .await?;
                }
                return Ok(());
            }
        }
    }

    /// A chunk of a page's items: their links and twins read, new ones' twins prepared, every
    /// merge planned and applied together.
    async fn work(&self, side: Side, items: Vec<WorkItem>, round: &mut Round) -> Result<()> {
        // Links of the page, and their twins in one batched read.
        let ids: Vec<ItemId> = items.iter().map(|i| i.id.clone()).collect();
        let links = self.store.links_of(&self.id, side, &ids).await?;
        check_answers("the state store", "links_of", ids.len(), links.len())?;
        // Twins the links know exactly as they were are merged unread (ADR 0022); the others
        // are read.
        let twin_ids: Vec<ItemId> = items
            .iter()
            .zip(&links)
            .filter_map(|(item, l)| {
                l.as_ref()
                    .filter(|l| !l.is_echo(side, item) && !self.merges_unread(side.other(), l))
                    .map(|l| l.id(side.other()).clone())
            })
            .collect();
        let mut twins: HashMap<ItemId, Option<WorkItem>> = HashMap::new();
        let got = self.read_twins(side.other(), &twin_ids, round).await?;
        twins.extend(twin_ids.into_iter().zip(got));
        // The page's new items: their twins looked up and created in batches (an item
        // listed twice is prepared once).
        let mut fresh: Vec<&WorkItem> = Vec::new();
        let mut fresh_ids = HashSet::new();
        for (item, link) in items.iter().zip(&links) {
            if link.is_none() && self.wants_twin(side, item) && fresh_ids.insert(item.id.clone()) {
                fresh.push(item);
            }
        }
        let mut ready = if fresh.len() > 1 {
            self.prepare_twins(side, &fresh, round).await?
        } else {
            HashMap::new()
        };
        let mut seen = HashSet::new();
        // The page's merges, applied together: each side's writes in as few requests as
        // it takes.
        let mut batch = merge::Batch::default();
        for (item, mut link) in items.into_iter().zip(links) {
            let id = item.id.clone();
            if !seen.insert(id.clone()) {
                // Listed again in this page: what the first listing did counts.
                self.run_merges(&mut batch, round).await?;
                link = self.store.link(&self.id, side, &id).await?;
            }
            let mut assumed = false;
            let twin = match &link {
                Some(l) if !l.is_echo(side, &item) => {
                    let tid = l.id(side.other());
                    // Known, or prefetched for the page, once; read afresh if needed again.
                    if let Some(t) = self.known_twin(side.other(), l) {
                        assumed = true;
                        Some(t)
                    } else {
                        match twins.remove(tid) {
                            Some(t) => t,
                            None => {
                                round.report.calls[side.other()] += 1;
                                self.read_if_there(side.other(), tid).await?
                            }
                        }
                    }
                }
                _ => None,
            };
            // The item's own events (its lookup, its create, its merge's plan) in an `item`
            // span; the page's writes go out together afterwards.
            let span = tracing::debug_span!("item", id = %id);
            let result = tracing::Instrument::instrument(
                async {
                    match link {
                        Some(link) if link.is_echo(side, &item) => Ok(Outcome::Echo),
                        Some(link) => {
                            let mut r = self.merge_with(link, side, item, twin, round).await;
                            if let Ok(Outcome::Merge(job)) = &mut r
                                && assumed
                            {
                                job.assumed = Some(side.other());
                            }
                            r
                        }
                        None => {
                            let prepared = ready.remove(&id);
                            self.unlinked(side, item, prepared, round).await
                        }
                    }
                },
                span,
            )
            .await;
            batch.take(self, side, &id, result, round).await?;
        }
        self.run_merges(&mut batch, round).await?;
        Ok(())
    }

    /// `side`'s item of `link` as the link knows it, when a merge may run against it unread
    /// (ADR 0022): the baseline is the item exactly as it was at the stored version, no write
    /// of the link has an unknown outcome, and `side` refuses a write made against another
    /// version before writing it. The item's change time is unknown (the epoch): a merge
    /// against it finds nothing changed on `side`, so no conflict compares times.
    pub(crate) fn known_twin(&self, side: Side, link: &Link) -> Option<WorkItem> {
        if !self.merges_unread(side, link) {
            return None;
        }
        let mut item = WorkItem::new(
            link.id(side).clone(),
            self.types[side].clone(),
            link.version(side)?.clone(),
            chrono::DateTime::<Utc>::UNIX_EPOCH,
            link.baseline(side).clone(),
        );
        item.partial = true;
        Some(item)
    }

    /// Whether a merge may take `side`'s item of `link` as the link knows it ([`SyncPair::known_twin`]).
    fn merges_unread(&self, side: Side, link: &Link) -> bool {
        !self.options.read_twins_first
            && link.exact(side)
            && link.pending.is_none()
            && link.version(side).is_some()
            && self.repos[side].capabilities().optimistic_concurrency
    }

    /// `side`'s items `ids`, as the kernel reads them, in one call (none for no ids); one
    /// answer per id or a temporary error.
    pub(crate) async fn read_twins(
        &self,
        side: Side,
        ids: &[ItemId],
        round: &mut Round,
    ) -> Result<Vec<Option<WorkItem>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        round.report.calls[side] += 1;
        let repo = &self.repos[side];
        let got = repo
            .get_many(&self.types[side], ids, &self.read_options(side))
            .await?;
        check_len(&**repo, ids.len(), got.len())?;
        Ok(got)
    }

    /// A linked item with its twin as read: merged, or reported twinless when the twin is gone.
    async fn merge_with(
        &self,
        link: Link,
        side: Side,
        item: WorkItem,
        twin: Option<WorkItem>,
        round: &mut Round,
    ) -> Result<Outcome> {
        match twin {
            Some(t) => {
                let (l, r) = match side {
                    Side::Left => (item, t),
                    Side::Right => (t, item),
                };
                self.merge(link, side, l, r, round).await
            }
            None => {
                self.twinless(&link, side, &item, "was deleted", round)
                    .await
            }
        }
    }

    /// Books an item's outcome (a planned merge is applied first): temporary errors stop the
    /// round, permanent ones park the item.
    pub(crate) async fn settle(
        &self,
        side: Side,
        id: &ItemId,
        result: Result<Outcome>,
        round: &mut Round,
    ) -> Result<()> {
        match result {
            Ok(Outcome::Merge(job)) => {
                let mut batch = merge::Batch::default();
                batch.push(side, id, *job);
                Box::pin(self.run_merges(&mut batch, round)).await
            }
            Ok(o) => {
                let outcome = match o {
                    Outcome::Echo => {
                        round.report.echoes[side] += 1;
                        ItemOutcome::Echo
                    }
                    Outcome::Ignored => {
                        round.report.ignored[side] += 1;
                        ItemOutcome::Ignored
                    }
                    Outcome::Done | Outcome::Merge(_) => ItemOutcome::Synced,
                };
                self.observe(side, id, outcome);
                if round.parked.remove(&(side, id.clone())) {
                    self.store.unpark(&self.id, side, id).await?;
                    round.report.unparked += 1;
                }
                Ok(())
            }
            // Outages, credentials problems and a lost lease concern every item: stop, do not
            // park them all. A write conflict that outlasted the retries (another client holds
            // the item's lock) concerns this item: it is parked and tried again next round.
            Err(e) if stops_the_round(&e) => Err(e),
            Err(e) => {
                tracing::warn!(pair = %self.id, %side, item = %id, error = %e, "item parked; the others go on");
                let p = Parked {
                    side,
                    id: id.clone(),
                    error: e.to_string(),
                    attempts: 1,
                    at: Utc::now(),
                    temporary: e.is_temporary(),
                };
                self.store.park(&self.id, &p).await?;
                self.observe(side, id, ItemOutcome::Parked(p.error.clone()));
                round.parked.insert((side, id.clone()));
                round.report.parked.push(p);
                Ok(())
            }
        }
    }

    /// Tells the observer, if any, of an item's outcome.
    fn observe(&self, side: Side, id: &ItemId, outcome: ItemOutcome) {
        if let Some(o) = &self.observer {
            o.item(&ItemDone {
                side,
                id: id.clone(),
                outcome,
            });
        }
    }

    pub(crate) fn key_for(&self, side: Side, id: &ItemId) -> CorrelationKey {
        CorrelationKey::new(format!(
            "{}{}:{}",
            CorrelationKey::PREFIX,
            self.types[side],
            id
        ))
    }

    /// An item with no link (or a parked one being replayed): create or find its twin.
    pub(crate) async fn item(
        &self,
        side: Side,
        item: WorkItem,
        replay: bool,
        round: &mut Round,
    ) -> Result<Outcome> {
        if replay && let Some(link) = self.store.link(&self.id, side, &item.id).await? {
            round.report.calls[side.other()] += 1;
            let twin = self
                .read_if_there(side.other(), link.id(side.other()))
                .await?;
            return self.merge_with(link, side, item, twin, round).await;
        }
        self.unlinked(side, item, None, round).await
    }

    /// Whether an unlinked item of `side` gets a twin.
    pub(crate) fn wants_twin(&self, side: Side, item: &WorkItem) -> bool {
        let d = direction_from(side);
        self.mapping().in_scope(d, &item.fields) && self.mapping().may_create(d)
    }

    /// The create options of a twin: the correlation key where the target keeps one. Without
    /// correlation support, the stored link is the only guard against a second create after a
    /// lost reply: see docs/sync.md.
    pub(crate) fn create_options(&self, other: Side, key: &CorrelationKey) -> CreateOptions {
        // Answered with the spec's fields only, where the API can narrow its answer.
        let options = CreateOptions::default().answer_fields(self.reads(other));
        if self.repos[other].capabilities().correlation {
            options.correlation(key.clone())
        } else {
            options
        }
    }

    /// Looks up, then creates, the twins of a page's unlinked items in as few requests as the
    /// target allows: one batched correlation lookup, then `write_many`.
    pub(crate) async fn prepare_twins(
        &self,
        side: Side,
        items: &[&WorkItem],
        round: &mut Round,
    ) -> Result<HashMap<ItemId, Ready>> {
        let other = side.other();
        let d = direction_from(side);
        let mut ready = HashMap::new();
        let keys: Vec<CorrelationKey> = items.iter().map(|i| self.key_for(side, &i.id)).collect();
        let mut found = vec![None; keys.len()];
        let mut unknown = Vec::new();
        for (i, item) in items.iter().enumerate() {
            if self.twin_may_exist(side, &item.id, round).await? {
                unknown.push(i);
            }
        }
        if !unknown.is_empty() {
            let asked: Vec<CorrelationKey> = unknown.iter().map(|i| keys[*i].clone()).collect();
            round.report.calls[other] += 1;
            let answers = self.repos[other]
                .find_many_by_correlation(&self.types[other], &asked)
                .await?;
            check_len(&*self.repos[other], asked.len(), answers.len())?;
            for (i, twin) in unknown.into_iter().zip(answers) {
                found[i] = twin;
            }
        }
        let mut writes = Vec::new();
        let mut owners = Vec::new();
        let mut intents = Vec::new();
        for ((item, key), twin) in items.iter().zip(&keys).zip(found) {
            if let Some(t) = twin {
                ready.insert(item.id.clone(), Ready::Found(t));
                continue;
            }
            self.check_foreign_intent(side, &item.id).await?;
            let mapped = self.mapping().map_for_create(d, &item.fields);
            if let Some(e) = mapped.errors.into_iter().next() {
                ready.insert(item.id.clone(), Ready::Created(Err(e)));
                continue;
            }
            intents.push(self.intent_for(side, item, key, &mapped.fields));
            writes.push(Write::Create {
                item_type: self.types[other].clone(),
                fields: mapped.fields,
                options: self.create_options(other, key),
            });
            owners.push(item.id.clone());
        }
        // Before anything is sent: a lost reply or a crash from here on leaves the intent, and
        // the twin found later is merged from these baselines.
        self.store.save_intents(&self.id, &intents).await?;
        // As many as the target takes in one request: one `write_many`, one request.
        let n = self.repos[other].capabilities().max_batch_write.max(1);
        // As many as the target takes in one request, and `SyncOptions::concurrency` requests
        // in flight; each answer is then taken in order.
        let sends: Vec<_> = writes
            .chunks(n)
            .map(|chunk| {
                // Still ours? A worker that outlived its lease stops before writing (ADR 0010).
                self.fenced(self.repos[other].write_many(chunk))
            })
            .collect();
        round.report.calls[other] += sends.len();
        let answers: Vec<_> = futures::stream::iter(sends)
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut failed = None;
        for ((chunk, ids), results) in writes.chunks(n).zip(owners.chunks(n)).zip(answers) {
            self.note_creates(side, ids, &results);
            let results = match results {
                Ok(r) if r.len() == chunk.len() => r,
                Ok(r) => {
                    failed.get_or_insert(
                        Error::protocol(
                            "write_many",
                            format!(
                                "{} answered {} results for {} creates",
                                self.repos[other],
                                r.len(),
                                chunk.len()
                            ),
                        )
                        .with_temporary(true),
                    );
                    continue;
                }
                Err(e) => {
                    failed.get_or_insert(e);
                    continue;
                }
            };
            for (id, r) in ids.iter().zip(results) {
                self.note_creates(side, std::slice::from_ref(id), &r);
                // Only the fields the spec knows are kept of the answer (a whole item each).
                let r = r.map(|mut created| {
                    created.fields = self.compact(other, std::mem::take(&mut created.fields));
                    created
                });
                ready.insert(id.clone(), Ready::Created(r));
            }
        }
        if let Some(e) = failed {
            return Err(e);
        }
        Ok(ready)
    }

    /// An item with no link: find or create its twin (or take what the page's batch did), link
    /// them and merge.
    pub(crate) async fn unlinked(
        &self,
        side: Side,
        item: WorkItem,
        ready: Option<Ready>,
        round: &mut Round,
    ) -> Result<Outcome> {
        let d = direction_from(side);
        if !self.wants_twin(side, &item) {
            return Ok(Outcome::Ignored);
        }
        let other = side.other();
        let key = self.key_for(side, &item.id);
        let (found, created) = match ready {
            Some(Ready::Found(t)) => (Some(t), None),
            Some(Ready::Created(r)) => (None, Some(r)),
            None => {
                let found = if self.twin_may_exist(side, &item.id, round).await? {
                    round.report.calls[other] += 1;
                    self.repos[other]
                        .find_by_correlation(&self.types[other], &key)
                        .await?
                } else {
                    None
                };
                (found, None)
            }
        };
        // The baselines of the link: for a twin created now, the source as mapped and the twin
        // as created; for one found after a lost reply, what the intent recorded when it was
        // sent (so edits made since on either side merge), or nothing at all when no intent is
        // left (both sides' values are then news, and the conflict policy settles differences).
        let (twin, baseline, twin_baseline) = match found {
            Some(t) => {
                round.report.relinked[other] += 1;
                let intent = self.store.intent(&self.id, side, &item.id).await?;
                if intent.is_none()
                    && let Some(link) = self.store.link(&self.id, side, &item.id).await?
                    && link.id(other) == &t.id
                {
                    // No intent, but a link now: the worker before this one stored it (and then
                    // dropped the intent) while this one was looking the twin up. Its link
                    // holds the baselines; merge from it, not from nothing.
                    tracing::info!(pair = %self.id, from = %item.id, to = %t.id, "twin linked meanwhile by another worker");
                    let (l, r) = match side {
                        Side::Left => (item, t),
                        Side::Right => (t, item),
                    };
                    return self.merge(link, side, l, r, round).await;
                }
                tracing::info!(pair = %self.id, from = %item.id, to = %t.id, intent = intent.is_some(), "twin found by its correlation key: relinked");
                match intent {
                    Some(i) => {
                        let twin_base = self.fresh_twin_baseline(d, &i.sent);
                        (t, i.source_baseline, twin_base)
                    }
                    None => (t, FieldMap::new(), FieldMap::new()),
                }
            }
            None => {
                let created = match created {
                    Some(r) => r?,
                    None => {
                        let mapped = self.mapping().map_for_create(d, &item.fields);
                        if let Some(e) = mapped.errors.into_iter().next() {
                            return Err(e);
                        }
                        self.check_foreign_intent(side, &item.id).await?;
                        let intent = self.intent_for(side, &item, &key, &mapped.fields);
                        self.store.save_intents(&self.id, &[intent]).await?;
                        round.report.calls[other] += 1;
                        let r = self
                            .fenced(self.repos[other].create(
                                &self.types[other],
                                &mapped.fields,
                                &self.create_options(other, &key),
                            ))
                            .await;
                        self.note_creates(side, std::slice::from_ref(&item.id), &r);
                        r?
                    }
                };
                round.report.created[other] += 1;
                round.fresh = Some((other, created.id.clone()));
                tracing::info!(pair = %self.id, from = %item.id, to = %created.id, "twin created");
                let base = self.source_baseline(d, &item.fields);
                let twin_base = self.fresh_twin_baseline(d, &created.fields);
                (created, base, twin_base)
            }
        };
        let mut link = Link {
            left: ItemId::new(""),
            right: ItemId::new(""),
            key,
            left_version: None,
            right_version: None,
            left_baseline: FieldMap::new(),
            right_baseline: FieldMap::new(),
            pending: None,
            left_held: false,
            right_held: false,
        };
        match side {
            Side::Left => {
                link.left = item.id.clone();
                link.right = twin.id.clone();
            }
            Side::Right => {
                link.left = twin.id.clone();
                link.right = item.id.clone();
            }
        }
        // The source baseline is the item as it was mapped; the twin's is as created. The
        // source's version stays unset so the merge below always runs (state, comments).
        link.set(other, twin.version.clone(), twin_baseline);
        match side {
            Side::Left => link.left_baseline = baseline,
            Side::Right => link.right_baseline = baseline,
        }
        // Still ours? A worker that outlived its lease must not store the link and drop the
        // intent while the next worker, which found no link, is looking the twin up: that one
        // would then find neither and merge from empty baselines (two workers lost a title so).
        // Stopped here, the intent stays for the next worker.
        self.renew_lease().await?;
        self.store
            .save_links(
                &self.id,
                std::slice::from_ref(&link),
                &[(side, item.id.clone())],
            )
            .await?;
        let (l, r) = match side {
            Side::Left => (item, twin),
            Side::Right => (twin, item),
        };
        self.merge(link, side, l, r, round).await
    }

    /// The source's baseline when its twin is created: the fields just mapped, less the state,
    /// so the merge walks the new twin's workflow to the mapped state.
    pub(crate) fn source_baseline(&self, d: Direction, fields: &FieldMap) -> FieldMap {
        let mut base = fields.clone();
        if let Some((sf, _)) = self.mapping().state().and_then(|s| s.fields(d)) {
            base.remove(sf.as_str());
        }
        base
    }

    /// Whether `side`'s unlinked item may have a twin the store does not know of, so that it
    /// is looked up by its correlation key before one is created ([`TwinLookup`]).
    pub(crate) async fn twin_may_exist(
        &self,
        side: Side,
        item: &ItemId,
        round: &mut Round,
    ) -> Result<bool> {
        let other = side.other();
        if !self.repos[other].capabilities().correlation {
            return Ok(false);
        }
        if self.options.twin_lookup == TwinLookup::Always
            || self.uncertain_lock().contains(&(side, item.clone()))
            || self.store.intent(&self.id, side, item).await?.is_some()
        {
            return Ok(true);
        }
        if let Some(held) = round.correlated[side] {
            return Ok(held);
        }
        if !round.first[side] {
            return Ok(false);
        }
        round.report.calls[other] += 1;
        let held = self.repos[other]
            .holds_correlated(&self.types[other])
            .await?;
        tracing::debug!(pair = %self.id, side = %side, held, "first round: whether the other side holds correlated items");
        if held {
            // Every item is looked up until this side's scan has caught up, in this round or,
            // if it stops, in the next ones.
            self.store
                .save_cursor(
                    &self.lookup_key(),
                    side,
                    &Cursor::beginning().with_token(CATCHING_UP),
                )
                .await?;
        }
        round.correlated[side] = Some(held);
        Ok(held)
    }

    /// Where the store keeps, per side, whether a first round that found twins made before
    /// has caught up.
    fn lookup_key(&self) -> String {
        format!("{}/twin-lookup", self.id)
    }

    /// Whether `side`'s first round found twins made before and has not caught up yet.
    async fn catching_up(&self, side: Side) -> Result<bool> {
        Ok(self
            .store
            .cursor(&self.lookup_key(), side)
            .await?
            .is_some_and(|c| c.token() == Some(CATCHING_UP)))
    }

    /// The intent recorded before creating the twin of `item` with `sent`.
    pub(crate) fn intent_for(
        &self,
        side: Side,
        item: &WorkItem,
        key: &CorrelationKey,
        sent: &FieldMap,
    ) -> CreateIntent {
        CreateIntent {
            side,
            source: item.id.clone(),
            key: key.clone(),
            source_baseline: self.source_baseline(direction_from(side), &item.fields),
            sent: sent.clone(),
            at: Utc::now(),
            run: process_run().to_owned(),
        }
    }

    fn own_writes_lock(&self) -> std::sync::MutexGuard<'_, PerSide<OwnWrites>> {
        self.own_writes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The items this process wrote to `side` that are still echoes as their links tell (at
    /// the versions written, no write of unknown outcome): the pass's scan may leave them out.
    /// The others are forgotten.
    async fn own_writes_to_skip(&self, side: Side) -> Result<Vec<(ItemId, Version)>> {
        let written: Vec<(ItemId, Version)> = self.own_writes_lock()[side]
            .iter()
            .map(|(id, (v, _))| (id.clone(), v.clone()))
            .collect();
        if written.is_empty() {
            return Ok(written);
        }
        // A chunk's links at a time: a backfill's thousands of links are not held at once.
        let mut echoes = Vec::with_capacity(written.len());
        let mut changed = Vec::new();
        for chunk in written.chunks(self.options.chunk_for(1)) {
            let ids: Vec<ItemId> = chunk.iter().map(|(id, _)| id.clone()).collect();
            let links = self.store.links_of(&self.id, side, &ids).await?;
            check_answers("the state store", "links_of", ids.len(), links.len())?;
            for ((id, v), l) in chunk.iter().zip(links) {
                if l.is_some_and(|l| l.pending.is_none() && l.version(side) == Some(v)) {
                    echoes.push((id.clone(), v.clone()));
                } else {
                    changed.push(id.clone());
                }
            }
        }
        let mut all = self.own_writes_lock();
        for id in changed {
            all[side].remove(&id);
        }
        Ok(echoes)
    }

    /// Remembers that this process left `side`'s item `id` at `version`, changed at `at`, for
    /// the side's scans to leave out until they have moved past it — where the side's backend
    /// can ([`Capabilities::skips_known`]); bounded by [`OWN_WRITES_KEPT`].
    ///
    /// [`Capabilities::skips_known`]: workbridge_core::Capabilities::skips_known
    pub(crate) fn note_own_write(
        &self,
        side: Side,
        id: &ItemId,
        version: &Version,
        at: chrono::DateTime<Utc>,
    ) {
        if !self.repos[side].capabilities().skips_known {
            return;
        }
        let mut all = self.own_writes_lock();
        let mine = &mut all[side];
        if mine.len() < OWN_WRITES_KEPT || mine.contains_key(id) {
            mine.insert(id.clone(), (version.clone(), at));
        }
    }

    /// Forgets the writes to `side` that a scan starting at `next` no longer reaches.
    fn own_writes_passed(&self, side: Side, next: &Cursor) {
        let mut all = self.own_writes_lock();
        match next.position() {
            Some((from, _)) => all[side].retain(|_, (_, at)| *at >= *from),
            None => all[side].clear(),
        }
    }

    pub(crate) fn uncertain_lock(&self) -> std::sync::MutexGuard<'_, HashSet<(Side, ItemId)>> {
        self.uncertain
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Remembers whether creates of twins for `items` ended without a known outcome (a
    /// timeout, a lost reply: [`Error::maybe_applied`]).
    pub(crate) fn note_creates<T>(&self, side: Side, items: &[ItemId], result: &Result<T>) {
        let mut u = self.uncertain_lock();
        for id in items {
            match result {
                Err(e) if e.maybe_applied() => u.insert((side, id.clone())),
                _ => u.remove(&(side, id.clone())),
            };
        }
    }

    /// Refuses to create a twin for `item` while another process's create for it may still
    /// land: a temporary error, so the cursor stays before the item and a later round (once the
    /// twin is found by its key, or the grace is over) takes it.
    pub(crate) async fn check_foreign_intent(&self, side: Side, item: &ItemId) -> Result<()> {
        let Some(i) = self.store.intent(&self.id, side, item).await? else {
            return Ok(());
        };
        let own = i.run == process_run();
        if own && !self.uncertain_lock().contains(&(side, item.clone())) {
            return Ok(());
        }
        let age = (Utc::now() - i.at).to_std().unwrap_or_default();
        if age >= self.options.in_flight_grace {
            return Ok(());
        }
        let who = if own {
            "this process, without learning the outcome,".to_owned()
        } else {
            format!("another process (run {})", i.run)
        };
        Err(Error::new(
            ErrorKind::Conflict,
            format!(
                "{side} item {item}: {who} began creating its twin {} ago and that create may still land; it is taken again after {}",
                seconds(age),
                seconds(self.options.in_flight_grace)
            ),
        )
        .with_operation("create")
        .with_item(self.types[side].clone(), item.clone())
        .with_temporary(true))
    }

    /// The baseline of a twin just created from the source side of `d`: its fields, less
    /// those that only flow back (and the state that flows back), so their first values reach
    /// the source in the same round (a new Bug's `New` state shows on the ticket at once).
    pub(crate) fn fresh_twin_baseline(&self, d: Direction, fields: &FieldMap) -> FieldMap {
        let back = d.reverse();
        let only_back = match back {
            Direction::LeftToRight => Flow::LeftToRight,
            Direction::RightToLeft => Flow::RightToLeft,
        };
        let mut base = fields.clone();
        let mapping = self.mapping();
        for r in mapping.rules().iter().filter(|r| r.flow() == only_back) {
            if let Some(f) = r.source_field(back) {
                base.remove(f.as_str());
            }
        }
        // A state that flows only back: the twin's first state is news for the source. One that
        // flows both ways was just set from the source (or is the workflow's initial state the
        // forward walk starts from): not news, or it would conflict with that walk.
        if let Some(state) = self.mapping().state()
            && state.fields(d).is_none()
            && let Some((sf, _)) = state.fields(back)
        {
            base.remove(sf.as_str());
        }
        base
    }
}
