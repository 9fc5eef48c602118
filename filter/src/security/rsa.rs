//! RSA signature verification for JWS (`RS256/384/512`, PKCS#1 v1.5; `PS256/384/512`,
//! PSS with a salt as long as the hash): the public-key operation and the two encodings of
//! RFC 8017 (§9.2 and §9.1.2).
//!
//! Our own, rather than the `rsa` crate's, for speed in the VM: its big integers
//! (`num-bigint-dig`) took 312 us natively and ~690 us in Envoy's VM per RS256 token, most
//! of it in `modpow`. Here the modulus' Montgomery constants are computed once per key (when
//! the JWKS is read), and a verification is the 17 Montgomery products of `s^65537` (16 of
//! them squares) over fixed-size limbs. Everything involved is public (key, signature, message), so the
//! arithmetic may be variable-time.
//!
//! Limbs are `u32` with `u64` products: WebAssembly multiplies 64-bit integers natively,
//! while a 64x64->128 product, what `u64` limbs would need, is a library call there.

use sha2::digest::{Digest, FixedOutputReset};

/// The smallest modulus accepted (RFC 7518 §3.3: "2048 bits or larger").
pub(crate) const MIN_BITS: usize = 2048;
/// The largest: a verification's cost grows with the square of the size, and keys beyond
/// this are not issued for JWTs in practice.
pub(crate) const MAX_BITS: usize = 8192;

/// An RSA public key, with what its Montgomery arithmetic needs precomputed.
#[derive(Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The modulus, least significant limb first.
    n: Vec<u32>,
    /// Its length in bytes (`k` in RFC 8017) and in bits.
    bytes: usize,
    bits: usize,
    /// `-n^-1 mod 2^32`.
    n0_inv: u32,
    /// `R^2 mod n`, with `R = 2^(32 * limbs)`: multiplying by it enters Montgomery form.
    r2: Vec<u32>,
    e: u64,
}

/// Why a JWK's `n` and `e` are not a usable key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the modulus has {0} bits; {MIN_BITS} to {MAX_BITS} are accepted")]
    Size(usize),
    #[error("the modulus is even, so it is not an RSA modulus")]
    EvenModulus,
    #[error("the public exponent must be odd, at least 3 and at most 2^33 - 1")]
    Exponent,
}

impl PublicKey {
    /// A key from its big-endian modulus and exponent, as a JWK carries them.
    pub fn new(modulus: &[u8], exponent: &[u8]) -> Result<PublicKey, KeyError> {
        let n = limbs(modulus);
        let bits = bit_length(&n);
        if !(MIN_BITS..=MAX_BITS).contains(&bits) {
            return Err(KeyError::Size(bits));
        }
        let n = n.get(..bits.div_ceil(32)).unwrap_or_default().to_vec();
        let low = n.first().copied().unwrap_or_default();
        if low % 2 == 0 {
            return Err(KeyError::EvenModulus);
        }
        let e = exponent
            .iter()
            .skip_while(|&&b| b == 0)
            .try_fold(0u64, |e, &b| (e < 1 << 56).then(|| e << 8 | u64::from(b)))
            .filter(|e| e % 2 == 1 && (3..1 << 33).contains(e))
            .ok_or(KeyError::Exponent)?;
        // Newton's iteration doubles the correct low bits of an inverse: 1 → 32 bits.
        let inverse = (0..5).fold(1u32, |x, _| {
            x.wrapping_mul(2u32.wrapping_sub(low.wrapping_mul(x)))
        });
        let r2 = r_squared(&n);
        Ok(PublicKey {
            bytes: bits.div_ceil(8),
            bits,
            n0_inv: inverse.wrapping_neg(),
            r2,
            n,
            e,
        })
    }

    /// `RSASSA-PKCS1-v1_5` (RFC 8017 §8.2.2) over `message` hashed with `D`, whose
    /// DigestInfo prefix is `prefix`.
    pub fn verify_pkcs1v15<D: Digest>(&self, prefix: &[u8], message: &[u8], sig: &[u8]) -> bool {
        let Some(em) = self.public(sig) else {
            return false;
        };
        let hash = D::digest(message);
        let t_len = prefix.len() + hash.len();
        let Some(padding) = self.bytes.checked_sub(t_len + 3).filter(|p| *p >= 8) else {
            return false;
        };
        let expected = [
            &[0x00, 0x01][..],
            &vec![0xff; padding],
            &[0x00],
            prefix,
            &hash,
        ];
        em.len() == self.bytes && expected.concat() == em
    }

