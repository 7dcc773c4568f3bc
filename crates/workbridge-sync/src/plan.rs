//! The pure three-way merge: [`plan`] decides, from two linked items and their baselines, what
//! to write to each side. No I/O; the kernel applies the plan, and callers can show it as a
//! dry run.

use std::fmt;

use workbridge_core::{Error, FieldMap, FieldName, FieldValue, TransitionGraph, WorkItem};
use workbridge_mapping::{ConflictPolicy, Direction, Mapping, TransitionStep};

use crate::store::Side;

/// A field both sides changed since the last sync, to different values, under the `error`
/// policy: nothing is written to it, and it is reported until someone makes the sides agree.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FieldConflict {
    /// The side the field is written on.
    pub side: Side,
    /// The field.
    pub field: FieldName,
    /// The value the other side maps to.
    pub incoming: Option<FieldValue>,
    /// The value the side holds now.
    pub current: Option<FieldValue>,
}

impl fmt::Display for FieldConflict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show = |v: &Option<FieldValue>| {
            v.as_ref()
                .map_or_else(|| "(empty)".to_owned(), |v| format!("{v:?}"))
        };
        write!(
            f,
            "{} field {} changed on both sides: it holds {} and the other side maps to {}",
            self.side,
            self.field,
            show(&self.current),
            show(&self.incoming)
        )
    }
}

/// The writes one side receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SideWrites {
    /// Fields to write (in one update, with the first transition step).
    pub fields: FieldMap,
    /// State transitions to walk, in order (each one update).
    pub steps: Vec<TransitionStep>,
    /// Fields whose baseline must keep its old value (unresolved conflicts).
    pub keep_baseline: Vec<FieldName>,
}

impl SideWrites {
    /// Whether nothing is to be written.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty() && self.steps.is_empty()
    }

    /// The updates to send, in order: the fields with the first step, then one per further step.
    pub fn updates(&self) -> Vec<FieldMap> {
        let mut out = Vec::new();
        let mut first = self.fields.clone();
        let mut steps = self.steps.iter();
        if let Some(s) = steps.next() {
            first.merge(&s.fields);
        }
        if !first.is_empty() {
            out.push(first);
        }
        out.extend(steps.map(|s| s.fields.clone()));
        out
    }
}

/// What a round does to one linked pair.
#[derive(Debug, Clone, Default)]
pub struct SyncPlan {
    /// Writes to the left item.
    pub left: SideWrites,
    /// Writes to the right item.
    pub right: SideWrites,
    /// Same-field conflicts under the `error` policy.
    pub conflicts: Vec<FieldConflict>,
    /// Values that could not be mapped and state changes the workflow cannot make; the other
    /// fields still flow.
    pub errors: Vec<Error>,
}

impl SyncPlan {
    /// Whether nothing is to be written on either side.
    pub fn is_empty(&self) -> bool {
        self.left.is_empty() && self.right.is_empty()
    }

    /// The writes of one side.
    pub fn side(&self, side: Side) -> &SideWrites {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
        }
    }
}

/// What [`plan`] reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    /// The left item now.
    pub left: &'a WorkItem,
    /// The right item now.
    pub right: &'a WorkItem,
    /// The left fields after the last sync (empty when the pair was never synced).
    pub left_baseline: &'a FieldMap,
    /// The right fields after the last sync.
    pub right_baseline: &'a FieldMap,
    /// The left workflow, for state changes.
    pub left_workflow: Option<&'a TransitionGraph>,
    /// The right workflow.
    pub right_workflow: Option<&'a TransitionGraph>,
}

/// Two values are the same: [`workbridge_core::same_value`], under the name the kernel has
/// always exported.
pub use workbridge_core::same_value as same;

/// The three-way merge of a linked pair.
///
/// For each direction, a target field is written only when its source changed since the
/// baseline (mapped through the spec, so a change in a field no rule reads is no change) and
/// the target does not already hold the value. When the target changed that field too, the
/// rule's conflict policy decides; `newest` compares the items' change times (ties go to the
/// left). The state rule is planned as a path of transitions through the target workflow.
///
/// ```
/// use workbridge_core::{FieldMap, WorkItem, ItemId, Version};
/// use workbridge_mapping::Mapping;
/// use workbridge_sync::{plan, PlanInput};
///
/// let mapping = Mapping::from_toml_str(r#"
/// [[field]]
/// left = "short_description"
/// right = "System.Title"
/// "#).unwrap();
/// let t = chrono::Utc::now();
/// let left = WorkItem::new(ItemId::new("1"), "incident".into(), Version::new("2"), t,
///     FieldMap::new().with("short_description", "Printer on fire"));
/// let right = WorkItem::new(ItemId::new("7"), "Bug".into(), Version::new("1"), t,
///     FieldMap::new().with("System.Title", "Printer jammed"));
/// let base_l = FieldMap::new().with("short_description", "Printer jammed");
/// let base_r = right.fields.clone();
/// let p = plan(&mapping, PlanInput { left: &left, right: &right, left_baseline: &base_l,
///     right_baseline: &base_r, left_workflow: None, right_workflow: None });
/// assert_eq!(p.right.fields.get("System.Title").and_then(|v| v.as_str()), Some("Printer on fire"));
/// assert!(p.left.is_empty());
/// ```
pub fn plan(mapping: &Mapping, input: PlanInput<'_>) -> SyncPlan {
    let mut out = SyncPlan::default();
    let (mut right, mut c1, e1, keep_left) = half(mapping, Direction::LeftToRight, &input);
    let (mut left, c2, e2, keep_right) = half(mapping, Direction::RightToLeft, &input);
    // The templates of a state change's supplied fields name the source as it will be after
    // this plan's own writes to it (a close note quoting the Bug's title quotes the title the
    // same round gives the Bug).
    restate(
        mapping,
        Direction::LeftToRight,
        &input,
        &mut right,
        &left.fields,
    );
    restate(
        mapping,
        Direction::RightToLeft,
        &input,
        &mut left,
        &right.fields,
    );
    left.keep_baseline.extend(keep_left);
    right.keep_baseline.extend(keep_right);
    out.right = right;
    out.left = left;
    c1.extend(c2);
    out.conflicts = c1;
    out.errors = e1.into_iter().chain(e2).collect();
    out
}

