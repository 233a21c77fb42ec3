//! The HTML pages of interactive sign-in, rendered from the binary: the sign-in form,
//! the error page (for requests that must not be redirected, RFC 6749 §4.1.2.1) and the
//! signed-out page. They work without JavaScript (there is none), label every field, and
//! are served with a strict Content-Security-Policy: nothing loads but the one inline
//! stylesheet (allowed by its hash), forms post only to us (and, on the sign-in page,
//! to the client whose redirect follows), and no site may frame them (clickjacking).

use std::fmt::Write as _;
use std::sync::OnceLock;

use aws_lc_rs::digest::{SHA256, digest};
use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

const STYLE: &str = "body{font-family:system-ui,sans-serif;background:#f4f5f7;color:#1d2433;margin:0}\
main{max-width:24rem;margin:3rem auto;background:#fff;padding:2rem;border-radius:8px;\
box-shadow:0 1px 4px rgba(0,0,0,.15)}h1{font-size:1.5rem;margin:0 0 .5rem}\
p.client{margin:0 0 1.5rem;color:#4a5366}label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input,textarea{box-sizing:border-box;width:100%;padding:.5rem;font:inherit;border:1px solid #9aa3b5;\
border-radius:4px}textarea{min-height:5rem;font-family:ui-monospace,monospace}\
.hint{font-weight:400;color:#4a5366;font-size:.875rem}\
button{margin-top:1.5rem;width:100%;padding:.65rem;font:inherit;font-weight:600;color:#fff;\
background:#2357c6;border:0;border-radius:4px;cursor:pointer}\
p.error{background:#fdecea;color:#8a1c12;border:1px solid #f0b4ae;padding:.6rem;border-radius:4px}\
footer{margin-top:1.5rem;font-size:.8rem;color:#6b7386}";

/// The `style-src` source of [`STYLE`]: its SHA-256, as CSP Level 2 §4.2.4 spells it.
fn style_source() -> &'static str {
    static SOURCE: OnceLock<String> = OnceLock::new();
    SOURCE.get_or_init(|| {
        format!(
            "'sha256-{}'",
            STANDARD.encode(digest(&SHA256, STYLE.as_bytes()))
        )
    })
}

/// Escapes text for an HTML text node or a quoted attribute value.
#[must_use]
pub(super) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The CSP source that lets a form's redirect reach `uri`: its origin for http(s), its
/// scheme otherwise (an app's custom scheme). Chromium applies `form-action` to the
/// redirects that follow a form's submission too.
fn form_target(uri: &str) -> Option<String> {
    let (scheme, rest) = uri.split_once(':')?;
    let scheme = scheme.to_ascii_lowercase();
    if scheme == "http" || scheme == "https" {
        let authority = rest.strip_prefix("//")?;
        let end = authority.find(['/', '?']).unwrap_or(authority.len());
        let origin = &authority[..end];
        let safe = !origin.is_empty()
            && origin.bytes().all(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':' | b'[' | b']')
            });
        safe.then(|| format!("{scheme}://{origin}"))
    } else {
        let safe = scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        safe.then(|| format!("{scheme}:"))
    }
}

/// A page response with the security headers of every page.
pub(super) fn page(status: StatusCode, html: String, redirect_target: Option<&str>) -> Response {
    let form_action = match redirect_target.and_then(form_target) {
        Some(target) => format!("'self' {target}"),
        None => "'self'".to_owned(),
    };
    let csp = format!(
        "default-src 'none'; style-src {}; form-action {form_action}; frame-ancestors 'none'; base-uri 'none'",
        style_source()
    );
    let mut response = Response::new(Body::from(html));
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::from_str(&csp) {
        h.insert(header::CONTENT_SECURITY_POLICY, value);
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>{}</title><style>{STYLE}</style></head><body><main>{body}\
         <footer>jwks-server</footer></main></body></html>\n",
        escape(title)
    )
}

/// What the sign-in form shows.
#[derive(Debug)]
pub(super) struct SignInForm<'a> {
    /// The client's display name.
    pub(super) client: &'a str,
    /// `users` mode asks for a password; open mode takes any username.
    pub(super) users_mode: bool,
    /// The username to fill in (`login_hint`, or what was typed).
    pub(super) username: &'a str,
    /// The extra claims typed before (open mode).
    pub(super) claims: &'a str,
    /// An error to show above the form.
    pub(super) message: Option<&'a str>,
    /// The pending request's handle.
    pub(super) request: &'a str,
    /// The pending request's CSRF token.
    pub(super) csrf: &'a str,
}

