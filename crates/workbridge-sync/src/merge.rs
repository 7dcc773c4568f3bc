//! The merge of a linked pair: planned, applied with pending writes, learnt (ADR 0012, 0014).

#[allow(clippy::wildcard_imports)]
use super::*;

impl SyncPair {
    /// The three-way merge of a linked pair, applied with `if_version`; on a version conflict
    /// both items are read again and the merge planned again (bounded).
    pub(crate) async fn merge(
        &self,
        mut link: Link,
        from: Side,
        mut left: WorkItem,
        mut right: WorkItem,
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
        let wf = self.workflows().await?;
        let mut attempt = 0;
        let (mut errors, mut conflicts);
        loop {
            // A write whose outcome the link does not know — of an earlier round, or of this
            // merge when its answer was a conflict after the fact: did it land?
            if let Some(pw) = link.pending.take() {
                let written = match pw.side {
                    Side::Left => &left,
                    Side::Right => &right,
                };
                let landed = self.landed(&pw, written, round).await?;
                tracing::debug!(pair = %self.id, side = %pw.side, item = %written.id, landed = ?landed.as_ref().map(|l| if l.all { "all" } else { "first steps" }), "a write without a known outcome");
                match landed {
                    Some(l) if l.all => learn_landed(&mut link, &pw, &l.values),
                    Some(l) => learn_steps_landed(&mut link, &pw, &l.values),
                    None => {}
                }
            }
            let p = plan(
                &self.mapping(),
                PlanInput {
                    left: &left,
                    right: &right,
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
            errors = p.errors.clone();
            conflicts = p.conflicts.clone();
            match self
                .apply(&p, &mut left, &mut right, &mut link, round)
                .await
            {
                Ok(()) => {
                    for (side, w) in [(Side::Left, &p.left), (Side::Right, &p.right)] {
                        let item = if side == Side::Left { &left } else { &right };
                        let mut base = item.fields.clone();
                        for f in &w.keep_baseline {
                            copy_field(&mut base, link.baseline(side), f);
                        }
                        link.set(side, item.version.clone(), base);
                    }
                    break;
                }
                Err(e)
                    if e.kind() == ErrorKind::Conflict
                        && e.operation() != Some(LEASE)
                        && attempt < self.options.conflict_retries =>
                {
                    attempt += 1;
                    tracing::debug!(pair = %self.id, attempt, "version conflict: reading both items again");
                    left = self.read_one(Side::Left, &link.left).await?;
                    right = self.read_one(Side::Right, &link.right).await?;
                    round.report.calls.left += 1;
                    round.report.calls.right += 1;
                }
                Err(e) => {
                    // What landed, and the write whose outcome is unknown, go to the store; the
                    // next round's merge starts from them.
                    self.renew_lease().await?;
                    self.store.save_link(&self.id, &link).await?;
                    return Err(e);
                }
            }
        }
        round.report.conflicts.extend(conflicts);
        let fresh = round
            .fresh
            .take()
            .filter(|(side, id)| link.id(*side) == id)
            .map(|(side, _)| side);
        // Comments and attachments before the link is stored: stored first, a copy that then
        // failed left both items at the versions the link knew, and the next round took them
        // for echoes and never copied it. Until this save the store holds the link as it was
        // before (older versions) or with a pending write: neither is an echo.
        if let Err(e) = self.copy_extras(&link, fresh, &mut round.report).await {
            link.left_version = None;
            link.right_version = None;
            self.renew_lease().await?;
            self.store.save_link(&self.id, &link).await?;
            return Err(e);
        }
        self.renew_lease().await?;
        self.store.save_link(&self.id, &link).await?;
        if let Some(e) = errors.into_iter().next() {
            // The rest was applied; the item is parked with what could not be.
            return Err(e.with_temporary(false));
        }
        Ok(Outcome::Done)
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
        if !repo.capabilities().history {
            return Ok(None);
        }
        round.report.calls[pw.side] += 1;
        let then = repo
            .revision_after(&self.types[pw.side], &written.id, at, pw.writes.max(1))
            .await?;
        Ok(then
            .filter(|t| holds(&pw.fields, &t.fields))
            .map(|t| Landed {
                values: t.fields,
                all: true,
            }))
    }

    /// Applies a plan's writes, left side first. Before a side is written the link is stored
    /// with that write as pending (ADR 0012); once it landed the link learns it: that side's
    /// written fields and the other side's fields they came from advance, so a failure writing
    /// the other side leaves a link that neither takes our own writes for news nor misses what
    /// changes on the other side meanwhile.
    pub(crate) async fn apply(
        &self,
        p: &SyncPlan,
        left: &mut WorkItem,
        right: &mut WorkItem,
        link: &mut Link,
        round: &mut Round,
    ) -> Result<()> {
        for side in [Side::Left, Side::Right] {
            let (item, other) = match side {
                Side::Left => (&mut *left, &*right),
                Side::Right => (&mut *right, &*left),
            };
            let updates = p.side(side).updates();
            if updates.is_empty() {
                round.report.unchanged[side] += 1;
                continue;
            }
            let mut sent = FieldMap::new();
            for u in &updates {
                sent.merge(u);
            }
            let pending = PendingWrite {
                side,
                other_baseline: self.other_baseline_after(link, side, &sent, other),
                fields: sent,
                at: Some(item.version.clone()),
                writes: u32::try_from(updates.len()).unwrap_or(u32::MAX),
                steps: if updates.len() > 1 {
                    updates.clone()
                } else {
                    Vec::new()
                },
            };
            link.pending = Some(pending.clone());
            // One renewal covers the pending record and the first write; a transition's further
            // steps renew again.
            let mut deadline = Some(self.renew_lease().await?);
            self.store.save_link(&self.id, link).await?;
            for changes in updates {
                round.report.calls[side] += 1;
                let checked = UpdateOptions::default().if_version(item.version.clone());
                let write =
                    self.repos[side].update(&self.types[side], &item.id, &changes, &checked);
                *item = match deadline.take() {
                    Some(at) => workbridge_core::fence::within(at, write).await?,
                    None => self.fenced(write).await?,
                };
            }
            // Landed: the link learns it (in memory; it is stored with the next pending write,
            // on failure, or at the end of the merge).
            link.pending = None;
            learn_landed(link, &pending, &item.fields);
            link.set(side, item.version.clone(), link.baseline(side).clone());
            round.report.updated[side] += 1;
        }
        Ok(())
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
