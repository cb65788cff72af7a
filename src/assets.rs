//! `/pkg/*`: the build's WASM, JS glue and CSS. A release build made with `cargo leptos build
//! --release -P` leaves `.br` and `.gz` copies next to each file; a browser that accepts them
//! gets those (a phone downloads ~200 KiB of brotli instead of ~700 KiB of WASM). A copy older
//! than its file, left over from an earlier build, is never served: that would pair new JS glue
//! with old WASM.

use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use axum::Router;
use std::path::{Path, PathBuf};
use std::sync::Arc;
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

async fn serve(State(pkg): State<Arc<Pkg>>, req: Request) -> Response {
    let file = req.uri().path().trim_start_matches('/');
    let service = if copies_are_fresh(&pkg.dir, file) {
        pkg.packed.clone()
    } else {
        pkg.plain.clone()
    };
    let mut response = match service.oneshot(req).await {
        Ok(response) => response.into_response(),
        Err(never) => match never {},
    };
    // The same URL answers differently per Accept-Encoding: caches must keep them apart.
    response.headers_mut().insert(
        axum::http::header::VARY,
        axum::http::HeaderValue::from_static("accept-encoding"),
    );
    response
}

/// False if `file` has a compressed copy older than itself. Names that are not a plain file name
/// are left to ServeDir, which refuses them, and get no compression.
fn copies_are_fresh(dir: &Path, file: &str) -> bool {
    if file.is_empty() || file.contains(['/', '\\']) || file.starts_with('.') {
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
    use super::copies_are_fresh;
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
}
