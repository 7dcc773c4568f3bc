//! Comments and work notes: journal entries (`sys_journal_field`) written when a record's
//! `comments` or `work_notes` is set, and the journal's display text. ServiceNow has no
//! comments API of its own: they are read through the Table API.

use chrono::TimeDelta;

#[allow(clippy::wildcard_imports)]
use super::*;

impl Store {
    /// The journal entries of a record, oldest first: (created_on, user_name, element, text).
    pub(crate) fn journal(
        &self,
        sys_id: &str,
        elements: &[&str],
    ) -> Vec<(String, String, String, String)> {
        self.tables
            .get("sys_journal_field")
            .map(|t| {
                t.rows()
                    .filter(|r| {
                        r.get("element_id").is_some_and(|v| v == sys_id)
                            && r.get("element")
                                .is_some_and(|e| elements.contains(&e.as_str()))
                    })
                    .map(|r| {
                        let g = |k: &str| r.get(k).cloned().unwrap_or_default();
                        (
                            g("sys_created_on"),
                            g("sys_created_by"),
                            g("element"),
                            g("value"),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A journal field as display values show it: newest first,
    /// `"{date} - {Full Name} ({Label})\n{text}\n\n"`.
    pub(crate) fn journal_display(
        &self,
        sys_id: &str,
        elements: &[&str],
        offset: TimeDelta,
    ) -> String {
        let mut out = String::new();
        for (at, user, element, text) in self.journal(sys_id, elements).into_iter().rev() {
            let name = self
                .find("sys_user", "user_name", &user)
                .and_then(|r| r.get("name").cloned())
                .unwrap_or(user);
            let label = if element == "work_notes" {
                "Work notes"
            } else {
                "Additional comments"
            };
            out.push_str(&format!(
                "{} - {name} ({label})\n{text}\n\n",
                shift(&at, offset)
            ));
        }
        out
    }
}
