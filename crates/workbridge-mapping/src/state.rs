//! The state rule planned as a path of transitions through the target workflow.

#[allow(clippy::wildcard_imports)]
use super::*;

impl Mapping {
    /// The steps that move the target's state to the one `source`'s state maps to, through the
    /// target workflow's shortest path, each with the fields its transition requires (from the
    /// spec's `supply_*` tables, templates rendered over `source`). Empty when nothing is to do.
    ///
    /// # Errors
    /// [`ErrorKind::InvalidTransition`](workbridge_core::ErrorKind::InvalidTransition) naming from and to when the workflow has no path, or a
    /// transition requires a field the spec does not supply.
    pub fn plan_state(
        &self,
        d: Direction,
        source: &FieldMap,
        target_current: &FieldMap,
        graph: Option<&TransitionGraph>,
    ) -> Result<Vec<TransitionStep>> {
        self.plan_state_rendering(d, source, source, target_current, graph)
    }

    /// [`Mapping::plan_state`] with the templates of the supplied fields rendered from
    /// `render_from` — the source as it will be once the same round's own writes to it are
    /// applied — while the state to reach is still read from `source`.
    ///
    /// # Errors
    /// As [`Mapping::plan_state`].
    pub fn plan_state_rendering(
        &self,
        d: Direction,
        source: &FieldMap,
        render_from: &FieldMap,
        target_current: &FieldMap,
        graph: Option<&TransitionGraph>,
    ) -> Result<Vec<TransitionStep>> {
        let Some(s) = self.state.as_ref().filter(|s| s.flow.allows(d)) else {
            return Ok(Vec::new());
        };
        let (src_field, dst_field, table, supply) = match d {
            Direction::LeftToRight => (&s.left, &s.right, &s.forward, &s.supply_right),
            Direction::RightToLeft => (&s.right, &s.left, &s.backward, &s.supply_left),
        };
        let Some(from_source) = source
            .get(src_field.as_str())
            .filter(|v| !v.is_empty())
            .map(value_text)
        else {
            return Ok(Vec::new());
        };
        let Some(wanted) = table.get(&from_source).cloned() else {
            return Ok(Vec::new());
        };
        let current = target_current
            .get(dst_field.as_str())
            .map(value_text)
            .unwrap_or_default();
        if current == wanted {
            return Ok(Vec::new());
        }
        let path = match graph {
            Some(g) if !g.transitions.is_empty() => {
                g.shortest_path(&current, &wanted).ok_or_else(|| {
                    Error::invalid_transition(
                        &current,
                        &wanted,
                        format!(
                            "line {}: the target workflow has no path between these states",
                            s.line
                        ),
                    )
                })?
            }
            _ => vec![wanted],
        };
        let mut steps = Vec::new();
        let mut prev = current;
        let mut have: FieldMap = target_current.clone();
        for state in path {
            let mut fields =
                FieldMap::new().with(dst_field.clone(), FieldValue::Choice(state.clone()));
            if let Some(extra) = supply.get(&state) {
                for (k, v) in extra {
                    let v = match v {
                        FieldValue::Text(t) if t.contains('{') => {
                            FieldValue::Text(render_template(t, render_from))
                        }
                        other => other.clone(),
                    };
                    fields.insert(k.clone(), v);
                }
            }
            if let Some(g) = graph {
                let mut after = have.clone();
                after.merge(&fields);
                let missing = g.missing_for(&prev, &state, &after);
                if !missing.is_empty() {
                    return Err(Error::invalid_transition(
                        &prev,
                        &state,
                        format!(
                            "line {}: the transition requires {}; supply it in the spec's state table",
                            s.line,
                            missing.join(", ")
                        ),
                    ));
                }
            }
            have.merge(&fields);
            prev = state.clone();
            steps.push(TransitionStep { state, fields });
        }
        Ok(steps)
    }
}
