//! Serving: on 127.0.0.1, over plain HTTP or TLS with a self-signed certificate, until
//! stopped or dropped.

use std::net::SocketAddr;

use axum::Router;
use tokio::sync::oneshot;

/// TLS for a simulator: a self-signed certificate for `localhost` and `127.0.0.1`, made when
/// the simulator starts, its PEM written where a client can trust it.
#[derive(Debug, Clone, Default)]
pub struct Tls {
    pub(crate) pem_path: Option<std::path::PathBuf>,
}

impl Tls {
    /// TLS with the certificate's PEM written to a file in the system's temporary directory.
    pub fn self_signed() -> Self {
        Tls::default()
    }

    /// TLS with the certificate's PEM written to `path`.
    pub fn pem_at(path: impl Into<std::path::PathBuf>) -> Self {
        Tls {
            pem_path: Some(path.into()),
        }
    }
}

/// The certificate a TLS simulator serves.
#[derive(Debug, Clone)]
pub struct Certificate {
    /// The certificate in PEM.
    pub pem: String,
    /// Where the PEM was written.
    pub path: std::path::PathBuf,
}

/// A running simulator: its base URL, its control, and its shutdown.
#[derive(Debug)]
pub(crate) struct Running {
    pub(crate) addr: SocketAddr,
    pub(crate) certificate: Option<Certificate>,
    pub(crate) shutdown: Option<oneshot::Sender<()>>,
    pub(crate) task: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// `http://127.0.0.1:port` or, with TLS, `https://localhost:port` (the name the
    /// certificate is for).
    pub(crate) fn base_url(&self) -> String {
        match self.certificate {
            Some(_) => format!("https://localhost:{}", self.addr.port()),
            None => format!("http://{}", self.addr),
        }
    }

    /// Stops serving and waits until it has stopped.
    pub(crate) async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Serves `router` on 127.0.0.1 at the options' port (0: any free port) in a background task,
/// over TLS when the options ask for it.
pub(crate) async fn serve(router: Router, options: &super::SimOptions) -> std::io::Result<Running> {
    let (port, tls) = (options.port, options.tls.as_ref());
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = oneshot::channel::<()>();
    let Some(tls) = tls else {
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async {
                    let _ = rx.await;
                })
                .await;
        });
        return Ok(Running {
            addr,
            certificate: None,
            shutdown: Some(tx),
            task: Some(task),
        });
    };
    let (acceptor, certificate) = tls_acceptor(tls, addr)?;
    let task = tokio::spawn(serve_tls(listener, router, acceptor, rx));
    Ok(Running {
        addr,
        certificate: Some(certificate),
        shutdown: Some(tx),
        task: Some(task),
    })
}

pub(crate) fn tls_acceptor(
    tls: &Tls,
    addr: SocketAddr,
) -> std::io::Result<(tokio_rustls::TlsAcceptor, Certificate)> {
    let invalid = |e: &dyn std::fmt::Display| std::io::Error::other(e.to_string());
    let key = rcgen::KeyPair::generate().map_err(|e| invalid(&e))?;
    let params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .map_err(|e| invalid(&e))?;
    let cert = params.self_signed(&key).map_err(|e| invalid(&e))?;
    let pem = cert.pem();
    let path = tls.pem_path.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("workbridge-sim-{}.pem", addr.port()))
    });
    std::fs::write(&path, &pem)?;
    let der = tokio_rustls::rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(std::sync::Arc::new(
        tokio_rustls::rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| invalid(&e))?
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], der)
    .map_err(|e| invalid(&e))?;
    let mut config = config;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok((
        tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config)),
        Certificate { pem, path },
    ))
}

pub(crate) async fn serve_tls(
    listener: tokio::net::TcpListener,
    router: Router,
    acceptor: tokio_rustls::TlsAcceptor,
    mut rx: oneshot::Receiver<()>,
) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        let (stream, _) = tokio::select! {
            _ = &mut rx => break,
            accepted = listener.accept() => match accepted {
                Ok(s) => s,
                Err(_) => continue,
            },
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        connections.spawn(async move {
            // A client that refuses the certificate ends its own connection, nothing else.
            let Ok(stream) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper_util::service::TowerToHyperService::new(router);
            let _ =
                hyper_util::server::conn::auto::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection_with_upgrades(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
        });
    }
    connections.abort_all();
}
