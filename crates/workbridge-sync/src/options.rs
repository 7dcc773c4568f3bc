//! [`SyncOptions`]: what a pair does, and how hard it tries.

#[allow(clippy::wildcard_imports)]
use super::*;

/// How a [`SyncPair`] works; the defaults suit most pairs.
///
/// It reads from a configuration file (serde, field names as here, durations as text such as
/// `"10m"`; what is left out keeps its default; an unknown key is an error naming it):
///
/// ```
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let options: workbridge_sync::SyncOptions = toml::from_str(
///     r#"
///     page_size = 500
///     attachments = false
///     lease_ttl = "2m"
///     twin_lookup = "always"
///     "#,
/// )?;
/// assert_eq!(options.lease_ttl, std::time::Duration::from_secs(120));
/// assert!(options.comments);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct SyncOptions {
    /// Items per change page. Unset (the default), each side reads pages of its adapter's own
    /// size (ServiceNow 2,000, Azure DevOps 1,000, ALM 500), which the integrator sets in that
    /// adapter's config; set, both sides use it, capped to each API's limit.
    #[serde(
        deserialize_with = "some_positive",
        skip_serializing_if = "Option::is_none"
    )]
    pub page_size: Option<usize>,
    /// How often a merge is re-read and re-planned after a version conflict (default 3).
    pub conflict_retries: u32,
    /// Whether comments are copied (default true, when both sides support them).
    pub comments: bool,
    /// Whether attachments are copied (default true, when both sides support them).
    pub attachments: bool,
    /// Larger attachments are not copied; each is reported once (default 10 MiB).
    pub max_attachment_size: u64,
    /// Whether an item whose twin is gone, or that left scope, gets a comment saying so
    /// before its link is retired (default true).
    pub twinless_comment: bool,
    /// Whether a linked item that leaves the scope is unlinked (default true). Off, the scope
    /// only decides which items get a twin: a reopened Bug keeps its QA defect.
    pub retire_out_of_scope: bool,
    /// How long the pair's lease lasts without renewal (default 10 minutes); it is renewed
    /// after every page, so it only needs to outlast one page's work. A dead worker's lease
    /// expires after this long.
    #[serde(with = "workbridge_core::duration_text")]
    pub lease_ttl: Duration,
    /// How long a write whose outcome is unknown may still land (default 5 minutes: more than a
    /// request's time budget with its retries) — one that timed out, whose answer was cut off,
    /// or whose process died before it learnt the answer, and which a proxy or a busy server
    /// may still apply. Meanwhile no twin is created for a create's item unless the correlation
    /// lookup finds the one it made (no duplicate), and an update is not sent again unless its
    /// item shows it landed (a late write landing over a newer one would lose the newer): the
    /// item is parked, temporarily, and tried each round.
    #[serde(with = "workbridge_core::duration_text")]
    pub in_flight_grace: Duration,
    /// When an item without a link is looked up on the other side by its correlation key
    /// before its twin is created (default [`TwinLookup::WhenUnknown`]).
    pub twin_lookup: TwinLookup,
    /// How many requests of one kind the kernel sends to a side at once — a page's chunks of
    /// creates, or of one step of its updates (default 4). Each adapter's client bounds its
    /// requests in flight too (`ClientOptions::max_concurrency`, default 8), and the adapters
    /// read and write a call's chunks (ids, comments, attachments, ServiceNow's Batch API
    /// requests) that many at a time.
    #[serde(deserialize_with = "positive")]
    pub concurrency: usize,
    /// Items of a page worked on together: a page is read whole, then its items are planned,
    /// written and stored this many at a time, so that a large page costs the memory of a
    /// chunk. Its cursor is stored once all are done. By default (`None`) 1,000 — five
    /// `$batch`es of Azure DevOps creates, one `write_many` of ServiceNow's (ten Batch API
    /// requests) — or what the other side writes in one request when that is more (ALM's bulk
    /// writes: 2,000), so that a chunk's writes fill the target's requests.
    #[serde(
        deserialize_with = "some_positive",
        skip_serializing_if = "Option::is_none"
    )]
    pub chunk_size: Option<usize>,
    /// Whether a linked item's twin is read before the two are merged even when the link knows
    /// the twin exactly as it was at its last version (default false). Off, such a merge runs
    /// against the stored baseline and its write to the twin carries that version: a target
    /// that checks versions before writing ([`Capabilities::optimistic_concurrency`]) refuses it
    /// if the twin changed since, and then the twins so refused are read, in one request, and
    /// merged again (ADR 0022). A target without that check is always read first.
    ///
    /// [`Capabilities::optimistic_concurrency`]: workbridge_core::Capabilities::optimistic_concurrency
    pub read_twins_first: bool,
}

/// A count of at least one, as a configuration file gives it.
fn positive<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<usize, D::Error> {
    let n = <usize as serde::Deserialize>::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("0 is not a count of at least 1"));
    }
    Ok(n)
}

/// A count of at least one, where one is given.
fn some_positive<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> std::result::Result<Option<usize>, D::Error> {
    positive(d).map(Some)
}

