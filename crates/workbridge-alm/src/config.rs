//! [`AlmConfig`] and its builder.

use std::fmt;

use secrecy::SecretString;
pub use workbridge_core::VersionCheck;
use workbridge_core::{Error, Result, TransitionGraph};
use workbridge_http::{ClientOptions, EnvVars};

use crate::wire::Format;

/// How the adapter signs in.
#[derive(Clone)]
#[non_exhaustive]
pub enum AlmAuth {
    /// A user and password: `alm-authenticate` (or, with [`LoginFlow::Basic`],
    /// `authentication-point/authenticate`), then `site-session`.
    Password {
        /// The user.
        user: String,
        /// The password.
        password: SecretString,
    },
    /// An API key: `rest/oauth2/login`.
    ApiKey {
        /// The client id.
        client_id: String,
        /// The secret.
        secret: SecretString,
    },
    /// An authentication provider of the integrator's own, in place of the adapter's login
    /// (a single sign-on gateway, a login of another kind wrapped in
    /// [`CookieSession`](workbridge_http::CookieSession)). Comments the adapter writes are
    /// signed with the comment's author, the login being unknown.
    Custom(std::sync::Arc<dyn workbridge_http::AuthProvider>),
}

impl fmt::Debug for AlmAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AlmAuth::Password { user, .. } => f
                .debug_struct("Password")
                .field("user", user)
                .field("password", &"REDACTED")
                .finish(),
            AlmAuth::ApiKey { client_id, .. } => f
                .debug_struct("ApiKey")
                .field("client_id", client_id)
                .field("secret", &"REDACTED")
                .finish(),
            AlmAuth::Custom(p) => f.debug_tuple("Custom").field(p).finish(),
        }
    }
}

/// Which password login the server wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum LoginFlow {
    /// `POST authentication-point/alm-authenticate` (ALM 12+, recommended).
    #[default]
    AlmAuthenticate,
    /// `GET authentication-point/authenticate` with basic authentication (ALM 11 and later).
    Basic,
}

/// Everything the adapter needs to know about an ALM project.
#[derive(Clone)]
#[non_exhaustive]
pub struct AlmConfig {
    /// The server URL, with or without `/qcbin` (`https://alm.corp`).
    pub url: String,
    /// The domain.
    pub domain: String,
    /// The project.
    pub project: String,
    /// How to sign in.
    pub auth: Option<AlmAuth>,
    /// The password login flow.
    pub login: LoginFlow,
    /// JSON or XML.
    pub format: Format,
    /// The field that holds the correlation key, by name (`user-02`) or label
    /// (`ServiceNow Ticket`); without one, correlation is unsupported.
    pub correlation_field: Option<String>,
    /// The database server's offset from UTC in minutes; `None`: detected from `rest/server/time`.
    pub time_zone_offset_minutes: Option<i64>,
    /// How long a detected offset is trusted before `rest/server/time` is read again (default
    /// 10 minutes): a daylight-saving change is followed within that time.
    pub offset_refresh: std::time::Duration,
    /// Entities per page in `changes` (default 2000, the server's default
    /// `REST_API_MAX_PAGE_SIZE`; set it to the site's value if that is lower).
    pub page_size: usize,
    /// New entities per bulk create in `write_many` (default 2000, the server's default
    /// `REST_API_MAX_BULK_SIZE`; set it to the site's value if that is lower).
    pub bulk_size: usize,
    /// How a bulk update is held to the `ver-stamp` its caller read: ALM has no conditional
    /// write (default [`VersionCheck::ReadBefore`]: one read of the versions per bulk `PUT`;
    /// [`VersionCheck::AfterWrite`]: none, each answer's `ver-stamp` checked instead).
    pub version_check: VersionCheck,
    /// Collections under version control: updated with check-out / check-in instead of a lock.
    pub versioned: Vec<String>,
    /// The defect workflow enforced on `update` (default: New → Open → Fixed → Closed, with
    /// Rejected and Reopen); `None` to leave it to the server.
    pub defect_workflow: Option<TransitionGraph>,
    /// HTTP options.
    pub client: ClientOptions,
}

