//! Our verification against RustCrypto's `rsa` signatures: every JWS algorithm, key sizes
//! whose PSS encoding is one byte shorter than the modulus, and what must be refused.

use std::sync::OnceLock;

use ::rsa::traits::PublicKeyParts;
use ::rsa::{Pkcs1v15Sign, Pss, RsaPrivateKey};
use rand::rngs::OsRng;
use rand::RngCore;
use sha2::{Sha256, Sha384, Sha512};

use super::*;

/// 2048 bits, the usual; 2049, where PSS's encoded message is a byte shorter than the
/// modulus; 3072, another limb count.
fn keys() -> &'static [(RsaPrivateKey, PublicKey)] {
    static KEYS: OnceLock<Vec<(RsaPrivateKey, PublicKey)>> = OnceLock::new();
    KEYS.get_or_init(|| {
        [2048, 2049, 3072]
            .into_iter()
            .map(|bits| {
                let private = RsaPrivateKey::new(&mut OsRng, bits).unwrap();
                let public = ours(&private);
                (private, public)
            })
            .collect()
    })
}

fn ours(key: &RsaPrivateKey) -> PublicKey {
    PublicKey::new(&key.n().to_bytes_be(), &key.e().to_bytes_be()).unwrap()
}

/// Each algorithm: its name, how RustCrypto signs, and how we verify.
type Sign = fn(&RsaPrivateKey, &[u8]) -> Vec<u8>;
type Verify = fn(&PublicKey, &[u8], &[u8]) -> bool;

fn algorithms() -> [(&'static str, Sign, Verify); 6] {
    [
        (
            "RS256",
            |k, m| {
                k.sign(Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pkcs1v15::<Sha256>(SHA256_PREFIX, m, s),
        ),
        (
            "RS384",
            |k, m| {
                k.sign(Pkcs1v15Sign::new::<Sha384>(), &Sha384::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pkcs1v15::<Sha384>(SHA384_PREFIX, m, s),
        ),
        (
            "RS512",
            |k, m| {
                k.sign(Pkcs1v15Sign::new::<Sha512>(), &Sha512::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pkcs1v15::<Sha512>(SHA512_PREFIX, m, s),
        ),
        (
            "PS256",
            |k, m| {
                k.sign_with_rng(&mut OsRng, Pss::new::<Sha256>(), &Sha256::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pss::<Sha256>(m, s),
        ),
        (
            "PS384",
            |k, m| {
                k.sign_with_rng(&mut OsRng, Pss::new::<Sha384>(), &Sha384::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pss::<Sha384>(m, s),
        ),
        (
            "PS512",
            |k, m| {
                k.sign_with_rng(&mut OsRng, Pss::new::<Sha512>(), &Sha512::digest(m))
                    .unwrap()
            },
            |k, m, s| k.verify_pss::<Sha512>(m, s),
        ),
    ]
}

#[test]
fn signatures_made_by_rustcrypto_verify() {
    for (private, public) in keys() {
        for (name, sign, verify) in algorithms() {
            for length in [0, 1, 200] {
                let mut message = vec![0u8; length];
                OsRng.fill_bytes(&mut message);
                let signature = sign(private, &message);
                assert!(verify(public, &message, &signature), "{name} {public:?}");
            }
        }
    }
}

#[test]
fn altered_signatures_messages_and_keys_are_refused() {
    let (private, public) = &keys()[0];
    let (_, other) = &keys()[2];
    for (name, sign, verify) in algorithms() {
        let message = b"header.payload";
        let signature = sign(private, message);
        for bit in [0, 7, 100, signature.len() * 8 - 1] {
            let mut flipped = signature.clone();
            flipped[bit / 8] ^= 1 << (bit % 8);
            assert!(!verify(public, message, &flipped), "{name}: bit {bit}");
        }
        assert!(!verify(public, b"header.payloaD", &signature), "{name}");
        assert!(!verify(other, message, &signature), "{name}: other key");
        let other_scheme = if name.starts_with("RS") { 3 } else { 0 };
        let (_, _, mismatched) = algorithms()[other_scheme];
        assert!(
            !mismatched(public, message, &signature),
            "{name}: other scheme"
        );
        // Not k bytes: one short, one long (RFC 8017 §8.2.2 step 1).
        assert!(!verify(public, message, &signature[1..]), "{name}");
        assert!(!verify(public, message, &[&[0], &signature[..]].concat()));
        // Not below the modulus.
        let modulus = private.n().to_bytes_be();
        assert!(!verify(public, message, &modulus), "{name}: s = n");
        assert!(
            !verify(public, message, &vec![0xff; modulus.len()]),
            "{name}"
        );
        assert!(
            !verify(public, message, &vec![0; modulus.len()]),
            "{name}: s = 0"
        );
    }
}

#[test]
fn keys_outside_the_accepted_range_are_refused() {
    let key = &keys()[0].0;
    let n = key.n().to_bytes_be();
    let e = key.e().to_bytes_be();
    assert_eq!(PublicKey::new(&n[..128], &e), Err(KeyError::Size(1024)));
    assert_eq!(PublicKey::new(&[0xff; 1025], &e), Err(KeyError::Size(8200)));
    let mut even = n.clone();
    *even.last_mut().unwrap() &= 0xfe;
    assert_eq!(PublicKey::new(&even, &e), Err(KeyError::EvenModulus));
    for exponent in [
        &[1][..],
        &[2],
        &[0x01, 0x00, 0x00],
        &[2, 0, 0, 0, 1],
        &[1; 9],
    ] {
        assert_eq!(
            PublicKey::new(&n, exponent),
            Err(KeyError::Exponent),
            "{exponent:?}"
        );
    }
    // Leading zeros in either big-endian number change nothing.
    let padded = PublicKey::new(&[&[0, 0][..], &n].concat(), &[&[0][..], &e].concat());
    assert_eq!(padded, Ok(keys()[0].1.clone()));
}

#[test]
fn a_small_exponent_key_verifies() {
    // e = 3: the exponent loop's other path (one squaring, one multiplication).
    let private = RsaPrivateKey::new_with_exp(&mut OsRng, 2048, &3u32.into()).unwrap();
    let public = ours(&private);
    let (_, sign, verify) = algorithms()[0];
    let signature = sign(&private, b"m");
    assert!(verify(&public, b"m", &signature));
    assert!(!verify(&public, b"n", &signature));
}
