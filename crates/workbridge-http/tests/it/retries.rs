use std::time::Duration;

use serde::Deserialize;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_core::ErrorKind;
use workbridge_http::{HttpClient, RetryConfig};

use crate::{client, options};

async fn server_answering(statuses: &[u16]) -> MockServer {
    let server = MockServer::start().await;
    for (i, s) in statuses.iter().enumerate() {
        let last = i == statuses.len() - 1;
        let mock = Mock::given(method("GET")).and(path("/api/x"));
        let mock = if last {
            mock.respond_with(ResponseTemplate::new(*s).set_body_string("{\"ok\":true}"))
        } else {
            mock.respond_with(ResponseTemplate::new(*s))
                .up_to_n_times(1)
        };
        mock.with_priority(u8::try_from(i + 1).unwrap())
            .mount(&server)
            .await;
    }
    server
}

#[tokio::test]
async fn server_errors_408_and_429_are_retried_until_success() {
    for failing in [500u16, 502, 503, 504, 408, 429] {
        let server = server_answering(&[failing, failing, 200]).await;
        let c = client(&server.uri(), options());
        let resp = c
            .get("api/x")
            .send()
            .await
            .unwrap_or_else(|e| panic!("{failing}: {e}"));
        assert_eq!(resp.status.as_u16(), 200);
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            3,
            "{failing}"
        );
        assert_eq!(c.requests_sent(), 3);
    }
}

#[tokio::test]
async fn client_errors_are_not_retried_and_are_typed() {
    for (status, kind) in [
        (400, ErrorKind::InvalidInput),
        (403, ErrorKind::PermissionDenied),
        (404, ErrorKind::NotFound),
        (409, ErrorKind::Conflict),
        (412, ErrorKind::Conflict),
        (501, ErrorKind::Unsupported),
    ] {
        let server = server_answering(&[status]).await;
        let c = client(&server.uri(), options());
        let e = c
            .get("api/x")
            .operation("changes")
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.kind(), kind, "{status}");
        assert_eq!(e.context().http_status, Some(status));
        assert_eq!(e.operation(), Some("changes"));
        assert_eq!(e.context().system.as_deref(), Some("test-system"));
        assert_eq!(
            server.received_requests().await.unwrap().len(),
            1,
            "{status} retried"
        );
    }
}

#[tokio::test]
async fn retries_are_bounded_by_count() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&server)
        .await;
    let c = client(
        &server.uri(),
        options().retry(
            RetryConfig::default().max_retries(2).backoff(
                workbridge_http::BackoffConfig::default()
                    .initial(Duration::from_millis(1))
                    .max(Duration::from_millis(2)),
            ),
        ),
    );
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_temporary());
    assert_eq!(server.received_requests().await.unwrap().len(), 3);
}

#[tokio::test(start_paused = true)]
async fn retry_after_seconds_is_waited_at_least() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "90"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let start = tokio::time::Instant::now();
    c.get("api/x").send().await.unwrap();
    let waited = start.elapsed();
    assert!(waited >= Duration::from_secs(90), "waited only {waited:?}");
    assert!(waited < Duration::from_secs(91), "waited {waited:?}");
}

#[tokio::test(start_paused = true)]
async fn retry_after_http_date_is_waited_at_least() {
    let server = MockServer::start().await;
    let at = chrono::Utc::now() + chrono::TimeDelta::seconds(40);
    let date = at.format("%a, %d %b %Y %H:%M:%S GMT").to_string();
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", date.as_str()))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let start = tokio::time::Instant::now();
    c.get("api/x").send().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(38),
        "waited only {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn a_wait_beyond_the_time_budget_returns_the_error_at_once() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "3600"))
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3600)));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn rate_limit_delay_on_success_slows_the_next_request() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).insert_header("X-RateLimit-Delay", "12.5"))
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    c.get("api/x").send().await.unwrap();
    let start = tokio::time::Instant::now();
    c.get("api/x").send().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_millis(12_500),
        "next request went after {:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn post_is_not_retried_on_timeout_but_get_is() {
    let server = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_millis(400)))
        .mount(&server)
        .await;
    let c = client(
        &server.uri(),
        options().timeout(Some(Duration::from_millis(100))).retry(
            RetryConfig::default().max_retries(2).backoff(
                workbridge_http::BackoffConfig::default()
                    .initial(Duration::from_millis(1))
                    .max(Duration::from_millis(2)),
            ),
        ),
    );
    let e = c
        .post("api/x")
        .json(&serde_json::json!({"a": 1}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("may have been applied"), "{e}");
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        1,
        "POST retried after a timeout"
    );
    let _ = c.get("api/x").send().await.unwrap_err();
    assert_eq!(
        server.received_requests().await.unwrap().len(),
        4,
        "GET: 1 + 2 retries"
    );
}

#[tokio::test]
async fn connection_refused_is_unavailable_and_temporary() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let c = client(&format!("http://127.0.0.1:{port}"), options());
    let e = c.post("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.is_temporary());
    assert!(e.to_string().contains("cannot connect"), "{e}");
}

