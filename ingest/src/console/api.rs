//! The console's HTTP handlers (ingest/API.md). Engine reads and lifecycle changes go to the
//! writer as commands; history, audit and rate history come from the state database.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Extension, Json, Router};
use futures::Stream;
use rules::engine::{Matchers, Silence};
use serde::Deserialize;
use serde_json::json;
use tokio::sync::oneshot;

use super::auth::{Caller, Role, Via};
use super::{views, Command, Console, Event};
use crate::pipeline::Pipeline;
use crate::store::{AuditEntry, HistoryQuery, InspectionRecord};

/// An error answer: `{"error": "..."}` with its status.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError { status, message: message.into() }
    }
    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn unauthorized(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, message)
    }
    pub fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, message)
    }
    fn busy() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "ingest is busy writing; try again")
    }
    fn no_store() -> ApiError {
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "alert state is off ([state] enabled = false)")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// How long a handler waits for the writer.
const WRITER_WAIT: Duration = Duration::from_secs(10);

const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
                   connect-src 'self'; frame-ancestors 'none'; form-action 'self'";

/// The console's routes; `/healthz` and the rest of ingest's routes are merged beside them.
/// The console's routes with `/healthz` open: everything else needs a login or a token.
pub fn router_with_health(console: Arc<Console>) -> Router {
    router(console).route("/healthz", get(|| async { "ok\n" }))
}

pub fn router(console: Arc<Console>) -> Router {
    let api = Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/logout", post(logout))
        .route("/api/v1/alerts", get(alerts))
        .route("/api/v1/alerts/ack", post(acknowledge))
        .route("/api/v1/alerts/history", get(history))
        .route("/api/v1/silences", get(silences).post(add_silence))
        .route("/api/v1/silences/:id", delete(remove_silence))
        .route("/api/v1/inspections", get(inspections).post(record_inspection))
        .route("/api/v1/overdue-rate", get(overdue_rate))
        .route("/api/v1/overdue-rate/history", get(rate_history))
        .route("/api/v1/status", get(status))
        .route("/api/v1/events", get(events))
        .route("/api/v1/audit", get(audit))
        .route("/metrics", get(metrics))
        .route("/readyz", get(ready))
        .route_layer(axum::middleware::from_fn_with_state(console.clone(), authenticate));
    Router::new()
        .route("/", get(|| asset(include_str!("assets/index.html"), "text/html; charset=utf-8")))
        .route(
            "/assets/app.js",
            get(|| asset(include_str!("assets/app.js"), "text/javascript; charset=utf-8")),
        )
        .route(
            "/assets/i18n.js",
            get(|| asset(include_str!("assets/i18n.js"), "text/javascript; charset=utf-8")),
        )
        .route("/assets/app.css", get(|| asset(include_str!("assets/app.css"), "text/css; charset=utf-8")))
        .route("/api/v1/login", post(login))
        .merge(api)
        .with_state(console)
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut r = body.into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    r
}

fn remote(req: &Request) -> String {
    req.extensions().get::<ConnectInfo<SocketAddr>>().map_or_else(String::new, |c| c.0.to_string())
}

async fn authenticate(State(c): State<Arc<Console>>, mut req: Request, next: Next) -> Response {
    let remote = remote(&req);
    match c.auth.caller(req.method(), req.headers(), remote) {
        Ok(caller) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Err(e) => e.into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Login {
    user: String,
    password: String,
}

async fn login(
    State(c): State<Arc<Console>>,
    ConnectInfo(addr): ConnectInfo<SocketAddr>,
    Json(body): Json<Login>,
) -> ApiResult<Response> {
    let console = c.clone();
    let user = body.user.clone();
    // Each check holds about 19 MiB for tens of milliseconds: a flood of logins must not
    // exhaust memory or the blocking threads.
    let _permit = c.password_checks.acquire().await.map_err(|_| ApiError::busy())?;
    let now = std::time::Instant::now();
    let session = tokio::task::spawn_blocking(move || console.auth.login(&body.user, &body.password, now))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    let (id, csrf, role) = match session {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!("console: failed login for {user:?} from {addr} ({e:?})");
            c.metrics.console_failed_logins.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return Err(match e {
                super::auth::LoginError::WrongPassword => ApiError::unauthorized("wrong user or password"),
                super::auth::LoginError::Locked(left) => ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!(
                        "too many failed logins for {user}; try again in {} min",
                        left.as_secs() / 60 + 1
                    ),
                ),
            });
        }
    };
    tracing::info!("console: {user} logged in from {addr}");
    let mut r = Json(json!({ "user": user, "role": role, "csrf": csrf })).into_response();
    let cookie = HeaderValue::from_str(&c.auth.session_cookie(&id))
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?;
    r.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(r)
}

