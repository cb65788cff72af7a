#[cfg(feature = "ssr")]
#[tokio::main]
async fn main() {
    duet::server::main().await;
}

// `cargo test`/`cargo clippy` without the `ssr` feature still build this target.
#[cfg(not(feature = "ssr"))]
fn main() {}
