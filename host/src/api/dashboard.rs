//! The dashboard: a small web app served by the host itself at `/ui/` (and `/` redirects
//! there), its three files embedded in the binary, so it works offline and behind any proxy.
//!
//! Why no framework and no build step: the page talks only to the public API (the `queue`
//! command over JSON-RPC, `GET /api/v1/jobs/{id}`, and the event streams read with `fetch`, so
//! that the API key travels in a header), and three static files are all it needs. With
//! `--dashboard-dir` the files are read from disk on every request instead (for working on
//! them without rebuilding the host).

use super::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use std::path::Path;

const INDEX: &str = include_str!("../../dashboard/index.html");
const APP_JS: &str = include_str!("../../dashboard/app.js");
const APP_CSS: &str = include_str!("../../dashboard/app.css");

fn asset(state: &AppState, name: &str, embedded: &'static str, mime: &'static str) -> Response {
    let body = match &state.dashboard_dir {
        Some(dir) => match std::fs::read_to_string(Path::new(dir).join(name)) {
            Ok(text) => text,
            Err(e) => {
                return (StatusCode::NOT_FOUND, format!("{name}: {e}")).into_response();
            }
        },
        None => embedded.to_string(),
    };
    (
        [
            (header::CONTENT_TYPE, mime),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// `GET /` → `/ui/`.
pub(super) async fn root() -> Redirect {
    Redirect::temporary("/ui/")
}

/// `GET /ui/`.
pub(super) async fn index(State(state): State<AppState>) -> Response {
    asset(&state, "index.html", INDEX, "text/html; charset=utf-8")
}

/// `GET /ui/app.js`.
pub(super) async fn app_js(State(state): State<AppState>) -> Response {
    asset(&state, "app.js", APP_JS, "text/javascript; charset=utf-8")
}

/// `GET /ui/app.css`.
pub(super) async fn app_css(State(state): State<AppState>) -> Response {
    asset(&state, "app.css", APP_CSS, "text/css; charset=utf-8")
}
