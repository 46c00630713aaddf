//! Who may do what: bearer tokens (RFC 6750) and users with Argon2 password
//! hashes, three roles (viewer, admin, metrics), per-camera viewer
//! permissions, and a lockout of addresses that keep failing to
//! authenticate. One policy for every listener: `http::auth` maps it onto
//! HTTP answers, the RTSP server onto RTSP ones.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::{AuthConfig, Role};
use crate::credentials::Secret;
use crate::password::{verify_password, DUMMY_HASH};

/// What a request carried to prove who sent it.
#[derive(Debug)]
pub enum Presented {
    /// A bearer token.
    Bearer(String),
    /// A user name and password (HTTP or RTSP Basic).
    Basic {
        /// The user name, or anything when the password is a token.
        user: String,
        /// The password, or a token.
        password: String,
    },
    /// Already proven by the protocol (an RTSP Digest answer checked
    /// against the token's secret).
    Verified(Principal),
    /// Presented but wrong (a Digest answer that did not match): counts as
    /// a failure.
    Rejected(&'static str),
}

/// Why a request is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Denied {
    /// No credentials, or wrong ones (401).
    Unauthorized(&'static str),
    /// Authenticated, but not allowed this (403); the sentence says who and
    /// what.
    Forbidden(String),
    /// The address failed too often; locked out this long (429 in HTTP).
    LockedOut(Duration),
    /// Too many password checks under way (503).
    Busy,
}

/// What a request wants to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Need<'a> {
    /// List cameras, read their status, open the dashboard: viewer or admin.
    List,
    /// Watch this camera (WHEP, SDP file, its page): a viewer allowed that
    /// camera, or admin.
    Watch(&'a str),
    /// Change things (add, remove, restart cameras, end sessions): admin.
    Admin,
    /// Read `/metrics`: role metrics or admin, or anyone with
    /// `[auth] public_metrics`.
    Metrics,
}

/// Who made a request, once authenticated.
#[derive(Clone, Debug)]
pub struct Principal {
    /// The token's or user's name, for logs (`anonymous` when the listener
    /// has no credentials configured).
    pub name: Arc<str>,
    /// What it may do.
    pub role: Role,
    /// The cameras a viewer may watch; `None`: all.
    cameras: Option<Arc<[String]>>,
}

impl Principal {
    /// Everyone, when no credentials are configured: the listener is open
    /// (on loopback, or with `allow_unauthenticated`).
    fn open() -> Principal {
        Principal {
            name: Arc::from("anonymous"),
            role: Role::Admin,
            cameras: None,
        }
    }

    /// Anyone reading `/metrics` with `public_metrics`.
    fn public_metrics() -> Principal {
        Principal {
            name: Arc::from("anonymous"),
            role: Role::Metrics,
            cameras: None,
        }
    }

    /// Whether it may watch camera `id` (and see it in lists).
    pub fn may_watch(&self, id: &str) -> bool {
        match self.role {
            Role::Admin => true,
            Role::Viewer => self
                .cameras
                .as_ref()
                .is_none_or(|c| c.iter().any(|c| c == id)),
            Role::Metrics => false,
        }
    }

