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
