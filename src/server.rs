//! Server assembly: configuration, the router (Leptos SSR pages + the signaling relay + static
//! files), the relay's clock, and serving with graceful shutdown.

use crate::app::shell;
use crate::config::{Config, LogFormat};
use crate::relay::{self, Hub};
use crate::signal::{encode_segment, validate_name};
use crate::tls::{self, Tcp, TlsError, TlsListener};
use axum::extract::Query;
use axum::response::{IntoResponse, Redirect, Response};
use axum::serve::{Listener, ListenerExt};
use axum::Router;
use clap::Parser;
use leptos::prelude::*;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// The whole application router. Tests build the same one.
pub fn app(leptos_options: LeptosOptions, hub: Arc<Hub>) -> Router {
    app_with(leptos_options, hub, None)
}

/// [`app`], private with `access` (see `crate::access`).
pub fn app_with(
    leptos_options: LeptosOptions,
    hub: Arc<Hub>,
    access: Option<Arc<crate::access::Access>>,
) -> Router {
    // Leptos' rendering spawns on tokio (leptos_axum's route list used to set this up).
    let _ = any_spawner::Executor::init_tokio();
    let build = crate::assets::Build::of(&leptos_options);
    crate::inline::prepare(build.clone());
    let site_root = std::path::PathBuf::from(&*leptos_options.site_root);
    // The pages (`app::Page` picks one from the URL); anything else is a static file or the
    // not-found page.
    let page = leptos_axum::render_app_to_stream_with_context(page_policy, {
        let options = leptos_options.clone();
        move || shell(options.clone())
    });
    // A first visit's page carries the WASM (see `inline`).
    let page = move |req: axum::extract::Request| {
        let headers = req.headers().clone();
        let page = page.clone();
        async move { crate::inline::page(&headers, page(req).await.into_response()).await }
    };
    // The door and invite links exist on a private server only; elsewhere they lead home.
    let private = |route: axum::routing::MethodRouter<Arc<crate::access::Access>>| match &access {
        Some(access) => route.with_state(Arc::clone(access)),
        None => axum::routing::get(|| async { Redirect::to("/") }).with_state(()),
    };
    let door = private(axum::routing::get(page.clone()).post(crate::access::door));
    let invite = private(axum::routing::get(crate::access::invite));
    let pages = Router::new()
        .route("/", axum::routing::get(page.clone()))
        .route("/call/{peer}", axum::routing::get(page.clone()))
        .route("/u/{name}", axum::routing::get(page))
        .fallback(leptos_axum::file_and_error_handler_with_context(
            page_policy,
            shell,
        ))
        .with_state(leptos_options)
        // Pages in brotli for browsers that take it (a page is ~4 KB, ~1.7 KB compressed);
        // only pages: the relay's upgrade responses and the precompressed /pkg stay untouched.
        .layer(tower_http::compression::CompressionLayer::new());
    let router = relay::router(hub)
        .route("/door", door)
        .route("/invite/{token}", invite)
        .route("/lang/{tag}", axum::routing::get(set_lang))
        .route("/go", axum::routing::get(go))
        .nest(&build.url_dir, crate::assets::router(build.dir.clone()))
        .merge(crate::assets::filled_in(site_root, build))
        .merge(pages);
    let router = match access {
        Some(access) => router.layer(axum::middleware::from_fn_with_state(access, crate::access::gate)),
        None => router,
    };
    router.layer(axum::middleware::map_response(security_headers))
}

/// What Duet's pages may load and run, and nothing more: scripts from Duet itself or carrying
/// the page's nonce (Leptos puts a fresh one on every inline script of a rendered page), WASM
/// compilation (`'wasm-unsafe-eval'`, not `eval`), styles from Duet's CSS only, media from
/// cameras and blobs, connections (the signaling WebSocket) back to Duet only. No plugins, no
/// `<base>`, forms post only to Duet, and no page may frame Duet (a page that frames it could
/// lay a decoy over Accept). Responses other than pages get it without a nonce.
pub fn content_security_policy(nonce: Option<&str>) -> String {
    let nonce = nonce.map(|n| format!(" 'nonce-{n}'")).unwrap_or_default();
    format!(
        "default-src 'self'; script-src 'self' 'wasm-unsafe-eval'{nonce}; style-src 'self'; \
         img-src 'self' blob:; media-src 'self' blob: mediastream:; connect-src 'self'; \
         worker-src 'self'; manifest-src 'self'; object-src 'none'; base-uri 'none'; \
         form-action 'self'; frame-ancestors 'none'"
    )
}

