//! Comments and attachments: copied once each, across pairs, adopted after a lost reply, and the attachment feed (ADR 0009, 0015, 0016).

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::merge::MergeJob;

/// Comments and attachments listed for a page's merges at once (`comments_many`,
/// `attachments_many`), each list taken by its item's copy; an item not here is listed alone.
#[derive(Default)]
pub(crate) struct Listed {
    comments: HashMap<(Side, ItemId), Vec<workbridge_core::Comment>>,
    attachments: HashMap<(Side, ItemId), Vec<workbridge_core::AttachmentMeta>>,
}

impl SyncPair {
    /// Whether `side`'s comments are copied to the other side.
    fn copies_comments(&self, side: Side) -> bool {
        let other = side.other();
        let (sc, dc) = (
            self.repos[side].capabilities(),
            self.repos[other].capabilities(),
        );
        let mapping = self.mapping();
        let routing = mapping.comments();
        let visibility = match other {
            Side::Left => routing.to_left,
            Side::Right => routing.to_right,
        };
        // Never downgrade a private routing to public.
        self.options.comments
            && sc.comments
            && dc.comments
            && (visibility != Visibility::Internal || dc.internal_comments)
    }

    /// Whether `side`'s attachments are copied to the other side.
    fn copies_attachments(&self, side: Side) -> bool {
        self.options.attachments
            && self.repos[side].capabilities().attachments
            && self.repos[side.other()].capabilities().attachments
    }

    /// Lists the comments and attachments of the merged items on each side together: one
    /// `comments_many` and one `attachments_many` per side for the page, where each item
    /// would cost its own listings. A listing that fails leaves its items to be listed
    /// alone, by their copies, which then meet the error themselves.
    pub(crate) async fn list_extras(&self, jobs: &[MergeJob], round: &mut Round) {
        round.listed = Listed::default();
        for side in [Side::Left, Side::Right] {
            let mut seen = HashSet::new();
            let ids: Vec<ItemId> = jobs
                .iter()
                .filter(|j| j.fresh != Some(side))
                .map(|j| j.link.id(side).clone())
                .filter(|id| seen.insert(id.clone()))
                .collect();
            if ids.is_empty() {
                continue;
            }
            let (repo, t) = (&self.repos[side], &self.types[side]);
            if self.copies_comments(side) {
                round.report.calls[side] += 1;
                match repo.comments_many(t, &ids).await {
                    Ok(lists) => round
                        .listed
                        .comments
                        .extend(ids.iter().cloned().map(|id| (side, id)).zip(lists)),
                    Err(e) => {
                        tracing::debug!(pair = %self.id, side = %side, error = %e, "comments of the page not listed together; each item's are listed alone");
                    }
                }
            }
            if self.copies_attachments(side) {
                round.report.calls[side] += 1;
                match repo.attachments_many(t, &ids).await {
                    Ok(lists) => round
                        .listed
                        .attachments
                        .extend(ids.iter().cloned().map(|id| (side, id)).zip(lists)),
                    Err(e) => {
                        tracing::debug!(pair = %self.id, side = %side, error = %e, "attachments of the page not listed together; each item's are listed alone");
                    }
                }
            }
        }
    }

