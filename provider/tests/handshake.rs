//! The provider binary as Terraform (and an intruder) meets it: run by hand it refuses; launched
//! like Terraform launches it, it prints one handshake line and serves only a client that presents
//! exactly the certificate Terraform handed it.

// Test helpers panic on setup failures by design.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use base64::Engine as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};
use tokio_rustls::TlsConnector;

const BINARY: &str = env!("CARGO_BIN_EXE_terraform-provider-allowlist");
const COOKIE: &str = "d602bf8f470bc67ca7faa0386276bbdd4330efaf76d1a219cb4d6991ca9872b2";
const HTTP2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// A client identity like the one go-plugin makes: self-signed ECDSA P-521, CA:TRUE.
struct ClientIdentity {
    pem: String,
    der: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
}

fn client_identity() -> ClientIdentity {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P521_SHA512).expect("key");
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).expect("params");
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).expect("cert");
    ClientIdentity {
        pem: cert.pem(),
        der: cert.der().clone(),
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

/// A provider process launched as Terraform launches it, and what it printed.
struct Launched {
    after_handshake: tokio::task::JoinHandle<Vec<u8>>,
    child: Child,
    addr: String,
    server_cert: CertificateDer<'static>,
    line: String,
}

async fn launch(client: &ClientIdentity) -> Launched {
    let mut child = Command::new(BINARY)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env("PLUGIN_CLIENT_CERT", &client.pem)
        .env("PLUGIN_PROTOCOL_VERSIONS", "5,6")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn provider");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    tokio::time::timeout(Duration::from_secs(10), stdout.read_line(&mut line))
        .await
        .expect("handshake within 10s")
        .expect("read handshake");
    let fields: Vec<&str> = line.trim_end().split('|').collect();
    assert_eq!(fields.len(), 6, "handshake line: {line:?}");
    assert_eq!(&fields[..3], ["1", "6", "tcp"]);
    assert!(
        fields[3].starts_with("127.0.0.1:"),
        "loopback only: {}",
        fields[3]
    );
    assert_eq!(fields[4], "grpc");
    assert!(
        !fields[5].contains('='),
        "Go's RawStdEncoding has no padding"
    );
    let der = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(fields[5])
        .expect("certificate is unpadded base64");
    // Keep reading stdout in the background: whatever appears after the handshake line.
    let after_handshake = tokio::spawn(async move {
        let mut rest = Vec::new();
        let _ = stdout.read_to_end(&mut rest).await;
        rest
    });
    Launched {
        after_handshake,
        child,
        addr: fields[3].to_owned(),
        server_cert: CertificateDer::from(der),
        line,
    }
}

/// Connects as a TLS client trusting the provider's certificate, optionally presenting a client
/// certificate, then speaks the HTTP/2 preface. Returns the first bytes the server sends back,
/// or the error that ended the exchange.
async fn speak_h2(
    launched: &Launched,
    identity: Option<&ClientIdentity>,
) -> Result<(Vec<u8>, Option<Vec<u8>>), String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(launched.server_cert.clone())
        .expect("trust server cert");
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots);
    let mut config = match identity {
        Some(id) => builder
            .with_client_auth_cert(vec![id.der.clone()], id.key.clone_key())
            .expect("client auth"),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let tcp = TcpStream::connect(&launched.addr)
        .await
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").expect("name");
    let exchange = async {
        let mut tls = TlsConnector::from(Arc::new(config))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("handshake: {e}"))?;
        let alpn = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        tls.write_all(HTTP2_PREFACE)
            .await
            .map_err(|e| format!("write: {e}"))?;
        // An empty SETTINGS frame, as every HTTP/2 client sends first.
        tls.write_all(&[0, 0, 0, 4, 0, 0, 0, 0, 0])
            .await
            .map_err(|e| format!("write: {e}"))?;
        tls.flush().await.map_err(|e| format!("flush: {e}"))?;
        let mut buf = vec![0u8; 64];
        let n = tls.read(&mut buf).await.map_err(|e| format!("read: {e}"))?;
        buf.truncate(n);
        Ok((buf, alpn))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "timed out".to_owned())?
}

#[test]
fn run_by_hand_prints_the_plugin_message_and_exits_1() {
    let out = std::process::Command::new(BINARY)
        .env_remove("TF_PLUGIN_MAGIC_COOKIE")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty(), "nothing on stdout");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("This binary is a plugin. These are not meant to be executed directly."),
        "{stderr}"
    );
}

#[test]
fn wrong_cookie_is_refused_too() {
    let out = std::process::Command::new(BINARY)
        .env("TF_PLUGIN_MAGIC_COOKIE", "not-the-cookie")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
}

#[test]
fn without_plugin_client_cert_it_refuses_to_serve() {
    let out = std::process::Command::new(BINARY)
        .env("TF_PLUGIN_MAGIC_COOKIE", COOKIE)
        .env_remove("PLUGIN_CLIENT_CERT")
        .output()
        .expect("run binary");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stdout.is_empty(),
        "no handshake line without mutual TLS"
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("PLUGIN_CLIENT_CERT is not set"));
}

#[tokio::test]
async fn terraforms_certificate_is_required_and_verified() {
    let terraform = client_identity();
    let launched = launch(&terraform).await;
    assert!(launched.line.ends_with('\n'));

    // No client certificate: the server aborts; no HTTP/2 frame ever comes back.
    let anonymous = speak_h2(&launched, None).await;
    // (TLS 1.3 lets the client finish its side first, so the refusal shows up as an alert,
    // a reset or a broken pipe, depending on timing.)
    assert!(
        anonymous.is_err(),
        "anonymous client must be refused, got {anonymous:?}"
    );

    // A certificate other than the one Terraform handed over: refused as well.
    let intruder = client_identity();
    let wrong = speak_h2(&launched, Some(&intruder)).await;
    assert!(
        wrong.is_err(),
        "a different certificate must be refused, got {wrong:?}"
    );

    // Terraform's own certificate: TLS completes with ALPN h2 and the server answers with an
    // HTTP/2 SETTINGS frame (type 4 at byte 3 of the frame header).
    let (reply, alpn) = speak_h2(&launched, Some(&terraform))
        .await
        .expect("authenticated client served");
    assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    assert!(
        reply.len() >= 9 && reply[3] == 4,
        "expected a SETTINGS frame, got {reply:?}"
    );

    let mut child = launched.child;
    child.kill().await.expect("kill provider");
    let rest = launched.after_handshake.await.expect("stdout reader");
    assert!(
        rest.is_empty(),
        "provider wrote to stdout after the handshake: {rest:?}"
    );
}
