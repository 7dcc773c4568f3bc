//! [`AzureDevOpsConfig`] and its builder.

use std::fmt;

use std::sync::Arc;

use secrecy::SecretString;
use workbridge_core::{Error, Result};
use workbridge_http::{AuthProvider, ClientOptions, EnvVars, TokenSource};

/// The server the adapter talks to: it decides the api-versions used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum ServerVersion {
    /// TFS 2015 (api 2.0).
    Tfs2015,
    /// TFS 2017 (api 3.0).
    Tfs2017,
    /// TFS 2018 Update 2+ (api 4.1).
    Tfs2018,
    /// Azure DevOps Server 2019.1 (api 5.1).
    Server2019,
    /// Azure DevOps Server 2020 (api 6.0).
    Server2020,
    /// Azure DevOps Server 2022 (api 7.0).
    Server2022,
    /// Azure DevOps Services (api 7.1).
    Services,
}

impl ServerVersion {
    /// Parses `tfs2015`, `tfs2017`, `tfs2018`, `server2019`, `server2020`, `server2022`, `services`.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s.to_ascii_lowercase().as_str() {
            "tfs2015" => ServerVersion::Tfs2015,
            "tfs2017" => ServerVersion::Tfs2017,
            "tfs2018" => ServerVersion::Tfs2018,
            "server2019" => ServerVersion::Server2019,
            "server2020" => ServerVersion::Server2020,
            "server2022" => ServerVersion::Server2022,
            "services" => ServerVersion::Services,
            _ => return None,
        })
    }

    /// The api-version of the core work item routes.
    pub fn api(self) -> &'static str {
        match self {
            ServerVersion::Tfs2015 => "2.0",
            ServerVersion::Tfs2017 => "3.0",
            ServerVersion::Tfs2018 => "4.1",
            ServerVersion::Server2019 => "5.1",
            ServerVersion::Server2020 => "6.0",
            ServerVersion::Server2022 => "7.0",
            ServerVersion::Services => "7.1",
        }
    }

    /// The api-version of the Comments API, where the server has it.
    pub fn comments_api(self) -> Option<&'static str> {
        match self {
            ServerVersion::Server2019 => Some("5.1-preview.3"),
            ServerVersion::Server2020 => Some("6.0-preview.3"),
            ServerVersion::Server2022 => Some("7.0-preview.3"),
            ServerVersion::Services => Some("7.1-preview.4"),
            _ => None,
        }
    }

    /// Whether `POST workitemsbatch` exists (5.0+).
    pub fn has_batch_read(self) -> bool {
        self >= ServerVersion::Server2019
    }

    /// Whether a work item type's own field list (`workitemtypes/{type}/fields`, with
    /// `defaultValue` and `allowedValues`) exists (4.1+).
    pub fn has_type_field_details(self) -> bool {
        self >= ServerVersion::Tfs2018
    }

    /// Whether identity fields are objects (5.0+) rather than `"Name <email>"` strings.
    pub fn identity_objects(self) -> bool {
        self >= ServerVersion::Server2019
    }
}

/// How the adapter signs in.
#[derive(Clone)]
#[non_exhaustive]
pub enum AzureDevOpsAuth {
    /// A personal access token (basic authentication with an empty user name).
    Pat(SecretString),
    /// A fixed OAuth / Entra ID bearer token (it is not renewed: see `Token`).
    Bearer(SecretString),
    /// A user and password (basic authentication): Azure DevOps Server / TFS on IIS with basic
    /// authentication on — TFS 2015, which has no personal access tokens, included.
    Basic {
        /// The user (`DOMAIN\user` where the server wants it).
        user: String,
        /// The password.
        password: SecretString,
    },
    /// Bearer tokens from a [`TokenSource`] (Microsoft Entra ID, a managed identity): fetched
    /// again before each expires and after a 401 ([`workbridge_http::TokenAuth`]).
    Token(Arc<dyn TokenSource>),
    /// An authentication provider of the integrator's own (NTLM or Negotiate through a proxy,
    /// a signing gateway).
    Custom(Arc<dyn AuthProvider>),
}

