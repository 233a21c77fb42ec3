//! Black-box tests over real HTTP: each test starts its own server on port 0.

#![allow(
    unreachable_pub,
    reason = "helpers are shared between the files of this one test binary"
)]

mod auth;
mod cli;
mod durability;
mod helpers;
mod http_errors;
mod jwks;
mod lifecycle;
mod openapi;
mod operations;
mod postgres;
mod process;
mod replicas;
mod selftest;
mod shutdown;
mod store_suite;
mod users;
