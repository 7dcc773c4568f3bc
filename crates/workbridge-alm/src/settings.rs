//! [`AlmSettings`]: an ALM project as a configuration file gives it.

use workbridge_core::{Result, VersionCheck};
use workbridge_http::{ClientOptions, ConfigContext, HttpSettings};

use crate::{AlmConfig, Format, LoginFlow};

/// An HP ALM / Quality Center project as a configuration file gives it (a `kind = "alm"`
/// system of a deployment file). Secrets are named by environment variable (`*_env`), never
/// written here.
///
/// Sign-in: `user` with `password_env`, or `client_id` with `api_key_env` (an API key, ALM
/// 12.5 and later). The defect workflow is set in code on the [`AlmConfig`] this builds.
///
/// ```
/// use workbridge_alm::AlmSettings;
/// use workbridge_http::ConfigContext;
/// let s: AlmSettings = toml::from_str(r#"
///     url = "https://alm.corp/qcbin"
///     domain = "DEFAULT"
///     project = "Demo"
///     user = "qa.bot"
///     password_env = "ALM_PASSWORD"
///     format = "xml"
///     offset_refresh = "30m"
/// "#).unwrap();
/// let env = |k: &str| (k == "ALM_PASSWORD").then(|| "pw".to_owned());
/// let c = s.config(&ConfigContext::new("systems.qa", ".", &env)).unwrap();
/// assert_eq!(c.project, "Demo");
/// ```
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct AlmSettings {
    /// The server URL (`https://alm.corp/qcbin`).
    pub url: String,
    /// The domain.
    pub domain: String,
    /// The project.
    pub project: String,
    /// The user (with `password_env`).
    #[serde(default)]
    pub user: Option<String>,
    /// The environment variable holding the user's password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// The API key's client id (with `api_key_env`).
    #[serde(default)]
    pub client_id: Option<String>,
    /// The environment variable holding the API key's secret.
    #[serde(default)]
    pub api_key_env: Option<String>,
    /// `"alm-authenticate"` (default, ALM 12+) or `"basic"` (ALM 11).
    #[serde(default)]
    pub login_flow: Option<String>,
    /// `"json"` (default) or `"xml"`.
    #[serde(default)]
    pub format: Option<String>,
    /// The field holding the correlation key, by name or label.
    #[serde(default)]
    pub correlation_field: Option<String>,
    /// The database server's offset from UTC in minutes, where it is not to be detected.
    #[serde(default)]
    pub time_zone_offset_minutes: Option<i64>,
    /// How often the detected offset is read again (`"10m"`).
    #[serde(default, with = "workbridge_core::duration_text::option")]
    pub offset_refresh: Option<std::time::Duration>,
    /// Entities per `changes` page.
    #[serde(default)]
    pub page_size: Option<usize>,
    /// Entities per bulk write.
    #[serde(default)]
    pub bulk_size: Option<usize>,
    /// `"read-before"` or `"after-write"`.
    #[serde(default)]
    pub version_check: Option<VersionCheck>,
    /// Collections whose entities are versioned (checked out and in).
    #[serde(default)]
    pub versioned: Vec<String>,
    /// The HTTP connection.
    #[serde(default)]
    pub http: HttpSettings,
}

