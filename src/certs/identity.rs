//! Who a certificate names: exactly one URI subjectAltName `raftinel://node/<id>` or
//! `raftinel://admin/<name>`. Pure: parses DER, never panics on any input.

use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

const NODE: &str = "raftinel://node/";
const ADMIN: &str = "raftinel://admin/";

/// The identity a certificate proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertIdentity {
    /// A cluster member with this Raft node id.
    Node(u64),
    /// An operator.
    Admin(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("not a parseable X.509 certificate")]
    Der,
    #[error("it names no raftinel identity (a URI SAN raftinel://node/ID or raftinel://admin/NAME); make it with `raftinel certs`")]
    None,
    #[error("it names more than one raftinel identity")]
    Several,
    #[error("its raftinel identity '{0}' is malformed")]
    Malformed(String),
}

impl CertIdentity {
    /// The URI this identity is written as.
    pub fn uri(&self) -> String {
        match self {
            CertIdentity::Node(id) => format!("{NODE}{id}"),
            CertIdentity::Admin(name) => format!("{ADMIN}{name}"),
        }
    }
}

/// An admin name: 1–64 of ASCII letters, digits, `-`, `_`, `.` (it is also a file name).
pub fn valid_admin_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

/// Reads one raftinel URI; `None` for URIs of other schemes.
fn parse_uri(uri: &str) -> Option<Result<CertIdentity, CertError>> {
    let bad = || CertError::Malformed(uri.chars().take(100).collect());
    if let Some(id) = uri.strip_prefix(NODE) {
        let ok = id.bytes().all(|b| b.is_ascii_digit());
        return Some(match id.parse::<u64>() {
            Ok(n) if n > 0 && ok => Ok(CertIdentity::Node(n)),
            _ => Err(bad()),
        });
    }
    if let Some(name) = uri.strip_prefix(ADMIN) {
        return Some(if valid_admin_name(name) {
            Ok(CertIdentity::Admin(name.to_owned()))
        } else {
            Err(bad())
        });
    }
    uri.starts_with("raftinel:").then(|| Err(bad()))
}

/// The identity in a DER certificate (the leaf a TLS peer presented; the chain was verified).
pub fn identity(der: &[u8]) -> Result<CertIdentity, CertError> {
    let (_, cert) =
        x509_parser::certificate::X509Certificate::from_der(der).map_err(|_| CertError::Der)?;
    let san = cert
        .subject_alternative_name()
        .map_err(|_| CertError::Der)?;
    let mut found = None;
    for name in san.iter().flat_map(|s| s.value.general_names.iter()) {
        let GeneralName::URI(uri) = name else {
            continue;
        };
        if let Some(id) = parse_uri(uri) {
            if found.is_some() {
                return Err(CertError::Several);
            }
            found = Some(id?);
        }
    }
    found.ok_or(CertError::None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::certs::issue::Ca;
    use proptest::prelude::*;

    #[test]
    fn node_and_admin_certificates_name_their_identity() {
        let ca = Ca::create().unwrap();
        let node = ca.node(3, &["127.0.0.1".parse().unwrap()]).unwrap();
        assert_eq!(identity(&node.der).unwrap(), CertIdentity::Node(3));
        let admin = ca.admin("ops-1").unwrap();
        assert_eq!(
            identity(&admin.der).unwrap(),
            CertIdentity::Admin("ops-1".into())
        );
        // The CA itself names nobody.
        assert_eq!(identity(&ca.der()).unwrap_err(), CertError::None);
    }

    #[test]
    fn uris_are_read_strictly() {
        let ok = |u: &str| parse_uri(u).and_then(Result::ok);
        assert_eq!(ok("raftinel://node/7"), Some(CertIdentity::Node(7)));
        assert_eq!(
            ok("raftinel://admin/a_b.c"),
            Some(CertIdentity::Admin("a_b.c".into()))
        );
        for bad in [
            "raftinel://node/0",
            "raftinel://node/-1",
            "raftinel://node/+1",
            "raftinel://node/1x",
            "raftinel://node/",
            "raftinel://admin/",
            "raftinel://admin/a b",
            "raftinel://admin/../x",
            "raftinel://other/1",
        ] {
            assert!(matches!(parse_uri(bad), Some(Err(_))), "{bad}");
        }
        assert!(parse_uri("https://example.invalid/").is_none());
        assert!(!valid_admin_name(&"a".repeat(65)));
    }

    #[test]
    fn garbage_is_an_error() {
        assert_eq!(identity(&[]).unwrap_err(), CertError::Der);
        assert_eq!(
            identity(&[0x30, 0x03, 1, 2, 3]).unwrap_err(),
            CertError::Der
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = identity(&bytes);
        }

        #[test]
        fn mutated_certificates_never_panic(at in 0usize..2000, byte in any::<u8>(), cut in 0usize..2000) {
            let der = SAMPLE.with(|d| d.clone());
            let mut m = der.clone();
            let i = at % m.len();
            m[i] = byte;
            let _ = identity(&m);
            let _ = identity(&der[..cut % der.len()]);
        }
    }

    thread_local! {
        static SAMPLE: Vec<u8> = Ca::create()
            .and_then(|ca| ca.node(1, &["10.77.0.1".parse().unwrap()]))
            .map(|c| c.der)
            .unwrap();
    }
}
