//! Requests for the probes, with no HTTP crate: [`ProbeRequest`], routed by
//! path, query and `Accept` to the probe it asks for, then answered.

use std::future::Future;

use super::probes::{Probes, Target};
use super::render::{ProbeResponse, lifecycle_json};

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

/// Whether an `Accept` header asks for JSON: `application/json` with a
/// quality above zero and above that of `text/plain` or `text/*`. Other
/// types (`*/*`, `text/html`) choose nothing: text is the default.
fn wants_json(accept: &str) -> bool {
    let (mut json, mut text) = (0.0f32, 0.0f32);
    for range in accept.split(',') {
        let mut params = range.split(';');
        let media = params.next().unwrap_or_default().trim();
        let mut q = 1.0f32;
        for p in params {
            if let Some((k, v)) = p.split_once('=') {
                if k.trim().eq_ignore_ascii_case("q") {
                    // An unreadable quality counts as a refusal.
                    q = v
                        .trim()
                        .parse::<f32>()
                        .ok()
                        .filter(|q| (0.0..=1.0).contains(q))
                        .unwrap_or(0.0);
                }
            }
        }
        if media.eq_ignore_ascii_case("application/json") {
            json = json.max(q);
        } else if media.eq_ignore_ascii_case("text/plain") || media.eq_ignore_ascii_case("text/*") {
            text = text.max(q);
        }
    }
    json > 0.0 && json > text
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
