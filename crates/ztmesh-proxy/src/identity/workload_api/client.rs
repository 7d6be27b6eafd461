//! A Workload API client: gRPC over the agent's Unix socket, each call with
//! the `workload.spiffe.io: true` metadata the specification requires.

use super::proto::{self, X509SvidRequest, X509SvidResponse};
use crate::identity::config::WorkloadApiAddr;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connecting to the Workload API at {}: {error}", path.display())]
    Connect {
        path: std::path::PathBuf,
        error: tonic::transport::Error,
    },
    #[error("the Workload API answered {code:?}: {message}", code = .0.code(), message = .0.message())]
    Rpc(tonic::Status),
}

/// A connection to the Workload API.
#[derive(Clone)]
pub struct WorkloadApiClient {
    grpc: tonic::client::Grpc<tonic::transport::Channel>,
}

impl WorkloadApiClient {
    pub async fn connect(addr: &WorkloadApiAddr) -> Result<Self, ClientError> {
        let path = addr.0.clone();
        let dial = path.clone();
        // The URI is not used: the connector dials the socket.
        let channel = tonic::transport::Endpoint::from_static("http://localhost")
            .connect_with_connector(tower::service_fn(move |_: http::Uri| {
                let dial = dial.clone();
                async move {
                    tokio::net::UnixStream::connect(dial)
                        .await
                        .map(hyper_util::rt::TokioIo::new)
                }
            }))
            .await
            .map_err(|error| ClientError::Connect { path, error })?;
        Ok(Self {
            grpc: tonic::client::Grpc::new(channel),
        })
    }

    /// The FetchX509SVID stream: the first message, then one per change.
    pub async fn fetch_x509_svid(
        &mut self,
    ) -> Result<tonic::codec::Streaming<X509SvidResponse>, ClientError> {
        self.grpc.ready().await.map_err(|e| {
            ClientError::Rpc(tonic::Status::unavailable(format!(
                "the Workload API is not ready: {e}"
            )))
        })?;
        let mut req = tonic::Request::new(X509SvidRequest {});
        req.metadata_mut().insert(
            proto::SECURITY_HEADER,
            tonic::metadata::MetadataValue::from_static(proto::SECURITY_HEADER_VALUE),
        );
        let path = http::uri::PathAndQuery::from_static(proto::FETCH_X509_SVID);
        self.grpc
            .server_streaming(req, path, tonic_prost::ProstCodec::default())
            .await
            .map(|rsp| rsp.into_inner())
            .map_err(ClientError::Rpc)
    }
}