impl AlmSettings {
    /// The configuration these settings describe, secrets read through `cx`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting: no way to
    /// sign in, or two; a secret's variable unset; an unknown format or login flow; a count of
    /// zero; a bad HTTP setting.
    pub fn config(&self, cx: &ConfigContext<'_>) -> Result<AlmConfig> {
        let mut b = AlmConfig::builder(self.url.clone(), self.domain.clone(), self.project.clone());
        b = match (
            &self.user,
            &self.password_env,
            &self.client_id,
            &self.api_key_env,
        ) {
            (Some(_), _, Some(_), _) => {
                return Err(cx.error(
                    "client_id",
                    "an API key and a `user`: give one way to sign in",
                ));
            }
            (Some(user), Some(var), None, _) => {
                b.password(user.clone(), cx.secret("password_env", var)?)
            }
            (Some(_), None, None, _) => {
                return Err(cx.error("password_env", "a `user` needs `password_env`"));
            }
            (None, _, Some(id), Some(var)) => b.api_key(id.clone(), cx.secret("api_key_env", var)?),
            (None, _, Some(_), None) => {
                return Err(cx.error("api_key_env", "a `client_id` needs `api_key_env`"));
            }
            (None, _, None, _) => {
                return Err(cx.error(
                    "user",
                    "no way to sign in: give `user` and `password_env`, or `client_id` and `api_key_env`",
                ));
            }
        };
        match self.login_flow.as_deref() {
            None | Some("alm-authenticate") => {}
            Some("basic") => b = b.login_flow(LoginFlow::Basic),
            Some(other) => {
                return Err(cx.error(
                    "login_flow",
                    format!("`{other}` is not alm-authenticate or basic"),
                ));
            }
        }
        match self.format.as_deref() {
            None | Some("json") => {}
            Some("xml") => b = b.format(Format::Xml),
            Some(other) => return Err(cx.error("format", format!("`{other}` is not json or xml"))),
        }
        if let Some(f) = &self.correlation_field {
            b = b.correlation_field(f.clone());
        }
        if let Some(m) = self.time_zone_offset_minutes {
            b = b.time_zone_offset_minutes(m);
        }
        if let Some(d) = self.offset_refresh {
            b = b.offset_refresh(d);
        }
        if let Some(n) = cx.count("page_size", self.page_size)? {
            b = b.page_size(n);
        }
        if let Some(n) = cx.count("bulk_size", self.bulk_size)? {
            b = b.bulk_size(n);
        }
        if let Some(v) = self.version_check {
            b = b.version_check(v);
        }
        for v in &self.versioned {
            b = b.versioned(v.clone());
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

    fn config(text: &str) -> Result<AlmConfig> {
        let s: AlmSettings =
            toml::from_str(text).map_err(|e| workbridge_core::Error::config(e.to_string()))?;
        let env = |k: &str| matches!(k, "PW" | "KEY").then(|| format!("{k}-value"));
        s.config(&ConfigContext::new("systems.qa", ".", &env))
    }

    const BASE: &str =
        "url = \"https://alm.corp/qcbin\"\ndomain = \"DEFAULT\"\nproject = \"Demo\"\n";

    #[test]
    fn each_way_to_sign_in_and_the_options_are_read() {
        let c = config(&format!(
            "{BASE}user = \"qa\"\npassword_env = \"PW\"\nformat = \"xml\"\nlogin_flow = \"basic\"\nbulk_size = 500\nversion_check = \"after-write\"\nversioned = [\"requirements\"]"
        ))
        .unwrap();
        assert_eq!(c.format, Format::Xml);
        assert_eq!(c.login, LoginFlow::Basic);
        assert_eq!(c.bulk_size, 500);
        assert_eq!(c.version_check, VersionCheck::AfterWrite);
        assert_eq!(c.versioned, ["requirements"]);
        let k = config(&format!("{BASE}client_id = \"ci\"\napi_key_env = \"KEY\"")).unwrap();
        for c in [&c, &k] {
            let shown = format!("{c:?}");
            assert!(!shown.contains("-value"), "no secret in Debug: {shown}");
        }
    }

    #[test]
    fn a_setting_in_error_is_named() {
        for (extra, says) in [
            ("", "systems.qa.user: no way to sign in"),
            ("user = \"qa\"", "systems.qa.password_env: a `user` needs"),
            (
                "client_id = \"ci\"",
                "systems.qa.api_key_env: a `client_id` needs",
            ),
            (
                "user = \"qa\"\npassword_env = \"PW\"\nclient_id = \"ci\"",
                "systems.qa.client_id: an API key and a `user`",
            ),
            (
                "user = \"qa\"\npassword_env = \"NOPE\"",
                "systems.qa.password_env: the environment variable NOPE",
            ),
            (
                "user = \"qa\"\npassword_env = \"PW\"\nformat = \"yaml\"",
                "systems.qa.format: `yaml`",
            ),
            (
                "user = \"qa\"\npassword_env = \"PW\"\nlogin_flow = \"sso\"",
                "systems.qa.login_flow: `sso`",
            ),
            (
                "user = \"qa\"\npassword_env = \"PW\"\nbulk_size = 0",
                "systems.qa.bulk_size: 0",
            ),
        ] {
            let e = config(&format!("{BASE}{extra}")).unwrap_err();
            assert!(e.to_string().contains(says), "{extra}: {e}");
        }
    }
}
