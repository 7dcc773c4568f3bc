//! [`AzureDevOpsSettings`]: a collection and project as a configuration file gives them.

use workbridge_core::Result;
use workbridge_http::{ClientOptions, ConfigContext, HttpSettings};

use crate::{AzureDevOpsConfig, ServerVersion};

/// An Azure DevOps organization or TFS / Azure DevOps Server collection and its project, as a
/// configuration file gives them (a `kind = "azure-devops"` system of a deployment file).
/// Secrets are named by environment variable (`*_env`), never written here.
///
/// Sign-in: `pat_env` (a personal access token, TFS 2017 and later), `token_env` (a bearer
/// token obtained elsewhere), or `user` with `password_env` (basic, IIS on Azure DevOps Server
/// / TFS). A token source that renews itself or a custom provider is set in code on the
/// [`AzureDevOpsConfig`] this builds.
///
/// ```
/// use workbridge_azure_devops::AzureDevOpsSettings;
/// use workbridge_http::ConfigContext;
/// let s: AzureDevOpsSettings = toml::from_str(r#"
///     url = "http://tfs:8080/tfs/DefaultCollection"
///     project = "Fabrikam"
///     server_version = "tfs2018"
///     pat_env = "ADO_PAT"
///     correlation_field = "Custom.SyncKey"
///     [http]
///     allow_http_to = ["tfs"]
/// "#).unwrap();
/// let env = |k: &str| (k == "ADO_PAT").then(|| "pat-value".to_owned());
/// let c = s.config(&ConfigContext::new("systems.dev", ".", &env)).unwrap();
/// assert_eq!(c.project, "Fabrikam");
/// assert_eq!(c.client.insecure_http_hosts, ["tfs"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AzureDevOpsSettings {
    /// The organization or collection URL (`https://dev.azure.com/fabrikam`,
    /// `https://tfs.corp/tfs/DefaultCollection`).
    pub url: String,
    /// The project.
    pub project: String,
    /// `services` (default), `server2022`, `server2020`, `server2019`, `tfs2018`, `tfs2017`,
    /// `tfs2015`.
    #[serde(default)]
    pub server_version: Option<String>,
    /// The environment variable holding a personal access token.
    #[serde(default)]
    pub pat_env: Option<String>,
    /// The environment variable holding a bearer token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// The user, for basic authentication (with `password_env`).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the user's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The field holding the correlation key ([`AzureDevOpsConfig::correlation_field`]).
    #[serde(default)]
    pub correlation_field: Option<String>,
    /// Work items per `changes` page.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// The HTTP connection.
    #[serde(default)]
    pub http: HttpSettings,
}

impl AzureDevOpsSettings {
    /// The configuration these settings describe, secrets read through `cx`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting: no way to
    /// sign in, or two; a secret's variable unset; an unknown server version; a page of zero;
    /// a bad HTTP setting.
    pub fn config(&self, cx: &ConfigContext<'_>) -> Result<AzureDevOpsConfig> {
        let mut b = AzureDevOpsConfig::builder(self.url.clone(), self.project.clone());
        let ways = [
            self.pat_env.is_some(),
            self.token_env.is_some(),
            self.user.is_some(),
        ]
        .into_iter()
        .filter(|w| *w)
        .count();
        if ways > 1 {
            return Err(cx.error(
                "pat_env",
                "give one way to sign in: `pat_env`, `token_env`, or `user` with `password_env`",
            ));
        }
        b = match (
            &self.pat_env,
            &self.token_env,
            &self.user,
            &self.password_env,
        ) {
            (Some(var), ..) => b.pat(cx.secret("pat_env", var)?),
            (None, Some(var), ..) => b.bearer(cx.secret("token_env", var)?),
            (None, None, Some(user), Some(var)) => {
                b.basic(user.clone(), cx.secret("password_env", var)?)
            }
            (None, None, Some(_), None) => {
                return Err(cx.error("password_env", "a `user` needs `password_env`"));
            }
            (None, None, None, _) => {
                return Err(cx.error(
                    "pat_env",
                    "no way to sign in: give `pat_env`, `token_env`, or `user` with `password_env`",
                ));
            }
        };
        if let Some(v) = &self.server_version {
            let version = ServerVersion::parse(v).ok_or_else(|| {
                cx.error(
                    "server_version",
                    format!("`{v}` is not services, server2022, server2020, server2019, tfs2018, tfs2017 or tfs2015"),
                )
            })?;
            b = b.server_version(version);
        }
        if let Some(f) = &self.correlation_field {
            b = b.correlation_field(f.clone());
        }
        if let Some(n) = cx.count("page_size", self.page_size)? {
            b = b.page_size(n);
        }
        let options = self
            .http
            .apply(ClientOptions::default(), &cx.nested("http"))?;
        Ok(b.client_options(options).build())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Result<AzureDevOpsConfig> {
        let s: AzureDevOpsSettings =
            toml::from_str(text).map_err(|e| workbridge_core::Error::config(e.to_string()))?;
        let env = |k: &str| matches!(k, "PAT" | "TOKEN" | "PW").then(|| format!("{k}-value"));
        s.config(&ConfigContext::new("systems.dev", ".", &env))
    }

    #[test]
    fn each_way_to_sign_in_is_read() {
        let base = "url = \"https://dev.azure.com/fabrikam\"\nproject = \"Fabrikam\"\n";
        for (extra, want) in [
            ("pat_env = \"PAT\"", "Pat"),
            ("token_env = \"TOKEN\"", "Bearer"),
            (
                "user = \"svc\"\npassword_env = \"PW\"\nserver_version = \"tfs2015\"",
                "Basic",
            ),
        ] {
            let c = config(&format!("{base}{extra}")).unwrap();
            let shown = format!("{c:?}");
            assert!(shown.contains(want), "{extra}: {shown}");
            assert!(!shown.contains("-value"), "no secret in Debug: {shown}");
        }
    }

    #[test]
    fn a_setting_in_error_is_named() {
        let base = "url = \"https://dev.azure.com/fabrikam\"\nproject = \"Fabrikam\"\n";
        for (extra, says) in [
            ("", "systems.dev.pat_env: no way to sign in"),
            (
                "pat_env = \"PAT\"\ntoken_env = \"TOKEN\"",
                "systems.dev.pat_env: give one way",
            ),
            ("user = \"svc\"", "systems.dev.password_env: a `user` needs"),
            (
                "pat_env = \"UNSET\"",
                "systems.dev.pat_env: the environment variable UNSET is not set",
            ),
            (
                "pat_env = \"PAT\"\nserver_version = \"tfs2010\"",
                "systems.dev.server_version: `tfs2010`",
            ),
            (
                "pat_env = \"PAT\"\npage_size = 0",
                "systems.dev.page_size: 0",
            ),
            (
                "pat_env = \"PAT\"\n[http]\nproxy = \"::\"",
                "systems.dev.http.proxy",
            ),
        ] {
            let e = config(&format!("{base}{extra}")).unwrap_err();
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
