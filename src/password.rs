//! Argon2id password hashes (PHC strings) for `[[auth.user]]`: made by
//! `camgate hash-password`, checked when the configuration is read, and
//! verified on every HTTP Basic or RTSP login.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;

/// A valid hash of a password nobody knows, with the default parameters,
/// checked against unknown user names.
pub(crate) const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$Y2FtZ2F0ZS1kdW1teS1zYWx0$LwJsAOanXMXRXLbTJlKRsP0m3TPKTsRh0UGZCzxwwNw";

/// Whether `password` matches the PHC string `hash` (Argon2 with the
/// hash's own parameters).
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

/// An Argon2id PHC string of `password` with a random salt and the
/// default parameters (19 MiB, 2 passes), for `[[auth.user]]
/// password_hash`.
pub fn hash_password(password: &str) -> Result<String, String> {
    let salt_bytes: [u8; 16] = rand::random();
    let salt = SaltString::encode_b64(&salt_bytes).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

/// Largest Argon2 memory cost accepted in a configured hash (1 GiB, in
/// KiB): every login would allocate it.
const MAX_M_COST: u32 = 1024 * 1024;
/// Largest Argon2 time cost accepted in a configured hash.
const MAX_T_COST: u32 = 64;

/// Checks that `hash` is an Argon2 PHC string camgate can verify with
/// sane costs; the message says what is wrong (never quoting the hash).
pub fn check_password_hash(hash: &str) -> Result<(), String> {
    let parsed = PasswordHash::new(hash)
        .map_err(|e| format!("not a PHC string ({e}), expected $argon2id$v=19$m=...$...$..."))?;
    if !parsed.algorithm.as_str().starts_with("argon2") {
        return Err(format!(
            "algorithm {:?} is not supported (use argon2id)",
            parsed.algorithm.as_str()
        ));
    }
    if parsed.hash.is_none() || parsed.salt.is_none() {
        return Err("has no salt or no hash".to_owned());
    }
    let params = argon2::Params::try_from(&parsed)
        .map_err(|e| format!("invalid Argon2 parameters ({e})"))?;
    if params.m_cost() > MAX_M_COST || params.t_cost() > MAX_T_COST {
        return Err(format!(
            "Argon2 costs m={} KiB, t={} are too high (at most m={MAX_M_COST}, t={MAX_T_COST})",
            params.m_cost(),
            params.t_cost()
        ));
    }
    Ok(())
}

/// A cheap hash (8 MiB, 1 pass) so the tests run fast.
#[cfg(test)]
pub(crate) fn cheap_hash(password: &str) -> String {
    let params = argon2::Params::new(8192, 1, 1, None).unwrap();
    let argon = Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
    let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
    argon
        .hash_password(password.as_bytes(), &salt)
        .unwrap()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hashes() {
        let h = cheap_hash("pw");
        assert!(verify_password(&h, "pw"));
        assert!(!verify_password(&h, "pW"));
        assert!(check_password_hash(&h).is_ok());
        assert!(check_password_hash(DUMMY_HASH).is_ok());
        assert!(check_password_hash("plain").is_err());
        assert!(check_password_hash("$argon2id$v=19$m=4194304,t=2,p=1$Y2FtZ2F0ZS1kdW1teS1zYWx0$LwJsAOanXMXRXLbTJlKRsP0m3TPKTsRh0UGZCzxwwNw").is_err());
    }
}