/// The out-of-box defect workflow.
pub fn default_defect_workflow() -> TransitionGraph {
    let mut g = TransitionGraph::new("status").initial("New");
    for (a, b) in [
        ("New", "Open"),
        ("New", "Rejected"),
        ("Open", "Fixed"),
        ("Open", "Rejected"),
        ("Fixed", "Closed"),
        ("Fixed", "Reopen"),
        ("Closed", "Reopen"),
        ("Reopen", "Fixed"),
        ("Reopen", "Open"),
        ("Rejected", "Reopen"),
    ] {
        g = g.transition(a, b);
    }
    g
}

impl fmt::Debug for AlmConfig {
    /// The URL without user info or secret query values; credentials as `REDACTED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlmConfig")
            .field("url", &workbridge_http::redact_url_text(&self.url))
            .field("domain", &self.domain)
            .field("project", &self.project)
            .field("auth", &self.auth)
            .field("login", &self.login)
            .field("format", &self.format)
            .field("correlation_field", &self.correlation_field)
            .field("time_zone_offset_minutes", &self.time_zone_offset_minutes)
            .field("offset_refresh", &self.offset_refresh)
            .field("page_size", &self.page_size)
            .field("bulk_size", &self.bulk_size)
            .field("version_check", &self.version_check)
            .field("versioned", &self.versioned)
            .field("defect_workflow", &self.defect_workflow)
            .field("client", &self.client)
            .finish()
    }
}

impl AlmConfig {
    /// A builder.
    pub fn builder(
        url: impl Into<String>,
        domain: impl Into<String>,
        project: impl Into<String>,
    ) -> AlmConfigBuilder {
        AlmConfigBuilder {
            config: AlmConfig {
                url: url.into(),
                domain: domain.into(),
                project: project.into(),
                auth: None,
                login: LoginFlow::default(),
                format: Format::Json,
                correlation_field: None,
                time_zone_offset_minutes: None,
                offset_refresh: std::time::Duration::from_secs(600),
                page_size: 2000,
                bulk_size: 2000,
                version_check: VersionCheck::default(),
                versioned: Vec::new(),
                defect_workflow: Some(default_defect_workflow()),
                client: ClientOptions::default(),
            },
        }
    }

    /// Reads `ALM_URL`, `ALM_DOMAIN`, `ALM_PROJECT`, `ALM_USER` + `ALM_PASSWORD` (or
    /// `ALM_CLIENT_ID` + `ALM_SECRET`), and optionally `ALM_FORMAT` (`json`|`xml`),
    /// `ALM_CORRELATION_FIELD`, `ALM_ALLOW_HTTP=true`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the missing or invalid variable.
    pub fn from_env() -> Result<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// As [`from_env`](Self::from_env), reading variables through `get`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the missing or invalid variable.
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let env = EnvVars::new("ALM_", get);
        let mut b = AlmConfig::builder(env.need("URL")?, env.need("DOMAIN")?, env.need("PROJECT")?);
        b = match env.get("CLIENT_ID") {
            Some(id) => b.api_key(id, env.need("SECRET")?),
            None => b.password(env.need("USER")?, env.need("PASSWORD")?),
        };
        match env.get("FORMAT").as_deref() {
            None | Some("json") => {}
            Some("xml") => b = b.format(Format::Xml),
            Some(other) => {
                return Err(Error::config(format!(
                    "ALM_FORMAT `{other}` is not json or xml"
                )));
            }
        }
        if let Some(f) = env.get("CORRELATION_FIELD") {
            b = b.correlation_field(f);
        }
        let options = env.client_options(b.config.client.clone())?;
        Ok(b.client_options(options).build())
    }
}

/// Builds an [`AlmConfig`].
#[derive(Debug, Clone)]
pub struct AlmConfigBuilder {
    config: AlmConfig,
}

