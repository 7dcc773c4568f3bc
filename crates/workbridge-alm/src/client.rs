//! The HTTP side: the call helper every request goes through, paths, the server's time offset.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Whether a request writes without a condition the server checks: ALM's `PUT` has no
/// `If-Match`, so one that may have reached the server (a timeout, a reply lost in transit) is
/// never sent again. Its first copy can land after the second — a request held on the wire —
/// and write over an edit made between them; the caller learns the outcome from a fresh read
/// instead (the kernel's pending write, ADR 0012). A `PUT` answered with an error status
/// (`503`, `429`) was not applied and is still retried.
pub(crate) fn unconditional(method: &Method) -> bool {
    *method == Method::PUT
}

impl AlmRepository {
    pub(crate) async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<Vec<u8>>,
    ) -> Result<HttpResponse> {
        let media = self.config.format.media();
        let unconditional = unconditional(&method);
        let mut rb = self
            .client
            .request(method, path)
            .query(query)
            .header(ACCEPT, media)
            .operation(op);
        if unconditional {
            rb = rb.idempotent(false);
        }
        if let Some(b) = body {
            rb = rb.body(b, media);
        }
        rb.send().await
    }

    pub(crate) fn coll_path(&self, t: &ItemType) -> String {
        format!("{}/{}", self.project_path, seg(t.as_str()))
    }

    pub(crate) fn entity_path(&self, t: &ItemType, id: &ItemId) -> Result<String> {
        let n: u64 = id.as_str().parse().map_err(|_| Error::not_found(t, id))?;
        Ok(format!("{}/{n}", self.coll_path(t)))
    }

    /// The database server's offset from UTC: configured, or detected from
    /// `rest/server/time` and detected again once it is older than
    /// [`AlmConfig::offset_refresh`], so a long-running service follows a daylight-saving
    /// change within that time.
    pub(crate) async fn offset(&self) -> Result<TimeDelta> {
        if let Some(m) = self.config.time_zone_offset_minutes {
            return Ok(TimeDelta::minutes(m));
        }
        let mut cached = self.offset.lock().await;
        if let Some((offset, at)) = *cached
            && at.elapsed() < self.config.offset_refresh
        {
            return Ok(offset);
        }
        let detected = self.detect_offset().await?;
        if let Some((before, _)) = *cached
            && before != detected
        {
            tracing::warn!(
                project = %self.config.project,
                before_minutes = before.num_minutes(),
                now_minutes = detected.num_minutes(),
                "the ALM server's offset from UTC changed (daylight saving?)"
            );
        }
        *cached = Some((detected, std::time::Instant::now()));
        Ok(detected)
    }

    async fn detect_offset(&self) -> Result<TimeDelta> {
        let resp = self
            .client
            .get("rest/server/time")
            .header(ACCEPT, "application/xml")
            .operation("server time")
            .send()
            .await?;
        let text = resp.text();
        let millis: i64 = xml_text(&text, "TimeInMillis")
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| Error::protocol("ServerTime.TimeInMillis", "missing or not a number"))?;
        let local = xml_text(&text, "DateTime")
            .and_then(|d| NaiveDateTime::parse_from_str(&d, ALM_TIME).ok())
            .ok_or_else(|| {
                Error::protocol("ServerTime.DateTime", "missing or not yyyy-MM-dd HH:mm:ss")
            })?;
        let utc = DateTime::from_timestamp_millis(millis)
            .ok_or_else(|| Error::protocol("ServerTime.TimeInMillis", "out of range"))?;
        let minutes = (local - utc.naive_utc()).num_seconds() as f64 / 60.0;
        // Offsets are whole quarter hours.
        #[allow(clippy::cast_possible_truncation)]
        let quarter = ((minutes / 15.0).round() as i64) * 15;
        Ok(TimeDelta::minutes(quarter))
    }
}

/// Percent-encodes one path segment.
pub(crate) use workbridge_http::path_segment as seg;
