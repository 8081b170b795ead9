//! argon2id with OWASP parameters (19 MiB, 2 iterations, 1 lane: the crate's defaults). Hashing
//! is CPU-bound, so it runs on the blocking pool rather than an async worker thread.

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};

pub async fn hash(password: String) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(password.as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| anyhow::anyhow!("hashing a password: {e}"))
    })
    .await
    .context("password hashing task")?
}

/// Verifies `password` against a stored PHC string. When the account does not exist the caller
/// passes [`DUMMY_HASH`] so that an unknown email costs the same time as a wrong password.
pub async fn verify(password: String, stored: String) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let parsed = PasswordHash::new(&stored)
            .map_err(|e| anyhow::anyhow!("stored password hash is malformed: {e}"))?;
        Ok(Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok())
    })
    .await
    .context("password verification task")?
}

/// A valid argon2id hash (of a random string nobody knows) with the same parameters as real
/// ones, verified against when the email is unknown.
pub const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$3pJm9bOf2kfZ7lFa3Nb8Y7bWcF0gWm0xkYqP1lq3kP8";

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_use_argon2id_owasp_parameters() {
        let h = hash("correct horse battery".into()).await.unwrap();
        assert!(h.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{h}");
        assert!(
            verify("correct horse battery".into(), h.clone())
                .await
                .unwrap()
        );
        assert!(!verify("wrong horse battery".into(), h).await.unwrap());
        assert!(!verify("anything".into(), DUMMY_HASH.into()).await.unwrap());
    }
}
