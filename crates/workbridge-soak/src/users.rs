//! The users — Ops in ServiceNow, Dev in Azure DevOps, QA in HP ALM — and the checker's model of
//! what they last wrote. The model is the users' own writes, read back from the system after each
//! edit (a user's reply may be lost too), never the kernel's state.

use std::collections::{BTreeMap, HashMap};

use rand::Rng;
use rand::rngs::StdRng;
use workbridge::alm::AlmRepository;
use workbridge::azure_devops::AzureDevOpsRepository;
use workbridge::{
    CorrelationKey, FieldMap, FieldValue, ItemId, ItemType, NewAttachment, NewComment, Repository,
    RepositoryExt, WorkItem,
};

use crate::Systems;

pub(crate) fn incident() -> ItemType {
    ItemType::from("incident")
}

pub(crate) fn bug() -> ItemType {
    ItemType::from("Bug")
}

pub(crate) fn defect() -> ItemType {
    ItemType::from("defects")
}

pub(crate) fn text(item: &WorkItem, f: &str) -> String {
    item.field(f).map(ToString::to_string).unwrap_or_default()
}

/// The key the QA pair writes into a defect created for Bug `id` (`Sync Key` in ALM).
fn defect_key(bug: &ItemId) -> CorrelationKey {
    CorrelationKey::new(format!("wb:Bug:{bug}"))
}

/// A plain-text description and the HTML the escalation spec makes of it (`text-to-html`).
fn description(step: u64) -> (String, String) {
    (
        format!("Seen at step {step}.\nSecond line"),
        format!("Seen at step {step}.<br>Second line"),
    )
}

