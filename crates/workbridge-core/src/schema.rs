//! What a repository says of an item type: its fields and its workflow.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::model::{FieldMap, FieldName, FieldValue, ItemType};

/// The kind of value a field holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum FieldKind {
    /// Any value (no type known).
    Any,
    /// Boolean.
    Bool,
    /// Integer.
    Int,
    /// Floating-point number (an integer is accepted too).
    Float,
    /// Plain text.
    Text,
    /// HTML (plain text is accepted too).
    Html,
    /// Calendar date.
    Date,
    /// Point in time.
    DateTime,
    /// Person.
    Person,
    /// Choice list value(s).
    Choice,
    /// Reference to another record.
    Reference,
    /// URL.
    Url,
}

impl FieldKind {
    /// Whether a value of kind `value` may be stored in a field of this kind.
    pub fn accepts(self, value: &FieldValue) -> bool {
        use FieldKind as K;
        match (self, value) {
            (_, FieldValue::Null) | (K::Any, _) => true,
            (K::Float, FieldValue::Int(_)) => true,
            (K::Html, FieldValue::Text(_)) => true,
            (K::Text, FieldValue::Choice(_)) => true,
            (K::Choice, FieldValue::Text(_)) => true,
            (k, v) => v.kind() == k,
        }
    }
}

/// One field of an item type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct FieldDef {
    /// The field's name in its system.
    pub name: FieldName,
    /// The label users see.
    pub label: String,
    /// Its kind.
    pub kind: FieldKind,
    /// Whether a value is required on create.
    pub required: bool,
    /// Whether the API refuses writes to it.
    pub read_only: bool,
    /// The values allowed, when it is list-backed; empty: any.
    pub allowed_values: Vec<String>,
    /// Whether it holds several values.
    pub multi: bool,
}

impl FieldDef {
    /// A field of `kind`, optional and writable, labelled with its name.
    pub fn new(name: impl Into<FieldName>, kind: FieldKind) -> Self {
        let name = name.into();
        FieldDef {
            label: name.to_string(),
            name,
            kind,
            required: false,
            read_only: false,
            allowed_values: Vec::new(),
            multi: false,
        }
    }

    /// Sets the label.
    #[must_use]
    pub fn label(mut self, label: impl Into<String>) -> Self {
        self.label = label.into();
        self
    }

    /// Marks it required.
    #[must_use]
    pub fn required(mut self) -> Self {
        self.required = true;
        self
    }

    /// Marks it read-only.
    #[must_use]
    pub fn read_only(mut self) -> Self {
        self.read_only = true;
        self
    }

    /// Marks it multi-valued.
    #[must_use]
    pub fn multi(mut self) -> Self {
        self.multi = true;
        self
    }

    /// Sets the allowed values.
    #[must_use]
    pub fn allowed(mut self, values: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.allowed_values = values.into_iter().map(Into::into).collect();
        self
    }

    /// The value as this field stores it: text written to a choice field becomes a choice,
    /// text written to an HTML field becomes HTML, an integer written to a float field a float.
    /// Other values are returned unchanged.
    pub fn normalize(&self, value: FieldValue) -> FieldValue {
        match (self.kind, value) {
            (FieldKind::Choice, FieldValue::Text(s)) => FieldValue::Choice(s),
            (FieldKind::Html, FieldValue::Text(s)) => FieldValue::Html(s),
            (FieldKind::Text, FieldValue::Choice(s)) => FieldValue::Text(s),
            #[allow(clippy::cast_precision_loss)]
            (FieldKind::Float, FieldValue::Int(i)) => FieldValue::Float(i as f64),
            (_, v) => v,
        }
    }

    /// Checks a value against kind and allowed values.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the field and value.
    pub fn check(&self, value: &FieldValue) -> Result<()> {
        if !self.kind.accepts(value) {
            return Err(Error::invalid_input(
                self.name.clone(),
                value,
                format!("expected a {:?} value, got {:?}", self.kind, value.kind()),
            ));
        }
        if self.allowed_values.is_empty() {
            return Ok(());
        }
        let values: Vec<&str> = match value {
            FieldValue::MultiChoice(v) => v.iter().map(String::as_str).collect(),
            FieldValue::Null => Vec::new(),
            other => vec![other.as_str().unwrap_or_default()],
        };
        for v in values {
            if !v.is_empty() && !self.allowed_values.iter().any(|a| a == v) {
                return Err(Error::invalid_input(
                    self.name.clone(),
                    v,
                    format!(
                        "not one of the allowed values: {}",
                        self.allowed_values.join(", ")
                    ),
                ));
            }
        }
        Ok(())
    }
}

