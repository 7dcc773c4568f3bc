//! [`PostgresStore`]: state in PostgreSQL, shared by several workers, with a lease per pair.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Config, NoTls};
use workbridge_core::{Cursor, Error, ErrorKind, ItemId, Result};

use crate::store::{Copied, CreateIntent, Link, Parked, Side, StateStore};

/// The migrations, in order; `workbridge_schema.version` says how many ran. Every table is
/// prefixed so the store can share a database.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE workbridge_links (pair TEXT NOT NULL, left_id TEXT NOT NULL, right_id TEXT NOT NULL, link TEXT NOT NULL, PRIMARY KEY (pair, left_id));
     CREATE UNIQUE INDEX workbridge_links_by_right ON workbridge_links (pair, right_id);
     CREATE TABLE workbridge_cursors (pair TEXT NOT NULL, side TEXT NOT NULL, cursor TEXT NOT NULL, PRIMARY KEY (pair, side));
     CREATE TABLE workbridge_parked (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, parked TEXT NOT NULL, PRIMARY KEY (pair, side, id));
     CREATE TABLE workbridge_copied (pair TEXT NOT NULL, kind TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, PRIMARY KEY (pair, kind, side, id));
     CREATE TABLE workbridge_leases (pair TEXT PRIMARY KEY, holder TEXT NOT NULL, expires_at TIMESTAMPTZ NOT NULL);",
    "CREATE TABLE workbridge_intents (pair TEXT NOT NULL, side TEXT NOT NULL, id TEXT NOT NULL, intent TEXT NOT NULL, PRIMARY KEY (pair, side, id));",
    "CREATE TABLE workbridge_comment_origins (copy TEXT PRIMARY KEY, item TEXT NOT NULL, origin TEXT NOT NULL);
     CREATE INDEX workbridge_comment_origins_by_item ON workbridge_comment_origins (item);",
    // Links stored before baselines were marked exact or not (ADR 0022) are taken as not
    // exact: their twins are read before the next merge, which marks them.
    r#"UPDATE workbridge_links SET link = (link::jsonb || '{"left_held":true,"right_held":true}'::jsonb)::text;"#,
];

/// An arbitrary constant naming the migration lock (`pg_advisory_xact_lock`).
const MIGRATION_LOCK: i64 = 0x776f_726b_6272_6467;

fn pg_err(e: &tokio_postgres::Error) -> Error {
    // Server-side errors (constraint, syntax, permission) are permanent; a lost connection
    // or a closed client is an outage.
    let temporary = e.as_db_error().is_none();
    // `Display` of a server error says only "db error": name what the server said.
    let what = match e.as_db_error() {
        Some(db) => {
            let mut s = format!("{} (SQLSTATE {})", db.message(), db.code().code());
            if let Some(d) = db.detail() {
                s.push_str(&format!("; {d}"));
            }
            if let Some(t) = db.table() {
                s.push_str(&format!("; table {t}"));
            }
            s
        }
        None => e.to_string(),
    };
    Error::new(
        ErrorKind::Unavailable,
        format!("the PostgreSQL state store failed: {what}"),
    )
    .with_temporary(temporary)
}

fn json_err(e: &serde_json::Error) -> Error {
    Error::new(
        ErrorKind::Protocol,
        format!("a stored value cannot be read: {e}"),
    )
}

