//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), the server side of Kafka's
//! `ScramSaslServer`: client-first → server-first → client-final → server-final. The hashes and
//! MACs are RustCrypto's (`sha2`, `hmac`); the server only ever holds the credential's salt,
//! stored key, server key and iteration count.

use crate::metadata::ScramCredential;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

/// Kafka's bounds on a SCRAM credential's iteration count (`ScramMechanism`).
pub const MIN_ITERATIONS: i32 = 4096;
pub const MAX_ITERATIONS: i32 = 16384;

/// The two SCRAM mechanisms, with the type numbers the admin APIs and metadata records use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramMechanism {
    Sha256,
    Sha512,
}

impl ScramMechanism {
    pub fn from_type(mechanism_type: i8) -> Option<ScramMechanism> {
        match mechanism_type {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn from_name(name: &str) -> Option<ScramMechanism> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    pub fn type_number(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    fn hmac(self, key: &[u8], message: &[u8]) -> Vec<u8> {
        fn run<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
            let mut mac =
                <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
            mac.update(message);
            mac.finalize().into_bytes().to_vec()
        }
        match self {
            ScramMechanism::Sha256 => run::<Hmac<Sha256>>(key, message),
            ScramMechanism::Sha512 => run::<Hmac<Sha512>>(key, message),
        }
    }

    fn hash(self, bytes: &[u8]) -> Vec<u8> {
        match self {
            ScramMechanism::Sha256 => Sha256::digest(bytes).to_vec(),
            ScramMechanism::Sha512 => Sha512::digest(bytes).to_vec(),
        }
    }

    /// The credential the server keeps for a salted password (what AlterUserScramCredentials
    /// carries: the client ran PBKDF2 itself).
    pub fn credential(
        self,
        salt: &[u8],
        salted_password: &[u8],
        iterations: i32,
    ) -> ScramCredential {
        let client_key = self.hmac(salted_password, b"Client Key");
        ScramCredential {
            salt: salt.to_vec(),
            stored_key: self.hash(&client_key),
            server_key: self.hmac(salted_password, b"Server Key"),
            iterations,
        }
    }
}

/// Where a SCRAM exchange stands.
pub enum ScramServer {
    /// Waiting for client-first.
    Start {
        mechanism: ScramMechanism,
    },
    /// server-first was sent; waiting for client-final.
    SentFirst {
        mechanism: ScramMechanism,
        user: String,
        credential: Option<ScramCredential>,
        nonce: String,
        client_first_bare: String,
        server_first: String,
    },
    Done,
}

/// What a step of the exchange gives.
pub enum Step {
    /// Send this challenge and wait for the client's next message.
    Continue(Vec<u8>),
    /// Authenticated as this user; send the final message.
    Complete { user: String, server_final: Vec<u8> },
    /// Authentication failed; the reason goes to the client (it never holds secrets).
    Failed(String),
}

/// The message Kafka gives for any credential problem, so that a client cannot tell an
/// unknown user from a wrong password.
fn invalid_credentials(mechanism: ScramMechanism) -> Step {
    Step::Failed(format!(
        "Authentication failed during authentication due to invalid credentials with SASL mechanism {}",
        mechanism.name()
    ))
}

impl ScramServer {
    pub fn new(mechanism: ScramMechanism) -> ScramServer {
        ScramServer::Start { mechanism }
    }

    /// Handles one client message. `lookup` finds a user's credential for this mechanism.
    pub fn step(
        &mut self,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Step {
        match std::mem::replace(self, ScramServer::Done) {
            ScramServer::Start { mechanism } => self.client_first(mechanism, message, lookup),
            ScramServer::SentFirst {
                mechanism,
                user,
                credential,
                nonce,
                client_first_bare,
                server_first,
            } => {
                let Some(credential) = credential else {
                    return invalid_credentials(mechanism);
                };
                let auth = AuthState {
                    mechanism,
                    credential: &credential,
                    nonce: &nonce,
                    client_first_bare: &client_first_bare,
                    server_first: &server_first,
                };
                match auth.client_final(message) {
                    Ok(server_final) => Step::Complete { user, server_final },
                    Err(step) => step,
                }
            }
            ScramServer::Done => Step::Failed("the SCRAM exchange is already complete".into()),
        }
    }

    fn client_first(
        &mut self,
        mechanism: ScramMechanism,
        message: &[u8],
        lookup: impl FnOnce(&str) -> Option<ScramCredential>,
    ) -> Step {
        let Ok(text) = std::str::from_utf8(message) else {
            return Step::Failed("SCRAM client-first message is not UTF-8".into());
        };
        let first = match parse_client_first(text) {
            Ok(first) => first,
            Err(reason) => {
                return Step::Failed(format!("invalid SCRAM client-first message: {reason}"));
            }
        };
        let mut random = [0u8; SERVER_NONCE_BYTES];
        if getrandom::fill(&mut random).is_err() {
            return Step::Failed("the broker could not generate a nonce".into());
        }
        let nonce = format!("{}{}", first.nonce, BASE64.encode(random));
        // A user without a credential goes through the whole exchange with a made-up salt and
        // fails at the end, so that the answer does not tell whether the user exists.
        let credential = lookup(&first.user);
        let (salt, iterations) = match &credential {
            Some(c) => (c.salt.clone(), c.iterations),
            None => (mechanism.hash(first.user.as_bytes()), MIN_ITERATIONS),
        };
        let server_first = format!("r={nonce},s={},i={iterations}", BASE64.encode(salt));
        let challenge = server_first.clone().into_bytes();
        *self = ScramServer::SentFirst {
            mechanism,
            user: first.user,
            credential,
            nonce,
            client_first_bare: first.bare.to_string(),
            server_first,
        };
        Step::Continue(challenge)
    }
}

/// The random bytes of the server's part of the nonce (32 characters in base64).
const SERVER_NONCE_BYTES: usize = 24;

/// Whether client-final's nonce is the one server-first sent (client nonce + server part). Also
/// accepted, as Kafka's `endsWith` check accepts it: the client nonce once more in front, which
/// librdkafka 2.0 (kcat 1.7) sends. The proof covers the nonce as sent, so this admits nothing
/// the server did not make fresh.
fn nonce_matches(sent: &str, expected: &str) -> bool {
    if sent == expected {
        return true;
    }
    let client_len = expected
        .len()
        .saturating_sub(SERVER_NONCE_BYTES.div_ceil(3) * 4);
    sent.strip_suffix(expected)
        .is_some_and(|prefix| prefix.len() == client_len && expected.starts_with(prefix))
}

struct AuthState<'a> {
    mechanism: ScramMechanism,
    credential: &'a ScramCredential,
    nonce: &'a str,
    client_first_bare: &'a str,
    server_first: &'a str,
}

impl AuthState<'_> {
    /// Checks client-final (`c=...,r=...,p=...`) and returns server-final (`v=...`).
    fn client_final(&self, message: &[u8]) -> Result<Vec<u8>, Step> {
        let bad =
            |reason: &str| Step::Failed(format!("invalid SCRAM client-final message: {reason}"));
        let text = std::str::from_utf8(message).map_err(|_| bad("not UTF-8"))?;
        let (without_proof, proof) = text.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let mut attributes = without_proof.split(',');
        let channel_binding = attributes
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| bad("no channel binding"))?;
        // Only "n,," (no channel binding, no authorization id) and "y,," are accepted at
        // client-first, whose base64 forms are these.
        if channel_binding != "biws" && channel_binding != "eSws" {
            return Err(bad("unexpected channel binding"));
        }
        let nonce = attributes
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| bad("no nonce"))?;
        if !nonce_matches(nonce, self.nonce) {
            return Err(bad("the nonce does not match"));
        }
        let proof = BASE64
            .decode(proof)
            .map_err(|_| bad("the proof is not base64"))?;
        let auth_message = format!(
            "{},{},{}",
            self.client_first_bare, self.server_first, without_proof
        );
        let m = self.mechanism;
        let client_signature = m.hmac(&self.credential.stored_key, auth_message.as_bytes());
        if proof.len() != client_signature.len() {
            return Err(invalid_credentials(m));
        }
        let client_key: Vec<u8> = proof
            .iter()
            .zip(&client_signature)
            .map(|(p, s)| p ^ s)
            .collect();
        let stored_key = m.hash(&client_key);
        if !bool::from(stored_key.ct_eq(&self.credential.stored_key)) {
            return Err(invalid_credentials(m));
        }
        let server_signature = m.hmac(&self.credential.server_key, auth_message.as_bytes());
        Ok(format!("v={}", BASE64.encode(server_signature)).into_bytes())
    }
}

