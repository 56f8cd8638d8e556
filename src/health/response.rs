//! HTTP-shaped requests and responses for the probes, with no HTTP crate:
//! the Kubernetes apiserver's text format, and JSON.

use std::future::Future;

use super::probes::{Probes, Target};
use super::render::{lifecycle_json, wants_json};

/// A request to the probe responder: method, path, query string and the
/// `Accept` header, borrowed from whatever server received it.
///
/// # Examples
///
/// ```
/// use lameduck::ProbeRequest;
///
/// let req = ProbeRequest::new("GET", "/readyz")
///     .query("verbose&exclude=db")
///     .accept("application/json");
/// # let _ = req;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeRequest<'a> {
    method: &'a str,
    path: &'a str,
    query: &'a str,
    accept: &'a str,
}

impl<'a> ProbeRequest<'a> {
    /// A request with no query and no `Accept` header. `path` may carry the
    /// query after a `?`.
    pub fn new(method: &'a str, path: &'a str) -> Self {
        let (path, query) = path.split_once('?').unwrap_or((path, ""));
        ProbeRequest {
            method,
            path,
            query,
            accept: "",
        }
    }

    /// The query string, without the leading `?`.
    pub fn query(mut self, query: &'a str) -> Self {
        self.query = query;
        self
    }

    /// The `Accept` header: a value naming `application/json` asks for
    /// JSON.
    pub fn accept(mut self, accept: &'a str) -> Self {
        self.accept = accept;
        self
    }
}

/// A response from the probe responder: status, headers and body, ready to
/// be copied into any server's response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResponse {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl ProbeResponse {
    pub(super) fn new(status: u16, content_type: &str, body: String) -> Self {
        ProbeResponse {
            status,
            headers: vec![
                ("Content-Type", content_type.to_owned()),
                ("X-Content-Type-Options", "nosniff".to_owned()),
                ("Cache-Control", "no-store".to_owned()),
            ],
            body,
        }
    }

    pub(super) fn text(status: u16, body: String) -> Self {
        Self::new(status, "text/plain; charset=utf-8", body)
    }

    #[cfg(feature = "admin")]
    pub(crate) fn bad_request(status: u16, body: &str) -> Self {
        Self::text(status, format!("{body}\n"))
    }

    /// The HTTP status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The headers, in order. Names are in their usual capitalisation.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// One header by name, ignoring case.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The body (empty for `HEAD`).
    pub fn body(&self) -> &str {
        &self.body
    }

    /// Status, headers and body.
    pub fn into_parts(self) -> (u16, Vec<(&'static str, String)>, String) {
        (self.status, self.headers, self.body)
    }
}

/// What a request asks for, parsed before any check runs.
enum Route {
    Probe {
        target: Target,
        exclude: Vec<String>,
        verbose: bool,
        json: bool,
    },
    Check {
        target: Target,
        name: String,
    },
    Lifecycle,
    Ready(ProbeResponse),
}

impl Probes {
    /// Answers a request for a probe, in the Kubernetes apiserver format.
    ///
    /// | request | answer |
    /// |---|---|
    /// | `GET /livez`, `/readyz`, `/startupz`, `/healthz` | `200` `ok`, or the [failure status](Probes::failure_status) (`500`) with every check listed |
    /// | `…?verbose` | every check: `[+]name ok` …, then `readyz check passed` |
    /// | `…?exclude=name` (repeatable) | `name` is not run: `[+]name excluded: ok` |
    /// | `…?format=json`, or `Accept: application/json` (quality above zero and above `text/plain`'s) | the same as JSON |
    /// | `GET /readyz/name` | that check alone: `200` `ok`, or the failure status with `internal server error: reason withheld`; the query is ignored |
    /// | `HEAD` | the same status and headers, no body |
    /// | other methods | `405`, `Allow: GET, HEAD` |
    /// | other paths | `404` |
    ///
    /// A failure is always detailed: `[-]name failed: reason withheld`, the
    /// last line `<probe> check failed`. Reasons replace `reason withheld`
    /// only with [`show_reasons`](Probes::show_reasons). A warning (a
    /// degraded check, or a non-critical one failing) reads
    /// `[+]name degraded: …` or `[+]name failed (non-critical): …` and the
    /// probe passes. An excluded name that matches no check adds a line
    /// `warn: some health checks cannot be excluded: no matches for "name"`.
    /// A failing probe (not a per-check path) is logged at info level with
    /// its failing checks and their reasons, at most once per probe every
    /// ten seconds, like the apiserver's `V(2)` line.
    ///
    /// Every response has `Content-Type` (`text/plain; charset=utf-8` or
    /// `application/json`), `X-Content-Type-Options: nosniff` and
    /// `Cache-Control: no-store`.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, like [`Probes::check`].
    pub fn respond(
        &self,
        request: ProbeRequest<'_>,
    ) -> impl Future<Output = ProbeResponse> + Send + use<> {
        let head = request.method == "HEAD";
        let route = self.route(request);
        let this = self.clone();
        async move { this.answer(route, head, false).await }
    }