impl AlmConfigBuilder {
    /// A user and password.
    #[must_use]
    pub fn password(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.auth = Some(AlmAuth::Password {
            user: user.into(),
            password: SecretString::from(password.into()),
        });
        self
    }

    /// An API key.
    #[must_use]
    pub fn api_key(mut self, client_id: impl Into<String>, secret: impl Into<String>) -> Self {
        self.config.auth = Some(AlmAuth::ApiKey {
            client_id: client_id.into(),
            secret: SecretString::from(secret.into()),
        });
        self
    }

    /// An authentication provider of the integrator's own ([`AlmAuth::Custom`]).
    #[must_use]
    pub fn auth_provider(
        mut self,
        provider: std::sync::Arc<dyn workbridge_http::AuthProvider>,
    ) -> Self {
        self.config.auth = Some(AlmAuth::Custom(provider));
        self
    }

    /// The password login flow.
    #[must_use]
    pub fn login_flow(mut self, flow: LoginFlow) -> Self {
        self.config.login = flow;
        self
    }

    /// JSON or XML.
    #[must_use]
    pub fn format(mut self, f: Format) -> Self {
        self.config.format = f;
        self
    }

    /// The correlation field (name or label).
    #[must_use]
    pub fn correlation_field(mut self, f: impl Into<String>) -> Self {
        self.config.correlation_field = Some(f.into());
        self
    }

    /// The server's offset from UTC, in minutes (skips detection).
    #[must_use]
    pub fn time_zone_offset_minutes(mut self, m: i64) -> Self {
        self.config.time_zone_offset_minutes = Some(m);
        self
    }

    /// How long a detected offset is trusted ([`AlmConfig::offset_refresh`]).
    #[must_use]
    pub fn offset_refresh(mut self, every: std::time::Duration) -> Self {
        self.config.offset_refresh = every;
        self
    }

    /// Entities per page.
    #[must_use]
    pub fn page_size(mut self, n: usize) -> Self {
        self.config.page_size = n.clamp(1, 2000);
        self
    }

    /// New entities per bulk create (the site's `REST_API_MAX_BULK_SIZE`, when below 2000).
    #[must_use]
    pub fn bulk_size(mut self, n: usize) -> Self {
        self.config.bulk_size = n.clamp(1, 2000);
        self
    }

    /// How bulk updates are held to the caller's version ([`VersionCheck`]).
    #[must_use]
    pub fn version_check(mut self, check: VersionCheck) -> Self {
        self.config.version_check = check;
        self
    }

    /// Marks a collection as version-controlled.
    #[must_use]
    pub fn versioned(mut self, collection: impl Into<String>) -> Self {
        self.config.versioned.push(collection.into());
        self
    }

    /// Sets (or removes) the defect workflow.
    #[must_use]
    pub fn defect_workflow(mut self, g: Option<TransitionGraph>) -> Self {
        self.config.defect_workflow = g;
        self
    }

    /// HTTP options.
    #[must_use]
    pub fn client_options(mut self, o: ClientOptions) -> Self {
        self.config.client = o;
        self
    }

    /// The configuration.
    pub fn build(self) -> AlmConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn from_env_and_redaction() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("ALM_URL", "https://alm.corp"),
            ("ALM_DOMAIN", "DEFAULT"),
            ("ALM_PROJECT", "Demo"),
            ("ALM_CLIENT_ID", "oauth2-x@corp"),
            ("ALM_SECRET", "key-secret"),
            ("ALM_FORMAT", "xml"),
        ]);
        let c = AlmConfig::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.format, Format::Xml);
        assert!(matches!(c.auth, Some(AlmAuth::ApiKey { .. })));
        assert!(!format!("{c:?}").contains("key-secret"));
        let e = AlmConfig::from_lookup(|k| match k {
            "ALM_URL" | "ALM_DOMAIN" | "ALM_PROJECT" => Some("x".into()),
            _ => None,
        })
        .unwrap_err();
        assert!(e.to_string().contains("ALM_USER"), "{e}");
    }
}
