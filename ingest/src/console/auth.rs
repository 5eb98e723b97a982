//! Who is calling: users and roles from configuration (argon2 password hashes), sessions in a
//! cookie with a CSRF token, and API tokens (their SHA-256 in configuration).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use axum::http::{header, HeaderMap, Method};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::api::ApiError;

pub const SESSION_COOKIE: &str = "ingest_session";
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Each role includes the ones before it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Reads everything but the audit log.
    Viewer,
    /// Also acknowledges, silences and posts inspection records.
    Operator,
    /// Also reads the audit log.
    Admin,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserConfig {
    pub name: String,
    pub role: Role,
    /// An argon2 PHC string (`$argon2id$v=19$…`), as `ingest hash-password` prints it.
    pub password_hash: String,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenConfig {
    pub name: String,
    pub role: Role,
    /// The token's SHA-256 in hex (`printf %s "$TOKEN" | sha256sum`); the token itself is not
    /// kept in the file.
    pub sha256: String,
}

/// How a request proved who it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Session { csrf: String },
    Token,
}

/// The authenticated caller of a request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub name: String,
    pub role: Role,
    pub via: Via,
    pub remote: String,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

impl Caller {
    pub fn require(&self, role: Role) -> Result<(), ApiError> {
        if self.role >= role {
            Ok(())
        } else {
            Err(ApiError::forbidden(format!(
                "{} is a {}; this needs the {} role",
                self.name,
                self.role.as_str(),
                role.as_str()
            )))
        }
    }
}

/// Failed logins a user name may have within [`LOCKOUT`] before it is locked.
pub const MAX_FAILURES: usize = 5;
pub const LOCKOUT: Duration = Duration::from_secs(15 * 60);
/// User names whose failures are remembered at most (names tried need not exist).
const THROTTLE_NAMES: usize = 10_000;

/// Failed logins by user name: after [`MAX_FAILURES`] within [`LOCKOUT`], the name is locked
/// until the oldest of them is that old. Guessing a password then takes years; a typo costs
/// nothing.
#[derive(Default)]
pub struct Throttle {
    failures: HashMap<String, VecDeque<Instant>>,
}

impl Throttle {
    /// How long `name` stays locked at `now`, if it is.
    pub fn locked_for(&mut self, name: &str, now: Instant) -> Option<Duration> {
        let f = self.failures.get_mut(name)?;
        while f.front().is_some_and(|&t| now.duration_since(t) >= LOCKOUT) {
            f.pop_front();
        }
        let oldest = *f.front()?;
        (f.len() >= MAX_FAILURES).then(|| LOCKOUT - now.duration_since(oldest))
    }

    pub fn failed(&mut self, name: &str, now: Instant) {
        if self.failures.len() >= THROTTLE_NAMES && !self.failures.contains_key(name) {
            self.failures.retain(|_, f| f.back().is_some_and(|&t| now.duration_since(t) < LOCKOUT));
            if self.failures.len() >= THROTTLE_NAMES {
                return;
            }
        }
        let f = self.failures.entry(name.to_string()).or_default();
        f.push_back(now);
        if f.len() > MAX_FAILURES {
            f.pop_front();
        }
    }

    pub fn succeeded(&mut self, name: &str) {
        self.failures.remove(name);
    }
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    WrongPassword,
    Locked(Duration),
}

struct Session {
    name: String,
    role: Role,
    csrf: String,
    expires: std::time::Instant,
}

pub struct Auth {
    users: HashMap<String, UserConfig>,
    /// SHA-256 hex to token.
    tokens: HashMap<String, TokenConfig>,
    session_ttl: Duration,
    sessions: Mutex<HashMap<String, Session>>,
    throttle: Mutex<Throttle>,
    /// Verified against when the user is unknown, so both take as long.
    dummy_hash: String,
}

/// 32 random bytes as hex.
pub fn random_token() -> String {
    let mut bytes = [0u8; 32];
    getrandom::getrandom(&mut bytes).expect("the OS random source");
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn sha256_hex(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes()))
}

/// An argon2id PHC hash of `password` with a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    let mut salt = [0u8; 16];
    getrandom::getrandom(&mut salt).map_err(|e| e.to_string())?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

