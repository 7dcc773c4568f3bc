//! One configuration file for a deployment: the systems, the state store and the pairs, with
//! secrets taken from the environment.
//!
//! ```toml
//! # workbridge.toml
//! [systems.ops]
//! kind = "servicenow"
//! instance = "https://acme.service-now.com"
//! user = "sync.bot"
//! password_env = "SERVICENOW_PASSWORD"      # secrets: the name of a variable, never the value
//!
//! [systems.dev]
//! kind = "azure-devops"
//! url = "https://dev.azure.com/fabrikam"
//! project = "Fabrikam"
//! pat_env = "AZURE_DEVOPS_PAT"
//! [systems.dev.http]                        # any system: timeouts, proxy, TLS, plain-http hosts
//! timeout = "30s"
//!
//! [state]
//! sqlite = "workbridge-state.sqlite"        # or postgres_env = "WORKBRIDGE_POSTGRES"
//!
//! [[pair]]
//! name = "escalation"
//! left = "ops"
//! right = "dev"
//! spec = "mappings/incident_escalation.toml" # relative to this file
//! every = "1m"
//! [pair.options]                            # workbridge::sync::SyncOptions
//! page_size = 500
//! ```
//!
//! [`Deployment::from_path`] reads and checks the file (every name a pair refers to exists, no
//! unknown key anywhere); [`Deployment::build`] reads the secrets, builds each system's
//! adapter once, opens the store and builds each pair with [`SyncPair::builder`] — both
//! schemas read and the mapping checked — so a deployment that starts is one whose every pair
//! can run. Each setting of a system is documented on its settings type:
//! `workbridge::servicenow::ServiceNowSettings`, `workbridge::azure_devops::AzureDevOpsSettings`,
//! `workbridge::alm::AlmSettings`, and `workbridge::http::HttpSettings` for `http`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use workbridge_core::{Error, Repository, Result};
use workbridge_http::ConfigContext;
use workbridge_sync::{StateStore, SyncOptions, SyncPair};

/// A system of the deployment: its kind and its settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SystemSettings {
    /// `kind = "servicenow"`.
    #[cfg(feature = "servicenow")]
    Servicenow(workbridge_servicenow::ServiceNowSettings),
    /// `kind = "azure-devops"`.
    #[cfg(feature = "azure-devops")]
    AzureDevops(workbridge_azure_devops::AzureDevOpsSettings),
    /// `kind = "alm"`.
    #[cfg(feature = "alm")]
    Alm(workbridge_alm::AlmSettings),
}

/// Where the sync keeps its state: exactly one of the settings.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct StateSettings {
    /// A SQLite file (relative to the deployment file); feature `sqlite`.
    pub sqlite: Option<PathBuf>,
    /// The environment variable holding a PostgreSQL connection string (it holds a
    /// password); feature `postgres`.
    pub postgres_env: Option<String>,
    /// State in memory only, lost when the process ends (trials and tests).
    pub memory: bool,
}

/// A pair of the deployment.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct PairSettings {
    /// The pair's id in the state store (and in logs): unique in the deployment.
    pub name: String,
    /// The system (a key of `systems`) on the spec's left.
    pub left: String,
    /// The system on the spec's right.
    pub right: String,
    /// The mapping spec, a TOML file (relative to the deployment file).
    pub spec: PathBuf,
    /// The left item type, where the spec names none.
    #[serde(default)]
    pub left_type: Option<String>,
    /// The right item type, where the spec names none.
    #[serde(default)]
    pub right_type: Option<String>,
    /// How often a round runs (`"1m"`), for the service's scheduler; the library runs none.
    #[serde(default, with = "workbridge_core::duration_text::option")]
    pub every: Option<Duration>,
    /// The lease holder's name (default: the host and the pair).
    #[serde(default)]
    pub holder: Option<String>,
    /// The sync's options.
    #[serde(default)]
    pub options: SyncOptions,
}

