//! The simulator's state: entities by collection, attachments, audits, sessions, and the
//! configuration the builder set.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, SeedableRng};

use crate::common::Control;

#[allow(clippy::wildcard_imports)]
use super::*;

/// A stored value: `None` is null (`values: []`), `Some` holds the values (`""` for empty).
pub(crate) type Stored = Option<Vec<String>>;

#[derive(Debug, Clone)]
pub(crate) struct Entity {
    pub(crate) fields: BTreeMap<String, Stored>,
}

#[derive(Debug, Clone)]
pub(crate) struct Attachment {
    pub(crate) id: u64,
    pub(crate) collection: String,
    pub(crate) parent: u64,
    pub(crate) name: String,
    pub(crate) data: Bytes,
    pub(crate) modified: String,
}

#[derive(Debug, Clone)]
pub(crate) struct Audit {
    pub(crate) id: u64,
    pub(crate) parent_type: &'static str,
    pub(crate) parent: u64,
    pub(crate) time: String,
    pub(crate) user: String,
    pub(crate) props: Vec<(String, String, String, String)>,
}

#[derive(Debug, Clone)]
pub(crate) struct Session {
    pub(crate) user: String,
    pub(crate) xsrf: String,
    pub(crate) last_used: DateTime<Utc>,
}

#[derive(Debug, Default)]
pub(crate) struct State_ {
    pub(crate) entities: BTreeMap<String, BTreeMap<u64, Entity>>,
    pub(crate) next_id: HashMap<String, u64>,
    pub(crate) attachments: Vec<Attachment>,
    pub(crate) next_attachment: u64,
    pub(crate) audits: Vec<Audit>,
    pub(crate) next_audit: u64,
    /// LWSSO token → (user, logged out).
    pub(crate) lwsso: HashMap<String, (String, bool)>,
    pub(crate) sessions: HashMap<String, Session>,
    pub(crate) locks: HashMap<(String, u64), String>,
    pub(crate) checked_out: HashMap<(String, u64), String>,
}

#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) domain: String,
    pub(crate) project: String,
    pub(crate) version: AlmVersion,
    pub(crate) users: Vec<(String, String, String)>,
    pub(crate) api_keys: Vec<(String, String, String, bool)>,
    pub(crate) offset: TimeDelta,
    pub(crate) idle: TimeDelta,
    pub(crate) enforce_transitions: bool,
    pub(crate) version_control: bool,
}

pub(crate) struct Alm {
    pub(crate) st: Mutex<State_>,
    pub(crate) config: Config,
    pub(crate) control: Arc<Control>,
    /// The database server's offset from UTC now, in minutes (a daylight-saving change moves
    /// it; what was stored before keeps the time it was stored with).
    pub(crate) offset_minutes: std::sync::atomic::AtomicI64,
}

impl Alm {
    pub(crate) fn local_now(&self) -> String {
        let offset = self
            .offset_minutes
            .load(std::sync::atomic::Ordering::Relaxed);
        (self.control.clock.now() + TimeDelta::minutes(offset))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    }

    pub(crate) fn token(&self) -> String {
        let n: u128 = rand::rngs::StdRng::from_os_rng().random();
        format!("{n:032x}")
    }
}
