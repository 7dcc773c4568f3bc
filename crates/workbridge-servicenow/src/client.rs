//! The HTTP side: the JSON call helpers every request goes through, the encoded-query quoting.

#[allow(clippy::wildcard_imports)]
use super::*;

impl ServiceNowRepository {
    pub(crate) async fn get_json(
        &self,
        op: &'static str,
        path: &str,
        params: &[(&str, String)],
    ) -> Result<(Value, workbridge_http::HttpResponse)> {
        let resp = self
            .client
            .get(path)
            .query(params)
            .operation(op)
            .send()
            .await?;
        let body: Value = resp
            .json()
            .map_err(|e| e.with_operation(op).with_system(self))?;
        Ok((body, resp))
    }

    /// The `result` array of a list response.
    pub(crate) fn result_array(body: Value, op: &'static str) -> Result<Vec<Value>> {
        match body {
            Value::Object(mut m) => match m.remove("result") {
                Some(Value::Array(a)) => Ok(a),
                Some(_) => Err(Error::protocol("result", "expected an array").with_operation(op)),
                None => {
                    Err(Error::protocol("result", "the response has no `result`")
                        .with_operation(op))
                }
            },
            _ => Err(Error::protocol("", "the response is not a JSON object").with_operation(op)),
        }
    }

    pub(crate) fn result_object(body: Value, op: &'static str) -> Result<Value> {
        match body {
            Value::Object(mut m) => match m.remove("result") {
                Some(v @ Value::Object(_)) => Ok(v),
                Some(_) => Err(Error::protocol("result", "expected an object").with_operation(op)),
                None => {
                    Err(Error::protocol("result", "the response has no `result`")
                        .with_operation(op))
                }
            },
            _ => Err(Error::protocol("", "the response is not a JSON object").with_operation(op)),
        }
    }

    pub(crate) async fn list(
        &self,
        op: &'static str,
        table: &str,
        query: &str,
        limit: usize,
        fields: Option<&[String]>,
        display_all: bool,
    ) -> Result<(Vec<Value>, workbridge_http::HttpResponse)> {
        let mut params = vec![
            ("sysparm_query", query.to_owned()),
            ("sysparm_limit", limit.to_string()),
            ("sysparm_exclude_reference_link", "true".to_owned()),
            ("sysparm_suppress_pagination_header", "true".to_owned()),
            ("sysparm_no_count", "true".to_owned()),
        ];
        if display_all {
            params.push(("sysparm_display_value", "all".to_owned()));
        }
        if let Some(f) = fields {
            params.push(("sysparm_fields", f.join(",")));
        }
        let (body, resp) = self
            .get_json(op, &format!("api/now/table/{table}"), &params)
            .await?;
        Ok((Self::result_array(body, op)?, resp))
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

pub(crate) fn q(v: &str) -> String {
    v.replace('^', "^^")
}
