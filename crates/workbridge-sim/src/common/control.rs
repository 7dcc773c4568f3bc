//! Fault injection and request accounting: the faults a simulator injects, the exchanges it
//! records, and the middleware that does both.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

#[allow(clippy::wildcard_imports)]
use super::*;

/// Faults a simulator injects, before handling a request.
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Delay before every answer.
    pub latency: Duration,
    /// Answer with this status at this ratio (0.0–1.0), e.g. `(503, 0.05)`.
    pub error_rates: Vec<(u16, f64)>,
    /// Answer 429 with `Retry-After` (seconds) at this ratio.
    pub rate_limit: Option<(f64, u64)>,
    /// Drop the connection mid-answer at this ratio.
    pub drop_ratio: f64,
    /// Handle the request — apply the write — and then drop the connection before the answer,
    /// at this ratio: the lost reply of a write that happened.
    pub lose_reply_ratio: f64,
    /// Seed of the fault RNG.
    pub seed: u64,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Faults::default()
    }

    /// Sets the latency.
    #[must_use]
    pub fn latency(mut self, d: Duration) -> Self {
        self.latency = d;
        self
    }

    /// Adds an error rate for a status.
    #[must_use]
    pub fn error_rate(mut self, status: u16, ratio: f64) -> Self {
        self.error_rates.push((status, ratio));
        self
    }

    /// Answers 429 with `Retry-After: secs` at `ratio`.
    #[must_use]
    pub fn rate_limit(mut self, ratio: f64, retry_after_secs: u64) -> Self {
        self.rate_limit = Some((ratio, retry_after_secs));
        self
    }

    /// Drops connections at `ratio`.
    #[must_use]
    pub fn drop_connections(mut self, ratio: f64) -> Self {
        self.drop_ratio = ratio;
        self
    }

    /// Applies the request, then loses its answer, at this ratio (0.0–1.0).
    #[must_use]
    pub fn lose_replies(mut self, ratio: f64) -> Self {
        self.lose_reply_ratio = ratio;
        self
    }

    /// Seeds the RNG.
    #[must_use]
    pub fn seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
}

/// An injected fault's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Injected {
    Status(u16, Option<u64>),
    Drop,
    /// Serve the request, then break the answer.
    LoseReply,
    /// Wait this long, then serve the request (a request held on the wire: it is applied even
    /// when the client gave up on it).
    Delay(Duration),
}

/// A queued fault: the method and a part of the path it waits for (any when `None`).
pub(crate) type Queued = (Option<String>, Option<String>, Injected);

/// The shared per-server state of accounting and faults.
#[derive(Debug)]
pub(crate) struct Control {
    pub(crate) clock: SimClock,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) rng: Mutex<StdRng>,
    /// Faults queued for the next requests (of one method, and with a path containing a text,
    /// when given).
    pub(crate) queued: Mutex<Vec<Queued>>,
    pub(crate) counts: Mutex<BTreeMap<String, u64>>,
    /// Exchanges kept while recording (`None`: not recording).
    pub(crate) exchanges: Mutex<Option<Vec<Exchange>>>,
    /// Requests being served now, and the most served at once since the counts were reset.
    pub(crate) in_flight: Mutex<(usize, usize)>,
}

/// A request being served, counted in [`Control::in_flight`] until it is dropped.
struct Serving<'a>(&'a Control);

impl<'a> Serving<'a> {
    fn new(c: &'a Control) -> Self {
        let mut f = lock(&c.in_flight);
        f.0 += 1;
        f.1 = f.1.max(f.0);
        Serving(c)
    }
}

impl Drop for Serving<'_> {
    fn drop(&mut self) {
        let mut f = lock(&self.0.in_flight);
        f.0 = f.0.saturating_sub(1);
    }
}

/// One request and its answer, as the simulator saw them (kept while
/// [`SimControl::record_exchanges`] is on), for checking wire shapes against a specification.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The method.
    pub method: String,
    /// The path as the client sent it.
    pub path: String,
    /// The query string, if any.
    pub query: Option<String>,
    /// The route it matched (`/{org}/_apis/wit/workitems/{id}`), or `(unmatched)`.
    pub route: String,
    /// The request's content type.
    pub request_content_type: Option<String>,
    /// The request body.
    pub request_body: bytes::Bytes,
    /// The status answered.
    pub status: u16,
    /// The answer's content type.
    pub response_content_type: Option<String>,
    /// The answer's body.
    pub response_body: bytes::Bytes,
}