struct ClientFirst<'a> {
    user: String,
    nonce: &'a str,
    /// The message without its GS2 header, part of the AuthMessage both sides sign.
    bare: &'a str,
}

/// Parses `n,[a=authzid],n=user,r=nonce[,extensions]`.
fn parse_client_first(text: &str) -> Result<ClientFirst<'_>, String> {
    let (gs2_flag, rest) = text.split_once(',').ok_or("no GS2 header")?;
    match gs2_flag {
        "n" | "y" => {}
        _ => return Err("channel binding is not supported".into()),
    }
    let (authzid, bare) = rest.split_once(',').ok_or("no GS2 header")?;
    let mut attributes = bare.split(',');
    let user = attributes
        .next()
        .and_then(|a| a.strip_prefix("n="))
        .ok_or("no user name")?;
    let user = decode_sasl_name(user)?;
    if !authzid.is_empty()
        && authzid.strip_prefix("a=").map(decode_sasl_name) != Some(Ok(user.clone()))
    {
        return Err("the authorization id must be the user name".into());
    }
    let nonce = attributes
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .filter(|n| !n.is_empty())
        .ok_or("no nonce")?;
    if user.is_empty() {
        return Err("empty user name".into());
    }
    Ok(ClientFirst { user, nonce, bare })
}

