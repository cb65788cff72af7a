//! `/pkg/*` over a real loopback HTTP connection: precompressed copies are served to browsers
//! that accept them, and never when they are older than the file.

use axum::Router;
use std::fs::{self, File};
use std::path::Path;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn write(path: &Path, body: &[u8], age_secs: u64) {
    fs::write(path, body).unwrap();
    let when = SystemTime::now() - Duration::from_secs(age_secs);
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(when)
        .unwrap();
}

/// One GET; returns the response head (lower-cased) and body.
async fn get(addr: std::net::SocketAddr, path: &str, accept_encoding: &str) -> (String, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: x\r\nAccept-Encoding: {accept_encoding}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    (head, raw[split + 4..].to_vec())
}

#[tokio::test]
async fn precompressed_assets_are_served_only_when_accepted_and_fresh() {
    let dir = std::env::temp_dir().join(format!("duet-pkg-{}", std::process::id()));
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("app.wasm"), b"WASM", 100);
    write(&dir.join("app.wasm.br"), b"BROTLI", 50);
    write(&dir.join("app.wasm.gz"), b"GZIP", 50);
    let app = Router::new().nest("/pkg", duet::assets::router(dir.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let (head, body) = get(addr, "/pkg/app.wasm", "gzip, deflate, br").await;
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(head.contains("content-type: application/wasm"), "{head}");
    assert!(
        head.contains("vary: accept-encoding"),
        "caches must key on it: {head}"
    );
    assert_eq!(body, b"BROTLI");
    let (head, body) = get(addr, "/pkg/app.wasm", "gzip").await;
    assert!(head.contains("content-encoding: gzip"), "{head}");
    assert_eq!(body, b"GZIP");
    let (head, body) = get(addr, "/pkg/app.wasm", "identity").await;
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(body, b"WASM");

    // A rebuild without -P: the old copies must not be served with the new file.
    write(&dir.join("app.wasm"), b"NEW WASM", 10);
    let (head, body) = get(addr, "/pkg/app.wasm", "gzip, deflate, br").await;
    assert!(!head.contains("content-encoding"), "{head}");
    assert_eq!(body, b"NEW WASM");

    let (head, _) = get(addr, "/pkg/../Cargo.toml", "br").await;
    assert!(
        head.starts_with("http/1.1 404") || head.starts_with("http/1.1 400"),
        "{head}"
    );
    fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn fingerprinted_names_are_immutable_and_only_for_the_current_content() {
    let root = std::env::temp_dir().join(format!("duet-site-{}", std::process::id()));
    let dir = root.join("pkg");
    fs::create_dir_all(&dir).unwrap();
    write(&dir.join("duet.wasm"), b"WASM", 100);
    write(&dir.join("duet.wasm.br"), b"BROTLI", 50);
    write(&dir.join("duet.css"), b"CSS", 100);
    fs::write(
        root.join("sw.js"),
        "const BUILD = \"\";\nconst SHELL = [\"/pkg/duet.wasm\", \"/pkg/duet.css\", \"/pkg/duet.js\"];",
    )
    .unwrap();
    let build = duet::assets::Build {
        dir: dir.clone(),
        url_dir: "/pkg".into(),
        name: "duet".into(),
    };
    let wasm = build.url("wasm");
    assert!(
        wasm.starts_with("/pkg/duet.") && wasm.ends_with(".wasm") && wasm.len() == 31,
        "{wasm}"
    );
    let app = Router::new()
        .nest("/pkg", duet::assets::router(dir.clone()))
        .merge(duet::assets::filled_in(root.clone(), build.clone()));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    // The fingerprinted name: the file (compressed as usual), cached for good.
    let (head, body) = get(addr, &wasm, "br").await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(
        head.contains("cache-control: public, max-age=31536000, immutable"),
        "{head}"
    );
    assert!(head.contains("content-encoding: br"), "{head}");
    assert_eq!(body, b"BROTLI");
    // The plain name still works, without the promise.
    let (head, _) = get(addr, "/pkg/duet.wasm", "identity").await;
    assert!(
        head.starts_with("http/1.1 200") && !head.contains("immutable"),
        "{head}"
    );
    // Another build's name is not found: never new content under an old name.
    let (head, _) = get(addr, "/pkg/duet.0123456789abcdef.wasm", "br").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");

    // The service worker names exactly this build's files (a missing one keeps its plain name).
    let (head, body) = get(addr, "/sw.js", "identity").await;
    assert!(head.contains("content-type: text/javascript"), "{head}");
    let body = String::from_utf8(body).unwrap();
    let hash = &wasm["/pkg/duet.".len()..wasm.len() - ".wasm".len()];
    assert!(body.contains(&format!("const BUILD = \"-{hash}\";")), "{body}");
    assert!(
        body.contains(&format!("\"{wasm}\"")) && body.contains(&format!("\"{}\"", build.url("css"))),
        "{body}"
    );
    assert!(body.contains("\"/pkg/duet.js\""), "{body}");

    // A rebuild: new content, new name; the old name is gone.
    write(&dir.join("duet.wasm"), b"NEW WASM", 0);
    assert_ne!(build.url("wasm"), wasm);
    let (head, _) = get(addr, &wasm, "identity").await;
    assert!(head.starts_with("http/1.1 404"), "{head}");
    fs::remove_dir_all(&root).unwrap();
}