async fn logout(State(c): State<Arc<Console>>, headers: HeaderMap) -> Response {
    c.auth.logout(&headers);
    let mut r = StatusCode::NO_CONTENT.into_response();
    let expired = format!("{}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0", super::auth::SESSION_COOKIE);
    if let Ok(v) = HeaderValue::from_str(&expired) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn me(Extension(caller): Extension<Caller>) -> Json<serde_json::Value> {
    let csrf = match &caller.via {
        Via::Session { csrf } => Some(csrf.clone()),
        Via::Token => None,
    };
    Json(json!({ "user": caller.name, "role": caller.role, "csrf": csrf }))
}

async fn metrics(State(c): State<Arc<Console>>) -> impl IntoResponse {
    crate::http::render(State(c.metrics.clone())).await
}

async fn ready(State(c): State<Arc<Console>>) -> impl IntoResponse {
    crate::http::ready(State(c.metrics.clone())).await
}

/// Runs `f` on the writer between batches.
async fn ask<T: Send + 'static>(
    c: &Console,
    f: impl FnOnce(&Pipeline) -> T + Send + 'static,
) -> ApiResult<T> {
    let (tx, rx) = oneshot::channel();
    let read = Box::new(move |p: &Pipeline| {
        let _ = tx.send(f(p));
    });
    send_and_wait(c, Command::Read(read), rx).await
}

/// Sends a command to the writer and waits for its answer; a writer that does not take it or
/// answer within [`WRITER_WAIT`] is busy (503).
async fn send_and_wait<T>(c: &Console, cmd: Command, answer: oneshot::Receiver<T>) -> ApiResult<T> {
    c.commands.send_timeout(cmd, WRITER_WAIT).await.map_err(|_| ApiError::busy())?;
    tokio::time::timeout(WRITER_WAIT, answer)
        .await
        .map_err(|_| ApiError::busy())?
        .map_err(|_| ApiError::busy())
}

/// Runs a lifecycle change on the writer; answers once its transitions are out and saved.
async fn change(c: &Console, f: super::Change) -> ApiResult<Vec<telemetry::AlertMessage>> {
    let (tx, rx) = oneshot::channel();
    send_and_wait(c, Command::Change(f, tx), rx).await?
}

/// Runs `f` on the console's connection to the state database, off the async threads.
async fn with_store<T: Send + 'static>(
    c: &Arc<Console>,
    f: impl FnOnce(&crate::store::ConsoleStore) -> Result<T, String> + Send + 'static,
) -> ApiResult<T> {
    let c = c.clone();
    tokio::task::spawn_blocking(move || {
        let store = c.store.as_ref().ok_or_else(ApiError::no_store)?;
        let store = store.lock().map_err(|_| ApiError::no_store())?;
        f(&store).map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e))
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?
}

fn audit_entry(c: &Console, caller: &Caller, action: &str, target: &str, detail: &str) {
    let entry = AuditEntry {
        ts: telemetry::now_ms(),
        who: caller.name.clone(),
        action: action.to_string(),
        target: target.to_string(),
        detail: detail.to_string(),
        remote: caller.remote.clone(),
    };
    tracing::info!(
        "audit: {} {} {} {} ({})",
        entry.who,
        entry.action,
        entry.target,
        entry.detail,
        entry.remote
    );
    if let Some(store) = &c.store {
        if let Err(e) = store.lock().map_err(|e| e.to_string()).and_then(|s| s.audit(&entry)) {
            tracing::error!("audit log: {e}");
        }
    }
}