    /// The answer to `request` if it runs no check (every check it selects
    /// is built in or refreshed in the background, see
    /// [`is_background`](Probes::is_background)), computed now; else `None`.
    #[cfg(feature = "admin")]
    pub(crate) fn respond_from_background(
        &self,
        request: ProbeRequest<'_>,
    ) -> Option<ProbeResponse> {
        use futures::FutureExt;
        let head = request.method == "HEAD";
        let route = self.route(request);
        let background = match &route {
            Route::Probe {
                target, exclude, ..
            } => self.is_background(*target, None, exclude),
            Route::Check { target, name } => self.is_background(*target, Some(name), &[]),
            Route::Ready(_) | Route::Lifecycle => true,
        };
        // Reading results is ready at the first poll.
        background
            .then(|| self.answer(route, head, true).now_or_never())
            .flatten()
    }

    async fn answer(&self, route: Route, head: bool, background: bool) -> ProbeResponse {
        let mut response = match route {
            Route::Ready(r) => r,
            Route::Lifecycle => ProbeResponse::new(
                200,
                "application/json",
                lifecycle_json(&self.handle.report()),
            ),
            Route::Probe {
                target,
                exclude,
                verbose,
                json,
            } => {
                let report = self.evaluate(target, None, exclude, background).await;
                if !report.is_passing() {
                    self.log_failure(target, &report);
                }
                self.render(&report, verbose, json)
            }
            Route::Check { target, name } => {
                let report = self
                    .evaluate(target, Some(name), Vec::new(), background)
                    .await;
                self.render_check(&report)
            }
        };
        if head {
            response.body.clear();
        }
        response
    }

    fn route(&self, req: ProbeRequest<'_>) -> Route {
        let path = req.path.strip_prefix('/').unwrap_or(req.path);
        let (first, rest) = match path.split_once('/') {
            Some((a, b)) => (a, Some(b)),
            None => (path, None),
        };
        let found = if self.debug && req.path == "/debug/lifecycle" {
            Some(Route::Lifecycle)
        } else {
            Target::from_name(first).and_then(|target| match rest {
                // `/<probe>/<check>` is the apiserver's `adaptCheckToHandler`:
                // that check alone, whatever the query says.
                Some(name) => {
                    let name = decode(name);
                    self.has_check(target, &name)
                        .then_some(Route::Check { target, name })
                }
                None => {
                    let mut verbose = false;
                    let mut json = wants_json(req.accept);
                    let mut exclude = Vec::new();
                    for pair in req.query.split('&').filter(|p| !p.is_empty()) {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        match decode(k).as_str() {
                            "verbose" => verbose = true,
                            "exclude" => exclude.push(decode(v)),
                            "format" => json = decode(v) == "json",
                            _ => {}
                        }
                    }
                    Some(Route::Probe {
                        target,
                        exclude,
                        verbose,
                        json,
                    })
                }
            })
        };
        match found {
            None => Route::Ready(ProbeResponse::text(404, "404 page not found\n".into())),
            Some(_) if req.method != "GET" && req.method != "HEAD" => {
                let mut r = ProbeResponse::text(405, "405 method not allowed\n".into());
                r.headers.push(("Allow", "GET, HEAD".into()));
                Route::Ready(r)
            }
            Some(route) => route,
        }
    }
}

/// Percent-decodes a query component (`+` is a space). Invalid escapes are
/// kept as they are.
fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 2;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}
