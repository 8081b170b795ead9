//! The one piece of cryptography `jsonwebtoken` needs from us: HMAC signing and verification.
//!
//! `jsonwebtoken` ships two crypto backends, and both compile RSA and elliptic curves: the
//! RustCrypto one brings `rsa` (RUSTSEC-2023-0071, no fixed version) and the aws-lc one a C
//! build. Our access tokens are HS256 only (`tokens.rs` pins the algorithm), so we give the
//! crate a provider built on the same `hmac`/`sha2` the rest of the service uses. Every other
//! algorithm is refused with `InvalidAlgorithm`, so a token naming RS256, ES256 or EdDSA fails
//! like any other bad token. Verification uses `hmac`'s constant-time comparison.

use hmac::{Hmac, KeyInit, Mac};
use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{ErrorKind, Result};
use jsonwebtoken::signature::{self, Signer, Verifier};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, EncodingKey};
use sha2::{Sha256, Sha384, Sha512};

/// The provider: HMAC with SHA-256/384/512, nothing else.
static HMAC_ONLY: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils::new_unimplemented(),
};

/// Makes [`HMAC_ONLY`] the process's `jsonwebtoken` provider. Idempotent: the first call wins
/// and later ones find it installed. Must run before any token is signed or verified, which
/// `TokenKeys::new` guarantees by calling it.
pub fn install() {
    // Err only means a provider is installed already; ours is the only one in this binary.
    let _ = HMAC_ONLY.install_default();
}

/// One HMAC key with its algorithm; `Signer` and `Verifier` for `jsonwebtoken`.
enum HmacKey {
    Hs256(Hmac<Sha256>),
    Hs384(Hmac<Sha384>),
    Hs512(Hmac<Sha512>),
}

impl HmacKey {
    fn new(algorithm: Algorithm, family: AlgorithmFamily, secret: &[u8]) -> Result<Self> {
        if family != AlgorithmFamily::Hmac {
            return Err(ErrorKind::InvalidKeyFormat.into());
        }
        let bad_key = |_| ErrorKind::InvalidKeyFormat;
        Ok(match algorithm {
            Algorithm::HS256 => Self::Hs256(Hmac::new_from_slice(secret).map_err(bad_key)?),
            Algorithm::HS384 => Self::Hs384(Hmac::new_from_slice(secret).map_err(bad_key)?),
            Algorithm::HS512 => Self::Hs512(Hmac::new_from_slice(secret).map_err(bad_key)?),
            _ => return Err(ErrorKind::InvalidAlgorithm.into()),
        })
    }

    fn algorithm(&self) -> Algorithm {
        match self {
            Self::Hs256(_) => Algorithm::HS256,
            Self::Hs384(_) => Algorithm::HS384,
            Self::Hs512(_) => Algorithm::HS512,
        }
    }
}

impl Signer<Vec<u8>> for HmacKey {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        fn tag<M: Mac + Clone>(mac: &M, msg: &[u8]) -> Vec<u8> {
            let mut mac = mac.clone();
            mac.update(msg);
            mac.finalize().into_bytes().to_vec()
        }
        Ok(match self {
            Self::Hs256(mac) => tag(mac, msg),
            Self::Hs384(mac) => tag(mac, msg),
            Self::Hs512(mac) => tag(mac, msg),
        })
    }
}

impl Verifier<Vec<u8>> for HmacKey {
    fn verify(&self, msg: &[u8], expected: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        fn check<M: Mac + Clone>(mac: &M, msg: &[u8], expected: &[u8]) -> bool {
            let mut mac = mac.clone();
            mac.update(msg);
            mac.verify_slice(expected).is_ok()
        }
        let ok = match self {
            Self::Hs256(mac) => check(mac, msg, expected),
            Self::Hs384(mac) => check(mac, msg, expected),
            Self::Hs512(mac) => check(mac, msg, expected),
        };
        if ok {
            Ok(())
        } else {
            Err(signature::Error::new())
        }
    }
}

impl JwtSigner for HmacKey {
    fn algorithm(&self) -> Algorithm {
        HmacKey::algorithm(self)
    }
}

impl JwtVerifier for HmacKey {
    fn algorithm(&self) -> Algorithm {
        HmacKey::algorithm(self)
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.family(),
        key.as_bytes(),
    )?))
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    Ok(Box::new(HmacKey::new(
        *algorithm,
        key.family(),
        key.try_get_as_bytes()?,
    )?))
}

#[cfg(test)]
mod tests {
    use jsonwebtoken::{Header, Validation, decode, encode};
    use serde_json::{Value, json};

    use super::*;

    const SECRET: &[u8] = b"a secret of at least thirty-two bytes!!";

    /// RFC 7515 appendix A.1: the HS256 example, so our HMAC is the standard one.
    #[test]
    fn rfc7515_hs256_example_signature_is_reproduced() {
        install();
        let key = [
            3u8, 35, 53, 75, 43, 15, 165, 188, 131, 126, 6, 101, 119, 123, 166, 143, 90, 179, 40,
            230, 240, 84, 201, 40, 169, 15, 132, 178, 210, 80, 46, 191, 211, 251, 90, 146, 210, 6,
            71, 239, 150, 138, 180, 195, 119, 98, 61, 34, 61, 46, 33, 114, 5, 46, 79, 8, 192, 205,
            154, 245, 103, 208, 128, 163,
        ];
        let message = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9.\
                       eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFt\
                       cGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
        let signature = jsonwebtoken::crypto::sign(
            message.as_bytes(),
            &EncodingKey::from_secret(&key),
            Algorithm::HS256,
        )
        .unwrap();
        assert_eq!(signature, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        assert!(
            jsonwebtoken::crypto::verify(
                &signature,
                message.as_bytes(),
                &DecodingKey::from_secret(&key),
                Algorithm::HS256
            )
            .unwrap()
        );
    }

    #[test]
    fn tokens_round_trip_and_a_wrong_secret_or_other_family_is_refused() {
        install();
        let claims = json!({"sub": "partner", "exp": 4_000_000_000u64});
        for alg in [Algorithm::HS256, Algorithm::HS384, Algorithm::HS512] {
            let token = encode(
                &Header::new(alg),
                &claims,
                &EncodingKey::from_secret(SECRET),
            );
            let token = token.unwrap();
            let back = decode::<Value>(&token, &DecodingKey::from_secret(SECRET), &{
                let mut v = Validation::new(alg);
                v.required_spec_claims.clear();
                v
            });
            assert_eq!(back.unwrap().claims, claims);
            let wrong = decode::<Value>(
                &token,
                &DecodingKey::from_secret(b"another secret of thirty-two bytes!!"),
                &Validation::new(alg),
            );
            assert!(wrong.is_err(), "{alg:?} accepted a wrong secret");
        }
        let rs256 = encode(
            &Header::new(Algorithm::RS256),
            &claims,
            &EncodingKey::from_secret(SECRET),
        );
        assert!(rs256.is_err(), "RS256 has no backend here");
    }
}
