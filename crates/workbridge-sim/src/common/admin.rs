//! An admin endpoint on 127.0.0.1 for a simulator in another process (the `workbridge-sim`
//! binary's `--admin-port`): its request counts, and its faults set and queued.
//!
//! | request | answer |
//! |---|---|
//! | `GET /requests` | `{"total": n, "most_in_flight": n, "routes": {"GET /api/now/table/{table}": n, …}}` |
//! | `DELETE /requests` | 204: the counts start again |
//! | `GET /faults` | the faults as set |
//! | `PUT /faults` | 204: sets them (`{"latency_ms": 50, "error_rates": [[503, 0.1]], "rate_limit": [0.05, 2], "drop_ratio": 0, "lose_reply_ratio": 0, "seed": 1}`, every member optional) |
//! | `POST /fail-next` | 204: the next `n` requests (of `method`, when given) answer `status` (`{"n": 2, "status": 503, "retry_after_secs": 1, "method": "PATCH"}`) |
//!
//! A body that is not such JSON is refused with 4xx and changes nothing.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use super::{Faults, Running, SimControl, SimOptions, serve};

/// The faults as the admin endpoint reads and writes them.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct FaultsBody {
    latency_ms: u64,
    error_rates: Vec<(u16, f64)>,
    rate_limit: Option<(f64, u64)>,
    drop_ratio: f64,
    lose_reply_ratio: f64,
    seed: u64,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FailNext {
    n: usize,
    status: u16,
    #[serde(default)]
    retry_after_secs: Option<u64>,
    #[serde(default)]
    method: Option<String>,
}

fn ratio_ok(r: f64) -> bool {
    (0.0..=1.0).contains(&r)
}

/// A running admin endpoint; it stops when dropped or with [`AdminServer::stop`].
#[derive(Debug)]
pub struct AdminServer {
    running: Running,
}

impl AdminServer {
    /// Where it listens (always 127.0.0.1).
    pub fn addr(&self) -> SocketAddr {
        self.running.addr
    }

    /// Stops serving.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

impl SimControl {
    /// Serves this simulator's admin endpoint on 127.0.0.1 at `port` (0: any free one); see
    /// the table in the module's documentation.
    ///
    /// # Errors
    /// The port cannot be bound.
    pub async fn serve_admin(&self, port: u16) -> std::io::Result<AdminServer> {
        let router = Router::new()
            .route("/requests", get(requests).delete(reset))
            .route("/faults", get(faults).put(set_faults))
            .route("/fail-next", post(fail_next))
            .with_state(self.clone());
        let options = SimOptions {
            port,
            ..SimOptions::default()
        };
        Ok(AdminServer {
            running: serve(router, &options).await?,
        })
    }
}

async fn requests(State(c): State<SimControl>) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "total": c.total_requests(),
        "most_in_flight": c.most_in_flight(),
        "routes": c.requests(),
    }))
}

async fn reset(State(c): State<SimControl>) -> StatusCode {
    c.reset_requests();
    StatusCode::NO_CONTENT
}

async fn faults(State(c): State<SimControl>) -> Json<FaultsBody> {
    let f = super::lock(&c.0.faults).clone();
    Json(FaultsBody {
        latency_ms: u64::try_from(f.latency.as_millis()).unwrap_or(u64::MAX),
        error_rates: f.error_rates,
        rate_limit: f.rate_limit,
        drop_ratio: f.drop_ratio,
        lose_reply_ratio: f.lose_reply_ratio,
        seed: f.seed,
    })
}

async fn set_faults(
    State(c): State<SimControl>,
    Json(b): Json<FaultsBody>,
) -> (StatusCode, String) {
    let ratios = b
        .error_rates
        .iter()
        .map(|(_, r)| *r)
        .chain(b.rate_limit.map(|(r, _)| r))
        .chain([b.drop_ratio, b.lose_reply_ratio]);
    if let Some(r) = ratios.into_iter().find(|r| !ratio_ok(*r)) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("a ratio is between 0 and 1, not {r}"),
        );
    }
    if let Some((s, _)) = b.error_rates.iter().find(|(s, _)| !(100..=599).contains(s)) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{s} is not an HTTP status"),
        );
    }
    let mut f = Faults::none()
        .latency(Duration::from_millis(b.latency_ms))
        .drop_connections(b.drop_ratio)
        .lose_replies(b.lose_reply_ratio)
        .seed(b.seed);
    for (s, r) in b.error_rates {
        f = f.error_rate(s, r);
    }
    if let Some((r, secs)) = b.rate_limit {
        f = f.rate_limit(r, secs);
    }
    c.set_faults(f);
    (StatusCode::NO_CONTENT, String::new())
}

async fn fail_next(State(c): State<SimControl>, Json(b): Json<FailNext>) -> (StatusCode, String) {
    if !(100..=599).contains(&b.status) {
        return (
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} is not an HTTP status", b.status),
        );
    }
    match &b.method {
        Some(m) => c.fail_next_of(m, b.n, b.status, b.retry_after_secs),
        None => c.fail_next(b.n, b.status, b.retry_after_secs),
    }
    (StatusCode::NO_CONTENT, String::new())
}
