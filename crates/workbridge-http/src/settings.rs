//! Settings read from a configuration file: what a deployment file says of a system's HTTP
//! connection. Secrets are never written in the file: a setting ending in `_env` names the
//! environment variable that holds one, read when the configuration is built.

use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::SecretString;
use url::Url;
use workbridge_core::{Error, Result};

use crate::{ClientOptions, ProxyConfig, RateLimit};

/// Where settings come from, for building a configuration out of them: the section of the file
/// they are in (named in every error), the directory relative paths start from, and the
/// environment secrets are read from.
///
/// ```
/// use workbridge_http::ConfigContext;
/// let env = |k: &str| (k == "SN_PASSWORD").then(|| "s3cret".to_owned());
/// let cx = ConfigContext::new("systems.ops", "/etc/workbridge", &env);
/// assert_eq!(cx.secret("password_env", "SN_PASSWORD").unwrap(), "s3cret");
/// let e = cx.secret("token_env", "SN_TOKEN").unwrap_err();
/// assert!(e.to_string().contains("systems.ops.token_env: the environment variable SN_TOKEN is not set"));
/// assert_eq!(cx.path("ca.pem".as_ref()), std::path::Path::new("/etc/workbridge/ca.pem"));
/// ```
pub struct ConfigContext<'a> {
    section: String,
    base: PathBuf,
    env: &'a (dyn Fn(&str) -> Option<String> + Sync),
}

impl<'a> ConfigContext<'a> {
    /// Settings of `section` (`systems.ops`), paths relative to `base`, secrets from `env`.
    pub fn new(
        section: impl Into<String>,
        base: impl Into<PathBuf>,
        env: &'a (dyn Fn(&str) -> Option<String> + Sync),
    ) -> Self {
        ConfigContext {
            section: section.into(),
            base: base.into(),
            env,
        }
    }

    /// The section the settings are in.
    pub fn section(&self) -> &str {
        &self.section
    }

    /// The directory relative paths start from.
    pub fn base(&self) -> &Path {
        &self.base
    }

    /// Where secrets are read from.
    pub fn env(&self) -> &'a (dyn Fn(&str) -> Option<String> + Sync) {
        self.env
    }

    /// The same base and environment for the table `key` within this section.
    pub fn nested(&self, key: &str) -> ConfigContext<'a> {
        ConfigContext {
            section: format!("{}.{key}", self.section),
            base: self.base.clone(),
            env: self.env,
        }
    }

    /// A configuration error about setting `key` of this section.
    pub fn error(&self, key: &str, message: impl std::fmt::Display) -> Error {
        Error::config(format!("{}.{key}: {message}", self.section))
    }

    /// A count given as setting `key`, refused when it is zero.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting when `n` is
    /// `Some(0)`.
    pub fn count(&self, key: &str, n: Option<usize>) -> Result<Option<usize>> {
        match n {
            Some(0) => Err(self.error(key, "0 is not a count of at least 1")),
            n => Ok(n),
        }
    }

    /// The secret in environment variable `var`, named by setting `key`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting and the
    /// variable (never a value) when it is unset or empty.
    pub fn secret(&self, key: &str, var: &str) -> Result<String> {
        (self.env)(var)
            .filter(|v| !v.is_empty())
            .ok_or_else(|| self.error(key, format!("the environment variable {var} is not set")))
    }

    /// `path`, from the base directory when it is relative.
    pub fn path(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_owned()
        } else {
            self.base.join(path)
        }
    }

    /// The bytes of the file at `path` (relative to the base), named by setting `key`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting and the
    /// path when it cannot be read.
    pub fn read(&self, key: &str, path: &Path) -> Result<Vec<u8>> {
        let full = self.path(path);
        std::fs::read(&full)
            .map_err(|e| self.error(key, format!("`{}` cannot be read: {e}", full.display())))
    }
}

impl std::fmt::Debug for ConfigContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConfigContext")
            .field("section", &self.section)
            .field("base", &self.base)
            .finish_non_exhaustive()
    }
}