    /// Files attached on `side` since the last round, where attaching one leaves the item
    /// unchanged (ServiceNow, ALM: `changes` does not show it), copied for each linked item
    /// (ADR 0016). The feed's position is stored like a cursor, under `{pair}/attachments`,
    /// with the ids already seen at its newest second.
    pub(crate) async fn attachment_feed(&self, side: Side, round: &mut Round) -> Result<()> {
        const LIMIT: usize = 200;
        let other = side.other();
        if !(self.repos[side].capabilities().attachments
            && self.repos[other].capabilities().attachments)
        {
            return Ok(());
        }
        let key = format!("{}/attachments", self.id);
        let stored = self.store.cursor(&key, side).await?;
        // The first round starts a little in the past: files attached before it are copied
        // with their item's first merge.
        let since = stored
            .as_ref()
            .and_then(Cursor::changed_at)
            .unwrap_or_else(|| Utc::now() - chrono::TimeDelta::minutes(5));
        let seen: HashSet<&str> = stored
            .as_ref()
            .and_then(Cursor::token)
            .map(|t| t.split(',').filter(|s| !s.is_empty()).collect())
            .unwrap_or_default();
        round.report.calls[side] += 1;
        let list = match self.repos[side]
            .attachments_since(&self.types[side], since, LIMIT)
            .await
        {
            Err(e) if e.kind() == ErrorKind::Unsupported => return Ok(()),
            r => r?,
        };
        let mut items: Vec<&ItemId> = Vec::new();
        for a in list.iter().filter(|a| !seen.contains(a.id.as_str())) {
            if !items.contains(&&a.item_id) {
                items.push(&a.item_id);
            }
        }
        for id in items {
            // An unlinked item's files are copied when it is linked: its first merge. A linked
            // item's files older than the feed's start were copied by its merges; its new ones
            // are in the feed, which need not be asked again.
            if let Some(link) = self.store.link(&self.id, side, id).await? {
                let files = list.iter().filter(|a| a.item_id == *id).cloned().collect();
                self.copy_attachments(&link, side, Some(files), &mut round.report)
                    .await?;
            }
        }
        let newest = list.iter().filter_map(|a| a.created_at).max();
        let next = match newest {
            Some(t) if t <= since && list.len() >= LIMIT => {
                // More files in one second than one request reads: go on past it.
                tracing::warn!(pair = %self.id, side = %side, at = %t, "more than {LIMIT} files attached in one second; the feed moves on past it");
                Cursor::at(t + chrono::TimeDelta::seconds(1), ItemId::new(""))
            }
            Some(t) => {
                let ids: Vec<&str> = list
                    .iter()
                    .filter(|a| a.created_at == Some(t))
                    .map(|a| a.id.as_str())
                    .collect();
                Cursor::at(t, ItemId::new("")).with_token(ids.join(","))
            }
            None => match stored {
                Some(c) => c,
                None => Cursor::at(since, ItemId::new("")),
            },
        };
        self.store.save_cursor(&key, side, &next).await
    }

    /// New comments and attachments of either item, copied once each.
    pub(crate) async fn copy_extras(
        &self,
        link: &Link,
        fresh: Option<Side>,
        round: &mut Round,
    ) -> Result<()> {
        for side in [Side::Left, Side::Right]
            .into_iter()
            .filter(|s| Some(*s) != fresh)
        {
            let key = (side, link.id(side).clone());
            if self.copies_comments(side) {
                let listed = round.listed.comments.remove(&key);
                self.copy_comments(link, side, listed, &mut round.report)
                    .await?;
            }
            if self.copies_attachments(side) {
                let listed = round.listed.attachments.remove(&key);
                self.copy_attachments(link, side, listed, &mut round.report)
                    .await?;
            }
        }
        Ok(())
    }

    /// The key of an item across pairs: its system, type and id.
    pub(crate) fn item_key(&self, side: Side, id: &ItemId) -> String {
        format!("{}|{}|{}", self.repos[side], self.types[side], id)
    }

