//! Registration, sign-in with argon2-hashed passwords, bearer sessions, and operator bootstrap.

use crate::{App, AppError, AppResult};
use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::sync::Arc;
use xingqu_domain::account::{Actor, Email, Password, Role};
use xingqu_domain::catalog::NAME_CHARS_MAX;
use xingqu_domain::text;
use xingqu_store::StoreError;
use xingqu_store::accounts::{NewUser, UserRow};

/// Bearer tokens start with this, so leaked ones are easy to spot in logs and code.
const TOKEN_PREFIX: &str = "xq_";

/// A registration as it arrives from a client.
#[derive(Debug, Clone)]
pub struct Registration<'a> {
    pub email: &'a str,
    pub password: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
}

/// A user as others may see them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: i64,
    pub email: String,
    pub display_name: String,
    pub role: Role,
    pub merchant_id: Option<i64>,
    pub created_at_ms: i64,
}

impl TryFrom<UserRow> for User {
    type Error = AppError;
    fn try_from(row: UserRow) -> AppResult<Self> {
        let role = Role::from_name(&row.role)
            .ok_or_else(|| AppError::internal(format!("user {} has unknown role {}", row.id, row.role)))?;
        Ok(User {
            id: row.id,
            email: row.email,
            display_name: row.display_name,
            role,
            merchant_id: row.merchant_id,
            created_at_ms: row.created_at_ms,
        })
    }
}

impl User {
    pub fn actor(&self) -> Actor {
        Actor { user_id: self.id, role: self.role, merchant_id: self.merchant_id }
    }
}

/// How long a looked-up session is trusted without asking the database again. Revocation and role
/// changes made through this process apply at once; made through another node, within this time.
const SESSION_CACHE_TTL_MS: i64 = 10_000;
const SESSION_CACHE_ENTRIES_MAX: usize = 200_000;

/// Cached sessions by token digest: the user, when the session expires, when it was cached. The
/// digest's bytes, not its hex, are the key: looked up on every authenticated request, a key held
/// in the table needs no hex string made and no pointer followed to compare it.
/// A cached session: its user, and the user's actor kept beside it so that a request that only
/// needs the actor (a flash purchase) reads it from the map's own slot rather than from the
/// user's allocation elsewhere in memory (a cache miss per request, measured in a flash sale).
#[derive(Debug)]
struct CachedSession {
    user: Arc<User>,
    actor: Actor,
    expires_at_ms: i64,
    cached_at_ms: i64,
}

impl CachedSession {
    fn fresh(&self, now_ms: i64) -> bool {
        now_ms < self.expires_at_ms && now_ms - self.cached_at_ms < SESSION_CACHE_TTL_MS
    }
}

type Sessions = foldhash::HashMap<[u8; 32], CachedSession>;

/// Shards of the session cache: every request of a flash sale looks its session up, from every
/// request thread at once, and one lock for all of them was a contended cache line.
const SESSION_SHARDS: usize = 16;

/// Recently seen live sessions by token hash, so hot paths (a flash sale) do not read the
/// database for every request. Sharded by the digest's first byte (uniform: it is a hash).
#[derive(Debug, Default)]
pub struct SessionCache {
    shards: [std::sync::Mutex<Sessions>; SESSION_SHARDS],
}

impl SessionCache {
    fn lock(&self, digest: &[u8; 32]) -> std::sync::MutexGuard<'_, Sessions> {
        lock_shard(&self.shards[usize::from(digest[0]) % SESSION_SHARDS])
    }

    fn get(&self, digest: &[u8; 32], now_ms: i64) -> Option<Arc<User>> {
        let entries = self.lock(digest);
        entries.get(digest).filter(|session| session.fresh(now_ms)).map(|session| session.user.clone())
    }

    fn get_actor(&self, digest: &[u8; 32], now_ms: i64) -> Option<Actor> {
        let entries = self.lock(digest);
        entries.get(digest).filter(|session| session.fresh(now_ms)).map(|session| session.actor)
    }

    fn put(&self, digest: [u8; 32], user: Arc<User>, expires_at_ms: i64, now_ms: i64) {
        let mut entries = self.lock(&digest);
        if entries.len() >= SESSION_CACHE_ENTRIES_MAX / SESSION_SHARDS {
            entries.retain(|_, session| now_ms - session.cached_at_ms < SESSION_CACHE_TTL_MS);
            if entries.len() >= SESSION_CACHE_ENTRIES_MAX / SESSION_SHARDS {
                entries.clear();
            }
        }
        let actor = user.actor();
        entries.insert(digest, CachedSession { user, actor, expires_at_ms, cached_at_ms: now_ms });
    }

    fn forget(&self, digest: &[u8; 32]) {
        self.lock(digest).remove(digest);
    }

    /// Drops every cached session of a user (after their role changes).
    pub(crate) fn forget_user(&self, user_id: i64) {
        for shard in &self.shards {
            lock_shard(shard).retain(|_, session| session.user.id != user_id);
        }
    }
}

