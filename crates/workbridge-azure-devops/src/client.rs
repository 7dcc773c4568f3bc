//! The HTTP side: paths, the one call helper every request goes through, path encoding.

#[allow(clippy::wildcard_imports)]
use super::*;

impl AzureDevOpsRepository {
    pub(crate) fn project_path(&self, rest: &str) -> String {
        format!("{}/_apis/wit/{rest}", seg(&self.config.project))
    }

    pub(crate) async fn call(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        version: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<HttpResponse> {
        let mut rb = self
            .client
            .request(method, path)
            .query(&[("api-version", version)])
            .query(query)
            .header(HeaderName::from_static("x-tfs-fedauthredirect"), "Suppress")
            .operation(op);
        if let Some((b, ct)) = body {
            rb = rb.body(b, ct);
        }
        let resp = rb.send().await?;
        if resp.status == StatusCode::NON_AUTHORITATIVE_INFORMATION {
            return Err(Error::new(
                ErrorKind::Unauthenticated,
                "the server answered 203 with a sign-in page: the credentials were refused",
            )
            .with_http_status(203)
            .with_operation(op)
            .with_system(self));
        }
        Ok(resp)
    }

    /// A call at the server's api-version whose answer is read as `T`: a wire type, or
    /// `Value` where the payload is open. A body that does not fit names its path.
    pub(crate) async fn call_json<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<(Vec<u8>, &str)>,
    ) -> Result<T> {
        let resp = self
            .call(op, method, path, self.config.server.api(), query, body)
            .await?;
        resp.json()
            .map_err(|e| e.with_operation(op).with_system(self))
    }
}

/// Percent-encodes one path segment.
pub(crate) use workbridge_http::path_segment as seg;

/// A WIQL string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(crate) const BATCH: usize = 200;
