//! The HTTP side of ingest: `/metrics` (Prometheus text format 0.0.4), `/healthz` (the process
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
    ([(header::CONTENT_TYPE, crate::metrics::CONTENT_TYPE)], m.render(telemetry::now_ms()))
}

pub(crate) async fn ready(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let limits = m.health.lock().map(|l| l.clone()).unwrap_or_default();
    let facts = facts_of(&m);
    match crate::health::readiness(&facts, &limits, telemetry::now_ms()) {
        Ok(()) => (StatusCode::OK, "ready\n".to_string()),
        Err(reasons) => (StatusCode::SERVICE_UNAVAILABLE, reasons.iter().map(|r| format!("{r}\n")).collect()),
    }
}

/// The readiness facts as the metrics hold them now.
fn facts_of(m: &Metrics) -> crate::health::Facts {
    use std::sync::atomic::Ordering::Relaxed;
    let since = m.writes_failing_since_ms.load(Relaxed);
    crate::health::Facts {
        subscribed: m.subscribed.load(Relaxed),
        writes_failing_since_ms: (since != 0).then_some(since),
        last_write_error: m.last_write_error.lock().ok().and_then(|e| e.clone()),
        wal_pending: m.wal_pending.load(Relaxed),
        wal_bytes: m.wal_bytes.load(Relaxed),
    }
}

/// Serves `app` ([`router`], or the console's) until `shutdown` turns true.
pub async fn serve(listener: tokio::net::TcpListener, app: Router, mut shutdown: watch::Receiver<bool>) {
    let stop = async move {
        let _ = shutdown.wait_for(|s| *s).await;
    };
    let service = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    if let Err(e) = axum::serve(listener, service).with_graceful_shutdown(stop).await {
        tracing::error!("http: {e}");
    }
}
