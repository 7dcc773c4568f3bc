//! The HTTP side: the JSON call helpers every request goes through, the encoded-query quoting.

#[allow(clippy::wildcard_imports)]
use super::*;

impl ServiceNowRepository {
    /// A GET whose answer is read as `T` (a wire type); a body that does not fit names its path.
    pub(crate) async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        op: &'static str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(T, workbridge_http::HttpResponse)> {
        let resp = self
            .client
            .get(path)
            .query(params)
            .operation(op)
            .send()
            .await?;
        let body = resp
            .json()
            .map_err(|e| e.with_operation(op).with_system(self))?;
        Ok((body, resp))
    }

    pub(crate) async fn list(
        &self,
        op: &'static str,
        table: &str,
        query: &str,
        limit: usize,
        fields: Option<&[String]>,
        display_all: bool,
    ) -> Result<(Vec<Record>, workbridge_http::HttpResponse)> {
        self.list_at(op, table, query, (limit, 0), fields, display_all)
            .await
    }

    /// A page of a table's rows made into items one row at a time (`to_item(index, row)`):
    /// the page is held as its bytes and one row's JSON, never as one tree of JSON values (for
    /// 2,000 records with display values, some 20 MB of them).
    pub(crate) async fn list_items<T>(
        &self,
        op: &'static str,
        table: &str,
        query: &str,
        limit: usize,
        fields: Option<&[String]>,
        mut to_item: impl FnMut(usize, &Record) -> Result<T>,
    ) -> Result<(Vec<T>, workbridge_http::HttpResponse)> {
        #[derive(serde::Deserialize)]
        struct Rows<'a> {
            #[serde(borrow)]
            result: Vec<&'a serde_json::value::RawValue>,
        }
        let params = Self::list_params(query, (limit, 0), fields, true);
        let resp = self
            .client
            .get(&format!("api/now/table/{table}"))
            .query(&params)
            .operation(op)
            .send()
            .await?;
        let rows: Rows<'_> = serde_json::from_slice(&resp.body).map_err(|e| {
            Error::protocol(
                "result",
                format!("the answer is not a list of records: {e}"),
            )
            .with_operation(op)
            .with_system(self)
        })?;
        let mut out = Vec::with_capacity(rows.result.len());
        for (i, raw) in rows.result.iter().enumerate() {
            let row: Record = serde_json::from_str(raw.get()).map_err(|e| {
                Error::protocol(format!("result[{i}]"), format!("not a record: {e}"))
                    .with_operation(op)
                    .with_system(self)
            })?;
            out.push(to_item(i, &row)?);
        }
        drop(rows);
        Ok((out, resp))
    }

    fn list_params(
        query: &str,
        (limit, offset): (usize, usize),
        fields: Option<&[String]>,
        display_all: bool,
    ) -> Vec<(&'static str, String)> {
        let mut params = vec![
            ("sysparm_query", query.to_owned()),
            ("sysparm_limit", limit.to_string()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
            ("sysparm_suppress_pagination_header", "true".to_owned()),
            ("sysparm_no_count", "true".to_owned()),
        ];
        if offset > 0 {
            params.push(("sysparm_offset", offset.to_string()));
        }
        if display_all {
            params.push(("sysparm_display_value", "all".to_owned()));
        }
        if let Some(f) = fields {
            params.push(("sysparm_fields", f.join(",")));
        }
        params
    }

    /// A page of a table's rows: `(limit, offset)`.
    pub(crate) async fn list_at(
        &self,
        op: &'static str,
        table: &str,
        query: &str,
        (limit, offset): (usize, usize),
        fields: Option<&[String]>,
        display_all: bool,
    ) -> Result<(Vec<Record>, workbridge_http::HttpResponse)> {
        let params = Self::list_params(query, (limit, offset), fields, display_all);
        let (body, resp) = self
            .get_json::<ResultList>(op, &format!("api/now/table/{table}"), &params)
            .await?;
        Ok((body.result, resp))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn q(v: &str) -> String {
    v.replace('^', "^^")
}
