//! The merge of a linked pair: planned, applied with pending writes, learnt (ADR 0012, 0014).

#[allow(clippy::wildcard_imports)]
use super::*;

/// A linked pair's merge, planned and ready to be applied: alone, or with the other merges of
/// its page, whose writes to one side go out together through `write_many`.
pub(crate) struct MergeJob {
    pub(crate) link: Link,
    pub(crate) left: WorkItem,
    pub(crate) right: WorkItem,
    pub(crate) plan: SyncPlan,
    /// Re-reads and re-plans after a version conflict so far.
    pub(crate) attempt: u32,
    /// The side whose item was created a moment ago (no comments or attachments to list).
    pub(crate) fresh: Option<Side>,
    /// The side whose item the merge took from its link unread (ADR 0022): a write to it that
    /// is refused reads it and plans again.
    pub(crate) assumed: Option<Side>,
    /// The sides whose item the job holds as a write of this merge (the create, a walk's
    /// step) was answered a moment ago: their next write offers it
    /// ([`UpdateOptions::answered`]) to a backend that would read it first.
    pub(crate) answered: PerSide<bool>,
}

impl MergeJob {
    fn item(&self, side: Side) -> &WorkItem {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }

    fn item_mut(&mut self, side: Side) -> &mut WorkItem {
        match side {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
}

/// A merge done but for storing its link, which goes to the store with the rest of its batch.
pub(crate) struct Completed {
    /// The link to store (none where the merge stored what it had to itself).
    link: Option<Link>,
    /// The sides written or created, with their versions and change times: the next scans'
    /// echoes, noted once the link is stored.
    wrote: Vec<(Side, ItemId, Version, chrono::DateTime<Utc>)>,
    /// The merge's answer once the link is stored.
    then: Result<Outcome>,
}

impl Completed {
    /// A merge that stored what it had to itself.
    fn stored(then: Outcome) -> Self {
        Completed {
            link: None,
            wrote: Vec::new(),
            then: Ok(then),
        }
    }

    /// A merge whose link is stored and then answers `then`.
    fn saving(link: Link, then: Result<Outcome>) -> Self {
        Completed {
            link: Some(link),
            wrote: Vec::new(),
            then,
        }
    }
}

/// Merges waiting to be applied together, each with the item whose outcome it is.
#[derive(Default)]
pub(crate) struct Batch {
    owners: Vec<(Side, ItemId)>,
    jobs: Vec<MergeJob>,
}

impl Batch {
    /// Adds a planned merge, whose outcome is `side`'s item `id`'s.
    pub(crate) fn push(&mut self, side: Side, id: &ItemId, job: MergeJob) {
        self.owners.push((side, id.clone()));
        self.jobs.push(job);
    }

    /// Takes an item's outcome: a merge waits for the batch, anything else is booked now.
    pub(crate) async fn take(
        &mut self,
        pair: &SyncPair,
        side: Side,
        id: &ItemId,
        result: Result<Outcome>,
        round: &mut Round,
    ) -> Result<()> {
        match result {
            Ok(Outcome::Merge(job)) => {
                self.push(side, id, *job);
                Ok(())
            }
            other => pair.settle(side, id, other, round).await,
        }
    }
}

impl SyncPair {
    /// The three-way merge of a linked pair, planned: [`Outcome::Merge`], for [`SyncPair::run_merges`]
    /// (or [`SyncPair::settle`]) to apply with `if_version`. An item that left the scope is
    /// retired at once.
    pub(crate) async fn merge(
        &self,
        link: Link,
        from: Side,
        left: WorkItem,
        right: WorkItem,
        round: &mut Round,
    ) -> Result<Outcome> {
        let source = match from {
            Side::Left => &left,
            Side::Right => &right,
        };
        if self.options.retire_out_of_scope
            && !self
                .mapping()
                .in_scope(direction_from(from), &source.fields)
            && self.mapping().may_create(direction_from(from))
        {
            // It left the scope that made it sync.
            let source = source.clone();
            return self
                .twinless(&link, from, &source, "left the sync scope", round)
                .await;
        }
        let fresh = round
            .fresh
            .take()
            .filter(|(side, id)| link.id(*side) == id)
            .map(|(side, _)| side);
        let mut job = MergeJob {
            link,
            left,
            right,
            plan: SyncPlan::default(),
            attempt: 0,
            fresh,
            assumed: None,
            answered: PerSide::default(),
        };
        if let Some(side) = fresh {
            job.answered[side] = true;
        }
        self.plan_merge(&mut job, round).await?;
        Ok(Outcome::Merge(Box::new(job)))
    }

    /// Plans a merge from the items as the job holds them, after learning whether a write whose
    /// outcome the link does not know landed — of an earlier round, or of this merge when its
    /// answer was a conflict after the fact.
    pub(crate) async fn plan_merge(&self, job: &mut MergeJob, round: &mut Round) -> Result<()> {
        let wf = self.workflows().await?;
        if let Some(pw) = job.link.pending.take() {
            let written = job.item(pw.side);
            let landed = self
                .landed(&pw, written, job.link.baseline(pw.side), round)
                .await?;
            tracing::debug!(pair = %self.id, side = %pw.side, item = %written.id, landed = ?landed.as_ref().map(|l| if l.all { "all" } else { "first steps" }), "a write without a known outcome");
            match landed {
                Some(l) if l.all => learn_landed(&mut job.link, &pw, &l.values),
                Some(l) => learn_steps_landed(&mut job.link, &pw, &l.values),
                None => {
                    if let Some(e) = self.may_still_land(&pw, &written.id) {
                        job.link.pending = Some(pw);
                        return Err(e);
                    }
                }
            }
        }
        let (left, right, link) = (&job.left, &job.right, &job.link);
        let p = plan(
            &self.mapping(),
            PlanInput {
                left,
                right,
                left_baseline: &link.left_baseline,
                right_baseline: &link.right_baseline,
                left_workflow: wf.left.as_ref(),
                right_workflow: wf.right.as_ref(),
            },
        );
        tracing::debug!(
            pair = %self.id, left = %link.left, right = %link.right,
            left_version = %left.version, right_version = %right.version,
            to_left = ?p.left.updates(), to_right = ?p.right.updates(),
            keep_left = ?p.left.keep_baseline, keep_right = ?p.right.keep_baseline,
            errors = p.errors.len(), "merge planned"
        );
        job.plan = p;
        Ok(())
    }

    /// Applies the batch's merges — each side's writes together, as many per request as the
    /// side takes — and books each item's outcome in order.
    pub(crate) async fn run_merges(&self, batch: &mut Batch, round: &mut Round) -> Result<()> {
        let owners = std::mem::take(&mut batch.owners);
        let mut jobs = std::mem::take(&mut batch.jobs);
        let mut applied = self.apply(&mut jobs, round).await;
        let gone = self.read_refused(&mut jobs, &mut applied, round).await?;
        self.list_extras(&jobs, round).await;
        let mut done: Vec<((Side, ItemId), Result<Completed>)> = Vec::with_capacity(jobs.len());
        for ((((side, id), job), applied), gone) in
            owners.into_iter().zip(jobs).zip(applied).zip(gone)
        {
            let result = match gone {
                // The twin taken from the link is gone: the item that is left is twinless.
                Some(left) => {
                    let item = job.item(left).clone();
                    self.twinless(&job.link, left, &item, "was deleted", round)
                        .await
                        .map(Completed::stored)
                }
                None => self.complete(job, applied, round).await,
            };
            done.push(((side, id), result));
        }
        self.store_completed(&mut done).await;
        for ((side, id), result) in done {
            let result = result.and_then(|c| {
                for (side, id, version, at) in &c.wrote {
                    self.note_own_write(*side, id, version, *at);
                }
                c.then
            });
            self.settle(side, &id, result, round).await?;
        }
        Ok(())
    }

    /// Stores the links of a batch's completed merges in one step, under one renewal of the
    /// lease (not a transaction per item); a failure is each of those merges' answer.
    async fn store_completed(&self, done: &mut [((Side, ItemId), Result<Completed>)]) {
        let links: Vec<Link> = done
            .iter()
            .filter_map(|(_, c)| c.as_ref().ok().and_then(|c| c.link.clone()))
            .collect();
        if links.is_empty() {
            return;
        }
        let saved = match self.renew_lease().await {
            Ok(_) => self.store.save_links(&self.id, &links, &[]).await,
            Err(e) => Err(e),
        };
        if let Err(e) = saved {
            for (_, c) in done.iter_mut() {
                if c.as_ref().is_ok_and(|c| c.link.is_some()) {
                    *c = Err(e.clone());
                }
            }
        }
    }

    /// The merges planned against a twin taken from its link (ADR 0022) whose write was
    /// refused — the twin changed since, or is gone: those twins are read in one call, planned
    /// again and applied again together. A refused write did not land
    /// (the refusal comes before anything is written), so it is not looked for. Returns, for
    /// each job whose twin is gone, the side of the item that is left.
    async fn read_refused(
        &self,
        jobs: &mut [MergeJob],
        applied: &mut [Result<()>],
        round: &mut Round,
    ) -> Result<Vec<Option<Side>>> {
        let mut gone = vec![None; jobs.len()];
        for side in [Side::Left, Side::Right] {
            let refused: Vec<usize> = (0..jobs.len())
                .filter(|&i| {
                    jobs[i].assumed == Some(side)
                        && applied[i].as_ref().is_err_and(|e| {
                            !e.maybe_applied()
                                && (e.kind() == ErrorKind::NotFound
                                    || (e.kind() == ErrorKind::Conflict
                                        && e.operation() != Some(LEASE)))
                        })
                })
                .collect();
            if refused.is_empty() {
                continue;
            }
            tracing::debug!(pair = %self.id, side = %side, refused = refused.len(), "writes against twins as their links knew them refused: reading them");
            let ids: Vec<ItemId> = refused
                .iter()
                .map(|&i| jobs[i].link.id(side).clone())
                .collect();
            let read = self.read_twins(side, &ids, round).await?;
            let mut again = vec![false; jobs.len()];
            for (&i, twin) in refused.iter().zip(read) {
                let job = &mut jobs[i];
                job.assumed = None;
                let Some(mut twin) = twin else {
                    gone[i] = Some(side.other());
                    continue;
                };
                twin.fields = self.compact(side, std::mem::take(&mut twin.fields));
                *job.item_mut(side) = twin;
                job.answered[side] = false;
                job.link.pending = None;
                applied[i] = self.plan_merge(job, round).await;
                again[i] = applied[i].is_ok();
            }
            if again.iter().any(|&a| a) {
                let answers = self.apply_some(jobs, &again, round).await;
                for (i, a) in answers.into_iter().enumerate() {
                    if again[i] {
                        applied[i] = a;
                    }
                }
            }
        }
        Ok(gone)
    }

    /// A merge after its writes: a version conflict is re-read, re-planned and applied again
    /// (bounded); then the link learns the result and comments and attachments are copied. The
    /// link is left to store with the rest of the batch ([`Completed`]).
    async fn complete(
        &self,
        mut job: MergeJob,
        mut applied: Result<()>,
        round: &mut Round,
    ) -> Result<Completed> {
        loop {
            match applied {
                Ok(()) => break,
                Err(e)
                    if e.kind() == ErrorKind::Conflict
                        && e.operation() != Some(LEASE)
                        && job.attempt < self.options.conflict_retries =>
                {
                    job.attempt += 1;
                    tracing::debug!(pair = %self.id, attempt = job.attempt, "version conflict: reading both items again");
                    job.left = self.read_one(Side::Left, &job.link.left).await?;
                    job.right = self.read_one(Side::Right, &job.link.right).await?;
                    job.answered = PerSide::default();
                    round.report.calls.left += 1;
                    round.report.calls.right += 1;
                    self.plan_merge(&mut job, round).await?;
                    applied = self
                        .apply(std::slice::from_mut(&mut job), round)
                        .await
                        .pop()
                        .unwrap_or(Ok(()));
                }
                Err(e) => {
                    // What landed, and the write whose outcome is unknown, go to the store; the
                    // next round's merge starts from them.
                    return Ok(Completed::saving(job.link, Err(e)));
                }
            }
        }
        let MergeJob {
            mut link,
            left,
            right,
            plan: p,
            fresh,
            ..
        } = job;
        for (side, w) in [(Side::Left, &p.left), (Side::Right, &p.right)] {
            let item = if side == Side::Left { &left } else { &right };
            let mut base = item.fields.clone();
            for f in &w.keep_baseline {
                copy_field(&mut base, link.baseline(side), f);
            }
            link.set(side, item.version.clone(), self.compact(side, base));
            // The item as read, or as written and answered, or as the link knew it: exact,
            // unless a field was held back (ADR 0022).
            link.set_exact(side, w.keep_baseline.is_empty());
        }
        round.report.conflicts.extend(p.conflicts);
        // Comments and attachments before the link is stored: stored first, a copy that then
        // failed left both items at the versions the link knew, and the next round took them
        // for echoes and never copied it. Until this save the store holds the link as it was
        // before (older versions) or with a pending write: neither is an echo.
        if let Err(e) = self.copy_extras(&link, fresh, round).await {
            link.left_version = None;
            link.right_version = None;
            return Ok(Completed::saving(link, Err(e)));
        }
        // The sides this merge wrote (or created) come back in their next scans as echoes, once
        // the link is stored.
        let mut wrote = Vec::new();
        for (side, w) in [(Side::Left, &p.left), (Side::Right, &p.right)] {
            if (!w.is_empty() || fresh == Some(side))
                && let Some(v) = link.version(side)
            {
                let at = if side == Side::Left { &left } else { &right }.changed_at;
                wrote.push((side, link.id(side).clone(), v.clone(), at));
            }
        }
        let then = match p.errors.into_iter().next() {
            // The rest was applied; the item is parked with what could not be.
            Some(e) => Err(e.with_temporary(false)),
            None => Ok(Outcome::Done),
        };
        Ok(Completed {
            link: Some(link),
            wrote,
            then,
        })
    }

    /// `fields` kept to those the spec reads or writes on `side` ([`Mapping::fields`]), all a
    /// baseline is compared on: a link stores a few fields per side, not whole items. Kept
    /// whole when none of them is there (an empty baseline means a pair without one).
    pub(crate) fn compact(&self, side: Side, fields: FieldMap) -> FieldMap {
        let spec = self.spec();
        let keep = &spec.fields[side];
        let mut out = FieldMap::new();
        for (name, value) in fields.iter().filter(|(n, _)| keep.contains(*n)) {
            out.insert(name.clone(), value.clone());
        }
        if out.is_empty() { fields } else { out }
    }

    /// The other side's baseline once `done`'s writes of `p` landed: the fields those writes were
    /// mapped from take the values they were read with; everything else keeps its old baseline
    /// — in particular what is still to be written to the other side, and its sources.
    pub(crate) fn other_baseline_after(
        &self,
        link: &Link,
        done: Side,
        written: &FieldMap,
        other_item: &WorkItem,
    ) -> FieldMap {
        // Writes to `done` flow from the other side.
        let d = direction_from(done.other());
        let mapping = self.mapping();
        let mut sources: Vec<&FieldName> = mapping
            .rules()
            .iter()
            .filter(|r| r.target(d).is_some_and(|t| written.contains(t.as_str())))
            .filter_map(|r| r.source_field(d))
            .collect();
        if let Some((src, tgt)) = mapping.state().and_then(|s| s.fields(d))
            && written.contains(tgt.as_str())
        {
            sources.push(src);
        }
        let mut base = link.baseline(done.other()).clone();
        for f in sources {
            copy_field(&mut base, &other_item.fields, f);
        }
        base
    }

    /// A write the item does not show yet that may still land (ADR 0019): sent within
    /// [`SyncOptions::in_flight_grace`] without a definite answer. Sending it again — from
    /// fresher reads — and then having the first land late would write older values over
    /// newer ones; the item waits, parked (temporary), until it shows the write or the grace
    /// is over, and then is planned as if the write never landed.
    fn may_still_land(&self, pw: &PendingWrite, id: &ItemId) -> Option<Error> {
        let age = (Utc::now() - pw.sent?).to_std().unwrap_or_default();
        if age >= self.options.in_flight_grace {
            return None;
        }
        Some(
            Error::new(
                ErrorKind::Conflict,
                format!(
                    "the write to {} item {id} sent {} ago without a known outcome may still land; it is not sent again until the item shows it or {} have passed",
                    pw.side,
                    seconds(age),
                    seconds(self.options.in_flight_grace)
                ),
            )
            .with_operation("update")
            .with_item(self.types[pw.side].clone(), id.clone())
            .with_temporary(true),
        )
    }

    /// Whether a write whose outcome the link does not know landed, and the values it left
    /// (ADR 0012, 0014). The item holding the values sent says it did. Otherwise, if the item
    /// changed since the version the write was made against and its side keeps a history, the
    /// change the write would have made tells: it may have landed and been changed again since
    /// (a QA verdict after the sync's own write), which the values alone cannot tell from a
    /// write that never landed.
    pub(crate) async fn landed(
        &self,
        pw: &PendingWrite,
        written: &WorkItem,
        before: &FieldMap,
        round: &mut Round,
    ) -> Result<Option<Landed>> {
        let holds = |wrote: &FieldMap, fields: &FieldMap| {
            wrote
                .iter()
                .all(|(f, v)| same(fields.get(f.as_str()), Some(v)))
        };
        if holds(&pw.fields, &written.fields) {
            return Ok(Some(Landed {
                values: written.fields.clone(),
                all: true,
            }));
        }
        // A walk whose first steps landed and the rest not: the item holds what those steps
        // wrote. Without this, the step that landed looked like an edit on that side, newer than
        // the change the walk came from, and could win the field back.
        let mut through = FieldMap::new();
        for step in pw.steps.iter().take(pw.steps.len().saturating_sub(1)) {
            through.merge(step);
            if holds(&through, &written.fields) {
                // Which steps it was does not matter: the item's own values are learnt.
                return Ok(Some(Landed {
                    values: written.fields.clone(),
                    all: false,
                }));
            }
        }
        let repo = &self.repos[pw.side];
        let Some(at) = pw.at.as_ref().filter(|at| **at != written.version) else {
            return Ok(None); // unchanged since: it did not land
        };
        if repo.capabilities().history {
            round.report.calls[pw.side] += 1;
            let then = repo
                .revision_after(&self.types[pw.side], &written.id, at, pw.writes.max(1))
                .await?;
            return Ok(then
                .filter(|t| holds(&pw.fields, &t.fields))
                .map(|t| Landed {
                    values: t.fields,
                    all: true,
                }));
        }
        // No history by version; an audit trail may still say the values were set after the
        // write was sent: it landed, and what the item holds now came after it — set back to
        // what it held before (QA reopening what the sync had just marked fixed), which the
        // values alone take for a write that never landed (ADR 0025). The trail's time is the
        // server's, to the second: a little before the send is counted too.
        if let Some(sent) = pw.sent {
            let since = sent - chrono::TimeDelta::seconds(2);
            if let Some(set) = repo
                .written_since(&self.types[pw.side], &written.id, &pw.fields, since)
                .await?
            {
                round.report.calls[pw.side] += 1;
                if set {
                    return Ok(Some(Landed {
                        values: pw.fields.clone(),
                        all: true,
                    }));
                }
            }
        }
        // No history. Every written field that does not hold what was sent holds a third value,
        // neither that nor what it held before: someone wrote it after this write was made, so
        // their value is newer than the change the write carried, whether the write landed or
        // not. Taken as landed and changed since, their value is news for the other side, and
        // the write's own change is not sent again over it (QA's verdict given after the sync's
        // write had landed with its answer lost was so written over).
        let third = |f: &FieldName, sent: &workbridge_core::FieldValue| {
            let now = written.fields.get(f.as_str());
            same(now, Some(sent)) || !same(now, before.get(f.as_str()))
        };
        if pw.fields.iter().all(|(f, v)| third(f, v)) {
            return Ok(Some(Landed {
                values: pw.fields.clone(),
                all: true,
            }));
        }
        Ok(None)
    }

    /// Stores the links of the jobs `which` in one step; if the store fails, each of those
    /// jobs fails with its error (the rest of the page goes on).
    async fn save_or_fail(&self, links: &[Link], which: &[usize], state: &mut [Result<()>]) {
        if let Err(e) = self.store.save_links(&self.id, links, &[]).await {
            for &i in which {
                state[i] = Err(e.clone());
            }
        }
    }

    /// Applies the plans' writes, left side first; each job's answer says whether all its
    /// writes landed. Before a side is written each link is stored with that write as pending
    /// (ADR 0012); once it landed the link learns it: that side's written fields and the other
    /// side's fields they came from advance, so a failure writing the other side leaves a link
    /// that neither takes our own writes for news nor misses what changes on the other side
    /// meanwhile. The writes to one side go out step by step (a state walk's first step of every
    /// job, then the second, ...), each step in requests of as many updates as the side takes:
    /// a lone update as `update`, more through `write_many`, each with its own result.
    pub(crate) async fn apply(&self, jobs: &mut [MergeJob], round: &mut Round) -> Vec<Result<()>> {
        self.apply_some(jobs, &vec![true; jobs.len()], round).await
    }

    /// [`SyncPair::apply`] of the jobs `which` marks; the others' answers are `Ok` and mean
    /// nothing.
    async fn apply_some(
        &self,
        jobs: &mut [MergeJob],
        which: &[bool],
        round: &mut Round,
    ) -> Vec<Result<()>> {
        let mut state: Vec<Result<()>> = jobs.iter().map(|_| Ok(())).collect();
        for side in [Side::Left, Side::Right] {
            let steps: Vec<Vec<FieldMap>> =
                jobs.iter().map(|j| j.plan.side(side).updates()).collect();
            let mut writing = Vec::new();
            for (i, st) in state.iter().enumerate() {
                if st.is_ok() && which[i] {
                    if steps[i].is_empty() {
                        round.report.unchanged[side] += 1;
                    } else {
                        writing.push(i);
                    }
                }
            }
            if writing.is_empty() {
                continue;
            }
            // One renewal covers the pending records and the first request; further requests
            // renew again.
            let mut deadline = match self.renew_lease().await {
                Ok(d) => Some(d),
                Err(e) => {
                    for &i in &writing {
                        state[i] = Err(e.clone());
                    }
                    continue;
                }
            };
            for &i in &writing {
                let job = &mut jobs[i];
                let mut sent = FieldMap::new();
                for u in &steps[i] {
                    sent.merge(u);
                }
                let pending = PendingWrite {
                    side,
                    other_baseline: self.other_baseline_after(
                        &job.link,
                        side,
                        &sent,
                        job.item(side.other()),
                    ),
                    fields: sent,
                    at: Some(job.item(side).version.clone()),
                    writes: u32::try_from(steps[i].len()).unwrap_or(u32::MAX),
                    steps: if steps[i].len() > 1 {
                        steps[i].clone()
                    } else {
                        Vec::new()
                    },
                    sent: Some(Utc::now()),
                };
                job.link.pending = Some(pending);
            }
            let links: Vec<Link> = writing.iter().map(|&i| jobs[i].link.clone()).collect();
            self.save_or_fail(&links, &writing, &mut state).await;
            let per_request = self.repos[side].capabilities().max_batch_write.max(1);
            let most = writing.iter().map(|&i| steps[i].len()).max().unwrap_or(0);
            // An outage, or the lease gone: nothing more is sent to this side.
            let mut halted: Option<Error> = None;
            // Whether a job's failed request may still land (its answer unknown); one that
            // failed with a definite answer, or was never sent, did not.
            let mut in_flight = vec![false; jobs.len()];
            for k in 0..most {
                let due: Vec<usize> = writing
                    .iter()
                    .copied()
                    .filter(|&i| state[i].is_ok() && steps[i].len() > k)
                    .collect();
                if let Some(e) = &halted {
                    for &i in &due {
                        state[i] = Err(e.clone());
                    }
                    continue;
                }
                let chunks: Vec<&[usize]> = due.chunks(per_request).collect();
                // Answered with the spec's fields only, where the API can narrow its answer.
                let answer = self.reads(side);
                let requests: Vec<Vec<Write>> = chunks
                    .iter()
                    .map(|chunk| {
                        chunk
                            .iter()
                            .map(|&i| {
                                let item = jobs[i].item(side);
                                let mut options = UpdateOptions::default()
                                    .if_version(item.version.clone())
                                    .answer_fields(answer.iter().cloned());
                                if jobs[i].answered[side] {
                                    options = options.answered(item.clone());
                                }
                                Write::Update {
                                    item_type: self.types[side].clone(),
                                    id: item.id.clone(),
                                    changes: steps[i][k].clone(),
                                    options,
                                }
                            })
                            .collect()
                    })
                    .collect();
                round.report.calls[side] += requests.len();
                // The step's requests in flight together (`SyncOptions::concurrency`); each
                // answer is then taken in order.
                let first = deadline.take();
                let sends: Vec<_> = requests
                    .iter()
                    .enumerate()
                    .map(|(n, writes)| self.write_updates(side, writes, first.filter(|_| n == 0)))
                    .collect();
                let answers: Vec<_> = futures::stream::iter(sends)
                    .buffered(self.options.concurrency.max(1))
                    .collect()
                    .await;
                for (chunk, answers) in chunks.into_iter().zip(answers) {
                    match answers {
                        Ok(results) => {
                            for (&i, r) in chunk.iter().zip(results) {
                                match r {
                                    Ok(mut item) => {
                                        item.fields =
                                            self.compact(side, std::mem::take(&mut item.fields));
                                        *jobs[i].item_mut(side) = item;
                                        jobs[i].answered[side] = true;
                                    }
                                    Err(e) => {
                                        if stops_the_round(&e) {
                                            halted = Some(e.clone());
                                        }
                                        in_flight[i] = e.maybe_applied();
                                        state[i] = Err(e);
                                    }
                                }
                            }
                        }
                        Err(e) => {
                            if stops_the_round(&e) {
                                halted = Some(e.clone());
                            }
                            for &i in chunk {
                                in_flight[i] = e.maybe_applied();
                                state[i] = Err(e.clone());
                            }
                        }
                    }
                }
            }
            // A failure with a definite answer, or a write never sent, did not land and cannot
            // land later: the store learns it at once (the round may stop before these merges
            // complete), so the next round plans them again without waiting.
            let mut answered = Vec::new();
            for &i in &writing {
                if state[i].is_err()
                    && !in_flight[i]
                    && let Some(p) = jobs[i].link.pending.as_mut()
                    && p.sent.take().is_some()
                {
                    answered.push(i);
                }
            }
            if !answered.is_empty() && self.renew_lease().await.is_ok() {
                let links: Vec<Link> = answered.iter().map(|&i| jobs[i].link.clone()).collect();
                self.save_or_fail(&links, &answered, &mut state).await;
            }
            // Landed: the link learns it.
            let mut learnt = Vec::new();
            for &i in &writing {
                if state[i].is_ok() {
                    let job = &mut jobs[i];
                    if let Some(pending) = job.link.pending.take() {
                        let fields = job.item(side).fields.clone();
                        learn_landed(&mut job.link, &pending, &fields);
                    }
                    let version = job.item(side).version.clone();
                    let base = self.compact(side, job.link.baseline(side).clone());
                    job.link.set(side, version, base);
                    round.report.updated[side] += 1;
                    learnt.push(i);
                }
            }
            // And the store learns it at once, not when the merge completes: the page's other
            // merges, their comments and files come first, and a process killed meanwhile
            // would leave these writes pending with their outcome to guess (a side without
            // history cannot always tell). Stored without versions, so the next round still
            // merges the pair (and copies its comments and files) rather than take it for an
            // echo.
            if !learnt.is_empty() && self.renew_lease().await.is_ok() {
                let known: Vec<Link> = learnt
                    .iter()
                    .map(|&i| {
                        let mut known = jobs[i].link.clone();
                        known.left_version = None;
                        known.right_version = None;
                        known
                    })
                    .collect();
                self.save_or_fail(&known, &learnt, &mut state).await;
            }
        }
        state
    }

    /// One request's updates to `side`, fenced by the lease (at `deadline`, or after a renewal):
    /// a lone one as `update`, more through `write_many`; one result per update.
    async fn write_updates(
        &self,
        side: Side,
        writes: &[Write],
        deadline: Option<tokio::time::Instant>,
    ) -> Result<Vec<Result<WorkItem>>> {
        let repo = &self.repos[side];
        let send = async {
            match writes {
                [
                    Write::Update {
                        item_type,
                        id,
                        changes,
                        options,
                    },
                ] => Ok(vec![repo.update(item_type, id, changes, options).await]),
                _ => repo.write_many(writes).await,
            }
        };
        let results = match deadline {
            Some(at) => workbridge_core::fence::within(at, send).await?,
            None => self.fenced(send).await?,
        };
        if results.len() == writes.len() {
            Ok(results)
        } else {
            Err(Error::protocol(
                "write_many",
                format!(
                    "{repo} answered {} results for {} updates",
                    results.len(),
                    writes.len()
                ),
            )
            .with_temporary(true))
        }
    }
}

/// What [`SyncPair::landed`] found of a write whose outcome was unknown.
#[derive(Debug)]
pub(crate) struct Landed {
    /// The written side's fields as they are now (or right after the write, from history).
    pub(crate) values: FieldMap,
    /// Whether the whole write landed, or only its first steps.
    pub(crate) all: bool,
}

/// The link after the first steps of a walk landed: the written side's baseline takes the
/// values it holds now, so the step is not taken for an edit there; the other side's baseline
/// stays, so what the walk was for is still to be written and the next plan walks on.
pub(crate) fn learn_steps_landed(link: &mut Link, w: &PendingWrite, landed: &FieldMap) {
    let mut base = link.baseline(w.side).clone();
    for f in w.fields.names() {
        copy_field(&mut base, landed, f);
    }
    link.set_baseline(w.side, base);
}

/// Sets `f` in `to` to its value in `from`, or removes it when `from` has none.
pub(crate) fn copy_field(to: &mut FieldMap, from: &FieldMap, f: &FieldName) {
    match from.get(f.as_str()) {
        Some(v) => to.insert(f.clone(), v.clone()),
        None => to.remove(f.as_str()),
    };
}

/// The link after `w` landed on `item`: the written fields take the values `item` holds, the
/// other side's baseline is the one the write recorded.
pub(crate) fn learn_landed(link: &mut Link, w: &PendingWrite, landed: &FieldMap) {
    learn_steps_landed(link, w, landed);
    link.set_baseline(w.side.other(), w.other_baseline.clone());
}