fn lock_shard(shard: &std::sync::Mutex<Sessions>) -> std::sync::MutexGuard<'_, Sessions> {
    shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A fresh session: the token is shown once, only its hash is stored.
#[derive(Debug, Clone)]
pub struct Session {
    pub token: String,
    pub expires_at_ms: i64,
    pub user: User,
}

/// The SHA-256 (hex) under which a bearer token is stored.
pub fn token_sha256(token: &str) -> String {
    hex_of(&token_digest(token))
}

/// The digest a bearer token's session is kept under; a token that is not one of ours is refused
/// before it is hashed.
fn session_digest(token: &str) -> AppResult<[u8; 32]> {
    if !token.starts_with(TOKEN_PREFIX) || token.len() > 128 {
        return Err(AppError::InvalidToken);
    }
    Ok(token_digest(token))
}

fn token_digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

pub(crate) fn hex_of(digest: &[u8; 32]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut hex = String::with_capacity(64);
    for byte in digest {
        hex.push(char::from(HEX[usize::from(byte >> 4)]));
        hex.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    hex
}

/// The digest a stored hex hash stands for (none if it is not 64 hex digits).
pub(crate) fn digest_of_hex(hex: &str) -> Option<[u8; 32]> {
    let nibble = |c: u8| char::from(c).to_digit(16).and_then(|d| u8::try_from(d).ok());
    let bytes = hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut digest = [0u8; 32];
    for (i, byte) in digest.iter_mut().enumerate() {
        *byte = nibble(bytes[2 * i])? << 4 | nibble(bytes[2 * i + 1])?;
    }
    Some(digest)
}

pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    format!("{TOKEN_PREFIX}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Hashes a password with argon2id on a blocking thread (it takes tens of milliseconds of CPU).
pub async fn hash_password(password: Password) -> AppResult<String> {
    tokio::task::spawn_blocking(move || {
        let mut salt_bytes = [0u8; 16];
        rand::rng().fill_bytes(&mut salt_bytes);
        let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
        Argon2::default()
            .hash_password(password.expose().as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| internal(format!("password hashing task failed: {e}")))?
    .map_err(|e| internal(format!("password hashing failed: {e}")))
}

async fn verify_password(password: String, hash: String) -> AppResult<bool> {
    tokio::task::spawn_blocking(move || {
        PasswordHash::new(&hash).map(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
    })
    .await
    .map_err(|e| internal(format!("password verification task failed: {e}")))?
    .map_err(|e| internal(format!("stored password hash is unreadable: {e}")))
}

fn internal(message: String) -> AppError {
    AppError::internal(message)
}

/// A valid hash of a password nobody has, verified against when the e-mail is unknown so that
/// sign-in takes as long for unknown accounts as for known ones.
const DECOY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$3q2DKhsbmR5Y0mYD0n6yY2cVZb3CDmeZsRQqlM5Gzsc";

impl App {
    /// Registers a consumer or a creator and signs them in.
    pub async fn register(&self, registration: Registration<'_>) -> AppResult<Session> {
        let role = Role::from_name(registration.role)
            .filter(|r| r.self_service())
            .ok_or_else(|| AppError::invalid("role", "invalid_role", "must be consumer or creator"))?;
        let user = self.create_user(registration.email, registration.password, registration.display_name, role).await?;
        self.open_session(user).await
    }

    /// Creates an operator (the `xingqu admin create-operator` bootstrap, or another operator).
    pub async fn create_operator(&self, email: &str, password: &str, display_name: &str) -> AppResult<User> {
        self.create_user(email, password, display_name, Role::Operator).await
    }

    /// Creates an operator on behalf of an existing operator.
    pub async fn create_operator_as(
        &self,
        actor: &Actor,
        email: &str,
        password: &str,
        display_name: &str,
    ) -> AppResult<User> {
        if !actor.is_operator() {
            return Err(AppError::Forbidden("only operators may create operators"));
        }
        self.create_operator(email, password, display_name).await
    }

    async fn create_user(&self, email: &str, password: &str, display_name: &str, role: Role) -> AppResult<User> {
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        let display_name = text::bounded("display_name", display_name, NAME_CHARS_MAX)?;
        let password_hash = hash_password(password).await?;
        let new = NewUser {
            email: email.as_str(),
            password_hash: &password_hash,
            display_name: &display_name,
            role: role.as_str(),
            merchant_id: None,
            now_ms: self.now_ms(),
        };
        match self.store().insert_user(&new).await {
            Ok(row) => row.try_into(),
            Err(StoreError::Conflict { .. }) => {
                Err(AppError::conflict("email_taken", "an account with this e-mail already exists"))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Signs in with e-mail and password.
    pub async fn login(&self, email: &str, password: &str) -> AppResult<Session> {
        let row = match Email::parse(email) {
            Ok(email) => self.store().user_by_email(email.as_str()).await?,
            Err(_) => None,
        };
        let hash = row.as_ref().map_or(DECOY_HASH, |r| r.password_hash.as_str()).to_owned();
        let verified = verify_password(password.to_owned(), hash).await?;
        match row {
            Some(row) if verified => self.open_session(row.try_into()?).await,
            _ => Err(AppError::InvalidCredentials),
        }
    }

    async fn open_session(&self, user: User) -> AppResult<Session> {
        let token = new_token();
        let now_ms = self.now_ms();
        let expires_at_ms = now_ms.saturating_add(self.config().session_ttl_s.saturating_mul(1000));
        self.store().insert_session(user.id, &token_sha256(&token), now_ms, expires_at_ms).await?;
        Ok(Session { token, expires_at_ms, user })
    }

    /// The user behind a bearer token, if the session is live. Shared with the session cache:
    /// every authenticated request asks, and a copy of the user's strings each time showed up in
    /// the flash sale's profile.
    pub async fn authenticate(&self, token: &str) -> AppResult<Arc<User>> {
        let digest = session_digest(token)?;
        let now_ms = self.now_ms();
        if let Some(user) = self.sessions().get(&digest, now_ms) {
            return Ok(user);
        }
        self.load_session(digest, now_ms).await
    }

    /// The actor of a bearer token: [`App::authenticate`] for requests that need no more of the
    /// user than who they are and their role (a flash purchase, every buyer of a sale at once).
    pub async fn authenticate_actor(&self, token: &str) -> AppResult<Actor> {
        let digest = session_digest(token)?;
        let now_ms = self.now_ms();
        if let Some(actor) = self.sessions().get_actor(&digest, now_ms) {
            return Ok(actor);
        }
        Ok(self.load_session(digest, now_ms).await?.actor())
    }

    /// The user of a session not in the cache, read from the store and cached.
    async fn load_session(&self, digest: [u8; 32], now_ms: i64) -> AppResult<Arc<User>> {
        let (row, expires_at_ms) =
            self.store().session_user(&hex_of(&digest), now_ms).await?.ok_or(AppError::InvalidToken)?;
        let user = Arc::new(User::try_from(row)?);
        self.sessions().put(digest, user.clone(), expires_at_ms, now_ms);
        Ok(user)
    }

    /// Loads the sessions created in the last day into the session cache, so the first minutes
    /// after a (re)start — a deploy right before a flash sale — do not send every signed-in buyer's
    /// first request to the database. Returns how many were loaded.
    pub async fn warm_sessions(&self) -> AppResult<usize> {
        let now_ms = self.now_ms();
        let rows =
            self.store().recent_sessions(now_ms - 86_400_000, now_ms, SESSION_CACHE_ENTRIES_MAX as u32 / 2).await?;
        let n = rows.len();
        for (hash, row, expires_at_ms) in rows {
            if let Some(digest) = digest_of_hex(&hash) {
                self.sessions().put(digest, Arc::new(row.try_into()?), expires_at_ms, now_ms);
            }
        }
        Ok(n)
    }

    /// Revokes the session of `token`.
    pub async fn logout(&self, token: &str) -> AppResult<()> {
        let digest = token_digest(token);
        self.store().revoke_session(&hex_of(&digest), self.now_ms()).await?;
        self.sessions().forget(&digest);
        Ok(())
    }

    pub async fn user(&self, id: i64) -> AppResult<User> {
        self.store().user(id).await?.ok_or(AppError::not_found("user"))?.try_into()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn decoy_hash_is_a_valid_argon2_hash() {
        assert_eq!(verify_password("anything".into(), DECOY_HASH.into()).await.ok(), Some(false));
    }

    #[tokio::test]
    async fn hashes_verify_their_password_only() {
        let password = Password::parse("correct horse battery").expect("valid");
        let hash = hash_password(password).await.expect("hash");
        assert!(hash.starts_with("$argon2id$"));
        assert_eq!(verify_password("correct horse battery".into(), hash.clone()).await.ok(), Some(true));
        assert_eq!(verify_password("wrong horse battery".into(), hash).await.ok(), Some(false));
    }

    #[test]
    fn tokens_are_prefixed_and_distinct() {
        let (a, b) = (new_token(), new_token());
        assert!(a.starts_with(TOKEN_PREFIX) && a.len() == 46 && a != b);
        assert_eq!(token_sha256(&a).len(), 64);
        assert_eq!(digest_of_hex(&token_sha256(&a)), Some(token_digest(&a)));
        assert_eq!(digest_of_hex("ab"), None);
        assert_eq!(digest_of_hex(&"g".repeat(64)), None);
    }
}
