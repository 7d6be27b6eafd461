"""An independent SPIFFE Workload API client for the e2e suite: py-spiffe.

Usage: py_spiffe_client.py SOCKET OUT_DIR
Fetches an X.509-SVID, the X.509 bundles, a JWT-SVID (audience "vault") and
the JWT bundles from SOCKET; validates the JWT-SVID with py-spiffe's own
validator against the JWT bundle and with the server's ValidateJWTSVID;
writes leaf.pem, chain.pem (the intermediates) and bundle.pem into OUT_DIR
for `openssl verify`, and prints one JSON object. On a refusal it prints
{"error": ...} with the gRPC status and exits 3.
"""

import json
import os
import sys

import grpc
from cryptography.hazmat.primitives.serialization import Encoding
from spiffe import JwtSvid, TrustDomain, WorkloadApiClient


def pem(certs):
    return b"".join(c.public_bytes(Encoding.PEM) for c in certs)


def status_of(err):
    seen = err
    while seen is not None:
        if isinstance(seen, grpc.RpcError):
            return f"{seen.code().name}: {seen.details()}"
        seen = seen.__cause__ or seen.__context__
    return f"{type(err).__name__}: {err}"


def main():
    socket, out = sys.argv[1], sys.argv[2]
    td = TrustDomain("cluster.local")
    try:
        with WorkloadApiClient(socket_path=f"unix://{socket}") as client:
            svid = client.fetch_x509_svid(timeout=20)
            bundles = client.fetch_x509_bundles(timeout=20)
            jwt = client.fetch_jwt_svid(audience={"vault"}, timeout=20)
            jwt_bundles = client.fetch_jwt_bundles(timeout=20)
            validated = JwtSvid.parse_and_validate(
                jwt.token, jwt_bundles.get_bundle_for_trust_domain(td), {"vault"}
            )
            wrong_audience = None
            try:
                JwtSvid.parse_and_validate(
                    jwt.token, jwt_bundles.get_bundle_for_trust_domain(td), {"gateway"}
                )
            except Exception as e:  # the validator must refuse it
                wrong_audience = type(e).__name__
            server_validated = client.validate_jwt_svid(jwt.token, "vault")
    except Exception as e:
        print(json.dumps({"error": status_of(e)}))
        sys.exit(3)
    with open(os.path.join(out, "leaf.pem"), "wb") as f:
        f.write(pem([svid.leaf]))
    with open(os.path.join(out, "chain.pem"), "wb") as f:
        f.write(pem(svid.cert_chain[1:]))
    bundle = bundles.get_bundle_for_trust_domain(td)
    with open(os.path.join(out, "bundle.pem"), "wb") as f:
        f.write(pem(bundle.x509_authorities))
    print(
        json.dumps(
            {
                "x509_spiffe_id": str(svid.spiffe_id),
                "chain_len": len(svid.cert_chain),
                "jwt_spiffe_id": str(jwt.spiffe_id),
                "jwt_validated_spiffe_id": str(validated.spiffe_id),
                "jwt_wrong_audience_refused": wrong_audience,
                "server_validated_spiffe_id": str(server_validated.spiffe_id),
            }
        )
    )


if __name__ == "__main__":
    main()
