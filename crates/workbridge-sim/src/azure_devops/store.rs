//! The simulator's state: work items with their revisions, updates and comments, identities,
//! and the configuration the builder set.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

use axum::Router;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::common::Control;

#[allow(clippy::wildcard_imports)]
use super::*;

/// A user known to the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Identity {
    pub(crate) display: String,
    pub(crate) unique: String,
    pub(crate) id: String,
}

impl Identity {
    pub(crate) fn stored(&self) -> Value {
        json!({"displayName": self.display, "uniqueName": self.unique, "id": self.id})
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Revision {
    pub(crate) rev: u64,
    pub(crate) fields: BTreeMap<String, Value>,
    pub(crate) relations: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct UpdateRec {
    pub(crate) rev: u64,
    pub(crate) by: Identity,
    pub(crate) at: DateTime<Utc>,
    pub(crate) fields: serde_json::Map<String, Value>,
    pub(crate) added: Vec<Value>,
    pub(crate) removed: Vec<Value>,
}

#[derive(Debug, Clone)]
pub(crate) struct CommentRec {
    pub(crate) id: u64,
    pub(crate) text: String,
    pub(crate) format: &'static str,
    pub(crate) by: Identity,
    pub(crate) at: DateTime<Utc>,
    pub(crate) modified_at: DateTime<Utc>,
    pub(crate) version: u64,
    pub(crate) deleted: bool,
    pub(crate) rev: u64,
}

#[derive(Debug, Clone)]
pub(crate) struct Wi {
    pub(crate) id: u64,
    pub(crate) rev: u64,
    pub(crate) wtype: &'static WitType,
    pub(crate) fields: BTreeMap<String, Value>,
    pub(crate) relations: Vec<Value>,
    pub(crate) revisions: Vec<Revision>,
    pub(crate) updates: Vec<UpdateRec>,
    pub(crate) comments: Vec<CommentRec>,
    pub(crate) history_rev: Option<u64>,
    pub(crate) changed_at: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct Store {
    pub(crate) items: BTreeMap<u64, Wi>,
    /// The items by `(changed_at, id)`: the change scan's index, as a server keeps one.
    pub(crate) by_changed: BTreeSet<(DateTime<Utc>, u64)>,
    pub(crate) next_id: u64,
    pub(crate) next_comment: u64,
    pub(crate) attachments: HashMap<String, (String, Bytes)>,
}

impl Store {
    /// Removes an item, and its place in the index.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Wi> {
        let wi = self.items.remove(&id)?;
        self.by_changed.remove(&(wi.changed_at, id));
        Some(wi)
    }

    /// Stores an item, moving its place in the index.
    pub(crate) fn put(&mut self, wi: Wi) {
        if let Some(old) = self.items.get(&wi.id) {
            self.by_changed.remove(&(old.changed_at, wi.id));
        }
        self.by_changed.insert((wi.changed_at, wi.id));
        self.items.insert(wi.id, wi);
    }
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) organization: String,
    pub(crate) project: String,
    pub(crate) project_id: String,
    pub(crate) pat: String,
    pub(crate) server: ServerVersion,
    pub(crate) process: Process,
    pub(crate) custom_fields: Vec<(String, String, &'static str)>,
    pub(crate) fedauth_html: bool,
    pub(crate) enforce_transitions: bool,
    pub(crate) me: Identity,
    pub(crate) people: Vec<Identity>,
    pub(crate) wiql_cap: usize,
}

pub(crate) struct Ado {
    pub(crate) store: Mutex<Store>,
    pub(crate) config: Config,
    pub(crate) base: OnceLock<String>,
    pub(crate) control: Arc<Control>,
    pub(crate) router: OnceLock<Router>,
}

impl Ado {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.control.clock.now()
    }

    pub(crate) fn collection_url(&self) -> String {
        format!(
            "{}/{}",
            self.base.get().map_or("", String::as_str),
            self.config.organization
        )
    }

    pub(crate) fn wit_type(&self, name: &str) -> Option<&'static WitType> {
        self.config
            .process
            .types()
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
    }

    pub(crate) fn identity(&self, s: &str) -> Option<Identity> {
        let s = s.trim();
        let (display, unique) = match s.rsplit_once('<') {
            Some((d, u)) => (d.trim(), u.trim_end_matches('>').trim()),
            None => (s, s),
        };
        std::iter::once(&self.config.me)
            .chain(self.config.people.iter())
            .find(|p| {
                p.unique.eq_ignore_ascii_case(unique)
                    || p.display.eq_ignore_ascii_case(display)
                    || p.id == s
            })
            .cloned()
    }
}
