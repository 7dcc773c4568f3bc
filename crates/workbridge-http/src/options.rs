//! [`ClientOptions`]: everything about how an [`HttpClient`](crate::HttpClient) talks to a server.

use std::fmt;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use secrecy::{SecretSlice, SecretString};
use url::{Host, Url};
use workbridge_core::{Error, Result};

use crate::redact::redact_url;
use crate::retry::RetryConfig;

/// A proxy, with optional credentials.
#[derive(Clone)]
pub struct ProxyConfig {
    /// The proxy URL (`http://proxy.corp:3128`).
    pub url: Url,
    /// User name, if the proxy needs one.
    pub username: Option<String>,
    /// Password for `username`.
    pub password: Option<SecretString>,
}

impl fmt::Debug for ProxyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProxyConfig")
            .field("url", &redact_url(&self.url))
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "REDACTED"))
            .finish()
    }
}

/// A request rate: at most `per_second` on average, with bursts of up to `burst`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second on average.
    pub per_second: NonZeroU32,
    /// Requests that may go at once after a quiet spell.
    pub burst: NonZeroU32,
}

impl RateLimit {
    /// `per_second` requests per second, bursts of the same size. Zero is treated as one.
    pub fn per_second(per_second: u32) -> Self {
        let n = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        RateLimit {
            per_second: n,
            burst: n,
        }
    }

    /// Sets the burst. Zero is treated as one.
    #[must_use]
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        self
    }
}

/// How an [`HttpClient`](crate::HttpClient) connects, retries and paces itself.
///
/// Defaults: connect timeout 10 s, request timeout 60 s, user agent `workbridge/<version>`,
/// no proxy beyond the environment's, the system's root certificates, HTTPS only, at most 8
/// requests at once, no rate limit, [`RetryConfig::default`].
#[derive(Clone)]
#[non_exhaustive]
pub struct ClientOptions {
    /// Time to establish a connection.
    pub connect_timeout: Option<Duration>,
    /// Time for a whole request, response body included.
    pub timeout: Option<Duration>,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// An explicit proxy.
    pub proxy: Option<ProxyConfig>,
    /// Extra trusted root certificates, PEM encoded (for on-premises servers with a private CA).
    pub root_certificates: Vec<Vec<u8>>,
    /// A client certificate and its private key, PEM encoded in one buffer: for servers that
    /// ask the client to prove who it is (mutual TLS).
    pub client_identity: Option<std::sync::Arc<SecretSlice<u8>>>,
    /// Allow plain `http://` to loopback hosts (127.0.0.0/8, ::1, localhost): for simulators.
    pub allow_http: bool,
    /// Other hosts that may be reached over plain `http://`, by name or address (compared
    /// without case; no port): an on-premises server without TLS, a simulator in a container.
    /// Credentials and data travel unencrypted to them, and every client built for one logs a
    /// warning saying so. Plain HTTP to any host not named here (nor loopback with
    /// `allow_http`) is refused.
    pub insecure_http_hosts: Vec<String>,
    /// Most requests in flight at once per client.
    pub max_concurrency: usize,
    /// A client-side rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Retries.
    pub retry: RetryConfig,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Some(Duration::from_secs(10)),
            timeout: Some(Duration::from_secs(60)),
            user_agent: concat!("workbridge/", env!("CARGO_PKG_VERSION")).to_owned(),
            proxy: None,
            root_certificates: Vec::new(),
            client_identity: None,
            allow_http: false,
            insecure_http_hosts: Vec::new(),
            max_concurrency: 8,
            rate_limit: None,
            retry: RetryConfig::default(),
        }
    }
}

impl fmt::Debug for ClientOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientOptions")
            .field("connect_timeout", &self.connect_timeout)
            .field("timeout", &self.timeout)
            .field("user_agent", &self.user_agent)
            .field("proxy", &self.proxy)
            .field("root_certificates", &self.root_certificates.len())
            .field(
                "client_identity",
                &self.client_identity.as_ref().map(|_| "REDACTED"),
            )
            .field("allow_http", &self.allow_http)
            .field("insecure_http_hosts", &self.insecure_http_hosts)
            .field("max_concurrency", &self.max_concurrency)
            .field("rate_limit", &self.rate_limit)
            .field("retry", &self.retry)
            .finish()
    }
}