/// State in PostgreSQL: several processes can share the work of many pairs, and the lease of
/// each pair ([`StateStore::acquire_lease`]) keeps two of them from running one pair at once.
/// A lost connection is re-established on the next call. TLS is not built in: connect over
/// loopback, a Unix socket or a TLS-terminating proxy.
pub struct PostgresStore {
    config: Config,
    client: Mutex<Option<Arc<Client>>>,
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the password: only where the database is.
        f.debug_struct("PostgresStore")
            .field("hosts", &self.config.get_hosts())
            .field("ports", &self.config.get_ports())
            .field("dbname", &self.config.get_dbname())
            .field("user", &self.config.get_user())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// Connects with a libpq-style connection string (`host=127.0.0.1 user=wb dbname=wb`, or a
    /// `postgresql://` URL) and runs the migrations that have not run (once, under an advisory
    /// lock, however many workers start together).
    ///
    /// # Errors
    /// A malformed connection string ([`ErrorKind::Config`]), an unreachable server, or a
    /// database written by a newer workbridge.
    pub async fn connect(connection: &str) -> Result<Self> {
        let config: Config = connection.parse().map_err(|e: tokio_postgres::Error| {
            Error::config(format!("the PostgreSQL connection string is invalid: {e}"))
        })?;
        let store = PostgresStore {
            config,
            client: Mutex::new(None),
        };
        store.migrate().await?;
        Ok(store)
    }

    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(c.clone());
        }
        let (client, connection) = self.config.connect(NoTls).await.map_err(|e| pg_err(&e))?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::warn!(error = %e, "the PostgreSQL state store connection ended");
            }
        });
        let client = Arc::new(client);
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn migrate(&self) -> Result<()> {
        let client = self.client().await?;
        // `Client::transaction` needs `&mut`; plain statements on one connection do the same.
        client
            .batch_execute("BEGIN")
            .await
            .map_err(|e| pg_err(&e))?;
        let result = async {
            // Everything, the schema table included, under the lock: two workers starting on a
            // fresh database would otherwise race on creating it (a duplicate key in
            // pg_type_typname_nsp_index, though both said IF NOT EXISTS).
            client
                .execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            client
                .batch_execute(
                    "CREATE TABLE IF NOT EXISTS workbridge_schema (version INTEGER NOT NULL)",
                )
                .await?;
            let row = client
                .query_opt("SELECT version FROM workbridge_schema", &[])
                .await?;
            let version = row.map_or(0, |r| r.get::<_, i32>(0));
            Ok::<_, tokio_postgres::Error>(version)
        }
        .await;
        let version = match result {
            Ok(v) => v,
            Err(e) => {
                let _ = client.batch_execute("ROLLBACK").await;
                return Err(pg_err(&e));
            }
        };
        let done = usize::try_from(version).unwrap_or(usize::MAX);
        if done > MIGRATIONS.len() {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(Error::config(format!(
                "the PostgreSQL state store was written by a newer workbridge (schema {version})"
            )));
        }
        let apply = async {
            for m in &MIGRATIONS[done..] {
                client.batch_execute(m).await?;
            }
            let n = i32::try_from(MIGRATIONS.len()).unwrap_or(i32::MAX);
            client.execute("DELETE FROM workbridge_schema", &[]).await?;
            client
                .execute("INSERT INTO workbridge_schema (version) VALUES ($1)", &[&n])
                .await?;
            client.batch_execute("COMMIT").await
        }
        .await;
        if let Err(e) = apply {
            let _ = client.batch_execute("ROLLBACK").await;
            return Err(pg_err(&e));
        }
        Ok(())
    }

    async fn one_text(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Option<String>> {
        let c = self.client().await?;
        let row = c.query_opt(sql, params).await.map_err(|e| pg_err(&e))?;
        Ok(row.map(|r| r.get::<_, String>(0)))
    }

    async fn texts(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<String>> {
        let c = self.client().await?;
        let rows = c.query(sql, params).await.map_err(|e| pg_err(&e))?;
        Ok(rows.into_iter().map(|r| r.get::<_, String>(0)).collect())
    }

    async fn exec(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let c = self.client().await?;
        c.execute(sql, params).await.map_err(|e| pg_err(&e))
    }
}

fn decode<T: serde::de::DeserializeOwned>(s: Option<String>) -> Result<Option<T>> {
    s.map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
        .transpose()
}

fn encode<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| json_err(&e))
}

