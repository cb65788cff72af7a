//! HTTPS (server only). Phones grant camera access only on a secure origin, so a LAN deployment
//! needs TLS: either a real certificate (`--tls-cert/--tls-key`) or a self-signed one generated
//! for localhost and every address of this machine (`--tls-self-signed`), kept on disk so the
//! phone's one-time "proceed anyway" stays valid across restarts.

use axum::serve::Listener;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Why TLS could not be set up; printed before the server exits.
#[derive(Debug)]
pub enum TlsError {
    Io(PathBuf, io::Error),
    Pem(PathBuf, String),
    Generate(String),
    Config(String),
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsError::Io(path, e) => write!(f, "{}: {e}", path.display()),
            TlsError::Pem(path, e) => write!(f, "{}: not a usable PEM file: {e}", path.display()),
            TlsError::Generate(e) => write!(f, "cannot generate a certificate: {e}"),
            TlsError::Config(e) => write!(f, "bad certificate or key: {e}"),
        }
    }
}

impl std::error::Error for TlsError {}

/// The names a self-signed certificate must cover: localhost and this machine's addresses.
pub fn local_names() -> Vec<String> {
    let mut names = vec!["localhost".to_owned(), "127.0.0.1".to_owned(), "::1".to_owned()];
    for ip in lan_addresses() {
        names.push(ip.to_string());
    }
    names.sort();
    names.dedup();
    names
}

/// Non-loopback addresses of this machine's interfaces (where a phone on the LAN reaches it).
pub fn lan_addresses() -> Vec<IpAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .map(|i| i.ip())
        // IPv6 link-local addresses need a zone id in URLs; phones rarely use them.
        .filter(|ip| {
            !ip.is_loopback() && !matches!(ip, IpAddr::V6(v6) if v6.segments()[0] & 0xffc0 == 0xfe80)
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

/// The self-signed certificate and key in `dir`, made for `names`: reused when it already
/// covers them all, else (first run, new address) generated again. Returns (cert, key) paths.
pub fn self_signed(dir: &Path, names: &[String]) -> Result<(PathBuf, PathBuf, bool), TlsError> {
    let (cert, key, list) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("names.txt"));
    let covered = std::fs::read_to_string(&list)
        .map(|saved| names.iter().all(|n| saved.lines().any(|l| l == n)))
        .unwrap_or(false);
    if covered && cert.exists() && key.exists() {
        return Ok((cert, key, false));
    }
    let made =
        rcgen::generate_simple_self_signed(names.to_vec()).map_err(|e| TlsError::Generate(e.to_string()))?;
    std::fs::create_dir_all(dir).map_err(|e| TlsError::Io(dir.to_owned(), e))?;
    let write =
        |path: &Path, text: &str| std::fs::write(path, text).map_err(|e| TlsError::Io(path.to_owned(), e));
    write(&cert, &made.cert.pem())?;
    write(&key, &made.key_pair.serialize_pem())?;
    restrict(&key)?;
    write(&list, &names.join("\n"))?;
    Ok((cert, key, true))
}

/// The private key is for this server's eyes only.
fn restrict(path: &Path) -> Result<(), TlsError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .map_err(|e| TlsError::Io(path.to_owned(), e))?;
    }
    let _ = path;
    Ok(())
}

/// The certificate files in use, read again when they change: a renewed certificate (Let's
/// Encrypt every 60–90 days) is served without a restart. [`Reloading::reload_if_changed`] runs
/// every few seconds ([`watch`]) and on SIGHUP; a file that cannot be read or parsed (half
/// written during renewal) leaves the certificate in use as it is, and is tried again next time.
#[derive(Debug)]
pub struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    current: std::sync::RwLock<Arc<rustls::sign::CertifiedKey>>,
    /// The files' modification times when last loaded.
    stamp: std::sync::Mutex<Option<(std::time::SystemTime, std::time::SystemTime)>>,
}

impl Reloading {
    pub fn new(cert: &Path, key: &Path) -> Result<Arc<Reloading>, TlsError> {
        let loaded = load_certified(cert, key)?;
        Ok(Arc::new(Reloading {
            cert: cert.to_owned(),
            key: key.to_owned(),
            current: std::sync::RwLock::new(Arc::new(loaded)),
            stamp: std::sync::Mutex::new(stamps(cert, key)),
        }))
    }

    /// Loads the files again if either changed since; `Ok(true)` if a new certificate is in use.
    pub fn reload_if_changed(&self) -> Result<bool, TlsError> {
        let now = stamps(&self.cert, &self.key);
        let mut stamp = self.stamp.lock().unwrap_or_else(|e| e.into_inner());
        if now.is_none() || now == *stamp {
            return Ok(false);
        }
        let loaded = load_certified(&self.cert, &self.key)?;
        *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
        *stamp = now;
        Ok(true)
    }

    /// [`Reloading::reload_if_changed`], saying in the log what happened.
    fn check(&self) {
        match self.reload_if_changed() {
            Ok(true) => tracing::info!(cert = %self.cert.display(), "TLS certificate reloaded"),
            Ok(false) => {}
            Err(e) => tracing::warn!("TLS certificate not reloaded (the old one stays): {e}"),
        }
    }
}