/// A system's HTTP connection as a configuration file gives it (the `http` table of a
/// system). Everything is optional; what is left out keeps [`ClientOptions`]' default.
///
/// ```
/// use workbridge_http::{ClientOptions, ConfigContext, HttpSettings};
/// let s: HttpSettings = toml::from_str(r#"
///     timeout = "30s"
///     allow_http_to = ["tfs"]
///     max_concurrency = 4
///     rate_limit = 20
/// "#).unwrap();
/// let env = |_: &str| None;
/// let o = s.apply(ClientOptions::default(), &ConfigContext::new("systems.dev.http", ".", &env)).unwrap();
/// assert_eq!(o.timeout, Some(std::time::Duration::from_secs(30)));
/// assert_eq!(o.insecure_http_hosts, ["tfs"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Time for a whole request (`"60s"`).
    #[serde(with = "workbridge_core::duration_text::option")]
    pub timeout: Option<Duration>,
    /// Time to connect (`"10s"`).
    #[serde(with = "workbridge_core::duration_text::option")]
    pub connect_timeout: Option<Duration>,
    /// The `User-Agent` header.
    pub user_agent: Option<String>,
    /// An explicit proxy URL (`http://proxy.corp:3128`), without credentials.
    pub proxy: Option<String>,
    /// The proxy's user.
    pub proxy_user: Option<String>,
    /// The environment variable holding the proxy user's password.
    pub proxy_password_env: Option<String>,
    /// A PEM file of extra trusted root certificates (a private CA).
    pub ca_file: Option<PathBuf>,
    /// A PEM file holding a client certificate and its private key (mutual TLS).
    pub client_cert_file: Option<PathBuf>,
    /// Plain `http://` to loopback hosts (simulators).
    pub allow_http: bool,
    /// Other hosts plain `http://` may reach, unencrypted (no scheme, port or path).
    pub allow_http_to: Vec<String>,
    /// Most requests in flight at once.
    pub max_concurrency: Option<usize>,
    /// Requests per second on average.
    pub rate_limit: Option<u32>,
    /// Requests that may go at once after a quiet spell (with `rate_limit`).
    pub rate_burst: Option<u32>,
    /// Most retries of a request.
    pub max_retries: Option<u32>,
    /// Most time spent on one request, retries and waits included (`"2m"`).
    #[serde(with = "workbridge_core::duration_text::option")]
    pub max_elapsed: Option<Duration>,
}

