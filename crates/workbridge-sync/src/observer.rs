//! [`Observer`]: a round's progress as it goes — each page, each item — and a way to end it
//! between pages.

use std::ops::ControlFlow;

use workbridge_core::ItemId;

use crate::{PerSide, Side};

/// Watches a pair's jobs as they go ([`SyncPair::with_observer`](crate::SyncPair::with_observer)):
/// a progress bar on a long first sync, a metrics counter, a shutdown between pages. Called
/// on the round's task; keep it quick (hand work to a channel).
///
/// ```
/// use std::ops::ControlFlow;
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use workbridge_sync::{Observer, PageDone};
///
/// /// Ends the round after the page in hand once a shutdown was asked for.
/// struct Shutdown(AtomicBool);
///
/// impl Observer for Shutdown {
///     fn page(&self, page: &PageDone) -> ControlFlow<()> {
///         println!("{} page of {} items, {} read so far", page.side, page.items, page.read.left + page.read.right);
///         if self.0.load(Ordering::Relaxed) { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
///     }
/// }
/// ```
pub trait Observer: Send + Sync {
    /// A page of one side's changes was applied and its cursor committed. `Break` ends the job
    /// here — nothing more is read or written; the next round resumes from the cursors
    /// committed — and the report says it was `interrupted`.
    fn page(&self, page: &PageDone) -> ControlFlow<()> {
        let _ = page;
        ControlFlow::Continue(())
    }

    /// An item's outcome was booked.
    fn item(&self, item: &ItemDone) {
        let _ = item;
    }
}

/// A page applied, for [`Observer::page`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PageDone {
    /// The side whose changes the page held.
    pub side: Side,
    /// Its items.
    pub items: usize,
    /// Whether the side has more to read now.
    pub more: bool,
    /// Items read so far in this job, per side.
    pub read: PerSide<usize>,
}

/// An item's outcome, for [`Observer::item`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ItemDone {
    /// The side of the changed item.
    pub side: Side,
    /// The item.
    pub id: ItemId,
    /// What happened to it.
    pub outcome: ItemOutcome,
}

/// What happened to one changed item.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ItemOutcome {
    /// The sync's own write coming back, or a change already merged.
    Echo,
    /// Out of scope, or the spec does not create from its side.
    Ignored,
    /// Linked, created, merged or retired as the spec says.
    Synced,
    /// Parked with this error; the others went on.
    Parked(String),
}
