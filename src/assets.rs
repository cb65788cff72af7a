//! `/pkg/*`: the build's WASM, JS glue and CSS. A release build made with `cargo leptos build
//! --release -P` leaves `.br` and `.gz` copies next to each file; a browser that accepts them
//! gets those (a phone downloads ~200 KiB of brotli instead of ~700 KiB of WASM). A copy older
//! than its file, left over from an earlier build, is never served: that would pair new JS glue
//! with old WASM.
//!
//! Pages link each file by a content-addressed name, `duet.<hash>.wasm` ([`fingerprinted`]):
//! served with `Cache-Control: immutable`, so a second visit asks nothing, and a new build is
//! new names. A name whose hash is not the file's current one is not found (never new content
//! under an old name). The plain names still work and are revalidated on every use.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;
use tower::ServiceExt;
use tower_http::services::ServeDir;

struct Pkg {
    dir: PathBuf,
    plain: ServeDir,
    packed: ServeDir,
}

/// Serves the files of `dir`; nest it under `/pkg`.
pub fn router(dir: PathBuf) -> Router {
    let pkg = Arc::new(Pkg {
        plain: ServeDir::new(&dir),
        packed: ServeDir::new(&dir).precompressed_br().precompressed_gzip(),
        dir,
    });
    Router::new().fallback(serve).with_state(pkg)
}

