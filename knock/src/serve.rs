//! `serve`: HTTP/1.1 on `--listen`, plain (TLS left to a load balancer in front) or HTTPS with
//! `--tls-cert`/`--tls-key` ([`tls_acceptor`]). Each request is read with its body capped at
//! [`MAX_BODY`] (a larger `Content-Length` is refused before the body is read), reduced to an
//! [`api::Request`] whose peer is the TCP peer, and answered by the one handler. Stops on SIGTERM
//! or SIGINT.

use crate::api::{self, Service, MAX_BODY};
use crate::gate::Gate;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// Time a client gets to send a request's headers.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why serving stopped.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
}

/// Why `--tls-cert`/`--tls-key` cannot be served; `flag` names the one to blame.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct TlsError {
    pub flag: &'static str,
    pub message: String,
}

/// The TLS side of `serve` from a PEM certificate chain and its private key (aws-lc-rs, TLS 1.2
/// and 1.3, HTTP/1.1 by ALPN, no client certificates: callers authenticate with a token or key).
pub fn tls_acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, TlsError> {
    let fail = |flag: &'static str, path: &Path, what: String| TlsError {
        flag,
        message: format!("{}: {what}", path.display()),
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| {
            fail(
                "--tls-cert",
                cert,
                format!("cannot read PEM certificates: {e}"),
            )
        })?;
    if chain.is_empty() {
        return Err(fail("--tls-cert", cert, "holds no PEM certificate".into()));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        fail(
            "--tls-key",
            key,
            format!("cannot read a PEM private key: {e}"),
        )
    })?;
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()
        .map_err(|e| fail("--tls-cert", cert, e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            fail(
                "--tls-key",
                key,
                format!("does not go with the certificate in --tls-cert: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// Serves until SIGTERM/SIGINT, over TLS when `tls` is given. Logs `listening` with the bound
/// address (port 0 picks one) and the scheme.
pub async fn serve<G: Gate>(
    addr: SocketAddr,
    tls: Option<TlsAcceptor>,
    service: Arc<Service<G>>,
) -> Result<(), ServeError> {
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind {
            addr: addr.to_string(),
            source,
        })?;
    let bound = listener.local_addr().unwrap_or(addr);
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!(addr = %bound, scheme = %scheme, "listening");
    let mut stop = std::pin::pin!(shutdown());
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut stop => break,
        };
        let service = service.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, service, peer).await,
                // The handshake gets the same time as a request's headers.
                Some(tls) => match tokio::time::timeout(HEADER_TIMEOUT, tls.accept(stream)).await {
                    Ok(Ok(stream)) => connection(stream, service, peer).await,
                    Ok(Err(e)) => tracing::debug!(error = %e, %peer, "TLS handshake failed"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                },
            }
        });
    }
    tracing::info!("stopping");
    Ok(())
}

/// One client connection (plain or TLS), its requests answered until it closes.
async fn connection<G, S>(stream: S, service: Arc<Service<G>>, peer: SocketAddr)
where
    G: Gate,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = service_fn(move |req| {
        let service = service.clone();
        async move { Ok::<_, Infallible>(answer(&service, req, peer).await) }
    });
    let conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_TIMEOUT)
        .serve_connection(TokioIo::new(stream), handler);
    if let Err(e) = conn.await {
        tracing::debug!(error = %e, "connection ended with an error");
    }
}

async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {},
                _ = tokio::signal::ctrl_c() => {},
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

fn header<'a>(req: &'a Request<Incoming>, name: &str) -> Option<&'a str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

async fn answer<G: Gate>(
    service: &Service<G>,
    req: Request<Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let declared = header(&req, "content-length").and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return too_large();
    }
    let (parts, body) = req.into_parts();
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return too_large(),
    };
    let req = Request::from_parts(parts, ());
    let get = |name: &str| req.headers().get(name).and_then(|v| v.to_str().ok());
    let request = api::Request {
        method: req.method().as_str(),
        path: req.uri().path(),
        authorization: get("authorization"),
        api_key: get("x-api-key"),
        forwarded_for: get("x-forwarded-for"),
        peer: peer.ip(),
        body: &body,
    };
    to_http(&service.handle(&request).await)
}

fn too_large() -> Response<Full<Bytes>> {
    to_http(&api::Response {
        status: 413,
        body: Some(serde_json::json!({
            "code": "payload_too_large",
            "message": format!("the body is over {MAX_BODY} bytes"),
        })),
        retry_after: None,
    })
}

/// An API response as HTTP.
pub fn to_http(response: &api::Response) -> Response<Full<Bytes>> {
    let body = response.body_text();
    let mut out = Response::new(Full::new(Bytes::from(body)));
    *out.status_mut() =
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if response.body.is_some() {
        out.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    } else {
        out.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
    }
    if let Some(secs) = response.retry_after {
        out.headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(secs));
    }
    out
}
