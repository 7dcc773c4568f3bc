//! [`ServiceNowSettings`]: an instance as a configuration file gives it.

use workbridge_core::Result;
use workbridge_http::{ClientOptions, ConfigContext, HttpSettings};

use crate::{ServiceNowConfig, VersionCheck};

/// A ServiceNow instance as a configuration file gives it (a `kind = "servicenow"` system of a
/// deployment file). Secrets are named by environment variable (`*_env`), never written here.
///
/// Sign-in: `user` with `password_env` (basic), plus `client_id` and `client_secret_env` for
/// the OAuth password grant; or `token_env` (a bearer token obtained elsewhere). A custom
/// [`AuthProvider`](workbridge_http::AuthProvider), the workflows and the parent tables are set
/// in code on the [`ServiceNowConfig`] this builds.
///
/// ```
/// use workbridge_http::ConfigContext;
/// use workbridge_servicenow::ServiceNowSettings;
/// let s: ServiceNowSettings = toml::from_str(r#"
///     instance = "https://acme.service-now.com"
///     user = "sync.bot"
///     password_env = "SN_PASSWORD"
///     page_size = 500
///     [http]
///     timeout = "30s"
/// "#).unwrap();
/// let env = |k: &str| (k == "SN_PASSWORD").then(|| "s3cret".to_owned());
/// let c = s.config(&ConfigContext::new("systems.ops", ".", &env)).unwrap();
/// assert_eq!(c.page_size, 500);
/// assert!(!format!("{c:?}").contains("s3cret"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ServiceNowSettings {
    /// The instance URL.
    pub instance: String,
    /// The user (basic or OAuth).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the user's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The OAuth client id (with `client_secret_env`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The environment variable holding the OAuth client secret.
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The environment variable holding a bearer token (instead of a user).
    #[serde(default)]
    pub token_env: Option<String>,
    /// Rows per `changes` page ([`ServiceNowConfig::page_size`]).
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Ids per read of many ([`ServiceNowConfig::read_batch`]).
    #[serde(default)]
    pub read_batch: Option<usize>,
    /// Requests per Batch API call ([`ServiceNowConfig::write_batch`]).
    #[serde(default)]
    pub write_batch: Option<usize>,
    /// `"read-before"` or `"after-write"` ([`ServiceNowConfig::version_check`]).
    #[serde(default)]
    pub version_check: Option<VersionCheck>,
    /// What `correlation_display` says on items this adapter creates.
    #[serde(default)]
    pub correlation_display: Option<String>,
    /// The HTTP connection.
    #[serde(default)]
    pub http: HttpSettings,
}

impl ServiceNowSettings {
    /// The configuration these settings describe, secrets read through `cx`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting: no way to
    /// sign in, or two; a secret's variable unset; a count of zero; a bad HTTP setting.
    pub fn config(&self, cx: &ConfigContext<'_>) -> Result<ServiceNowConfig> {
        let mut b = ServiceNowConfig::builder(self.instance.clone());
        b = match (&self.token_env, &self.user, &self.password_env) {
            (Some(_), Some(_), _) => {
                return Err(cx.error("token_env", "a token and a `user`: give one way to sign in"));
            }
            (Some(var), None, _) => b.bearer(cx.secret("token_env", var)?),
            (None, Some(user), Some(var)) => {
                let password = cx.secret("password_env", var)?;
                match (&self.client_id, &self.client_secret_env) {
                    (Some(id), Some(sv)) => b.oauth(
                        id.clone(),
                        cx.secret("client_secret_env", sv)?,
                        user.clone(),
                        password,
                    ),
                    (None, None) => b.basic(user.clone(), password),
                    _ => {
                        return Err(cx.error(
                            "client_id",
                            "OAuth needs both `client_id` and `client_secret_env`",
                        ));
                    }
                }
            }
            (None, Some(_), None) => {
                return Err(cx.error("password_env", "a `user` needs `password_env`"));
            }
            (None, None, _) => {
                return Err(cx.error(
                    "user",
                    "no way to sign in: give `user` and `password_env`, or `token_env`",
                ));
            }
        };
        if let Some(n) = cx.count("page_size", self.page_size)? {
            b = b.page_size(n);
        }
        if let Some(n) = cx.count("read_batch", self.read_batch)? {
            b = b.read_batch(n);
        }
        if let Some(n) = cx.count("write_batch", self.write_batch)? {
            b = b.write_batch(n);
        }
        if let Some(v) = self.version_check {
            b = b.version_check(v);
        }
        if let Some(d) = &self.correlation_display {
            b = b.correlation_display(d.clone());
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

    fn config(text: &str) -> Result<ServiceNowConfig> {
        let s: ServiceNowSettings =
            toml::from_str(text).map_err(|e| workbridge_core::Error::config(e.to_string()))?;
        let env = |k: &str| matches!(k, "PW" | "SECRET" | "TOKEN").then(|| format!("{k}-value"));
        s.config(&ConfigContext::new("systems.ops", ".", &env))
    }

    #[test]
    fn each_way_to_sign_in_is_read() {
        let base = "instance = \"https://acme.service-now.com\"\n";
        let basic = config(&format!("{base}user = \"bot\"\npassword_env = \"PW\"")).unwrap();
        assert!(matches!(
            basic.auth,
            Some(crate::ServiceNowAuth::Basic { .. })
        ));
        let oauth = config(&format!(
            "{base}user = \"bot\"\npassword_env = \"PW\"\nclient_id = \"c\"\nclient_secret_env = \"SECRET\""
        ))
        .unwrap();
        assert!(matches!(
            oauth.auth,
            Some(crate::ServiceNowAuth::OAuth { .. })
        ));
        let bearer = config(&format!(
            "{base}token_env = \"TOKEN\"\nversion_check = \"after-write\""
        ))
        .unwrap();
        assert!(matches!(
            bearer.auth,
            Some(crate::ServiceNowAuth::Bearer(_))
        ));
        assert_eq!(bearer.version_check, VersionCheck::AfterWrite);
        for c in [&basic, &oauth, &bearer] {
            let shown = format!("{c:?}");
            assert!(!shown.contains("-value"), "{shown}");
        }
    }

    #[test]
    fn a_setting_in_error_is_named() {
        let base = "instance = \"https://acme.service-now.com\"\n";
        for (extra, says) in [
            ("", "systems.ops.user: no way to sign in"),
            ("user = \"bot\"", "systems.ops.password_env: a `user` needs"),
            (
                "user = \"bot\"\npassword_env = \"UNSET\"",
                "systems.ops.password_env: the environment variable UNSET is not set",
            ),
            (
                "token_env = \"TOKEN\"\nuser = \"bot\"",
                "systems.ops.token_env: a token and a `user`",
            ),
            (
                "user = \"bot\"\npassword_env = \"PW\"\nclient_id = \"c\"",
                "systems.ops.client_id: OAuth needs both",
            ),
            (
                "token_env = \"TOKEN\"\npage_size = 0",
                "systems.ops.page_size: 0",
            ),
            (
                "token_env = \"TOKEN\"\n[http]\nmax_concurrency = 0",
                "systems.ops.http.max_concurrency",
            ),
            (
                "token_env = \"TOKEN\"\npage_sise = 10",
                "unknown field `page_sise`",
            ),
        ] {
            let e = config(&format!("{base}{extra}")).unwrap_err();
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
