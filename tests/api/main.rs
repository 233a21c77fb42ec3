//! Black-box tests over real HTTP: each test starts its own server on port 0.

mod auth;
mod cli;
mod helpers;
mod http_errors;
mod jwks;
mod lifecycle;
