//! An item whose twin is gone, or that left the scope: said so on the survivor, link retired.

#[allow(clippy::wildcard_imports)]
use super::*;

impl SyncPair {
    /// The item on `side` has lost its twin (deleted, or itself out of scope): say so on the
    /// surviving item and retire the link.
    pub(crate) async fn twinless(
        &self,
        link: &Link,
        side: Side,
        item: &WorkItem,
        why: &str,
        round: &mut Round,
    ) -> Result<Outcome> {
        if self.options.twinless_comment && self.repos[side].capabilities().comments {
            let (who, gone) = if why == "was deleted" {
                (side, side.other())
            } else {
                (side.other(), side)
            };
            let text = format!(
                "workbridge: {} item {} {why}; this item is no longer synchronized with it.",
                self.repos[gone],
                link.id(gone)
            );
            let visibility = if self.repos[who].capabilities().internal_comments {
                Visibility::Internal
            } else {
                Visibility::Public
            };
            round.report.calls[who] += 1;
            let target = if who == side { &item.id } else { link.id(who) };
            let mut note = NewComment::public(text);
            note.visibility = visibility;
            match self
                .fenced(self.repos[who].add_comment(&self.types[who], target, &note))
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        self.store.retire_link(&self.id, link).await?;
        round.report.twinless += 1;
        tracing::info!(pair = %self.id, left = %link.left, right = %link.right, why, "link retired");
        Ok(Outcome::Done)
    }
}
