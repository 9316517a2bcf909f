// Retrying one step of a skill: transient failures (the network, the server) are tried again
// with doubling waits, up to `FetchOptions::attempts` times in all, on top of the registry
// client's own per-request retries. Everything else fails at once.

use std::future::Future;
use std::time::Duration;

use crate::error::SkillError;

/// How often the current step of a skill was tried, and its latest transient error (for a
/// timeout message).
#[derive(Default)]
pub(super) struct Tries {
    pub count: u32,
    pub last: Option<String>,
}

/// How a step is retried.
#[derive(Debug, Clone, Copy)]
pub(super) struct RetryPolicy {
    /// Attempts in all (1: no retry).
    pub attempts: u32,
    /// Wait before the second attempt; doubles each time.
    pub backoff: Duration,
}

/// Runs `attempt` until it succeeds, fails for good, or has run `policy.attempts` times.
pub(super) async fn with_retries<T, F, Fut>(
    policy: RetryPolicy,
    name: &str,
    tries: &mut Tries,
    mut attempt: F,
) -> Result<T, SkillError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, SkillError>>,
{
    tries.count = 0;
    loop {
        tries.count += 1;
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(err) if err.is_transient() && tries.count < policy.attempts => {
                let wait = policy
                    .backoff
                    .saturating_mul(2u32.saturating_pow(tries.count - 1));
                tracing::warn!("skill {name:?}: {err}; trying again in {wait:?}");
                tries.last = Some(err.to_string());
                tokio::time::sleep(wait).await;
            }
            Err(err) => return Err(err),
        }
    }
}
