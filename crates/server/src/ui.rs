//! The web UI: static files embedded in the binary (no build step). The
//! page holds no data; it calls the API with the token the operator types
//! in (kept in the tab's sessionStorage). Agent output reaches the page only
//! through `textContent`, and the CSP set on every answer
//! (`script-src 'self'`, no inline script or style) stops injected markup
//! from running even if a bug let some through.

use crate::state::State;
use axum::http::header;
use axum::response::{IntoResponse, Redirect};
use axum::routing::get;
use axum::Router;
use std::sync::Arc;

const INDEX: &str = include_str!("ui/index.html");
const APP_JS: &str = include_str!("ui/app.js");
const STYLE: &str = include_str!("ui/style.css");

/// `/` (redirects to `/ui/`), `/ui/`, `/ui/app.js`, `/ui/style.css`.
pub fn routes() -> Router<Arc<State>> {
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(|| async { ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], INDEX).into_response() }))
        .route(
            "/ui/app.js",
            get(|| async { ([(header::CONTENT_TYPE, "text/javascript; charset=utf-8")], APP_JS).into_response() }),
        )
        .route(
            "/ui/style.css",
            get(|| async { ([(header::CONTENT_TYPE, "text/css; charset=utf-8")], STYLE).into_response() }),
        )
}