/// Undoes RFC 5802's escaping of ',' and '=' in a name (`=2C`, `=3D`).
fn decode_sasl_name(name: &str) -> Result<String, String> {
    let mut out = String::with_capacity(name.len());
    let mut rest = name;
    while let Some(i) = rest.find('=') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3).ok_or("bad escape in user name")?;
        out.push(match code {
            "2C" => ',',
            "3D" => '=',
            _ => return Err("bad escape in user name".into()),
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn librdkafka_2_0_doubled_client_nonce_is_accepted() {
        let server_part = "A".repeat(32);
        let expected = format!("abc{server_part}");
        assert!(nonce_matches(&expected, &expected));
        assert!(nonce_matches(&format!("abc{expected}"), &expected));
        for wrong in [
            format!("xyz{expected}"),
            format!("ab{expected}"),
            format!("abcabc{expected}"),
            server_part.clone(),
            format!("abc{}", "B".repeat(32)),
        ] {
            assert!(!nonce_matches(&wrong, &expected), "{wrong}");
        }
    }

    /// RFC 7677's SCRAM-SHA-256 example exchange (user "user", password "pencil").
    #[test]
    fn rfc7677_salted_password_gives_the_example_server_signature() {
        let salt = BASE64.decode("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let mut salted = [0u8; 32];
        pbkdf2::pbkdf2_hmac::<Sha256>(b"pencil", &salt, 4096, &mut salted);
        let credential = ScramMechanism::Sha256.credential(&salt, &salted, 4096);
        let auth = AuthState {
            mechanism: ScramMechanism::Sha256,
            credential: &credential,
            nonce: "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
            client_first_bare: "n=user,r=rOprNGfwEbeRWgbNEkqO",
            server_first: "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
        };
        let server_final = auth
            .client_final(
                b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
            )
            .ok()
            .expect("the RFC's proof is accepted");
        assert_eq!(
            server_final,
            b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec()
        );
        let wrong = auth.client_final(
            b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=eHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=",
        );
        assert!(matches!(wrong, Err(Step::Failed(_))));
    }

    #[test]
    fn client_first_parsing() {
        let first = parse_client_first("n,,n=al=2Cice,r=abc,tokenauth=true").unwrap();
        assert_eq!(first.user, "al,ice");
        assert_eq!(first.nonce, "abc");
        assert_eq!(first.bare, "n=al=2Cice,r=abc,tokenauth=true");
        assert!(parse_client_first("n,a=alice,n=alice,r=x").is_ok());
        for bad in [
            "",
            "p=tls-unique,,n=a,r=x",
            "n,,n=a",
            "n,,r=x",
            "n,a=bob,n=alice,r=x",
            "n,,n=a=41,r=x",
        ] {
            assert!(parse_client_first(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unknown_users_fail_at_the_end() {
        let mut server = ScramServer::new(ScramMechanism::Sha512);
        assert!(matches!(
            server.step(b"n,,n=nobody,r=abc", |_| None),
            Step::Continue(_)
        ));
        assert!(matches!(
            server.step(b"c=biws,r=abc,p=AAAA", |_| None),
            Step::Failed(_)
        ));
    }
}
