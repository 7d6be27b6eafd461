//! Long scenarios as named steps: [`step`] and [`step_async`] run one step
//! (a small function the test calls in order) and, when an assertion inside
//! fails, fail again naming the step, so a report reads "step `metrics
//! carry the decisions` failed: ..." above the assertion's own message.

use futures::FutureExt;
use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;

fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| payload.downcast_ref::<&str>().copied())
        .unwrap_or("(a panic without a message)")
}

/// Runs the step `name`; a panic inside fails naming it.
pub fn step<T>(name: &str, f: impl FnOnce() -> T) -> T {
    eprintln!("step: {name}");
    match std::panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(payload) => panic!("step `{name}` failed: {}", message(payload.as_ref())),
    }
}

/// [`step`] for an async step.
pub async fn step_async<T>(name: &str, f: impl Future<Output = T>) -> T {
    eprintln!("step: {name}");
    match AssertUnwindSafe(f).catch_unwind().await {
        Ok(value) => value,
        Err(payload) => panic!("step `{name}` failed: {}", message(payload.as_ref())),
    }
}

#[test]
fn a_failing_step_is_named() {
    let failed = std::panic::catch_unwind(|| step("the answer", || assert_eq!(6 * 7, 41, "sums")));
    let payload = failed.expect_err("the step fails");
    let said = message(payload.as_ref());
    assert!(
        said.starts_with("step `the answer` failed: assertion"),
        "{said}"
    );
    assert_eq!(step("a value", || 42), 42);
}
