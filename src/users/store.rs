//! What the user service needs of storage: the [`UserStore`] interface and its rows.
//! `users/` owns the interface because it consumes it; `store/` implements it.

use crate::persist::{BoxFuture, StoreError};

/// A user to create; the password is already hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Unique username.
    pub username: String,
    /// Unique email address.
    pub email: String,
    /// Argon2id PHC string.
    pub password_hash: String,
}

/// What authentication needs of a stored user.
#[derive(Debug, Clone)]
pub struct StoredUser {
    /// `users.id`.
    pub id: i64,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// The registered email address.
    pub email: Option<String>,
}

/// One successful authentication, for `auth_logs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginEvent {
    /// The user, or `None` for an unregistered name in open mode.
    pub user_id: Option<i64>,
    /// The client's IP address as text.
    pub request_ip: String,
}

/// Durable storage of users and the authentication log.
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates a user and returns its id.
    ///
    /// # Errors
    /// [`StoreError::Conflict`] naming the field if the username or email is taken.
    fn create_user<'a>(&'a self, user: &'a NewUser) -> BoxFuture<'a, Result<i64, StoreError>>;

    /// The user with this username, if any.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails.
    fn find_user<'a>(
        &'a self,
        username: &'a str,
    ) -> BoxFuture<'a, Result<Option<StoredUser>, StoreError>>;

    /// In one transaction: adds an `auth_logs` row per event and sets `last_login` of
    /// each named user.
    ///
    /// # Errors
    /// [`StoreError`] if the database fails; then no row was written.
    fn record_logins<'a>(
        &'a self,
        events: &'a [LoginEvent],
    ) -> BoxFuture<'a, Result<(), StoreError>>;
}
