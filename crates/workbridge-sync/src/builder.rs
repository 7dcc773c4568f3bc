//! [`SyncPairBuilder`]: a pair with named sides, checked against both schemas before it runs.

#[allow(clippy::wildcard_imports)]
use super::*;

/// Builds a [`SyncPair`] whose sides are named, not positional, and whose mapping is checked
/// against both systems' schemas before the first round ([`SyncPairBuilder::build`]): a field
/// the spec misspells, a value the target does not allow, a required field nothing fills, or
/// the two systems swapped, is one [`ErrorKind::Config`] error out of `build` naming the
/// spec's line and field — not a warning per item in every round.
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use std::sync::Arc;
/// use workbridge_core::{ErrorKind, InMemoryRepository, Schema, FieldDef, FieldKind};
/// use workbridge_mapping::Mapping;
/// use workbridge_sync::{MemoryStore, SyncPair};
///
/// let dev = InMemoryRepository::builder("dev")
///     .schema(Schema::new("Bug").field(FieldDef::new("System.Title", FieldKind::Text)))
///     .build();
/// let spec = r#"
/// left = "incident"
/// right = "Bug"
/// [[field]]
/// left = "short_description"
/// right = "System.Titel"
/// "#;
/// let e = SyncPair::builder()
///     .left(Arc::new(InMemoryRepository::new("ops")))
///     .right(Arc::new(dev))
///     .mapping(Mapping::from_toml_str(spec).unwrap())
///     .store(Arc::new(MemoryStore::new()))
///     .build()
///     .await
///     .unwrap_err();
/// assert_eq!(e.kind(), ErrorKind::Config);
/// assert!(e.to_string().contains("System.Titel"), "{e}");
/// # });
/// ```
#[derive(Default)]
#[must_use]
pub struct SyncPairBuilder {
    repos: PerSide<Option<Arc<dyn Repository>>>,
    types: PerSide<Option<ItemType>>,
    mapping: Option<Mapping>,
    store: Option<Arc<dyn StateStore>>,
    options: Option<SyncOptions>,
    id: Option<String>,
    holder: Option<String>,
    observer: Option<Arc<dyn Observer>>,
}

impl fmt::Debug for SyncPairBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |r: &Option<Arc<dyn Repository>>| r.as_ref().map(ToString::to_string);
        f.debug_struct("SyncPairBuilder")
            .field("left", &name(&self.repos.left))
            .field("right", &name(&self.repos.right))
            .field("types", &self.types)
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl SyncPair {
    /// A [`SyncPairBuilder`]: named sides, the mapping checked before the first round.
    pub fn builder() -> SyncPairBuilder {
        SyncPairBuilder::default()
    }
}

impl SyncPairBuilder {
    /// The left system: the one the spec's `left` fields belong to.
    pub fn left(mut self, repo: Arc<dyn Repository>) -> Self {
        self.repos.left = Some(repo);
        self
    }

    /// The right system: the one the spec's `right` fields belong to.
    pub fn right(mut self, repo: Arc<dyn Repository>) -> Self {
        self.repos.right = Some(repo);
        self
    }

    /// The left item type, when the spec does not name it at its top (`left = "incident"`).
    pub fn left_type(mut self, t: impl Into<ItemType>) -> Self {
        self.types.left = Some(t.into());
        self
    }

    /// The right item type, when the spec does not name it at its top.
    pub fn right_type(mut self, t: impl Into<ItemType>) -> Self {
        self.types.right = Some(t.into());
        self
    }

    /// The mapping spec.
    pub fn mapping(mut self, mapping: Mapping) -> Self {
        self.mapping = Some(mapping);
        self
    }

    /// Where the pair keeps its state.
    pub fn store(mut self, store: Arc<dyn StateStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// The options (default: [`SyncOptions::default`]).
    pub fn options(mut self, options: SyncOptions) -> Self {
        self.options = Some(options);
        self
    }

    /// The pair id ([`SyncPair::with_id`]).
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// The lease holder's name ([`SyncPair::with_holder`]).
    pub fn holder(mut self, holder: impl Into<String>) -> Self {
        self.holder = Some(holder.into());
        self
    }

    /// Told of each page and item ([`SyncPair::with_observer`]).
    pub fn observer(mut self, observer: Arc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Reads both item types' schemas (where a system describes them), checks the mapping
    /// against them ([`Mapping::validate`]) and makes the pair, its mapping's labels resolved
    /// and its workflows known.
    ///
    /// # Errors
    /// [`ErrorKind::Config`] when a part is missing, when an item type is named twice
    /// differently (the builder and the spec), or listing every problem of the mapping with
    /// these schemas; a schema read's own error (an outage, credentials) as it is.
    pub async fn build(self) -> Result<SyncPair> {
        let missing = |what: &str, call: &str| {
            Error::config(format!("SyncPair::builder: no {what} (call .{call})"))
                .with_operation("build")
        };
        let left = self
            .repos
            .left
            .ok_or_else(|| missing("left system", "left"))?;
        let right = self
            .repos
            .right
            .ok_or_else(|| missing("right system", "right"))?;
        let mapping = self.mapping.ok_or_else(|| missing("mapping", "mapping"))?;
        let store = self.store.ok_or_else(|| missing("state store", "store"))?;
        let ty = |side: &str, given: Option<ItemType>, spec: Option<&str>| match (given, spec) {
            (Some(g), Some(s)) if !g.as_str().eq_ignore_ascii_case(s) => {
                Err(Error::config(format!(
                    "SyncPair::builder: the {side} item type is `{g}`, the mapping names `{s}`"
                ))
                .with_operation("build"))
            }
            (Some(g), _) => Ok(g),
            (None, Some(s)) => Ok(ItemType::new(s)),
            (None, None) => Err(missing(
                &format!("{side} item type (the mapping names none)"),
                &format!("{side}_type"),
            )),
        };
        let types = PerSide {
            left: ty("left", self.types.left, mapping.left_type())?,
            right: ty("right", self.types.right, mapping.right_type())?,
        };
        let repos = PerSide { left, right };
        let mut schemas: PerSide<Option<Schema>> = PerSide::default();
        for side in [Side::Left, Side::Right] {
            if repos[side].capabilities().schema {
                schemas[side] = Some(repos[side].schema(&types[side]).await?);
            }
        }
        let empty = |side: Side| Schema::new(types[side].as_str());
        let (ls, rs) = (
            schemas.left.clone().unwrap_or_else(|| empty(Side::Left)),
            schemas.right.clone().unwrap_or_else(|| empty(Side::Right)),
        );
        mapping.validate(&ls, &rs)?;
        let PerSide { left, right } = repos;
        let mut pair = SyncPair::with_types(left, right, types.left, types.right, mapping, store);
        let workflows = pair.learn_schemas(&schemas);
        pair.workflows = AsyncMutex::new(Some(workflows));
        if let Some(o) = self.options {
            pair = pair.with_options(o);
        }
        if let Some(id) = self.id {
            pair = pair.with_id(id);
        }
        if let Some(h) = self.holder {
            pair = pair.with_holder(h);
        }
        if let Some(o) = self.observer {
            pair = pair.with_observer(o);
        }
        Ok(pair)
    }
}
