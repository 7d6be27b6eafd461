//! `admin_http`: the admin listener, served a whole in-memory connection
//! ([`ztmesh_proxy::admin::Admin::serve_connection`]: hyper's HTTP/1
//! parser, then the admin's routing).
//!
//! Input: a flags byte (bit 0: the peer is loopback; bit 1: the shutdown
//! endpoint is enabled; bit 2: an identity certificate is held; bit 3: the
//! ports' policies have arrived), then the bytes the client sends before it
//! half-closes. Invariants: the connection ends without a panic and within
//! a bound; every byte the server sends is in responses (`HTTP/1.x ...`);
//! a shutdown is signalled only when the endpoint is enabled, to a loopback
//! peer, and a `POST` was sent.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use ztmesh_proxy::admin::Admin;
use ztmesh_proxy::identity::IdentityStatus;

/// Far above what one input takes; a connection still open then is a hang.
const BOUND: Duration = Duration::from_secs(5);

pub fn admin_http(data: &[u8]) {
    let Some((&flags, sent)) = data.split_first() else {
        return;
    };
    let peer: SocketAddr = if flags & 1 != 0 {
        "127.0.0.1:40000"
    } else {
        "10.0.0.9:40000"
    }
    .parse()
    .expect("an address");
    let status = if flags & 4 != 0 {
        IdentityStatus::Ready {
            expiry: SystemTime::now() + Duration::from_secs(3600),
        }
    } else {
        IdentityStatus::Pending
    };
    let (_status_tx, identity) = watch::channel(status);
    let (_policy_tx, policy_ready) = watch::channel(flags & 8 != 0);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let admin = Arc::new(Admin {
        identity,
        identity_metrics: Arc::default(),
        tcp: Arc::default(),
        http: Arc::default(),
        authz: Arc::default(),
        routes: Arc::default(),
        policy_ready,
        shutdown_enabled: flags & 2 != 0,
        shutdown,
        scrapes: Default::default(),
    });
    let received = runtime(|rt| {
        rt.block_on(async {
            let (client, server) = tokio::io::duplex(64 * 1024);
            let served = tokio::spawn(admin.serve_connection(server, peer));
            let (mut rx, mut tx) = tokio::io::split(client);
            let send = async {
                // The server may close first (a bad request): then the rest is unsent.
                if tx.write_all(sent).await.is_ok() {
                    let _ = tx.shutdown().await;
                }
            };
            let mut received = Vec::new();
            let exchange = async { tokio::join!(send, rx.read_to_end(&mut received)).1 };
            tokio::time::timeout(BOUND, exchange)
                .await
                .expect("the admin connection hung")
                .expect("reading an in-memory stream");
            served.await.expect("the admin connection task panicked");
            received
        })
    });
    assert!(
        received.is_empty() || received.starts_with(b"HTTP/1."),
        "{:?}",
        String::from_utf8_lossy(&received[..received.len().min(64)])
    );
    if *shutdown_rx.borrow() {
        assert!(flags & 3 == 3, "shutdown signalled with flags {flags:#x}");
        assert!(sent.windows(4).any(|w| w == b"POST"));
    }
}

/// One current-thread runtime per thread, reused across inputs.
fn runtime<T>(f: impl FnOnce(&tokio::runtime::Runtime) -> T) -> T {
    thread_local! {
        static RT: RefCell<Option<tokio::runtime::Runtime>> = const { RefCell::new(None) };
    }
    RT.with_borrow_mut(|rt| {
        let rt = rt.get_or_insert_with(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime")
        });
        f(rt)
    })
}