impl fmt::Debug for AzureDevOpsAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AzureDevOpsAuth::Pat(_) => f.debug_tuple("Pat").field(&"REDACTED").finish(),
            AzureDevOpsAuth::Bearer(_) => f.debug_tuple("Bearer").field(&"REDACTED").finish(),
            AzureDevOpsAuth::Basic { user, .. } => f
                .debug_struct("Basic")
                .field("user", user)
                .field("password", &"REDACTED")
                .finish(),
            AzureDevOpsAuth::Token(s) => f.debug_tuple("Token").field(s).finish(),
            AzureDevOpsAuth::Custom(p) => f.debug_tuple("Custom").field(p).finish(),
        }
    }
}

/// Everything the adapter needs to know about an organization or collection and a project.
#[derive(Clone)]
#[non_exhaustive]
pub struct AzureDevOpsConfig {
    /// The organization URL (`https://dev.azure.com/fabrikam`) or the on-premises collection URL
    /// (`https://tfs.corp:8080/tfs/DefaultCollection`).
    pub organization_url: String,
    /// The project name.
    pub project: String,
    /// How to sign in.
    pub auth: Option<AzureDevOpsAuth>,
    /// The server, which decides the api-versions (default Services).
    pub server: ServerVersion,
    /// The field that holds the correlation key (a custom field such as
    /// `Custom.ServiceNowTicket`); `None`: a `workbridge:{key}` tag.
    pub correlation_field: Option<String>,
    /// Items per `changes` page when the caller does not say (default 2,000: one WIQL query,
    /// read in batches of 200).
    pub page_size: usize,
    /// HTTP options.
    pub client: ClientOptions,
}

impl fmt::Debug for AzureDevOpsConfig {
    /// The URL without user info or secret query values; credentials as `REDACTED`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureDevOpsConfig")
            .field(
                "organization_url",
                &workbridge_http::redact_url_text(&self.organization_url),
            )
            .field("project", &self.project)
            .field("auth", &self.auth)
            .field("server", &self.server)
            .field("correlation_field", &self.correlation_field)
            .field("page_size", &self.page_size)
            .field("client", &self.client)
            .finish()
    }
}

impl AzureDevOpsConfig {
    /// A builder.
    pub fn builder(
        organization_url: impl Into<String>,
        project: impl Into<String>,
    ) -> AzureDevOpsConfigBuilder {
        AzureDevOpsConfigBuilder {
            config: AzureDevOpsConfig {
                organization_url: organization_url.into(),
                project: project.into(),
                auth: None,
                server: ServerVersion::Services,
                correlation_field: None,
                page_size: 2000,
                client: ClientOptions::default(),
            },
        }
    }

    /// Reads `AZURE_DEVOPS_ORG_URL`, `AZURE_DEVOPS_PROJECT`, `AZURE_DEVOPS_PAT` (or
    /// `AZURE_DEVOPS_TOKEN` for a bearer token), and optionally `AZURE_DEVOPS_SERVER_VERSION`,
    /// `AZURE_DEVOPS_CORRELATION_FIELD`, `AZURE_DEVOPS_ALLOW_HTTP=true` (loopback simulators).
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
        let env = EnvVars::new("AZURE_DEVOPS_", get);
        let mut b = AzureDevOpsConfig::builder(env.need("ORG_URL")?, env.need("PROJECT")?);
        b = match env.get("TOKEN") {
            Some(t) => b.bearer(t),
            None => b.pat(env.need("PAT")?),
        };
        if let Some(v) = env.get("SERVER_VERSION") {
            let s = ServerVersion::parse(&v).ok_or_else(|| {
                Error::config(format!("AZURE_DEVOPS_SERVER_VERSION `{v}` is not one of tfs2015, tfs2017, tfs2018, server2019, server2020, server2022, services"))
            })?;
            b = b.server_version(s);
        }
        if let Some(f) = env.get("CORRELATION_FIELD") {
            b = b.correlation_field(f);
        }
        let options = env.client_options(b.config.client.clone())?;
        Ok(b.client_options(options).build())
    }
}

/// Builds an [`AzureDevOpsConfig`].
#[derive(Debug, Clone)]
pub struct AzureDevOpsConfigBuilder {
    config: AzureDevOpsConfig,
}

