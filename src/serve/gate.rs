//! The gate every request passes, as one tower layer: authentication first (no valid token
//! is 401, a token without the scope 403, whatever else is wrong with the request), then a
//! path or query holding a percent-encoded NUL (`%00`) is refused, and every response is
//! counted by route template and status ([`super::telemetry::count_request`]).
//!
//! A hand-written layer rather than `axum::middleware::from_fn`: that one clones the inner
//! service into a new box and boxes its future on every request, work a cached `GET` (the
//! hot path, a few microseconds in all) would pay for nothing.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use axum::extract::{MatchedPath, Request};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};

use super::AppState;
use super::api::{ApiError, ErrorCode};
use super::auth::Scope;

/// The routes anyone may call: no token, whatever the configuration.
const PUBLIC_ROUTES: [&str; 3] = ["/healthz", "/readyz", "/openapi.json"];

/// The scope a request needs: run for `POST …/run`, read for every other route (unknown
/// routes included), none for [`PUBLIC_ROUTES`].
fn needed_scope(route: Option<&MatchedPath>, method: &Method) -> Option<Scope> {
    match route.map(MatchedPath::as_str) {
        Some(route) if PUBLIC_ROUTES.contains(&route) => None,
        Some("/v1/prompts/{service}/{name}/run") if method == Method::POST => Some(Scope::Run),
        _ => Some(Scope::Read),
    }
}

/// Whether `text` holds a percent-encoded NUL.
fn holds_nul(text: &str) -> bool {
    text.as_bytes()
        .windows(3)
        .any(|w| w[0] == b'%' && w[1] == b'0' && w[2] == b'0')
}

/// The answer to a request the gate refuses, or `None` to let it through.
fn refusal(state: &AppState, request: &Request, route: Option<&MatchedPath>) -> Option<Response> {
    // The open routes take no input.
    let scope = needed_scope(route, request.method())?;
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(HeaderValue::as_bytes);
    if let Err(denied) = state.tokens.check(authorization, scope) {
        return Some(ApiError::denied(denied).into_response());
    }
    let uri = request.uri();
    if holds_nul(uri.path()) || uri.query().is_some_and(holds_nul) {
        return Some(
            ApiError::new(
                ErrorCode::BadRequest,
                "the request's path or query holds a NUL character (%00)",
            )
            .into_response(),
        );
    }
    None
}

/// The layer: [`Gate`] around every route of the server.
#[derive(Clone)]
pub struct GateLayer {
    state: Arc<AppState>,
}

impl GateLayer {
    /// The gate of the server whose tokens `state` holds.
    pub fn new(state: Arc<AppState>) -> GateLayer {
        GateLayer { state }
    }
}

impl<S> tower_layer::Layer<S> for GateLayer {
    type Service = Gate<S>;

    fn layer(&self, inner: S) -> Gate<S> {
        Gate {
            inner,
            state: self.state.clone(),
        }
    }
}

/// Admits a request to `inner` or answers it, then counts the response.
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    state: Arc<AppState>,
}

impl<S> tower_service::Service<Request> for Gate<S>
where
    S: tower_service::Service<Request, Response = Response, Error = Infallible>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Counted<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let route = request.extensions().get::<MatchedPath>().cloned();
        let answer = match refusal(&self.state, &request, route.as_ref()) {
            Some(refused) => Answer::Refused {
                response: Some(refused),
            },
            None => Answer::Admitted {
                future: self.inner.call(request),
            },
        };
        Counted { answer, route }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's future, or the gate's own refusal.
    #[project = AnswerProjection]
    enum Answer<F> {
        Admitted { #[pin] future: F },
        Refused { response: Option<Response> },
    }
}

pin_project_lite::pin_project! {
    /// The response of a request, counted when it is ready.
    pub struct Counted<F> {
        #[pin]
        answer: Answer<F>,
        route: Option<MatchedPath>,
    }
}

impl<F> Future for Counted<F>
where
    F: Future<Output = Result<Response, Infallible>>,
{
    type Output = Result<Response, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let response = match this.answer.project() {
            AnswerProjection::Admitted { future } => match future.poll(cx) {
                Poll::Ready(Ok(response)) => response,
                Poll::Pending => return Poll::Pending,
            },
            AnswerProjection::Refused { response } => response.take().unwrap_or_else(|| {
                ApiError::new(ErrorCode::Internal, "polled twice").into_response()
            }),
        };
        super::telemetry::count_request(this.route.as_ref(), response.status());
        Poll::Ready(Ok(response))
    }
}
