//! What a table is made of, read from the instance's own dictionary (`sys_dictionary`,
//! `sys_choice`, `sys_db_object`): the columns of a table and its parents, their types and
//! choices. ServiceNow serves this metadata through the Table API like any other table.

use std::collections::HashMap;

#[allow(clippy::wildcard_imports)]
use super::*;

/// What the dictionary and choice list say of one field.
#[derive(Debug, Clone, Default)]
pub(crate) struct FieldInfo {
    pub(crate) internal_type: String,
    pub(crate) reference: Option<String>,
    pub(crate) choices: Vec<(String, String)>,
}

impl FieldInfo {
    pub(crate) fn is_journal(&self) -> bool {
        self.internal_type.starts_with("journal")
    }

    pub(crate) fn is_numeric(&self) -> bool {
        matches!(
            self.internal_type.as_str(),
            "integer" | "decimal" | "float" | "longint"
        )
    }
}

/// The fields of a table, from `sys_dictionary` and `sys_choice` (the table's own entries win
/// over its parent's).
#[derive(Debug, Clone, Default)]
pub(crate) struct Meta {
    pub(crate) fields: HashMap<String, FieldInfo>,
}

impl Meta {
    pub(crate) fn get(&self, f: &str) -> Option<&FieldInfo> {
        self.fields.get(f)
    }
}

impl Store {
    /// A table's field metadata (its dictionary entries and choices, its parent's included),
    /// derived again only once the dictionary or the choice list changed.
    pub(crate) fn meta(&self, table: &str) -> std::sync::Arc<Meta> {
        let stamp = |t: &str| self.tables.get(t).map_or(0, Table::stamp);
        let stamps = (stamp("sys_dictionary"), stamp("sys_choice"));
        let mut cache = self
            .meta_cache
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, meta)) = cache.get(table)
            && *at == stamps
        {
            return meta.clone();
        }
        let meta = std::sync::Arc::new(self.derive_meta(table));
        cache.insert(table.to_owned(), (stamps, meta.clone()));
        meta
    }

    fn derive_meta(&self, table: &str) -> Meta {
        let mut chain = vec![table];
        if let Some(p) = data::parent_of(table) {
            chain.insert(0, p);
        }
        let mut fields: HashMap<String, FieldInfo> = HashMap::new();
        if let Some(dict) = self.tables.get("sys_dictionary") {
            for t in &chain {
                for r in dict
                    .rows()
                    .filter(|r| r.get("name").is_some_and(|n| n == t))
                {
                    let element = r.get("element").cloned().unwrap_or_default();
                    if element.is_empty() {
                        continue;
                    }
                    let reference = r.get("reference").filter(|s| !s.is_empty()).cloned();
                    fields.insert(
                        element,
                        FieldInfo {
                            internal_type: r.get("internal_type").cloned().unwrap_or_default(),
                            reference,
                            choices: Vec::new(),
                        },
                    );
                }
            }
        }
        if let Some(choices) = self.tables.get("sys_choice") {
            for t in &chain {
                let mut own: HashMap<String, Vec<(u32, String, String)>> = HashMap::new();
                for r in choices.rows().filter(|r| {
                    r.get("name").is_some_and(|n| n == t)
                        && r.get("inactive").is_none_or(|v| v != "true")
                }) {
                    let seq = r.get("sequence").and_then(|s| s.parse().ok()).unwrap_or(0);
                    own.entry(r.get("element").cloned().unwrap_or_default())
                        .or_default()
                        .push((
                            seq,
                            r.get("value").cloned().unwrap_or_default(),
                            r.get("label").cloned().unwrap_or_default(),
                        ));
                }
                for (element, mut list) in own {
                    list.sort_by_key(|(s, _, _)| *s);
                    if let Some(f) = fields.get_mut(&element) {
                        f.choices = list.into_iter().map(|(_, v, l)| (v, l)).collect();
                    }
                }
            }
        }
        Meta { fields }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metadata is derived once and kept, but a field added to the dictionary (or a choice
    /// to the choice list) afterwards shows at once.
    #[test]
    fn metadata_follows_the_dictionary_it_was_derived_from() {
        let mut store = Store::new(1);
        let now = chrono::Utc::now();
        let before = store.meta("incident");
        assert!(before.get("u_root_cause").is_none());
        assert!(std::sync::Arc::ptr_eq(&before, &store.meta("incident")));
        let row = Row::from([
            ("name".into(), "incident".into()),
            ("element".into(), "u_root_cause".into()),
            ("internal_type".into(), "integer".into()),
        ]);
        store.insert_system("sys_dictionary", row, now);
        let after = store.meta("incident");
        assert!(after.get("u_root_cause").is_some_and(FieldInfo::is_numeric));
        let choice = Row::from([
            ("name".into(), "incident".into()),
            ("element".into(), "u_root_cause".into()),
            ("value".into(), "7".into()),
            ("label".into(), "Seven".into()),
        ]);
        store.insert_system("sys_choice", choice, now);
        let with_choice = store.meta("incident");
        assert_eq!(
            with_choice.get("u_root_cause").map(|i| i.choices.len()),
            Some(1)
        );
    }
}
