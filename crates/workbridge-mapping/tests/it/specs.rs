//! Bad specs: the messages themselves.

use workbridge_core::{ErrorKind, FieldDef, FieldKind, Schema};
use workbridge_mapping::Mapping;

fn err(spec: &str) -> String {
    let e = Mapping::from_toml_str(spec).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    e.message().to_owned()
}

#[test]
fn compile_errors_name_line_and_field() {
    assert_eq!(
        err("[[field]]\nleft = \"a\"\nright = \"b\"\nmap = { x = \"1\", y = \"1\" }\n"),
        "line 1: field `b`: the value map is not invertible: `x` and `y` both map to `1`; give a `reverse` map or make the rule one-way"
    );
    assert_eq!(
        err("\n[[field]]\nright = \"Title\"\ntemplate = \"{number}\"\n"),
        "line 2: field `Title`: a template or constant works one way: set direction to left-to-right or right-to-left"
    );
    assert_eq!(
        err("[[field]]\nleft = \"a\"\nright = \"b\"\ndirection = \"sideways\"\n"),
        "line 1: field `b`: direction `sideways` is not both, left-to-right or right-to-left"
    );
    assert_eq!(
        err("[[field]]\nleft = \"a\"\nright = \"b\"\nfallback = \"default\"\n"),
        "line 1: field `b`: fallback `default` needs a `default` value"
    );
    assert_eq!(
        err("[[field]]\nleft = \"a\"\nright = \"b\"\ntransform = \"rot13\"\n"),
        "line 1: field `b`: transform `rot13` is not html-to-text, text-to-html, number-to-text, text-to-number or datetime-to-date"
    );
    assert_eq!(
        err("[[field]]\nleft = \"a\"\nright = \"b\"\ntimezone = \"Mars/Olympus\"\n"),
        "line 1: field `b`: timezone `Mars/Olympus` is neither an offset such as +02:00 or UTC nor a zone such as Europe/Berlin"
    );
    assert_eq!(
        err("[[field]]\nleft = \"a\"\n"),
        "line 1: field `a`: the rule names no target field"
    );
    let e = err("[[field]]\nleft = \"a\"\nright = \"b\"\nbogus = 1\n");
    assert!(e.starts_with("line 4: unknown field `bogus`"), "{e}");
    let e = err("[[field]\n");
    assert!(e.starts_with("line 1:"), "{e}");
}

#[test]
fn validation_errors_name_line_and_field() {
    let left = Schema::new("incident")
        .field(FieldDef::new("short_description", FieldKind::Text))
        .field(FieldDef::new("priority", FieldKind::Choice).allowed(["1", "2", "3"]))
        .field(FieldDef::new("opened_at", FieldKind::DateTime));
    let right = Schema::new("Bug")
        .field(FieldDef::new("System.Title", FieldKind::Text).required())
        .field(FieldDef::new("System.AreaPath", FieldKind::Text).required())
        .field(FieldDef::new("Priority", FieldKind::Choice).allowed(["1", "2", "3", "4"]))
        .field(FieldDef::new("Count", FieldKind::Int));
    let spec = r#"
[create]
left_to_right = true

[[field]]
left = "short_description"
right = "System.Titel"

[[field]]
left = "priority"
right = "Priority"
map = { "1" = "1", "2" = "2", "3" = "9" }

[[field]]
left = "opened_at"
right = "Count"
direction = "left-to-right"
"#;
    let errors = Mapping::from_toml_str(spec)
        .unwrap()
        .validate(&left, &right)
        .unwrap_err();
    let messages: Vec<String> = errors.0.iter().map(|e| e.message().to_owned()).collect();
    assert_eq!(
        messages,
        [
            "line 5: field `System.Titel`: the right type Bug has no field `System.Titel`",
            "line 9: field `Priority`: `9` is not one of the allowed values: 1, 2, 3, 4",
            "line 14: field `Count`: a DateTime value from `opened_at` cannot be written to this Int field without a transform",
            "line 2: field `System.AreaPath`: Bug requires this field on create, and no rule fills it",
            "line 2: field `System.Title`: Bug requires this field on create, and no rule fills it",
        ]
    );
    assert_eq!(
        errors.0[0].field().map(|f| f.as_str()),
        Some("System.Titel")
    );
}