impl ClientOptions {
    /// Sets the connect timeout.
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = Some(d);
        self
    }

    /// Sets the request timeout (`None`: no timeout).
    #[must_use]
    pub fn timeout(mut self, d: Option<Duration>) -> Self {
        self.timeout = d;
        self
    }

    /// Sets the user agent.
    #[must_use]
    pub fn user_agent(mut self, ua: impl Into<String>) -> Self {
        self.user_agent = ua.into();
        self
    }

    /// Sets a proxy.
    #[must_use]
    pub fn proxy(mut self, proxy: ProxyConfig) -> Self {
        self.proxy = Some(proxy);
        self
    }

    /// Trusts an extra root certificate (PEM).
    #[must_use]
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates.push(pem.into());
        self
    }

    /// Presents a client certificate: `pem` holds the certificate (chain) and its private key.
    #[must_use]
    pub fn client_identity(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.client_identity = Some(std::sync::Arc::new(SecretSlice::from(pem.into())));
        self
    }

    /// Allows plain HTTP to loopback hosts.
    #[must_use]
    pub fn allow_http(mut self, allow: bool) -> Self {
        self.allow_http = allow;
        self
    }

    /// Allows plain HTTP to `host` (a name or an address, no port), unencrypted: see
    /// [`insecure_http_hosts`](Self::insecure_http_hosts).
    ///
    /// ```
    /// use workbridge_http::ClientOptions;
    /// let o = ClientOptions::default().allow_http_to("tfs");
    /// assert!(o.check_url(&"http://tfs:8080/tfs/DefaultCollection".parse().unwrap()).is_ok());
    /// assert!(o.check_url(&"http://other:8080/".parse().unwrap()).is_err());
    /// ```
    #[must_use]
    pub fn allow_http_to(mut self, host: impl Into<String>) -> Self {
        self.insecure_http_hosts.push(host.into());
        self
    }

    /// Whether plain HTTP to `url`'s host is allowed, and if so whether it leaves the machine
    /// (a named host rather than loopback).
    pub(crate) fn plain_http(&self, url: &Url) -> Option<PlainHttp> {
        if self.allow_http && is_loopback(url) {
            return Some(PlainHttp::Loopback);
        }
        let host = match url.host()? {
            Host::Domain(d) => d.to_owned(),
            Host::Ipv4(ip) => ip.to_string(),
            Host::Ipv6(ip) => ip.to_string(),
        };
        self.insecure_http_hosts
            .iter()
            .map(|h| h.trim().trim_start_matches('[').trim_end_matches(']'))
            .any(|h| h.eq_ignore_ascii_case(&host))
            .then_some(PlainHttp::Named)
    }

    /// Sets the most requests in flight (at least one).
    #[must_use]
    pub fn max_concurrency(mut self, n: usize) -> Self {
        self.max_concurrency = n.max(1);
        self
    }

    /// Sets a client-side rate limit.
    #[must_use]
    pub fn rate_limit(mut self, limit: RateLimit) -> Self {
        self.rate_limit = Some(limit);
        self
    }

    /// Sets the retry policy.
    #[must_use]
    pub fn retry(mut self, retry: RetryConfig) -> Self {
        self.retry = retry;
        self
    }

    /// Checks that requests may go to `url`: HTTPS anywhere; plain HTTP to loopback hosts with
    /// `allow_http`, and to the hosts named in `insecure_http_hosts`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) saying why.
    pub fn check_url(&self, url: &Url) -> Result<()> {
        match url.scheme() {
            "https" => Ok(()),
            "http" if self.plain_http(url).is_some() => Ok(()),
            "http" if is_loopback(url) => Err(Error::config(format!(
                "plain http to {} is refused: set ClientOptions::allow_http (or the configuration's ALLOW_HTTP variable) to use a local simulator",
                redact_url(url)
            ))),
            "http" => Err(Error::config(format!(
                "plain http to {} is refused: use https, or name the host in ClientOptions::allow_http_to (or the configuration's ALLOW_HTTP_HOSTS variable) to send credentials and data to it unencrypted",
                redact_url(url)
            ))),
            other => Err(Error::config(format!(
                "unsupported URL scheme `{other}` in {}",
                redact_url(url)
            ))),
        }
    }
}

/// How plain HTTP to a host came to be allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PlainHttp {
    /// A loopback host, with `allow_http`.
    Loopback,
    /// A host named in `insecure_http_hosts`.
    Named,
}

/// Whether the URL's host is a loopback address or `localhost`.
pub fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        Some(Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use workbridge_core::ErrorKind;

    #[test]
    fn plain_http_only_to_loopback_and_only_when_allowed() {
        let allowed = ClientOptions::default().allow_http(true);
        for ok in [
            "http://127.0.0.1:8080/",
            "http://localhost/",
            "http://[::1]:9/",
            "https://acme.service-now.com/",
        ] {
            allowed.check_url(&Url::parse(ok).unwrap()).unwrap();
        }
        let e = allowed
            .check_url(&Url::parse("http://acme.service-now.com/").unwrap())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("allow_http_to"), "{e}");
        let e = ClientOptions::default()
            .check_url(&Url::parse("http://127.0.0.1:1/").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("allow_http"), "{e}");
        let e = allowed
            .check_url(&Url::parse("ftp://127.0.0.1/").unwrap())
            .unwrap_err();
        assert!(e.to_string().contains("ftp"), "{e}");
    }

    #[test]
    fn plain_http_to_named_hosts_only() {
        let o = ClientOptions::default()
            .allow_http_to("TFS")
            .allow_http_to("10.0.0.7")
            .allow_http_to("[fd00::1]");
        for ok in [
            "http://tfs:8080/tfs/DefaultCollection",
            "http://tfs/",
            "http://10.0.0.7:8080/qcbin/",
            "http://[fd00::1]:80/",
        ] {
            o.check_url(&Url::parse(ok).unwrap()).unwrap();
        }
        for refused in [
            "http://tfs.corp:8080/",
            "http://10.0.0.8/",
            "http://127.0.0.1:1/",
        ] {
            assert!(
                o.check_url(&Url::parse(refused).unwrap()).is_err(),
                "{refused}"
            );
        }
        assert_eq!(
            o.plain_http(&Url::parse("http://tfs/").unwrap()),
            Some(PlainHttp::Named)
        );
        assert_eq!(
            ClientOptions::default()
                .allow_http(true)
                .plain_http(&Url::parse("http://localhost:9/").unwrap()),
            Some(PlainHttp::Loopback)
        );
    }

    #[test]
    fn a_client_identity_never_shows() {
        let o =
            ClientOptions::default().client_identity(b"-----BEGIN PRIVATE KEY-----secret".to_vec());
        let d = format!("{o:?}");
        assert!(
            d.contains("client_identity: Some(\"REDACTED\")") && !d.contains("secret"),
            "{d}"
        );
    }
}