type Half = (SideWrites, Vec<FieldConflict>, Vec<Error>, Vec<FieldName>);

/// Renders the supplied fields of `w`'s state steps again, from the source with `to_source`
/// (the writes planned for the source) applied.
fn restate(
    mapping: &Mapping,
    d: Direction,
    i: &PlanInput<'_>,
    w: &mut SideWrites,
    to_source: &FieldMap,
) {
    if w.steps.is_empty() || to_source.is_empty() {
        return;
    }
    let (src, dst, graph) = match d {
        Direction::LeftToRight => (i.left, i.right, i.right_workflow),
        Direction::RightToLeft => (i.right, i.left, i.left_workflow),
    };
    let mut render_from = src.fields.clone();
    render_from.merge(to_source);
    let mut after = dst.fields.clone();
    after.merge(&w.fields);
    if let Ok(steps) = mapping.plan_state_rendering(d, &src.fields, &render_from, &after, graph) {
        w.steps = steps;
    }
}

fn half(mapping: &Mapping, d: Direction, i: &PlanInput<'_>) -> Half {
    let (src, src_base, dst, dst_base, graph, dst_side) = match d {
        Direction::LeftToRight => (
            i.left,
            i.left_baseline,
            i.right,
            i.right_baseline,
            i.right_workflow,
            Side::Right,
        ),
        Direction::RightToLeft => (
            i.right,
            i.right_baseline,
            i.left,
            i.left_baseline,
            i.left_workflow,
            Side::Left,
        ),
    };
    let mut w = SideWrites::default();
    let mut conflicts = Vec::new();
    let mut src_keep = Vec::new();
    let now = mapping.map(d, &src.fields);
    // No baseline (a relinked or newly linked pair) means every value is news: mapping an
    // empty item would produce defaults and constants that look like unchanged values.
    let base = (!src_base.is_empty()).then(|| mapping.map(d, src_base));
    let mut errors = now.errors;
    // Whether the source side wins a same-field conflict on `field`.
    let source_wins = |field: &str| match mapping.conflict_policy(d, field) {
        ConflictPolicy::LeftWins => Some(d == Direction::LeftToRight),
        ConflictPolicy::RightWins => Some(d == Direction::RightToLeft),
        ConflictPolicy::Newest => Some(match d {
            Direction::LeftToRight => src.changed_at >= dst.changed_at,
            Direction::RightToLeft => src.changed_at > dst.changed_at,
        }),
        ConflictPolicy::Error => None,
    };
    for (field, value) in now.fields.iter() {
        if base
            .as_ref()
            .is_some_and(|b| same(Some(value), b.fields.get(field.as_str())))
        {
            continue; // the source did not change what this field is made of
        }
        let current = dst.fields.get(field.as_str());
        if same(Some(value), current) {
            continue; // already there: never send a no-op write
        }
        if same(current, dst_base.get(field.as_str())) {
            w.fields.insert(field.clone(), value.clone());
            continue;
        }
        match source_wins(field.as_str()) {
            Some(true) => {
                w.fields.insert(field.clone(), value.clone());
            }
            Some(false) => {}
            None => {
                w.keep_baseline.push(field.clone());
                if let Some(source) = now.provenance.get(field).and_then(|p| p.source.clone()) {
                    src_keep.push(source);
                }
                conflicts.push(FieldConflict {
                    side: dst_side,
                    field: field.clone(),
                    incoming: Some(value.clone()),
                    current: current.cloned(),
                });
            }
        }
    }
    if let Some((sf, df)) = mapping.state().and_then(|s| s.fields(d)) {
        let src_changed = !same(src.fields.get(sf.as_str()), src_base.get(sf.as_str()));
        let dst_changed = !same(dst.fields.get(df.as_str()), dst_base.get(df.as_str()));
        if src_changed && (!dst_changed || source_wins(df.as_str()) == Some(true)) {
            let mut after = dst.fields.clone();
            after.merge(&w.fields);
            match mapping.plan_state(d, &src.fields, &after, graph) {
                Ok(steps) => {
                    if !steps.is_empty() {
                        w.fields.remove(df.as_str());
                    }
                    w.steps = steps;
                }
                Err(e) => errors.push(e.with_field(df.clone())),
            }
        }
    }
    (w, conflicts, errors, src_keep)
}
