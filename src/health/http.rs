//! The probe responder for `http::Request` and `http::Response`.

use std::future::Future;

use super::probes::Probes;
use super::response::ProbeRequest;

impl Probes {
    /// [`Probes::respond`] for any server built on the `http` crate (axum,
    /// hyper, warp, …). The request's body is not read.
    ///
    /// # Examples
    ///
    /// ```
    /// let lifecycle = lameduck::Lifecycle::builder().build().unwrap();
    /// let probes = lifecycle.handle().probes();
    /// let req = http::Request::get("/livez?verbose").body(()).unwrap();
    /// let resp = futures::executor::block_on(probes.respond_http(&req));
    /// assert_eq!(resp.status(), 200);
    /// assert_eq!(resp.body(), "[+]ping ok\nlivez check passed\n");
    /// ```
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe, like [`Probes::respond`].
    #[cfg_attr(docsrs, doc(cfg(feature = "http")))]
    pub fn respond_http<B>(
        &self,
        request: &http::Request<B>,
    ) -> impl Future<Output = http::Response<String>> + Send + use<B> {
        let accept = request
            .headers()
            .get(http::header::ACCEPT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        let req = ProbeRequest::new(request.method().as_str(), request.uri().path())
            .query(request.uri().query().unwrap_or(""))
            .accept(accept);
        let fut = self.respond(req);
        async move {
            let (status, headers, body) = fut.await.into_parts();
            let mut response = http::Response::new(body);
            *response.status_mut() = http::StatusCode::from_u16(status)
                .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
            for (name, value) in headers {
                if let Ok(value) = http::HeaderValue::from_str(&value) {
                    response
                        .headers_mut()
                        .insert(http::HeaderName::from_static(lower(name)), value);
                }
            }
            response
        }
    }
}

/// The lower-case form `http::HeaderName::from_static` requires.
fn lower(name: &'static str) -> &'static str {
    match name {
        "Content-Type" => "content-type",
        "X-Content-Type-Options" => "x-content-type-options",
        "Cache-Control" => "cache-control",
        "Allow" => "allow",
        _ => "x-unknown",
    }
}