    /// Copies `side`'s new comments to the other item: those `listed` for the page, or listed
    /// here.
    pub(crate) async fn copy_comments(
        &self,
        link: &Link,
        side: Side,
        listed: Option<Vec<workbridge_core::Comment>>,
        report: &mut SyncReport,
    ) -> Result<()> {
        let other = side.other();
        let mapping = self.mapping();
        let routing = mapping.comments();
        let visibility = match other {
            Side::Left => routing.to_left,
            Side::Right => routing.to_right,
        };
        let comments = match listed {
            Some(l) => l,
            None => {
                report.calls[side] += 1;
                self.repos[side]
                    .comments(&self.types[side], link.id(side))
                    .await?
            }
        };
        // Across every pair sharing the store, a comment reaches an item once: not back where
        // it was first written, and not again by another path (three systems, three pairs).
        let target = self.item_key(other, link.id(other));
        let mut on_target: Option<Vec<String>> = None;
        // The target's comments that no copy record claims, read once before the first copy.
        let mut unclaimed: Option<Vec<Unclaimed>> = None;
        for c in comments {
            if c.visibility == Visibility::Internal && !routing.copy_internal {
                continue;
            }
            // Keyed by item: ALM numbers each defect's comments from one.
            let here = format!("{}|{}", self.item_key(side, link.id(side)), c.id);
            if self
                .store
                .copied(&self.id, Copied::Comment, side, &here)
                .await?
            {
                continue;
            }
            let origin = self
                .store
                .comment_origin(&here)
                .await?
                .unwrap_or_else(|| here.clone());
            let origins = match &mut on_target {
                Some(o) => o,
                None => on_target.insert(self.store.comment_origins_on(&target).await?),
            };
            if origin.starts_with(&format!("{target}|")) || origins.contains(&origin) {
                // Already there: remember it for this pair, copy nothing.
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, %origin, "comment already on the other item");
                self.store
                    .record_copy(&self.id, Copied::Comment, side, &here, "")
                    .await?;
                continue;
            }
            let mut new = NewComment::public(self.attributed(side, &c)).with_format(c.format);
            new.visibility = visibility;
            // A copy whose answer was lost, or whose process was killed before recording it,
            // is on the target already, unclaimed: adopt it rather than write it twice.
            let claimable = match &mut unclaimed {
                Some(u) => u,
                None => unclaimed.insert(self.unclaimed_comments(link, other, report).await?),
            };
            // Or this comment is itself such a copy, made the other way: the words of an
            // unclaimed comment over there as its copy here would read. Copied on as news, it
            // would come back to its own item.
            let own = comment_text(&c.body, c.format);
            if let Some(pos) = claimable.iter().position(|u| u.as_copy == own) {
                let from = claimable.swap_remove(pos);
                let there = format!("{target}|{}", from.id);
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, source = %from.id, "a copy made the other way found here, adopted");
                self.store
                    .record_copy(&self.id, Copied::Comment, other, &there, &here)
                    .await?;
                self.store
                    .record_comment_origin(&here, &self.item_key(side, link.id(side)), &there)
                    .await?;
                continue;
            }
            let text = comment_text(&new.body, new.format);
            // A copy whose outcome is unknown is recorded as an intent: until it shows on the
            // target (and is adopted) or the grace is over, it may still land — a request held
            // on its way — and is not sent again.
            let intent_id = ItemId::new(format!("comment:{here}"));
            if let Some(pos) = claimable.iter().position(|u| u.text == text) {
                let id = claimable.swap_remove(pos).id;
                let there = format!("{target}|{id}");
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, copy = %id, %origin, "an earlier copy found on the other item, adopted");
                self.store
                    .record_copy(&self.id, Copied::Comment, side, &here, &there)
                    .await?;
                self.store
                    .record_comment_origin(&there, &target, &origin)
                    .await?;
                self.store.clear_intent(&self.id, side, &intent_id).await?;
                origins.push(origin);
                continue;
            }
            let what = format!("the copy of comment {}", c.id);
            self.intend_copy(
                link,
                side,
                &intent_id,
                ("add_comment", &what),
                format!("comment:{target}"),
            )
            .await?;
            report.calls[other] += 1;
            let copy = self
                .fenced(self.repos[other].add_comment(&self.types[other], link.id(other), &new))
                .await;
            let copy = self.copy_sent(side, &intent_id, copy).await?;
            let there = format!("{target}|{}", copy.id);
            self.store
                .record_copy(&self.id, Copied::Comment, side, &here, &there)
                .await?;
            self.store
                .record_comment_origin(&there, &target, &origin)
                .await?;
            self.store.clear_intent(&self.id, side, &intent_id).await?;
            tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), comment = %c.id, copy = %copy.id, %origin, "comment copied");
            origins.push(origin);
            report.comments_copied[other] += 1;
        }
        Ok(())
    }

    /// A comment of `side` as its copy on the other side reads: headed with its author and
    /// the system's kind ("Ana Lopez (azure-devops):"), not its address.
    pub(crate) fn attributed(&self, side: Side, c: &workbridge_core::Comment) -> String {
        let Some(who) = c
            .author
            .as_ref()
            .and_then(|a| a.display_name.clone().or_else(|| a.login.clone()))
        else {
            return c.body.clone();
        };
        let system = self.repos[side].to_string();
        let system = system.split(':').next().unwrap_or_default();
        match c.format {
            workbridge_core::TextFormat::Html => {
                format!("<p><b>{}</b> ({system}):</p>{}", escape(&who), c.body)
            }
            _ => format!("{who} ({system}):\n{}", c.body),
        }
    }

    /// The comments on `side`'s item that neither a copy record nor an origin record claims,
    /// with their text as `comment_text` gives it.
    pub(crate) async fn unclaimed_comments(
        &self,
        link: &Link,
        side: Side,
        report: &mut SyncReport,
    ) -> Result<Vec<Unclaimed>> {
        report.calls[side] += 1;
        let here = self.item_key(side, link.id(side));
        let mut out = Vec::new();
        for c in self.repos[side]
            .comments(&self.types[side], link.id(side))
            .await?
        {
            let key = format!("{here}|{}", c.id);
            if self.store.comment_origin(&key).await?.is_none()
                && !self
                    .store
                    .copied(&self.id, Copied::Comment, side, &key)
                    .await?
            {
                let as_copy = comment_text(&self.attributed(side, &c), c.format);
                out.push(Unclaimed {
                    text: comment_text(&c.body, c.format),
                    as_copy,
                    id: c.id,
                });
            }
        }
        Ok(out)
    }

    /// Copies `side`'s new attachments to the other item: those `listed` for the page, or
    /// listed here.
    pub(crate) async fn copy_attachments(
        &self,
        link: &Link,
        side: Side,
        listed: Option<Vec<workbridge_core::AttachmentMeta>>,
        report: &mut SyncReport,
    ) -> Result<()> {
        let other = side.other();
        let list = match listed {
            Some(l) => l,
            None => {
                report.calls[side] += 1;
                self.repos[side]
                    .attachments(&self.types[side], link.id(side))
                    .await?
            }
        };
        let cap = self.repos[other]
            .capabilities()
            .max_attachment_size
            .map_or(self.options.max_attachment_size, |m| {
                m.min(self.options.max_attachment_size)
            });
        let (src, dst) = (
            self.item_key(side, link.id(side)),
            self.item_key(other, link.id(other)),
        );
        // The target's attachments that no copy record claims, listed before the first upload.
        let mut unclaimed: Option<Vec<workbridge_core::AttachmentMeta>> = None;
        for a in list {
            // Keyed by item, like comments: an id need not be unique beyond its item.
            let here = format!("{src}|{}", a.id);
            if self
                .store
                .copied(&self.id, Copied::Attachment, side, &here)
                .await?
            {
                continue;
            }
            // Too large: reported once, and remembered so it is not downloaded again.
            let skip = |report: &mut SyncReport| {
                report.attachments_skipped[side] += 1;
                tracing::warn!(pair = %self.id, attachment = %a.file_name, cap, "attachment over the size cap not copied");
            };
            if a.size.is_some_and(|s| s > cap) {
                skip(report);
                self.store
                    .record_copy(&self.id, Copied::Attachment, side, &here, "")
                    .await?;
                continue;
            }
            report.calls[side] += 1;
            let data = self.repos[side].download(&a).await?;
            if data.len() as u64 > cap {
                skip(report);
                self.store
                    .record_copy(&self.id, Copied::Attachment, side, &here, "")
                    .await?;
                continue;
            }
            // An upload whose answer was lost, or whose process was killed before recording
            // it, is on the target already: the same name and the same bytes, unclaimed.
            let claimable = match &mut unclaimed {
                Some(u) => u,
                None => {
                    report.calls[other] += 1;
                    let mut free = Vec::new();
                    for t in self.repos[other]
                        .attachments(&self.types[other], link.id(other))
                        .await?
                    {
                        let key = format!("{dst}|{}", t.id);
                        if !self
                            .store
                            .copied(&self.id, Copied::Attachment, other, &key)
                            .await?
                        {
                            free.push(t);
                        }
                    }
                    unclaimed.insert(free)
                }
            };
            let mut adopted = None;
            for (i, t) in claimable.iter().enumerate() {
                if t.file_name != a.file_name || t.size.is_some_and(|n| n != data.len() as u64) {
                    continue;
                }
                report.calls[other] += 1;
                if self.repos[other].download(t).await? == data {
                    adopted = Some(i);
                    break;
                }
            }
            // An upload whose outcome is unknown (its answer lost, its process killed) is
            // recorded as an intent under the attachment's qualified id: until it is found on
            // the target, or the grace is over, it may still land (a request held on the way),
            // and is not sent again.
            let intent_id = ItemId::new(here.clone());
            let copy_id = if let Some(i) = adopted {
                let t = claimable.swap_remove(i);
                tracing::debug!(pair = %self.id, side = %side, item = %link.id(side), attachment = %a.id, copy = %t.id, "an earlier upload found on the other item, adopted");
                t.id
            } else {
                let what = format!("the upload of {}", a.file_name);
                self.intend_copy(
                    link,
                    side,
                    &intent_id,
                    ("upload", &what),
                    format!("upload:{dst}"),
                )
                .await?;
                let content_type = a
                    .content_type
                    .clone()
                    .unwrap_or_else(|| "application/octet-stream".to_owned());
                report.calls[other] += 1;
                let copy = self
                    .fenced(self.repos[other].upload(
                        &self.types[other],
                        link.id(other),
                        &NewAttachment::new(a.file_name.clone(), content_type, data),
                    ))
                    .await;
                let copy = self.copy_sent(side, &intent_id, copy).await?;
                report.attachments_copied[other] += 1;
                copy.id
            };
            self.store
                .record_copy(
                    &self.id,
                    Copied::Attachment,
                    side,
                    &here,
                    &format!("{dst}|{copy_id}"),
                )
                .await?;
            self.store.clear_intent(&self.id, side, &intent_id).await?;
        }
        Ok(())
    }
}

