//! Black-box tests over real HTTP: each test starts its own server on port 0.

#![allow(
    unreachable_pub,
    reason = "helpers are shared between the files of this one test binary"
)]

mod accept;
mod auth;
mod cli;
mod clients;
mod discovery;
mod durability;
mod framing;
mod headers;
mod helpers;
mod http_errors;
mod introspect;
mod jwks;
mod lifecycle;
mod openapi;
mod operations;
mod process;
mod selftest;
mod shutdown;
mod signin;
mod store_suite;
mod test_cases;
mod tls;
mod token;
mod users;
