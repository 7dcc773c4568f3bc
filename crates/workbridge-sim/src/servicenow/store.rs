//! The simulator's state: tables of string-valued rows as ServiceNow stores them, users,
//! tokens, and the configuration the builder set.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{DateTime, TimeDelta, Utc};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[allow(clippy::wildcard_imports)]
use super::*;

pub(crate) type Row = BTreeMap<String, String>;

pub(crate) const SN_TIME: &str = "%Y-%m-%d %H:%M:%S";

pub(crate) fn fmt_time(t: DateTime<Utc>) -> String {
    t.format(SN_TIME).to_string()
}

/// The fields a table indexes, as a server indexes its change cursor, ids and correlation keys:
/// a query with an equality on one of them, or ordered by one, reads only the rows it needs.
pub(crate) const INDEXED: [&str; 6] = [
    "sys_id",
    "sys_updated_on",
    "sys_created_on",
    "correlation_id",
    "element_id",
    "table_sys_id",
];

/// A table: rows in insertion order, with an index by `sys_id` and an ordered index of each
/// [`INDEXED`] field (value, then insertion order).
#[derive(Debug)]
pub(crate) struct Table {
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<String, u64>,
    index: HashMap<&'static str, BTreeSet<(String, u64)>>,
    next: u64,
    /// Changes with each change to the table (unique across tables): what was derived from
    /// it (the dictionary's field metadata) is known stale by it.
    stamp: u64,
}

/// The next table stamp.
fn new_stamp() -> u64 {
    static STAMPS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    STAMPS.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl Default for Table {
    fn default() -> Self {
        Table {
            rows: BTreeMap::new(),
            by_id: HashMap::new(),
            index: HashMap::new(),
            next: 0,
            stamp: new_stamp(),
        }
    }
}

impl Table {
    /// The table's stamp: another after each change.
    pub(crate) fn stamp(&self) -> u64 {
        self.stamp
    }

    fn index_row(&mut self, k: u64, row: &Row, add: bool) {
        for f in INDEXED {
            let entry = (row.get(f).cloned().unwrap_or_default(), k);
            let set = self.index.entry(f).or_default();
            if add {
                set.insert(entry);
            } else {
                set.remove(&entry);
            }
        }
    }

    pub(crate) fn insert(&mut self, row: Row) {
        self.stamp = new_stamp();
        let id = row.get("sys_id").cloned().unwrap_or_default();
        self.next += 1;
        let k = self.next;
        if let Some(old) = self.by_id.insert(id, k)
            && let Some(r) = self.rows.remove(&old)
        {
            self.index_row(old, &r, false);
        }
        self.index_row(k, &row, true);
        self.rows.insert(k, row);
    }

    pub(crate) fn get(&self, id: &str) -> Option<&Row> {
        self.by_id.get(id).and_then(|k| self.rows.get(k))
    }

    /// Replaces the row with this `sys_id`, keeping its place; whether there was one.
    pub(crate) fn replace(&mut self, id: &str, row: Row) -> bool {
        let Some(&k) = self.by_id.get(id) else {
            return false;
        };
        self.stamp = new_stamp();
        if let Some(old) = self.rows.remove(&k) {
            self.index_row(k, &old, false);
        }
        self.index_row(k, &row, true);
        self.rows.insert(k, row);
        true
    }

    pub(crate) fn remove(&mut self, id: &str) -> Option<Row> {
        let k = self.by_id.remove(id)?;
        self.stamp = new_stamp();
        let row = self.rows.remove(&k)?;
        self.index_row(k, &row, false);
        Some(row)
    }

    pub(crate) fn rows(&self) -> impl Iterator<Item = &Row> {
        self.rows.values()
    }

    /// The rows whose indexed `field` equals one of `values`, in insertion order.
    pub(crate) fn with_values<'a>(&'a self, field: &str, values: &[&str]) -> Vec<&'a Row> {
        let Some(set) = self.index.get(field) else {
            return Vec::new();
        };
        let mut keys: Vec<u64> = values
            .iter()
            .flat_map(|v| {
                set.range(((*v).to_owned(), 0)..)
                    .take_while(move |(x, _)| x == v)
                    .map(|(_, k)| *k)
            })
            .collect();
        keys.sort_unstable();
        keys.dedup();
        keys.iter().filter_map(|k| self.rows.get(k)).collect()
    }

    /// The rows in the order of the indexed `field`'s value (ties in insertion order), from
    /// `from` on, with that value; `None` when the field is not indexed.
    pub(crate) fn ordered_by<'a>(
        &'a self,
        field: &str,
        from: Option<&str>,
    ) -> Option<impl Iterator<Item = (&'a str, &'a Row)>> {
        let set = self.index.get(field)?;
        let start = (from.unwrap_or_default().to_owned(), 0);
        Some(
            set.range(start..)
                .filter_map(|(v, k)| self.rows.get(k).map(|r| (v.as_str(), r))),
        )
    }

    pub(crate) fn len(&self) -> usize {
        self.rows.len()
    }
}