/// When the sync looks for an existing twin (by correlation key) before creating one
/// (`"when-unknown"` or `"always"` in a configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum TwinLookup {
    /// Where a twin may exist unknown to the store: an item whose create has no known outcome
    /// (its intent recorded, its answer lost or its process killed), and, in a side's first
    /// round (no cursor stored), every item, unless the target answers that none of its items
    /// carries a correlation key ([`workbridge_core::Repository::holds_correlated`], one
    /// request). A store that is current knows every twin it made; one restored from an
    /// older backup does not: use [`TwinLookup::Always`] until it has caught up.
    #[default]
    WhenUnknown,
    /// Before every create: one lookup per page of new items.
    Always,
}

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            page_size: None,
            conflict_retries: 3,
            comments: true,
            attachments: true,
            max_attachment_size: 10 * 1024 * 1024,
            twinless_comment: true,
            retire_out_of_scope: true,
            lease_ttl: Duration::from_secs(600),
            in_flight_grace: Duration::from_secs(300),
            twin_lookup: TwinLookup::WhenUnknown,
            concurrency: 4,
            chunk_size: None,
            read_twins_first: false,
        }
    }
}

impl SyncOptions {
    /// The chunk a pass works on when writing to a target that sends `batch` writes in one
    /// request: [`SyncOptions::chunk_size`], or its default.
    pub(crate) fn chunk_for(&self, batch: usize) -> usize {
        self.chunk_size.unwrap_or(batch.max(1000)).max(1)
    }
    /// Sets [`SyncOptions::page_size`].
    pub fn page_size(mut self, n: usize) -> Self {
        self.page_size = Some(n.max(1));
        self
    }
    /// Sets [`SyncOptions::chunk_size`].
    pub fn chunk_size(mut self, n: usize) -> Self {
        self.chunk_size = Some(n.max(1));
        self
    }
    /// Sets [`SyncOptions::conflict_retries`].
    pub fn conflict_retries(mut self, n: u32) -> Self {
        self.conflict_retries = n;
        self
    }
    /// Sets [`SyncOptions::comments`].
    pub fn comments(mut self, on: bool) -> Self {
        self.comments = on;
        self
    }
    /// Sets [`SyncOptions::attachments`].
    pub fn attachments(mut self, on: bool) -> Self {
        self.attachments = on;
        self
    }
    /// Sets [`SyncOptions::max_attachment_size`].
    pub fn max_attachment_size(mut self, bytes: u64) -> Self {
        self.max_attachment_size = bytes;
        self
    }
    /// Sets [`SyncOptions::lease_ttl`].
    pub fn lease_ttl(mut self, ttl: Duration) -> Self {
        self.lease_ttl = ttl;
        self
    }
    /// Sets [`SyncOptions::in_flight_grace`].
    pub fn in_flight_grace(mut self, d: Duration) -> Self {
        self.in_flight_grace = d;
        self
    }
    /// Sets [`SyncOptions::retire_out_of_scope`].
    pub fn retire_out_of_scope(mut self, on: bool) -> Self {
        self.retire_out_of_scope = on;
        self
    }
    /// Sets [`SyncOptions::twin_lookup`].
    pub fn twin_lookup(mut self, when: TwinLookup) -> Self {
        self.twin_lookup = when;
        self
    }
    /// Sets [`SyncOptions::concurrency`] (at least one).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n.max(1);
        self
    }
    /// Sets [`SyncOptions::read_twins_first`].
    pub fn read_twins_first(mut self, on: bool) -> Self {
        self.read_twins_first = on;
        self
    }
    /// Sets [`SyncOptions::twinless_comment`].
    pub fn twinless_comment(mut self, on: bool) -> Self {
        self.twinless_comment = on;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_read_from_a_file_keep_the_defaults_they_leave_out() {
        let o: SyncOptions = toml::from_str(
            r#"
            page_size = 500
            chunk_size = 250
            attachments = false
            lease_ttl = "2m"
            in_flight_grace = "1h30m"
            twin_lookup = "always"
            concurrency = 2
            "#,
        )
        .unwrap();
        assert_eq!(o.page_size, Some(500));
        assert_eq!(o.chunk_size, Some(250));
        assert!(!o.attachments && o.comments);
        assert_eq!(o.lease_ttl, Duration::from_secs(120));
        assert_eq!(o.in_flight_grace, Duration::from_secs(5400));
        assert_eq!(o.twin_lookup, TwinLookup::Always);
        assert_eq!(o.concurrency, 2);
        assert_eq!(o.conflict_retries, SyncOptions::default().conflict_retries);
        // Written and read back as it was.
        let text = toml::to_string(&o).unwrap();
        assert!(text.contains("lease_ttl = \"2m\""), "{text}");
        let again: SyncOptions = toml::from_str(&text).unwrap();
        assert_eq!(format!("{again:?}"), format!("{o:?}"));
        let defaults: SyncOptions = toml::from_str("").unwrap();
        assert_eq!(
            format!("{defaults:?}"),
            format!("{:?}", SyncOptions::default())
        );
    }

    #[test]
    fn a_bad_option_in_a_file_is_refused_by_name() {
        for (text, says) in [
            ("pagesize = 5", "pagesize"),
            ("lease_ttl = \"ten minutes\"", "ten minutes"),
            ("lease_ttl = 600", "lease_ttl"),
            ("concurrency = 0", "at least 1"),
            ("page_size = 0", "at least 1"),
            ("twin_lookup = \"sometimes\"", "sometimes"),
        ] {
            let e = toml::from_str::<SyncOptions>(text).unwrap_err().to_string();
            assert!(e.contains(says), "{text}: {e}");
        }
    }
}
