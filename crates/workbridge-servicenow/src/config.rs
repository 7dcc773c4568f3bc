//! [`ServiceNowConfig`] and its builder.

use std::collections::BTreeMap;
use std::fmt;

use secrecy::SecretString;
pub use workbridge_core::VersionCheck;
use workbridge_core::{Result, TransitionGraph};
use workbridge_http::{AuthProvider, ClientOptions, EnvVars};

/// How the adapter signs in.
#[derive(Clone)]
#[non_exhaustive]
pub enum ServiceNowAuth {
    /// Basic authentication.
    Basic {
        /// The user.
        user: String,
        /// The password.
        password: SecretString,
    },
    /// OAuth2 password grant against `/oauth_token.do`, refreshed with the refresh token.
    OAuth {
        /// The OAuth client id.
        client_id: String,
        /// The OAuth client secret.
        client_secret: SecretString,
        /// The user.
        user: String,
        /// The password.
        password: SecretString,
    },
    /// A bearer token obtained elsewhere.
    Bearer(SecretString),
    /// An authentication provider of the integrator's own (a token service, a signing
    /// gateway, mutual TLS terminated elsewhere).
    Custom(std::sync::Arc<dyn AuthProvider>),
}

impl fmt::Debug for ServiceNowAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ServiceNowAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"REDACTED")
                .finish(),
            ServiceNowAuth::OAuth {
                client_id, user, ..
            } => f
                .debug_struct("OAuth")
                .field("client_id", client_id)
                .field("client_secret", &"REDACTED")
                .field("user", user)
                .field("password", &"REDACTED")
                .finish(),
            ServiceNowAuth::Bearer(_) => f.debug_tuple("Bearer").field(&"REDACTED").finish(),
            ServiceNowAuth::Custom(p) => f.debug_tuple("Custom").field(p).finish(),
        }
    }
}

/// Everything the adapter needs to know about an instance.
///
/// Build it with [`ServiceNowConfig::builder`] or [`ServiceNowConfig::from_env`]; nothing is
/// checked until [`ServiceNowRepository::new`](crate::ServiceNowRepository::new).
#[derive(Clone)]
#[non_exhaustive]
pub struct ServiceNowConfig {
    /// The instance URL (`https://acme.service-now.com`).
    pub instance: String,
    /// How to sign in.
    pub auth: Option<ServiceNowAuth>,
    /// HTTP options (timeouts, proxy, retries, limits).
    pub client: ClientOptions,
    /// Rows per `changes` page when the caller does not say (default 2,000; the Table API
    /// allows 10,000). A page is read whole: 2,000 records of a sync's dozen fields with their
    /// display values are about 2.5 MB on the wire.
    pub page_size: usize,
    /// Ids per `get_many`, `comments_many` and `attachments_many` request (default 100: one
    /// read per Batch API request of `write_batch` updates; 32-character `sys_id`s keep the
    /// request line under 4,000 characters).
    pub read_batch: usize,
    /// Requests per Batch API call in `write_many` (default 100). The Batch API sets no count,
    /// only sizes (5 MB per request in) and the transaction quota (30 s): what does not fit
    /// comes back unserviced and is sent again.
    pub write_batch: usize,
    /// How `update` and `write_many` hold an update to `UpdateOptions::if_version`, the
    /// Table API having no conditional write (default [`VersionCheck::ReadBefore`]).
    pub version_check: VersionCheck,
    /// What `correlation_display` says on items this adapter creates (default `workbridge`).
    pub correlation_display: String,
    /// Parent tables whose dictionary and choices a table inherits (default: `task` for
    /// `incident`, `problem`, `change_request`).
    pub parents: BTreeMap<String, Vec<String>>,
    /// Workflows enforced on `update`, by table (defaults for incident, problem and
    /// change_request; replace them to match the instance's own rules).
    pub workflows: BTreeMap<String, TransitionGraph>,
}

/// The out-of-box incident state model: New 1, In Progress 2, On Hold 3, Resolved 6, Closed 7,
/// Canceled 8. Resolving requires `close_code` and `close_notes` (the instance's data policy).
pub fn default_incident_workflow() -> TransitionGraph {
    let mut g = TransitionGraph::new("state").initial("1");
    for (from, to) in [
        ("1", "2"),
        ("1", "3"),
        ("2", "3"),
        ("3", "2"),
        ("1", "6"),
        ("2", "6"),
        ("3", "6"),
        ("6", "7"),
        ("6", "2"),
        ("1", "8"),
        ("2", "8"),
        ("3", "8"),
    ] {
        g = g.transition(from, to);
    }
    for from in ["1", "2", "3"] {
        g = g.require(from, "6", ["close_code", "close_notes"]);
    }
    g.require("6", "7", ["close_code", "close_notes"])
}

