//! The ALM adapter against the simulator (JSON and XML) and exact-request mocks.

mod bulk;
mod conformance;
mod history;
mod sessions;
mod wire;

use workbridge_alm::{AlmConfig, AlmRepository, Format};
use workbridge_http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge_sim::alm::AlmSim;

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

/// A simulator with user `qa`.
pub async fn sim() -> AlmSim {
    AlmSim::builder()
        .user("qa", "qa")
        .api_key("oauth2-ci@corp", "key-secret", "qa")
        .seed_items(4)
        .spawn()
        .await
        .expect("the simulator starts")
}

/// The adapter on `sim`.
pub fn repo(sim: &AlmSim, format: Format) -> AlmRepository {
    AlmRepository::new(
        AlmConfig::builder(sim.url(), "DEFAULT", "Demo")
            .password("qa", "qa")
            .format(format)
            .correlation_field("ServiceNow Ticket")
            .client_options(options())
            .build(),
    )
    .expect("the adapter builds")
}