/// Run while a page renders (after leptos_axum made the page's nonce): the page's policy.
fn page_policy() {
    let (Some(response), Some(nonce)) = (
        use_context::<leptos_axum::ResponseOptions>(),
        leptos::nonce::use_nonce(),
    ) else {
        return;
    };
    if let Ok(policy) = axum::http::HeaderValue::from_str(&content_security_policy(Some(&nonce))) {
        response.insert_header(axum::http::header::CONTENT_SECURITY_POLICY, policy);
    }
}

/// Headers on every response: no MIME sniffing, no referrer (a page's URL names the person),
/// no framing, no window handles across origins, the content security policy (a page's own,
/// else the one without a nonce), camera, microphone, full screen and wake lock for Duet's own
/// pages only, and revalidation of anything not content-addressed (pages, `/sw.js`, the unhashed `/pkg` names): a new build
/// is seen at once, an unchanged file costs a 304.
async fn security_headers(mut res: Response) -> Response {
    use axum::http::{header, HeaderValue};
    let h = res.headers_mut();
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // A page Duet opens (none today) or that opens Duet gets no handle on its window.
    h.insert(
        "cross-origin-opener-policy",
        HeaderValue::from_static("same-origin"),
    );
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        static DEFAULT: std::sync::LazyLock<HeaderValue> = std::sync::LazyLock::new(|| {
            HeaderValue::from_str(&content_security_policy(None)).expect("ASCII policy")
        });
        h.insert(header::CONTENT_SECURITY_POLICY, DEFAULT.clone());
    }
    h.insert(
        "permissions-policy",
        HeaderValue::from_static(
            "camera=(self), microphone=(self), fullscreen=(self), screen-wake-lock=(self), \
             display-capture=(self), geolocation=(), payment=(), usb=()",
        ),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-cache"));
    res
}

/// Under HTTPS only: browsers are to come back over HTTPS (a year; not for subdomains, which
/// may be someone else's).
async fn strict_transport(mut res: Response) -> Response {
    res.headers_mut().insert(
        axum::http::header::STRICT_TRANSPORT_SECURITY,
        axum::http::HeaderValue::from_static("max-age=31536000"),
    );
    res
}

#[derive(Deserialize)]
struct GoQuery {
    name: Option<String>,
    call: Option<String>,
}

/// The join form's fallback before (or without) hydration: redirect to the call screen.
async fn go(Query(q): Query<GoQuery>) -> Response {
    let name = q.name.unwrap_or_default();
    let name = name.trim();
    let call = q.call.filter(|c| validate_name(c).is_ok());
    let target = match (validate_name(name), &call) {
        _ if name.is_empty() => "/".to_owned(),
        (Ok(()), Some(c)) => format!("/u/{}?call={}", encode_segment(name), encode_segment(c)),
        (Ok(()), None) => format!("/u/{}", encode_segment(name)),
        // The call screen explains what is wrong with the name.
        (Err(_), _) => format!("/u/{}", encode_segment(name)),
    };
    Redirect::to(&target).into_response()
}

#[derive(Deserialize)]
struct LangQuery {
    back: Option<String>,
}

/// `GET /lang/{tag}?back={path}`: the language toggle without JavaScript. Remembers the choice
/// in a cookie and sends the browser back to the page it came from: `back` (the toggle's link
/// carries it: pages send no Referer), else the Referer; a path of this site only.
async fn set_lang(
    axum::extract::Path(tag): axum::extract::Path<String>,
    Query(q): Query<LangQuery>,
    headers: axum::http::HeaderMap,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let Some(lang) = crate::i18n::Lang::from_tag(&tag) else {
        return (StatusCode::NOT_FOUND, "unknown language; use en or zh-CN").into_response();
    };
    let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
    let back = q
        .back
        .as_deref()
        .filter(|b| local_path(b))
        .or_else(|| {
            header(header::REFERER)
                .zip(header(header::HOST))
                .and_then(|(referer, host)| back_path(referer, host))
        })
        .unwrap_or("/");
    (
        [(header::SET_COOKIE, lang.cookie())],
        axum::response::Redirect::to(back),
    )
        .into_response()
}

/// The path (and query) of `referer` if it is a page of this site (`host`); never another
/// site, so the redirect cannot be used to send people elsewhere.
fn back_path<'a>(referer: &'a str, host: &str) -> Option<&'a str> {
    let rest = referer
        .strip_prefix("http://")
        .or_else(|| referer.strip_prefix("https://"))?;
    let (authority, path) = rest.split_at(rest.find('/')?);
    let path = path.split('#').next().unwrap_or(path);
    (authority.eq_ignore_ascii_case(host) && local_path(path)).then_some(path)
}

/// The values of cookie `name` in a request's `Cookie` headers.
pub(crate) fn cookie_values<'a>(
    headers: &'a axum::http::HeaderMap,
    name: &'a str,
) -> impl Iterator<Item = &'a str> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(move |c| c.trim().strip_prefix(name)?.strip_prefix('='))
}

