//! The conformance suite over the reference backend, each wrapper, and `Arc`/`Box`.

use std::sync::Arc;
use std::time::Duration;

use workbridge_core::Repository;
use workbridge_core::wrappers::{FaultRepository, RecordingRepository, ThrottledRepository};

mod in_memory {
    workbridge_testkit::conformance_tests!(
        repo = async { crate::memory() },
        fixture = crate::fixture()
    );
}

mod in_memory_one_second_ties {
    workbridge_testkit::conformance_tests!(
        repo = async {
            workbridge_core::InMemoryRepository::builder("ties")
                .schema(crate::incident_schema())
                .timestamp_precision(std::time::Duration::from_secs(3600))
                .build()
        },
        fixture = crate::fixture().with_paging(60, 4)
    );
}

mod schemaless {
    workbridge_testkit::conformance_tests!(
        repo = async { workbridge_core::InMemoryRepository::new("open") },
        fixture = workbridge_testkit::Fixture::new("anything", "title")
    );
}

mod arc_dyn {
    workbridge_testkit::conformance_tests!(
        repo = async {
            std::sync::Arc::new(crate::memory()) as std::sync::Arc<dyn workbridge_core::Repository>
        },
        fixture = crate::fixture()
    );
}

mod box_dyn {
    workbridge_testkit::conformance_tests!(
        repo = async { Box::new(crate::memory()) as Box<dyn workbridge_core::Repository> },
        fixture = crate::fixture()
    );
}

#[tokio::test]
async fn wrappers_conform_stacked_and_alone() {
    let fx = crate::fixture();
    let recording = RecordingRepository::new(crate::memory());
    workbridge_testkit::assert_conformance(&recording, &fx).await;
    assert!(
        recording.calls().len() > 50,
        "the suite's calls were recorded"
    );

    let throttled =
        ThrottledRepository::new(crate::memory(), Duration::from_micros(10)).max_concurrency(2);
    workbridge_testkit::assert_conformance(&throttled, &fx).await;

    let no_faults = FaultRepository::new(crate::memory(), 1);
    workbridge_testkit::assert_conformance(&no_faults, &fx).await;

    let stacked: Arc<dyn Repository> = Arc::new(RecordingRepository::new(FaultRepository::new(
        ThrottledRepository::new(crate::memory(), Duration::ZERO),
        2,
    )));
    let skipped = workbridge_testkit::assert_conformance(&stacked, &fx).await;
    assert_eq!(skipped, ["check_unsupported_is_typed"]);
}