    /// Whether it may do `need`.
    pub fn allows(&self, need: Need<'_>) -> bool {
        match need {
            Need::List => matches!(self.role, Role::Viewer | Role::Admin),
            Need::Watch(id) => self.may_watch(id),
            Need::Admin => self.role == Role::Admin,
            Need::Metrics => matches!(self.role, Role::Metrics | Role::Admin),
        }
    }
}

/// The access policy and the state that enforces it.
pub struct Auth {
    /// The credentials, replaced whole on reload.
    policy: RwLock<Arc<Policy>>,
    /// Recent failures per address.
    failures: Mutex<Failures>,
    /// Basic credentials that passed the Argon2 check recently, so that a
    /// browser (which sends them with every request) pays for it once.
    verified: Mutex<HashMap<[u8; 32], Instant>>,
    /// Random key of the `verified` digests: the table never holds
    /// anything from which a password could be recovered offline.
    cache_key: [u8; 32],
    /// Argon2 checks running at once; each takes tens of ms of CPU and
    /// about 19 MiB of memory.
    hashing: Arc<Semaphore>,
}

/// The credentials in force.
struct Policy {
    /// Whether requests must authenticate at all.
    enabled: bool,
    /// `/metrics` without credentials.
    public_metrics: bool,
    /// Failures within [`FAILURE_WINDOW`] before a lockout.
    max_failures: u32,
    /// How long a lockout lasts.
    lockout: Duration,
    /// The tokens: each one's digest, name, secret and owner.
    tokens: Vec<Token>,
    /// By user name: the PHC string and who it is.
    users: HashMap<String, (String, Principal)>,
}

/// One `[[auth.token]]` as the policy holds it.
struct Token {
    /// SHA-256 of the token, compared in constant time with a bearer's.
    digest: [u8; 32],
    /// Its name: the user name of RTSP Digest.
    name: String,
    /// The token itself, the password of RTSP Digest.
    secret: Secret,
    /// Who it is.
    principal: Principal,
}

impl Policy {
    fn new(config: &AuthConfig) -> Policy {
        let principal = |name: &str, role: Role, cameras: &Option<Vec<String>>| Principal {
            name: Arc::from(name),
            role,
            cameras: cameras.as_ref().map(|c| Arc::from(c.as_slice())),
        };
        Policy {
            enabled: config.enabled(),
            public_metrics: config.public_metrics,
            max_failures: config.max_failures,
            lockout: config.lockout,
            tokens: config
                .tokens
                .iter()
                .map(|t| Token {
                    digest: Sha256::digest(t.token.expose().as_bytes()).into(),
                    name: t.name.clone(),
                    secret: t.token.clone(),
                    principal: principal(&t.name, t.role, &t.cameras),
                })
                .collect(),
            users: config
                .users
                .iter()
                .map(|u| {
                    let p = principal(&u.name, u.role, &u.cameras);
                    (u.name.clone(), (u.password_hash.clone(), p))
                })
                .collect(),
        }
    }

    /// The token's owner. Every configured token is compared, each in
    /// constant time, so the time taken does not tell how close a guess is.
    fn token(&self, token: &str) -> Option<Principal> {
        let digest: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for t in &self.tokens {
            if constant_time_eq(&t.digest, &digest) {
                found = Some(t.principal.clone());
            }
        }
        found
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Failures are counted over this window.
const FAILURE_WINDOW: Duration = Duration::from_secs(60);
/// Addresses tracked at most; beyond, the stalest entry is forgotten.
const MAX_TRACKED: usize = 4096;
/// Verified Basic credentials kept at most.
const MAX_VERIFIED: usize = 1024;
/// How long a verified Basic credential is trusted without a new check.
const VERIFIED_TTL: Duration = Duration::from_secs(300);
/// Argon2 checks running at once.
const MAX_HASHING: usize = 2;

/// Failed authentications per address (IPv6: per /64, what one host
/// usually gets).
#[derive(Default)]
struct Failures {
    entries: HashMap<IpAddr, FailureEntry>,
}

#[derive(Clone, Copy)]
struct FailureEntry {
    /// Start of the current counting window.
    window_start: Instant,
    /// Failures in the window.
    count: u32,
    /// Locked out until then.
    locked_until: Option<Instant>,
}

/// The address failures and connections are counted under: IPv4 as is,
/// IPv6 by /64 (what one host usually gets).
pub fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(prefix.into())
            }
        },
    }
}

impl Failures {
    /// How long `ip` stays locked out, if it is.
    fn locked(&self, ip: IpAddr, now: Instant) -> Option<Duration> {
        let until = self.entries.get(&address_key(ip))?.locked_until?;
        (until > now).then(|| until - now)
    }

    /// Counts a failure; returns the lockout it caused, if any.
    fn fail(&mut self, ip: IpAddr, now: Instant, policy: &Policy) -> Option<Duration> {
        let key = address_key(ip);
        if !self.entries.contains_key(&key) && self.entries.len() >= MAX_TRACKED {
            self.make_room(now);
        }
        let entry = self.entries.entry(key).or_insert(FailureEntry {
            window_start: now,
            count: 0,
            locked_until: None,
        });
        if now.duration_since(entry.window_start) > FAILURE_WINDOW {
            entry.window_start = now;
            entry.count = 0;
        }
        entry.count = entry.count.saturating_add(1);
        if entry.count >= policy.max_failures && entry.locked_until.is_none_or(|t| t <= now) {
            entry.locked_until = Some(now + policy.lockout);
            entry.window_start = now;
            entry.count = 0;
            return Some(policy.lockout);
        }
        None
    }