impl rustls::server::ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: rustls::server::ClientHello<'_>) -> Option<Arc<rustls::sign::CertifiedKey>> {
        Some(Arc::clone(
            &self.current.read().unwrap_or_else(|e| e.into_inner()),
        ))
    }
}

/// The files' modification times, to see renewals.
fn stamps(cert: &Path, key: &Path) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    Some((modified(cert)?, modified(key)?))
}

fn load_certified(cert: &Path, key: &Path) -> Result<rustls::sign::CertifiedKey, TlsError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| TlsError::Pem(cert.to_owned(), e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(cert.to_owned(), e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::Pem(cert.to_owned(), "no certificate in it".into()));
    }
    let der = PrivateKeyDer::from_pem_file(key).map_err(|e| TlsError::Pem(key.to_owned(), e.to_string()))?;
    let signing = rustls::crypto::ring::sign::any_supported_type(&der)
        .map_err(|e| TlsError::Pem(key.to_owned(), e.to_string()))?;
    let certified = rustls::sign::CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        TlsError::Config(format!(
            "{} and {} do not belong together: {e}",
            cert.display(),
            key.display()
        ))
    })?;
    Ok(certified)
}

/// Checks the certificate files every few seconds and on SIGHUP (`systemctl reload`), for as
/// long as the server runs.
pub fn watch(certs: Arc<Reloading>) {
    tokio::spawn(async move {
        #[cfg(unix)]
        let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut every = tokio::time::interval(Duration::from_secs(5));
        loop {
            #[cfg(unix)]
            {
                let hup = async {
                    match hangup.as_mut() {
                        Some(h) => h.recv().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    _ = every.tick() => {}
                    _ = hup => {}
                }
            }
            #[cfg(not(unix))]
            every.tick().await;
            certs.check();
        }
    });
}

/// The TLS server configuration serving what `certs` holds now.
pub fn acceptor(certs: Arc<Reloading>) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(certs);
    // HTTP/1.1 only: the signaling WebSocket is an HTTP/1.1 upgrade.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A terminal QR code (Unicode half blocks) of `text`, for a phone's camera.
pub fn qr(text: &str) -> Option<String> {
    use qrcode::render::unicode::Dense1x2;
    let code = qrcode::QrCode::new(text.as_bytes()).ok()?;
    Some(
        code.render::<Dense1x2>()
            .dark_color(Dense1x2::Light)
            .light_color(Dense1x2::Dark)
            .quiet_zone(true)
            .build(),
    )
}

/// Handshakes in progress at once; beyond this, new connections wait in the kernel's backlog.
const MAX_HANDSHAKES: usize = 256;
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A listener that hands axum finished TLS connections. Handshakes run in their own tasks,
/// bounded in number and time, so a slow or silent client never holds up anyone else's.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    pub fn new(tcp: TcpListener, acceptor: TlsAcceptor) -> io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match tcp.accept().await {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // E.g. out of file descriptors: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let _slot = slot;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task ended (it only does when the runtime shuts down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The TCP socket under a connection, plain or TLS (to set socket options).
pub trait Tcp {
    fn tcp(&self) -> &TcpStream;
}

impl Tcp for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Tcp for TlsStream<TcpStream> {
    fn tcp(&self) -> &TcpStream {
        self.get_ref().0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("duet-tls-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_generated_certificate_is_reused_until_a_new_name_appears() {
        let dir = temp_dir("reuse");
        let names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "192.168.1.20".to_owned(),
        ];
        let (cert, key, fresh) = self_signed(&dir, &names).unwrap();
        assert!(fresh);
        let first = std::fs::read_to_string(&cert).unwrap();
        assert!(first.starts_with("-----BEGIN CERTIFICATE-----"));
        let certs = Reloading::new(&cert, &key).expect("the generated pair loads");
        acceptor(certs).expect("and makes a working TLS config");

        let (_, _, fresh) = self_signed(&dir, &names[..2]).unwrap();
        assert!(!fresh, "a subset of the names reuses the certificate");
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), first);

        let mut moved = names.clone();
        moved.push("10.0.0.7".to_owned());
        let (_, _, fresh) = self_signed(&dir, &moved).unwrap();
        assert!(fresh, "a new address needs a new certificate");
        assert_ne!(std::fs::read_to_string(&cert).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&key).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "the key is private");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn unusable_files_give_a_clear_error() {
        let dir = temp_dir("bad");
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("junk.pem");
        std::fs::write(&junk, "not pem").unwrap();
        let err = Reloading::new(&junk, &junk)
            .expect_err("junk is refused")
            .to_string();
        assert!(err.contains("junk.pem"), "{err}");
        let err = Reloading::new(&dir.join("missing.pem"), &junk)
            .unwrap_err()
            .to_string();
        assert!(err.contains("missing.pem"), "{err}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn names_cover_localhost_and_qr_codes_render() {
        let names = local_names();
        for n in ["localhost", "127.0.0.1", "::1"] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
        let code = qr("https://192.168.1.20:3000/").unwrap();
        assert!(code.lines().count() > 10);
    }
}