/// A path on this site: not `//other.site` or `/\other.site` (browsers read both as another host),
/// nothing but a path, and nothing a `Location` header cannot carry.
pub(crate) fn local_path(path: &str) -> bool {
    path.starts_with('/')
        && !path.starts_with("//")
        && !path.contains(['\\', '#'])
        && !path.chars().any(char::is_control)
}

/// The relay: in memory, or a node of a cluster on Redis (`--redis-url`).
async fn relay_hub(config: &Config) -> Result<Arc<Hub>, crate::relay::cluster::ClusterError> {
    let relay = config.relay();
    let Some(cluster) = config.cluster() else {
        return Ok(Hub::new(relay));
    };
    let node = cluster.node.clone();
    let cluster = crate::relay::cluster::Cluster::connect(cluster, relay.timing, relay.presence_max).await?;
    let hub = Hub::clustered(relay, cluster).await?;
    tracing::info!(%node, "joined the cluster on redis");
    Ok(hub)
}

/// Serves `router` on `listener` (with client addresses, which the relay's per-IP limit needs)
/// and drives the relay's clock, until `shutdown` completes; then tells every client and closes.
pub async fn serve<L>(
    listener: L,
    router: Router,
    hub: Arc<Hub>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()>
where
    L: Listener<Addr = SocketAddr>,
    L::Io: Tcp,
{
    let ticker = tokio::spawn({
        let hub = Arc::clone(&hub);
        async move {
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                hub.tick();
            }
        }
    });
    let hub_for_shutdown = Arc::clone(&hub);
    // Signaling is small messages where every millisecond shows: don't let Nagle batch them.
    let listener = listener.tap_io(|io| {
        if let Err(e) = io.tcp().set_nodelay(true) {
            tracing::warn!(error = %e, "could not set TCP_NODELAY");
        }
    });
    let result = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: telling clients");
        hub_for_shutdown.shutdown();
    })
    .await;
    // Upgraded WebSockets outlive axum's graceful shutdown: give them a bounded moment to send
    // their close frames.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    while hub.connections() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    ticker.abort();
    result
}

pub async fn main() {
    let config = Config::parse();
    if let Some(crate::config::Command::Invite { uses, ttl, url }) = &config.command {
        return print_invite(&config, *uses, *ttl, url);
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let logs = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().init(),
    }
    let conf = match get_configuration(None) {
        Ok(conf) => conf,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the Leptos configuration");
            std::process::exit(2);
        }
    };
    let mut options = conf.leptos_options;
    if let Some(addr) = config.addr {
        options.site_addr = addr;
    }
    let addr = options.site_addr;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            std::process::exit(2);
        }
    };
    // With port 0 the kernel picks one: log the real address.
    let addr = listener.local_addr().unwrap_or(addr);
    if let Some(warning) = config.warning() {
        tracing::warn!("{warning}");
    }
    // Lives as long as the process: dropped (and closed) only at exit.
    let _stun = match config.stun_addr {
        Some(stun_addr) => match tokio::net::UdpSocket::bind(stun_addr).await {
            Ok(socket) => {
                tracing::info!(%stun_addr, "STUN server listening (UDP)");
                Some(tokio::spawn(crate::stun::serve(socket)))
            }
            Err(e) => {
                tracing::error!(%stun_addr, error = %e, "cannot listen for STUN");
                std::process::exit(2);
            }
        },
        None => None,
    };
    crate::app::set_max_file(config.max_file_mib * 1024 * 1024);
    let hub = match relay_hub(&config).await {
        Ok(hub) => hub,
        Err(e) => {
            tracing::error!("cannot join the cluster: {e}");
            std::process::exit(2);
        }
    };
    let access = match private_access(&config) {
        Ok(access) => access,
        Err(e) => {
            tracing::error!("cannot make this server private: {e}");
            std::process::exit(2);
        }
    };
    let router = app_with(options, Arc::clone(&hub), access);
    let result = match tls_acceptor(&config, addr) {
        Ok(None) => {
            tracing::info!(?config, "Duet listening on http://{addr}");
            serve(listener, router, hub, shutdown_signal()).await
        }
        Ok(Some(acceptor)) => match TlsListener::new(listener, acceptor) {
            Ok(listener) => {
                tracing::info!(?config, "Duet listening on https://{addr}");
                let router = router.layer(axum::middleware::map_response(strict_transport));
                serve(listener, router, hub, shutdown_signal()).await
            }
            Err(e) => Err(e),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot set up HTTPS");
            std::process::exit(2);
        }
    };
    if let Err(e) = result {
        tracing::error!(error = %e, "server stopped with an error");
    }
}

