//! Authentication of the handshake: both sides prove that they know the cluster's secret, with
//! HMAC-SHA256 over fresh nonces from both ends, before anything else is said.
//!
//! 1. The dialer sends `AuthInit` with its nonce `nd`.
//! 2. The acceptor answers `AuthChallenge` with its nonce `na` and `HMAC(secret, "acceptor" nd na)`.
//! 3. The dialer checks that proof, then sends `AuthResponse` with `HMAC(secret, "dialer" na nd)`.
//! 4. The acceptor checks it; only then is the `Hello` read.
//!
//! No secret and no reusable proof crosses the wire: each proof binds both nonces, and the
//! labels keep an acceptor's proof from passing for a dialer's. Comparisons are constant-time.

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{Reader, WireError, Writer};

/// Length of a nonce and of a proof.
pub const AUTH_LEN: usize = 32;

/// A nonce: fresh random bytes for every handshake.
pub type Nonce = [u8; AUTH_LEN];
/// A proof of knowing the secret.
pub type Proof = [u8; AUTH_LEN];

/// A fresh nonce from the operating system's generator.
pub fn nonce() -> Nonce {
    use rand::RngCore;
    let mut n = [0u8; AUTH_LEN];
    rand::rngs::OsRng.fill_bytes(&mut n);
    n
}

/// Which side a proof is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The node that accepted the connection.
    Acceptor,
    /// The node that dialed it.
    Dialer,
}

impl Side {
    fn label(self) -> &'static [u8] {
        match self {
            Side::Acceptor => b"partisan-auth-acceptor",
            Side::Dialer => b"partisan-auth-dialer",
        }
    }
}

fn mac(secret: &[u8], side: Side, first: &Nonce, second: &Nonce) -> Hmac<Sha256> {
    // HMAC takes keys of any length; this cannot fail.
    let mut m = <Hmac<Sha256> as Mac>::new_from_slice(secret)
        .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
    m.update(side.label());
    m.update(first);
    m.update(second);
    m
}

/// The proof of `side`: over the other side's nonce first, then its own.
pub fn prove(secret: &[u8], side: Side, theirs: &Nonce, mine: &Nonce) -> Proof {
    mac(secret, side, theirs, mine)
        .finalize()
        .into_bytes()
        .into()
}

/// Whether `proof` is `side`'s proof for these nonces (as `side` computed them: `theirs`
/// is the nonce of the checking node), compared in constant time.
pub fn verify(secret: &[u8], side: Side, theirs: &Nonce, mine: &Nonce, proof: &Proof) -> bool {
    mac(secret, side, theirs, mine).verify_slice(proof).is_ok()
}

/// The dialer's first frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthInit {
    /// The dialer's nonce.
    pub nonce: Nonce,
}

/// The acceptor's answer to `AuthInit`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthChallenge {
    /// The acceptor's nonce.
    pub nonce: Nonce,
    /// The acceptor's proof.
    pub proof: Proof,
}

/// The dialer's proof, sent once it checked the acceptor's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthResponse {
    /// The dialer's proof.
    pub proof: Proof,
}

fn fixed(r: &mut Reader) -> Result<[u8; AUTH_LEN], WireError> {
    let mut out = [0u8; AUTH_LEN];
    for b in out.iter_mut() {
        *b = r.u8()?;
    }
    Ok(out)
}

fn put(w: &mut Writer, bytes: &[u8]) {
    for b in bytes {
        w.u8(*b);
    }
}

impl AuthInit {
    /// The frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        put(&mut w, &self.nonce);
        w.buf
    }

    /// Parses a frame body.
    pub fn decode(body: &[u8]) -> Result<AuthInit, WireError> {
        let mut r = Reader::new(body);
        let nonce = fixed(&mut r)?;
        r.finish()?;
        Ok(AuthInit { nonce })
    }
}

impl AuthChallenge {
    /// The frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        put(&mut w, &self.nonce);
        put(&mut w, &self.proof);
        w.buf
    }

    /// Parses a frame body.
    pub fn decode(body: &[u8]) -> Result<AuthChallenge, WireError> {
        let mut r = Reader::new(body);
        let nonce = fixed(&mut r)?;
        let proof = fixed(&mut r)?;
        r.finish()?;
        Ok(AuthChallenge { nonce, proof })
    }
}

impl AuthResponse {
    /// The frame body.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        put(&mut w, &self.proof);
        w.buf
    }

    /// Parses a frame body.
    pub fn decode(body: &[u8]) -> Result<AuthResponse, WireError> {
        let mut r = Reader::new(body);
        let proof = fixed(&mut r)?;
        r.finish()?;
        Ok(AuthResponse { proof })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_prove_and_check() {
        let (nd, na) = (nonce(), nonce());
        let s = b"cookie";
        let pa = prove(s, Side::Acceptor, &nd, &na);
        assert!(verify(s, Side::Acceptor, &nd, &na, &pa));
        let pd = prove(s, Side::Dialer, &na, &nd);
        assert!(verify(s, Side::Dialer, &na, &nd, &pd));
    }

    #[test]
    fn another_secret_or_a_replay_fails() {
        let (nd, na) = (nonce(), nonce());
        let pd = prove(b"cookie", Side::Dialer, &na, &nd);
        assert!(!verify(b"other", Side::Dialer, &na, &nd, &pd));
        // The same proof against a fresh acceptor nonce: a replay.
        assert!(!verify(b"cookie", Side::Dialer, &nonce(), &nd, &pd));
        // An acceptor's proof does not pass for a dialer's.
        let pa = prove(b"cookie", Side::Acceptor, &na, &nd);
        assert!(!verify(b"cookie", Side::Dialer, &na, &nd, &pa));
    }

    #[test]
    fn frames_round_trip_and_refuse_bad_lengths() {
        let c = AuthChallenge {
            nonce: nonce(),
            proof: nonce(),
        };
        assert_eq!(AuthChallenge::decode(&c.encode()).unwrap(), c);
        let i = AuthInit { nonce: nonce() };
        assert_eq!(AuthInit::decode(&i.encode()).unwrap(), i);
        assert!(AuthInit::decode(&[0; 31]).is_err());
        assert!(AuthResponse::decode(&[0; 33]).is_err());
    }
}
