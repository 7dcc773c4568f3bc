//! Process templates: work item types, their fields, states, transitions and reasons.

/// (reference name, display name, type, read-only, allowed values)
pub(crate) type FieldSpec = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);

pub(crate) const PRIORITIES: &[&str] = &["1", "2", "3", "4"];
pub(crate) const SEVERITIES: &[&str] = &["1 - Critical", "2 - High", "3 - Medium", "4 - Low"];

/// Fields every type has.
pub(crate) const COMMON_FIELDS: &[FieldSpec] = &[
    ("System.Id", "ID", "integer", true, &[]),
    ("System.Rev", "Rev", "integer", true, &[]),
    ("System.AreaPath", "Area Path", "treePath", false, &[]),
    (
        "System.IterationPath",
        "Iteration Path",
        "treePath",
        false,
        &[],
    ),
    ("System.AreaId", "Area ID", "integer", false, &[]),
    ("System.IterationId", "Iteration ID", "integer", false, &[]),
    ("System.TeamProject", "Team Project", "string", true, &[]),
    ("System.WorkItemType", "Work Item Type", "string", true, &[]),
    ("System.Title", "Title", "string", false, &[]),
    ("System.Description", "Description", "html", false, &[]),
    ("System.State", "State", "string", false, &[]),
    ("System.Reason", "Reason", "string", false, &[]),
    ("System.AssignedTo", "Assigned To", "identity", false, &[]),
    ("System.CreatedDate", "Created Date", "dateTime", true, &[]),
    ("System.CreatedBy", "Created By", "identity", true, &[]),
    ("System.ChangedDate", "Changed Date", "dateTime", true, &[]),
    ("System.ChangedBy", "Changed By", "identity", true, &[]),
    ("System.CommentCount", "Comment Count", "integer", true, &[]),
    ("System.History", "History", "history", false, &[]),
    ("System.Tags", "Tags", "plainText", false, &[]),
    (
        "Microsoft.VSTS.Common.Priority",
        "Priority",
        "integer",
        false,
        PRIORITIES,
    ),
    (
        "Microsoft.VSTS.Common.StateChangeDate",
        "State Change Date",
        "dateTime",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ActivatedDate",
        "Activated Date",
        "dateTime",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ActivatedBy",
        "Activated By",
        "identity",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ClosedDate",
        "Closed Date",
        "dateTime",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ClosedBy",
        "Closed By",
        "identity",
        true,
        &[],
    ),
];

pub(crate) const BUG_FIELDS: &[FieldSpec] = &[
    (
        "Microsoft.VSTS.Common.ValueArea",
        "Value Area",
        "string",
        false,
        &["Architectural", "Business"],
    ),
    (
        "Microsoft.VSTS.TCM.ReproSteps",
        "Repro Steps",
        "html",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.TCM.SystemInfo",
        "System Info",
        "html",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.Severity",
        "Severity",
        "string",
        false,
        SEVERITIES,
    ),
    (
        "Microsoft.VSTS.Common.ResolvedDate",
        "Resolved Date",
        "dateTime",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ResolvedBy",
        "Resolved By",
        "identity",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ResolvedReason",
        "Resolved Reason",
        "string",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Scheduling.StoryPoints",
        "Story Points",
        "double",
        false,
        &[],
    ),
];

pub(crate) const STORY_FIELDS: &[FieldSpec] = &[
    (
        "Microsoft.VSTS.Common.AcceptanceCriteria",
        "Acceptance Criteria",
        "html",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Scheduling.StoryPoints",
        "Story Points",
        "double",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ValueArea",
        "Value Area",
        "string",
        false,
        &["Architectural", "Business"],
    ),
    (
        "Microsoft.VSTS.Common.ResolvedDate",
        "Resolved Date",
        "dateTime",
        true,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.ResolvedBy",
        "Resolved By",
        "identity",
        true,
        &[],
    ),
];

pub(crate) const TASK_FIELDS: &[FieldSpec] = &[
    (
        "Microsoft.VSTS.Scheduling.RemainingWork",
        "Remaining Work",
        "double",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Scheduling.OriginalEstimate",
        "Original Estimate",
        "double",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Scheduling.CompletedWork",
        "Completed Work",
        "double",
        false,
        &[],
    ),
    (
        "Microsoft.VSTS.Common.Activity",
        "Activity",
        "string",
        false,
        &[
            "Deployment",
            "Design",
            "Development",
            "Documentation",
            "Requirements",
            "Testing",
        ],
    ),
];