#[async_trait]
impl StateStore for PostgresStore {
    async fn link(&self, pair: &str, side: Side, id: &ItemId) -> Result<Option<Link>> {
        let sql = match side {
            Side::Left => "SELECT link FROM workbridge_links WHERE pair = $1 AND left_id = $2",
            Side::Right => "SELECT link FROM workbridge_links WHERE pair = $1 AND right_id = $2",
        };
        decode(self.one_text(sql, &[&pair, &id.as_str()]).await?)
    }
    async fn links_of(&self, pair: &str, side: Side, ids: &[ItemId]) -> Result<Vec<Option<Link>>> {
        // One query for the lot, by the side's index.
        let sql = match side {
            Side::Left => {
                "SELECT left_id, link FROM workbridge_links WHERE pair = $1 AND left_id = ANY($2)"
            }
            Side::Right => {
                "SELECT right_id, link FROM workbridge_links WHERE pair = $1 AND right_id = ANY($2)"
            }
        };
        let wanted: Vec<&str> = ids.iter().map(ItemId::as_str).collect();
        let c = self.client().await?;
        let rows = c
            .query(sql, &[&pair, &wanted])
            .await
            .map_err(|e| pg_err(&e))?;
        let found: HashMap<String, String> = rows
            .into_iter()
            .map(|r| (r.get::<_, String>(0), r.get::<_, String>(1)))
            .collect();
        ids.iter()
            .map(|id| decode(found.get(id.as_str()).cloned()))
            .collect()
    }
    async fn save_link(&self, pair: &str, link: &Link) -> Result<()> {
        let json = encode(link)?;
        // First a stale link holding the right id goes, then the upsert: each statement leaves
        // a consistent state, so no transaction is held across calls on the shared connection.
        self.exec(
            "DELETE FROM workbridge_links WHERE pair = $1 AND right_id = $2 AND left_id <> $3",
            &[&pair, &link.right.as_str(), &link.left.as_str()],
        )
        .await?;
        self.exec(
            "INSERT INTO workbridge_links (pair, left_id, right_id, link) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pair, left_id) DO UPDATE SET right_id = EXCLUDED.right_id, link = EXCLUDED.link",
            &[&pair, &link.left.as_str(), &link.right.as_str(), &json],
        )
        .await
        .map(|_| ())
    }
    async fn retire_link(&self, pair: &str, link: &Link) -> Result<()> {
        self.exec(
            "DELETE FROM workbridge_links WHERE pair = $1 AND left_id = $2",
            &[&pair, &link.left.as_str()],
        )
        .await
        .map(|_| ())
    }
    async fn links(&self, pair: &str) -> Result<Vec<Link>> {
        self.texts(
            "SELECT link FROM workbridge_links WHERE pair = $1 ORDER BY left_id",
            &[&pair],
        )
        .await?
        .into_iter()
        .map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
        .collect()
    }
    async fn cursor(&self, pair: &str, side: Side) -> Result<Option<Cursor>> {
        decode(
            self.one_text(
                "SELECT cursor FROM workbridge_cursors WHERE pair = $1 AND side = $2",
                &[&pair, &side.as_str()],
            )
            .await?,
        )
    }
    async fn save_cursor(&self, pair: &str, side: Side, cursor: &Cursor) -> Result<()> {
        let json = encode(cursor)?;
        self.exec(
            "INSERT INTO workbridge_cursors (pair, side, cursor) VALUES ($1, $2, $3)
             ON CONFLICT (pair, side) DO UPDATE SET cursor = EXCLUDED.cursor",
            &[&pair, &side.as_str(), &json],
        )
        .await
        .map(|_| ())
    }
    async fn park(&self, pair: &str, parked: &Parked) -> Result<()> {
        let previous: Option<Parked> = decode(
            self.one_text(
                "SELECT parked FROM workbridge_parked WHERE pair = $1 AND side = $2 AND id = $3",
                &[&pair, &parked.side.as_str(), &parked.id.as_str()],
            )
            .await?,
        )?;
        let p = Parked {
            attempts: previous.map_or(0, |p| p.attempts) + 1,
            ..parked.clone()
        };
        let json = encode(&p)?;
        self.exec(
            "INSERT INTO workbridge_parked (pair, side, id, parked) VALUES ($1, $2, $3, $4)
             ON CONFLICT (pair, side, id) DO UPDATE SET parked = EXCLUDED.parked",
            &[&pair, &p.side.as_str(), &p.id.as_str(), &json],
        )
        .await
        .map(|_| ())
    }
    async fn unpark(&self, pair: &str, side: Side, id: &ItemId) -> Result<()> {
        self.exec(
            "DELETE FROM workbridge_parked WHERE pair = $1 AND side = $2 AND id = $3",
            &[&pair, &side.as_str(), &id.as_str()],
        )
        .await
        .map(|_| ())
    }
    async fn parked(&self, pair: &str) -> Result<Vec<Parked>> {
        self.texts(
            "SELECT parked FROM workbridge_parked WHERE pair = $1 ORDER BY side, id",
            &[&pair],
        )
        .await?
        .into_iter()
        .map(|s| serde_json::from_str(&s).map_err(|e| json_err(&e)))
        .collect()
    }
    async fn copied(&self, pair: &str, kind: Copied, side: Side, id: &str) -> Result<bool> {
        let c = self.client().await?;
        let row = c
            .query_opt(
                "SELECT 1 FROM workbridge_copied WHERE pair = $1 AND kind = $2 AND side = $3 AND id = $4",
                &[&pair, &kind.as_str(), &side.as_str(), &id],
            )
            .await
            .map_err(|e| pg_err(&e))?;
        Ok(row.is_some())
    }
    async fn record_copy(
        &self,
        pair: &str,
        kind: Copied,
        side: Side,
        source: &str,
        copy: &str,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO workbridge_copied (pair, kind, side, id) VALUES ($1, $2, $3, $4), ($1, $2, $5, $6) ON CONFLICT DO NOTHING",
            &[&pair, &kind.as_str(), &side.as_str(), &source, &side.other().as_str(), &copy],
        )
        .await
        .map(|_| ())
    }
    async fn acquire_lease(&self, pair: &str, holder: &str, ttl: Duration) -> Result<bool> {
        let secs = ttl.as_secs_f64();
        // One statement: take a free or expired lease, or renew our own; the server's clock
        // decides expiry, so workers' clocks need not agree.
        let c = self.client().await?;
        let row = c
            .query_opt(
                "INSERT INTO workbridge_leases (pair, holder, expires_at) VALUES ($1, $2, clock_timestamp() + make_interval(secs => $3))
                 ON CONFLICT (pair) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
                 WHERE workbridge_leases.holder = EXCLUDED.holder OR workbridge_leases.expires_at <= clock_timestamp()
                 RETURNING holder",
                &[&pair, &holder, &secs],
            )
            .await
            .map_err(|e| pg_err(&e))?;
        Ok(row.is_some())
    }
    async fn release_lease(&self, pair: &str, holder: &str) -> Result<()> {
        self.exec(
            "DELETE FROM workbridge_leases WHERE pair = $1 AND holder = $2",
            &[&pair, &holder],
        )
        .await
        .map(|_| ())
    }
    async fn save_intents(&self, pair: &str, intents: &[CreateIntent]) -> Result<()> {
        if intents.is_empty() {
            return Ok(());
        }
        let sides: Vec<&str> = intents.iter().map(|i| i.side.as_str()).collect();
        let ids: Vec<&str> = intents.iter().map(|i| i.source.as_str()).collect();
        let json = intents
            .iter()
            .map(encode)
            .collect::<Result<Vec<String>>>()?;
        // One statement for the whole page.
        self.exec(
            "INSERT INTO workbridge_intents (pair, side, id, intent)
             SELECT $1, s, i, j FROM UNNEST($2::text[], $3::text[], $4::text[]) AS t(s, i, j)
             ON CONFLICT (pair, side, id) DO UPDATE SET intent = EXCLUDED.intent",
            &[&pair, &sides, &ids, &json],
        )
        .await
        .map(|_| ())
    }
    async fn intent(
        &self,
        pair: &str,
        side: Side,
        source: &ItemId,
    ) -> Result<Option<CreateIntent>> {
        decode(
            self.one_text(
                "SELECT intent FROM workbridge_intents WHERE pair = $1 AND side = $2 AND id = $3",
                &[&pair, &side.as_str(), &source.as_str()],
            )
            .await?,
        )
    }
    async fn clear_intent(&self, pair: &str, side: Side, source: &ItemId) -> Result<()> {
        self.exec(
            "DELETE FROM workbridge_intents WHERE pair = $1 AND side = $2 AND id = $3",
            &[&pair, &side.as_str(), &source.as_str()],
        )
        .await
        .map(|_| ())
    }
    async fn comment_origin(&self, at: &str) -> Result<Option<String>> {
        self.one_text(
            "SELECT origin FROM workbridge_comment_origins WHERE copy = $1",
            &[&at],
        )
        .await
    }
    async fn record_comment_origin(&self, copy: &str, item: &str, origin: &str) -> Result<()> {
        self.exec(
            "INSERT INTO workbridge_comment_origins (copy, item, origin) VALUES ($1, $2, $3)
             ON CONFLICT (copy) DO UPDATE SET item = EXCLUDED.item, origin = EXCLUDED.origin",
            &[&copy, &item, &origin],
        )
        .await
        .map(|_| ())
    }
    async fn comment_origins_on(&self, item: &str) -> Result<Vec<String>> {
        self.texts(
            "SELECT origin FROM workbridge_comment_origins WHERE item = $1",
            &[&item],
        )
        .await
    }
}