/// What the users last wrote, per ticket (by id) and per Bug (by its ticket's number).
#[derive(Default)]
pub(crate) struct Model {
    pub(crate) tickets: Vec<ItemId>,
    number: HashMap<ItemId, String>,
    title: BTreeMap<ItemId, String>,
    priority: BTreeMap<ItemId, String>,
    /// The description's first line, and the HTML the Bug must hold.
    description: BTreeMap<ItemId, (String, String)>,
    /// Dev's last move of the Bug: at which step, to what state.
    dev: BTreeMap<String, (u64, String)>,
    /// QA's last verdict on the Bug's defect: at which step, and the Bug state it means.
    qa: BTreeMap<String, (u64, String)>,
    /// QA verdicts given.
    pub(crate) verdicts: u64,
    /// Every comment the users wrote and saw stored: its ticket, its tag, where it was written.
    comments: Vec<(ItemId, String, &'static str)>,
    /// Comments written.
    pub(crate) comments_written: u64,
    /// Every file the users attached and saw stored: its ticket, its name, where it was attached.
    files: Vec<(ItemId, String, &'static str)>,
    /// Files attached.
    pub(crate) files_attached: u64,
    /// Dev's moves and QA's verdicts as they were made (when, which items, whether the item
    /// read back showed them), kept beside the worker log when the check fails.
    pub(crate) journal: Vec<String>,
}

/// The wall clock to the millisecond, as the worker log shows it.
fn clock() -> String {
    chrono::Utc::now().format("%H:%M:%S%.3f").to_string()
}

/// The names of an item's attachments, read through the faults.
async fn files_of(repo: &dyn Repository, t: &ItemType, id: &ItemId) -> Option<Vec<String>> {
    for _ in 0..30 {
        if let Ok(list) = repo.attachments(t, id).await {
            return Some(list.into_iter().map(|a| a.file_name).collect());
        }
    }
    None
}

/// A comment's tag, unique to its step: `note #12.` is no part of `note #123.`.
fn note(step: u64) -> String {
    format!("note #{step}.")
}

/// The comments of an item, read through the faults.
async fn comments_of(repo: &dyn Repository, t: &ItemType, id: &ItemId) -> Option<Vec<String>> {
    for _ in 0..30 {
        if let Ok(cs) = repo.comments(t, id).await {
            return Some(cs.into_iter().map(|c| c.body).collect());
        }
    }
    None
}

/// Reads an item back, trying again through faults: after a write whose reply may have been
/// lost, the model must learn what the system holds.
pub(crate) async fn read_back(
    repo: &dyn Repository,
    t: &ItemType,
    id: &ItemId,
) -> Option<WorkItem> {
    for _ in 0..30 {
        if let Ok(item) = repo.get(t, id).await {
            return Some(item);
        }
    }
    None
}

/// Every Bug by the ticket number it carries; `None` when faults kept the listing from
/// completing (users try again later).
pub(crate) async fn bugs_by_number(
    ado: &AzureDevOpsRepository,
) -> Option<HashMap<String, Vec<WorkItem>>> {
    let mut by: HashMap<String, Vec<WorkItem>> = HashMap::new();
    for b in list(ado, &bug()).await? {
        by.entry(text(&b, "Custom.ServiceNowTicket"))
            .or_default()
            .push(b);
    }
    Some(by)
}

/// Every defect by the key the QA pair wrote into it.
async fn defects_by_key(alm: &AlmRepository) -> Option<HashMap<String, Vec<WorkItem>>> {
    let mut by: HashMap<String, Vec<WorkItem>> = HashMap::new();
    for d in list(alm, &defect()).await? {
        by.entry(text(&d, "user-04")).or_default().push(d);
    }
    Some(by)
}

async fn list(repo: &dyn Repository, t: &ItemType) -> Option<Vec<WorkItem>> {
    for _ in 0..10 {
        if let Ok((items, _)) = repo
            .all_changes(t, &Default::default(), &Default::default())
            .await
        {
            return Some(items);
        }
    }
    None
}

/// What a user action did: `Ok(true)` an edit the system acknowledged, `Ok(false)` nothing
/// (not the user's turn, or a lost reply the model cannot know of), `Err` the soak cannot go on.
pub(crate) type Done = Result<bool, String>;

impl Model {
    /// Ops open a software ticket.
    pub(crate) async fn open_ticket(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        let short = format!("Defect {step}");
        let p = rng.random_range(1..=4).to_string();
        let (desc, html) = description(step);
        let Ok(t) = sys
            .sn
            .create(
                &incident(),
                &FieldMap::new()
                    .with("short_description", short.as_str())
                    .with("description", desc.as_str())
                    .with("category", FieldValue::Choice("software".into()))
                    .with("priority", FieldValue::Choice(p.clone())),
                &Default::default(),
            )
            .await
        else {
            return Ok(false); // a lost reply: the model cannot know, so it is not counted
        };
        self.number.insert(t.id.clone(), text(&t, "number"));
        self.title.insert(t.id.clone(), short);
        self.priority.insert(t.id.clone(), p);
        self.description.insert(t.id.clone(), (desc, html));
        self.tickets.push(t.id);
        Ok(true)
    }

    /// Ops edit a ticket's title, priority or description.
    pub(crate) async fn edit_ticket(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        let id = self.tickets[rng.random_range(0..self.tickets.len())].clone();
        let (desc, html) = description(step);
        let (field, value) = match rng.random_range(0..3) {
            0 => (
                "short_description",
                FieldValue::Text(format!("Defect edited at {step}")),
            ),
            1 => (
                "priority",
                FieldValue::Choice(rng.random_range(1..=4).to_string()),
            ),
            _ => ("description", FieldValue::Text(desc.clone())),
        };
        let wrote = sys
            .sn
            .update(
                &incident(),
                &id,
                &FieldMap::new().with(field, value),
                &Default::default(),
            )
            .await;
        // Whatever the reply said, the model learns what the system now holds.
        let Some(t) = read_back(sys.sn.as_ref(), &incident(), &id).await else {
            return Err(format!(
                "ticket {id} cannot be read back through the faults"
            ));
        };
        self.title.insert(id.clone(), text(&t, "short_description"));
        self.priority.insert(id.clone(), text(&t, "priority"));
        if text(&t, "description") == desc {
            self.description.insert(id, (desc, html));
        }
        Ok(wrote.is_ok())
    }

    /// A Bug of one of the model's tickets, in one of `states`, with its ticket's number.
    async fn pick_bug(
        &self,
        sys: &Systems,
        rng: &mut StdRng,
        states: &[&str],
    ) -> Option<(String, WorkItem)> {
        let by = bugs_by_number(&sys.ado).await?;
        let mut mine: Vec<(String, WorkItem)> = self
            .tickets
            .iter()
            .filter_map(|id| {
                let number = &self.number[id];
                let b = by.get(number)?.first()?;
                states
                    .contains(&text(b, "System.State").as_str())
                    .then(|| (number.clone(), b.clone()))
            })
            .collect();
        if mine.is_empty() {
            return None;
        }
        Some(mine.swap_remove(rng.random_range(0..mine.len())))
    }

    /// Dev moves a Bug on: New → Active → Resolved. A resolved or closed Bug is QA's.
    pub(crate) async fn dev_moves(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        let Some((number, b)) = self.pick_bug(sys, rng, &["New", "Active"]).await else {
            return Ok(false);
        };
        let next = if text(&b, "System.State") == "New" {
            "Active"
        } else {
            "Resolved"
        };
        let wrote = sys
            .ado
            .update(
                &bug(),
                &b.id,
                &FieldMap::new().with("System.State", next),
                &Default::default(),
            )
            .await;
        let Some(now) = read_back(sys.ado.as_ref(), &bug(), &b.id).await else {
            return Err(format!(
                "Bug {} cannot be read back through the faults",
                b.id
            ));
        };
        let shown = text(&now, "System.State");
        self.journal.push(format!(
            "{} step {step} dev {number} Bug {} {} -> {next}: write {}, reads {shown} at rev {}",
            clock(),
            b.id,
            text(&b, "System.State"),
            if wrote.is_ok() { "ok" } else { "failed" },
            now.version
        ));
        if shown == next {
            self.dev.insert(number, (step, next.to_owned()));
        }
        Ok(wrote.is_ok())
    }

    /// QA give their verdict on a fixed defect (its Bug resolved): verified (the Bug closes) or
    /// failed (the Bug goes back to Dev).
    pub(crate) async fn qa_verdict(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        // QA's worklist: the fixed defects of resolved Bugs.
        let (Some(by), Some(defects)) = (
            bugs_by_number(&sys.ado).await,
            defects_by_key(&sys.alm).await,
        ) else {
            return Ok(false);
        };
        let mut turns: Vec<(String, WorkItem)> = self
            .tickets
            .iter()
            .filter_map(|id| {
                let number = &self.number[id];
                let b = by.get(number)?.first()?;
                let d = defects.get(defect_key(&b.id).as_str())?.first()?;
                (text(b, "System.State") == "Resolved" && text(d, "status") == "Fixed")
                    .then(|| (number.clone(), d.clone()))
            })
            .collect();
        if turns.is_empty() {
            return Ok(false);
        }
        let (number, d) = turns.swap_remove(rng.random_range(0..turns.len()));
        let (verdict, bug_state) = if rng.random_bool(0.5) {
            ("Closed", "Closed")
        } else {
            ("Reopen", "Active")
        };
        let wrote = sys
            .alm
            .update(
                &defect(),
                &d.id,
                &FieldMap::new().with("status", verdict),
                &Default::default(),
            )
            .await;
        let Some(now) = read_back(sys.alm.as_ref(), &defect(), &d.id).await else {
            return Err(format!(
                "defect {} cannot be read back through the faults",
                d.id
            ));
        };
        self.journal.push(format!(
            "{} step {step} qa {number} defect {} {verdict}: write {}, reads {} at ver-stamp {}",
            clock(),
            d.id,
            if wrote.is_ok() { "ok" } else { "failed" },
            text(&now, "status"),
            now.version
        ));
        if text(&now, "status") != verdict {
            return Ok(false); // refused or lost: QA will look again later
        }
        self.qa.insert(number, (step, bug_state.to_owned()));
        self.verdicts += 1;
        Ok(true)
    }

    /// Ops (a public comment on a ticket), Dev (on its Bug) or QA (on its defect, if it has
    /// one) comment. Each comment must reach the other two items once, and never come back.
    pub(crate) async fn comment(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        let Some((ticket, repo, t, id, origin)) = self.pick_item(sys, rng).await else {
            return Ok(false);
        };
        let tag = note(step);
        let wrote = repo
            .add_comment(
                &t,
                &id,
                &NewComment::public(format!("{origin} {tag} Checked on the second printer")),
            )
            .await;
        // Whatever the reply said, the model learns whether the comment is there.
        let Some(bodies) = comments_of(repo, &t, &id).await else {
            return Err(format!(
                "the comments of {t} {id} cannot be read through the faults"
            ));
        };
        if bodies.iter().any(|b| b.contains(&tag)) {
            self.comments.push((ticket, tag, origin));
            self.comments_written += 1;
        }
        Ok(wrote.is_ok())
    }

    /// One of the users, with an item of theirs: Ops a ticket, Dev its Bug, QA its defect (if
    /// it has one yet).
    async fn pick_item<'s>(
        &self,
        sys: &'s Systems,
        rng: &mut StdRng,
    ) -> Option<(ItemId, &'s dyn Repository, ItemType, ItemId, &'static str)> {
        let ticket = self.tickets[rng.random_range(0..self.tickets.len())].clone();
        let number = &self.number[&ticket];
        let who = rng.random_range(0..3);
        if who == 0 {
            return Some((ticket.clone(), sys.sn.as_ref(), incident(), ticket, "Ops"));
        }
        let b = bugs_by_number(&sys.ado)
            .await?
            .get(number)
            .and_then(|v| v.first().cloned())?;
        if who == 1 {
            return Some((ticket, sys.ado.as_ref(), bug(), b.id, "Dev"));
        }
        let d = defects_by_key(&sys.alm)
            .await?
            .get(defect_key(&b.id).as_str())
            .and_then(|v| v.first().cloned())?;
        Some((ticket, sys.alm.as_ref(), defect(), d.id, "QA"))
    }

    /// Ops, Dev or QA attach a small file. Each file must reach the other two items once.
    pub(crate) async fn attach(&mut self, sys: &Systems, rng: &mut StdRng, step: u64) -> Done {
        let Some((ticket, repo, t, id, origin)) = self.pick_item(sys, rng).await else {
            return Ok(false);
        };
        let name = format!("{}-{step}.txt", origin.to_lowercase());
        let wrote = repo
            .upload(
                &t,
                &id,
                &NewAttachment::new(
                    name.as_str(),
                    "text/plain",
                    format!("seen at step {step}\n"),
                ),
            )
            .await;
        let Some(names) = files_of(repo, &t, &id).await else {
            return Err(format!(
                "the attachments of {t} {id} cannot be read through the faults"
            ));
        };
        if names.contains(&name) {
            self.files.push((ticket, name, origin));
            self.files_attached += 1;
        }
        Ok(wrote.is_ok())
    }

    /// The checker, once edits and faults have stopped and the sync is quiet.
    pub(crate) async fn check(&self, sys: &Systems) -> Result<Counts, String> {
        let by = bugs_by_number(&sys.ado)
            .await
            .ok_or("the Bugs cannot be listed without faults")?;
        let defects = defects_by_key(&sys.alm)
            .await
            .ok_or("the defects cannot be listed without faults")?;
        let mut c = Counts::default();
        let status = |st: &str| match st {
            "New" => "New",
            "Active" => "In development",
            "Resolved" => "Fixed, awaiting release",
            "Closed" => "Released",
            _ => "",
        };
        let mut lost = |what: String| {
            eprintln!("lost {what}");
            c.lost += 1;
        };
        for id in &self.tickets {
            let number = &self.number[id];
            let bugs = by.get(number).cloned().unwrap_or_default();
            c.duplicates += bugs.len().saturating_sub(1);
            let Some(b) = bugs.first() else {
                lost(format!("Bug: {number} has none"));
                continue;
            };
            let t = read_back(sys.sn.as_ref(), &incident(), id)
                .await
                .ok_or_else(|| format!("ticket {id} cannot be read without faults"))?;
            let want_title = format!("{number}: {}", self.title[id]);
            if text(b, "System.Title") != want_title {
                lost(format!(
                    "title: {want_title} vs {}",
                    text(b, "System.Title")
                ));
            }
            if text(b, "Microsoft.VSTS.Common.Priority") != self.priority[id] {
                lost(format!(
                    "priority: {number}: {} vs {}",
                    self.priority[id],
                    text(b, "Microsoft.VSTS.Common.Priority")
                ));
            }
            let (desc, html) = &self.description[id];
            if text(b, "Microsoft.VSTS.TCM.ReproSteps") != *html {
                lost(format!(
                    "repro steps: {number}: {html:?} vs {:?}",
                    text(b, "Microsoft.VSTS.TCM.ReproSteps")
                ));
            }
            if text(&t, "description") != *desc {
                lost(format!(
                    "description: {number}: {desc:?} vs {:?}",
                    text(&t, "description")
                ));
            }
            // The Bug's state: whichever of Dev's move and QA's verdict came last.
            let state = text(b, "System.State");
            let want = match (self.dev.get(number), self.qa.get(number)) {
                (Some((d, s)), Some((q, _))) if d > q => Some(s),
                (_, Some((_, s))) | (Some((_, s)), None) => Some(s),
                (None, None) => None,
            };
            if let Some(want) = want
                && *want != state
            {
                lost(format!("state: {number}: {want} vs {state}"));
            }
            if text(&t, "u_dev_status") != status(&state) {
                c.divergence += 1;
                eprintln!(
                    "diverged: {number}: Bug {state}, ticket says {}",
                    text(&t, "u_dev_status")
                );
            }
            // QA's side: a resolved or closed Bug has exactly one defect, with its description.
            let ds = defects
                .get(defect_key(&b.id).as_str())
                .cloned()
                .unwrap_or_default();
            c.duplicates += ds.len().saturating_sub(1);
            match ds.first() {
                None if matches!(state.as_str(), "Resolved" | "Closed") => {
                    lost(format!("defect: Bug {} ({state}) has none", b.id));
                }
                Some(d) if !text(d, "description").contains(desc.lines().next().unwrap_or("")) => {
                    lost(format!(
                        "defect description: Bug {}: {html:?} vs {:?}",
                        b.id,
                        text(d, "description")
                    ));
                }
                _ => {}
            }
            // Each comment and each file on each of the three items once: where it was written,
            // and copied.
            let mine = |list: &[(ItemId, String, &'static str)]| -> Vec<(String, &'static str)> {
                list.iter()
                    .filter(|(t, _, _)| *t == *id)
                    .map(|(_, what, who)| (what.clone(), *who))
                    .collect()
            };
            let (notes, files) = (mine(&self.comments), mine(&self.files));
            if notes.is_empty() && files.is_empty() {
                continue;
            }
            for (name, repo, ty, item) in [
                (
                    "ticket",
                    sys.sn.as_ref() as &dyn Repository,
                    incident(),
                    Some(id.clone()),
                ),
                ("Bug", sys.ado.as_ref(), bug(), Some(b.id.clone())),
                (
                    "defect",
                    sys.alm.as_ref(),
                    defect(),
                    ds.first().map(|d| d.id.clone()),
                ),
            ] {
                let Some(item) = item else { continue };
                let bodies = comments_of(repo, &ty, &item)
                    .await
                    .ok_or_else(|| format!("the comments of {ty} {item} cannot be read"))?;
                let names = files_of(repo, &ty, &item)
                    .await
                    .ok_or_else(|| format!("the attachments of {ty} {item} cannot be read"))?;
                let counted = notes
                    .iter()
                    .map(|(tag, who)| {
                        (
                            "comment",
                            tag,
                            who,
                            bodies.iter().filter(|b| b.contains(tag.as_str())).count(),
                        )
                    })
                    .chain(files.iter().map(|(file, who)| {
                        (
                            "file",
                            file,
                            who,
                            names.iter().filter(|n| *n == file).count(),
                        )
                    }));
                for (what, tag, who, n) in counted {
                    match n {
                        1 => {}
                        0 => lost(format!("{what}: {number}: {who}'s {tag} not on the {name}")),
                        n => {
                            c.duplicates += n - 1;
                            eprintln!(
                                "duplicate {what}: {number}: {who}'s {tag} {n} times on the {name}"
                            );
                        }
                    }
                }
            }
        }
        Ok(c)
    }
}

/// What the checker counts.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) duplicates: usize,
    pub(crate) lost: usize,
    pub(crate) divergence: usize,
}
