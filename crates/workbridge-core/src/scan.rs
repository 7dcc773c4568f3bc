//! [`KeysetScan`]: the change-scan algorithm adapters share for systems whose change watermark
//! is a timestamp of limited precision (ServiceNow and ALM: one second; Azure DevOps: one
//! millisecond).
//!
//! A pass reads `changed_at >= from`, ordered by `(changed_at, id)`, page by page with a keyset
//! (`changed_at = T and id > N`, or `changed_at > T`). Two things can go wrong with a plain
//! keyset, and the scan handles both:
//!
//! - An item updated later within the very timestamp the scan stands on, with an id that sorts
//!   behind the keyset, would be skipped. When a page that is not the last ends on the
//!   timestamp the server is still in, the scan remembers it; at the end of the pass it
//!   re-reads those timestamps (the re-check) before reporting its end.
//! - Reading from `>=` the last timestamp again returns items already seen. The scan keeps the
//!   `(id, version)` it returned at or after its restart point, and skips them. Once the server
//!   is known to have been past the pass's last timestamp when it read the rows, the next pass
//!   starts after that timestamp: a quiet poll is one request however many rows share that
//!   second.
//!
//! When did the server read the rows? An answer's `Date` is set when the answer is sent, which
//! for a slow query is seconds after the rows were read, and a row written in between (stamped
//! in the page's last second) would be skipped if that `Date` counted. What is certain is that
//! the read came after every answer received before the request was sent: the scan judges a
//! page by the time of the answers before it ([`KeysetScan::absorb`]), unless the server names
//! the instant its query ran ([`KeysetScan::absorb_as_of`], Azure DevOps' WIQL `asOf`).
//!
//! The state travels in the cursor's token (serde JSON), so a scan can stop and resume in
//! another process.

use std::collections::BTreeMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{Cursor, ItemId, WorkItem};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct ScanState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    from: Option<DateTime<Utc>>,
    #[serde(default)]
    paging: bool,
    #[serde(default)]
    seen: BTreeMap<String, (DateTime<Utc>, String)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    live: Option<(DateTime<Utc>, DateTime<Utc>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    recheck: Option<(DateTime<Utc>, DateTime<Utc>)>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    main_last: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last: Option<(DateTime<Utc>, ItemId)>,
    /// The latest time an answer of this scan was dated: the next read comes after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    answered: Option<DateTime<Utc>>,
}

/// What the next page must select, in the adapter's query language.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ScanQuery {
    /// `changed_at >= lower`, when set.
    pub lower: Option<DateTime<Utc>>,
    /// `changed_at <= upper`, when set.
    pub upper: Option<DateTime<Utc>>,
    /// Continue after this key: `(changed_at = T and id > N) or changed_at > T`. When set, it
    /// replaces `lower`.
    pub after: Option<(DateTime<Utc>, ItemId)>,
}

/// One page of a keyset change scan. See the [module docs](self).
#[derive(Debug, Clone)]
pub struct KeysetScan {
    st: ScanState,
    precision: TimeDelta,
}