/// The sign-in page.
pub(super) fn signin_page(form: &SignInForm<'_>) -> String {
    let mut body = String::with_capacity(2048);
    body.push_str("<h1>Sign in</h1>");
    let _ = write!(
        body,
        "<p class=\"client\">to continue to <strong>{}</strong></p>",
        escape(form.client)
    );
    if let Some(message) = form.message {
        let _ = write!(
            body,
            "<p class=\"error\" role=\"alert\">{}</p>",
            escape(message)
        );
    }
    let _ = write!(
        body,
        "<form method=\"post\" action=\"signin\">\
         <input type=\"hidden\" name=\"request\" value=\"{}\">\
         <input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <label for=\"username\">Username</label>\
         <input id=\"username\" name=\"username\" autocomplete=\"username\" required \
         autocapitalize=\"none\" spellcheck=\"false\" value=\"{}\"{}>",
        escape(form.request),
        escape(form.csrf),
        escape(form.username),
        if form.username.is_empty() {
            " autofocus"
        } else {
            ""
        }
    );
    if form.users_mode {
        let _ = write!(
            body,
            "<label for=\"password\">Password</label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{}>",
            if form.username.is_empty() {
                ""
            } else {
                " autofocus"
            }
        );
    } else {
        let _ = write!(
            body,
            "<label for=\"password\">Password <span class=\"hint\">(only for a registered user)</span></label>\
             <input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\">\
             <label for=\"claims\">Extra claims <span class=\"hint\">(a JSON object, optional; added to the tokens)</span></label>\
             <textarea id=\"claims\" name=\"claims\" spellcheck=\"false\" placeholder='{{\"roles\": [\"admin\"]}}'>{}</textarea>",
            escape(form.claims)
        );
    }
    body.push_str("<button type=\"submit\">Sign in</button></form>");
    if !form.users_mode {
        body.push_str(
            "<footer>Test issuer (--auth open): any username signs in; a registered one needs its password.</footer>",
        );
    }
    document("Sign in", &body)
}

/// A page that states a problem (an unknown client, a bad redirect URI, an expired form).
pub(super) fn error_page(title: &str, message: &str) -> String {
    document(
        title,
        &format!(
            "<h1>{}</h1><p class=\"error\" role=\"alert\">{}</p>",
            escape(title),
            escape(message)
        ),
    )
}

/// The page after RP-initiated logout when no redirect follows.
pub(super) fn signed_out_page() -> String {
    document(
        "Signed out",
        "<h1>Signed out</h1><p>You are signed out. You can close this window.</p>",
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_nodes_and_attributes() {
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn form_targets_are_origins_or_schemes() {
        assert_eq!(
            form_target("http://127.0.0.1:3000/cb?x=1").as_deref(),
            Some("http://127.0.0.1:3000")
        );
        assert_eq!(
            form_target("HTTPS://app.example").as_deref(),
            Some("https://app.example")
        );
        assert_eq!(
            form_target("com.example.app:/cb").as_deref(),
            Some("com.example.app:")
        );
        assert_eq!(form_target("https://a;b/"), None);
        assert_eq!(form_target("nonsense"), None);
    }

    #[test]
    fn the_signin_page_escapes_what_it_shows_and_labels_its_fields() {
        let html = signin_page(&SignInForm {
            client: "<script>",
            users_mode: true,
            username: "\"x",
            claims: "",
            message: Some("Wrong username or password."),
            request: "r",
            csrf: "c",
        });
        assert!(!html.contains("<script>"));
        assert!(html.contains("value=\"&quot;x\""));
        assert!(html.contains("<label for=\"password\">Password</label>"));
        assert!(html.contains("role=\"alert\""));
        let response = page(StatusCode::OK, html, Some("http://127.0.0.1:9/cb"));
        let csp = response.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .expect("ascii");
        assert!(csp.contains("frame-ancestors 'none'"));
        assert!(csp.contains("form-action 'self' http://127.0.0.1:9;"));
        assert!(csp.contains(style_source()));
    }
}
