//! HTTPS with a certificate that is renewed under a running server: the new files are served
//! without a restart; files that cannot be read leave the old certificate in use.

use duet::relay::{Hub, RelayConfig};
use duet::tls::{self, Reloading, TlsListener};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::net::{TcpListener, TcpStream};

/// Accepts any certificate: the test looks at which one it was.
#[derive(Debug)]
struct AnyCert;

impl ServerCertVerifier for AnyCert {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The certificate the server at `addr` presents now.
async fn served(addr: SocketAddr) -> Vec<u8> {
    let config =
        rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCert))
            .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("handshake");
    tls.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

/// A fresh self-signed certificate and key (PEM files in their own directory).
fn make(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!("duet-tls-{}-{name}", std::process::id()));
    let (cert, key, _) = tls::self_signed(&dir, &["localhost".to_owned()]).unwrap();
    (cert, key)
}

fn der(cert: &Path) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    CertificateDer::pem_file_iter(cert)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .to_vec()
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let (live_cert, live_key) = make("live");
    let (new_cert, new_key) = make("renewed");
    let first = der(&live_cert);
    let certs = Reloading::new(&live_cert, &live_key).unwrap();
    let conf = leptos::prelude::get_configuration(Some("Cargo.toml")).expect("leptos config");
    let hub = Hub::new(RelayConfig::default());
    let app = duet::server::app(conf.leptos_options, hub.clone());
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::new(tcp, tls::acceptor(Arc::clone(&certs)).unwrap()).unwrap();
    tokio::spawn(duet::server::serve(listener, app, hub, std::future::pending()));
    assert_eq!(served(addr).await, first);
    assert!(!certs.reload_if_changed().unwrap(), "nothing changed yet");

    // Renewal: new files in place (as certbot's deploy hook copies them).
    std::fs::copy(&new_cert, &live_cert).unwrap();
    std::fs::copy(&new_key, &live_key).unwrap();
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    for f in [&live_cert, &live_key] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(later)
            .unwrap();
    }
    assert!(certs.reload_if_changed().unwrap());
    let second = served(addr).await;
    assert_eq!(second, der(&new_cert));
    assert_ne!(second, first);

    // A half-written file: refused, the renewed certificate stays.
    std::fs::write(&live_cert, "-----BEGIN CERTIFICATE-----\nnot yet").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&live_cert)
        .unwrap()
        .set_modified(later + std::time::Duration::from_secs(2))
        .unwrap();
    assert!(certs.reload_if_changed().is_err());
    assert_eq!(served(addr).await, second);
    for f in [&live_cert, &new_cert] {
        std::fs::remove_dir_all(f.parent().unwrap()).unwrap();
    }
}
