//! The controller's tap client, as linkerd-viz's tap server works: the
//! controller holds the tap identity (`linkerd-tap.{cp-ns}.serviceaccount.
//! identity.{cp-ns}.{domain}`: a short-lived certificate it issues itself
//! from its issuer, renewed at 70% of its life and when the issuer
//! changes) and opens each proxy's Tap API (mTLS on port 4190), accepting
//! any proxy whose certificate is a mesh identity of its trust domain
//! under its anchors. The CLI and the dashboard ask the controller
//! (`GET /tap`, [`super::serve`]) and hold no key.

use super::event::TapLine;
use linkerd2_proxy_api::tap::{self as proto, tap_client::TapClient};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio_rustls::rustls;
use ztmesh_identity::{Ca, Issuer, TrustDomain};

/// Why a tap could not start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TapError {
    #[error("the tap identity: {0}")]
    Name(#[from] ztmesh_identity::NameError),
    #[error("loading the issuer for the tap identity: {0}")]
    Issuer(#[from] ztmesh_identity::IssuerError),
    #[error("reading the trust anchors {}: {source}", .path.display())]
    Anchors {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the tap identity's certificate: {0}")]
    Own(#[from] ztmesh_controller::own_identity::OwnIdentityError),
    #[error("TLS: {0}")]
    Tls(#[from] ztmesh_tls::TlsError),
    #[error("TLS: {0}")]
    Rustls(#[from] rustls::Error),
    #[error("connecting to the tap API at {addr}: {source}")]
    Connect {
        addr: SocketAddr,
        source: tonic::transport::Error,
    },
    #[error("the tap API at {addr} refused: {code:?}: {message}")]
    Refused {
        addr: SocketAddr,
        code: tonic::Code,
        message: String,
    },
}

/// The tap identity and how to reach proxies with it.
pub struct Tapper {
    identity_dir: PathBuf,
    trust: TrustDomain,
    own: Mutex<crate::controller::own_identity::OwnIdentity>,
    name: String,
}

impl std::fmt::Debug for Tapper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tapper").field("name", &self.name).finish()
    }
}

/// Accepts a server whose leaf is a mesh identity of the trust domain,
/// valid under the anchors (the proxies' names are not in the index).
#[derive(Debug)]
struct MeshPeer {
    roots: Arc<rustls::RootCertStore>,
    suffix: String,
    signatures: Arc<ztmesh_tls::IdentityVerifier>,
}

impl rustls::client::danger::ServerCertVerifier for MeshPeer {
    fn verify_server_cert(
        &self,
        leaf: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        sni: &rustls::pki_types::ServerName<'_>,
        ocsp: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        let id = ztmesh_tls::peer_identity(leaf).ok_or_else(|| {
            rustls::Error::General("the proxy's certificate names no identity".into())
        })?;
        if !id.ends_with(&self.suffix) {
            return Err(rustls::Error::General(format!(
                "the proxy's identity {id} is not of this mesh (*{})",
                self.suffix
            )));
        }
        ztmesh_tls::IdentityVerifier::new(self.roots.clone(), &id)
            .map_err(|e| rustls::Error::General(e.to_string()))?
            .verify_server_cert(leaf, intermediates, sni, ocsp, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.signatures.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.signatures.supported_verify_schemes()
    }
}

impl Tapper {
    /// The tap identity of the trust domain `{control_plane_ns}.{domain}`,
    /// issued from the install in `identity_dir`.
    pub fn new(
        identity_dir: PathBuf,
        control_plane_ns: &str,
        domain: &str,
    ) -> Result<Self, TapError> {
        let trust = TrustDomain::new(control_plane_ns, domain)?;
        let name = trust.identity(control_plane_ns, "linkerd-tap")?;
        Ok(Self {
            identity_dir,
            name: name.to_string(),
            own: Mutex::new(crate::controller::own_identity::OwnIdentity::new(name)?),
            trust,
        })
    }

    /// The tap identity's name (the proxies' `LINKERD2_PROXY_TAP_SVC_NAME`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Who may answer: any proxy of the trust domain, under `roots`.
    fn mesh_peer(&self, roots: Arc<rustls::RootCertStore>) -> Result<Arc<MeshPeer>, TapError> {
        Ok(Arc::new(MeshPeer {
            signatures: ztmesh_tls::IdentityVerifier::new(roots.clone(), &self.name)?,
            roots,
            suffix: format!(".serviceaccount.identity.{}", self.trust),
        }))
    }

    /// A client config presenting the tap identity (renewed when due).
    fn tls(&self) -> Result<Arc<rustls::ClientConfig>, TapError> {
        let now = SystemTime::now();
        let issuer = Issuer::load_dir(&self.identity_dir, now)?;
        let ca = Ca::new(issuer, self.trust.clone(), Duration::from_secs(3600));
        let store = {
            let mut own = self.own.lock().expect("tap identity lock");
            own.refresh(&ca, now)?;
            own.store()
        };
        let path = self
            .identity_dir
            .join(ztmesh_identity::install::ANCHORS_FILE);
        let anchors = std::fs::read(&path).map_err(|source| TapError::Anchors { path, source })?;
        let verifier = self.mesh_peer(ztmesh_tls::roots_from_pem(&anchors)?)?;
        let mut config = rustls::ClientConfig::builder_with_provider(ztmesh_tls::provider())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_client_cert_resolver(store);
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }

    /// Observes the proxy at `proxy` (its Tap API) for `workload`, sending
    /// each HTTP event to `out` until the limit, the proxy ends the
    /// stream, or `out` is closed.
    pub async fn observe(
        &self,
        workload: String,
        proxy: SocketAddr,
        request: proto::ObserveRequest,
        out: tokio::sync::mpsc::Sender<TapLine>,
    ) -> Result<(), TapError> {
        let config = self.tls()?;
        let server = ztmesh_tls::server_name(&self.name)?;
        let connector = tower::service_fn(move |_: http::Uri| {
            let (config, server) = (config.clone(), server.clone());
            async move {
                let tcp = tokio::net::TcpStream::connect(proxy).await?;
                let tls = tokio_rustls::TlsConnector::from(config)
                    .connect(server, tcp)
                    .await?;
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(tls))
            }
        });
        let channel = tonic::transport::Endpoint::from_static("http://tap")
            .connect_timeout(Duration::from_secs(5))
            .connect_with_connector(connector)
            .await
            .map_err(|source| TapError::Connect {
                addr: proxy,
                source,
            })?;
        let refused = |s: tonic::Status| TapError::Refused {
            addr: proxy,
            code: s.code(),
            message: s.message().to_string(),
        };
        let mut stream = TapClient::new(channel)
            .observe(request)
            .await
            .map_err(refused)?
            .into_inner();
        loop {
            tokio::select! {
                message = stream.message() => match message.map_err(refused)? {
                    Some(event) => {
                        if let Some(line) = TapLine::from_proto(&workload, &event)
                            && out.send(line).await.is_err()
                        {
                            return Ok(());
                        }
                    }
                    None => return Ok(()),
                },
                _ = out.closed() => return Ok(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls::client::danger::ServerCertVerifier;
    use ztmesh_identity::install::{InstallOptions, install};

    #[test]
    fn the_tap_identity_reaches_the_proxies_of_its_mesh_only() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("identity");
        let now = SystemTime::now();
        install(&dir, &InstallOptions::default(), now).unwrap();
        let tapper = Tapper::new(dir.clone(), "linkerd", "cluster.local").unwrap();
        assert_eq!(
            tapper.name(),
            "linkerd-tap.linkerd.serviceaccount.identity.linkerd.cluster.local"
        );
        tapper.tls().expect("a client config with the tap identity");
        // A proxy's leaf for `sa` in the trust domain `cp.cluster.local`,
        // from the install's issuer.
        let leaf = |cp: &str, sa: &str| {
            let trust = TrustDomain::new(cp, "cluster.local").unwrap();
            let issuer = Issuer::load_dir(&dir, now).unwrap();
            let ca = Ca::new(issuer, trust.clone(), Duration::from_secs(3600));
            let mut own = crate::controller::own_identity::OwnIdentity::new(
                trust.identity("booksapp", sa).unwrap(),
            )
            .unwrap();
            own.refresh(&ca, now).unwrap();
            own.store().get().unwrap().cert.clone()
        };
        let anchors = std::fs::read(dir.join(ztmesh_identity::install::ANCHORS_FILE)).unwrap();
        let verifier = tapper
            .mesh_peer(ztmesh_tls::roots_from_pem(&anchors).unwrap())
            .unwrap();
        let sni = ztmesh_tls::server_name(tapper.name()).unwrap();
        let verify = |chain: &[rustls::pki_types::CertificateDer<'static>]| {
            verifier.verify_server_cert(
                &chain[0],
                &chain[1..],
                &sni,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
        };
        // (trust domain's namespace, service account, accepted)
        let cases = [("linkerd", "authors", true), ("other", "authors", false)];
        for (cp, sa, accepted) in cases {
            let got = verify(&leaf(cp, sa));
            assert_eq!(got.is_ok(), accepted, "{cp} {sa}: {got:?}");
        }
        let err = verify(&leaf("other", "authors")).unwrap_err().to_string();
        assert!(err.contains("is not of this mesh"), "{err}");
    }
}