/// `duet invite`: prints the link (stdout), or why there is none (stderr, exit code 2).
fn print_invite(config: &Config, uses: u32, ttl: u64, url: &str) {
    let made = private_access(config).and_then(|access| {
        access.ok_or_else(|| "invites are for a private server: give it --access-code".to_owned())
    });
    match made {
        Ok(access) => println!("{}", crate::access::invite_link(&access, url, uses.max(1), ttl)),
        Err(e) => {
            eprintln!("duet invite: {e}");
            std::process::exit(2);
        }
    }
}

/// The access gate when the configuration asks for an access code, with its cookie key from
/// the state directory.
fn private_access(config: &Config) -> Result<Option<Arc<crate::access::Access>>, String> {
    let Some(code) = config.access_code()? else {
        return Ok(None);
    };
    let key = match &config.session_key_file {
        Some(file) => std::fs::read(file)
            .map_err(|e| format!("session key {}: {e}", file.display()))
            .and_then(|k| match k.len() {
                32.. => Ok(k),
                n => Err(format!(
                    "session key {}: {n} bytes, at least 32 needed",
                    file.display()
                )),
            })?,
        None => crate::access::load_or_create_key(&config.state_dir)
            .map_err(|e| format!("session key in {}: {e}", config.state_dir.display()))?,
    };
    let secure = config.tls_cert.is_some() || config.tls_self_signed;
    tracing::info!("private server: an access code is needed to get in");
    let access = crate::access::Access::new(code.expose(), &key, secure).with_invites_in(&config.state_dir);
    Ok(Some(Arc::new(access)))
}

/// The TLS acceptor the configuration asks for, if any; with a self-signed certificate, also
/// prints where a phone can open the app.
fn tls_acceptor(config: &Config, addr: SocketAddr) -> Result<Option<tokio_rustls::TlsAcceptor>, TlsError> {
    if let (Some(cert), Some(key)) = (&config.tls_cert, &config.tls_key) {
        let certs = tls::Reloading::new(cert, key)?;
        tls::watch(Arc::clone(&certs));
        return tls::acceptor(certs).map(Some);
    }
    if !config.tls_self_signed {
        return Ok(None);
    }
    let names = tls::local_names();
    let (cert, key, fresh) = tls::self_signed(&config.tls_dir, &names)?;
    tracing::info!(
        cert = %cert.display(),
        names = ?names,
        "{} self-signed certificate",
        if fresh { "generated a" } else { "reusing the" }
    );
    print_phone_urls(addr);
    tls::acceptor(tls::Reloading::new(&cert, &key)?).map(Some)
}

/// Tells the person starting the server how to open it on a phone.
fn print_phone_urls(addr: SocketAddr) {
    let port = addr.port();
    if !addr.ip().is_unspecified() {
        println!("\nDuet: https://{addr}/  (bound to {}: other devices cannot reach it; use --addr 0.0.0.0:{port} for phones)\n", addr.ip());
        return;
    }
    let urls: Vec<String> = tls::lan_addresses()
        .into_iter()
        .filter(|ip| ip.is_ipv4() || addr.is_ipv6())
        .map(|ip| format!("https://{}/", SocketAddr::new(ip, port)))
        .collect();
    println!("\nDuet over HTTPS (self-signed: the browser asks once to proceed):");
    println!("  this machine: https://localhost:{port}/");
    for url in &urls {
        println!("  on the LAN:   {url}");
    }
    if let Some(code) = urls.first().and_then(|url| tls::qr(url)) {
        println!("\nScan with the phone's camera to open {}:\n{code}", urls[0]);
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[cfg(test)]
mod tests {
    use super::{back_path, local_path};

    #[test]
    fn the_toggles_back_parameter_is_a_path_of_this_site_only() {
        for good in ["/", "/u/bob?call=x", "/call/%E5%BC%A0"] {
            assert!(local_path(good), "{good}");
        }
        for bad in [
            "",
            "u/bob",
            "//evil.example/",
            "/\\evil",
            "https://evil.example/",
            "/a\r\nSet-Cookie: x",
            "/#x",
        ] {
            assert!(!local_path(bad), "{bad:?}");
        }
    }

    #[test]
    fn the_language_toggle_only_sends_people_back_within_the_site() {
        let host = "duet.example:3000";
        assert_eq!(
            back_path("http://duet.example:3000/u/bob?call=x", host),
            Some("/u/bob?call=x")
        );
        assert_eq!(back_path("https://DUET.example:3000/#top", host), Some("/"));
        for bad in [
            "http://evil.example/u/bob",
            "http://duet.example:3000.evil.example/",
            "http://duet.example:3000//evil.example/",
            "http://duet.example:3000/\\evil",
            "javascript:alert(1)",
            "http://duet.example:3000",
            "",
        ] {
            assert_eq!(back_path(bad, host), None, "{bad}");
        }
    }
}
