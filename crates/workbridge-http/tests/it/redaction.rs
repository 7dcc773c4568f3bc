use std::io::Write;
use std::sync::{Arc, Mutex};

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_http::header::HeaderName;
use workbridge_http::{
    BasicAuth, BearerAuth, ClientOptions, CookieSession, OAuth2, OAuth2Grant, ProxyConfig,
    SecretString, Session,
};

use crate::{client_with, options};

const SECRETS: [&str; 6] = [
    "hunter2",
    "pat-secret",
    "bearer-secret",
    "client-secret",
    "refresh-secret",
    "cookie-secret",
];

fn assert_clean(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} shows the secret {s}: {text}");
    }
}

#[derive(Debug)]
struct NoopLogin;

#[async_trait::async_trait]
impl workbridge_http::SessionLogin for NoopLogin {
    async fn login(&self, _: &reqwest::Client) -> workbridge_core::Result<Session> {
        Ok(Session::new().cookie("QCSession", "cookie-secret"))
    }
}

#[test]
fn debug_of_every_credential_and_config_type_hides_secrets() {
    let url =
        url::Url::parse("https://acme.service-now.com/oauth_token.do?client_secret=client-secret")
            .unwrap();
    let oauth = OAuth2::new(
        url.clone(),
        "id",
        "client-secret",
        OAuth2Grant::RefreshToken(SecretString::from("refresh-secret")),
    );
    let oauth_pw = OAuth2::password(url, "id", "client-secret", "admin", "hunter2");
    let proxy = ProxyConfig {
        url: url::Url::parse("http://user:hunter2@proxy.corp:3128").unwrap(),
        username: Some("user".into()),
        password: Some(SecretString::from("hunter2")),
    };
    let opts = ClientOptions::default().proxy(proxy.clone());
    let session = Session::new()
        .cookie("LWSSO_COOKIE_KEY", "cookie-secret")
        .header(HeaderName::from_static("x-xsrf-token"), "cookie-secret");
    let client = workbridge_http::HttpClient::builder("https://admin:hunter2@acme.service-now.com")
        .auth(Arc::new(BasicAuth::new("admin", "hunter2")))
        .options(opts.clone())
        .build()
        .unwrap();
    let shown = [
        format!("{:?}", BasicAuth::new("admin", "hunter2")),
        format!("{:?}", BasicAuth::pat("pat-secret")),
        format!("{:?}", BearerAuth::new("bearer-secret")),
        format!("{oauth:?}"),
        format!("{oauth_pw:?}"),
        format!("{proxy:?}"),
        format!("{opts:?}"),
        format!("{session:?}"),
        format!("{:?}", CookieSession::new(Arc::new(NoopLogin))),
        format!("{client:?}"),
        format!("{:?}", client.get("api?access_token=bearer-secret")),
    ];
    for s in &shown {
        assert_clean("Debug", s);
    }
    assert!(
        shown[0].contains("admin"),
        "the user name is still shown: {}",
        shown[0]
    );
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn errors_and_logs_hide_credentials_and_secret_parameters() {
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(503).set_body_string("busy"))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(401))
        .with_priority(2)
        .mount(&server)
        .await;
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(BasicAuth::new("admin", "hunter2")),
    );
    let e = c
        .get("api/x?access_token=bearer-secret&sysparm_limit=1")
        .send()
        .await
        .unwrap_err();
    assert_clean("error", &format!("{e} {e:?}"));
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    assert!(logs.contains("access_token=REDACTED"), "{logs}");
    assert_clean("logs", &logs);
    // The credential did reach the server.
    let sent = server.received_requests().await.unwrap();
    assert!(sent[0].headers.get("authorization").is_some());
}

/// Each answer is logged at DEBUG with what an operator looks for — method, route, status,
/// how long it took, the server's request id — and never a header value of ours.
#[tokio::test]
async fn each_answer_is_logged_with_its_status_duration_and_request_id() {
    let buffer = Buffer::default();
    let sink = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_writer(move || sink.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("x-ms-request-id", "req-4711")
                .set_body_string("{}"),
        )
        .mount(&server)
        .await;
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(BasicAuth::new("admin", "hunter2")),
    );
    c.get("api/items/7").send().await.unwrap();
    let logs = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    let answered = logs
        .lines()
        .find(|l| l.contains("answered"))
        .unwrap_or_else(|| panic!("no answered event: {logs}"));
    for part in [
        "method=GET",
        "api/items/7",
        "status=200",
        "duration_ms=",
        "request_id=req-4711",
    ] {
        assert!(answered.contains(part), "{part} missing: {answered}");
    }
    assert_clean("logs", &logs);
}
