use chrono::{NaiveDate, TimeZone, Utc};
use proptest::prelude::*;
use workbridge_core::{FieldDef, FieldKind, FieldMap, FieldValue, Person, Schema, TransitionGraph};
use workbridge_mapping::{ConflictPolicy, Direction, Directory, Mapping};

fn m(spec: &str) -> Mapping {
    Mapping::from_toml_str(spec).unwrap_or_else(|e| panic!("{e}"))
}

#[test]
fn directions_and_create_only_rules() {
    let map = m(r#"
[[field]]
left = "a"
right = "A"

[[field]]
left = "b"
right = "B"
direction = "left-to-right"

[[field]]
left = "c"
right = "C"
direction = "right-to-left"

[[field]]
left = "d"
right = "D"
direction = "left-to-right"
on = "create"
"#);
    let left = FieldMap::new()
        .with("a", "1")
        .with("b", "2")
        .with("c", "3")
        .with("d", "4");
    let r = map.map(Direction::LeftToRight, &left);
    assert_eq!(
        r.fields.names().map(|n| n.as_str()).collect::<Vec<_>>(),
        ["A", "B"]
    );
    let r = map.map_for_create(Direction::LeftToRight, &left);
    assert_eq!(r.fields.get("D"), Some(&FieldValue::Text("4".into())));
    let right = FieldMap::new().with("A", "x").with("B", "y").with("C", "z");
    let r = map.map(Direction::RightToLeft, &right);
    assert_eq!(
        r.fields.names().map(|n| n.as_str()).collect::<Vec<_>>(),
        ["a", "c"]
    );
    assert_eq!(
        r.provenance["c"].source.as_ref().map(|s| s.as_str()),
        Some("C")
    );
}

#[test]
fn constants_defaults_templates_truncation() {
    let map = m(r#"
[[field]]
right = "Source"
constant = "ServiceNow"
direction = "left-to-right"

[[field]]
left = "category"
right = "Area"
default = "General"

[[field]]
right = "Title"
template = "{number}: {short_description}"
direction = "left-to-right"
truncate = 16
marker = "..."
"#);
    let r = map.map(
        Direction::LeftToRight,
        &FieldMap::new()
            .with("number", "INC0010001")
            .with("short_description", "Mail down"),
    );
    assert_eq!(
        r.fields.get("Source"),
        Some(&FieldValue::Text("ServiceNow".into()))
    );
    assert_eq!(
        r.fields.get("Area"),
        Some(&FieldValue::Text("General".into()))
    );
    assert_eq!(r.provenance["Area"].kind, "default");
    assert_eq!(
        r.fields.get("Title"),
        Some(&FieldValue::Text("INC0010001: M...".into()))
    );
    assert_eq!(r.provenance["Title"].kind, "template");
}

#[test]
fn value_maps_fallbacks_groups_and_case() {
    let map = m(r#"
[[field]]
left = "state"
right = "State"
map = { "1" = "New", "2" = "Active" }

[[field]]
left = "impact"
right = "Impact"
direction = "left-to-right"
groups = { High = ["1", "2"], Low = ["3"] }
fallback = "skip"

[[field]]
left = "cat"
right = "Cat"
direction = "left-to-right"
map = { software = "SW" }
case = "insensitive"
fallback = "error"

[[field]]
left = "pri"
right = "Pri"
direction = "left-to-right"
map = { "1" = "P1" }
fallback = "default"
default = "P3"
"#);
    let r = map.map(
        Direction::LeftToRight,
        &FieldMap::new()
            .with("state", "2")
            .with("impact", "2")
            .with("cat", "SOFTWARE")
            .with("pri", "9"),
    );
    assert_eq!(
        r.fields.get("State"),
        Some(&FieldValue::Text("Active".into()))
    );
    assert_eq!(
        r.fields.get("Impact"),
        Some(&FieldValue::Text("High".into()))
    );
    assert_eq!(r.fields.get("Cat"), Some(&FieldValue::Text("SW".into())));
    assert_eq!(r.fields.get("Pri"), Some(&FieldValue::Text("P3".into())));
    // The reverse of an invertible map is derived.
    let back = map.map(
        Direction::RightToLeft,
        &FieldMap::new().with("State", "New"),
    );
    assert_eq!(
        back.fields.get("state"),
        Some(&FieldValue::Text("1".into()))
    );
    // Unmapped: keep, skip, error.
    let r = map.map(
        Direction::LeftToRight,
        &FieldMap::new()
            .with("state", "7")
            .with("impact", "9")
            .with("cat", "hardware"),
    );
    assert_eq!(r.fields.get("State"), Some(&FieldValue::Text("7".into())));
    assert!(r.fields.get("Impact").is_none());
    assert_eq!(r.skipped[0].0.as_str(), "Impact");
    assert_eq!(
        (r.errors[0].field().map(|f| f.as_str()), r.errors[0].value()),
        (Some("Cat"), Some("hardware"))
    );
    assert!(r.fields.get("Cat").is_none());
}

/// A named zone follows daylight saving: with `America/Los_Angeles` a ticket opened at
/// 07:30 UTC in January is on the previous day (UTC-8), and at 06:30 UTC in July too
/// (UTC-7); a fixed `-07:00` puts the January one on the wrong day.
#[test]
fn a_named_zone_follows_daylight_saving() {
    let rule = |tz: &str| {
        m(&format!(
            "[[field]]\nleft = \"opened\"\nright = \"Detected\"\ntransform = \"datetime-to-date\"\ntimezone = \"{tz}\"\n"
        ))
    };
    let day = |map: &Mapping, t| {
        map.map(Direction::LeftToRight, &FieldMap::new().with("opened", t))
            .fields
            .get("Detected")
            .cloned()
    };
    let date = |y, m, d| Some(FieldValue::Date(NaiveDate::from_ymd_opt(y, m, d).unwrap()));
    let winter = Utc.with_ymd_and_hms(2026, 1, 15, 7, 30, 0).unwrap();
    let summer = Utc.with_ymd_and_hms(2026, 7, 1, 6, 30, 0).unwrap();
    let named = rule("America/Los_Angeles");
    assert_eq!(day(&named, winter), date(2026, 1, 14));
    assert_eq!(day(&named, summer), date(2026, 6, 30));
    let fixed = rule("-07:00");
    assert_eq!(
        day(&fixed, winter),
        date(2026, 1, 15),
        "an hour off in winter"
    );
}

#[test]
fn transforms_both_ways() {
    let map = m(r#"
[[field]]
left = "description"
right = "ReproSteps"
transform = "text-to-html"

[[field]]
left = "count"
right = "CountText"
transform = "number-to-text"

[[field]]
left = "opened"
right = "Detected"
direction = "left-to-right"
transform = "datetime-to-date"
timezone = "-07:00"
"#);
    let opened = Utc.with_ymd_and_hms(2026, 11, 27, 3, 0, 0).unwrap();
    let r = map.map(
        Direction::LeftToRight,
        &FieldMap::new()
            .with("description", "Steps:\n1. open <invoice>")
            .with("count", 42i64)
            .with("opened", opened),
    );
    assert_eq!(
        r.fields.get("ReproSteps"),
        Some(&FieldValue::Html(
            "Steps:<br>1. open &lt;invoice&gt;".into()
        ))
    );
    assert_eq!(
        r.fields.get("CountText"),
        Some(&FieldValue::Text("42".into()))
    );
    assert_eq!(
        r.fields.get("Detected"),
        Some(&FieldValue::Date(
            NaiveDate::from_ymd_opt(2026, 11, 26).unwrap()
        )),
        "03:00 UTC is the previous day at UTC-7"
    );
    let back = map.map(
        Direction::RightToLeft,
        &FieldMap::new()
            .with(
                "ReproSteps",
                FieldValue::Html("<div>Open the <b>invoice</b><script>x()</script></div>".into()),
            )
            .with("CountText", "17"),
    );
    assert_eq!(
        back.fields.get("description"),
        Some(&FieldValue::Text("Open the invoice".into()))
    );
    assert_eq!(back.fields.get("count"), Some(&FieldValue::Int(17)));
    // HTML written to a target is sanitised.
    let html = m("[[field]]\nleft = \"h\"\nright = \"H\"\n");
    let r = html.map(
        Direction::LeftToRight,
        &FieldMap::new().with(
            "h",
            FieldValue::Html("<p onmouseover=\"x()\">ok</p><script>evil()</script>".into()),
        ),
    );
    assert_eq!(
        r.fields.get("H"),
        Some(&FieldValue::Html("<p>ok</p>".into()))
    );
}

struct People;
impl Directory for People {
    fn by_login(&self, login: &str) -> Option<Person> {
        (login == "abel.tuter").then(|| Person {
            login: Some("abel.tuter".into()),
            email: Some("abel@corp.example".into()),
            display_name: Some("Abel Tuter".into()),
            id: None,
        })
    }
    fn by_email(&self, email: &str) -> Option<Person> {
        (email == "abel@corp.example").then(|| Person {
            login: Some("atuter".into()),
            email: Some("abel@corp.example".into()),
            display_name: Some("Abel Tuter".into()),
            id: None,
        })
    }
}

#[test]
fn persons_by_login_email_table_and_default() {
    let map = m(r#"
[[field]]
left = "assigned_to"
right = "AssignedTo"
direction = "left-to-right"
person = { by = "email", table = { "beth.anglin" = "beth@corp.example" }, default = "triage@corp.example" }
"#);
    let map_one = |p: Person| {
        map.map_with(
            Direction::LeftToRight,
            &FieldMap::new().with("assigned_to", p),
            false,
            &People,
        )
        .fields
        .get("AssignedTo")
        .cloned()
    };
    let FieldValue::Person(p) = map_one(Person::login("abel.tuter")).unwrap() else {
        panic!()
    };
    assert_eq!(
        p.email.as_deref(),
        Some("abel@corp.example"),
        "login → email through the directory"
    );
    let FieldValue::Person(p) = map_one(Person::login("beth.anglin")).unwrap() else {
        panic!()
    };
    assert_eq!(
        p.email.as_deref(),
        Some("beth@corp.example"),
        "explicit table"
    );
    let FieldValue::Person(p) = map_one(Person::login("nobody")).unwrap() else {
        panic!()
    };
    assert_eq!(
        p.email.as_deref(),
        Some("triage@corp.example"),
        "default person"
    );
    let by_login = m(
        "[[field]]\nleft = \"a\"\nright = \"b\"\ndirection = \"left-to-right\"\nperson = { by = \"login\" }\n",
    );
    let r = by_login.map_with(
        Direction::LeftToRight,
        &FieldMap::new().with("a", Person::email("nobody@x.example")),
        false,
        &People,
    );
    assert!(r.fields.get("b").is_none());
    assert_eq!(r.skipped.len(), 1, "no login and no default: left alone");
}

#[test]
fn scope_filters_create_rules_conflicts() {
    let map = m(r#"
[scope]
left = { all = [{ field = "category", in = ["software", "database"] }, { not = { field = "state", equals = "7" } }, { field = "short_description", empty = false }] }

[create]
left_to_right = true

[[field]]
left = "priority"
right = "Priority"
conflict = "left-wins"
"#);
    let ok = FieldMap::new()
        .with("category", "Software")
        .with("state", "2")
        .with("short_description", "x");
    assert!(map.in_scope(Direction::LeftToRight, &ok));
    assert!(!map.in_scope(Direction::LeftToRight, &ok.clone().with("state", "7")));
    assert!(!map.in_scope(
        Direction::LeftToRight,
        &ok.clone().with("category", "hardware")
    ));
    assert!(!map.in_scope(Direction::LeftToRight, &ok.with("short_description", "")));
    assert!(
        map.in_scope(Direction::RightToLeft, &FieldMap::new()),
        "no right scope: everything"
    );
    assert!(map.may_create(Direction::LeftToRight) && !map.may_create(Direction::RightToLeft));
    assert_eq!(
        map.conflict_policy(Direction::LeftToRight, "Priority"),
        ConflictPolicy::LeftWins
    );
    assert_eq!(
        map.conflict_policy(Direction::LeftToRight, "Other"),
        ConflictPolicy::Newest
    );
}

fn sn_incident() -> Schema {
    Schema::new("incident")
        .field(FieldDef::new("state", FieldKind::Choice).allowed(["1", "2", "3", "6", "7", "8"]))
        .field(FieldDef::new("close_code", FieldKind::Choice))
        .field(FieldDef::new("close_notes", FieldKind::Text))
        .workflow(
            TransitionGraph::new("state")
                .initial("1")
                .transition("1", "2")
                .transition("2", "6")
                .transition("6", "7")
                .require("2", "6", ["close_code", "close_notes"]),
        )
}

#[test]
fn state_mapping_walks_the_shortest_path_with_required_fields() {
    let map = m(r#"
[state]
left = "state"
right = "System.State"
direction = "right-to-left"
map = { Resolved = "6", Closed = "7" }

[state.supply_left."6"]
close_code = "Solution provided"
close_notes = "Fixed in bug {System.Id}"
"#);
    let graph = sn_incident().workflow.unwrap();
    let bug = FieldMap::new()
        .with("System.State", "Closed")
        .with("System.Id", 42i64);
    let steps = map
        .plan_state(
            Direction::RightToLeft,
            &bug,
            &FieldMap::new().with("state", "1"),
            Some(&graph),
        )
        .unwrap();
    assert_eq!(
        steps.iter().map(|s| s.state.as_str()).collect::<Vec<_>>(),
        ["2", "6", "7"]
    );
    assert_eq!(
        steps[1].fields.get("close_notes"),
        Some(&FieldValue::Text("Fixed in bug 42".into()))
    );
    assert_eq!(steps[0].fields.len(), 1);
    // Already there: nothing to do.
    assert!(
        map.plan_state(
            Direction::RightToLeft,
            &bug,
            &FieldMap::new().with("state", "7"),
            Some(&graph)
        )
        .unwrap()
        .is_empty()
    );
    // No path.
    let e = map
        .plan_state(
            Direction::RightToLeft,
            &bug.with("System.State", "Resolved"),
            &FieldMap::new().with("state", "7"),
            Some(&graph),
        )
        .unwrap_err();
    assert_eq!(
        (
            e.context().from_state.as_deref(),
            e.context().to_state.as_deref()
        ),
        (Some("7"), Some("6"))
    );
    // A required field the spec does not supply.
    let bare = m(
        "[state]\nleft = \"state\"\nright = \"System.State\"\ndirection = \"right-to-left\"\nmap = { Resolved = \"6\" }\n",
    );
    let e = bare
        .plan_state(
            Direction::RightToLeft,
            &FieldMap::new().with("System.State", "Resolved"),
            &FieldMap::new().with("state", "2"),
            Some(&graph),
        )
        .unwrap_err();
    assert!(
        e.to_string().contains("requires close_code, close_notes"),
        "{e}"
    );
}

proptest! {
    /// Left → right → left is the identity on invertible two-way rules.
    #[test]
    fn invertible_two_way_rules_round_trip(
        state in prop::sample::select(vec!["1", "2", "3", "6", "7"]),
        text in "[a-zA-Z0-9 <>&\"\n]{0,60}",
        n in -1_000_000i64..1_000_000,
    ) {
        let map = m(r#"
[[field]]
left = "state"
right = "State"
map = { "1" = "New", "2" = "Active", "3" = "On Hold", "6" = "Resolved", "7" = "Closed" }

[[field]]
left = "description"
right = "Description"
transform = "text-to-html"

[[field]]
left = "count"
right = "Count"
transform = "number-to-text"

[[field]]
left = "title"
right = "Title"
"#);
        let text = text.trim().to_owned();
        let left = FieldMap::new().with("state", state).with("description", text.as_str()).with("count", n).with("title", text.as_str());
        let right = map.map(Direction::LeftToRight, &left).fields;
        let back = map.map(Direction::RightToLeft, &right).fields;
        prop_assert_eq!(back.get("state"), left.get("state"));
        prop_assert_eq!(back.get("count"), left.get("count"));
        prop_assert_eq!(back.get("title"), left.get("title"));
        let original = text.lines().map(str::trim_end).collect::<Vec<_>>().join("\n");
        let got = back.get("description").map(|v| v.to_string()).unwrap_or_default();
        prop_assert_eq!(got.trim(), original.trim());
    }
}

/// The fields a spec reads or writes on each side: rules, templates, state, what the state
/// supplies and names, the scope — what a pair's baselines keep.
#[test]
fn the_fields_a_spec_reads_or_writes_on_each_side() {
    let m = workbridge_mapping::Mapping::from_path(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/mappings/incident_escalation.toml"
    ))
    .unwrap();
    let (left, right) = m.fields();
    let names = |s: &std::collections::BTreeSet<workbridge_core::FieldName>| {
        s.iter().map(|f| f.as_str().to_owned()).collect::<Vec<_>>()
    };
    assert_eq!(
        names(&left),
        [
            "category",
            "close_code",
            "close_notes",
            "description",
            "number",
            "priority",
            "short_description",
            "state",
            "u_dev_status",
            "u_escalate_to_dev"
        ]
    );
    assert_eq!(
        names(&right),
        [
            "Custom.ServiceNowTicket",
            "Microsoft.VSTS.Common.Priority",
            "Microsoft.VSTS.Common.Severity",
            "Microsoft.VSTS.TCM.ReproSteps",
            "System.Id",
            "System.State",
            "System.Title"
        ]
    );
}
