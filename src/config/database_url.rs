//! [`DatabaseUrl`]: a PostgreSQL URL whose password never reaches `Debug` or logs.

use std::fmt;

/// A database URL whose password never reaches `Debug` or logs. Equality compares the
/// real URLs, password included.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// Wraps a URL.
    #[must_use]
    pub fn new(url: String) -> Self {
        Self(url)
    }

    /// The URL itself, password included: only for the driver, never for display.
    #[must_use]
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Whether the URL names PostgreSQL.
    #[must_use]
    pub fn is_postgres(text: &str) -> bool {
        text.starts_with("postgres://") || text.starts_with("postgresql://")
    }
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // scheme://user:password@host/db?password=x -> scheme://user:***@host/db?password=***
        let (base, query) = match self.0.split_once('?') {
            Some((base, query)) => (base, Some(query)),
            None => (self.0.as_str(), None),
        };
        match (base.find("://"), base.rfind('@')) {
            (Some(scheme_end), Some(at)) if at > scheme_end => {
                match base[scheme_end + 3..at].split_once(':') {
                    Some((user, _)) => {
                        write!(f, "{}{user}:***{}", &base[..scheme_end + 3], &base[at..])?;
                    }
                    None => f.write_str(base)?,
                }
            }
            _ => f.write_str(base)?,
        }
        let Some(query) = query else { return Ok(()) };
        for (i, pair) in query.split('&').enumerate() {
            f.write_str(if i == 0 { "?" } else { "&" })?;
            match pair.split_once('=') {
                Some((name, _)) if name.eq_ignore_ascii_case("password") => {
                    write!(f, "{name}=***")?;
                }
                _ => f.write_str(pair)?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_never_show_their_password() {
        let url = DatabaseUrl::new("postgres://app:s3cret@db.internal:5432/keys".into());
        assert_eq!(url.to_string(), "postgres://app:***@db.internal:5432/keys");
        assert_eq!(
            format!("{url:?}"),
            "postgres://app:***@db.internal:5432/keys"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://root@127.0.0.1/test".into()).to_string(),
            "postgres://root@127.0.0.1/test"
        );
        assert_eq!(
            DatabaseUrl::new(
                "postgres://db/keys?user=app&Password=s3cret&sslmode=require&password".into()
            )
            .to_string(),
            "postgres://db/keys?user=app&Password=***&sslmode=require&password"
        );
        assert_eq!(
            DatabaseUrl::new("postgres://app:a%40b@db/k?password=x@y".into()).to_string(),
            "postgres://app:***@db/k?password=***"
        );
        assert!(DatabaseUrl::is_postgres("postgresql://x") && !DatabaseUrl::is_postgres("jwks.db"));
    }
}