/// A transition: from, to, allowed reasons (the first is the default).
pub(crate) type Transition = (&'static str, &'static str, &'static [&'static str]);

/// One work item type of a process.
#[derive(Debug, Clone)]
pub(crate) struct WitType {
    pub(crate) name: &'static str,
    pub(crate) reference: &'static str,
    pub(crate) color: &'static str,
    pub(crate) states: &'static [(&'static str, &'static str, &'static str)],
    pub(crate) initial_reasons: &'static [&'static str],
    pub(crate) transitions: &'static [Transition],
    pub(crate) extra_fields: &'static [FieldSpec],
}

impl WitType {
    pub(crate) fn initial_state(&self) -> &'static str {
        self.states[0].0
    }

    pub(crate) fn reasons(&self, from: &str, to: &str) -> Option<&'static [&'static str]> {
        if from.is_empty() {
            return (to == self.initial_state()).then_some(self.initial_reasons);
        }
        self.transitions
            .iter()
            .find(|(f, t, _)| f.eq_ignore_ascii_case(from) && t.eq_ignore_ascii_case(to))
            .map(|(_, _, r)| *r)
    }

    pub(crate) fn state_named(&self, s: &str) -> Option<&'static str> {
        self.states
            .iter()
            .map(|(n, _, _)| *n)
            .find(|n| n.eq_ignore_ascii_case(s))
    }

    pub(crate) fn category(&self, state: &str) -> &'static str {
        self.states
            .iter()
            .find(|(n, _, _)| *n == state)
            .map_or("Proposed", |(_, _, c)| c)
    }

    /// Whether the type's `alwaysRequired` flag is set for a field, as real process templates
    /// set it: the title, and the fields the server fills itself on create (state, area and
    /// iteration ids, value area).
    pub(crate) fn always_required(&self, field: &str) -> bool {
        matches!(
            field,
            "System.Title"
                | "System.State"
                | "System.AreaId"
                | "System.IterationId"
                | "Microsoft.VSTS.Common.ValueArea"
        ) && self.fields().any(|f| f.0 == field)
    }

    /// The default a field's rules give it on create, as the type's field list reports it.
    pub(crate) fn default_value(&self, field: &str) -> Option<&'static str> {
        match field {
            "System.State" => Some(self.initial_state()),
            "Microsoft.VSTS.Common.Priority" => Some("2"),
            "Microsoft.VSTS.Common.Severity" => Some("3 - Medium"),
            "Microsoft.VSTS.Common.ValueArea" => Some("Business"),
            _ => None,
        }
        .filter(|_| self.fields().any(|f| f.0 == field))
    }

    pub(crate) fn fields(&self) -> impl Iterator<Item = &'static FieldSpec> + '_ {
        COMMON_FIELDS.iter().chain(self.extra_fields.iter())
    }
}

const AGILE_STATES_4: &[(&str, &str, &str)] = &[
    ("New", "b2b2b2", "Proposed"),
    ("Active", "007acc", "InProgress"),
    ("Resolved", "ff9d00", "Resolved"),
    ("Closed", "339933", "Completed"),
];
const AGILE_STATES_5: &[(&str, &str, &str)] = &[
    ("New", "b2b2b2", "Proposed"),
    ("Active", "007acc", "InProgress"),
    ("Resolved", "ff9d00", "Resolved"),
    ("Closed", "339933", "Completed"),
    ("Removed", "ffffff", "Removed"),
];
const AGILE_TASK_STATES: &[(&str, &str, &str)] = &[
    ("New", "b2b2b2", "Proposed"),
    ("Active", "007acc", "InProgress"),
    ("Closed", "339933", "Completed"),
    ("Removed", "ffffff", "Removed"),
];

const FIXES: &[&str] = &[
    "Fixed",
    "As Designed",
    "Cannot Reproduce",
    "Deferred",
    "Duplicate",
    "Obsolete",
];

