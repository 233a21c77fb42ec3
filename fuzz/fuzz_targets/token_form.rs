//! `POST /token` (and `/introspect`): the form body (`Params::parse`) and HTTP Basic
//! client credentials (`basic_client`). Input: a flag byte, then the `Content-Type`
//! value, the `Authorization` value and the body, separated by NUL bytes (a missing part
//! is an absent header). With the flag's low bit set, the `Authorization` part is the
//! text inside HTTP Basic, which the target encodes (`Basic ` and base64), so the fuzzer
//! reaches the form decoding behind it. Properties: parsing never panics, and
//! - a parameter reported as given more than once is in the body more than once, and a
//!   known parameter that is in the body more than once is refused (RFC 6749 §3.2);
//! - a parsed body is a form: not JSON by content type or by its first byte, not another
//!   media type unless empty; no parameter is kept with an empty value (§3.1);
//! - decoded Basic credentials have a non-empty id and no empty secret, every `%` of
//!   their text starts a two-hex-digit escape, and encoding them again (§2.3.1: form
//!   encoding, then RFC 7617) decodes to the same pair.
#![no_main]

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use jwks_server::http::fuzzing::token_request;
use libfuzzer_sys::fuzz_target;

const FORM: &[u8] = b"application/x-www-form-urlencoded";

fuzz_target!(|data: &[u8]| {
    let Some((&flag, data)) = data.split_first() else {
        return;
    };
    let mut parts = data.splitn(3, |&b| b == 0);
    let content_type = parts.next().filter(|p| !p.is_empty());
    let mut authorization = parts.next().filter(|p| !p.is_empty()).map(<[u8]>::to_vec);
    let body = parts.next().unwrap_or_default();
    if flag & 1 == 1 {
        authorization =
            authorization.map(|text| format!("Basic {}", STANDARD.encode(text)).into_bytes());
    }
    let authorization = authorization.as_deref();
    let Some(request) = token_request(content_type, authorization, body) else {
        return;
    };
    check_form(content_type, body, &request.form);
    if let Ok(Some((id, secret))) = &request.basic {
        check_basic(
            authorization.expect("Basic needs a header"),
            id,
            secret.as_deref(),
        );
    }
});

fn check_form(
    content_type: Option<&[u8]>,
    body: &[u8],
    form: &Result<String, jwks_server::http::ApiError>,
) {
    let pairs: Vec<(String, String)> = form_urlencoded::parse(body).into_owned().collect();
    let count = |name: &str| pairs.iter().filter(|(k, _)| k == name).count();
    match form {
        Ok(shown) => {
            let essence = content_type.map(|ct| {
                let ct = std::str::from_utf8(ct).unwrap_or("?");
                ct.split(';')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase()
            });
            if let Some(essence) = essence.as_deref() {
                assert!(
                    essence != "application/json"
                        && !(essence.starts_with("application/") && essence.ends_with("+json")),
                    "a JSON content type parsed"
                );
                assert!(
                    body.is_empty() || essence.as_bytes() == FORM,
                    "a {essence} body parsed"
                );
            }
            assert!(
                !body.trim_ascii_start().starts_with(b"{"),
                "a JSON body parsed"
            );
            assert!(
                !shown.contains(r#"Some("")"#),
                "an empty value kept: {shown}"
            );
            // Every name that occurs more than once is one the handler ignores.
            let mut names: Vec<&str> = pairs.iter().map(|(k, _)| k.as_str()).collect();
            names.sort_unstable();
            names.dedup();
            for name in names.into_iter().filter(|name| count(name) > 1) {
                assert!(!is_known(name), "'{name}' given twice and accepted");
            }
        }
        Err(error) => {
            let text = error.to_string();
            if let Some(name) = text
                .strip_prefix("the parameter '")
                .and_then(|rest| rest.strip_suffix("' is given more than once"))
            {
                assert!(count(name) > 1, "'{name}' given once, reported twice");
            }
        }
    }
}

/// Whether the handler reads `name`, asked of the parser itself: a parameter it reads is
/// refused when repeated, one it ignores is not (the list of parameters grows with the
/// grants; this target does not keep a copy of it).
fn is_known(name: &str) -> bool {
    let pair = form_urlencoded::Serializer::new(String::new())
        .append_pair(name, "x")
        .finish();
    let body = format!("{pair}&{pair}");
    let request = token_request(Some(FORM), None, body.as_bytes()).expect("valid headers");
    request.form.is_err()
}

fn check_basic(authorization: &[u8], id: &str, secret: Option<&str>) {
    assert!(!id.is_empty(), "an empty client id decoded");
    assert_ne!(secret, Some(""), "an empty secret kept");
    // The text inside the base64, as RFC 7617 carries it.
    let value = std::str::from_utf8(authorization).expect("a Basic header that decoded");
    let (_, encoded) = value.split_once(' ').expect("a scheme and credentials");
    let raw = STANDARD
        .decode(encoded.trim())
        .expect("base64 that decoded");
    for (at, _) in raw.iter().enumerate().filter(|(_, b)| **b == b'%') {
        let escape = raw.get(at + 1..at + 3);
        assert!(
            escape.is_some_and(|hex| hex.iter().all(u8::is_ascii_hexdigit)),
            "'%' at {at} is not an escape, yet it decoded: {:?}",
            String::from_utf8_lossy(&raw)
        );
    }
    let encode = |text: &str| form_urlencoded::byte_serialize(text.as_bytes()).collect::<String>();
    let again = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", encode(id), encode(secret.unwrap_or(""))))
    );
    let decoded = token_request(None, Some(again.as_bytes()), b"")
        .expect("a valid header")
        .basic
        .expect("decodes again")
        .expect("Basic");
    assert_eq!((decoded.0.as_str(), decoded.1.as_deref()), (id, secret));
}