impl AzureDevOpsConfigBuilder {
    /// A personal access token.
    #[must_use]
    pub fn pat(mut self, pat: impl Into<String>) -> Self {
        self.config.auth = Some(AzureDevOpsAuth::Pat(SecretString::from(pat.into())));
        self
    }

    /// A bearer token.
    #[must_use]
    pub fn bearer(mut self, token: impl Into<String>) -> Self {
        self.config.auth = Some(AzureDevOpsAuth::Bearer(SecretString::from(token.into())));
        self
    }

    /// A user and password (basic authentication on Azure DevOps Server / TFS).
    #[must_use]
    pub fn basic(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.config.auth = Some(AzureDevOpsAuth::Basic {
            user: user.into(),
            password: SecretString::from(password.into()),
        });
        self
    }

    /// Bearer tokens from `source`, renewed before they expire and after a 401.
    #[must_use]
    pub fn token_source(mut self, source: Arc<dyn TokenSource>) -> Self {
        self.config.auth = Some(AzureDevOpsAuth::Token(source));
        self
    }

    /// An authentication provider of your own.
    #[must_use]
    pub fn auth_provider(mut self, provider: Arc<dyn AuthProvider>) -> Self {
        self.config.auth = Some(AzureDevOpsAuth::Custom(provider));
        self
    }

    /// The server version.
    #[must_use]
    pub fn server_version(mut self, v: ServerVersion) -> Self {
        self.config.server = v;
        self
    }

    /// The correlation field.
    #[must_use]
    pub fn correlation_field(mut self, field: impl Into<String>) -> Self {
        self.config.correlation_field = Some(field.into());
        self
    }

    /// Items per `changes` page.
    #[must_use]
    pub fn page_size(mut self, n: usize) -> Self {
        self.config.page_size = n.clamp(1, 19_999);
        self
    }

    /// HTTP options.
    #[must_use]
    pub fn client_options(mut self, o: ClientOptions) -> Self {
        self.config.client = o;
        self
    }

    /// The configuration.
    pub fn build(self) -> AzureDevOpsConfig {
        self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn from_env_reads_and_names_what_is_missing() {
        let vars: HashMap<&str, &str> = HashMap::from([
            ("AZURE_DEVOPS_ORG_URL", "https://dev.azure.com/fabrikam"),
            ("AZURE_DEVOPS_PROJECT", "Fabrikam"),
            ("AZURE_DEVOPS_PAT", "pat-secret"),
            ("AZURE_DEVOPS_SERVER_VERSION", "tfs2018"),
            ("AZURE_DEVOPS_CORRELATION_FIELD", "Custom.Ticket"),
        ]);
        let c = AzureDevOpsConfig::from_lookup(|k| vars.get(k).map(|v| (*v).to_owned())).unwrap();
        assert_eq!(c.server, ServerVersion::Tfs2018);
        assert_eq!(c.correlation_field.as_deref(), Some("Custom.Ticket"));
        assert!(!format!("{c:?}").contains("pat-secret"));
        let e = AzureDevOpsConfig::from_lookup(|k| {
            (k == "AZURE_DEVOPS_ORG_URL").then(|| "https://x".to_owned())
        })
        .unwrap_err();
        assert!(e.to_string().contains("AZURE_DEVOPS_PROJECT"), "{e}");
        let bad: HashMap<&str, &str> = HashMap::from([
            ("AZURE_DEVOPS_ORG_URL", "https://x"),
            ("AZURE_DEVOPS_PROJECT", "P"),
            ("AZURE_DEVOPS_PAT", "p"),
            ("AZURE_DEVOPS_SERVER_VERSION", "tfs2010"),
        ]);
        let e =
            AzureDevOpsConfig::from_lookup(|k| bad.get(k).map(|v| (*v).to_owned())).unwrap_err();
        assert!(e.to_string().contains("tfs2010"), "{e}");
    }

    #[test]
    fn versions_follow_the_server() {
        assert_eq!(ServerVersion::Services.api(), "7.1");
        assert_eq!(ServerVersion::Tfs2018.comments_api(), None);
        assert_eq!(
            ServerVersion::Server2022.comments_api(),
            Some("7.0-preview.3")
        );
        assert!(!ServerVersion::Tfs2018.has_batch_read());
        assert!(!ServerVersion::Tfs2017.identity_objects());
    }
}
