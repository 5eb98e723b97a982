//! The HTTP side of ingest: `/metrics` (Prometheus text format), `/healthz` (the process
//! answers), `/readyz` (200 "ready", or 503 with the reasons of [`crate::health`]). With a
//! console configured, all but `/healthz` need a login or a token (`console::api`).

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use tokio::sync::watch;

use crate::metrics::Metrics;

pub fn router(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(ready))
        .with_state(metrics)
}

pub(crate) async fn render(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], m.render(crate::server::now_ms()))
}

pub(crate) async fn ready(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let limits = m.health.lock().map(|l| l.clone()).unwrap_or_default();
    let facts = crate::health::Facts::of(&m);
    match crate::health::readiness(&facts, &limits, crate::server::now_ms()) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, reasons.iter().map(|r| format!("{r}\n")).collect()),
    }
}

/// With the console: `/healthz` open, everything else behind a login or a token.
pub fn console_router(console: Arc<crate::console::Console>) -> Router {
    crate::console::api::router(console).route("/healthz", get(|| async { "ok\n" }))
}

/// Serves until `shutdown` turns true; the console when one is configured.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    console: Option<Arc<crate::console::Console>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let app = match console {
        Some(c) => console_router(c),
        None => router(metrics),
    };
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stop).await {
        tracing::error!("http: {e}");
    }
}
