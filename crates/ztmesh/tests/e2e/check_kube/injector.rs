//! A stand-in for the proxy injector (the real one is the controller's
//! webhook), so that `check`'s "injector reachable" can pass against a
//! real API server: HTTPS with the serving certificate `install
//! --kubernetes` printed, answering every AdmissionReview with a
//! JSONPatch that adds a `linkerd-proxy` container. One request per
//! connection (`Connection: close`); a thread per server, stopped on drop.

use base64::Engine;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio_rustls::rustls;

pub struct Injector {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

/// Serves on `listener` with the PEM certificate chain and key.
pub fn serve(listener: TcpListener, cert_pem: &[u8], key_pem: &[u8]) -> Injector {
    let certs = ztmesh_identity::pem::certificates(cert_pem, "tls.crt").unwrap();
    let key = ztmesh_identity::pem::private_key(key_pem, "tls.key").unwrap();
    let config = rustls::ServerConfig::builder_with_provider(ztmesh_tls::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let config = Arc::new(config);
    let addr = listener.local_addr().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    std::thread::spawn(move || {
        for tcp in listener.incoming() {
            if stopped.load(Ordering::SeqCst) {
                return;
            }
            let Ok(tcp) = tcp else { continue };
            let config = config.clone();
            std::thread::spawn(move || {
                // A failed exchange is the API server's to report.
                let _ = answer(config, tcp);
            });
        }
    });
    Injector { addr, stop }
}

impl Drop for Injector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop so that it sees the flag.
        let _ = TcpStream::connect(self.addr);
    }
}

fn answer(config: Arc<rustls::ServerConfig>, tcp: TcpStream) -> std::io::Result<()> {
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut reader = BufReader::new(&mut tls);
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body)?;
    let review: serde_json::Value = serde_json::from_slice(&body).map_err(std::io::Error::other)?;
    let patch = serde_json::json!([{
        "op": "add",
        "path": "/spec/containers/-",
        "value": {"name": "linkerd-proxy", "image": "ztmesh-test-proxy"},
    }]);
    let reply = serde_json::json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "response": {
            "uid": review["request"]["uid"],
            "allowed": true,
            "patchType": "JSONPatch",
            "patch": base64::engine::general_purpose::STANDARD.encode(patch.to_string()),
        },
    })
    .to_string();
    write!(
        tls,
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{reply}",
        reply.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()
}