impl Control {
    pub(crate) fn new(options: &super::SimOptions) -> Self {
        let faults = options.faults.clone();
        Control {
            clock: options.clock.clone(),
            rng: Mutex::new(StdRng::seed_from_u64(faults.seed)),
            faults: Mutex::new(faults),
            queued: Mutex::new(Vec::new()),
            counts: Mutex::new(BTreeMap::new()),
            exchanges: Mutex::new(None),
            in_flight: Mutex::new((0, 0)),
        }
    }

    pub(crate) fn decide(&self, method: &str, path: &str) -> (Duration, Option<Injected>) {
        if let Some(q) = {
            let mut q = lock(&self.queued);
            q.iter()
                .position(|(m, p, _)| {
                    m.as_deref().is_none_or(|m| m.eq_ignore_ascii_case(method))
                        && p.as_deref().is_none_or(|p| path.contains(p))
                })
                .map(|i| q.remove(i).2)
        } {
            return (lock(&self.faults).latency, Some(q));
        }
        let f = lock(&self.faults).clone();
        let mut rng = lock(&self.rng);
        if let Some((ratio, secs)) = f.rate_limit
            && rng.random_bool(ratio.clamp(0.0, 1.0))
        {
            return (f.latency, Some(Injected::Status(429, Some(secs))));
        }
        for (status, ratio) in &f.error_rates {
            if rng.random_bool(ratio.clamp(0.0, 1.0)) {
                return (f.latency, Some(Injected::Status(*status, None)));
            }
        }
        if f.drop_ratio > 0.0 && rng.random_bool(f.drop_ratio.clamp(0.0, 1.0)) {
            return (f.latency, Some(Injected::Drop));
        }
        if f.lose_reply_ratio > 0.0 && rng.random_bool(f.lose_reply_ratio.clamp(0.0, 1.0)) {
            return (f.latency, Some(Injected::LoseReply));
        }
        (f.latency, None)
    }
}

/// Accounting and fault control of a running simulator.
#[derive(Debug, Clone)]
pub struct SimControl(pub(crate) Arc<Control>);

impl SimControl {
    /// The simulator's clock.
    pub fn clock(&self) -> &SimClock {
        &self.0.clock
    }

    /// Requests served per route (`"GET /api/now/table/{table}"`), faults included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        lock(&self.0.counts).clone()
    }

    /// Requests served on one route.
    pub fn requests_to(&self, route: &str) -> u64 {
        lock(&self.0.counts).get(route).copied().unwrap_or(0)
    }

    /// Starts (or stops, dropping what was kept) keeping every request and answer.
    pub fn record_exchanges(&self, on: bool) {
        *lock(&self.0.exchanges) = on.then(Vec::new);
    }

    /// The exchanges kept since recording started.
    pub fn exchanges(&self) -> Vec<Exchange> {
        lock(&self.0.exchanges).clone().unwrap_or_default()
    }

    /// Requests served in all.
    pub fn total_requests(&self) -> u64 {
        lock(&self.0.counts).values().sum()
    }

    /// Forgets the counts (and the most requests served at once).
    pub fn reset_requests(&self) {
        lock(&self.0.counts).clear();
        let mut f = lock(&self.0.in_flight);
        f.1 = f.0;
    }

    /// The most requests served at once since the counts were reset: how far a client
    /// overlaps its requests.
    pub fn most_in_flight(&self) -> usize {
        lock(&self.0.in_flight).1
    }

    /// Replaces the faults.
    pub fn set_faults(&self, faults: Faults) {
        *lock(&self.0.rng) = StdRng::seed_from_u64(faults.seed);
        *lock(&self.0.faults) = faults;
    }

    /// Queues `n` faults for the next requests of `method` whose path contains `path_part`
    /// (any request where `None`).
    pub(crate) fn queue(
        &self,
        method: Option<&str>,
        path_part: Option<&str>,
        fault: Injected,
        n: usize,
    ) {
        let entry = (
            method.map(str::to_owned),
            path_part.map(str::to_owned),
            fault,
        );
        lock(&self.0.queued).extend(std::iter::repeat_n(entry, n));
    }

    /// Answers the next `n` requests with `status` (and `Retry-After` when given).
    pub fn fail_next(&self, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.queue(None, None, Injected::Status(status, retry_after_secs), n);
    }

    /// Answers the next `n` requests of one method (`"PATCH"`) with `status` (and `Retry-After`
    /// when given); requests of other methods are served.
    pub fn fail_next_of(&self, method: &str, n: usize, status: u16, retry_after_secs: Option<u64>) {
        self.queue(
            Some(method),
            None,
            Injected::Status(status, retry_after_secs),
            n,
        );
    }

    /// Holds the next request of one method (`"POST"`) whose path contains `path_part` for `d`
    /// before serving it: a request delayed on the wire, applied even when the client has given
    /// up on it by then.
    pub fn delay_next_of(&self, method: &str, path_part: &str, d: Duration) {
        self.queue(Some(method), Some(path_part), Injected::Delay(d), 1);
    }

    /// Handles the next request of one method (`"PATCH"`) whose path contains `path_part` — a
    /// write is applied — and then breaks its answer: a lost reply.
    pub fn lose_next_reply_of(&self, method: &str, path_part: &str) {
        self.queue(Some(method), Some(path_part), Injected::LoseReply, 1);
    }

    /// Drops the connection of the next `n` requests mid-answer.
    pub fn drop_next(&self, n: usize) {
        self.queue(None, None, Injected::Drop, n);
    }
}

