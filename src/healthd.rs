//! `pgsqlms health-server`: the HTTP edge of the load-balancer checks
//! (decisions in `health`). Each request opens one session to the local
//! PostgreSQL, runs one query and closes it: nothing is held between
//! requests and nothing is ever written. Slow or oversized requests are cut
//! off (header read timeout, 16 kB buffer, a deadline per connection), and
//! at most `MAX_CONNECTIONS` are served at once: a misbehaving client gets
//! a closed connection, never a hung server.

use crate::health::{self, BadRequest};
use crate::params::Params;
use crate::process::RunAs;
use crate::status_cmd;
use http_body_util::Full;
use hyper::body::Bytes;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;

pub const MAX_CONNECTIONS: usize = 64;
const HEADER_TIMEOUT: Duration = Duration::from_secs(3);
const CONNECTION_DEADLINE: Duration = Duration::from_secs(10);

pub struct Config {
    pub listen: SocketAddr,
    /// PEM certificate chain and private key: serve HTTPS.
    pub tls: Option<(std::path::PathBuf, std::path::PathBuf)>,
    pub params: Params,
    pub resource: String,
    pub rsctmp: String,
    pub pg_timeout: Duration,
}

struct State {
    cfg: Config,
    user: RunAs,
}

fn json(status: u16, body: String, head: bool) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(if head { Bytes::new() } else { Bytes::from(body) }));
    *r.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    h.insert(hyper::header::CACHE_CONTROL, hyper::header::HeaderValue::from_static("no-store"));
    r
}

async fn answer(state: Rc<State>, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    let head = req.method() == hyper::Method::HEAD;
    let pq = req.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/");
    let check = match health::route(req.method().as_str(), pq) {
        Ok(c) => c,
        Err(BadRequest::NotFound) => {
            return json(404, r#"{"ok":false,"reason":"unknown path: use /primary, /replica[?lag=bytes] or /health"}"#.into(), head)
        }
        Err(BadRequest::MethodNotAllowed) => {
            return json(405, r#"{"ok":false,"reason":"only GET and HEAD"}"#.into(), head)
        }
        Err(BadRequest::BadQuery(why)) => {
            let body = serde_json::json!({"ok": false, "reason": why}).to_string();
            return json(400, body, head);
        }
    };
    let marker = health::promotion_marker(&state.cfg.rsctmp, &state.cfg.resource);
    // A regular file in a root-owned directory; a link is not a marker.
    let promoted = std::fs::symlink_metadata(&marker).is_ok_and(|m| m.file_type().is_file());
    let deadline = Instant::now() + state.cfg.pg_timeout;
    let facts = status_cmd::local_pg_as(&state.cfg.params, &state.user, false, deadline).await;
    let a = health::decide(check, promoted, &facts);
    let body = serde_json::to_string(&a).unwrap_or_else(|_| "{}".into());
    json(a.status, body, head)
}

/// The TLS acceptor for `--tls-cert`/`--tls-key` (rustls with ring; TLS 1.2
/// and 1.3 only).
fn tls_acceptor(cert: &std::path::Path, key: &std::path::Path) -> Result<TlsAcceptor, String> {
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect())
        .map_err(|e| format!("cannot read the certificate {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("no certificate in {}", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("cannot read the private key {}: {e}", key.display()))?;
    let provider = std::sync::Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let config = tokio_rustls::rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("TLS certificate and key: {e}"))?;
    Ok(TlsAcceptor::from(std::sync::Arc::new(config)))
}

async fn serve_connection<S>(io: S, state: Rc<State>) -> Result<(), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + 'static,
{
    let svc = service_fn(move |req| {
        let state = state.clone();
        async move { Ok::<_, std::convert::Infallible>(answer(state, req).await) }
    });
    http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .max_buf_size(16 * 1024)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), svc)
        .await
        .map_err(|e| e.to_string())
}

pub async fn serve(cfg: Config) -> Result<(), String> {
    let user = RunAs::lookup(&cfg.params.system_user).map_err(|e| e.to_string())?;
    let tls = match &cfg.tls {
        Some((cert, key)) => Some(tls_acceptor(cert, key)?),
        None => None,
    };
    let listener = TcpListener::bind(cfg.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cfg.listen))?;
    log::info!(
        "health service listening on {}{} (PostgreSQL {}:{}, resource {})",
        cfg.listen,
        if cfg.tls.is_some() { " (HTTPS)" } else { "" },
        cfg.params.pghost,
        cfg.params.pgport,
        cfg.resource
    );
    let state = Rc::new(State { cfg, user });
    let open = Rc::new(std::cell::Cell::new(0usize));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                // Out of descriptors and the like: wait a little, go on.
                log::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if open.get() >= MAX_CONNECTIONS {
            log::debug!("{peer}: too many connections, closing");
            drop(stream);
            continue;
        }
        open.set(open.get() + 1);
        let state = state.clone();
        let open = open.clone();
        let tls = tls.clone();
        tokio::task::spawn_local(async move {
            let conn = async move {
                match tls {
                    None => serve_connection(stream, state).await,
                    Some(acceptor) => {
                        let s = acceptor.accept(stream).await.map_err(|e| format!("TLS: {e}"))?;
                        serve_connection(s, state).await
                    }
                }
            };
            match tokio::time::timeout(CONNECTION_DEADLINE, conn).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => log::debug!("{peer}: {e}"),
                Err(_) => log::debug!("{peer}: connection deadline, closed"),
            }
            open.set(open.get() - 1);
        });
    }
}