/// A workflow: states, the allowed transitions between them, and the fields each transition
/// requires.
///
/// ```
/// use workbridge_core::TransitionGraph;
/// let g = TransitionGraph::new("state")
///     .initial("New")
///     .transition("New", "In Progress")
///     .transition("In Progress", "Resolved")
///     .transition("Resolved", "Closed")
///     .require("In Progress", "Resolved", ["close_code", "close_notes"]);
/// assert!(g.allows("New", "In Progress"));
/// assert!(!g.allows("New", "Closed"));
/// assert_eq!(g.shortest_path("New", "Closed").unwrap(), ["In Progress", "Resolved", "Closed"]);
/// assert_eq!(g.required_for("In Progress", "Resolved").len(), 2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct TransitionGraph {
    /// The field that holds the state.
    pub state_field: FieldName,
    /// Every state.
    pub states: BTreeSet<String>,
    /// States a new item may start in; empty: any.
    pub initial: Vec<String>,
    /// Allowed transitions, from → to.
    pub transitions: BTreeMap<String, BTreeSet<String>>,
    /// Fields that must hold a value after a transition, by (from, to).
    pub required: BTreeMap<(String, String), Vec<FieldName>>,
}

impl TransitionGraph {
    /// An empty workflow on `state_field`.
    pub fn new(state_field: impl Into<FieldName>) -> Self {
        TransitionGraph {
            state_field: state_field.into(),
            ..TransitionGraph::default()
        }
    }

    /// Adds an initial state.
    #[must_use]
    pub fn initial(mut self, state: impl Into<String>) -> Self {
        let s = state.into();
        self.states.insert(s.clone());
        self.initial.push(s);
        self
    }

    /// Adds an allowed transition.
    #[must_use]
    pub fn transition(mut self, from: impl Into<String>, to: impl Into<String>) -> Self {
        let (from, to) = (from.into(), to.into());
        self.states.insert(from.clone());
        self.states.insert(to.clone());
        self.transitions.entry(from).or_default().insert(to);
        self
    }

    /// Requires fields on a transition.
    #[must_use]
    pub fn require(
        mut self,
        from: impl Into<String>,
        to: impl Into<String>,
        fields: impl IntoIterator<Item = impl Into<FieldName>>,
    ) -> Self {
        self.required
            .entry((from.into(), to.into()))
            .or_default()
            .extend(fields.into_iter().map(Into::into));
        self
    }

