use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use wiremock::matchers::{body_string_contains, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_core::ErrorKind;
use workbridge_http::header::HeaderName;
use workbridge_http::{BasicAuth, CookieSession, OAuth2, Session, SessionLogin};

use crate::{client_with, options};

fn token(access: &str, refresh: &str, expires_in: u64) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(serde_json::json!({
        "access_token": access, "refresh_token": refresh, "scope": "useraccount",
        "token_type": "Bearer", "expires_in": expires_in
    }))
}

fn oauth(server: &MockServer) -> OAuth2 {
    let url = url::Url::parse(&format!("{}/oauth_token.do", server.uri())).unwrap();
    OAuth2::password(url, "client-id", "client-secret", "admin", "pw")
}

#[tokio::test]
async fn basic_and_pat_headers() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Basic YWRtaW46YWRtaW4=")) // admin:admin
        .and(path("/basic"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Basic OnRva2Vu")) // :token
        .and(path("/pat"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    client_with(
        &server.uri(),
        options(),
        Arc::new(BasicAuth::new("admin", "admin")),
    )
    .get("basic")
    .send()
    .await
    .unwrap();
    client_with(&server.uri(), options(), Arc::new(BasicAuth::pat("token")))
        .get("pat")
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn oauth_password_grant_then_bearer_and_token_reused() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .and(body_string_contains("grant_type=password"))
        .and(body_string_contains("username=admin"))
        .respond_with(token("A", "R1", 1800))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer A"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    for _ in 0..3 {
        c.get("api/now/table/incident").send().await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn oauth_refreshes_before_expiry_with_the_refresh_grant() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("grant_type=password"))
        .respond_with(token("A", "R1", 300))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=R1"))
        .respond_with(token("B", "R2", 300))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer A"))
        .and(path("/one"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer B"))
        .and(path("/two"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    c.get("one").send().await.unwrap();
    // 250 s later the token has 50 s left: under the 60 s margin, so it is refreshed first.
    tokio::time::advance(Duration::from_secs(250)).await;
    c.get("two").send().await.unwrap();
}

#[tokio::test]
async fn oauth_renews_once_on_401() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("grant_type=password"))
        .respond_with(token("A", "R1", 1800))
        .mount(&server)
        .await;
    Mock::given(body_string_contains("grant_type=refresh_token"))
        .respond_with(token("B", "R2", 1800))
        .expect(1)
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer A"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(header("authorization", "Bearer B"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    c.get("api/x").send().await.unwrap();
}

#[tokio::test]
async fn oauth_never_loops_on_401() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth_token.do"))
        .respond_with(token("A", "R", 1800))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/api/x"))
        .respond_with(ResponseTemplate::new(401).set_body_json(serde_json::json!({
            "error": {"message": "User Not Authenticated", "detail": "Required to provide Auth information"},
            "status": "failure"
        })))
        .expect(2)
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    assert!(e.to_string().contains("User Not Authenticated"), "{e}");
}

#[tokio::test]
async fn oauth_refused_grant_is_unauthenticated_without_secrets() {
    let server = MockServer::start().await;
    Mock::given(path("/oauth_token.do"))
        .respond_with(ResponseTemplate::new(401).set_body_json(
            serde_json::json!({"error_description": "access_denied", "error": "server_error"}),
        ))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    let e = c.get("api/x").send().await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthenticated);
    let shown = format!("{e} {e:?}");
    assert!(
        !shown.contains("client-secret") && !shown.contains("=pw"),
        "{shown}"
    );
}

#[derive(Debug)]
struct AlmLikeLogin {
    logins: AtomicUsize,
    uri: String,
}

#[async_trait]
impl SessionLogin for AlmLikeLogin {
    async fn login(&self, client: &reqwest::Client) -> workbridge_core::Result<Session> {
        let n = self.logins.fetch_add(1, Ordering::SeqCst) + 1;
        let resp = client
            .post(format!("{}/qcbin/rest/site-session", self.uri))
            .send()
            .await
            .map_err(|_| workbridge_core::Error::new(ErrorKind::Unavailable, "login failed"))?;
        let session = Session::new().with_set_cookies(resp.headers());
        let xsrf = session
            .cookie_value("XSRF-TOKEN")
            .unwrap_or_default()
            .to_owned();
        assert_eq!(xsrf, format!("x{n}"));
        Ok(session.header(HeaderName::from_static("x-xsrf-token"), xsrf))
    }
}

#[tokio::test]
async fn cookie_session_sends_cookies_and_relogs_once_when_expired() {
    let server = MockServer::start().await;
    Mock::given(path("/qcbin/rest/site-session"))
        .respond_with(
            ResponseTemplate::new(201)
                .append_header("Set-Cookie", "QCSession=s1; Path=/")
                .append_header("Set-Cookie", "XSRF-TOKEN=x1; Path=/"),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(path("/qcbin/rest/site-session"))
        .respond_with(
            ResponseTemplate::new(201)
                .append_header("Set-Cookie", "QCSession=s2; Path=/")
                .append_header("Set-Cookie", "XSRF-TOKEN=x2; Path=/"),
        )
        .with_priority(2)
        .mount(&server)
        .await;
    // The first session has expired on the server.
    Mock::given(header("cookie", "QCSession=s1; XSRF-TOKEN=x1"))
        .and(path("/qcbin/rest/defects"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    Mock::given(header("cookie", "QCSession=s2; XSRF-TOKEN=x2"))
        .and(header("x-xsrf-token", "x2"))
        .and(path("/qcbin/rest/defects"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let login = Arc::new(AlmLikeLogin {
        logins: AtomicUsize::new(0),
        uri: server.uri(),
    });
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(CookieSession::new(login.clone())),
    );
    c.get("qcbin/rest/defects").send().await.unwrap();
    c.get("qcbin/rest/defects").send().await.unwrap();
    assert_eq!(login.logins.load(Ordering::SeqCst), 2);
}

#[tokio::test(start_paused = true)]
async fn oauth_keeps_the_refresh_token_when_a_refresh_answers_without_one() {
    let server = MockServer::start().await;
    Mock::given(body_string_contains("grant_type=password"))
        .respond_with(token("A", "R1", 300))
        .expect(1)
        .mount(&server)
        .await;
    // ServiceNow's refresh grant answers with an access token only.
    Mock::given(body_string_contains("grant_type=refresh_token"))
        .and(body_string_contains("refresh_token=R1"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            serde_json::json!({"access_token": "B", "token_type": "Bearer", "expires_in": 300}),
        ))
        .expect(2)
        .mount(&server)
        .await;
    Mock::given(path("/api"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    c.get("api").send().await.unwrap();
    for _ in 0..2 {
        tokio::time::advance(Duration::from_secs(250)).await;
        c.get("api").send().await.unwrap();
    }
}

/// A second server, standing for another host: it must never see a request.
async fn elsewhere() -> MockServer {
    let other = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(serde_json::json!({"access_token": "x", "expires_in": 3600})),
        )
        .mount(&other)
        .await;
    other
}

#[tokio::test]
async fn a_redirect_of_the_token_request_to_another_host_carries_no_secret_there() {
    let server = MockServer::start().await;
    let other = elsewhere().await;
    // 307 re-sends the form body (client secret, password) if followed.
    Mock::given(method("POST"))
        .and(path("/oauth_token.do"))
        .respond_with(ResponseTemplate::new(307).insert_header(
            "Location",
            format!("{}/oauth_token.do", other.uri()).as_str(),
        ))
        .mount(&server)
        .await;
    let c = client_with(&server.uri(), options(), Arc::new(oauth(&server)));
    let e = c.get("api/x").send().await.unwrap_err();
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "the other host was reached"
    );
    let shown = format!("{e} {e:?}");
    for secret in ["client-secret", "pw"] {
        assert!(
            !shown.contains(&format!("={secret}")) && !shown.contains(&format!("\"{secret}\"")),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused_with_session_and_xsrf_headers() {
    let server = MockServer::start().await;
    let other = elsewhere().await;
    Mock::given(method("POST"))
        .and(path("/api/x"))
        .respond_with(
            ResponseTemplate::new(308)
                .insert_header("Location", format!("{}/api/x", other.uri()).as_str()),
        )
        .mount(&server)
        .await;
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(BasicAuth::new("admin", "pw")),
    );
    let e = c
        .post("api/x")
        .header(HeaderName::from_static("x-xsrf-token"), "xsrf-secret")
        .body(b"password=pw".to_vec(), "application/x-www-form-urlencoded")
        .send()
        .await
        .unwrap_err();
    assert!(
        other.received_requests().await.unwrap().is_empty(),
        "the other host was reached"
    );
    assert!(e.to_string().contains("another origin"), "{e}");
}

#[tokio::test]
async fn a_redirect_within_the_origin_is_followed() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/api/old"))
        .respond_with(ResponseTemplate::new(301).insert_header("Location", "/api/new"))
        .mount(&server)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/new"))
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(BasicAuth::new("admin", "pw")),
    );
    let r = c.get("api/old").send().await.unwrap();
    assert_eq!(r.status.as_u16(), 200);
}

/// Hands out `t1`, `t2`, ... each valid for `ttl`.
#[derive(Debug)]
struct Numbered {
    issued: AtomicUsize,
    ttl: Duration,
}

#[async_trait]
impl workbridge_http::TokenSource for Numbered {
    async fn token(
        &self,
    ) -> workbridge_core::Result<(workbridge_http::SecretString, Option<Duration>)> {
        let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
        Ok((format!("t{n}").into(), Some(self.ttl)))
    }
}

/// A token source's token is used until it nears its expiry, then a new one is fetched; a 401
/// fetches a new one and the request is sent once more: a service outlives its Entra ID
/// tokens.
#[tokio::test]
async fn a_token_source_is_asked_again_before_expiry_and_after_a_401() {
    let server = MockServer::start().await;
    Mock::given(header("authorization", "Bearer t1"))
        .respond_with(ResponseTemplate::new(401))
        .mount(&server)
        .await;
    for t in ["t2", "t3"] {
        Mock::given(header("authorization", format!("Bearer {t}").as_str()))
            .respond_with(ResponseTemplate::new(200))
            .mount(&server)
            .await;
    }
    // Valid for an hour: t1 is refused (revoked), t2 then serves every request.
    let hour = Arc::new(Numbered {
        issued: AtomicUsize::new(0),
        ttl: Duration::from_secs(3600),
    });
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(workbridge_http::TokenAuth::new(hour.clone())),
    );
    for _ in 0..3 {
        c.get("x").send().await.unwrap();
    }
    assert_eq!(
        hour.issued.load(Ordering::SeqCst),
        2,
        "t1, then t2 after the 401"
    );
    // Valid for less than the margin: a new token for each request.
    let short = Arc::new(Numbered {
        issued: AtomicUsize::new(1),
        ttl: Duration::from_secs(60),
    });
    let c = client_with(
        &server.uri(),
        options(),
        Arc::new(workbridge_http::TokenAuth::new(short.clone())),
    );
    c.get("x").send().await.unwrap();
    c.get("x").send().await.unwrap();
    assert_eq!(
        short.issued.load(Ordering::SeqCst),
        3,
        "t2, then t3 before t2 expires"
    );
    // Its Debug shows no token.
    let auth = workbridge_http::TokenAuth::new(hour);
    assert!(!format!("{auth:?}").contains("t2"));
}
