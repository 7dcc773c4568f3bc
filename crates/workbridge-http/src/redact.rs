//! Keeping secrets out of `Debug`, errors and logs.

use url::Url;

/// What stands in for a secret.
pub const REDACTED: &str = "REDACTED";

/// Query parameters whose values are secrets.
const SECRET_PARAMS: [&str; 12] = [
    "access_token",
    "refresh_token",
    "id_token",
    "token",
    "password",
    "client_secret",
    "api_key",
    "apikey",
    "api-key",
    "code",
    "sig",
    "secret",
];

fn is_secret_param(name: &str) -> bool {
    SECRET_PARAMS.iter().any(|p| name.eq_ignore_ascii_case(p))
}

/// A URL as it may appear in logs and errors: no user or password, and the values of
/// secret-bearing query parameters (`access_token`, `password`, `client_secret`, ...) replaced.
///
/// ```
/// use url::Url;
/// use workbridge_http::redact_url;
/// let u = Url::parse("https://admin:hunter2@acme.example/api?sysparm_limit=5&access_token=abc").unwrap();
/// assert_eq!(redact_url(&u), "https://acme.example/api?sysparm_limit=5&access_token=REDACTED");
/// ```
pub fn redact_url(url: &Url) -> String {
    let mut u = url.clone();
    let _ = u.set_username("");
    let _ = u.set_password(None);
    if u.query().is_some() {
        let pairs: Vec<(String, String)> = u
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_param(&k) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        u.query_pairs_mut().clear().extend_pairs(pairs);
    }
    u.to_string()
}

/// A URL given as text, as it may appear in logs, errors and `Debug`: [`redact_url`] when it
/// parses; otherwise the text with anything between `://` and an `@` (user info) and every
/// query dropped, so not even a malformed URL shows a credential.
///
/// ```
/// use workbridge_http::redact_url_text;
/// assert_eq!(redact_url_text("https://admin:hunter2@acme.example/"), "https://acme.example/");
/// assert_eq!(redact_url_text("ht!tp://admin:hunter2@acme example/?token=x"), "ht!tp://REDACTED@acme example/");
/// ```
pub fn redact_url_text(text: &str) -> String {
    if let Ok(u) = Url::parse(text) {
        let shown = redact_url(&u);
        // `Url` adds a trailing slash to a bare host; keep the text's own form otherwise.
        return if !text.ends_with('/') && shown.ends_with('/') && u.path() == "/" {
            shown.trim_end_matches('/').to_owned()
        } else {
            shown
        };
    }
    let without_query = text.split(['?', '#']).next().unwrap_or_default();
    match without_query.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{scheme}://{REDACTED}{}", &rest[at..]),
                None => without_query.to_owned(),
            }
        }
        None => match without_query.rfind('@') {
            Some(at) => format!("{REDACTED}{}", &without_query[at..]),
            None => without_query.to_owned(),
        },
    }
}

/// Any text with the user info of every URL in it (`scheme://user:password@host`) replaced:
/// for names that embed a URL (`servicenow:https://…`).
pub(crate) fn redact_embedded_userinfo(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace())
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                out.push_str(REDACTED);
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_ordinary_parameters_and_hides_secret_ones() {
        let u = Url::parse("http://127.0.0.1:1/x?Password=p&q=a%20b&client_secret=s").unwrap();
        let r = redact_url(&u);
        assert!(!r.contains("=p&") && !r.contains("=s"), "{r}");
        assert!(r.contains("q=a+b") || r.contains("q=a%20b"), "{r}");
    }
}
