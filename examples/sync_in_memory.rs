//! Two-way sync between two in-memory repositories: Ops tickets (`incident`) and Dev bugs
//! (`Bug`).
//!
//! Tickets with category `software` are escalated: each gets a Bug on the Dev side, found again
//! by its correlation key, never created twice. The Bug's state flows back into the ticket's
//! `u_dev_status` field. Between rounds, simulated users edit both sides; each round prints what
//! it read and wrote, and writes that would change nothing are never sent.
//!
//! Run it with `cargo run --example sync_in_memory`.
#![allow(clippy::print_stdout)]

use workbridge::wrappers::RecordingRepository;
use workbridge::{
    ChangeOptions, CorrelationKey, CreateOptions, Cursor, FieldMap, FieldValue, InMemoryRepository,
    ItemId, ItemType, Repository, RepositoryExt, Result, UpdateOptions, WorkItem,
};

#[derive(Debug, Default)]
struct Round {
    read: usize,
    created: usize,
    updated: usize,
    unchanged: usize,
    out_of_scope: usize,
}

struct Sync {
    ops: RecordingRepository<InMemoryRepository>,
    dev: RecordingRepository<InMemoryRepository>,
    ops_cursor: Cursor,
    dev_cursor: Cursor,
}

fn incident() -> ItemType {
    ItemType::from("incident")
}

fn bug() -> ItemType {
    ItemType::from("Bug")
}

fn key_for(ticket: &ItemId) -> CorrelationKey {
    CorrelationKey::new(format!("ops:incident:{ticket}"))
}

/// Writes only the fields whose values differ: a write that changes nothing is never sent.
async fn write_if_changed(
    repo: &dyn Repository,
    t: &ItemType,
    current: &WorkItem,
    wanted: FieldMap,
    round: &mut Round,
) -> Result<()> {
    let changes: FieldMap = wanted
        .into_iter()
        .filter(|(k, v)| current.field(k.as_str()) != Some(v))
        .collect();
    if changes.is_empty() {
        round.unchanged += 1;
        return Ok(());
    }
    let opts = UpdateOptions::default().if_version(current.version.clone());
    repo.update(t, &current.id, &changes, &opts).await?;
    round.updated += 1;
    Ok(())
}

impl Sync {
    async fn round(&mut self) -> Result<Round> {
        let mut round = Round::default();
        let page = ChangeOptions::default().page_size(20);

        // Ops → Dev: escalated tickets become bugs; their summary follows the ticket.
        let (tickets, ops_next) = self
            .ops
            .all_changes(&incident(), &self.ops_cursor, &page)
            .await?;
        round.read += tickets.len();
        for ticket in &tickets {
            if ticket.field("category") != Some(&FieldValue::from("software")) {
                round.out_of_scope += 1;
                continue;
            }
            let wanted = FieldMap::new().with(
                "title",
                format!(
                    "{}: {}",
                    ticket.id,
                    ticket
                        .field("short_description")
                        .map(ToString::to_string)
                        .unwrap_or_default()
                ),
            );
            match self
                .dev
                .find_by_correlation(&bug(), &key_for(&ticket.id))
                .await?
            {
                Some(existing) => {
                    write_if_changed(&self.dev, &bug(), &existing, wanted, &mut round).await?;
                }
                None => {
                    let fields = wanted.with("state", "New");
                    let opts = CreateOptions::default().correlation(key_for(&ticket.id));
                    self.dev.create(&bug(), &fields, &opts).await?;
                    round.created += 1;
                }
            }
        }
        // The cursor moves only once everything it covers is applied.
        self.ops_cursor = ops_next;

        // Dev → Ops: the bug's state lands in the ticket's `u_dev_status`.
        let (bugs, dev_next) = self
            .dev
            .all_changes(&bug(), &self.dev_cursor, &page)
            .await?;
        round.read += bugs.len();
        for b in &bugs {
            let Some(ticket_id) = self.ticket_of(b).await? else {
                continue;
            };
            let ticket = self.ops.get(&incident(), &ticket_id).await?;
            let state = b.field("state").cloned().unwrap_or(FieldValue::Null);
            write_if_changed(
                &self.ops,
                &incident(),
                &ticket,
                FieldMap::new().with("u_dev_status", state),
                &mut round,
            )
            .await?;
        }
        self.dev_cursor = dev_next;
        Ok(round)
    }