pub(crate) const AGILE: &[WitType] = &[
    WitType {
        name: "Bug",
        reference: "Microsoft.VSTS.WorkItemTypes.Bug",
        color: "CC293D",
        states: AGILE_STATES_4,
        initial_reasons: &["New", "Build Failure"],
        transitions: &[
            ("New", "Active", &["Approved", "Investigate"]),
            ("New", "Resolved", FIXES),
            (
                "New",
                "Closed",
                &[
                    "Cannot Reproduce",
                    "Deferred",
                    "Duplicate",
                    "Obsolete",
                    "As Designed",
                ],
            ),
            ("Active", "New", &["Deferred", "Investigation Complete"]),
            ("Active", "Resolved", FIXES),
            (
                "Active",
                "Closed",
                &[
                    "Cannot Reproduce",
                    "Deferred",
                    "Duplicate",
                    "Obsolete",
                    "As Designed",
                ],
            ),
            ("Resolved", "Active", &["Not fixed", "Test Failed"]),
            ("Resolved", "Closed", &["Verified"]),
            ("Closed", "Active", &["Reactivated", "Regression"]),
        ],
        extra_fields: BUG_FIELDS,
    },
    WitType {
        name: "User Story",
        reference: "Microsoft.VSTS.WorkItemTypes.UserStory",
        color: "009CCC",
        states: AGILE_STATES_5,
        initial_reasons: &["New"],
        transitions: &[
            ("New", "Active", &["Implementation started"]),
            ("New", "Closed", &["Acceptance tests pass"]),
            ("New", "Removed", &["Removed from the backlog"]),
            ("Active", "New", &["Implementation halted"]),
            ("Active", "Resolved", &["Code complete and unit tests pass"]),
            ("Active", "Closed", &["Acceptance tests pass"]),
            ("Active", "Removed", &["Removed from the backlog"]),
            ("Resolved", "Active", &["Acceptance tests fail"]),
            ("Resolved", "Closed", &["Acceptance tests pass"]),
            ("Closed", "Active", &["Reconsidering the User Story"]),
            ("Removed", "New", &["Reconsidering the User Story"]),
        ],
        extra_fields: STORY_FIELDS,
    },
    WitType {
        name: "Task",
        reference: "Microsoft.VSTS.WorkItemTypes.Task",
        color: "F2CB1D",
        states: AGILE_TASK_STATES,
        initial_reasons: &["New"],
        transitions: &[
            ("New", "Active", &["Work started"]),
            (
                "New",
                "Closed",
                &["Completed", "Cut", "Deferred", "Obsolete"],
            ),
            ("New", "Removed", &["Removed from the backlog"]),
            ("Active", "New", &["Work halted"]),
            (
                "Active",
                "Closed",
                &["Completed", "Cut", "Deferred", "Obsolete"],
            ),
            ("Active", "Removed", &["Removed from the backlog"]),
            ("Closed", "Active", &["Reactivated"]),
            ("Removed", "New", &["Reconsidering"]),
        ],
        extra_fields: TASK_FIELDS,
    },
    WitType {
        name: "Feature",
        reference: "Microsoft.VSTS.WorkItemTypes.Feature",
        color: "773B93",
        states: AGILE_STATES_5,
        initial_reasons: &["New"],
        transitions: &[
            ("New", "Active", &["Implementation started"]),
            ("New", "Removed", &["Removed from the backlog"]),
            ("Active", "New", &["Implementation halted"]),
            ("Active", "Resolved", &["Stories complete"]),
            ("Active", "Removed", &["Removed from the backlog"]),
            ("Resolved", "Active", &["Acceptance tests fail"]),
            ("Resolved", "Closed", &["Acceptance tests pass"]),
            ("Closed", "Active", &["Reconsidering the Feature"]),
            ("Removed", "New", &["Reconsidering the Feature"]),
        ],
        extra_fields: STORY_FIELDS,
    },
];