impl HttpSettings {
    /// `options` with what these settings say.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting: a proxy
    /// URL that does not parse, a host with a scheme or port, a file that cannot be read, a
    /// password variable that is not set, a count of zero, a burst without a rate.
    pub fn apply(&self, options: ClientOptions, cx: &ConfigContext<'_>) -> Result<ClientOptions> {
        let mut o = options;
        if let Some(d) = self.timeout {
            o = o.timeout(Some(d));
        }
        if let Some(d) = self.connect_timeout {
            o = o.connect_timeout(d);
        }
        if let Some(ua) = &self.user_agent {
            o = o.user_agent(ua.clone());
        }
        if let Some(p) = &self.proxy {
            let url =
                Url::parse(p).map_err(|e| cx.error("proxy", format!("`{p}` is not a URL: {e}")))?;
            let password = self
                .proxy_password_env
                .as_deref()
                .map(|var| cx.secret("proxy_password_env", var).map(SecretString::from))
                .transpose()?;
            o = o.proxy(ProxyConfig {
                url,
                username: self.proxy_user.clone(),
                password,
            });
        } else if self.proxy_user.is_some() || self.proxy_password_env.is_some() {
            return Err(cx.error("proxy_user", "a proxy user without a `proxy`"));
        }
        if let Some(f) = &self.ca_file {
            o = o.root_certificate(cx.read("ca_file", f)?);
        }
        if let Some(f) = &self.client_cert_file {
            o = o.client_identity(cx.read("client_cert_file", f)?);
        }
        if self.allow_http {
            o = o.allow_http(true);
        }
        for h in &self.allow_http_to {
            if h.is_empty() || (h.contains(['/', ':']) && !h.starts_with('[')) {
                return Err(cx.error(
                    "allow_http_to",
                    format!("`{h}` is not a host name or address (no scheme, port or path)"),
                ));
            }
            o = o.allow_http_to(h.clone());
        }
        if let Some(n) = cx.count("max_concurrency", self.max_concurrency)? {
            o = o.max_concurrency(n);
        }
        match (self.rate_limit, self.rate_burst) {
            (Some(0), _) => return Err(cx.error("rate_limit", "0 requests per second")),
            (Some(r), burst) => {
                o = o.rate_limit(RateLimit::per_second(r).burst(burst.unwrap_or(r)));
            }
            (None, Some(_)) => return Err(cx.error("rate_burst", "a burst without a `rate_limit`")),
            (None, None) => {}
        }
        if self.max_retries.is_some() || self.max_elapsed.is_some() {
            let mut r = o.retry.clone();
            if let Some(n) = self.max_retries {
                r = r.max_retries(n);
            }
            if let Some(d) = self.max_elapsed {
                r = r.max_elapsed(d);
            }
            o = o.retry(r);
        }
        Ok(o)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn apply(text: &str, env: &(dyn Fn(&str) -> Option<String> + Sync)) -> Result<ClientOptions> {
        let s: HttpSettings = toml::from_str(text).map_err(|e| Error::config(e.to_string()))?;
        s.apply(
            ClientOptions::default(),
            &ConfigContext::new("systems.x.http", "/nonexistent", env),
        )
    }

    #[test]
    fn every_setting_reaches_the_client_options() {
        let env = |k: &str| (k == "PROXY_PW").then(|| "pw".to_owned());
        let o = apply(
            r#"
            timeout = "45s"
            connect_timeout = "5s"
            user_agent = "acme-sync/1"
            proxy = "http://proxy.corp:3128"
            proxy_user = "svc"
            proxy_password_env = "PROXY_PW"
            allow_http = true
            allow_http_to = ["tfs", "10.0.0.7"]
            max_concurrency = 3
            rate_limit = 10
            rate_burst = 2
            max_retries = 1
            max_elapsed = "30s"
            "#,
            &env,
        )
        .unwrap();
        assert_eq!(o.timeout, Some(Duration::from_secs(45)));
        assert_eq!(o.connect_timeout, Some(Duration::from_secs(5)));
        assert_eq!(o.user_agent, "acme-sync/1");
        let p = o.proxy.as_ref().unwrap();
        assert_eq!(p.url.as_str(), "http://proxy.corp:3128/");
        assert_eq!(p.username.as_deref(), Some("svc"));
        assert!(p.password.is_some());
        assert!(o.allow_http);
        assert_eq!(o.insecure_http_hosts, ["tfs", "10.0.0.7"]);
        assert_eq!(o.max_concurrency, 3);
        let r = o.rate_limit.unwrap();
        assert_eq!((r.per_second.get(), r.burst.get()), (10, 2));
        assert_eq!(o.retry.max_retries, 1);
        assert_eq!(o.retry.max_elapsed, Duration::from_secs(30));
        assert!(
            !format!("{o:?}").contains("pw\""),
            "no secret in Debug: {o:?}"
        );
    }

    #[test]
    fn bad_settings_name_the_setting() {
        let none = |_: &str| None;
        for (text, says) in [
            (
                r#"proxy = "not a url""#,
                "systems.x.http.proxy: `not a url` is not a URL",
            ),
            (
                r#"proxy = "http://p:3128"
                   proxy_password_env = "NOPE""#,
                "systems.x.http.proxy_password_env: the environment variable NOPE is not set",
            ),
            (
                r#"proxy_user = "svc""#,
                "systems.x.http.proxy_user: a proxy user without",
            ),
            (
                r#"allow_http_to = ["http://tfs:8080"]"#,
                "systems.x.http.allow_http_to: `http://tfs:8080`",
            ),
            ("max_concurrency = 0", "systems.x.http.max_concurrency: 0"),
            ("rate_limit = 0", "systems.x.http.rate_limit: 0"),
            (
                "rate_burst = 3",
                "systems.x.http.rate_burst: a burst without",
            ),
            (
                r#"ca_file = "ca.pem""#,
                "systems.x.http.ca_file: `/nonexistent/ca.pem` cannot be read",
            ),
            (r#"timeout = "ten seconds""#, "is not a duration"),
            ("timeuot = \"1s\"", "unknown field `timeuot`"),
        ] {
            let e = apply(text, &none).unwrap_err();
            assert_eq!(e.kind(), workbridge_core::ErrorKind::Config, "{text}");
            assert!(e.to_string().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn settings_left_out_keep_the_defaults() {
        let none = |_: &str| None;
        let o = apply("", &none).unwrap();
        let d = ClientOptions::default();
        assert_eq!(o.timeout, d.timeout);
        assert_eq!(o.max_concurrency, d.max_concurrency);
        assert!(o.proxy.is_none() && !o.allow_http && o.rate_limit.is_none());
    }
}
