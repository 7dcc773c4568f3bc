//! Fields mapped per second on a 30-field incident.

#![allow(missing_docs)]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use workbridge_core::{FieldMap, FieldValue, Person};
use workbridge_mapping::{Direction, Mapping};

fn spec() -> String {
    let mut s = String::from("left = \"incident\"\nright = \"Bug\"\n");
    for i in 0..20 {
        s.push_str(&format!(
            "\n[[field]]\nleft = \"u_text_{i}\"\nright = \"Custom.Text{i}\"\n"
        ));
    }
    s.push_str("\n[[field]]\nleft = \"description\"\nright = \"ReproSteps\"\ntransform = \"text-to-html\"\n");
    s.push_str("\n[[field]]\nleft = \"priority\"\nright = \"Priority\"\nmap = { \"1\" = \"1\", \"2\" = \"2\", \"3\" = \"3\", \"4\" = \"4\", \"5\" = \"4\" }\nreverse = { \"1\" = \"1\", \"2\" = \"2\", \"3\" = \"3\", \"4\" = \"4\" }\n");
    s.push_str("\n[[field]]\nright = \"Title\"\ntemplate = \"{number}: {short_description}\"\ndirection = \"left-to-right\"\ntruncate = 255\n");
    s.push_str("\n[[field]]\nleft = \"assigned_to\"\nright = \"AssignedTo\"\ndirection = \"left-to-right\"\nperson = { by = \"email\", default = \"triage@corp.example\" }\n");
    for i in 0..6 {
        s.push_str(&format!("\n[[field]]\nleft = \"u_choice_{i}\"\nright = \"Custom.Choice{i}\"\nmap = {{ a = \"A\", b = \"B\", c = \"C\" }}\n"));
    }
    s
}

fn incident() -> FieldMap {
    let mut f = FieldMap::new()
        .with("number", "INC0010001")
        .with(
            "short_description",
            "Invoices print blank pages on every printer",
        )
        .with(
            "description",
            "Since Monday.\nSteps:\n1. open an invoice\n2. print <all>",
        )
        .with("priority", FieldValue::Choice("2".into()))
        .with("assigned_to", Person::email("abel@corp.example"));
    for i in 0..20 {
        f.insert(format!("u_text_{i}"), format!("value {i} with some text"));
    }
    for i in 0..6 {
        f.insert(
            format!("u_choice_{i}"),
            FieldValue::Choice(["a", "b", "c"][i % 3].into()),
        );
    }
    f
}

fn bench(c: &mut Criterion) {
    let mapping = Mapping::from_toml_str(&spec()).expect("the bench spec compiles");
    let fields = incident();
    assert_eq!(
        mapping.map(Direction::LeftToRight, &fields).fields.len(),
        30
    );
    let mut g = c.benchmark_group("map");
    g.throughput(Throughput::Elements(30));
    g.bench_function("incident_30_fields_left_to_right", |b| {
        b.iter(|| mapping.map(Direction::LeftToRight, std::hint::black_box(&fields)));
    });
    let right = mapping.map(Direction::LeftToRight, &fields).fields;
    g.bench_function("bug_back_to_incident", |b| {
        b.iter(|| mapping.map(Direction::RightToLeft, std::hint::black_box(&right)));
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
