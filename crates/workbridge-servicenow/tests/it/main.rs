//! The ServiceNow adapter against the simulator and against exact-request mocks.

mod conformance;
mod listings;
mod paging;
mod wire;

use workbridge_http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge_servicenow::{ServiceNowConfig, ServiceNowRepository};
use workbridge_sim::servicenow::ServiceNowSim;

/// A simulator with an admin user and an OAuth client.
pub async fn sim() -> ServiceNowSim {
    ServiceNowSim::builder()
        .user("admin", "admin", &["admin"])
        .user("viewer", "viewer", &["snc_read_only"])
        .oauth_client("workbridge", "workbridge-secret")
        .seed_items(5)
        .spawn()
        .await
        .expect("the simulator starts")
}

/// Client options for loopback with quick retries.
pub fn options() -> ClientOptions {
    ClientOptions::default().allow_http(true).retry(
        RetryConfig::default().max_retries(3).backoff(
            BackoffConfig::default()
                .initial(std::time::Duration::from_millis(1))
                .max(std::time::Duration::from_millis(5)),
        ),
    )
}

/// The adapter on `sim`, signed in as admin.
pub fn repo(sim: &ServiceNowSim) -> ServiceNowRepository {
    ServiceNowRepository::new(
        ServiceNowConfig::builder(sim.url())
            .basic("admin", "admin")
            .client_options(options())
            .build(),
    )
    .expect("the adapter builds")
}
