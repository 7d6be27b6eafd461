//! JWT-SVIDs through the controller: the agent asks `NodeIdentity` to mint
//! them (the controller's key signs; the node holds none) and keeps the
//! trust domain's JWT bundle, fetched at first use and again when a token
//! names a key it does not hold, to validate tokens locally.

use crate::node_token::NodeToken;
use std::sync::{Arc, Mutex};
use tonic::Status;
use tonic::transport::Channel;
use ztmesh_attestation::{JwtBundle, JwtError};
use ztmesh_spiffe_api::node::node_identity_client::NodeIdentityClient;
use ztmesh_spiffe_api::node::{GetJwtBundleRequest, MintJwtSvidRequest};

/// The trust domain's JWT bundle as the controller serves it.
pub struct Bundle {
    pub trust_domain: String,
    pub jwks: Vec<u8>,
    parsed: JwtBundle,
}

pub struct JwtSource {
    client: NodeIdentityClient<Channel>,
    node_token: NodeToken,
    bundle: Mutex<Option<Arc<Bundle>>>,
}

/// A controller refusal as the workload sees it: the code, with the
/// controller's reason.
fn from_controller(s: Status) -> Status {
    Status::new(s.code(), format!("the controller refused: {}", s.message()))
}

impl JwtSource {
    pub fn new(channel: Channel, node_token: NodeToken) -> Self {
        Self {
            client: NodeIdentityClient::new(channel),
            node_token,
            bundle: Mutex::new(None),
        }
    }

    fn token(&self) -> Result<Vec<u8>, Status> {
        self.node_token
            .read()
            .map_err(|e| Status::unavailable(e.to_string()))
    }

    pub async fn mint(&self, spiffe_id: &str, audience: &[String]) -> Result<String, Status> {
        let resp = self
            .client
            .clone()
            .mint_jwt_svid(MintJwtSvidRequest {
                node_token: self.token()?,
                spiffe_id: spiffe_id.into(),
                audience: audience.to_vec(),
            })
            .await
            .map_err(from_controller)?;
        Ok(resp.into_inner().token)
    }

    /// The bundle, from the cache unless `refresh`.
    pub async fn bundle(&self, refresh: bool) -> Result<Arc<Bundle>, Status> {
        let cached = self.bundle.lock().expect("bundle lock").clone();
        if let (false, Some(b)) = (refresh, cached) {
            return Ok(b);
        }
        let resp = self
            .client
            .clone()
            .get_jwt_bundle(GetJwtBundleRequest {
                node_token: self.token()?,
            })
            .await
            .map_err(from_controller)?
            .into_inner();
        let parsed = JwtBundle::from_jwks(&resp.trust_domain, &resp.jwks)
            .map_err(|e| Status::unavailable(format!("the controller's JWT bundle: {e}")))?;
        let bundle = Arc::new(Bundle {
            trust_domain: resp.trust_domain,
            jwks: resp.jwks,
            parsed,
        });
        *self.bundle.lock().expect("bundle lock") = Some(bundle.clone());
        Ok(bundle)
    }

    /// Validates `token` for `audience` against the bundle (fetched again
    /// once if the token names an unknown key).
    pub async fn validate(
        &self,
        token: &str,
        audience: &str,
    ) -> Result<(String, serde_json::Map<String, serde_json::Value>), Status> {
        let invalid = |e: JwtError| Status::invalid_argument(e.to_string());
        match self.bundle(false).await?.parsed.validate(token, audience) {
            Err(JwtError::UnknownKey(_)) => self
                .bundle(true)
                .await?
                .parsed
                .validate(token, audience)
                .map_err(invalid),
            other => other.map_err(invalid),
        }
    }
}

/// JSON claims as a protobuf Struct (ValidateJWTSVIDResponse.claims).
pub fn to_struct(map: serde_json::Map<String, serde_json::Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(v: serde_json::Value) -> prost_types::Value {
    use prost_types::value::Kind;
    use serde_json::Value as J;
    let kind = match v {
        J::Null => Kind::NullValue(0),
        J::Bool(b) => Kind::BoolValue(b),
        J::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or_default()),
        J::String(s) => Kind::StringValue(s),
        J::Array(a) => Kind::ListValue(prost_types::ListValue {
            values: a.into_iter().map(to_value).collect(),
        }),
        J::Object(o) => Kind::StructValue(to_struct(o)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claims_become_a_struct() {
        let json: serde_json::Value = serde_json::json!({
            "sub": "spiffe://cluster.local/ns/demo/sa/web",
            "aud": ["vault"],
            "exp": 5,
            "x": {"y": null, "z": true},
        });
        let serde_json::Value::Object(map) = json else {
            unreachable!()
        };
        let s = to_struct(map);
        use prost_types::value::Kind;
        assert_eq!(
            s.fields["sub"].kind,
            Some(Kind::StringValue(
                "spiffe://cluster.local/ns/demo/sa/web".into()
            ))
        );
        assert_eq!(s.fields["exp"].kind, Some(Kind::NumberValue(5.0)));
        let Some(Kind::ListValue(aud)) = &s.fields["aud"].kind else {
            panic!("aud is a list")
        };
        assert_eq!(aud.values[0].kind, Some(Kind::StringValue("vault".into())));
        let Some(Kind::StructValue(x)) = &s.fields["x"].kind else {
            panic!("x is a struct")
        };
        assert_eq!(x.fields["y"].kind, Some(Kind::NullValue(0)));
        assert_eq!(x.fields["z"].kind, Some(Kind::BoolValue(true)));
    }
}
