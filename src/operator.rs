//! The operator's key commands, `jwks-server keys list|rotate|revoke`: they open the
//! store beside any running server (SQLite without the server's lock; PostgreSQL as a
//! replica would), act as a writer over the key-set version, and return what to print.
//! Running servers pick a change up within a second (`keys::SHARED_POLL`).

use anyhow::Context as _;

use crate::config::Settings;
use crate::http::{KeyListing, OutcomeView};
use crate::keys::{Clock as _, KeyId, Operation, SystemClock, UnixMillis, operate_on_store};

/// `keys list`: a table, or with `json` the listing as one JSON document.
///
/// # Errors
/// If the store cannot be opened or read.
pub async fn list(settings: &Settings, json: bool) -> anyhow::Result<String> {
    let store = crate::store::attach(&settings.database, &settings.master_key)
        .await
        .context("cannot open the key store")?;
    let listed = store.list_keys().await;
    store.close().await;
    let listed = listed.context("cannot list the keys")?;
    let listing = KeyListing::new(listed.version.get(), &listed.value, SystemClock.now());
    if json {
        return serde_json::to_string_pretty(&listing).context("cannot encode the listing");
    }
    let mut out = format!(
        "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}\n",
        "KID", "ALG", "STATE", "PUBLISHED", "ACTIVATES", "RETIRES", "EXPIRES"
    );
    for key in &listing.keys {
        out.push_str(&format!(
            "{:<43}  {:<5}  {:<8}  {:<20}  {:<20}  {:<20}  {:<20}\n",
            key.kid,
            key.alg,
            key.state,
            utc(key.published_at_ms),
            utc(key.activates_at_ms),
            utc(key.retires_at_ms),
            utc(key.expires_at_ms),
        ));
        if let Some(at) = key.revoked_at_ms {
            let reason = key.revoked_reason.as_deref().unwrap_or("");
            out.push_str(&format!("  revoked {}: {reason}\n", utc(at)));
        }
    }
    Ok(out)
}

/// `keys rotate [--immediate]` and `keys revoke KID [--reason]`: carries the operation
/// out and describes it as JSON.
///
/// # Errors
/// If the store cannot be opened, or the operation is refused or fails (nothing changed).
pub async fn operate(settings: &Settings, operation: Operation) -> anyhow::Result<String> {
    let store = crate::store::attach(&settings.database, &settings.master_key)
        .await
        .context("cannot open the key store")?;
    let outcome = operate_on_store(&*store, &settings.keys, &operation, &SystemClock).await;
    store.close().await;
    let outcome = outcome.context("nothing changed")?;
    serde_json::to_string_pretty(&OutcomeView::new(&outcome, SystemClock.now()))
        .context("cannot encode the outcome")
}

/// `keys revoke`'s operation.
#[must_use]
pub fn revoke(kid: String, reason: String) -> Operation {
    Operation::Revoke {
        kid: KeyId::from_stored(kid),
        reason,
    }
}

/// `2026-12-01 13:05:36Z` for Unix milliseconds (proleptic Gregorian, UTC).
fn utc(ms: UnixMillis) -> String {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (H. Hinnant, "chrono-Compatible Low-Level
    // Date Algorithms").
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_formats_known_instants() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00Z");
        assert_eq!(utc(1_796_130_336_999), "2026-12-01 13:05:36Z");
        assert_eq!(utc(-1_000), "1969-12-31 23:59:59Z");
    }
}