/// Builds the answer for an injected status: each simulator gives its own error body.
pub(crate) type FaultBody = fn(u16) -> (String, &'static str);

#[derive(Clone)]
pub(crate) struct MiddlewareState {
    pub(crate) control: Arc<Control>,
    pub(crate) fault_body: FaultBody,
}

/// Counts the request, injects faults, stamps `Date` from the simulator's clock.
pub(crate) async fn control_layer(
    State(st): State<MiddlewareState>,
    req: Request,
    next: Next,
) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "(unmatched)".to_owned(), |p| p.as_str().to_owned());
    let key = format!("{} {route}", req.method());
    *lock(&st.control.counts).entry(key).or_default() += 1;
    let _serving = Serving::new(&st.control);

    let (latency, injected) = st.control.decide(req.method().as_str(), req.uri().path());
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let mut resp = match injected {
        None if lock(&st.control.exchanges).is_some() => recorded(&st, route, req, next).await,
        None => next.run(req).await,
        Some(Injected::Status(status, retry_after)) => {
            let (body, content_type) = (st.fault_body)(status);
            let mut r = Response::new(Body::from(body));
            *r.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            r.headers_mut()
                .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
            if let Some(s) = retry_after {
                r.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from(s));
            }
            r
        }
        Some(Injected::Delay(d)) => {
            // Served whatever the client does meanwhile: the wait and the handler run on their
            // own task, which a closed connection does not cancel.
            let run = tokio::spawn(async move {
                tokio::time::sleep(d).await;
                next.run(req).await
            });
            run.await.unwrap_or_else(|_| broken_answer())
        }
        Some(Injected::LoseReply) => {
            // The handler runs (a write is applied); its answer never arrives whole.
            let served = next.run(req).await;
            drop(served);
            broken_answer()
        }
        Some(Injected::Drop) => {
            let broken = futures::stream::iter([
                Ok(bytes::Bytes::from_static(b"{\"result\":[")),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "dropped by fault injection",
                )),
            ]);
            let mut r = Response::new(Body::from_stream(broken));
            r.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            r
        }
    };
    let date = st
        .control
        .clock
        .now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    if let Ok(v) = HeaderValue::from_str(&date) {
        resp.headers_mut().insert(header::DATE, v);
    }
    resp
}

/// An answer whose body breaks off: what a client sees when the connection is reset.
pub(crate) fn broken_answer() -> Response {
    let broken = futures::stream::iter([
        Ok(bytes::Bytes::from_static(b"{\"result\":[")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reply lost by fault injection after the request was served",
        )),
    ]);
    let mut r = Response::new(Body::from_stream(broken));
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    r
}

/// Serves a request while keeping the exchange.
pub(crate) async fn recorded(
    st: &MiddlewareState,
    route: String,
    req: Request,
    next: Next,
) -> Response {
    let content_type = |h: &axum::http::HeaderMap| {
        h.get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(ToOwned::to_owned)
    };
    let (parts, body) = req.into_parts();
    let request_body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let mut exchange = Exchange {
        method: parts.method.to_string(),
        path: parts
            .extensions
            .get::<axum::extract::OriginalUri>()
            .map_or_else(|| parts.uri.path().to_owned(), |u| u.0.path().to_owned()),
        query: parts.uri.query().map(ToOwned::to_owned),
        route,
        request_content_type: content_type(&parts.headers),
        request_body: request_body.clone(),
        status: 0,
        response_content_type: None,
        response_body: bytes::Bytes::new(),
    };
    let resp = next
        .run(Request::from_parts(parts, Body::from(request_body)))
        .await;
    let (parts, body) = resp.into_parts();
    let response_body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    exchange.status = parts.status.as_u16();
    exchange.response_content_type = content_type(&parts.headers);
    exchange.response_body = response_body.clone();
    if let Some(list) = lock(&st.control.exchanges).as_mut() {
        list.push(exchange);
    }
    Response::from_parts(parts, Body::from(response_body))
}
