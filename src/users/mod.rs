//! User accounts: registration with a server-generated password, Argon2id hashing,
//! authentication at `/auth` in `open` or `users` mode, and the audit log of every
//! successful authentication (written through a group-commit writer).
//!
//! No HTTP here: `http/` parses requests into [`Username`], [`Email`] and [`Password`]
//! and maps [`UserError`] and [`AuthOutcome`] to statuses.

mod audit;
mod password;
mod store;

use std::sync::Arc;

pub use audit::{AuditLog, AuditWriter};
pub use password::PasswordHasher;
pub use store::{LoginEvent, NewUser, StoredUser, UserStore};

use crate::persist::StoreError;
use crate::secret::Secret;

/// Everything that can go wrong with users.
#[derive(Debug, thiserror::Error)]
pub enum UserError {
    /// A field failed validation; the text says which and why.
    #[error("{0}")]
    Invalid(String),
    /// The username or email is already registered.
    #[error("{0} is already registered")]
    Taken(&'static str),
    /// Argon2 failed, or a stored hash is not a valid PHC string.
    #[error("password hashing failed: {0}")]
    Hash(argon2::password_hash::Error),
    /// The system random number generator failed.
    #[error("the system random number generator failed")]
    Random,
    /// A hashing task on the blocking pool panicked or was cancelled.
    #[error("a password hashing task failed")]
    Task(#[source] tokio::task::JoinError),
    /// The hasher's semaphore was closed (it never is while the server runs).
    #[error("the password hasher is closed")]
    HasherClosed(#[source] tokio::sync::AcquireError),
    /// The store failed.
    #[error(transparent)]
    Store(StoreError),
    /// The audit log's commit of this request's row failed (shared by every row of
    /// the batch).
    #[error("the audit log commit failed")]
    Audit(#[source] Arc<StoreError>),
    /// The audit log writer has stopped (the server is shutting down).
    #[error("the audit log is closed")]
    AuditClosed,
}

impl From<StoreError> for UserError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict(field) => Self::Taken(field),
            other => Self::Store(other),
        }
    }
}

/// A valid username: 1-64 of ASCII letters, digits, `.`, `_`, `-`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Username(String);

impl Username {
    /// Validates `raw`.
    ///
    /// # Errors
    /// [`UserError::Invalid`] naming the rule broken.
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let ok = (1..=64).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(UserError::Invalid(
                "username must be 1 to 64 characters of letters, digits, '.', '_' or '-'".into(),
            ))
        }
    }

    /// The username as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A plausible email address: `local@domain.tld`, at most 254 characters (Unicode
/// scalar values, as JSON Schema's `maxLength` counts them: the limit `openapi.json`
/// states), no spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Validates `raw`.
    ///
    /// # Errors
    /// [`UserError::Invalid`] if it does not look like an email address.
    pub fn parse(raw: &str) -> Result<Self, UserError> {
        let plausible = raw.chars().count() <= 254
            && !raw.chars().any(|c| c.is_whitespace() || c.is_control())
            && raw.split_once('@').is_some_and(|(local, domain)| {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.split('.').count() >= 2
                    && domain.split('.').all(|label| !label.is_empty())
            });
        if plausible {
            Ok(Self(raw.to_owned()))
        } else {
            Err(UserError::Invalid(
                "email must be a valid address like name@example.com".into(),
            ))
        }
    }

    /// The address as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password. Its `Debug` never shows it: it prints `Password(<redacted>)`.
#[derive(Clone, Debug)]
pub struct Password(Secret);

impl Password {
    /// Wraps a password.
    #[must_use]
    pub fn new(secret: String) -> Self {
        Self(Secret::new(secret))
    }

    /// The secret text; handle with care.
    #[must_use]
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

/// Who may get a token at `/auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMode {
    /// Anyone gets a token, but a registered username needs its password.
    Open,
    /// Only registered users with the right password get a token.
    Users,
}

/// The result of an authentication attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthOutcome {
    /// A token may be issued for `subject`.
    Granted {
        /// The token's `sub`.
        subject: String,
        /// The registered user's email address (none for an unregistered name).
        email: Option<String>,
    },
    /// Wrong or missing credentials.
    Denied(DenyReason),
}

