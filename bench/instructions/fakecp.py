#!/usr/bin/env python3
"""Fake Linkerd control plane for bench/instructions.sh (identity, destination profile, inbound policy).

Serves plaintext gRPC on a loopback address (a mesh proxy does not use TLS towards a
control-plane address on loopback), one instance inside each pod's network namespace.

  Identity.Certify                        signs the proxy's CSR with the issuer (intermediate) in
                                          --pki and returns it as the intermediate, DER leaf with
                                          DNS SAN = requested identity, valid --lifetime seconds
  Destination.GetProfile                  for IP:PORT listed with --profile-endpoint, a profile whose
                                          `endpoint` carries the peer's TLS identity (this makes the
                                          client-side proxy originate mTLS); anything else: empty
  InboundServerPolicies.WatchPort/GetPort allow-all (unauthenticated, 0.0.0.0/0 and ::/0) with
                                          protocol detection
Other services answer UNIMPLEMENTED. The gRPC stubs are generated at run time into --gen.
"""
import argparse
import datetime
import os
import sys
import threading
import time
from concurrent import futures


def log(*a):
    print(time.strftime("%H:%M:%S"), *a, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", default="127.0.0.1:8090")
    ap.add_argument("--pki", required=True, help="dir with ca.crt, issuer.crt, issuer.key")
    ap.add_argument("--gen", required=True, help="dir with the generated *_pb2*.py stubs")
    ap.add_argument("--lifetime", type=int, default=24 * 3600)
    ap.add_argument("--profile-endpoint", action="append", default=[],
                    help="IP:PORT=IDENTITY; GetProfile answers this endpoint with this TLS identity")
    ap.add_argument("--h2-hint", action="store_true",
                    help="add protocol_hint h2 to profile endpoints (proxy-to-proxy HTTP/2 upgrade)")
    a = ap.parse_args()
    sys.path.insert(0, a.gen)

    import grpc
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    from google.protobuf import duration_pb2, timestamp_pb2

    import destination_pb2
    import destination_pb2_grpc
    import identity_pb2
    import identity_pb2_grpc
    import inbound_pb2
    import inbound_pb2_grpc
    import net_pb2

    class LogInterceptor(grpc.ServerInterceptor):
        def intercept_service(self, continuation, details):
            log("CALL", details.method)
            return continuation(details)

    class Identity(identity_pb2_grpc.IdentityServicer):
        def __init__(self, issuer_crt, issuer_key, lifetime):
            self.issuer_crt, self.issuer_key, self.lifetime = issuer_crt, issuer_key, lifetime
            self.issuer_der = issuer_crt.public_bytes(serialization.Encoding.DER)

        def Certify(self, req, ctx):
            try:
                csr = x509.load_der_x509_csr(req.certificate_signing_request)
            except ValueError:
                csr = x509.load_pem_x509_csr(req.certificate_signing_request)
            if not csr.is_signature_valid:
                ctx.abort(grpc.StatusCode.INVALID_ARGUMENT, "bad CSR signature")
            now = datetime.datetime.now(datetime.timezone.utc)
            not_after = now + datetime.timedelta(seconds=self.lifetime)
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, req.identity)]))
                .issuer_name(self.issuer_crt.subject)
                .public_key(csr.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(seconds=60))
                .not_valid_after(not_after)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(req.identity)]), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False),
                               critical=True)
                .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH,
                                                      ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
                .sign(self.issuer_key, hashes.SHA256())
            )
            ts = timestamp_pb2.Timestamp()
            ts.FromDatetime(not_after)
            log("Certify", req.identity, "-> leaf valid until", not_after.isoformat())
            return identity_pb2.CertifyResponse(
                leaf_certificate=cert.public_bytes(serialization.Encoding.DER),
                intermediate_certificates=[self.issuer_der],
                valid_until=ts,
            )

    def allow_all_server(port):
        v4 = net_pb2.IPNetwork(ip=net_pb2.IPAddress(ipv4=0), prefix_len=0)
        v6 = net_pb2.IPNetwork(ip=net_pb2.IPAddress(ipv6=net_pb2.IPv6(first=0, last=0)), prefix_len=0)
        authz = inbound_pb2.Authz(
            networks=[inbound_pb2.Network(net=v4), inbound_pb2.Network(net=v6)],
            authentication=inbound_pb2.Authn(unauthenticated=inbound_pb2.Authn.PermitUnauthenticated()),
            labels={"name": "bench-allow-all"},
        )
        return inbound_pb2.Server(
            protocol=inbound_pb2.ProxyProtocol(
                detect=inbound_pb2.ProxyProtocol.Detect(timeout=duration_pb2.Duration(seconds=10))),
            authorizations=[authz],
            labels={"name": "bench-server-%d" % port, "kind": "server", "group": "policy.linkerd.io"},
        )

    def wait_until_closed(ctx):
        ev = threading.Event()
        ctx.add_callback(ev.set)
        ev.wait()

    class Inbound(inbound_pb2_grpc.InboundServerPoliciesServicer):
        def GetPort(self, req, ctx):
            log("GetPort", req.workload, req.port)
            return allow_all_server(req.port)

        def WatchPort(self, req, ctx):
            log("WatchPort", req.workload, req.port)
            yield allow_all_server(req.port)
            wait_until_closed(ctx)

    class Destination(destination_pb2_grpc.DestinationServicer):
        def __init__(self, endpoints, h2):
            self.endpoints, self.h2 = endpoints, h2

        def GetProfile(self, req, ctx):
            ident = self.endpoints.get(req.path)
            if ident is None:
                log("GetProfile", req.path, "-> empty profile")
                yield destination_pb2.DestinationProfile()
            else:
                ip, port = req.path.rsplit(":", 1)
                a_, b_, c_, d_ = (int(x) for x in ip.split("."))
                ep = destination_pb2.WeightedAddr(
                    addr=net_pb2.TcpAddress(ip=net_pb2.IPAddress(ipv4=(a_ << 24) | (b_ << 16) | (c_ << 8) | d_),
                                            port=int(port)),
                    weight=10000,
                    tls_identity=destination_pb2.TlsIdentity(
                        dns_like_identity=destination_pb2.TlsIdentity.DnsLikeIdentity(name=ident)),
                    metric_labels={"pod": "bench-server", "namespace": "default"},
                )
                if self.h2:
                    ep.protocol_hint.CopyFrom(destination_pb2.ProtocolHint(h2=destination_pb2.ProtocolHint.H2()))
                log("GetProfile", req.path, "-> endpoint with identity", ident, "h2" if self.h2 else "")
                yield destination_pb2.DestinationProfile(endpoint=ep)
            wait_until_closed(ctx)

    with open(os.path.join(a.pki, "issuer.crt"), "rb") as f:
        issuer_crt = x509.load_pem_x509_certificate(f.read())
    with open(os.path.join(a.pki, "issuer.key"), "rb") as f:
        issuer_key = serialization.load_pem_private_key(f.read(), password=None)

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=32), interceptors=[LogInterceptor()])
    identity_pb2_grpc.add_IdentityServicer_to_server(Identity(issuer_crt, issuer_key, a.lifetime), server)
    inbound_pb2_grpc.add_InboundServerPoliciesServicer_to_server(Inbound(), server)
    eps = dict(x.split("=", 1) for x in a.profile_endpoint)
    destination_pb2_grpc.add_DestinationServicer_to_server(Destination(eps, a.h2_hint), server)
    if server.add_insecure_port(a.listen) == 0:
        log("cannot listen on", a.listen)
        sys.exit(1)
    server.start()
    log("fake control plane on", a.listen, "profiles:", eps)
    server.wait_for_termination()


if __name__ == "__main__":
    main()
