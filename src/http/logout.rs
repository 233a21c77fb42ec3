//! `GET`/`POST /logout`: RP-initiated logout (OpenID Connect RP-Initiated Logout 1.0
//! §2, §3). Ends the browser's session, then sends it to the client's registered
//! `post_logout_redirect_uri` with `state`, or shows a signed-out page. The client is
//! named by `client_id` or by the `aud` of `id_token_hint` (an ID token of ours; an
//! expired one is accepted, §2); a redirect URI that is not the client's is never
//! followed (§3: it must match a registered one exactly).

use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::response::Response;
use serde_json::Value;

use super::authorize::{PageError, SESSION_COOKIE, cookie, is_web_uri, set_cookie};
use super::body::{media_type, read_body};
use super::form::fields;
use super::pages;
use super::state::AppState;
use crate::clients::ClientAuth;
use crate::signin::Handle;
use crate::token::verify_own;

fn refuse(message: impl Into<String>) -> Response {
    pages::page(
        StatusCode::BAD_REQUEST,
        pages::error_page("Cannot sign out here", &message.into()),
        None,
    )
}

/// `GET`/`POST /logout`.
pub(super) async fn logout(State(state): State<AppState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let input = if parts.method == Method::POST
        && media_type(&parts.headers).as_deref() == Some("application/x-www-form-urlencoded")
    {
        match read_body(&parts.headers, body, state.body_timeout).await {
            Ok(bytes) => bytes.to_vec(),
            Err(error) => return PageError::unreadable(&error).into_response(),
        }
    } else {
        parts.uri.query().unwrap_or("").as_bytes().to_vec()
    };
    let form = fields(
        &input,
        [
            "id_token_hint",
            "client_id",
            "post_logout_redirect_uri",
            "state",
        ],
    );
    if let Some(name) = form.repeated {
        return refuse(format!("The parameter {name} is given more than once."));
    }
    let [
        id_token_hint,
        client_id,
        post_logout_redirect_uri,
        client_state,
    ] = form.values;
    let now = state.clock.now();
    // The hint's audience names the client; its signature must be ours, its expiry is
    // not checked (RP-Initiated Logout §2).
    let hinted = match id_token_hint.as_deref() {
        None => None,
        Some(hint) => {
            let set = state.keys.load();
            // An ID token: `typ: JWT` with `auth_time`, which neither an access token
            // (`at+jwt`) nor an `/auth` JWT carries.
            let Some(claims) = verify_own(hint, &set, state.issuer.issuer(), now, i64::MAX / 4)
                .filter(|c| c.contains_key("auth_time") && !c.contains_key("client_id"))
            else {
                return refuse("The id_token_hint is not an ID token of this issuer.");
            };
            match claims.get("aud") {
                Some(Value::String(aud)) => Some(aud.clone()),
                Some(Value::Array(list)) => list.first().and_then(Value::as_str).map(str::to_owned),
                _ => None,
            }
        }
    };
    let client_id = match (client_id.as_deref(), hinted.as_deref()) {
        (Some(a), Some(b)) if a != b => {
            return refuse("client_id is not the audience of the id_token_hint.");
        }
        (Some(id), _) | (None, Some(id)) => Some(id.to_owned()),
        (None, None) => None,
    };
    let redirect = match post_logout_redirect_uri.as_deref() {
        None => None,
        Some(uri) => {
            let Some(id) = client_id.as_deref() else {
                return refuse(
                    "post_logout_redirect_uri needs client_id or id_token_hint to name the client.",
                );
            };
            let allowed = match state.clients.identify(id) {
                ClientAuth::Registered(client) => {
                    client.post_logout_redirect_uris.iter().any(|r| r == uri)
                }
                // Open mode, unregistered client: any http(s) URI, as at /authorize.
                ClientAuth::Open(_) => is_web_uri(uri),
                ClientAuth::Refused(_) => false,
            };
            if !allowed {
                return refuse(format!(
                    "{uri} is not a registered post-logout redirect URI of the client {id}; \
                     register it with `jwks-server clients add ... --post-logout-redirect-uri`."
                ));
            }
            Some(uri.to_owned())
        }
    };
    // HEAD is safe (RFC 9110 §9.2.1): it answers as GET would, and changes nothing.
    let head = parts.method == Method::HEAD;
    if !head
        && let Some(handle) = cookie(&parts.headers, SESSION_COOKIE).and_then(Handle::parse)
        && let Err(error) = state.signin.end_session(&handle, now).await
    {
        tracing::warn!(
            error = &error as &dyn std::error::Error,
            "cannot end a session"
        );
        return pages::page(
            StatusCode::SERVICE_UNAVAILABLE,
            pages::error_page(
                "Try again shortly",
                "The sign-in service cannot reach its database right now.",
            ),
            None,
        );
    }
    let mut response = match redirect {
        Some(uri) => {
            let mut query = form_urlencoded::Serializer::new(String::new());
            if let Some(s) = client_state.as_deref() {
                query.append_pair("state", s);
            }
            let query = query.finish();
            let location = match (query.is_empty(), uri.contains('?')) {
                (true, _) => uri,
                (false, true) => format!("{uri}&{query}"),
                (false, false) => format!("{uri}?{query}"),
            };
            let mut r = Response::new(axum::body::Body::empty());
            *r.status_mut() = StatusCode::SEE_OTHER;
            match axum::http::HeaderValue::from_str(&location) {
                Ok(value) => {
                    r.headers_mut().insert(header::LOCATION, value);
                }
                Err(_) => return refuse("The post-logout redirect URI cannot be used."),
            }
            r
        }
        None => pages::page(StatusCode::OK, pages::signed_out_page(), None),
    };
    if !head {
        response.headers_mut().append(
            header::SET_COOKIE,
            set_cookie(&state, SESSION_COOKIE, "", Some(0)),
        );
    }
    response
}
