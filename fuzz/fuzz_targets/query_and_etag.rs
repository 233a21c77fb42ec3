//! The `?expired=` query of `/auth` and the `If-None-Match` list of the JWKS. Input: the
//! first byte picks the parser. Properties: neither panics; `*` and the tag itself always
//! match whatever else the list holds.
#![no_main]

use jwks_server::http::fuzzing::{expired_query, if_none_match};
use libfuzzer_sys::fuzz_target;

const ETAG: &[u8] = br#""0123456789abcdef""#;

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    if which % 2 == 0 {
        let _ = expired_query(&String::from_utf8_lossy(rest));
    } else {
        let _ = if_none_match(rest, ETAG);
        let mut listed = rest.to_vec();
        listed.extend_from_slice(b", ");
        listed.extend_from_slice(ETAG);
        assert!(if_none_match(&listed, ETAG));
        assert!(if_none_match(b"*", ETAG));
    }
});
