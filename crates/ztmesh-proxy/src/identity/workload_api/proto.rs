//! The X.509 part of the SPIFFE Workload API's messages
//! (`workload.proto`, which has no package: the service is
//! `SpiffeWorkloadAPI`), written from the specification as prost messages.
//! The JWT methods are not used by the proxy and not declared here.

use std::collections::HashMap;

/// The metadata every Workload API call carries; a server refuses calls
/// without it (InvalidArgument), so that a browser-style request cannot
/// reach it.
pub const SECURITY_HEADER: &str = "workload.spiffe.io";
pub const SECURITY_HEADER_VALUE: &str = "true";

pub const SERVICE: &str = "SpiffeWorkloadAPI";
pub const FETCH_X509_SVID: &str = "/SpiffeWorkloadAPI/FetchX509SVID";

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct X509SvidRequest {}

/// One message of the FetchX509SVID stream: every SVID the caller is
/// entitled to, sent again whole on each change (rotation, bundle update).
#[derive(Clone, PartialEq, ::prost::Message)]
pub struct X509SvidResponse {
    #[prost(message, repeated, tag = "1")]
    pub svids: Vec<X509Svid>,
    /// DER CRLs (unused by the proxy).
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub crl: Vec<Vec<u8>>,
    /// Other trust domains' bundles, by trust domain (federation; the
    /// proxy does not take them: a federated bundle may vouch only for its
    /// own trust domain).
    #[prost(map = "string, bytes", tag = "3")]
    pub federated_bundles: HashMap<String, Vec<u8>>,
}

#[derive(Clone, PartialEq, ::prost::Message)]
pub struct X509Svid {
    #[prost(string, tag = "1")]
    pub spiffe_id: String,
    /// The certificate chain, leaf first: DER certificates concatenated.
    #[prost(bytes = "vec", tag = "2")]
    pub x509_svid: Vec<u8>,
    /// The private key, PKCS#8 DER.
    #[prost(bytes = "vec", tag = "3")]
    pub x509_svid_key: Vec<u8>,
    /// The SVID's trust domain's bundle: DER CA certificates concatenated.
    #[prost(bytes = "vec", tag = "4")]
    pub bundle: Vec<u8>,
    /// An operator's hint to tell several SVIDs apart.
    #[prost(string, tag = "5")]
    pub hint: String,
}

#[derive(Clone, Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed DER at byte {offset}")]
pub struct DerError {
    offset: usize,
}

/// Splits concatenated DER values (certificates) into each one.
pub fn split_der(mut bytes: &[u8]) -> Result<Vec<Vec<u8>>, DerError> {
    let mut out = Vec::new();
    let mut offset = 0;
    while !bytes.is_empty() {
        let err = DerError { offset };
        // A SEQUENCE tag, then a short or long form length.
        if bytes.len() < 2 || bytes[0] != 0x30 {
            return Err(err);
        }
        let (len, header) = match bytes[1] {
            n if n < 0x80 => (usize::from(n), 2),
            n => {
                let count = usize::from(n & 0x7f);
                if count == 0 || count > 4 || bytes.len() < 2 + count {
                    return Err(err);
                }
                let len = bytes[2..2 + count]
                    .iter()
                    .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
                (len, 2 + count)
            }
        };
        let total = header.checked_add(len).ok_or(err.clone())?;
        if bytes.len() < total {
            return Err(err);
        }
        out.push(bytes[..total].to_vec());
        bytes = &bytes[total..];
        offset += total;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_der_table() {
        let short = vec![0x30, 0x02, 0xAA, 0xBB];
        let mut long = vec![0x30, 0x81, 0x80];
        long.extend(std::iter::repeat_n(0x01, 0x80));
        let both: Vec<u8> = short.iter().chain(long.iter()).copied().collect();
        let cases: [(&[u8], Result<Vec<Vec<u8>>, DerError>); 6] = [
            (&[], Ok(vec![])),
            (&short, Ok(vec![short.clone()])),
            (&both, Ok(vec![short.clone(), long.clone()])),
            (&[0x30, 0x05, 0x00], Err(DerError { offset: 0 })),
            (&[0x04, 0x00], Err(DerError { offset: 0 })),
            (&[0x30, 0x00, 0x31, 0x00], Err(DerError { offset: 2 })),
        ];
        for (i, (input, want)) in cases.into_iter().enumerate() {
            assert_eq!(split_der(input), want, "case {i}");
        }
    }

    #[test]
    fn messages_round_trip() {
        use prost::Message;
        let msg = X509SvidResponse {
            svids: vec![X509Svid {
                spiffe_id: "spiffe://example.org/web".into(),
                x509_svid: vec![1, 2],
                x509_svid_key: vec![3],
                bundle: vec![4],
                hint: "internal".into(),
            }],
            crl: vec![],
            federated_bundles: [("other.org".to_string(), vec![5])].into(),
        };
        let bytes = msg.encode_to_vec();
        assert_eq!(X509SvidResponse::decode(&bytes[..]).unwrap(), msg);
    }
}