/// A deployment file, read and checked: see the [module documentation](self).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct Deployment {
    /// The systems, by the name pairs use.
    pub systems: BTreeMap<String, SystemSettings>,
    /// The state store all pairs share.
    pub state: StateSettings,
    /// The pairs (`[[pair]]` tables).
    #[serde(rename = "pair", default)]
    pub pairs: Vec<PairSettings>,
    /// Where relative paths start: the file's directory.
    #[serde(skip)]
    pub base: PathBuf,
}

/// A pair built from a deployment: ready to run.
#[derive(Debug)]
#[non_exhaustive]
pub struct DeployedPair {
    /// Its name.
    pub name: String,
    /// How often it is to run, as the file says.
    pub every: Option<Duration>,
    /// The pair.
    pub pair: SyncPair,
}

impl Deployment {
    /// Reads and checks the deployment file at `path`; relative paths in it start from its
    /// directory.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the file and what is
    /// wrong in it (see [`Deployment::from_toml_str`]), or saying it cannot be read.
    pub fn from_path(path: impl AsRef<Path>) -> Result<Deployment> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|e| {
            Error::config(format!(
                "the deployment file {} cannot be read: {e}",
                path.display()
            ))
        })?;
        let base = path.parent().map(Path::to_owned).unwrap_or_default();
        Self::from_toml_str(&text, base).map_err(|e| {
            Error::config(format!("{}: {}", path.display(), e.message()))
                .with_path(path.display().to_string())
        })
    }

    /// Reads and checks a deployment from its text; relative paths start from `base`.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config): the TOML does not parse, a
    /// key is unknown (named, with its line), a system's `kind` is not one this build has (its
    /// feature off), a pair names a system that is not there, two pairs share a name, or the
    /// state is not exactly one store.
    pub fn from_toml_str(text: &str, base: impl Into<PathBuf>) -> Result<Deployment> {
        let mut d: Deployment = toml::from_str(text).map_err(|e| Error::config(e.to_string()))?;
        d.base = base.into();
        d.check()?;
        Ok(d)
    }

    fn check(&self) -> Result<()> {
        let stores = usize::from(self.state.sqlite.is_some())
            + usize::from(self.state.postgres_env.is_some())
            + usize::from(self.state.memory);
        if stores != 1 {
            return Err(Error::config(
                "state: give exactly one of `sqlite`, `postgres_env` and `memory = true`",
            ));
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, p) in self.pairs.iter().enumerate() {
            if !names.insert(p.name.as_str()) {
                return Err(Error::config(format!(
                    "pair {i}: the name `{}` is taken by an earlier pair",
                    p.name
                )));
            }
            for (side, system) in [("left", &p.left), ("right", &p.right)] {
                if !self.systems.contains_key(system) {
                    let known: Vec<&str> = self.systems.keys().map(String::as_str).collect();
                    return Err(Error::config(format!(
                        "pair `{}`: {side} = `{system}` is not a system of this file (systems: {})",
                        p.name,
                        known.join(", ")
                    )));
                }
            }
        }
        Ok(())
    }

    /// Builds every pair, secrets read from the process's environment: see
    /// [`Deployment::build_with`].
    ///
    /// # Errors
    /// As [`Deployment::build_with`].
    pub async fn build(&self) -> Result<Vec<DeployedPair>> {
        self.build_with(&|k: &str| std::env::var(k).ok()).await
    }

    /// Builds each system's adapter once, opens the state store and builds every pair through
    /// [`SyncPair::builder`] (both schemas read, the mapping checked against them), secrets
    /// read through `env`.
    ///
    /// # Errors
    /// The first problem, as a [`Config`](workbridge_core::ErrorKind::Config) error naming
    /// its place in the file (`systems.ops.password_env: the environment variable
    /// SERVICENOW_PASSWORD is not set`, `pair escalation: …` with every mapping problem), or
    /// a system's own error when reading its schema fails (an outage, refused credentials).
    pub async fn build_with(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Vec<DeployedPair>> {
        let mut repos: BTreeMap<&str, Arc<dyn Repository>> = BTreeMap::new();
        for (name, system) in &self.systems {
            let cx = ConfigContext::new(format!("systems.{name}"), self.base.clone(), env);
            repos.insert(name, system.repository(&cx)?);
        }
        let store = self.store(env).await?;
        let mut out = Vec::with_capacity(self.pairs.len());
        for p in &self.pairs {
            let in_pair = |e: Error| Error::config(format!("pair `{}`: {}", p.name, e.message()));
            let spec = if p.spec.is_absolute() {
                p.spec.clone()
            } else {
                self.base.join(&p.spec)
            };
            let mapping = workbridge_mapping::Mapping::from_path(&spec).map_err(in_pair)?;
            let mut b = SyncPair::builder()
                .left(repos[p.left.as_str()].clone())
                .right(repos[p.right.as_str()].clone())
                .mapping(mapping)
                .store(store.clone())
                .options(p.options.clone())
                .id(p.name.clone());
            if let Some(t) = &p.left_type {
                b = b.left_type(t.as_str());
            }
            if let Some(t) = &p.right_type {
                b = b.right_type(t.as_str());
            }
            if let Some(h) = &p.holder {
                b = b.holder(h.clone());
            }
            let pair = b.build().await.map_err(|e| {
                if e.kind() == workbridge_core::ErrorKind::Config {
                    in_pair(e)
                } else {
                    e
                }
            })?;
            out.push(DeployedPair {
                name: p.name.clone(),
                every: p.every,
                pair,
            });
        }
        Ok(out)
    }

    async fn store(
        &self,
        env: &(dyn Fn(&str) -> Option<String> + Sync),
    ) -> Result<Arc<dyn StateStore>> {
        let cx = ConfigContext::new("state", self.base.clone(), env);
        if self.state.memory {
            return Ok(Arc::new(workbridge_sync::MemoryStore::new()));
        }
        if let Some(path) = &self.state.sqlite {
            #[cfg(feature = "sqlite")]
            return Ok(Arc::new(workbridge_sync::SqliteStore::open(cx.path(path))?));
            #[cfg(not(feature = "sqlite"))]
            return Err(cx.error(
                "sqlite",
                format!(
                    "`{}`: this build has no SQLite store (feature `sqlite`)",
                    path.display()
                ),
            ));
        }
        if let Some(var) = &self.state.postgres_env {
            let connection = cx.secret("postgres_env", var)?;
            #[cfg(feature = "postgres")]
            return Ok(Arc::new(
                workbridge_sync::PostgresStore::connect(&connection).await?,
            ));
            #[cfg(not(feature = "postgres"))]
            {
                let _ = connection;
                return Err(cx.error(
                    "postgres_env",
                    "this build has no PostgreSQL store (feature `postgres`)",
                ));
            }
        }
        Err(Error::config("state: no store"))
    }
}

impl SystemSettings {
    /// The system's adapter, built from its settings.
    ///
    /// # Errors
    /// [`ErrorKind::Config`](workbridge_core::ErrorKind::Config) naming the setting in error.
    pub fn repository(&self, cx: &ConfigContext<'_>) -> Result<Arc<dyn Repository>> {
        Ok(match self {
            #[cfg(feature = "servicenow")]
            SystemSettings::Servicenow(s) => Arc::new(
                workbridge_servicenow::ServiceNowRepository::new(s.config(cx)?)?,
            ),
            #[cfg(feature = "azure-devops")]
            SystemSettings::AzureDevops(s) => Arc::new(
                workbridge_azure_devops::AzureDevOpsRepository::new(s.config(cx)?)?,
            ),
            #[cfg(feature = "alm")]
            SystemSettings::Alm(s) => Arc::new(workbridge_alm::AlmRepository::new(s.config(cx)?)?),
        })
    }
}