    /// Whether `from → to` is allowed (staying in a state always is).
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to || self.transitions.get(from).is_some_and(|t| t.contains(to))
    }

    /// The fields `from → to` requires.
    pub fn required_for(&self, from: &str, to: &str) -> &[FieldName] {
        self.required
            .get(&(from.to_owned(), to.to_owned()))
            .map_or(&[], Vec::as_slice)
    }

    /// The fields `from → to` requires that are empty or absent in `after`, the fields the item
    /// will have once moved.
    pub fn missing_for(&self, from: &str, to: &str, after: &FieldMap) -> Vec<&str> {
        self.required_for(from, to)
            .iter()
            .filter(|f| after.get(f.as_str()).is_none_or(FieldValue::is_empty))
            .map(FieldName::as_str)
            .collect()
    }

    /// The shortest sequence of states leading from `from` to `to` (excluding `from`), or `None`
    /// when `to` cannot be reached. Ties are broken by state name, so the path is deterministic.
    pub fn shortest_path(&self, from: &str, to: &str) -> Option<Vec<String>> {
        if from == to {
            return Some(Vec::new());
        }
        let mut prev: BTreeMap<&str, &str> = BTreeMap::new();
        let mut queue = VecDeque::from([from]);
        while let Some(s) = queue.pop_front() {
            for next in self.transitions.get(s).into_iter().flatten() {
                if next == from || prev.contains_key(next.as_str()) {
                    continue;
                }
                prev.insert(next, s);
                if next == to {
                    let mut path = vec![to.to_owned()];
                    let mut cur = to;
                    while let Some(&p) = prev.get(cur) {
                        if p == from {
                            break;
                        }
                        path.push(p.to_owned());
                        cur = p;
                    }
                    path.reverse();
                    return Some(path);
                }
                queue.push_back(next);
            }
        }
        None
    }

    /// Checks an update of `current` by `changes`: when the changes set the state field, the
    /// move from the current state to the new one, with the fields the item will have after.
    ///
    /// # Errors
    /// As [`check`](Self::check), with the item named.
    pub fn check_update(&self, current: &crate::WorkItem, changes: &FieldMap) -> Result<()> {
        let Some(to) = changes.get(self.state_field.as_str()) else {
            return Ok(());
        };
        let from = current
            .field(self.state_field.as_str())
            .map(ToString::to_string)
            .unwrap_or_default();
        let mut after = current.fields.clone();
        after.merge(changes);
        self.check(&from, &to.to_string(), &after)
            .map_err(|e| e.with_item(current.item_type.clone(), current.id.clone()))
    }

    /// Checks a state change of an item whose fields will be `after`.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidTransition`](crate::ErrorKind::InvalidTransition) naming from and to
    /// when the transition is not allowed or a required field is empty.
    pub fn check(&self, from: &str, to: &str, after: &FieldMap) -> Result<()> {
        if !self.states.is_empty() && !self.states.contains(to) {
            return Err(Error::invalid_input(
                self.state_field.clone(),
                to,
                "not a state of this workflow",
            ));
        }
        if !self.allows(from, to) {
            return Err(Error::invalid_transition(
                from,
                to,
                "the workflow does not allow this transition",
            ));
        }
        let missing = self.missing_for(from, to, after);
        if !missing.is_empty() {
            return Err(Error::invalid_transition(
                from,
                to,
                format!("the transition requires {}", missing.join(", ")),
            ));
        }
        Ok(())
    }
}

/// The fields and workflow of one item type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Schema {
    /// The item type described.
    pub item_type: ItemType,
    /// Its fields, by name.
    pub fields: BTreeMap<FieldName, FieldDef>,
    /// Its workflow, if it has one.
    pub workflow: Option<TransitionGraph>,
}

impl Schema {
    /// A schema without fields.
    pub fn new(item_type: impl Into<ItemType>) -> Self {
        Schema {
            item_type: item_type.into(),
            fields: BTreeMap::new(),
            workflow: None,
        }
    }

    /// Adds a field.
    #[must_use]
    pub fn field(mut self, def: FieldDef) -> Self {
        self.fields.insert(def.name.clone(), def);
        self
    }

    /// Sets the workflow. Its state field must be one of the fields.
    #[must_use]
    pub fn workflow(mut self, graph: TransitionGraph) -> Self {
        self.workflow = Some(graph);
        self
    }

    /// The definition of a field.
    pub fn get(&self, name: &str) -> Option<&FieldDef> {
        self.fields.get(name)
    }

    /// The field whose name or label is `name_or_label` (name first, then label, case-insensitive).
    pub fn resolve(&self, name_or_label: &str) -> Option<&FieldDef> {
        self.fields.get(name_or_label).or_else(|| {
            self.fields
                .values()
                .find(|d| d.label.eq_ignore_ascii_case(name_or_label))
        })
    }

    /// The values of a write as the fields store them (see [`FieldDef::normalize`]); unknown
    /// fields are left as they are.
    pub fn normalize(&self, fields: &FieldMap) -> FieldMap {
        fields
            .iter()
            .map(|(k, v)| {
                let v = match self.get(k.as_str()) {
                    Some(def) => def.normalize(v.clone()),
                    None => v.clone(),
                };
                (k.clone(), v)
            })
            .collect()
    }

