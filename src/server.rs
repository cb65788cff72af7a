//! Server assembly: configuration, the router (Leptos SSR pages + the signaling relay + static
//! files) and serving with graceful shutdown.

use crate::app::{shell, App};
use crate::relay::{self, Hub};
use axum::Router;
use leptos::prelude::*;
use leptos_axum::{generate_route_list, LeptosRoutes};
use std::sync::Arc;
use tokio::net::TcpListener;

/// The whole application router. Tests build the same one.
pub fn app(leptos_options: LeptosOptions, hub: Arc<Hub>) -> Router {
    let routes = generate_route_list(App);
    let pages = Router::new()
        .leptos_routes(&leptos_options, routes, {
            let options = leptos_options.clone();
            move || shell(options.clone())
        })
        .fallback(leptos_axum::file_and_error_handler(shell))
        .with_state(leptos_options);
    relay::router(hub).merge(pages)
}

pub async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let conf = match get_configuration(None) {
        Ok(conf) => conf,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the Leptos configuration");
            std::process::exit(2);
        }
    };
    let addr = conf.leptos_options.site_addr;
    let listener = match TcpListener::bind(addr).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(%addr, error = %e, "cannot listen");
            std::process::exit(2);
        }
    };
    tracing::info!("Duet listening on http://{addr}");
    let router = app(conf.leptos_options, Hub::new());
    if let Err(e) = axum::serve(listener, router)
        .with_graceful_shutdown(shutdown_signal())
        .await
    {
        tracing::error!(error = %e, "server stopped with an error");
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
    tracing::info!("shutting down");
}