async fn alerts(State(c): State<Arc<Console>>) -> ApiResult<Response> {
    let now = telemetry::now_ms();
    Ok(Json(ask(&c, move |p| views::active_alerts(p, now)).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AckBody {
    rule: String,
    device: String,
    #[serde(default)]
    comment: String,
}

async fn acknowledge(
    State(c): State<Arc<Console>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<AckBody>,
) -> ApiResult<Response> {
    caller.require(Role::Operator)?;
    let (who, rule, device, comment) =
        (caller.name.clone(), body.rule.clone(), body.device.clone(), body.comment.clone());
    let out = change(
        &c,
        Box::new(move |p, now| {
            p.engine_mut()
                .acknowledge(&rule, &device, &who, &comment, now)
                .map(|m| vec![m])
                .map_err(|e| ApiError::not_found(e.to_string()))
        }),
    )
    .await?;
    audit_entry(&c, &caller, "acknowledge", &format!("{} {}", body.rule, body.device), &body.comment);
    Ok(Json(out.into_iter().next()).into_response())
}

async fn history(State(c): State<Arc<Console>>, Query(q): Query<HistoryQuery>) -> ApiResult<Response> {
    Ok(Json(with_store(&c, move |store| store.history(&q)).await?).into_response())
}

async fn silences(State(c): State<Arc<Console>>) -> ApiResult<Response> {
    Ok(Json(ask(&c, |p| p.engine().silences().to_vec()).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SilenceBody {
    matchers: Matchers,
    #[serde(default)]
    starts_ms: Option<i64>,
    #[serde(default)]
    ends_ms: Option<i64>,
    /// Instead of `ends_ms`: `2h`, `30m`.
    #[serde(default)]
    duration: Option<String>,
    #[serde(default)]
    comment: String,
}

async fn add_silence(
    State(c): State<Arc<Console>>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<SilenceBody>,
) -> ApiResult<Response> {
    caller.require(Role::Operator)?;
    let now = telemetry::now_ms();
    let starts_ms = body.starts_ms.unwrap_or(now);
    let ends_ms = match (body.ends_ms, &body.duration) {
        (Some(end), None) => end,
        (None, Some(d)) => {
            let d =
                humantime::parse_duration(d).map_err(|e| ApiError::bad_request(format!("duration: {e}")))?;
            starts_ms.saturating_add(d.as_millis().min(i64::MAX as u128) as i64)
        }
        _ => return Err(ApiError::bad_request("give either ends_ms or duration")),
    };
    let id = format!("silence-{}", &super::auth::random_token()[..12]);
    let silence = Silence {
        id: id.clone(),
        matchers: body.matchers.clone(),
        starts_ms,
        ends_ms,
        who: caller.name.clone(),
        comment: body.comment.clone(),
    };
    let detail = serde_json::to_string(&silence).unwrap_or_default();
    change(
        &c,
        Box::new(move |p, _| {
            p.engine_mut()
                .add_silence(silence)
                .map(|_| Vec::new())
                .map_err(|e| ApiError::bad_request(e.to_string()))
        }),
    )
    .await?;
    audit_entry(&c, &caller, "silence", &id, &detail);
    Ok((StatusCode::CREATED, Json(json!({ "id": id }))).into_response())
}

async fn remove_silence(
    State(c): State<Arc<Console>>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    caller.require(Role::Operator)?;
    let target = id.clone();
    change(
        &c,
        Box::new(move |p, _| match p.engine_mut().remove_silence(&target) {
            Some(_) => Ok(Vec::new()),
            None => Err(ApiError::not_found(format!("no silence `{target}`"))),
        }),
    )
    .await?;
    audit_entry(&c, &caller, "unsilence", &id, "");
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct InspectionsQuery {
    #[serde(default)]
    within_days: Option<i64>,
}

fn today() -> rules::Date {
    rules::Date::from_ms(telemetry::now_ms(), rules::date::CHINA_UTC_OFFSET_MS)
}

async fn inspections(
    State(c): State<Arc<Console>>,
    Query(q): Query<InspectionsQuery>,
) -> ApiResult<Response> {
    let within = q.within_days.unwrap_or(30).clamp(0, 3660);
    let today = today();
    Ok(Json(ask(&c, move |p| views::inspections(p, today, within)).await?).into_response())
}

async fn record_inspection(
    State(c): State<Arc<Console>>,
    Extension(caller): Extension<Caller>,
    Json(mut record): Json<InspectionRecord>,
) -> ApiResult<Response> {
    caller.require(Role::Operator)?;
    if rules::Date::parse(&record.date).is_none() {
        return Err(ApiError::bad_request(format!("date: `{}` is not a YYYY-MM-DD date", record.date)));
    }
    if let Some(next) = &record.next_due {
        if rules::Date::parse(next).is_none() {
            return Err(ApiError::bad_request(format!("next_due: `{next}` is not a YYYY-MM-DD date")));
        }
    }
    if record.date > today().to_string() {
        return Err(ApiError::bad_request(format!("date: {} is in the future", record.date)));
    }
    record.who = caller.name.clone();
    record.at = telemetry::now_ms();
    let (tx, rx) = oneshot::channel();
    send_and_wait(&c, Command::RecordInspection(record.clone(), tx), rx).await??;
    let detail = serde_json::to_string(&record).unwrap_or_default();
    audit_entry(&c, &caller, "inspection_record", &record.device, &detail);
    Ok((StatusCode::CREATED, Json(record)).into_response())
}

async fn overdue_rate(State(c): State<Arc<Console>>) -> ApiResult<Response> {
    let today = today();
    match ask(&c, move |p| views::overdue_rate(p, today)).await? {
        Some(rate) => Ok(Json(rate).into_response()),
        None => Err(ApiError::not_found("no registry is configured ([registry] file)")),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RateQuery {
    #[serde(default)]
    town: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    since: Option<i64>,
}

async fn rate_history(State(c): State<Arc<Console>>, Query(q): Query<RateQuery>) -> ApiResult<Response> {
    let (town, kind) = (q.town.unwrap_or_default(), q.kind.unwrap_or_default());
    let points = with_store(&c, move |store| store.rate_history(&town, &kind, q.since.unwrap_or(0))).await?;
    Ok(Json(points).into_response())
}

async fn status(State(c): State<Arc<Console>>) -> ApiResult<Response> {
    let now = telemetry::now_ms();
    let offline_ms = c.cfg.offline_after.as_millis() as i64;
    let metrics = c.metrics.clone();
    Ok(Json(ask(&c, move |p| views::status(p, &metrics, now, offline_ms)).await?).into_response())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    #[serde(default)]
    limit: Option<u32>,
}

async fn audit(
    State(c): State<Arc<Console>>,
    Extension(caller): Extension<Caller>,
    Query(q): Query<AuditQuery>,
) -> ApiResult<Response> {
    caller.require(Role::Admin)?;
    let limit = q.limit.unwrap_or(200);
    Ok(Json(with_store(&c, move |store| store.audit_log(limit)).await?).into_response())
}

async fn events(State(c): State<Arc<Console>>) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let rx = c.events.subscribe();
    let stream = futures::stream::unfold(rx, |mut rx| async move {
        let event = match rx.recv().await {
            Ok(Event::Alert(json)) => SseEvent::default().event("alert").data(json),
            Ok(Event::Rules(json)) => SseEvent::default().event("rules").data(json),
            // A slow browser missed some: it refetches everything.
            Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {
                SseEvent::default().event("resync").data("{}")
            }
            Err(tokio::sync::broadcast::error::RecvError::Closed) => return None,
        };
        Some((Ok(event), rx))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
