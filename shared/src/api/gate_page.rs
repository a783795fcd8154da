//! The approval page a signed link opens in a browser: what the gate is
//! about (the ideas; the rendered video and its clips), a comment box, and
//! Approve / Reject as POSTs. The page is meant to be pasted into chat or
//! email, so it is answered with headers that keep it out of caches,
//! referrers and frames (`no_store_headers`).
use axum::http::{header, HeaderValue};
use axum::response::Response;

use crate::domain::Gate;
use crate::pipeline::{GateReview, GateView};

/// What the gate routes' answers carry: the link's token travels in the URL,
/// so no cache keeps a page, no referrer leaks the URL, and no other site
/// frames the buttons. A page may load its video from anywhere (providers'
/// CDNs), and nothing else.
pub(super) async fn no_store_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (header::CACHE_CONTROL, "no-store"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; media-src https: http:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

pub(super) fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

/// A URL fit for `src`/`href`: http(s) only, escaped.
fn web_url(url: &str) -> Option<String> {
    (url.starts_with("https://") || url.starts_with("http://")).then(|| escape(url))
}

/// The gate's subject, as HTML sections.
fn review_html(review: &GateReview, gate: &Gate) -> String {
    let mut html = String::new();
    if let Some(title) = &review.title {
        html += &format!("<h2 id=\"title\">{}</h2>", escape(title));
    }
    if !review.ideas.is_empty() {
        let items: String = review
            .ideas
            .iter()
            .map(|idea| format!("<li>{}</li>", escape(idea)))
            .collect();
        html += &format!("<h3>Ideas</h3><ol id=\"ideas\">{items}</ol>");
    }
    if let Some(hook) = &review.hook {
        html += &format!("<p><strong>Hook:</strong> {}</p>", escape(hook));
    }
    if let Some(url) = review.render_url.as_deref().and_then(web_url) {
        html += &format!(
            "<h3>Video</h3><video id=\"video\" controls preload=\"metadata\" src=\"{url}\"></video>\
             <p><a href=\"{url}\" rel=\"noreferrer\">{url}</a></p>"
        );
    }
    if !review.clips.is_empty() {
        let items: String = review
            .clips
            .iter()
            .filter_map(|url| web_url(url))
            .map(|url| format!("<li><a href=\"{url}\" rel=\"noreferrer\">{url}</a></li>"))
            .collect();
        html += &format!(
            "<details id=\"clips\"><summary>{} clips</summary><ol>{items}</ol></details>",
            review.clips.len()
        );
    }
    if let Some(caption) = &review.caption {
        html += &format!("<h3>Caption</h3><p id=\"caption\">{}</p>", escape(caption));
    }
    if !review.next.is_empty() {
        let next: Vec<&str> = review.next.iter().map(|p| p.as_str()).collect();
        html += &format!(
            "<p class=\"muted\">After {gate}: {} (a comment below is passed to them).</p>",
            next.join(" → ")
        );
    }
    if html.is_empty() {
        html = "<p class=\"muted\">This gate recorded nothing to review.</p>".to_owned();
    }
    html
}

/// The whole page. `action(verb)` is where the form posts (`approve`,
/// `reject`), with the link's token.
pub(super) fn page(view: &GateView, gate: &Gate, action: impl Fn(&str) -> String) -> String {
    let run = &view.run;
    let brief = run.input["message"].as_str().unwrap_or_default();
    let decision = match (&view.request.decision, &view.request.decided_by) {
        (Some(decision), by) => format!(
            "<p id=\"decided\">This gate was already <strong>{decision}</strong> by {}.{}</p>",
            escape(by.as_deref().unwrap_or("?")),
            view.request
                .comment
                .as_deref()
                .map(|c| format!(" Comment: “{}”", escape(c)))
                .unwrap_or_default()
        ),
        (None, _) => format!(
            "<form method=\"post\" action=\"{approve}\">\
             <label for=\"comment\">Comment (optional; kept with the decision and passed on)</label>\
             <textarea id=\"comment\" name=\"comment\" maxlength=\"{max}\" rows=\"3\"></textarea>\
             <button id=\"approve\" type=\"submit\">Approve</button> \
             <button id=\"reject\" type=\"submit\" formaction=\"{reject}\">Reject</button></form>",
            approve = action("approve"),
            reject = action("reject"),
            max = crate::pipeline::limits::COMMENT_MAX_CHARS,
        ),
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>MyloWare · {gate} · {job}</title>\
         <style>body{{font-family:system-ui;margin:2rem auto;max-width:44rem;padding:0 1rem}}\
         video{{max-width:100%;max-height:70vh;background:#000}}textarea{{display:block;width:100%;margin:.5rem 0 1rem}}\
         button{{font-size:1.1rem;padding:.5rem 1.5rem;margin-right:1rem}}.muted{{color:#666}}</style></head><body>\
         <h1>Gate <code>{gate}</code></h1>\
         <p>Run <strong>{job}</strong> ({project}) is <strong>{status}</strong>. Brief: “{brief}”</p>\
         {review}{decision}</body></html>",
        job = run.job_code,
        project = run.project,
        status = run.status,
        brief = escape(brief),
        review = review_html(&view.review, gate),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_web_urls_reach_the_page_and_text_is_escaped() {
        assert_eq!(web_url("javascript:alert(1)"), None);
        assert_eq!(
            web_url("https://cdn/v.mp4?a=1&b=\"2\"").as_deref(),
            Some("https://cdn/v.mp4?a=1&amp;b=&quot;2&quot;")
        );
        let review = GateReview {
            title: Some("<script>x</script>".into()),
            clips: vec!["data:text/html,hi".into(), "https://c/1".into()],
            ..GateReview::default()
        };
        let html = review_html(&review, &"ideate".parse().unwrap());
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("data:text"), "{html}");
        assert!(html.contains("https://c/1"), "{html}");
    }
}