    /// The ticket a bug was created for: the title starts with the ticket id.
    async fn ticket_of(&self, b: &WorkItem) -> Result<Option<ItemId>> {
        let title = b
            .field("title")
            .map(ToString::to_string)
            .unwrap_or_default();
        let Some((id, _)) = title.split_once(':') else {
            return Ok(None);
        };
        let id = ItemId::from(id);
        let twin = self.dev.find_by_correlation(&bug(), &key_for(&id)).await?;
        Ok(twin.filter(|t| t.id == b.id).map(|_| id))
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<()> {
    let ops = RecordingRepository::new(InMemoryRepository::new("ops"));
    let dev = RecordingRepository::new(InMemoryRepository::new("dev"));
    let seed = [
        ("Invoices print blank", "software"),
        ("Laptop fan noisy", "hardware"),
        ("Login page times out", "software"),
        ("New starter needs a badge", "facilities"),
    ];
    for (summary, category) in seed {
        let fields = FieldMap::new()
            .with("short_description", summary)
            .with("category", category);
        ops.create(&incident(), &fields, &CreateOptions::default())
            .await?;
    }
    let mut sync = Sync {
        ops,
        dev,
        ops_cursor: Cursor::beginning(),
        dev_cursor: Cursor::beginning(),
    };

    for n in 1..=4 {
        let before = (sync.ops.writes(), sync.dev.writes());
        let r = sync.round().await?;
        println!(
            "round {n}: read {:>2}, created {}, updated {}, unchanged {}, out of scope {}  (writes: ops {}, dev {})",
            r.read,
            r.created,
            r.updated,
            r.unchanged,
            r.out_of_scope,
            sync.ops.writes() - before.0,
            sync.dev.writes() - before.1,
        );
        // Users work between rounds.
        match n {
            1 => {
                let (bugs, _) = sync
                    .dev
                    .all_changes(&bug(), &Cursor::beginning(), &ChangeOptions::default())
                    .await?;
                sync.dev
                    .inner()
                    .set_field(&bug(), &bugs[0].id, "state", "Active")
                    .await?;
                println!("         dev: bug {} → Active", bugs[0].id);
            }
            2 => {
                sync.ops
                    .inner()
                    .set_field(
                        &incident(),
                        &ItemId::from("3"),
                        "short_description",
                        "Login page times out for EU users",
                    )
                    .await?;
                println!("         ops: ticket 3 summary edited");
            }
            _ => {}
        }
    }

    println!("\nOps tickets:");
    let (tickets, _) = sync
        .ops
        .all_changes(&incident(), &Cursor::beginning(), &ChangeOptions::default())
        .await?;
    for t in tickets {
        println!(
            "  {:>2}  {:<40} dev status: {}",
            t.id,
            t.field("short_description")
                .map(ToString::to_string)
                .unwrap_or_default(),
            t.field("u_dev_status")
                .map_or("-".to_owned(), ToString::to_string),
        );
    }
    println!("Dev bugs:");
    let (bugs, _) = sync
        .dev
        .all_changes(&bug(), &Cursor::beginning(), &ChangeOptions::default())
        .await?;
    for b in bugs {
        println!(
            "  {:>2}  {:<48} {}",
            b.id,
            b.field("title")
                .map(ToString::to_string)
                .unwrap_or_default(),
            b.field("state")
                .map(ToString::to_string)
                .unwrap_or_default()
        );
    }
    Ok(())
}
