//! The Azure DevOps adapter against the simulator and exact-request mocks.

mod conformance;
mod listings;
mod openapi;
mod recorded;
mod scan;
mod wire;

use workbridge_azure_devops::{AzureDevOpsConfig, AzureDevOpsRepository, ServerVersion};
use workbridge_http::{BackoffConfig, ClientOptions, RetryConfig};
use workbridge_sim::azure_devops::AzureDevOpsSim;

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

/// A simulator of `server` with a correlation field.
pub async fn sim(server: workbridge_sim::azure_devops::ServerVersion) -> AzureDevOpsSim {
    AzureDevOpsSim::builder()
        .pat("TOKEN")
        .server_version(server)
        .custom_field("Custom.ServiceNowTicket", "ServiceNow Ticket")
        .seed_items(6)
        .spawn()
        .await
        .expect("the simulator starts")
}

/// The adapter on `sim`, for `server`.
pub fn repo(
    sim: &AzureDevOpsSim,
    server: ServerVersion,
    correlation_field: bool,
) -> AzureDevOpsRepository {
    let mut b = AzureDevOpsConfig::builder(sim.collection_url(), sim.project())
        .pat("TOKEN")
        .server_version(server)
        .client_options(options());
    if correlation_field {
        b = b.correlation_field("Custom.ServiceNowTicket");
    }
    AzureDevOpsRepository::new(b.build()).expect("the adapter builds")
}
