//! Which servers a client may reach: plain http only where the options say so, by name.

use wiremock::matchers::any;
use wiremock::{Mock, MockServer, ResponseTemplate};
use workbridge_core::ErrorKind;
use workbridge_http::{ClientOptions, HttpClient};

/// An on-premises server on plain http (TFS on port 8080, ALM on an internal port) is reached
/// once its host is named, and only then; nothing else on plain http is opened by that.
#[tokio::test]
async fn plain_http_reaches_a_named_host_and_no_other() {
    let server = MockServer::start().await;
    Mock::given(any())
        .respond_with(ResponseTemplate::new(200).set_body_string("{}"))
        .mount(&server)
        .await;
    let addr = server.address();
    let url = format!(
        "http://{}:{}/tfs/DefaultCollection/",
        addr.ip(),
        addr.port()
    );
    let refused = HttpClient::builder(&url)
        .options(ClientOptions::default())
        .build()
        .unwrap_err();
    assert_eq!(refused.kind(), ErrorKind::Config);
    assert!(refused.to_string().contains("plain http"), "{refused}");
    let named = HttpClient::builder(&url)
        .options(ClientOptions::default().allow_http_to(addr.ip().to_string()))
        .build()
        .expect("a named host may be reached over plain http");
    let answer: serde_json::Value = named
        .get("_apis/projects")
        .send()
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(answer, serde_json::json!({}));
    assert_eq!(server.received_requests().await.unwrap().len(), 1);
    let other = HttpClient::builder("http://tfs-other:8080/tfs/")
        .options(ClientOptions::default().allow_http_to(addr.ip().to_string()))
        .build()
        .unwrap_err();
    assert!(other.to_string().contains("allow_http_to"), "{other}");
}

/// A client certificate that is not PEM with a key is a configuration error at build time,
/// saying what is wrong and showing nothing of the file.
#[test]
fn a_bad_client_certificate_is_refused_at_build_time() {
    let e = HttpClient::builder("https://dev.azure.com/acme/")
        .options(ClientOptions::default().client_identity(b"not a pem: hunter2".to_vec()))
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Config);
    assert!(e.to_string().contains("client certificate"), "{e}");
    assert!(!format!("{e} {e:?}").contains("hunter2"));
}
