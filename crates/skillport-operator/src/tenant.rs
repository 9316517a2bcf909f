//! Acting for a SkillSet's namespace, never beyond it.
//!
//! The operator runs with cluster-wide rights for every tenant, so everything it reads or writes
//! *on a SkillSet's behalf* — the workload it attaches to, the Secrets it resolves with, the plan
//! ConfigMap — goes through a client that impersonates a ServiceAccount of the SkillSet's own
//! namespace: `spec.serviceAccountName`, else the operator's `--default-service-account`
//! (Flux's multi-tenancy lockdown). RBAC decides: a tenant that may not patch a Deployment or
//! get a Secret cannot make the operator do it, a change to the tenant's Role takes effect on the
//! next reconcile, and nothing depends on the admission webhook being up. The operator's own
//! rights cover only its bookkeeping: watching, the SkillSet's finalizer and status, Events.
//!
//! What a namespace grants, to let SkillSets work there: a ServiceAccount (by default
//! [`DEFAULT_SERVICE_ACCOUNT`]) bound to the ClusterRole [`TENANT_CLUSTER_ROLE`] (deploy/rbac.yaml)
//! with a RoleBinding — or a narrower Role of its own — and [`IMPERSONATOR_CLUSTER_ROLE`] bound to
//! the operator, which lets it act as that namespace's accounts and no others.

use http::{HeaderName, HeaderValue, Request};
use kube::Client;
use kube::client::Body;

use crate::api::SkillSetSpec;

/// The ServiceAccount a SkillSet acts as when it names none (`--default-service-account`).
pub const DEFAULT_SERVICE_ACCOUNT: &str = "skillport";

/// The ClusterRole deploy/ ships for tenants to bind in their namespaces.
pub const TENANT_CLUSTER_ROLE: &str = "skillport-tenant";

/// The ServiceAccount a SkillSet with `spec` acts as.
pub fn service_account<'a>(spec: &'a SkillSetSpec, default: &'a str) -> &'a str {
    spec.service_account_name.as_deref().unwrap_or(default)
}

/// The user name the API server knows ServiceAccount `namespace/name` by.
pub fn username(namespace: &str, name: &str) -> String {
    format!("system:serviceaccount:{namespace}:{name}")
}

/// A client that acts as ServiceAccount `namespace/account`: every request carries
/// `Impersonate-User`, and goes through `base`'s connections (no new pool, no new TLS session).
/// The API server adds the account's groups itself.
pub fn client(base: &Client, namespace: &str, account: &str) -> Client {
    const IMPERSONATE_USER: HeaderName = HeaderName::from_static("impersonate-user");
    // Namespace and account names are DNS names (the CRD and the API server check them), so the
    // header value is always valid; a name that is not is refused by the server, not here.
    let user = HeaderValue::from_str(&username(namespace, account))
        .unwrap_or_else(|_| HeaderValue::from_static("system:serviceaccount:invalid:invalid"));
    let base = base.clone();
    let service = tower::service_fn(move |mut request: Request<Body>| {
        let base = base.clone();
        request.headers_mut().insert(IMPERSONATE_USER, user.clone());
        async move { base.send(request).await }
    });
    Client::new(service, namespace)
}

/// Whether `err` is the API server refusing a request (RBAC).
pub fn is_forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_forbidden())
}

/// The ClusterRole a namespace binds to the operator to let it act as its ServiceAccounts.
pub const IMPERSONATOR_CLUSTER_ROLE: &str = "skillport-impersonator";

/// What to do when ServiceAccount `namespace/account` was refused something (or the operator
/// may not act as it).
pub fn grant_hint(namespace: &str, account: &str) -> String {
    format!(
        "the operator acts for this SkillSet as ServiceAccount {namespace}/{account}: grant it \
         the rights, e.g. `kubectl -n {namespace} create serviceaccount {account}`, \
         `kubectl -n {namespace} create rolebinding {account} --clusterrole={TENANT_CLUSTER_ROLE} \
         --serviceaccount={namespace}:{account}`, and let the operator act as it: `kubectl -n \
         {namespace} create rolebinding skillport-operator \
         --clusterrole={IMPERSONATOR_CLUSTER_ROLE} \
         --serviceaccount=<operator namespace>:skillport-operator`"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skill_set_acts_as_its_own_account_or_the_default() {
        let mut spec: SkillSetSpec = serde_json::from_value(
            serde_json::json!({"skills": [{"name": "a", "image": "r/a:1"}]}),
        )
        .unwrap();
        assert_eq!(service_account(&spec, "skillport"), "skillport");
        spec.service_account_name = Some("agents-bot".into());
        assert_eq!(service_account(&spec, "skillport"), "agents-bot");
        assert_eq!(
            username("team-a", "agents-bot"),
            "system:serviceaccount:team-a:agents-bot"
        );
    }
}
