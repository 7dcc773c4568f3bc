//! Configuration from environment variables: one prefix per system, the same rules for all.

use workbridge_core::{Error, Result};

use crate::ClientOptions;

/// The environment variables of one system (`SERVICENOW_…`, `AZURE_DEVOPS_…`, `ALM_…`), read
/// through a lookup: `std::env::var`, or a map in a test. An empty variable counts as unset;
/// every error names the variable (never its value where it may be a secret).
///
/// ```
/// use workbridge_http::EnvVars;
/// let env = EnvVars::new("ALM_", |k| (k == "ALM_URL").then(|| "https://alm".to_owned()));
/// assert_eq!(env.need("URL").unwrap(), "https://alm");
/// assert!(env.need("DOMAIN").unwrap_err().to_string().contains("ALM_DOMAIN is not set"));
/// assert!(!env.flag("ALLOW_HTTP").unwrap());
/// ```
pub struct EnvVars<F> {
    prefix: &'static str,
    get: F,
}

impl<F: Fn(&str) -> Option<String>> EnvVars<F> {
    /// The variables named `prefix` + name, read through `get`.
    pub fn new(prefix: &'static str, get: F) -> Self {
        EnvVars { prefix, get }
    }

    /// The full name of variable `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// The value of variable `name`, when it is set and not empty.
    pub fn get(&self, name: &str) -> Option<String> {
        (self.get)(&self.name(name)).filter(|v| !v.is_empty())
    }

    /// The value of variable `name`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) when it is unset or empty.
    pub fn need(&self, name: &str) -> Result<String> {
        self.get(name)
            .ok_or_else(|| Error::config(format!("{} is not set", self.name(name))))
    }

    /// A switch: `true`/`1` is on, `false`/`0` or unset is off.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the variable and its
    /// value when it is anything else.
    pub fn flag(&self, name: &str) -> Result<bool> {
        match self.get(name).as_deref() {
            None | Some("false" | "0") => Ok(false),
            Some("true" | "1") => Ok(true),
            Some(other) => Err(Error::config(format!(
                "{} `{other}` is not true, false, 1 or 0",
                self.name(name)
            ))),
        }
    }

    /// `options` with what the variables say of the connection: `ALLOW_HTTP` (plain HTTP to
    /// loopback hosts).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming a variable whose value
    /// is invalid.
    pub fn client_options(&self, options: ClientOptions) -> Result<ClientOptions> {
        Ok(if self.flag("ALLOW_HTTP")? {
            options.allow_http(true)
        } else {
            options
        })
    }
}

impl<F> std::fmt::Debug for EnvVars<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EnvVars")
            .field("prefix", &self.prefix)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(
        pairs: &'static [(&'static str, &'static str)],
    ) -> EnvVars<impl Fn(&str) -> Option<String>> {
        EnvVars::new("SYS_", move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| (*v).to_owned())
        })
    }

    #[test]
    fn a_switch_is_on_off_or_an_error_naming_the_variable() {
        let env = vars(&[
            ("SYS_A", "true"),
            ("SYS_B", "1"),
            ("SYS_C", "0"),
            ("SYS_D", ""),
            ("SYS_E", "yes"),
        ]);
        assert!(env.flag("A").unwrap() && env.flag("B").unwrap());
        assert!(!env.flag("C").unwrap() && !env.flag("D").unwrap() && !env.flag("UNSET").unwrap());
        let e = env.flag("E").unwrap_err();
        assert_eq!(e.kind(), workbridge_core::ErrorKind::Config);
        assert!(e.to_string().contains("SYS_E `yes`"), "{e}");
    }

    #[test]
    fn allow_http_reaches_the_client_options() {
        let on = vars(&[("SYS_ALLOW_HTTP", "true")]).client_options(ClientOptions::default());
        assert!(format!("{:?}", on.unwrap()).contains("allow_http: true"));
        let off = vars(&[]).client_options(ClientOptions::default());
        assert!(format!("{:?}", off.unwrap()).contains("allow_http: false"));
        assert!(
            vars(&[("SYS_ALLOW_HTTP", "on")])
                .client_options(ClientOptions::default())
                .is_err()
        );
    }
}