const SCRUM_BACKLOG: &[(&str, &str, &str)] = &[
    ("New", "b2b2b2", "Proposed"),
    ("Approved", "5688e0", "Proposed"),
    ("Committed", "007acc", "InProgress"),
    ("Done", "339933", "Completed"),
    ("Removed", "ffffff", "Removed"),
];
const SCRUM_FLOW: &[Transition] = &[
    ("New", "Approved", &["Approved by the Product Owner"]),
    ("New", "Removed", &["Removed from the backlog"]),
    ("Approved", "Committed", &["Commitment made by the team"]),
    ("Approved", "New", &["Reconsidering backlog item"]),
    ("Approved", "Removed", &["Removed from the backlog"]),
    ("Committed", "Done", &["Work finished"]),
    ("Committed", "Approved", &["Commitment undone"]),
    ("Done", "Committed", &["Additional work found"]),
    ("Removed", "New", &["Reconsidering backlog item"]),
];

pub(crate) const SCRUM: &[WitType] = &[
    WitType {
        name: "Bug",
        reference: "Microsoft.VSTS.WorkItemTypes.Bug",
        color: "CC293D",
        states: SCRUM_BACKLOG,
        initial_reasons: &["New defect reported"],
        transitions: SCRUM_FLOW,
        extra_fields: BUG_FIELDS,
    },
    WitType {
        name: "Product Backlog Item",
        reference: "Microsoft.VSTS.WorkItemTypes.ProductBacklogItem",
        color: "009CCC",
        states: SCRUM_BACKLOG,
        initial_reasons: &["New backlog item"],
        transitions: SCRUM_FLOW,
        extra_fields: STORY_FIELDS,
    },
    WitType {
        name: "Task",
        reference: "Microsoft.VSTS.WorkItemTypes.Task",
        color: "F2CB1D",
        states: &[
            ("To Do", "b2b2b2", "Proposed"),
            ("In Progress", "007acc", "InProgress"),
            ("Done", "339933", "Completed"),
            ("Removed", "ffffff", "Removed"),
        ],
        initial_reasons: &["New task"],
        transitions: &[
            ("To Do", "In Progress", &["Work started"]),
            ("To Do", "Done", &["Work finished"]),
            ("To Do", "Removed", &["Removed from the backlog"]),
            ("In Progress", "To Do", &["Work halted"]),
            ("In Progress", "Done", &["Work finished"]),
            ("Done", "In Progress", &["Additional work found"]),
            ("Removed", "To Do", &["Reconsidering"]),
        ],
        extra_fields: TASK_FIELDS,
    },
];

const CMMI_STATES: &[(&str, &str, &str)] = &[
    ("Proposed", "b2b2b2", "Proposed"),
    ("Active", "007acc", "InProgress"),
    ("Resolved", "ff9d00", "Resolved"),
    ("Closed", "339933", "Completed"),
];
const CMMI_FLOW: &[Transition] = &[
    ("Proposed", "Active", &["Accepted", "Investigate"]),
    (
        "Proposed",
        "Closed",
        &["Rejected", "Duplicate", "Cannot Reproduce"],
    ),
    ("Active", "Proposed", &["Investigation Complete"]),
    (
        "Active",
        "Resolved",
        &[
            "Fixed",
            "As Designed",
            "Cannot Reproduce",
            "Deferred",
            "Duplicate",
            "Obsolete",
        ],
    ),
    ("Active", "Closed", &["Rejected", "Deferred", "Duplicate"]),
    ("Resolved", "Active", &["Not Fixed", "Test Failed"]),
    ("Resolved", "Closed", &["Verified"]),
    ("Closed", "Active", &["Reactivated", "Regression"]),
];

pub(crate) const CMMI: &[WitType] = &[
    WitType {
        name: "Bug",
        reference: "Microsoft.VSTS.WorkItemTypes.Bug",
        color: "CC293D",
        states: CMMI_STATES,
        initial_reasons: &["New"],
        transitions: CMMI_FLOW,
        extra_fields: BUG_FIELDS,
    },
    WitType {
        name: "Requirement",
        reference: "Microsoft.VSTS.WorkItemTypes.Requirement",
        color: "009CCC",
        states: CMMI_STATES,
        initial_reasons: &["New"],
        transitions: CMMI_FLOW,
        extra_fields: STORY_FIELDS,
    },
    WitType {
        name: "Task",
        reference: "Microsoft.VSTS.WorkItemTypes.Task",
        color: "F2CB1D",
        states: CMMI_STATES,
        initial_reasons: &["New"],
        transitions: CMMI_FLOW,
        extra_fields: TASK_FIELDS,
    },
];