#[derive(Debug)]
pub(crate) struct Store {
    pub(crate) tables: BTreeMap<String, Table>,
    pub(crate) blobs: HashMap<String, Bytes>,
    counters: HashMap<&'static str, u64>,
    rng: StdRng,
    /// Each table's field metadata, with the dictionary's and choice list's stamps it was
    /// derived at (rebuilt once either changes, not on every request).
    pub(crate) meta_cache: std::sync::Mutex<MetaCache>,
}

/// Each table's field metadata with the stamps of the tables it came from.
pub(crate) type MetaCache = HashMap<String, ((u64, u64), std::sync::Arc<Meta>)>;

pub(crate) const BASE_TABLES: [&str; 10] = [
    "task",
    "incident",
    "problem",
    "change_request",
    "sys_user",
    "sys_user_group",
    "sys_choice",
    "sys_dictionary",
    "sys_journal_field",
    "sys_attachment",
];

impl Store {
    pub(crate) fn new(seed: u64) -> Self {
        let mut s = Store {
            tables: BASE_TABLES
                .iter()
                .map(|t| ((*t).to_owned(), Table::default()))
                .collect(),
            blobs: HashMap::new(),
            counters: HashMap::new(),
            rng: StdRng::seed_from_u64(seed),
            meta_cache: std::sync::Mutex::new(HashMap::new()),
        };
        let epoch = DateTime::<Utc>::from_timestamp(1_700_000_000, 0).unwrap_or_default();
        for (table, element, label, ty, reference, choice, mandatory, read_only, max) in
            data::DICTIONARY
        {
            let row = Row::from([
                ("name".into(), (*table).into()),
                ("element".into(), (*element).into()),
                ("column_label".into(), (*label).into()),
                ("internal_type".into(), (*ty).into()),
                ("reference".into(), (*reference).into()),
                ("choice".into(), choice.to_string()),
                ("mandatory".into(), mandatory.to_string()),
                ("read_only".into(), read_only.to_string()),
                ("max_length".into(), max.to_string()),
                ("active".into(), "true".into()),
            ]);
            s.insert_system("sys_dictionary", row, epoch);
        }
        for (table, element, value, label, seq) in data::CHOICES {
            let row = Row::from([
                ("name".into(), (*table).into()),
                ("element".into(), (*element).into()),
                ("value".into(), (*value).into()),
                ("label".into(), (*label).into()),
                ("sequence".into(), seq.to_string()),
                ("language".into(), "en".into()),
                ("inactive".into(), "false".into()),
                ("dependent_value".into(), String::new()),
            ]);
            s.insert_system("sys_choice", row, epoch);
        }
        for (user, first, last, email) in data::PEOPLE {
            s.add_user(user, first, last, email, epoch);
        }
        for (name, description) in data::GROUPS {
            let row = Row::from([
                ("name".into(), (*name).into()),
                ("description".into(), (*description).into()),
                ("active".into(), "true".into()),
            ]);
            s.insert_system("sys_user_group", row, epoch);
        }
        s
    }