/// The out-of-box problem state model: New 101 → Assess 102 → Root Cause Analysis 103 → Fix in
/// Progress 104 → Resolved 106 → Closed 107; a resolved problem can go back to 104.
pub fn default_problem_workflow() -> TransitionGraph {
    TransitionGraph::new("state")
        .initial("101")
        .transition("101", "102")
        .transition("102", "103")
        .transition("103", "104")
        .transition("104", "106")
        .transition("106", "107")
        .transition("106", "104")
        .transition("101", "107")
        .transition("102", "107")
}

/// The out-of-box normal change model: New -5 → Assess -4 → Authorize -3 → Scheduled -2 →
/// Implement -1 → Review 0 → Closed 3; Canceled 4 from any state before Review.
pub fn default_change_workflow() -> TransitionGraph {
    let mut g = TransitionGraph::new("state").initial("-5");
    let chain = ["-5", "-4", "-3", "-2", "-1", "0", "3"];
    for w in chain.windows(2) {
        g = g.transition(w[0], w[1]);
    }
    for from in ["-5", "-4", "-3", "-2", "-1"] {
        g = g.transition(from, "4");
    }
    g
}

impl fmt::Debug for ServiceNowConfig {
    /// The URL without user info or secret query values; credentials as `REDACTED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceNowConfig")
            .field(
                "instance",
                &workbridge_http::redact_url_text(&self.instance),
            )
            .field("auth", &self.auth)
            .field("client", &self.client)
            .field("page_size", &self.page_size)
            .field("read_batch", &self.read_batch)
            .field("write_batch", &self.write_batch)
            .field("version_check", &self.version_check)
            .field("correlation_display", &self.correlation_display)
            .field("parents", &self.parents)
            .field("workflows", &self.workflows)
            .finish()
    }
}

impl ServiceNowConfig {
    /// A builder for the instance at `instance`.
    pub fn builder(instance: impl Into<String>) -> ServiceNowConfigBuilder {
        let task = vec!["task".to_owned()];
        ServiceNowConfigBuilder {
            config: ServiceNowConfig {
                instance: instance.into(),
                auth: None,
                client: ClientOptions::default(),
                page_size: 2_000,
                read_batch: 100,
                write_batch: 100,
                version_check: VersionCheck::default(),
                correlation_display: "workbridge".into(),
                parents: BTreeMap::from([
                    ("incident".to_owned(), task.clone()),
                    ("problem".to_owned(), task.clone()),
                    ("change_request".to_owned(), task),
                ]),
                workflows: BTreeMap::from([
                    ("incident".to_owned(), default_incident_workflow()),
                    ("problem".to_owned(), default_problem_workflow()),
                    ("change_request".to_owned(), default_change_workflow()),
                ]),
            },
        }
    }

    /// Reads `SERVICENOW_INSTANCE` (URL), and `SERVICENOW_USER` + `SERVICENOW_PASSWORD`, with
    /// `SERVICENOW_CLIENT_ID` + `SERVICENOW_CLIENT_SECRET` for OAuth, or `SERVICENOW_TOKEN` for a
    /// bearer token. `SERVICENOW_ALLOW_HTTP=true` allows plain http to a loopback simulator.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the missing variable.
    pub fn from_env() -> Result<ServiceNowConfig> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `get`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the missing variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<ServiceNowConfig> {
        let env = EnvVars::new("SERVICENOW_", get);
        let mut b = ServiceNowConfig::builder(env.need("INSTANCE")?);
        if let Some(token) = env.get("TOKEN") {
            b = b.bearer(token);
        } else {
            let (user, password) = (env.need("USER")?, env.need("PASSWORD")?);
            b = match (env.get("CLIENT_ID"), env.get("CLIENT_SECRET")) {
                (Some(id), Some(secret)) => b.oauth(id, secret, user, password),
                _ => b.basic(user, password),
            };
        }
        let options = env.client_options(b.config.client.clone())?;
        Ok(b.client_options(options).build())
    }
}

/// Builds a [`ServiceNowConfig`].
#[derive(Debug, Clone)]
pub struct ServiceNowConfigBuilder {
    config: ServiceNowConfig,
}

