//! Prometheus metrics and the `/metrics`, `/healthz` and `/readyz` endpoints.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(String, String)>;

/// The operator's metrics.
pub struct Metrics {
    registry: Registry,
    reconciles: Counter,
    failures: Family<Labels, Counter>,
    errors: Family<Labels, Counter>,
    reconcile_seconds: Histogram,
    resolve_seconds: Histogram,
    writes: Family<Labels, Counter>,
    /// Set once SkillSets can be listed (or while a replica stands by for the Lease).
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("skillport");
        let reconciles = Counter::default();
        let failures = Family::<Labels, Counter>::default();
        let errors = Family::<Labels, Counter>::default();
        let reconcile_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 16));
        let resolve_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let writes = Family::<Labels, Counter>::default();
        registry.register("reconciles", "SkillSet reconciles", reconciles.clone());
        registry.register(
            "reconcile_failures",
            "SkillSet reconciles that ended not Ready, by reason",
            failures.clone(),
        );
        registry.register(
            "reconcile_errors",
            "SkillSet reconciles that failed with an error (retried with backoff), by kind",
            errors.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Time per reconcile",
            reconcile_seconds.clone(),
        );
        registry.register(
            "resolve_duration_seconds",
            "Time to resolve one SkillSet's tags and refs",
            resolve_seconds.clone(),
        );
        registry.register(
            "api_writes",
            "Writes to the Kubernetes API, by kind of object",
            writes.clone(),
        );
        Metrics {
            registry,
            reconciles,
            failures,
            errors,
            reconcile_seconds,
            resolve_seconds,
            writes,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, elapsed: Duration) {
        self.reconciles.inc();
        self.reconcile_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn failed(&self, reason: &str) {
        self.failures
            .get_or_create(&vec![("reason".to_owned(), reason.to_owned())])
            .inc();
    }

    /// A reconcile failed with an error of `kind` (`Api` with the HTTP code, `Client`,
    /// `Workload`, `Finalizer`).
    pub fn error(&self, kind: &str) {
        self.errors
            .get_or_create(&vec![("kind".to_owned(), kind.to_owned())])
            .inc();
    }

    pub fn resolved(&self, elapsed: Duration) {
        self.resolve_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn wrote(&self, object: &str) {
        self.writes
            .get_or_create(&vec![("object".to_owned(), object.to_owned())])
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        encode(&mut text, &self.registry).expect("writing to a String cannot fail");
        text
    }
}

/// Serves `/metrics`, `/healthz` (the process answers) and `/readyz` (SkillSets can be listed, or
/// the replica stands by) on `addr` until `shutdown` resolves.
pub async fn serve(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let router = Router::new()
        .route("/metrics", get(metrics_text))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(ready))
        .with_state(metrics);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        metrics.encode(),
    )
}

async fn ready(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    if metrics.ready.load(Ordering::SeqCst) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "SkillSets cannot be listed yet",
        )
    }
}
