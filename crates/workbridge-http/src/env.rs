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
    /// loopback hosts), `ALLOW_HTTP_HOSTS` (other hosts plain HTTP may reach, unencrypted,
    /// separated by commas), `CA_FILE` (a PEM file of extra trusted roots) and
    /// `CLIENT_CERT_FILE` (a PEM file holding a client certificate and its private key).
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming a variable whose value
    /// is invalid or whose file cannot be read.
    pub fn client_options(&self, options: ClientOptions) -> Result<ClientOptions> {
        let mut options = options;
        if self.flag("ALLOW_HTTP")? {
            options = options.allow_http(true);
        }
        if let Some(hosts) = self.get("ALLOW_HTTP_HOSTS") {
            for h in hosts.split(',').map(str::trim).filter(|h| !h.is_empty()) {
                if h.contains(['/', ':']) && !h.starts_with('[') {
                    return Err(Error::config(format!(
                        "{} `{h}` is not a host name or address (no scheme, port or path)",
                        self.name("ALLOW_HTTP_HOSTS")
                    )));
                }
                options = options.allow_http_to(h);
            }
        }
        let read = |var: &str| -> Result<Option<Vec<u8>>> {
            self.get(var)
                .map(|path| {
                    std::fs::read(&path).map_err(|e| {
                        Error::config(format!("{} `{path}` cannot be read: {e}", self.name(var)))
                    })
                })
                .transpose()
        };
        if let Some(pem) = read("CA_FILE")? {
            options = options.root_certificate(pem);
        }
        if let Some(pem) = read("CLIENT_CERT_FILE")? {
            options = options.client_identity(pem);
        }
        Ok(options)
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

    #[test]
    fn named_plain_http_hosts_and_tls_files_reach_the_client_options() {
        let o = vars(&[("SYS_ALLOW_HTTP_HOSTS", "tfs, snsim ,")])
            .client_options(ClientOptions::default())
            .unwrap();
        assert_eq!(o.insecure_http_hosts, ["tfs", "snsim"]);
        let e = vars(&[("SYS_ALLOW_HTTP_HOSTS", "http://tfs:8080")])
            .client_options(ClientOptions::default())
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("SYS_ALLOW_HTTP_HOSTS `http://tfs:8080`"),
            "{e}"
        );
        let e = vars(&[("SYS_CA_FILE", "/nonexistent/ca.pem")])
            .client_options(ClientOptions::default())
            .unwrap_err();
        assert!(
            e.to_string().contains("SYS_CA_FILE `/nonexistent/ca.pem`"),
            "{e}"
        );
        let dir = std::env::temp_dir().join(format!("wb-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap();
        let path = ca.display().to_string();
        let env = EnvVars::new("SYS_", move |k: &str| {
            matches!(k, "SYS_CA_FILE" | "SYS_CLIENT_CERT_FILE").then(|| path.clone())
        });
        let o = env.client_options(ClientOptions::default()).unwrap();
        assert_eq!(o.root_certificates.len(), 1);
        assert!(o.client_identity.is_some());
    }
}