    /// Forgets entries that no longer matter; when every entry still does,
    /// the one with the oldest window.
    fn make_room(&mut self, now: Instant) {
        self.entries.retain(|_, e| {
            e.locked_until.is_some_and(|t| t > now)
                || now.duration_since(e.window_start) <= FAILURE_WINDOW
        });
        if self.entries.len() >= MAX_TRACKED {
            let oldest = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.locked_until.unwrap_or(e.window_start))
                .map(|(k, _)| *k);
            if let Some(k) = oldest {
                self.entries.remove(&k);
            }
        }
    }
}

impl Auth {
    /// The policy of `config`, with no failure recorded.
    pub fn new(config: &AuthConfig) -> Auth {
        Auth {
            policy: RwLock::new(Arc::new(Policy::new(config))),
            failures: Mutex::new(Failures::default()),
            verified: Mutex::new(HashMap::new()),
            cache_key: rand::random(),
            hashing: Arc::new(Semaphore::new(MAX_HASHING)),
        }
    }

    /// Replaces the credentials (configuration reload). Lockouts stay;
    /// verified passwords are forgotten.
    pub fn set_config(&self, config: &AuthConfig) {
        let policy = Arc::new(Policy::new(config));
        *self.policy.write().unwrap_or_else(|e| e.into_inner()) = policy;
        self.verified
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// Whether requests must authenticate.
    pub fn enabled(&self) -> bool {
        self.policy().enabled
    }

    fn policy(&self) -> Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Checks `presented` (what the request carried: `None` when nothing,
    /// `Err` when something unusable) from `peer` against `need`: the
    /// principal, or why not. Failures count towards the address's lockout.
    pub async fn authorize(
        &self,
        presented: Option<Result<Presented, &'static str>>,
        peer: IpAddr,
        need: Need<'_>,
    ) -> Result<Principal, Denied> {
        let policy = self.policy();
        if !policy.enabled {
            return Ok(Principal::open());
        }
        if need == Need::Metrics && policy.public_metrics {
            return Ok(Principal::public_metrics());
        }
        let now = Instant::now();
        if let Some(wait) = self.failures().locked(peer, now) {
            return Err(Denied::LockedOut(wait));
        }
        let principal = match presented {
            None => return Err(Denied::Unauthorized("credentials required")),
            Some(Err(why)) => Err(why),
            Some(Ok(Presented::Bearer(token))) => policy.token(&token).ok_or("invalid token"),
            Some(Ok(Presented::Basic { user, password })) => self
                .basic(&policy, &user, &password)
                .await?
                .ok_or("invalid user name or password"),
            Some(Ok(Presented::Verified(principal))) => Ok(principal),
            Some(Ok(Presented::Rejected(why))) => Err(why),
        };
        let principal = match principal {
            Ok(p) => p,
            Err(why) => {
                let lockout = self.failures().fail(peer, now, &policy);
                if let Some(lockout) = lockout {
                    tracing::warn!(
                        peer = %peer,
                        max_failures = policy.max_failures,
                        lockout_s = lockout.as_secs(),
                        "too many failed authentications; address locked out"
                    );
                } else {
                    tracing::debug!(peer = %peer, why, "authentication failed");
                }
                return Err(Denied::Unauthorized(why));
            }
        };
        if principal.allows(need) {
            Ok(principal)
        } else {
            Err(Denied::Forbidden(forbidden(&principal, need)))
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Basic credentials: a configured user and its password, else (for
    /// clients that can only send a user name and password, such as
    /// ffmpeg's `http://user:password@host/` URLs) a token as the password.
    /// `Err` when too many password checks are under way.
    async fn basic(
        &self,
        policy: &Policy,
        user: &str,
        password: &str,
    ) -> Result<Option<Principal>, Denied> {
        let Some((hash, principal)) = policy.users.get(user) else {
            if let Some(p) = policy.token(password) {
                return Ok(Some(p));
            }
            // As slow as a wrong password, so that user names cannot be
            // told apart by timing.
            self.verify(DUMMY_HASH, password).await?;
            return Ok(None);
        };
        let digest = self.verified_key(user, password, hash);
        let now = Instant::now();
        {
            let verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
            if verified.get(&digest).is_some_and(|t| *t > now) {
                return Ok(Some(principal.clone()));
            }
        }
        if !self.verify(hash, password).await? {
            return Ok(None);
        }
        let mut verified = self.verified.lock().unwrap_or_else(|e| e.into_inner());
        if verified.len() >= MAX_VERIFIED {
            verified.retain(|_, t| *t > now);
            if verified.len() >= MAX_VERIFIED {
                verified.clear();
            }
        }
        verified.insert(digest, now + VERIFIED_TTL);
        Ok(Some(principal.clone()))
    }

    fn verified_key(&self, user: &str, password: &str, hash: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        for part in [user, password, hash] {
            h.update((part.len() as u64).to_be_bytes());
            h.update(part.as_bytes());
        }
        h.finalize().into()
    }

    /// Checks `password` against the PHC string `hash` on the blocking
    /// pool, at most [`MAX_HASHING`] at once ([`Denied::Busy`] beyond).
    async fn verify(&self, hash: &str, password: &str) -> Result<bool, Denied> {
        let Ok(permit) = self.hashing.clone().try_acquire_owned() else {
            return Err(Denied::Busy);
        };
        let (hash, password) = (hash.to_owned(), password.to_owned());
        let checked = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            verify_password(&hash, &password)
        })
        .await;
        Ok(checked.unwrap_or(false))
    }
}

impl Auth {
    /// The secret and owner of the token named `name`, for protocols that
    /// prove knowledge of a shared secret without sending it (RTSP Digest:
    /// the user name is the token's name, the password its secret). Users
    /// with Argon2 hashes cannot answer Digest: their password is not kept.
    pub fn token_by_name(&self, name: &str) -> Option<(Secret, Principal)> {
        let policy = self.policy();
        policy
            .tokens
            .iter()
            .find(|t| t.name == name)
            .map(|t| (t.secret.clone(), t.principal.clone()))
    }

    /// Counts a failure that was decided outside [`Auth::authorize`] (a
    /// Digest answer that did not match); the lockout it caused, if any.
    pub fn record_failure(&self, peer: IpAddr) -> Option<Duration> {
        let policy = self.policy();
        self.failures().fail(peer, Instant::now(), &policy)
    }

    /// How long `peer` stays locked out, if it is.
    pub fn locked(&self, peer: IpAddr) -> Option<Duration> {
        self.failures().locked(peer, Instant::now())
    }
}

/// Why `principal` may not do `need`, as a sentence.
fn forbidden(principal: &Principal, need: Need<'_>) -> String {
    let who = format!("{:?} (role {})", principal.name, principal.role);
    match need {
        Need::List => format!("{who} may not list cameras"),
        Need::Watch(id) => format!("{who} may not watch camera {id:?}"),
        Need::Admin => format!("{who} may not change anything (needs role admin)"),
        Need::Metrics => format!("{who} may not read metrics (needs role metrics or admin)"),
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{TokenConfig, UserConfig};
    use crate::password::cheap_hash;

    /// Two tokens (a viewer of camera `front`, an admin) and a viewer user
    /// `alice` with a cheap hash; 3 failures lock an address out.
    pub(crate) fn config() -> AuthConfig {
        AuthConfig {
            tokens: vec![
                TokenConfig {
                    name: "front-only".into(),
                    token: crate::credentials::Secret::new("viewer-token-0123456789"),
                    role: Role::Viewer,
                    cameras: Some(vec!["front".into()]),
                },
                TokenConfig {
                    name: "ops".into(),
                    token: crate::credentials::Secret::new("admin-token-0123456789"),
                    role: Role::Admin,
                    cameras: None,
                },
            ],
            users: vec![UserConfig {
                name: "alice".into(),
                password_hash: cheap_hash("wonderland"),
                role: Role::Viewer,
                cameras: None,
            }],
            public_metrics: false,
            max_failures: 3,
            lockout: Duration::from_secs(60),
        }
    }

    #[test]
    fn failure_table_is_bounded() {
        let mut f = Failures::default();
        let policy = Policy::new(&config());
        let now = Instant::now();
        for i in 0..(MAX_TRACKED as u32 + 100) {
            let ip = IpAddr::V4(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            f.fail(ip, now, &policy);
        }
        assert!(f.entries.len() <= MAX_TRACKED);
        // One /64 is one entry.
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        assert_eq!(address_key(a), address_key(b));
    }

    #[test]
    fn open_when_unconfigured() {
        let auth = Auth::new(&AuthConfig::default());
        assert!(!auth.enabled());
    }
}