#[tokio::test]
async fn plain_http_to_a_remote_host_is_refused() {
    let e = HttpClient::builder("http://acme.service-now.com")
        .options(options())
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    let e = HttpClient::builder("http://127.0.0.1:9")
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("allow_http"), "{e}");
    let e = HttpClient::builder("not a url").build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    // An absolute URL handed back by a server is checked too.
    let c = client("http://127.0.0.1:9", options());
    let e = c.get("http://evil.example/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Envelope {
    result: Vec<Record>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Record {
    sys_id: String,
    sys_mod_count: String,
}

#[tokio::test]
async fn malformed_json_is_a_protocol_error_naming_the_path() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string(
            r#"{"result":[{"sys_id":"a","sys_mod_count":"1"},{"sys_id":7,"sys_mod_count":"1"}]}"#,
        ))
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let e = c.get("api/x").send_json::<Envelope>().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
    assert_eq!(e.context().path.as_deref(), Some("result[1].sys_id"));
    // A member that is missing is named in the path too.
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200).set_body_string(r#"{"result":[{"sys_mod_count":"1"}]}"#),
        )
        .mount(&server)
        .await;
    let e = client(&server.uri(), options())
        .get("api/x")
        .send_json::<Envelope>()
        .await
        .unwrap_err();
    assert_eq!(e.context().path.as_deref(), Some("result[0].sys_id"), "{e}");
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("<html>login</html>"))
        .mount(&server)
        .await;
    let e = client(&server.uri(), options())
        .get("api/x")
        .send_json::<Envelope>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Protocol);
}

/// A loopback HTTP server that answers every request after `delay`, and records the most
/// requests it had in flight at once.
async fn counting_server(
    delay: Duration,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let in_flight = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let most_out = most.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let (in_flight, most) = (in_flight.clone(), most.clone());
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = sock.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    let now = in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                    most.fetch_max(now, Ordering::SeqCst);
                    tokio::time::sleep(delay).await;
                    in_flight.fetch_sub(1, Ordering::SeqCst);
                    let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
                    if sock.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    (format!("http://{addr}"), most_out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrency_limit_caps_requests_in_flight() {
    let (uri, most) = counting_server(Duration::from_millis(30)).await;
    let c = std::sync::Arc::new(client(&uri, options().max_concurrency(2)));
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.get("api/x").send().await.map(|r| r.status.as_u16())
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap().unwrap(), 200);
    }
    let most = most.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (1..=2).contains(&most),
        "{most} requests were in flight at once"
    );
}

#[tokio::test]
async fn rate_limit_spaces_requests() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client(
        &server.uri(),
        options().rate_limit(workbridge_http::RateLimit::per_second(20).burst(1)),
    );
    let start = std::time::Instant::now();
    for _ in 0..5 {
        c.get("api/x").send().await.unwrap();
    }
    // Five requests at 20 per second with no burst cannot all go within 4 × 50 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(190),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn an_absurd_retry_after_never_freezes_the_client() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "99999999"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let start = tokio::time::Instant::now();
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    // The next call neither hangs nor sends: the pending pause (clamped to max_server_wait,
    // 300 s) is beyond its 120 s budget, so it fails at once and says why.
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert!(e.to_string().contains("nothing was sent"), "{e}");
    assert!(e.retry_after().unwrap() <= Duration::from_secs(300));
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    // Once the clamped pause is over, the healthy server is used again.
    tokio::time::sleep(Duration::from_secs(300)).await;
    c.get("api/x").send().await.unwrap();
    assert_eq!(server.received_requests().await.unwrap().len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_pause_within_the_budget_is_waited_by_the_next_call() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).insert_header("Retry-After", "30"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    c.get("api/x").send().await.unwrap();
    let start = tokio::time::Instant::now();
    c.get("api/x").send().await.unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// A write's deadline (`workbridge_core::fence`): a slow answer is given up at the deadline and
/// the request is not sent again; a retry whose wait would pass the deadline is not made.
#[tokio::test]
async fn nothing_is_sent_after_the_write_deadline() {
    use tokio::time::Instant;
    use workbridge_core::fence;

    let slow = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/x"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)))
        .mount(&slow)
        .await;
    let c = client(&slow.uri(), options());
    let e = fence::within(
        Instant::now() + Duration::from_millis(300),
        c.get("api/x").send(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.to_string().contains("deadline"), "{e}");
    assert_eq!(slow.received_requests().await.unwrap().len(), 1);

    // 503 asking for 2 s: without a deadline the client waits and succeeds; with a deadline
    // in 1 s it stops after the first answer.
    let server = server_answering(&[503, 200]).await;
    Mock::given(method("GET"))
        .and(path("/api/y"))
        .respond_with(ResponseTemplate::new(503).insert_header("Retry-After", "2"))
        .mount(&server)
        .await;
    let c = client(&server.uri(), options());
    let e = fence::within(
        Instant::now() + Duration::from_secs(1),
        c.get("api/y").send(),
    )
    .await
    .unwrap_err();
    assert!(e.to_string().contains("is not sent again"), "{e}");
    assert_eq!(c.requests_sent(), 1);
    // Outside a fence the same client retries as before.
    let ok = c.get("api/x").send().await.unwrap();
    assert_eq!(ok.status.as_u16(), 200);
}
