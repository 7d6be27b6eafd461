//! Issuance throughput: CSR parse + signature check + sign + DER encode, the
//! work the controller does per Certify call (token checking is separate).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, SystemTime};
use ztmesh_identity::csr::validate;
use ztmesh_test_support::{TestPki, csr_for};

fn issuance(c: &mut Criterion) {
    let pki = TestPki::new();
    let ca = pki.ca(Duration::from_secs(86400));
    let id = pki.identity("payments", "api");
    let (_key, csr) = csr_for(&id.to_string());
    let verifier = pki.token_signer().verifier();
    let token = pki.token("payments", "api");

    let mut group = c.benchmark_group("identity");
    group.throughput(Throughput::Elements(1));
    group.bench_function("issue_from_csr", |b| {
        b.iter(|| {
            let now = SystemTime::now();
            let csr = validate(black_box(&csr), &id).expect("valid CSR");
            let issued = ca.issue(&id, csr.public_key(), now).expect("issued");
            black_box(issued.leaf.len())
        })
    });
    group.bench_function("verify_token", |b| {
        b.iter(|| {
            black_box(
                verifier
                    .verify(black_box(token.as_bytes()), SystemTime::now())
                    .expect("valid token"),
            )
        })
    });
    group.finish();
}

criterion_group!(benches, issuance);
criterion_main!(benches);