async fn serve(State(pkg): State<Arc<Pkg>>, mut req: Request) -> Response {
    use axum::http::{header, HeaderValue, StatusCode};
    let mut file = req.uri().path().trim_start_matches('/').to_owned();
    if file.starts_with("__wasm_split.") && file.ends_with(".js") && is_plain_name(&file) {
        return split_loader(&pkg.dir, &file).await;
    }
    let mut immutable = false;
    let mut cookie = None;
    if let Some((plain, hash)) = split_hash(&file) {
        if fingerprint(&pkg.dir, &plain).as_deref() != Some(hash.as_str()) {
            return StatusCode::NOT_FOUND.into_response();
        }
        // ServeDir sees the plain name (and finds its .br/.gz copies).
        match format!("/{plain}").parse() {
            Ok(uri) => *req.uri_mut() = uri,
            Err(_) => return StatusCode::NOT_FOUND.into_response(),
        }
        // The browser now has this build's WASM: its next first page need not carry it.
        if plain.ends_with(".wasm") {
            cookie = Some(crate::inline::cookie_value(&hash));
        }
        file = plain;
        immutable = true;
    }
    let service = if copies_are_fresh(&pkg.dir, &file) {
        pkg.packed.clone()
    } else {
        pkg.plain.clone()
    };
    let mut response = match service.oneshot(req).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    };
    let immutable = immutable && response.status().is_success();
    let headers = response.headers_mut();
    // The same URL answers differently per Accept-Encoding: caches must keep them apart.
    headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
    if immutable {
        headers.insert(
            header::CACHE_CONTROL,
            HeaderValue::from_static("public, max-age=31536000, immutable"),
        );
        if let Some(cookie) = cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
            headers.insert(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The build's files as a page or the service worker names them.
#[derive(Clone)]
pub struct Build {
    /// Where the files are (`target/site/pkg`) and the URL path they are served under (`/pkg`).
    pub dir: PathBuf,
    pub url_dir: String,
    /// `duet`: the files are `duet.js`, `duet.wasm`, `duet.css`.
    pub name: String,
}

impl Build {
    pub fn of(options: &leptos::config::LeptosOptions) -> Build {
        Build {
            dir: Path::new(&*options.site_root).join(&*options.site_pkg_dir),
            url_dir: format!("/{}", options.site_pkg_dir),
            name: options.output_name.to_string(),
        }
    }

    /// The fingerprinted URL of the build's file with extension `ext`.
    pub fn url(&self, ext: &str) -> String {
        fingerprinted(&self.dir, &self.url_dir, &format!("{}.{ext}", self.name))
    }

    /// The URL of the loader of the lazily loaded WASM chunks, in a `--split` build. The JS glue
    /// imports it: linked ahead (`modulepreload`), it downloads alongside the glue instead of
    /// after it, and the WASM's compilation can start as soon as the glue has arrived.
    pub fn split_loader_url(&self) -> Option<String> {
        std::fs::read_dir(&self.dir)
            .ok()?
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .find(|f| f.starts_with("__wasm_split.") && f.ends_with(".js") && is_plain_name(f))
            .map(|f| format!("{}/{f}", self.url_dir))
    }

    /// `text` (a static file that names the build's files by their plain URLs) with the
    /// fingerprinted URLs instead, and `const BUILD = "";` set to the WASM's hash.
    pub fn fill_in(&self, text: &str) -> String {
        let mut text = text.to_owned();
        for ext in ["js", "wasm", "css"] {
            let plain = format!("{}/{}.{ext}\"", self.url_dir, self.name);
            text = text.replace(&plain, &format!("{}\"", self.url(ext)));
        }
        let build = fingerprint(&self.dir, &format!("{}.wasm", self.name)).unwrap_or_default();
        text.replace("const BUILD = \"\";", &format!("const BUILD = \"-{build}\";"))
    }
}

/// `/sw.js` and `/offline.html` from `site_root`, filled in by [`Build::fill_in`] (the worker
/// caches exactly this build's files; the offline page links this build's CSS).
pub fn filled_in(site_root: PathBuf, build: Build) -> Router {
    let serve = |file: &'static str, mime: &'static str| {
        let (root, build) = (site_root.clone(), build.clone());
        axum::routing::get(move || async move {
            match tokio::fs::read_to_string(root.join(file)).await {
                Ok(text) => {
                    ([(axum::http::header::CONTENT_TYPE, mime)], build.fill_in(&text)).into_response()
                }
                Err(_) => axum::http::StatusCode::NOT_FOUND.into_response(),
            }
        })
    };
    Router::new()
        .route("/sw.js", serve("sw.js", "text/javascript; charset=utf-8"))
        .route("/offline.html", serve("offline.html", "text/html; charset=utf-8"))
}

/// The loader of the lazily loaded WASM chunks (`cargo leptos build --split`) imports the main
/// JS glue by its plain name; the page imports it by its fingerprinted one, and two URLs would be
/// two instances of the module. Served with the fingerprinted name put in.
async fn split_loader(dir: &Path, file: &str) -> Response {
    let Ok(text) = tokio::fs::read_to_string(dir.join(file)).await else {
        return axum::http::StatusCode::NOT_FOUND.into_response();
    };
    let glue = text
        .split("from \"./")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .filter(|name| name.ends_with(".js") && is_plain_name(name));
    let text = match glue {
        Some(glue) => text.replace(
            &format!("\"./{glue}\""),
            &format!("\"{}\"", fingerprinted(dir, ".", glue)),
        ),
        None => text,
    };
    (
        [(axum::http::header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        text,
    )
        .into_response()
}

/// The URL path pages use for `file` of the pkg directory `dir`, served as `url_dir`:
/// `{url_dir}/{stem}.{hash}.{ext}`, or the plain name while the file is missing (no build yet).
pub fn fingerprinted(dir: &Path, url_dir: &str, file: &str) -> String {
    match (fingerprint(dir, file), file.rsplit_once('.')) {
        (Some(hash), Some((stem, ext))) => format!("{url_dir}/{stem}.{hash}.{ext}"),
        _ => format!("{url_dir}/{file}"),
    }
}

/// `duet.0123456789abcdef.wasm` → (`duet.wasm`, `0123456789abcdef`); None for a plain name.
fn split_hash(file: &str) -> Option<(String, String)> {
    let (rest, ext) = file.rsplit_once('.')?;
    let (stem, hash) = rest.rsplit_once('.')?;
    (hash.len() == HASH_LEN
        && hash
            .bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()))
    .then(|| (format!("{stem}.{ext}"), hash.to_owned()))
}

/// A file directly in the pkg directory; anything else is left to ServeDir, which refuses it.
fn is_plain_name(file: &str) -> bool {
    !(file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.'))
}

/// Hex digits of a file's SHA-1 kept in its name: 64 bits tell builds apart, nothing secret.
const HASH_LEN: usize = 16;

/// The content hash of `dir/file`, computed again only when the file's size or time changes
/// (a rebuild under a running `cargo leptos watch`).
fn fingerprint(dir: &Path, file: &str) -> Option<String> {
    use sha1::Digest;
    type Known = HashMap<PathBuf, (SystemTime, u64, String)>;
    static KNOWN: Mutex<Option<Known>> = Mutex::new(None);
    if !is_plain_name(file) {
        return None;
    }
    let path = dir.join(file);
    let meta = std::fs::metadata(&path).ok()?;
    let stamp = (meta.modified().ok()?, meta.len());
    let mut known = KNOWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    let known = known.get_or_insert_with(HashMap::new);
    if let Some((time, len, hash)) = known.get(&path) {
        if (*time, *len) == stamp {
            return Some(hash.clone());
        }
    }
    let digest = sha1::Sha1::digest(std::fs::read(&path).ok()?);
    let hash: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let hash = hash[..HASH_LEN].to_owned();
    known.insert(path, (stamp.0, stamp.1, hash.clone()));
    Some(hash)
}

/// False if `file` has a compressed copy older than itself. Names that are not a plain file name
/// are left to ServeDir, which refuses them, and get no compression.
fn copies_are_fresh(dir: &Path, file: &str) -> bool {
    if !is_plain_name(file) {
        return false;
    }
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    let Some(original) = modified(&dir.join(file)) else {
        return false;
    };
    ["br", "gz"]
        .iter()
        .all(|ext| modified(&dir.join(format!("{file}.{ext}"))).is_none_or(|copy| copy >= original))
}

#[cfg(test)]
mod tests {
    use super::{copies_are_fresh, fingerprinted, split_hash, Build};
    use std::fs::{self, File};
    use std::time::{Duration, SystemTime};

    fn touch(path: &std::path::Path, age_secs: u64) {
        fs::write(path, b"x").unwrap();
        let when = SystemTime::now() - Duration::from_secs(age_secs);
        File::options()
            .write(true)
            .open(path)
            .unwrap()
            .set_modified(when)
            .unwrap();
    }

    #[test]
    fn a_compressed_copy_older_than_its_file_is_stale() {
        let dir = std::env::temp_dir().join(format!("duet-assets-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        touch(&dir.join("app.wasm"), 100);
        assert!(copies_are_fresh(&dir, "app.wasm"), "no copies at all");
        touch(&dir.join("app.wasm.br"), 50);
        touch(&dir.join("app.wasm.gz"), 50);
        assert!(copies_are_fresh(&dir, "app.wasm"));
        touch(&dir.join("app.wasm"), 10); // rebuilt without -P
        assert!(!copies_are_fresh(&dir, "app.wasm"));
        for odd in ["", "../app.wasm", "a/b", ".hidden", "missing.js"] {
            assert!(!copies_are_fresh(&dir, odd), "{odd:?}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_chunk_loader_is_linked_only_in_a_split_build() {
        let dir = std::env::temp_dir().join(format!("duet-split-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let build = Build {
            dir: dir.clone(),
            url_dir: "/pkg".into(),
            name: "app".into(),
        };
        touch(&dir.join("app.js"), 1);
        touch(&dir.join("__wasm_split.____.js.br"), 1);
        assert_eq!(build.split_loader_url(), None, "not split");
        touch(&dir.join("__wasm_split.____.js"), 1);
        assert_eq!(
            build.split_loader_url().as_deref(),
            Some("/pkg/__wasm_split.____.js")
        );
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn fingerprinted_names_follow_the_content() {
        let dir = std::env::temp_dir().join(format!("duet-fp-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        assert_eq!(
            fingerprinted(&dir, "/pkg", "app.wasm"),
            "/pkg/app.wasm",
            "no file yet"
        );
        touch(&dir.join("app.wasm"), 100);
        let first = fingerprinted(&dir, "/pkg", "app.wasm");
        let (plain, hash) = split_hash(first.trim_start_matches("/pkg/")).unwrap();
        assert_eq!(plain, "app.wasm");
        assert_eq!(hash.len(), 16);
        fs::write(dir.join("app.wasm"), b"rebuilt, longer").unwrap();
        assert_ne!(fingerprinted(&dir, "/pkg", "app.wasm"), first);
        for plain in ["app.wasm", "app.0123.wasm", "app.0123456789ABCDEF.wasm", "x", ""] {
            assert_eq!(split_hash(plain), None, "{plain:?}");
        }
        fs::remove_dir_all(&dir).unwrap();
    }
}