    pub(crate) fn new_sys_id(&mut self) -> String {
        let n: u128 = self.rng.random();
        format!("{n:032x}")
    }

    /// Inserts a row with system fields set, as the system user.
    pub(crate) fn insert_system(
        &mut self,
        table: &str,
        mut row: Row,
        now: DateTime<Utc>,
    ) -> String {
        let id = self.new_sys_id();
        let t = fmt_time(now);
        row.insert("sys_id".into(), id.clone());
        row.insert("sys_created_on".into(), t.clone());
        row.insert("sys_updated_on".into(), t);
        row.insert("sys_created_by".into(), "system".into());
        row.insert("sys_updated_by".into(), "system".into());
        row.insert("sys_mod_count".into(), "0".into());
        self.tables.entry(table.to_owned()).or_default().insert(row);
        id
    }

    pub(crate) fn add_user(
        &mut self,
        user: &str,
        first: &str,
        last: &str,
        email: &str,
        now: DateTime<Utc>,
    ) -> String {
        if let Some(r) = self.find("sys_user", "user_name", user) {
            return r.get("sys_id").cloned().unwrap_or_default();
        }
        let row = Row::from([
            ("user_name".into(), user.into()),
            ("first_name".into(), first.into()),
            ("last_name".into(), last.into()),
            ("name".into(), format!("{first} {last}").trim().to_owned()),
            ("email".into(), email.into()),
            ("active".into(), "true".into()),
        ]);
        self.insert_system("sys_user", row, now)
    }

    pub(crate) fn find(&self, table: &str, field: &str, value: &str) -> Option<&Row> {
        self.tables
            .get(table)?
            .rows()
            .find(|r| r.get(field).is_some_and(|v| v == value))
    }

    /// The next record number of a table (`INC0010001`).
    pub(crate) fn next_number(&mut self, table: &str) -> Option<String> {
        let (prefix, first) = data::numbering(table)?;
        let n = self.counters.entry(prefix).or_insert(first - 1);
        *n += 1;
        Some(format!("{prefix}{n:07}"))
    }

    /// The display value of a record of `table` (what a reference to it shows).
    pub(crate) fn display_of(&self, table: &str, sys_id: &str) -> Option<String> {
        let row = self.tables.get(table)?.get(sys_id)?;
        ["name", "number", "user_name", "file_name", "sys_id"]
            .iter()
            .find_map(|f| row.get(*f).filter(|v| !v.is_empty()).cloned())
    }
}

/// A user who can sign in.
#[derive(Debug, Clone)]
pub(crate) struct SimUser {
    pub(crate) user_name: String,
    pub(crate) password: String,
    pub(crate) roles: Vec<String>,
}

impl SimUser {
    pub(crate) fn can_read(&self) -> bool {
        !self.roles.is_empty()
    }

    pub(crate) fn can_write(&self) -> bool {
        self.roles.iter().any(|r| r == "admin" || r == "itil")
    }
}

/// Behaviour switches, with the defaults of a current instance.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) default_limit: usize,
    pub(crate) prev_link_on_first_page: bool,
    pub(crate) invalid_query_returns_no_rows: bool,
    pub(crate) data_policy: bool,
    pub(crate) token_lifetime: Duration,
    pub(crate) display_offset: TimeDelta,
    pub(crate) max_attachment_bytes: usize,
}

pub(crate) struct Sn {
    pub(crate) store: Mutex<Store>,
    pub(crate) config: Config,
    pub(crate) base: OnceLock<String>,
    pub(crate) users: Mutex<Vec<SimUser>>,
    pub(crate) tokens: Mutex<HashMap<String, (String, DateTime<Utc>)>>,
    pub(crate) refresh: Mutex<HashMap<String, String>>,
    pub(crate) oauth_clients: Vec<(String, String)>,
    pub(crate) control: Arc<Control>,
    pub(crate) router: OnceLock<Router>,
}

impl Sn {
    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.control.clock.now()
    }

    pub(crate) fn base(&self) -> &str {
        self.base.get().map_or("", String::as_str)
    }
}
