//! The immutable published key set. A [`KeySet`] is built once per change of the keys
//! (by the rotator), and holds, for every stretch of time until the next planned
//! transition, the pre-serialized JWKS body, its ETag and the active key. A request loads
//! the current snapshot from the [`KeySetHandle`] without locking and picks the stretch
//! that contains the current instant, so a key leaves the JWKS exactly at its `exp` and a
//! successor starts signing exactly at its activation, whether or not the rotator task
//! has woken up yet.

use std::sync::Arc;

use arc_swap::ArcSwap;
use aws_lc_rs::digest::{SHA256, digest};
use axum::body::Bytes;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Serialize;

use super::clock::UnixMillis;
use super::jwk::Jwk;
use super::record::KeyRecord;

/// A stretch of time over which the published keys and the active key do not change.
#[derive(Debug)]
pub struct Epoch {
    /// First instant of the stretch (inclusive).
    pub start: UnixMillis,
    /// End of the stretch (exclusive); `i64::MAX` for the last one.
    pub end: UnixMillis,
    /// The key that signs during the stretch; `None` only if the schedule ran out.
    pub active: Option<Arc<KeyRecord>>,
    /// The JWKS document `{"keys":[...]}` as served.
    pub jwks: Bytes,
    /// Strong ETag of `jwks`, quotes included.
    pub etag: Bytes,
    /// How many keys the JWKS holds.
    pub published: usize,
}

/// An immutable snapshot of every key the server holds, with the JWKS precomputed.
#[derive(Debug)]
pub struct KeySet {
    keys: Vec<Arc<KeyRecord>>,
    epochs: Vec<Epoch>,
}

#[derive(Serialize)]
struct JwksDocument<'a> {
    keys: Vec<&'a Jwk>,
}

impl KeySet {
    /// Builds the snapshot for `keys` as seen from `now` onwards.
    #[must_use]
    pub fn build(mut keys: Vec<Arc<KeyRecord>>, now: UnixMillis) -> Self {
        // A stable order makes the JWKS byte-identical across restarts and replicas.
        keys.sort_by(|a, b| {
            (a.schedule.activates_at, &a.kid).cmp(&(b.schedule.activates_at, &b.kid))
        });
        let mut points: Vec<UnixMillis> = keys
            .iter()
            .flat_map(|k| {
                let s = k.schedule;
                [s.published_at, s.activates_at, s.retires_at, s.expires_at]
            })
            .filter(|&t| t > now)
            .collect();
        points.push(now);
        points.sort_unstable();
        points.dedup();

        let mut epochs: Vec<Epoch> = Vec::with_capacity(points.len());
        let mut previous: Vec<&Arc<KeyRecord>> = Vec::new();
        for (i, &start) in points.iter().enumerate() {
            let end = points.get(i + 1).copied().unwrap_or(i64::MAX);
            let published: Vec<&Arc<KeyRecord>> = keys
                .iter()
                .filter(|k| k.schedule.is_published_at(start))
                .collect();
            let active = keys
                .iter()
                .find(|k| k.schedule.is_active_at(start))
                .cloned();
            let unchanged = previous
                .iter()
                .map(|k| &k.kid)
                .eq(published.iter().map(|k| &k.kid));
            let (jwks, etag) = match epochs.last() {
                Some(prev) if unchanged => (prev.jwks.clone(), prev.etag.clone()),
                _ => serialize(&published),
            };
            epochs.push(Epoch {
                start,
                end,
                active,
                jwks,
                etag,
                published: published.len(),
            });
            previous = published;
        }
        Self { keys, epochs }
    }

    /// The stretch that contains `now` (the first one if the clock went backwards).
    #[must_use]
    pub fn at(&self, now: UnixMillis) -> &Epoch {
        let after = self.epochs.partition_point(|e| e.start <= now);
        &self.epochs[after.saturating_sub(1)]
    }

    /// Every key in the snapshot, in activation order.
    #[must_use]
    pub fn keys(&self) -> &[Arc<KeyRecord>] {
        &self.keys
    }

    /// The most recently expired key at `now`, which signs `?expired=true` tokens.
    #[must_use]
    pub fn newest_expired(&self, now: UnixMillis) -> Option<&Arc<KeyRecord>> {
        self.keys
            .iter()
            .filter(|k| k.schedule.expires_at <= now)
            .max_by_key(|k| k.schedule.expires_at)
    }

    /// The earliest instant after `now` at which the published set or the active key
    /// changes, if any.
    #[must_use]
    pub fn next_transition(&self, now: UnixMillis) -> Option<UnixMillis> {
        let end = self.at(now).end;
        (end != i64::MAX).then_some(end)
    }
}

