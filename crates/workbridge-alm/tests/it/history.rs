//! The audit trail tells whether fields were set after a moment (ADR 0025).

use chrono::{TimeDelta, Utc};
use workbridge_alm::Format;
use workbridge_core::{FieldMap, FieldValue, ItemType, Repository};

#[tokio::test]
async fn the_audits_tell_whether_fields_were_set_since_a_moment() {
    for format in [Format::Json, Format::Xml] {
        let sim = crate::sim().await;
        let r = crate::repo(&sim, format);
        let t = ItemType::from("defects");
        let d = r
            .write_many(&[crate::bulk::defect("Invoices print blank")])
            .await
            .unwrap()
            .remove(0)
            .unwrap();
        let before = Utc::now() - TimeDelta::seconds(1);
        let status = |s: &str| FieldMap::new().with("status", FieldValue::Choice(s.into()));
        for s in ["Open", "Fixed", "Reopen"] {
            r.update(&t, &d.id, &status(s), &Default::default())
                .await
                .unwrap();
        }
        // Set back since, the trail still says `Fixed` was written.
        assert_eq!(
            r.written_since(&t, &d.id, &status("Fixed"), before)
                .await
                .unwrap(),
            Some(true),
            "{format:?}"
        );
        assert_eq!(
            r.written_since(&t, &d.id, &status("Closed"), before)
                .await
                .unwrap(),
            Some(false),
            "{format:?}"
        );
        let later = Utc::now() + TimeDelta::seconds(5);
        assert_eq!(
            r.written_since(&t, &d.id, &status("Fixed"), later)
                .await
                .unwrap(),
            Some(false),
            "{format:?}: nothing after that moment"
        );
        // A memo field is not audited: the trail cannot tell.
        let memo = FieldMap::new().with("description", FieldValue::Html("<p>A4</p>".into()));
        assert_eq!(
            r.written_since(&t, &d.id, &memo, before).await.unwrap(),
            None,
            "{format:?}"
        );
    }
}