impl ServiceNowConfigBuilder {
    /// Basic authentication.
    #[must_use]
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.auth = Some(ServiceNowAuth::Basic {
            user: user.into(),
            password: SecretString::from(password.into()),
        });
        self
    }

    /// OAuth2 password grant.
    #[must_use]
    pub fn oauth(
        mut self,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        user: impl Into<String>,
        password: impl Into<String>,
    ) -> Self {
        self.config.auth = Some(ServiceNowAuth::OAuth {
            client_id: client_id.into(),
            client_secret: SecretString::from(client_secret.into()),
            user: user.into(),
            password: SecretString::from(password.into()),
        });
        self
    }

    /// A bearer token.
    #[must_use]
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.config.auth = Some(ServiceNowAuth::Bearer(SecretString::from(token.into())));
        self
    }

    /// An authentication provider of your own.
    #[must_use]
    pub fn auth_provider(mut self, provider: std::sync::Arc<dyn AuthProvider>) -> Self {
        self.config.auth = Some(ServiceNowAuth::Custom(provider));
        self
    }

    /// HTTP options.
    #[must_use]
    pub fn client_options(mut self, options: ClientOptions) -> Self {
        self.config.client = options;
        self
    }

    /// Rows per `changes` page.
    #[must_use]
    pub fn page_size(mut self, n: usize) -> Self {
        self.config.page_size = n.clamp(1, 10_000);
        self
    }

    /// Ids per `get_many` request.
    #[must_use]
    pub fn read_batch(mut self, n: usize) -> Self {
        self.config.read_batch = n.clamp(1, 500);
        self
    }

    /// Requests per Batch API call.
    #[must_use]
    pub fn write_batch(mut self, n: usize) -> Self {
        self.config.write_batch = n.clamp(1, 1000);
        self
    }

    /// How updates are held to the caller's version ([`VersionCheck`]).
    #[must_use]
    pub fn version_check(mut self, check: VersionCheck) -> Self {
        self.config.version_check = check;
        self
    }

    /// What `correlation_display` says on created items.
    #[must_use]
    pub fn correlation_display(mut self, s: impl Into<String>) -> Self {
        self.config.correlation_display = s.into();
        self
    }

    /// Declares the parent tables of a table.
    #[must_use]
    pub fn parents(
        mut self,
        table: impl Into<String>,
        parents: impl IntoIterator<Item = impl Into<String>>,
    ) -> Self {
        self.config
            .parents
            .insert(table.into(), parents.into_iter().map(Into::into).collect());
        self
    }

    /// Sets (or with `None`, removes) the workflow enforced on a table.
    #[must_use]
    pub fn workflow(mut self, table: impl Into<String>, graph: Option<TransitionGraph>) -> Self {
        let table = table.into();
        match graph {
            Some(g) => self.config.workflows.insert(table, g),
            None => self.config.workflows.remove(&table),
        };
        self
    }

    /// The configuration.
    pub fn build(self) -> ServiceNowConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use workbridge_core::ErrorKind;

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let m: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| m.get(k).cloned()
    }

    #[test]
    fn from_env_picks_the_auth_and_names_what_is_missing() {
        let c = ServiceNowConfig::from_lookup(lookup(&[
            ("SERVICENOW_INSTANCE", "https://acme.service-now.com"),
            ("SERVICENOW_USER", "integration"),
            ("SERVICENOW_PASSWORD", "pw-secret"),
        ]))
        .unwrap();
        assert!(
            matches!(c.auth, Some(ServiceNowAuth::Basic { ref user, .. }) if user == "integration")
        );
        let c = ServiceNowConfig::from_lookup(lookup(&[
            ("SERVICENOW_INSTANCE", "http://127.0.0.1:8080"),
            ("SERVICENOW_USER", "admin"),
            ("SERVICENOW_PASSWORD", "admin"),
            ("SERVICENOW_CLIENT_ID", "cid"),
            ("SERVICENOW_CLIENT_SECRET", "cs-secret"),
            ("SERVICENOW_ALLOW_HTTP", "true"),
        ]))
        .unwrap();
        assert!(matches!(c.auth, Some(ServiceNowAuth::OAuth { .. })));
        assert!(c.client.allow_http);
        let e = ServiceNowConfig::from_lookup(lookup(&[("SERVICENOW_INSTANCE", "https://x")]))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Config);
        assert!(e.to_string().contains("SERVICENOW_USER"), "{e}");
        let e = ServiceNowConfig::from_lookup(lookup(&[])).unwrap_err();
        assert!(e.to_string().contains("SERVICENOW_INSTANCE"), "{e}");
    }

    #[test]
    fn debug_hides_secrets() {
        let c = ServiceNowConfig::builder("https://acme.service-now.com")
            .oauth("cid", "cs-secret", "u", "pw-secret")
            .build();
        let shown = format!("{c:?}");
        assert!(
            !shown.contains("cs-secret") && !shown.contains("pw-secret"),
            "{shown}"
        );
        let shown = format!(
            "{:?}",
            ServiceNowConfig::builder("https://x")
                .bearer("tok-secret")
                .build()
        );
        assert!(!shown.contains("tok-secret"), "{shown}");
    }
}