fn serialize(published: &[&Arc<KeyRecord>]) -> (Bytes, Bytes) {
    let doc = JwksDocument {
        keys: published.iter().map(|k| &k.jwk).collect(),
    };
    let body = serde_json::to_vec(&doc).expect("a JWKS of strings serializes");
    let hash = digest(&SHA256, &body);
    // 128 bits of the body's hash: a strong validator that every replica computes alike.
    let etag = format!("\"{}\"", URL_SAFE_NO_PAD.encode(&hash.as_ref()[..16]));
    (Bytes::from(body), Bytes::from(etag))
}

/// The shared, atomically swappable pointer to the current [`KeySet`].
#[derive(Debug, Clone)]
pub struct KeySetHandle(Arc<ArcSwap<KeySet>>);

impl KeySetHandle {
    /// A handle holding `set`.
    #[must_use]
    pub fn new(set: KeySet) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(set)))
    }

    /// The current snapshot. Lock-free; hold it only for the duration of a request.
    #[must_use]
    pub fn load(&self) -> arc_swap::Guard<Arc<KeySet>> {
        self.0.load()
    }

    /// The current snapshot as an owned `Arc`, for holders that outlive a request.
    #[must_use]
    pub fn load_full(&self) -> Arc<KeySet> {
        self.0.load_full()
    }

    /// Publishes a new snapshot; requests already holding the old one finish with it.
    pub fn publish(&self, set: KeySet) {
        self.0.store(Arc::new(set));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{Algorithm, Schedule, SigningKey};

    fn key(published: i64, activates: i64, retires: i64, expires: i64) -> Arc<KeyRecord> {
        let s = Schedule {
            created_at: published,
            published_at: published,
            activates_at: activates,
            retires_at: retires,
            expires_at: expires,
        };
        KeyRecord::new(SigningKey::generate(Algorithm::EdDsa).expect("generate"), s)
    }

    fn kids(set: &KeySet, now: i64) -> Vec<String> {
        let doc: serde_json::Value = serde_json::from_slice(&set.at(now).jwks).expect("json");
        doc["keys"]
            .as_array()
            .expect("keys")
            .iter()
            .map(|k| k["kid"].as_str().expect("kid").to_owned())
            .collect()
    }

    #[test]
    fn each_instant_sees_exactly_the_keys_its_schedule_publishes() {
        let old = key(-100, -100, -50, -10);
        let a = key(0, 0, 100, 150);
        let b = key(60, 100, 200, 250);
        let set = KeySet::build(vec![b.clone(), old.clone(), a.clone()], 0);
        assert_eq!(kids(&set, 0), [a.kid.to_string()]);
        assert_eq!(kids(&set, 60), [a.kid.to_string(), b.kid.to_string()]);
        assert_eq!(
            set.at(99).active.as_ref().map(|k| k.kid.clone()),
            Some(a.kid.clone())
        );
        assert_eq!(
            set.at(100).active.as_ref().map(|k| k.kid.clone()),
            Some(b.kid.clone())
        );
        assert_eq!(kids(&set, 149), [a.kid.to_string(), b.kid.to_string()]);
        assert_eq!(kids(&set, 150), [b.kid.to_string()]);
        assert!(set.at(200).active.is_none());
        assert_eq!(set.at(250).published, 0);
        assert_eq!(
            set.newest_expired(0).map(|k| k.kid.clone()),
            Some(old.kid.clone())
        );
        assert_eq!(
            set.newest_expired(150).map(|k| k.kid.clone()),
            Some(a.kid.clone())
        );
        assert_eq!(set.next_transition(0), Some(60));
        assert_eq!(set.next_transition(300), None);
    }

    #[test]
    fn unchanged_key_lists_share_one_body_and_etag() {
        let a = key(0, 0, 100, 150);
        let set = KeySet::build(vec![a], 0);
        // The retirement at 100 changes the active key but not the published list.
        assert_eq!(set.at(0).etag, set.at(100).etag);
        assert_ne!(set.at(0).etag, set.at(150).etag);
        assert_eq!(
            set.at(-5).start,
            0,
            "a clock that went back sees the first stretch"
        );
    }

    #[test]
    fn the_same_keys_give_byte_identical_bodies_whatever_their_order() {
        let a = key(0, 0, 100, 150);
        let b = key(10, 100, 200, 250);
        let one = KeySet::build(vec![a.clone(), b.clone()], 20);
        let two = KeySet::build(vec![b, a], 20);
        assert_eq!(one.at(20).jwks, two.at(20).jwks);
        assert_eq!(one.at(20).etag, two.at(20).etag);
        assert!(one.at(20).etag.starts_with(b"\"") && one.at(20).etag.ends_with(b"\""));
    }
}
