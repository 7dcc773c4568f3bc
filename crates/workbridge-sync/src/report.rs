//! [`SyncReport`], what a run did, and [`PerSide`].

#[allow(clippy::wildcard_imports)]
use super::*;

/// A value for each side.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PerSide<T> {
    /// The left side's.
    pub left: T,
    /// The right side's.
    pub right: T,
}

impl<T> Index<Side> for PerSide<T> {
    type Output = T;
    fn index(&self, s: Side) -> &T {
        match s {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

impl<T> IndexMut<Side> for PerSide<T> {
    fn index_mut(&mut self, s: Side) -> &mut T {
        match s {
            Side::Left => &mut self.left,
            Side::Right => &mut self.right,
        }
    }
}

/// What one round did. It serializes (a progress line, a status endpoint's JSON) with the
/// error that stopped the round as `Error` serializes: its kind, message and known context.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct SyncReport {
    /// Changed items read from each side.
    pub read: PerSide<usize>,
    /// Items created on each side.
    pub created: PerSide<usize>,
    /// Existing twins found by correlation key instead of created (a retry after a lost reply
    /// or a crash).
    pub relinked: PerSide<usize>,
    /// Items updated on each side.
    pub updated: PerSide<usize>,
    /// Items skipped on each side because they were at the version we last wrote or read.
    pub echoes: PerSide<usize>,
    /// Linked items read that needed no write.
    pub unchanged: PerSide<usize>,
    /// Unlinked items left alone: out of scope, or the spec does not create from this side.
    pub ignored: PerSide<usize>,
    /// Same-field conflicts left for a person (the `error` policy).
    pub conflicts: Vec<FieldConflict>,
    /// Items parked this round, with their errors.
    pub parked: Vec<Parked>,
    /// Parked items that synced this round and were released.
    pub unparked: usize,
    /// Comments copied to each side.
    pub comments_copied: PerSide<usize>,
    /// Attachments copied to each side.
    pub attachments_copied: PerSide<usize>,
    /// Attachments not copied (over the size cap), by source side.
    pub attachments_skipped: PerSide<usize>,
    /// Links retired because an item was deleted or left scope.
    pub twinless: usize,
    /// Repository calls made on each side (adapters may batch several HTTP requests into one
    /// call, or need several for one).
    pub calls: PerSide<usize>,
    /// The cursors committed.
    pub cursors: PerSide<Option<Cursor>>,
    /// The temporary failure that stopped the round, if one did; the next round resumes.
    pub stopped: Option<Error>,
    /// The [`Observer`](crate::Observer) ended the round between pages; the next round
    /// resumes from the cursors committed.
    pub interrupted: bool,
}

impl SyncReport {
    /// Whether the round went through every change (parked items do not make it incomplete;
    /// a failure or an observer that ended it between pages does).
    pub fn is_complete(&self) -> bool {
        self.stopped.is_none() && !self.interrupted
    }

    /// Items created or updated on either side.
    pub fn writes(&self) -> usize {
        self.created.left + self.created.right + self.updated.left + self.updated.right
    }

    /// `Err` with the stopping error, when the round stopped.
    ///
    /// # Errors
    /// The temporary failure that stopped the round.
    pub fn into_result(self) -> Result<SyncReport> {
        match self.stopped {
            Some(e) => Err(e),
            None => Ok(self),
        }
    }
}

impl fmt::Display for SyncReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |x: &PerSide<usize>| format!("{}/{}", x.left, x.right);
        write!(
            f,
            "read {} · created {} · relinked {} · updated {} · echoes {} · unchanged {} · ignored {} · \
             comments {} · attachments {} (skipped {}) · conflicts {} · parked {} · twinless {} · calls {}",
            p(&self.read),
            p(&self.created),
            p(&self.relinked),
            p(&self.updated),
            p(&self.echoes),
            p(&self.unchanged),
            p(&self.ignored),
            p(&self.comments_copied),
            p(&self.attachments_copied),
            p(&self.attachments_skipped),
            self.conflicts.len(),
            self.parked.len(),
            self.twinless,
            p(&self.calls),
        )?;
        if let Some(e) = &self.stopped {
            write!(f, " · stopped: {e}")?;
        }
        if self.interrupted {
            write!(f, " · ended between pages")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A round's report as a status endpoint or a JSON log line writes it: counts per side,
    /// what is parked, and the error that stopped the round with its context.
    #[test]
    fn a_report_serializes_with_the_error_that_stopped_it() {
        let mut r = SyncReport::default();
        r.created.right = 3;
        r.calls.left = 2;
        r.stopped = Some(
            Error::new(ErrorKind::Unavailable, "503 from the server")
                .with_operation("changes")
                .with_system("azure-devops:fabrikam"),
        );
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["created"], serde_json::json!({"left": 0, "right": 3}));
        assert_eq!(v["calls"]["left"], 2);
        assert_eq!(v["stopped"]["kind"], "unavailable");
        assert_eq!(v["stopped"]["operation"], "changes");
        assert_eq!(v["parked"], serde_json::json!([]));
    }
}