/// Why credentials were refused (for metrics; the client is told nothing more).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DenyReason {
    /// No username in `users` mode.
    MissingCredentials,
    /// The username is not registered (`users` mode).
    UnknownUser,
    /// The password does not match.
    WrongPassword,
}

/// Registration and authentication over a [`UserStore`].
#[derive(Debug, Clone)]
pub struct Users {
    store: Arc<dyn UserStore>,
    hasher: PasswordHasher,
    audit: AuditLog,
    mode: AuthMode,
}

impl Users {
    /// The user service.
    #[must_use]
    pub fn new(
        store: Arc<dyn UserStore>,
        hasher: PasswordHasher,
        audit: AuditLog,
        mode: AuthMode,
    ) -> Self {
        Self {
            store,
            hasher,
            audit,
            mode,
        }
    }

    /// The password hasher (for its counters).
    #[must_use]
    pub fn hasher(&self) -> &PasswordHasher {
        &self.hasher
    }

    /// Registers a user with a fresh random password (a UUIDv4), returned once.
    ///
    /// # Errors
    /// [`UserError::Taken`] if the username or email exists; store or hashing errors.
    pub async fn register(&self, username: Username, email: Email) -> Result<Password, UserError> {
        let password = Password::new(crate::token::uuid_v4().map_err(|_| UserError::Random)?);
        let password_hash = self.hasher.hash(password.clone()).await?;
        let user = NewUser {
            username: username.0,
            email: email.0,
            password_hash,
        };
        self.store.create_user(&user).await?;
        Ok(password)
    }

    /// Decides whether the presented credentials get a token, and on success writes
    /// the audit row (and `last_login`) before returning.
    ///
    /// # Errors
    /// Store, hashing or audit-log failures.
    pub async fn authenticate(
        &self,
        username: Option<&str>,
        password: Option<Password>,
        client_ip: Option<std::net::IpAddr>,
    ) -> Result<AuthOutcome, UserError> {
        let Some(username) = username else {
            return Ok(match self.mode {
                AuthMode::Open => AuthOutcome::Granted {
                    subject: "anonymous".into(),
                    email: None,
                },
                AuthMode::Users => AuthOutcome::Denied(DenyReason::MissingCredentials),
            });
        };
        let stored = self.store.find_user(username).await?;
        let password = password.unwrap_or_else(|| Password::new(String::new()));
        let (user_id, email) = match (stored, self.mode) {
            (Some(user), _) => {
                if !self
                    .hasher
                    .verify(password, Some(user.password_hash))
                    .await?
                {
                    return Ok(AuthOutcome::Denied(DenyReason::WrongPassword));
                }
                (Some(user.id), user.email)
            }
            // Unknown users cost a hash in users mode, so timing does not reveal who exists.
            (None, AuthMode::Users) => {
                self.hasher.verify(password, None).await?;
                return Ok(AuthOutcome::Denied(DenyReason::UnknownUser));
            }
            (None, AuthMode::Open) => (None, None),
        };
        self.audit
            .record(LoginEvent {
                user_id,
                // Formatted only here: anonymous requests never pay for it.
                request_ip: client_ip.map(|ip| ip.to_string()).unwrap_or_default(),
            })
            .await?;
        Ok(AuthOutcome::Granted {
            subject: username.to_owned(),
            email,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for ok in ["a", "user.name_1-x", &"a".repeat(64)] {
            assert!(Username::parse(ok).is_ok(), "{ok}");
        }
        for bad in ["", "has space", "ünï", "a/b", &"a".repeat(65)] {
            assert!(Username::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn emails_must_be_plausible() {
        for ok in ["a@b.co", "first.last+tag@mail.example.org"] {
            assert!(Email::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "no-at", "@b.co", "a@b", "a@b..c", "a b@c.d", "a@b@c.d", "a@.b",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn passwords_never_reach_debug_output() {
        assert_eq!(
            format!("{:?}", Password::new("hunter2".into())),
            "Password(<redacted>)"
        );
    }
}
