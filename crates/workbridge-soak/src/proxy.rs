//! A loopback TCP proxy between the worker and a simulator that breaks the wire: it holds a
//! request past the client's timeout and then delivers it (the server applies it late), resets
//! connections before the request reaches the server, and lets a request through but resets the
//! connection when the answer comes (the reply of an applied write is lost).
//!
//! It works on bytes, per request: a chunk from the client that starts with an HTTP method opens
//! a request, and the fault is chosen then.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;

/// What the proxy does to requests, each at its ratio (0.0–1.0).
#[derive(Debug, Clone, Copy)]
pub(crate) struct WireFaults {
    /// Hold the request this long, then deliver it.
    pub(crate) delay: Duration,
    /// Ratio of requests held.
    pub(crate) delay_ratio: f64,
    /// Whether writes (not GET) may be held; a held write lands after the client gave up.
    pub(crate) delay_writes: bool,
    /// Ratio of requests whose connection is reset before they are forwarded.
    pub(crate) reset_ratio: f64,
    /// Ratio of requests forwarded whose answer is replaced by a reset.
    pub(crate) lose_reply_ratio: f64,
}

/// What the proxy did.
#[derive(Debug, Default)]
pub(crate) struct WireStats {
    /// Requests seen.
    pub(crate) requests: AtomicU64,
    /// Requests held past the client's timeout, then delivered.
    pub(crate) delayed: AtomicU64,
    /// Held requests that were writes.
    pub(crate) delayed_writes: AtomicU64,
    /// Connections reset before the request was forwarded.
    pub(crate) resets: AtomicU64,
    /// Answers lost after the server handled the request.
    pub(crate) lost_replies: AtomicU64,
    /// The request lines of the held writes.
    held: std::sync::Mutex<Vec<String>>,
}

/// A running proxy.
pub(crate) struct Proxy {
    /// Where clients connect.
    pub(crate) addr: SocketAddr,
    /// Its counts.
    pub(crate) stats: Arc<WireStats>,
    faults: Arc<std::sync::Mutex<Option<WireFaults>>>,
}

impl Proxy {
    /// Starts a proxy to `upstream` that breaks the wire as `faults` say (relays as it is with
    /// `None`).
    pub(crate) async fn start(
        upstream: SocketAddr,
        faults: Option<WireFaults>,
        seed: u64,
    ) -> std::io::Result<Proxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let stats = Arc::new(WireStats::default());
        let faults = Arc::new(std::sync::Mutex::new(faults));
        let rng = Arc::new(Mutex::new(StdRng::seed_from_u64(seed)));
        let (st, fl) = (stats.clone(), faults.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (st, fl, rng) = (st.clone(), fl.clone(), rng.clone());
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        relay(client, server, st, fl, rng).await;
                    }
                });
            }
        });
        Ok(Proxy {
            addr,
            stats,
            faults,
        })
    }

    /// Stops injecting faults (connections are relayed as they are).
    pub(crate) fn heal(&self) {
        *self
            .faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = None;
    }

    /// The request lines of the writes it held.
    pub(crate) fn held_writes(&self) -> Vec<String> {
        self.stats
            .held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `http://127.0.0.1:port` with `path` appended.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

const METHODS: [&[u8]; 5] = [b"GET ", b"POST ", b"PATCH ", b"PUT ", b"DELETE "];

async fn relay(
    client: TcpStream,
    server: TcpStream,
    stats: Arc<WireStats>,
    faults: Arc<std::sync::Mutex<Option<WireFaults>>>,
    rng: Arc<Mutex<StdRng>>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut cr, mut cw) = client.into_split();
    let (mut sr, mut sw) = server.into_split();
    // A request forwarded whose answer has not come yet.
    let pending = Arc::new(AtomicBool::new(false));
    let lose_next = Arc::new(AtomicBool::new(false));
    let (p, lose) = (pending.clone(), lose_next.clone());
    // Answers: forwarded, unless the request's reply is to be lost (then the client's connection
    // is closed without it). Once the client is gone, one more answer is read and dropped.
    let mut down = tokio::spawn(async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match tokio::time::timeout(Duration::from_secs(30), sr.read(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => n,
                _ => return,
            };
            p.store(false, Ordering::SeqCst);
            if lose.swap(false, Ordering::SeqCst) {
                return;
            }
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    });
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match cr.read(&mut buf).await {
            Ok(n) if n > 0 => n,
            _ => break,
        };
        let chunk = &buf[..n];
        let opens = METHODS.iter().any(|m| chunk.starts_with(m));
        let f = *faults
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if opens {
            stats.requests.fetch_add(1, Ordering::Relaxed);
        }
        if let (true, Some(f)) = (opens, f) {
            let write = !chunk.starts_with(b"GET ");
            let roll: f64 = rng.lock().await.random();
            if roll < f.reset_ratio {
                stats.resets.fetch_add(1, Ordering::Relaxed);
                down.abort();
                return;
            } else if roll < f.reset_ratio + f.lose_reply_ratio {
                stats.lost_replies.fetch_add(1, Ordering::Relaxed);
                lose_next.store(true, Ordering::SeqCst);
            } else if roll < f.reset_ratio + f.lose_reply_ratio + f.delay_ratio
                && (f.delay_writes || !write)
            {
                stats.delayed.fetch_add(1, Ordering::Relaxed);
                if write {
                    stats.delayed_writes.fetch_add(1, Ordering::Relaxed);
                    let line = String::from_utf8_lossy(chunk)
                        .lines()
                        .next()
                        .unwrap_or_default()
                        .to_owned();
                    stats
                        .held
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .push(line);
                }
                tokio::time::sleep(f.delay).await;
            }
        }
        if opens {
            pending.store(true, Ordering::SeqCst);
        }
        if sw.write_all(chunk).await.is_err() {
            break;
        }
    }
    // The client is gone. A request already forwarded is still answered to the proxy, which
    // drops the answer: a late write lands all the same.
    if pending.load(Ordering::SeqCst) {
        let _ = tokio::time::timeout(Duration::from_secs(30), &mut down).await;
    }
    down.abort();
}