    /// `RSASSA-PSS` (RFC 8017 §8.1.2, EMSA-PSS-VERIFY of §9.1.2) with MGF1 over `D` and a
    /// salt of the hash's length, as JWS's `PS*` algorithms use it (RFC 7518 §3.5).
    pub fn verify_pss<D: Digest + FixedOutputReset>(&self, message: &[u8], sig: &[u8]) -> bool {
        let Some(m) = self.public(sig) else {
            return false;
        };
        let em_bits = self.bits - 1;
        let em_len = em_bits.div_ceil(8);
        // I2OSP(m, emLen): with emBits a multiple of 8 the first octet of `m` must be 0.
        let (high, em) = m.split_at(m.len() - em_len);
        if high.iter().any(|&b| b != 0) {
            return false;
        }
        let h_len = <D as Digest>::output_size();
        let s_len = h_len;
        if em_len < h_len + s_len + 2 || em.last() != Some(&0xbc) {
            return false;
        }
        let (masked_db, rest) = em.split_at(em_len - h_len - 1);
        let h = rest.get(..h_len).unwrap_or_default();
        let unused_bits = 8 * em_len - em_bits;
        let top_mask = 0xffu8 >> unused_bits;
        if masked_db.first().is_some_and(|&b| b & !top_mask != 0) {
            return false;
        }
        let mut db = mgf1::<D>(h, masked_db.len());
        db.iter_mut().zip(masked_db).for_each(|(d, m)| *d ^= m);
        if let Some(first) = db.first_mut() {
            *first &= top_mask;
        }
        let zeros = em_len - h_len - s_len - 2;
        let (padding, salt) = db.split_at(zeros + 1);
        if padding
            .get(..zeros)
            .is_none_or(|z| z.iter().any(|&b| b != 0))
            || padding.last() != Some(&0x01)
        {
            return false;
        }
        let mut prime = D::new();
        Digest::update(&mut prime, [0u8; 8]);
        Digest::update(&mut prime, D::digest(message));
        Digest::update(&mut prime, salt);
        prime.finalize()[..] == *h
    }

    /// `s^e mod n` as `k` big-endian bytes; `None` for a signature that is not `k` bytes
    /// long or not below the modulus (RFC 8017 §8.2.2 step 1, §5.2.2 step 1).
    fn public(&self, signature: &[u8]) -> Option<Vec<u8>> {
        if signature.len() != self.bytes {
            return None;
        }
        let s = limbs(signature);
        let s = s.get(..self.n.len()).unwrap_or_default();
        if !less(s, &self.n) {
            return None;
        }
        let base = self.mul(s, &self.r2);
        let mut acc = base.clone();
        for bit in (0..63 - self.e.leading_zeros()).rev() {
            acc = self.square(&acc);
            if self.e >> bit & 1 == 1 {
                acc = self.mul(&acc, &base);
            }
        }
        let mut one = vec![0u32; self.n.len()];
        if let Some(low) = one.first_mut() {
            *low = 1;
        }
        let plain = self.mul(&acc, &one);
        let mut out: Vec<u8> = plain.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        out.drain(..out.len() - self.bytes);
        Some(out)
    }

    /// The Montgomery product `a * b * R^-1 mod n`, for `a`, `b` below `n`.
    fn mul(&self, a: &[u32], b: &[u32]) -> Vec<u32> {
        self.reduce(product(a, b))
    }

    /// `a * a * R^-1 mod n`: 16 of the 17 products of `s^65537` are squares, and a square
    /// needs about half the limb products.
    fn square(&self, a: &[u32]) -> Vec<u32> {
        self.reduce(square(a))
    }

    /// Montgomery reduction of `t < n * R` (2s limbs and a spare): `t * R^-1 mod n`, by
    /// adding the multiple of `n` that clears each low limb in turn (separated operand
    /// scanning, Koç et al. 1996).
    fn reduce(&self, mut t: Vec<u32>) -> Vec<u32> {
        let s = self.n.len();
        for i in 0..s {
            let m = t[i].wrapping_mul(self.n0_inv);
            let mut carry = 0u64;
            for (ti, &nj) in t[i..].iter_mut().zip(&self.n) {
                let sum = u64::from(*ti) + u64::from(m) * u64::from(nj) + carry;
                *ti = sum as u32;
                carry = sum >> 32;
            }
            for limb in &mut t[i + s..] {
                if carry == 0 {
                    break;
                }
                let sum = u64::from(*limb) + carry;
                *limb = sum as u32;
                carry = sum >> 32;
            }
        }
        // The result is below 2n: s limbs and a possible carry into the spare one.
        let mut r = t.split_off(s);
        let overflow = r.pop().is_some_and(|top| top != 0);
        if overflow || !less(&r, &self.n) {
            subtract(&mut r, &self.n);
        }
        r
    }
}

