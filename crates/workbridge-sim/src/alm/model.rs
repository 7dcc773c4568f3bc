//! The ALM project model: entity types, fields, lists, users.

/// (name, label, type, required, editable, list, history)
pub(crate) type FieldSpec = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    bool,
    Option<&'static str>,
    bool,
);

pub(crate) const DEFECT_FIELDS: &[FieldSpec] = &[
    ("id", "Defect ID", "Number", false, false, None, false),
    ("name", "Summary", "String", true, true, None, true),
    (
        "description",
        "Description",
        "Memo",
        false,
        true,
        None,
        false,
    ),
    ("dev-comments", "Comments", "Memo", false, true, None, false),
    (
        "status",
        "Status",
        "LookupList",
        false,
        true,
        Some("Bug Status"),
        true,
    ),
    (
        "severity",
        "Severity",
        "LookupList",
        true,
        true,
        Some("Severity"),
        true,
    ),
    (
        "priority",
        "Priority",
        "LookupList",
        false,
        true,
        Some("Priority"),
        true,
    ),
    ("owner", "Assigned To", "UsersList", false, true, None, true),
    (
        "detected-by",
        "Detected By",
        "UsersList",
        true,
        true,
        None,
        false,
    ),
    (
        "creation-time",
        "Detected on Date",
        "Date",
        true,
        true,
        None,
        false,
    ),
    (
        "closing-date",
        "Closing Date",
        "Date",
        false,
        true,
        None,
        true,
    ),
    (
        "reproducible",
        "Reproducible",
        "LookupList",
        false,
        true,
        Some("YesNo"),
        false,
    ),
    (
        "last-modified",
        "Modified",
        "DateTime",
        false,
        false,
        None,
        false,
    ),
    (
        "ver-stamp",
        "Version Stamp",
        "Number",
        false,
        false,
        None,
        false,
    ),
    (
        "attachment",
        "Attachment",
        "String",
        false,
        false,
        None,
        false,
    ),
    (
        "user-01",
        "Component",
        "LookupList",
        false,
        true,
        Some("Components"),
        true,
    ),
    (
        "user-02",
        "ServiceNow Ticket",
        "String",
        false,
        true,
        None,
        false,
    ),
    (
        "user-03",
        "Azure DevOps Bug",
        "String",
        false,
        true,
        None,
        false,
    ),
    // A user field the project adds for the sync's correlation keys.
    ("user-04", "Sync Key", "String", false, true, None, false),
];

pub(crate) const REQUIREMENT_FIELDS: &[FieldSpec] = &[
    ("id", "Req ID", "Number", false, false, None, false),
    ("name", "Name", "String", true, true, None, true),
    ("parent-id", "Parent ID", "Number", true, true, None, false),
    ("type-id", "Type", "Number", true, true, None, false),
    (
        "description",
        "Description",
        "Memo",
        false,
        true,
        None,
        false,
    ),
    ("comments", "Comments", "Memo", false, true, None, false),
    (
        "req-reviewed",
        "Reviewed",
        "LookupList",
        false,
        true,
        Some("Requirement Reviewed"),
        true,
    ),
    ("owner", "Author", "UsersList", false, true, None, true),
    (
        "status",
        "Direct Cover Status",
        "String",
        false,
        false,
        None,
        false,
    ),
    (
        "last-modified",
        "Modified",
        "DateTime",
        false,
        false,
        None,
        false,
    ),
    (
        "ver-stamp",
        "Version Stamp",
        "Number",
        false,
        false,
        None,
        false,
    ),
    (
        "user-01",
        "ServiceNow Ticket",
        "String",
        false,
        true,
        None,
        false,
    ),
];

pub(crate) const TEST_FIELDS: &[FieldSpec] = &[
    ("id", "Test ID", "Number", false, false, None, false),
    ("name", "Test Name", "String", true, true, None, true),
    ("parent-id", "Subject", "Number", true, true, None, false),
    ("subtype-id", "Type", "String", true, true, None, false),
    (
        "description",
        "Description",
        "Memo",
        false,
        true,
        None,
        false,
    ),
    (
        "status",
        "Status",
        "LookupList",
        false,
        true,
        Some("Test Status"),
        true,
    ),
    ("owner", "Designer", "UsersList", false, true, None, true),
    (
        "last-modified",
        "Modified",
        "DateTime",
        false,
        false,
        None,
        false,
    ),
    (
        "ver-stamp",
        "Version Stamp",
        "Number",
        false,
        false,
        None,
        false,
    ),
    (
        "user-01",
        "ServiceNow Ticket",
        "String",
        false,
        true,
        None,
        false,
    ),
];

/// (name, id, logical name, items)
pub(crate) const LISTS: &[(&str, u32, &str, &[&str])] = &[
    ("YesNo", 1, "hp.qc.yes-no", &["Y", "N"]),
    (
        "Severity",
        2,
        "hp.qc.severity",
        &["1-Low", "2-Medium", "3-High", "4-Very High", "5-Urgent"],
    ),
    (
        "Priority",
        3,
        "hp.qc.priority",
        &["1-Low", "2-Medium", "3-High", "4-Very High", "5-Urgent"],
    ),
    (
        "Test Status",
        5,
        "hp.qc.test-status",
        &["Design", "Imported", "Ready", "Repair"],
    ),
    (
        "Requirement Reviewed",
        6,
        "hp.qc.req-reviewed",
        &["Not Reviewed", "Reviewed"],
    ),
    (
        "Bug Status",
        237,
        "hp.qc.bug-status",
        &["New", "Open", "Fixed", "Closed", "Rejected", "Reopen"],
    ),
    (
        "Components",
        300,
        "user.components",
        &["Billing", "Checkout", "Login", "Reporting"],
    ),
];

/// Defect status transitions enforced when the workflow is on.
pub(crate) const DEFECT_TRANSITIONS: &[(&str, &str)] = &[
    ("New", "Open"),
    ("New", "Rejected"),
    ("Open", "Fixed"),
    ("Open", "Rejected"),
    ("Fixed", "Closed"),
    ("Fixed", "Reopen"),
    ("Closed", "Reopen"),
    ("Reopen", "Fixed"),
    ("Reopen", "Open"),
    ("Rejected", "Reopen"),
];

/// The entity type of a collection, and its fields.
pub(crate) fn entity_type(collection: &str) -> Option<(&'static str, &'static [FieldSpec])> {
    match collection {
        "defects" => Some(("defect", DEFECT_FIELDS)),
        "requirements" => Some(("requirement", REQUIREMENT_FIELDS)),
        "tests" => Some(("test", TEST_FIELDS)),
        _ => None,
    }
}

/// The collection of an entity type.
pub(crate) fn collection_of(entity: &str) -> Option<&'static str> {
    match entity {
        "defect" => Some("defects"),
        "requirement" => Some("requirements"),
        "test" => Some("tests"),
        _ => None,
    }
}

pub(crate) const SUMMARIES: &[&str] = &[
    "Invoice total rounds incorrectly",
    "Checkout button disabled after coupon",
    "Report export times out",
    "Password reset email not sent",
    "Login page shows stack trace",
    "Date picker ignores locale",
];