impl SyncPair {
    /// Records the intent to copy `what` from `side`'s item (`intent_id`) before it is sent —
    /// or refuses while an earlier send of it, without a known outcome, began within
    /// [`SyncOptions::in_flight_grace`] and so may still land: a temporary conflict, the item
    /// is taken again later (by then the copy is found on the target and adopted, or the grace
    /// is over and it is sent again).
    async fn intend_copy(
        &self,
        link: &Link,
        side: Side,
        intent_id: &ItemId,
        (op, what): (&'static str, &str),
        key: String,
    ) -> Result<()> {
        if let Some(i) = self.store.intent(&self.id, side, intent_id).await? {
            let age = (Utc::now() - i.at).to_std().unwrap_or_default();
            if age < self.options.in_flight_grace {
                return Err(Error::new(
                    ErrorKind::Conflict,
                    format!(
                        "{side} item {}: {what} began {} ago without a known outcome and may still land; it is taken again after {}",
                        link.id(side),
                        seconds(age),
                        seconds(self.options.in_flight_grace)
                    ),
                )
                .with_operation(op)
                .with_item(self.types[side].clone(), link.id(side).clone())
                .with_temporary(true));
            }
        }
        self.store
            .save_intents(
                &self.id,
                &[CreateIntent {
                    side,
                    source: intent_id.clone(),
                    key: CorrelationKey::new(key),
                    source_baseline: FieldMap::new(),
                    sent: FieldMap::new(),
                    at: Utc::now(),
                    run: process_run().to_owned(),
                }],
            )
            .await
    }

    /// A copy's answer: a failure that says it did not land clears its intent; one that may
    /// have landed (a timeout, a lost reply) keeps it for [`SyncPair::intend_copy`].
    async fn copy_sent<T>(&self, side: Side, intent_id: &ItemId, sent: Result<T>) -> Result<T> {
        if let Err(e) = &sent
            && !e.maybe_applied()
        {
            self.store.clear_intent(&self.id, side, intent_id).await?;
        }
        sent
    }
}

/// A comment on an item that no copy record or origin record claims.
pub(crate) struct Unclaimed {
    id: String,
    /// Its words.
    text: String,
    /// Its words as its copy on the other side would read.
    as_copy: String,
}

/// A comment's words, whatever markup the system stored it in: how a copy is recognised.
pub(crate) fn comment_text(body: &str, format: workbridge_core::TextFormat) -> String {
    let text = match format {
        workbridge_core::TextFormat::Html => workbridge_mapping::transform::html_to_text(body),
        _ => body.to_owned(),
    };
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