impl KeysetScan {
    /// Resumes the scan a cursor describes. A cursor without a token (the beginning, or
    /// `Cursor::at(t, _)`) starts a pass at its timestamp. `precision` is the watermark's
    /// (one second, one millisecond).
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) when the token is not one
    /// of this scan's.
    pub fn resume(since: &Cursor, precision: TimeDelta) -> Result<Self> {
        let st = match since.token() {
            Some(t) => serde_json::from_str(t).map_err(|_| {
                Error::invalid_input("cursor", t, "not a cursor of this repository")
            })?,
            None => ScanState {
                from: since.changed_at(),
                ..ScanState::default()
            },
        };
        Ok(KeysetScan { st, precision })
    }

    /// What the page must select.
    pub fn query(&self) -> ScanQuery {
        let upper = self.st.recheck.map(|(_, b)| b);
        let lower = match self.st.recheck {
            Some((a, _)) => Some(a),
            None => self.st.from,
        };
        let after = if self.st.paging {
            self.st.last.clone()
        } else {
            None
        };
        ScanQuery {
            lower: if after.is_some() { None } else { lower },
            upper,
            after,
        }
    }

    /// Takes the rows of the page, in the server's order (all of them, even those skipped),
    /// and returns the items not returned before at their version. `full` says whether the
    /// server had more rows than the page held (for most APIs: as many rows as asked for);
    /// `answered` is the server's time on its answer (its `Date`), if known. The page is judged
    /// by the time of the answers before it, which the server's read certainly came after (see
    /// the [module docs](self)); unknown counts as "still in the last row's timestamp".
    pub fn absorb(
        &mut self,
        rows: Vec<WorkItem>,
        full: bool,
        answered: Option<DateTime<Utc>>,
    ) -> Vec<WorkItem> {
        let read_after = self.st.answered;
        self.st.answered = self.st.answered.max(answered);
        self.take(rows, full, read_after)
    }

    /// Tells the scan a time the server had reached before the next page was requested: the
    /// `Date` of any answer received before the request was sent (for an HTTP client,
    /// `HttpClient::server_time_seen` just before sending). Without it the first page of a
    /// pass has no earlier answer to be judged by, and its last second counts as one the
    /// server may still be in — so the pass keeps every row it reads from there on, to skip
    /// them when it re-reads that second and all after it.
    pub fn read_after(&mut self, t: Option<DateTime<Utc>>) {
        self.st.answered = self.st.answered.max(t);
    }

    /// As [`KeysetScan::absorb`], for a server that names the instant its query read the rows
    /// (`as_of`): the page is judged by that instant.
    pub fn absorb_as_of(
        &mut self,
        rows: Vec<WorkItem>,
        full: bool,
        as_of: Option<DateTime<Utc>>,
    ) -> Vec<WorkItem> {
        self.st.answered = self.st.answered.max(as_of);
        self.take(rows, full, self.st.answered)
    }

    /// The page's rows, judged by `server_now`, a time the server's read was at or after.
    fn take(
        &mut self,
        rows: Vec<WorkItem>,
        full: bool,
        server_now: Option<DateTime<Utc>>,
    ) -> Vec<WorkItem> {
        let mut out = Vec::with_capacity(rows.len());
        let mut last = None;
        for item in rows {
            last = Some((item.changed_at, item.id.clone()));
            let key = (item.changed_at, item.version.to_string());
            if self.st.seen.get(item.id.as_str()) == Some(&key) {
                continue;
            }
            self.st.seen.insert(item.id.to_string(), key);
            out.push(item);
        }
        let rechecking = self.st.recheck.is_some();
        if let Some((at, _)) = &last
            && !rechecking
        {
            self.st.main_last = Some(*at);
            let live = server_now.is_none_or(|now| *at >= now - self.precision);
            if full && live {
                self.st.live = Some(match self.st.live {
                    Some((a, b)) => (a.min(*at), b.max(*at)),
                    None => (*at, *at),
                });
            }
        }
        if full {
            self.st.paging = true;
            if last.is_some() {
                self.st.last = last;
            }
        } else if !rechecking && self.st.live.is_some() {
            self.st.paging = false;
            self.st.recheck = self.st.live.take();
        } else {
            let main_last = self.st.main_last;
            let floor = [
                self.st.recheck.take().map(|(a, _)| a),
                self.st.main_last.take().or(self.st.from),
            ]
            .into_iter()
            .flatten()
            .min();
            // The pass read every row up to its last timestamp. If the server was past that
            // timestamp when it read them, no row can take it any more, so the next pass starts
            // after it instead of reading that (perhaps crowded) second again in every quiet
            // round.
            let settled = |t: DateTime<Utc>| server_now.is_some_and(|now| t < now - self.precision);
            self.st.from = match main_last {
                Some(last) if floor.is_some() && settled(last) => Some(last + self.precision),
                _ => floor,
            };
            self.st.paging = false;
            self.st.last = None;
        }
        let keep_from = [
            self.st.live.map(|(a, _)| a),
            self.st.recheck.map(|(a, _)| a),
            if self.st.paging {
                self.st.last.as_ref().map(|(t, _)| *t)
            } else {
                None
            },
            if self.st.paging { None } else { self.st.from },
        ]
        .into_iter()
        .flatten()
        .min();
        if let Some(f) = keep_from {
            self.st.seen.retain(|_, (at, _)| *at >= f);
        }
        out
    }

    /// Whether the scan has more to read now (a page was full, or a re-check is due).
    pub fn has_more(&self) -> bool {
        self.st.paging || self.st.recheck.is_some()
    }

    /// The cursor to pass next.
    ///
    /// # Errors
    /// Only if the state cannot be serialised, which does not happen.
    pub fn cursor(&self) -> Result<Cursor> {
        let token = serde_json::to_string(&self.st)
            .map_err(|e| Error::new(crate::ErrorKind::Unexpected, e.to_string()))?;
        let position = match (&self.st.last, self.st.from) {
            (Some((t, id)), _) if self.st.paging => Some((*t, id.clone())),
            (_, Some(f)) => Some((f, ItemId::default())),
            (Some((t, id)), None) => Some((*t, id.clone())),
            (None, None) => None,
        };
        Ok(match position {
            Some((t, id)) => Cursor::at(t, id),
            None => Cursor::beginning(),
        }
        .with_token(token))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{FieldMap, ItemType, Version};
    use chrono::TimeZone;

    fn at(s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2030, 1, 1, 0, 0, s).unwrap()
    }

    fn row(id: &str, s: u32) -> WorkItem {
        WorkItem::new(
            ItemId::new(id),
            ItemType::new("t"),
            Version::new("1"),
            at(s),
            FieldMap::new(),
        )
    }

    /// One pass of a single page: the server's rows changed at or after the scan's lower
    /// bound, answered at `date`.
    fn pass(scan: &mut KeysetScan, table: &[WorkItem], date: u32) -> Vec<String> {
        let q = scan.query();
        let rows = table
            .iter()
            .filter(|r| q.lower.is_none_or(|l| r.changed_at >= l))
            .cloned()
            .collect();
        let out = scan.absorb(rows, false, Some(at(date)));
        assert!(!scan.has_more());
        out.into_iter().map(|i| i.id.to_string()).collect()
    }

    #[test]
    fn a_row_written_while_a_slow_query_ran_is_not_skipped() {
        let mut scan = KeysetScan::resume(&Cursor::beginning(), TimeDelta::seconds(1)).unwrap();
        let mut table = vec![row("a", 5)];
        // The server read the table within second 5 and answered at second 7; meanwhile "b"
        // was written, stamped second 5.
        assert_eq!(pass(&mut scan, &table, 7), ["a"]);
        table.push(row("b", 5));
        assert_eq!(pass(&mut scan, &table, 8), ["b"]);
        // Read after an answer dated second 8: second 5 is settled, the next pass starts after it.
        assert!(pass(&mut scan, &table, 9).is_empty());
        assert_eq!(scan.query().lower, Some(at(6)));
    }

    #[test]
    fn a_query_instant_the_server_names_settles_at_once() {
        let mut scan = KeysetScan::resume(&Cursor::beginning(), TimeDelta::seconds(1)).unwrap();
        let out = scan.absorb_as_of(vec![row("a", 5)], false, Some(at(7)));
        assert_eq!(out.len(), 1);
        assert_eq!(scan.query().lower, Some(at(6)));
        // And the time travels in the cursor.
        let again = KeysetScan::resume(&scan.cursor().unwrap(), TimeDelta::seconds(1)).unwrap();
        assert_eq!(again.st.answered, Some(at(7)));
    }
}
