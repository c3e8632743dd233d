//! The go-plugin handshake as Terraform expects it: the magic-cookie check, a one-time server
//! certificate, mutual TLS that **requires** Terraform's client certificate (pinned to the exact
//! certificate Terraform put in `PLUGIN_CLIENT_CERT`), ALPN `h2`, and the single handshake line on
//! stdout. Nothing else is ever written to stdout.

use super::proto::plugin as plugin_pb;
use super::proto::tfplugin6 as pb;
use super::server::{Controller, ProviderService, Stdio};
use super::Provider;
use base64::Engine as _;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// The cookie Terraform sets so a provider knows it was launched by Terraform.
pub const MAGIC_COOKIE_KEY: &str = "TF_PLUGIN_MAGIC_COOKIE";
pub const MAGIC_COOKIE_VALUE: &str =
    "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";

/// What go-plugin prints when a plugin binary is run by hand.
pub const NOT_A_PROGRAM: &str =
    "This binary is a plugin. These are not meant to be executed directly.\n\
Please execute the program that consumes these plugins, which will\n\
load any plugins automatically";

/// gRPC message size limit, both ways, as Terraform's own SDK sets it.
const MAX_MESSAGE: usize = 256 << 20;
/// A TLS handshake that takes longer than this is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the Shutdown answer gets to leave before the process exits.
const SHUTDOWN_GRACE: Duration = Duration::from_millis(5);

