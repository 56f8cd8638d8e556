//! How the probes' answers read: [`ProbeResponse`], the apiserver's text
//! lines and JSON, the failing-probe log line, and the lifecycle's JSON for
//! `/debug/lifecycle`.

use std::fmt::Write as _;
use std::time::Instant;

use super::probes::{Probes, Target};
use super::results::{CheckStatus, ProbeReport};
use crate::logging::event;
use crate::report::Report;

/// A response from the probe responder: status, headers and body, ready to
/// be copied into any server's response type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeResponse {
    status: u16,
    pub(super) headers: Vec<(&'static str, String)>,
    pub(super) body: String,
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

impl Probes {
    /// The apiserver's log line for a failing probe (its `V(2)` line), with
    /// the reasons, at most one per probe per ten seconds.
    pub(super) fn log_failure(&self, target: Target, report: &ProbeReport) {
        let log = &self.handle.shared.health.failure_log;
        let Some(suppressed) = log.admit(target.index(), Instant::now()) else {
            return;
        };
        let mut failed = Vec::new();
        let mut detail = String::new();
        for c in report.checks() {
            if c.status() == CheckStatus::Fail {
                failed.push(c.name());
                let reason = c.health().and_then(|h| h.reason()).unwrap_or_default();
                let _ = write!(detail, "; [-]{} failed: {reason}", c.name());
            }
        }
        let more = match suppressed {
            0 => String::new(),
            n => format!(" ({n} more failures since the last line)"),
        };
        event!(target: "lameduck", info, {},
            "{} check failed: {}{detail}{more}",
            report.name(),
            failed.join(",")
        );
    }

    /// A per-check path's answer: `ok`, or the failure status with
    /// `internal server error: <reason>`.
    pub(super) fn render_check(&self, report: &ProbeReport) -> ProbeResponse {
        let failing = report
            .checks()
            .iter()
            .find_map(|c| c.health().filter(|h| !h.is_passing()));
        match failing {
            None => ProbeResponse::text(200, "ok".into()),
            Some(h) => ProbeResponse::text(
                self.failure_status,
                format!(
                    "internal server error: {}\n",
                    self.reason(h.reason().unwrap_or_default())
                ),
            ),
        }
    }

    fn reason<'r>(&self, reason: &'r str) -> &'r str {
        if self.show_reasons {
            reason
        } else {
            "reason withheld"
        }
    }

    pub(super) fn render(&self, report: &ProbeReport, verbose: bool, json: bool) -> ProbeResponse {
        let status = if report.is_passing() {
            200
        } else {
            self.failure_status
        };
        if json {
            return ProbeResponse::new(status, "application/json", self.render_json(report));
        }
        if status == 200 && !verbose {
            return ProbeResponse::text(200, "ok".into());
        }
        let mut body = String::new();
        for c in report.checks() {
            let name = c.name();
            let reason = c.health().and_then(|h| h.reason()).unwrap_or_default();
            let _ = match (c.status(), c.health()) {
                (CheckStatus::Excluded, _) => writeln!(body, "[+]{name} excluded: ok"),
                (CheckStatus::Pass, _) => writeln!(body, "[+]{name} ok"),
                (CheckStatus::Warn, Some(h)) if h.is_passing() => {
                    writeln!(body, "[+]{name} degraded: {}", self.reason(reason))
                }
                (CheckStatus::Warn, _) => {
                    writeln!(
                        body,
                        "[+]{name} failed (non-critical): {}",
                        self.reason(reason)
                    )
                }
                _ => writeln!(body, "[-]{name} failed: {}", self.reason(reason)),
            };
        }
        if !report.unmatched.is_empty() {
            let names: Vec<String> = report.unmatched.iter().map(|n| quote(n)).collect();
            let _ = writeln!(
                body,
                "warn: some health checks cannot be excluded: no matches for {}",
                names.join(",")
            );
        }
        let verdict = if status == 200 { "passed" } else { "failed" };
        let _ = writeln!(body, "{} check {verdict}", report.name());
        ProbeResponse::text(status, body)
    }

    fn render_json(&self, report: &ProbeReport) -> String {
        let mut out = String::new();
        let _ = write!(
            out,
            "{{\"probe\":{},\"status\":\"{}\",\"checks\":[",
            quote(report.name()),
            report.status().as_str()
        );
        for (i, c) in report.checks().iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let _ = write!(
                out,
                "{{\"name\":{},\"status\":\"{}\",\"critical\":{},\"duration_ms\":{:.3}",
                quote(c.name()),
                c.status().as_str(),
                c.is_critical(),
                c.duration().as_secs_f64() * 1000.0
            );
            if let Some(r) = c.health().and_then(|h| h.reason()) {
                let _ = write!(out, ",\"reason\":{}", quote(self.reason(r)));
            }
            out.push('}');
        }
        out.push_str("],\"unmatched_excludes\":[");
        let names: Vec<String> = report.unmatched.iter().map(|n| quote(n)).collect();
        out.push_str(&names.join(","));
        out.push_str("]}");
        out
    }
}

/// A JSON snapshot of a lifecycle report: phase, timings, components.
pub(super) fn lifecycle_json(report: &Report) -> String {
    let ms = |d: Option<std::time::Duration>| match d {
        Some(d) => format!("{:.3}", d.as_secs_f64() * 1000.0),
        None => "null".into(),
    };
    let cause = report
        .shutdown_cause()
        .map_or_else(|| "null".into(), |c| quote(&c.to_string()));
    let mut out = format!(
        "{{\"phase\":{},\"elapsed_ms\":{},\"shutdown_at_ms\":{},\"shutdown_cause\":{},\"components\":[",
        quote(report.phase().as_str()),
        ms(Some(report.elapsed())),
        ms(report.shutdown_at()),
        cause
    );
    for (i, c) in report.components().iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(
            out,
            "{{\"name\":{},\"state\":{},\"start_at_ms\":{},\"start_took_ms\":{},\
             \"ready_at_ms\":{},\"attempts\":{},\"run_ended_at_ms\":{},\"stop_at_ms\":{},\
             \"stop_took_ms\":{},\"close_at_ms\":{},\"close_took_ms\":{},\"dependencies\":[",
            quote(&c.name),
            quote(&c.state.to_string()),
            ms(c.start_at),
            ms(c.start_took),
            ms(c.ready_at),
            c.attempts,
            ms(c.run_ended_at),
            ms(c.stop_at),
            ms(c.stop_took),
            ms(c.close_at),
            ms(c.close_took)
        );
        for (j, dep) in c.dependencies().iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            out.push_str(&quote(dep));
        }
        let _ = write!(out, "],\"restarts\":{},\"failures\":[", c.restarts);
        for (j, f) in c.failures().iter().enumerate() {
            if j > 0 {
                out.push(',');
            }
            let at = ms(Some(f.at));
            let _ = write!(out, "{{\"at_ms\":{at},\"error\":{}}}", quote(&f.error));
        }
        out.push_str("]}");
    }
    out.push_str("]}");
    out
}

/// A double-quoted string, escaped for JSON (also how the apiserver's `%q`
/// reads for plain names).
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