fn verify(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// Compares without stopping at the first difference.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

impl Auth {
    /// Checks the configured users and tokens; every problem names the entry.
    pub fn new(users: &[UserConfig], tokens: &[TokenConfig], session_ttl: Duration) -> Result<Auth, String> {
        let mut by_name = HashMap::new();
        for (i, u) in users.iter().enumerate() {
            if u.name.is_empty() {
                return Err(format!("console.user[{i}].name: empty"));
            }
            if PasswordHash::new(&u.password_hash).is_err() {
                return Err(format!(
                    "console.user[{i}] ({}).password_hash: not an argon2 PHC string; make one with `ingest hash-password`",
                    u.name
                ));
            }
            if by_name.insert(u.name.clone(), u.clone()).is_some() {
                return Err(format!("console.user[{i}].name: `{}` is given twice", u.name));
            }
        }
        let mut by_hash = HashMap::new();
        for (i, t) in tokens.iter().enumerate() {
            let digest = t.sha256.to_ascii_lowercase();
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(format!("console.token[{i}] ({}).sha256: not 64 hex digits", t.name));
            }
            by_hash.insert(digest, t.clone());
        }
        Ok(Auth {
            users: by_name,
            tokens: by_hash,
            session_ttl,
            sessions: Mutex::new(HashMap::new()),
            throttle: Mutex::new(Throttle::default()),
            dummy_hash: hash_password("not a password")?,
        })
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.tokens.is_empty()
    }

    /// Checks a password (slow by design: run off the async threads); a new session's id and
    /// CSRF token on success.
    pub fn login(
        &self,
        name: &str,
        password: &str,
        now: Instant,
    ) -> Result<(String, String, Role), LoginError> {
        let throttle = |f: &mut dyn FnMut(&mut Throttle)| {
            if let Ok(mut t) = self.throttle.lock() {
                f(&mut t)
            }
        };
        let mut locked = None;
        throttle(&mut |t| locked = t.locked_for(name, now));
        if let Some(left) = locked {
            return Err(LoginError::Locked(left));
        }
        let user = self.users.get(name);
        let ok = verify(password, user.map_or(&self.dummy_hash, |u| &u.password_hash));
        let Some(user) = user.filter(|_| ok) else {
            throttle(&mut |t| t.failed(name, now));
            return Err(LoginError::WrongPassword);
        };
        throttle(&mut |t| t.succeeded(name));
        let (id, csrf) = (random_token(), random_token());
        let mut sessions = self.sessions.lock().map_err(|_| LoginError::WrongPassword)?;
        sessions.retain(|_, s| s.expires > now);
        sessions.insert(
            id.clone(),
            Session {
                name: user.name.clone(),
                role: user.role,
                csrf: csrf.clone(),
                expires: now + self.session_ttl,
            },
        );
        Ok((id, csrf, user.role))
    }

    pub fn logout(&self, headers: &HeaderMap) {
        if let (Some(id), Ok(mut sessions)) = (cookie(headers, SESSION_COOKIE), self.sessions.lock()) {
            sessions.remove(id);
        }
    }

    pub fn session_cookie(&self, id: &str) -> String {
        format!(
            "{SESSION_COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/; Max-Age={}",
            self.session_ttl.as_secs()
        )
    }

    /// Who sent the request: a bearer token, or a session cookie (with the CSRF header on
    /// anything but GET and HEAD).
    pub fn caller(&self, method: &Method, headers: &HeaderMap, remote: String) -> Result<Caller, ApiError> {
        if let Some(auth) = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
            let token =
                auth.strip_prefix("Bearer ").ok_or_else(|| ApiError::unauthorized("use a Bearer token"))?;
            let t = self
                .tokens
                .get(&sha256_hex(token.trim()))
                .ok_or_else(|| ApiError::unauthorized("unknown token"))?;
            return Ok(Caller { name: t.name.clone(), role: t.role, via: Via::Token, remote });
        }
        let id = cookie(headers, SESSION_COOKIE).ok_or_else(|| ApiError::unauthorized("log in first"))?;
        let sessions = self.sessions.lock().map_err(|_| ApiError::unauthorized("log in again"))?;
        let s = sessions
            .get(id)
            .filter(|s| s.expires > std::time::Instant::now())
            .ok_or_else(|| ApiError::unauthorized("the session has ended; log in again"))?;
        if method != Method::GET && method != Method::HEAD {
            let sent = headers.get(CSRF_HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
            if !same(sent, &s.csrf) {
                return Err(ApiError::forbidden("missing or wrong X-CSRF-Token header".to_string()));
            }
        }
        Ok(Caller { name: s.name.clone(), role: s.role, via: Via::Session { csrf: s.csrf.clone() }, remote })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn auth() -> Auth {
        let users = vec![
            UserConfig {
                name: "li".into(),
                role: Role::Operator,
                password_hash: hash_password("pw-li").unwrap(),
            },
            UserConfig {
                name: "wang".into(),
                role: Role::Viewer,
                password_hash: hash_password("pw-wang").unwrap(),
            },
        ];
        let tokens = vec![TokenConfig { name: "prom".into(), role: Role::Viewer, sha256: sha256_hex("tok") }];
        Auth::new(&users, &tokens, Duration::from_secs(60)).unwrap()
    }

    fn with_cookie(id: &str, csrf: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("other=1; {SESSION_COOKIE}={id}").parse().unwrap());
        if let Some(c) = csrf {
            h.insert(CSRF_HEADER, c.parse().unwrap());
        }
        h
    }

    #[test]
    fn passwords_sessions_and_csrf() {
        let a = auth();
        let now = Instant::now();
        assert_eq!(a.login("li", "wrong", now), Err(LoginError::WrongPassword));
        assert_eq!(a.login("nobody", "pw-li", now), Err(LoginError::WrongPassword));
        let (id, csrf, role) = a.login("li", "pw-li", now).unwrap();
        assert_eq!(role, Role::Operator);
        let get = a.caller(&Method::GET, &with_cookie(&id, None), "t".into()).unwrap();
        assert_eq!((get.name.as_str(), get.role), ("li", Role::Operator));
        let e = a.caller(&Method::POST, &with_cookie(&id, None), "t".into()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN, "no CSRF header");
        let e = a.caller(&Method::POST, &with_cookie(&id, Some("forged")), "t".into()).unwrap_err();
        assert_eq!(e.status, axum::http::StatusCode::FORBIDDEN, "a wrong CSRF header");
        assert!(a.caller(&Method::POST, &with_cookie(&id, Some(&csrf)), "t".into()).is_ok());
        a.logout(&with_cookie(&id, None));
        assert!(a.caller(&Method::GET, &with_cookie(&id, None), "t".into()).is_err(), "logged out");
    }

    #[test]
    fn repeated_failures_lock_a_name_for_a_while() {
        let mut t = Throttle::default();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES as u64 {
            assert_eq!(t.locked_for("li", t0 + Duration::from_secs(i)), None);
            t.failed("li", t0 + Duration::from_secs(i));
        }
        let at = t0 + Duration::from_secs(60);
        assert_eq!(t.locked_for("li", at), Some(LOCKOUT - Duration::from_secs(60)));
        assert_eq!(t.locked_for("wang", at), None, "other names are not locked");
        assert_eq!(t.locked_for("li", t0 + LOCKOUT), None, "the oldest failure expired");
        t.failed("li", t0 + LOCKOUT);
        assert!(t.locked_for("li", t0 + LOCKOUT).is_some(), "five within the window again");
        t.succeeded("li");
        assert_eq!(t.locked_for("li", t0 + LOCKOUT), None);

        let a = auth();
        let now = Instant::now();
        for _ in 0..MAX_FAILURES {
            assert_eq!(a.login("li", "guess", now), Err(LoginError::WrongPassword));
        }
        assert!(matches!(a.login("li", "pw-li", now), Err(LoginError::Locked(_))), "even the right one");
        assert!(a.login("li", "pw-li", now + LOCKOUT).is_ok());
    }

    #[test]
    fn tokens_and_roles() {
        let a = auth();
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        let c = a.caller(&Method::POST, &h, "t".into()).unwrap();
        assert_eq!(c.via, Via::Token, "a token needs no CSRF header");
        assert!(c.require(Role::Viewer).is_ok());
        assert_eq!(c.require(Role::Operator).unwrap_err().status, axum::http::StatusCode::FORBIDDEN);
        h.insert(header::AUTHORIZATION, "Bearer nope".parse().unwrap());
        assert_eq!(
            a.caller(&Method::GET, &h, "t".into()).unwrap_err().status,
            axum::http::StatusCode::UNAUTHORIZED
        );
    }

    #[test]
    fn bad_configuration_is_named() {
        let bad = UserConfig { name: "x".into(), role: Role::Admin, password_hash: "plain".into() };
        let e = Auth::new(&[bad], &[], Duration::from_secs(1)).err().unwrap();
        assert!(e.contains("console.user[0] (x).password_hash"), "{e}");
        let t = TokenConfig { name: "t".into(), role: Role::Admin, sha256: "abc".into() };
        let e = Auth::new(&[], &[t], Duration::from_secs(1)).err().unwrap();
        assert!(e.contains("console.token[0] (t).sha256"), "{e}");
    }
}