#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("{NOT_A_PROGRAM}")]
    NotLaunchedByTerraform,
    #[error(
        "PLUGIN_CLIENT_CERT is not set: this provider only serves Terraform over mutual TLS \
         (AutoMTLS), and TF_DISABLE_PLUGIN_TLS is not supported"
    )]
    NoClientCertificate,
    #[error("PLUGIN_CLIENT_CERT does not hold a PEM certificate: {0}")]
    BadClientCertificate(String),
    #[error("generating the server certificate failed: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("TLS setup failed: {0}")]
    Tls(#[from] rustls::Error),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("gRPC server failed: {0}")]
    Grpc(#[from] tonic::transport::Error),
}

/// Checks the magic cookie; a person running the binary gets go-plugin's message.
pub fn check_cookie() -> Result<(), HandshakeError> {
    match std::env::var(MAGIC_COOKIE_KEY) {
        Ok(v) if v == MAGIC_COOKIE_VALUE => Ok(()),
        _ => Err(HandshakeError::NotLaunchedByTerraform),
    }
}

/// Serves `provider` until Terraform sends `Shutdown` (then returns) or the process is killed.
pub async fn serve<P: Provider>(provider: P) -> Result<(), HandshakeError> {
    let client_pem =
        std::env::var("PLUGIN_CLIENT_CERT").map_err(|_| HandshakeError::NoClientCertificate)?;
    let client_cert = CertificateDer::from_pem_slice(client_pem.as_bytes())
        .map_err(|e| HandshakeError::BadClientCertificate(e.to_string()))?;
    if std::env::var("PLUGIN_PROTOCOL_VERSIONS")
        .is_ok_and(|v| !v.split(',').any(|p| p.trim() == "6"))
    {
        tracing::error!(
            "Terraform did not offer plugin protocol 6; this provider needs Terraform 1.0 or later"
        );
    }

    let (server_der, tls) = tls_config(client_cert)?;
    let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
    let addr = listener.local_addr()?;

    // Ctrl-C goes to the whole process group; Terraform handles it and calls StopProvider.
    tokio::spawn(async {
        while tokio::signal::ctrl_c().await.is_ok() {
            tracing::debug!("ignoring SIGINT; Terraform will send StopProvider");
        }
    });

    let shutdown = Arc::new(Notify::new());
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_service_status("plugin", tonic_health::ServingStatus::Serving)
        .await;
    let provider = pb::provider_server::ProviderServer::new(ProviderService::new(provider))
        .max_decoding_message_size(MAX_MESSAGE)
        .max_encoding_message_size(MAX_MESSAGE);
    let router = tonic::transport::Server::builder()
        .add_service(provider)
        .add_service(health_service)
        .add_service(
            plugin_pb::grpc_controller_server::GrpcControllerServer::new(Controller {
                shutdown: shutdown.clone(),
            }),
        )
        .add_service(plugin_pb::grpc_stdio_server::GrpcStdioServer::new(Stdio));

    let incoming = accept_tls(listener, TlsAcceptor::from(Arc::new(tls)));
    print_handshake_line(&addr.to_string(), &server_der)?;
    tracing::debug!(%addr, "serving plugin protocol 6");

    tokio::select! {
        served = router.serve_with_incoming(incoming) => served?,
        () = shutdown.notified() => {
            // Give the Shutdown response a moment to reach Terraform; connections are then
            // dropped with the process, as go-plugin's servers do.
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        }
    }
    Ok(())
}

/// The one line Terraform reads from stdout: `1|6|tcp|ADDR|grpc|<server cert, base64 DER>`.
#[allow(clippy::print_stdout)]
fn print_handshake_line(addr: &str, server_der: &[u8]) -> std::io::Result<()> {
    let cert = base64::engine::general_purpose::STANDARD_NO_PAD.encode(server_der);
    let mut out = std::io::stdout().lock();
    writeln!(out, "1|6|tcp|{addr}|grpc|{cert}")?;
    out.flush()
}

/// A one-time server certificate (ECDSA P-256, SAN `localhost`) and the TLS configuration that
/// requires the client to present exactly `client_cert`. The aws-lc-rs crypto provider is chosen
/// explicitly (never a process default): ring cannot verify Terraform's P-521 signatures.
fn tls_config(
    client_cert: CertificateDer<'static>,
) -> Result<(Vec<u8>, rustls::ServerConfig), HandshakeError> {
    let crypto = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
    let cert = rcgen::CertificateParams::new(vec!["localhost".to_owned()])?.self_signed(&key)?;
    let server_der = cert.der().to_vec();
    let verifier = PinnedClientCert {
        cert: client_cert,
        algorithms: crypto.signature_verification_algorithms,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(crypto)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier))
        .with_single_cert(
            vec![CertificateDer::from(server_der.clone())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok((server_der, config))
}

/// Accepts TCP connections and completes their TLS handshakes concurrently; only authenticated
/// connections reach the gRPC server.
fn accept_tls(
    listener: TcpListener,
    acceptor: TlsAcceptor,
) -> tokio_stream::wrappers::ReceiverStream<std::io::Result<TlsStream<TcpStream>>> {
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = match listener.accept().await {
                Ok(conn) => conn,
                Err(err) => {
                    tracing::warn!(error = %err, "accept failed");
                    continue;
                }
            };
            // Small request/response messages: without this, delayed ACKs stall RPCs ~40 ms.
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::debug!(%peer, error = %err, "could not set TCP_NODELAY");
            }
            let acceptor = acceptor.clone();
            let tx = tx.clone();
            tokio::spawn(async move {
                match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                    Ok(Ok(tls)) => {
                        let _ = tx.send(Ok(tls)).await;
                    }
                    // Expected now and then: Terraform may drop a connection during shutdown.
                    Ok(Err(err)) => tracing::debug!(%peer, error = %err, "TLS handshake refused"),
                    Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(rx)
}

/// Accepts exactly one client certificate: the one Terraform generated for this process.
///
/// Terraform's certificate is a self-signed CA certificate (ECDSA P-521), which WebPKI path
/// building refuses as an end-entity certificate; pinning the exact DER is both stricter and what
/// go-plugin's own server effectively does (the certificate is its own and only trust anchor).
/// The handshake signature is still verified, so the client must hold the private key.
#[derive(Debug)]
struct PinnedClientCert {
    cert: CertificateDer<'static>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ClientCertVerifier for PinnedClientCert {
    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // An empty list makes Go's client skip its acceptable-CA check and send its certificate.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.cert.as_ref() {
            Ok(ClientCertVerified::assertion())
        } else {
            Err(rustls::Error::InvalidCertificate(
                rustls::CertificateError::ApplicationVerificationFailure,
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        // Includes ECDSA_NISTP521_SHA512, which Terraform's client key needs.
        self.algorithms.supported_schemes()
    }
}
