//! `POST /auth` credentials from JSON, form or HTTP Basic. Input: the `Content-Type`
//! value, the `Authorization` value and the body, separated by NUL bytes (a missing part
//! is an absent header). Property: parsing never panics, and credentials that parse have
//! a username of 1 to 256 characters (JSON Schema's `maxLength` counts characters, and
//! so does the server).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut parts = data.splitn(3, |&b| b == 0);
    let content_type = parts.next().filter(|p| !p.is_empty());
    let authorization = parts.next().filter(|p| !p.is_empty());
    let body = parts.next().unwrap_or_default();
    if let Some(Ok(credentials)) =
        jwks_server::http::fuzzing::auth_credentials(content_type, authorization, body)
        && let Some(name) = &credentials.username
    {
        let chars = name.chars().count();
        assert!((1..=256).contains(&chars), "{chars}");
    }
});