    /// Checks the values of a write: every field known and writable, every value of the right
    /// kind and allowed; on create, every required field present.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidInput`](crate::ErrorKind::InvalidInput) naming the first bad field and its value.
    pub fn check_write(&self, fields: &FieldMap, creating: bool) -> Result<()> {
        for (name, value) in fields {
            let def = self.get(name.as_str()).ok_or_else(|| {
                Error::invalid_input(
                    name.clone(),
                    value,
                    format!("{} has no field `{name}`", self.item_type),
                )
            })?;
            if def.read_only {
                return Err(Error::invalid_input(
                    name.clone(),
                    value,
                    "the field is read-only",
                ));
            }
            def.check(value)?;
        }
        if creating {
            for def in self.fields.values().filter(|d| d.required) {
                if fields
                    .get(def.name.as_str())
                    .is_none_or(FieldValue::is_empty)
                {
                    return Err(Error::invalid_input(
                        def.name.clone(),
                        "null",
                        "the field is required",
                    ));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    fn graph() -> TransitionGraph {
        TransitionGraph::new("state")
            .initial("New")
            .transition("New", "Active")
            .transition("Active", "Resolved")
            .transition("Resolved", "Closed")
            .transition("Resolved", "Active")
            .transition("New", "Removed")
            .require("Active", "Resolved", ["reason"])
    }

    #[test]
    fn shortest_path_is_shortest_and_none_when_unreachable() {
        let g = graph();
        assert_eq!(
            g.shortest_path("New", "Closed").unwrap(),
            ["Active", "Resolved", "Closed"]
        );
        assert_eq!(g.shortest_path("Closed", "New"), None);
        assert_eq!(
            g.shortest_path("Active", "Active").unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(g.shortest_path("Resolved", "Active").unwrap(), ["Active"]);
    }

    #[test]
    fn an_update_is_checked_from_the_items_state_with_its_fields_after() {
        use crate::{ItemId, UpdateOptions, WorkItem};
        let g = graph();
        let item = WorkItem::new(
            ItemId::from("7"),
            ItemType::from("Bug"),
            "3".into(),
            chrono::Utc::now(),
            FieldMap::new()
                .with("state", "Active")
                .with("reason", "Fixed"),
        );
        // The required field is already on the item: the move is allowed.
        g.check_update(&item, &FieldMap::new().with("state", "Resolved"))
            .unwrap();
        let e = g
            .check_update(&item, &FieldMap::new().with("state", "Closed"))
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidTransition);
        assert_eq!(e.context().item_id.as_ref().map(ItemId::as_str), Some("7"));
        // No state in the changes: nothing to check.
        g.check_update(&item, &FieldMap::new().with("title", "x"))
            .unwrap();
        // The expected version.
        UpdateOptions::default()
            .check_version(&item, "rev")
            .unwrap();
        UpdateOptions::default()
            .if_version("3")
            .check_version(&item, "rev")
            .unwrap();
        let e = UpdateOptions::default()
            .if_version("2")
            .check_version(&item, "rev")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Conflict);
        assert!(e.to_string().contains("Bug 7 is at rev 3, not 2"), "{e}");
        assert_eq!(
            ItemId::distinct_numbers(&["9".into(), "x".into(), "2".into(), "9".into()]),
            [2, 9]
        );
    }

    #[test]
    fn check_names_states_and_missing_fields() {
        let g = graph();
        let e = g.check("New", "Closed", &FieldMap::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidTransition);
        assert_eq!(e.context().from_state.as_deref(), Some("New"));
        assert_eq!(e.context().to_state.as_deref(), Some("Closed"));
        let e = g.check("Active", "Resolved", &FieldMap::new()).unwrap_err();
        assert!(e.to_string().contains("requires reason"), "{e}");
        g.check(
            "Active",
            "Resolved",
            &FieldMap::new().with("reason", "Fixed"),
        )
        .unwrap();
        let e = g.check("Active", "Bogus", &FieldMap::new()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }

    #[test]
    fn schema_check_write() {
        let s = Schema::new("incident")
            .field(FieldDef::new("short_description", FieldKind::Text).required())
            .field(FieldDef::new("priority", FieldKind::Choice).allowed(["1", "2", "3"]))
            .field(FieldDef::new("number", FieldKind::Text).read_only());
        let e = s
            .check_write(&FieldMap::new().with("bogus", "x"), false)
            .unwrap_err();
        assert_eq!(e.field().map(FieldName::as_str), Some("bogus"));
        let e = s
            .check_write(
                &FieldMap::new().with("priority", FieldValue::Choice("9".into())),
                false,
            )
            .unwrap_err();
        assert_eq!(
            (e.field().unwrap().as_str(), e.value()),
            ("priority", Some("9"))
        );
        let e = s.check_write(&FieldMap::new(), true).unwrap_err();
        assert_eq!(e.field().unwrap().as_str(), "short_description");
        let e = s
            .check_write(&FieldMap::new().with("number", "INC1"), false)
            .unwrap_err();
        assert!(e.to_string().contains("read-only"));
        let e = s
            .check_write(&FieldMap::new().with("short_description", 5i64), false)
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput);
    }
}
