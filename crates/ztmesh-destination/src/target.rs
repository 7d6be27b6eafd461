//! What a proxy asks the Destination service about.

use std::net::SocketAddr;

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Target {
    /// `{name}.{ns}.svc.{cluster-domain}:{port}`.
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
    Addr(SocketAddr),
}

/// A path that names no target.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path:?} is neither ip:port nor name.namespace.svc.{cluster_domain}[:port]")]
pub struct TargetError {
    pub path: String,
    pub cluster_domain: String,
}

impl Target {
    /// Parses `svc.ns.svc.cluster.local[:port]` (port 80 by default) or `ip:port`.
    pub fn parse(path: &str, cluster_domain: &str) -> Result<Self, TargetError> {
        if let Ok(addr) = path.parse::<SocketAddr>() {
            return Ok(Self::Addr(addr));
        }
        let bad = || TargetError {
            path: path.into(),
            cluster_domain: cluster_domain.into(),
        };
        let (host, port) = match path.rsplit_once(':') {
            Some((h, p)) => (h, p.parse::<u16>().map_err(|_| bad())?),
            None => (path, 80),
        };
        let host = host.trim_end_matches('.');
        let suffix = format!(".svc.{cluster_domain}");
        let rest = host.strip_suffix(&suffix).ok_or_else(bad)?;
        let (name, namespace) = rest.split_once('.').ok_or_else(bad)?;
        if name.is_empty() || namespace.is_empty() || namespace.contains('.') || port == 0 {
            return Err(bad());
        }
        Ok(Self::Service {
            namespace: namespace.into(),
            name: name.into(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let svc = |ns: &str, name: &str, port| Target::Service {
            namespace: ns.into(),
            name: name.into(),
            port,
        };
        let cases = [
            (
                "api-server.my-app.svc.cluster.local:8080",
                Some(svc("my-app", "api-server", 8080)),
            ),
            (
                "api-server.my-app.svc.cluster.local.:8080",
                Some(svc("my-app", "api-server", 8080)),
            ),
            (
                "web.default.svc.cluster.local",
                Some(svc("default", "web", 80)),
            ),
            (
                "127.0.1.2:7001",
                Some(Target::Addr("127.0.1.2:7001".parse().unwrap())),
            ),
            ("[::1]:80", Some(Target::Addr("[::1]:80".parse().unwrap()))),
            ("api.my-app.svc.example.org:80", None),
            ("api.svc.cluster.local:80", None),
            ("a.b.c.svc.cluster.local:80", None),
            ("api.ns.svc.cluster.local:http", None),
            ("api.ns.svc.cluster.local:0", None),
            ("", None),
        ];
        for (s, want) in cases {
            assert_eq!(Target::parse(s, "cluster.local").ok(), want, "{s}");
        }
        assert_eq!(
            Target::parse("api.svc:80", "cluster.local")
                .unwrap_err()
                .to_string(),
            "\"api.svc:80\" is neither ip:port nor name.namespace.svc.cluster.local[:port]"
        );
    }
}