/// `a * b` in `2s + 1` limbs (the last one spare for [`PublicKey::reduce`]).
fn product(a: &[u32], b: &[u32]) -> Vec<u32> {
    let s = a.len();
    let mut t = vec![0u32; 2 * s + 1];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (ti, &bj) in t[i..].iter_mut().zip(b) {
            let sum = u64::from(*ti) + u64::from(ai) * u64::from(bj) + carry;
            *ti = sum as u32;
            carry = sum >> 32;
        }
        // Rows so far reached limb i + s - 1 at most.
        t[i + s] = carry as u32;
    }
    t
}

/// `a * a` in `2s + 1` limbs: each product `a[i] * a[j]`, `i < j`, once, doubled, plus
/// the squares `a[i]^2`.
fn square(a: &[u32]) -> Vec<u32> {
    let s = a.len();
    let mut t = vec![0u32; 2 * s + 1];
    for (i, &ai) in a.iter().enumerate() {
        let mut carry = 0u64;
        for (ti, &aj) in t[2 * i + 1..].iter_mut().zip(&a[i + 1..]) {
            let sum = u64::from(*ti) + u64::from(ai) * u64::from(aj) + carry;
            *ti = sum as u32;
            carry = sum >> 32;
        }
        t[i + s] = carry as u32;
    }
    let mut top = 0;
    for limb in t.iter_mut() {
        let next = *limb >> 31;
        *limb = *limb << 1 | top;
        top = next;
    }
    let mut carry = 0u64;
    for (i, &ai) in a.iter().enumerate() {
        let square = u64::from(ai) * u64::from(ai);
        let low = u64::from(t[2 * i]) + (square & 0xffff_ffff) + carry;
        t[2 * i] = low as u32;
        let high = u64::from(t[2 * i + 1]) + (square >> 32) + (low >> 32);
        t[2 * i + 1] = high as u32;
        carry = high >> 32;
    }
    t
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "RSA-{} (e = {})", self.bits, self.e)
    }
}

/// The DigestInfo DER prefixes of RFC 8017 §9.2, note 1.
pub(crate) const SHA256_PREFIX: &[u8] = &[
    0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01, 0x05,
    0x00, 0x04, 0x20,
];
pub(crate) const SHA384_PREFIX: &[u8] = &[
    0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02, 0x05,
    0x00, 0x04, 0x30,
];
pub(crate) const SHA512_PREFIX: &[u8] = &[
    0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03, 0x05,
    0x00, 0x04, 0x40,
];

/// MGF1 (RFC 8017 B.2.1) of `seed`, `len` bytes.
fn mgf1<D: Digest + FixedOutputReset>(seed: &[u8], len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + <D as Digest>::output_size());
    let mut hasher = D::new();
    let mut counter = 0u32;
    while out.len() < len {
        Digest::update(&mut hasher, seed);
        Digest::update(&mut hasher, counter.to_be_bytes());
        out.extend_from_slice(&hasher.finalize_reset());
        counter = counter.wrapping_add(1);
    }
    out.truncate(len);
    out
}

/// Big-endian bytes to limbs, least significant first.
fn limbs(bytes: &[u8]) -> Vec<u32> {
    bytes
        .rchunks(4)
        .map(|chunk| chunk.iter().fold(0u32, |l, &b| l << 8 | u32::from(b)))
        .collect()
}

fn bit_length(n: &[u32]) -> usize {
    n.iter()
        .rposition(|&l| l != 0)
        .map_or(0, |i| 32 * i + 32 - n[i].leading_zeros() as usize)
}

/// `a < b`, for limbs of the same length.
fn less(a: &[u32], b: &[u32]) -> bool {
    a.iter().rev().cmp(b.iter().rev()) == std::cmp::Ordering::Less
}

/// `a -= b` modulo `2^(32 * limbs)`.
fn subtract(a: &mut [u32], b: &[u32]) {
    let mut borrow = 0u64;
    for (ai, &bi) in a.iter_mut().zip(b) {
        let diff = u64::from(*ai)
            .wrapping_sub(u64::from(bi))
            .wrapping_sub(borrow);
        *ai = diff as u32;
        borrow = diff >> 63;
    }
}

/// `R^2 mod n` by doubling 1 modulo `n`, `2 * 32 * limbs` times: done once per key.
fn r_squared(n: &[u32]) -> Vec<u32> {
    let mut x = vec![0u32; n.len()];
    if let Some(low) = x.first_mut() {
        *low = 1;
    }
    for _ in 0..64 * n.len() {
        let mut carry = 0;
        for limb in x.iter_mut() {
            let next = *limb >> 31;
            *limb = *limb << 1 | carry;
            carry = next;
        }
        if carry == 1 || !less(&x, n) {
            subtract(&mut x, n);
        }
    }
    x
}

#[cfg(test)]
mod tests;
