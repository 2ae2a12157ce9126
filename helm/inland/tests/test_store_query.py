"""The archive's services: the archiver, the query service and the storage bootstrap Job.
What they are given (the `store` section, credentials, keys, tokens, TLS), what they may
reach, and that the bootstrap runs before them, hardened like everything else."""

import json

import pytest

from conftest import (CI, all_containers, by_component, component, env_of, of_kind, pod_spec, render,
                      selects)
from test_chart import merged

PRODUCTION = [CI / "production-values.yaml"]
HOOKS = {"pre-install", "pre-upgrade", "pre-rollback"}

# The `store` section as the binary reads it (crates/inland-store/src/config.rs), from the
# production values.
PRODUCTION_STORE_ENV = {
    "INLAND__STORE__BACKEND": "s3",
    "INLAND__STORE__S3__ENDPOINT": "https://objects.dc1.inland.internal",
    "INLAND__STORE__S3__REGION": "cn-east-dc1",
    "INLAND__STORE__S3__ALLOWED_REGIONS": '["cn-east-dc1"]',
    "INLAND__STORE__S3__BUCKET": "inland-anonymized-prod",
    "INLAND__STORE__S3__PATH_STYLE": "true",
    "INLAND__STORE__S3__CA_FILE": "/etc/inland/store-ca/ca.crt",
    "INLAND__STORE__SHELF_LIFE__TELEMETRY": "180d",
    "INLAND__STORE__SHELF_LIFE__FRAMES": "14d",
    "INLAND__STORE__SHELF_LIFE__FRAME_INDEX": "14d",
    "INLAND__STORE__SHELF_LIFE__CONSENT": "2190d",
    "INLAND__STORE__SHELF_LIFE__AUDIT": "1095d",
}
SSE_C_FILE = "/etc/inland/store-sse-c/sse-c.key"


@pytest.fixture(scope="module")
def production():
    return render(PRODUCTION)


def container(workload):
    (c,) = pod_spec(workload)["containers"]
    return c


def volume_of_mount(workload, path):
    """The volume that holds the file at `path` in the workload's container."""
    c = container(workload)
    (mount,) = [m for m in c["volumeMounts"] if path.startswith(m["mountPath"].rstrip("/") + "/")]
    (volume,) = [v for v in pod_spec(workload)["volumes"] if v["name"] == mount["name"]]
    return mount, volume


def store_users(docs):
    return [by_component(docs, "Deployment", "archiver"), by_component(docs, "Deployment", "query"),
            by_component(docs, "Job", "storage-bootstrap")]


# --- the store section --------------------------------------------------------------------


def test_store_users_get_the_same_store_section(production):
    for workload in store_users(production):
        env = env_of(container(workload))
        values = {k: env[k].get("value") for k in PRODUCTION_STORE_ENV if k in env}
        assert values == PRODUCTION_STORE_ENV, workload["metadata"]["name"]


def test_no_other_service_gets_the_store_or_its_credentials(production):
    for deploy in of_kind(production, "Deployment"):
        if component(deploy) in ("archiver", "query"):
            continue
        names = set(env_of(container(deploy)))
        assert not {n for n in names if n.startswith("INLAND__STORE__") or n.startswith("AWS_")}
        mounted = {v["name"] for v in pod_spec(deploy)["volumes"]}
        assert not mounted & {"store-ca", "store-sse-c"}


def test_store_credentials_come_from_the_secret(production):
    for workload in store_users(production):
        env = env_of(container(workload))
        for name, key in [("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY_ID"),
                          ("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_ACCESS_KEY")]:
            assert "value" not in env[name]
            assert env[name]["valueFrom"]["secretKeyRef"] == {"name": "inland-store-credentials", "key": key}


def test_the_sse_c_key_is_a_file_from_its_secret(production):
    for name in ("archiver", "query"):
        deploy = by_component(production, "Deployment", name)
        env = env_of(container(deploy))
        assert env["INLAND__STORE__S3__SSE_C_KEY_FILE"]["value"] == SSE_C_FILE
        mount, volume = volume_of_mount(deploy, SSE_C_FILE)
        assert mount["readOnly"] is True
        assert volume["secret"]["secretName"] == "inland-store-sse-c"
        assert volume["secret"]["items"] == [{"key": "sse-c.key", "path": "sse-c.key"}]
        assert volume["secret"]["defaultMode"] == 0o440
    # Writing lifecycle rules needs no key: the Job never sees it.
    job = by_component(production, "Job", "storage-bootstrap")
    assert "INLAND__STORE__S3__SSE_C_KEY_FILE" not in env_of(container(job))
    assert "store-sse-c" not in {v["name"] for v in pod_spec(job)["volumes"]}


def test_the_store_ca_is_mounted_from_its_config_map(production):
    for workload in store_users(production):
        _, volume = volume_of_mount(workload, "/etc/inland/store-ca/ca.crt")
        assert volume["configMap"] == {"name": "inland-dc1-ca", "items": [{"key": "ca.crt", "path": "ca.crt"}]}


def test_without_sse_c_and_ca_nothing_is_mounted_for_them():
    docs = render()
    for workload in store_users(docs):
        env = env_of(container(workload))
        assert "INLAND__STORE__S3__SSE_C_KEY_FILE" not in env
        assert "INLAND__STORE__S3__CA_FILE" not in env
        assert not {v["name"] for v in pod_spec(workload)["volumes"]} & {"store-ca", "store-sse-c"}


def test_no_store_secret_reaches_a_config_map(production):
    text = json.dumps([c.get("data") for c in of_kind(production, "ConfigMap")])
    for word in ("AWS_SECRET_ACCESS_KEY", "AWS_ACCESS_KEY_ID", "sse_c", "token_file", "sha256"):
        assert word not in text


def test_a_bucket_that_reads_as_a_number_stays_a_string():
    # The binary's loader reads variable values as literals: 123 would be a number.
    docs = render(set_strings=["store.bucket=123"])
    env = env_of(container(by_component(docs, "Deployment", "archiver")))
    assert env["INLAND__STORE__S3__BUCKET"]["value"] == '"123"'
    env = env_of(container(by_component(render(), "Deployment", "archiver")))
    assert env["INLAND__STORE__S3__BUCKET"]["value"] == "inland-archive"


# --- the archiver ---------------------------------------------------------------------------


def test_the_archiver_is_a_kafka_stage_with_the_store(production):
    deploy = by_component(production, "Deployment", "archiver")
    c = container(deploy)
    assert c["args"] == ["archiver"]
    env = env_of(c)
    assert env["INLAND__KAFKA__BOOTSTRAP_SERVERS"]["value"].startswith("kafka-1.")
    assert env["INLAND__KAFKA__PROPERTIES__SASL_PASSWORD"]["valueFrom"]["secretKeyRef"]["name"] == "inland-kafka-sasl"
    assert [p["name"] for p in c["ports"]] == ["admin"]
    hpa = [h for h in of_kind(production, "HorizontalPodAutoscaler")
           if h["spec"]["scaleTargetRef"]["name"] == "inland-archiver"]
    assert hpa and hpa[0]["spec"]["maxReplicas"] <= 12, "more consumers than partitions sit idle"
    assert by_component(production, "PodDisruptionBudget", "archiver")
    assert not [s for s in of_kind(production, "Service")
                if component(s) == "archiver" and not s["metadata"]["name"].endswith("-metrics")]


def egress(docs, name):
    policy = by_component(docs, "NetworkPolicy", name)
    return policy["spec"]["egress"]


def test_the_archiver_reaches_the_store_and_kafka(production):
    values = merged(*PRODUCTION)["networkPolicy"]["egress"]
    rules = egress(production, "archiver")
    for key in ("dns", "kafka", "store", "otelCollector"):
        assert {"to": values[key]["to"], "ports": values[key]["ports"]} in rules, key
    assert len(rules) == 4


def test_the_query_service_reaches_the_store_never_kafka(production):
    values = merged(*PRODUCTION)["networkPolicy"]["egress"]
    rules = egress(production, "query")
    kafka = {"to": values["kafka"]["to"], "ports": values["kafka"]["ports"]}
    assert kafka not in rules
    for rule in rules:
        for peer in rule["to"]:
            assert peer not in values["kafka"]["to"]
        assert not {p["port"] for p in rule["ports"]} & {9092, 9093}
    for key in ("dns", "store", "otelCollector"):
        assert {"to": values[key]["to"], "ports": values[key]["ports"]} in rules, key
    assert len(rules) == 3


# --- the query service ------------------------------------------------------------------------


def test_the_query_service_listens_on_all_addresses_over_tls(production):
    deploy = by_component(production, "Deployment", "query")
    c = container(deploy)
    assert c["args"] == ["query"]
    assert {p["name"]: p["containerPort"] for p in c["ports"]} == {"flight": 50061, "http": 8081, "admin": 9464}
    env = {k: e.get("value") for k, e in env_of(c).items()}
    assert env["INLAND__QUERY__FLIGHT_LISTEN"] == "0.0.0.0:50061"
    assert env["INLAND__QUERY__HTTP_LISTEN"] == "0.0.0.0:8081"
    # Off loopback the binary refuses to serve tokens without TLS.
    for var, key in [("INLAND__QUERY__TLS__CERT", "tls.crt"), ("INLAND__QUERY__TLS__KEY", "tls.key")]:
        mount, volume = volume_of_mount(deploy, env[var])
        assert mount["readOnly"] is True
        assert volume["secret"]["secretName"] == "inland-query-tls"
        assert {"key": key, "path": key} in volume["secret"]["items"]
    assert env["INLAND__QUERY__LIMITS__ADMIN__MAX_ROWS"] == "2000000"
    assert env["INLAND__QUERY__LIMITS__ANALYST__TIMEOUT"] == "2m"
    assert env["INLAND__QUERY__EXPORT__K"] == "25"
    assert env["INLAND__QUERY__MEMORY_LIMIT_MIB"] == "4096"


def test_query_tokens_are_a_file_from_their_secret(production):
    deploy = by_component(production, "Deployment", "query")
    env = env_of(container(deploy))
    assert "INLAND_QUERY_TOKENS" not in env
    mount, volume = volume_of_mount(deploy, env["INLAND__QUERY__TOKEN_FILE"]["value"])
    assert mount["readOnly"] is True
    assert volume["secret"] == {"secretName": "inland-query-tokens", "defaultMode": 0o440,
                                "items": [{"key": "tokens.toml", "path": "tokens.toml"}]}


def test_the_query_service_serves_both_ports(production):
    (svc,) = [s for s in of_kind(production, "Service") if s["metadata"]["name"] == "inland-query"]
    assert svc["spec"]["type"] == "LoadBalancer"
    assert [(p["name"], p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [
        ("flight", 443, "flight"), ("http", 8443, "http")]
    assert svc["spec"]["loadBalancerSourceRanges"] == ["10.80.0.0/16"]


def test_query_ingress_comes_only_from_its_peers(production):
    values = merged(*PRODUCTION)["networkPolicy"]["ingress"]
    policy = by_component(production, "NetworkPolicy", "query")
    rules = policy["spec"]["ingress"]
    assert {"from": values["query"], "ports": [{"port": 50061, "protocol": "TCP"},
                                               {"port": 8081, "protocol": "TCP"}]} in rules
    assert {"from": values["monitoring"], "ports": [{"port": 9464, "protocol": "TCP"}]} in rules
    assert len(rules) == 2


def test_query_tmp_is_sized_for_spilling(production):
    deploy = by_component(production, "Deployment", "query")
    volumes = {v["name"]: v for v in pod_spec(deploy)["volumes"]}
    assert volumes["tmp"]["emptyDir"]["sizeLimit"] == "8Gi"
    other = by_component(production, "Deployment", "archiver")
    assert {v["name"]: v for v in pod_spec(other)["volumes"]}["tmp"]["emptyDir"]["sizeLimit"] == "64Mi"


# --- the storage bootstrap Job -----------------------------------------------------------------


def hook_of(obj):
    annotations = obj["metadata"].get("annotations", {})
    return set(annotations.get("helm.sh/hook", "").split(",")) - {""}


def test_the_bootstrap_job_runs_before_install_upgrade_and_rollback(production):
    job = by_component(production, "Job", "storage-bootstrap")
    assert hook_of(job) == HOOKS
    annotations = job["metadata"]["annotations"]
    assert set(annotations["helm.sh/hook-delete-policy"].split(",")) == {"before-hook-creation", "hook-succeeded"}
    c = container(job)
    assert c["command"] == ["/usr/local/bin/inland"] and c["args"] == ["storage", "bootstrap"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    assert job["spec"]["backoffLimit"] == 2 and job["spec"]["activeDeadlineSeconds"] == 600
    # What the Job needs exists before the release's own objects: it brings it along, as
    # hooks created first (lower weight).
    assert env_of(c)["INLAND_CONFIG"]["value"] == "/etc/inland/inland.toml"
    volumes = {v["name"]: v for v in spec["volumes"]}
    (cm,) = [m for m in of_kind(production, "ConfigMap") if m["metadata"]["name"] == volumes["config"]["configMap"]["name"]]
    (sa,) = [s for s in of_kind(production, "ServiceAccount") if s["metadata"]["name"] == spec["serviceAccountName"]]
    policy = by_component(production, "NetworkPolicy", "storage-bootstrap")
    for obj in (cm, sa, policy):
        assert hook_of(obj) == HOOKS, obj["kind"]
        assert int(obj["metadata"]["annotations"]["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert sa["automountServiceAccountToken"] is False and spec["automountServiceAccountToken"] is False
    # The same inland.toml as the services (abort_incomplete_multipart_after is part of the rules).
    (services_cm,) = [m for m in of_kind(production, "ConfigMap") if m["metadata"]["name"] == "inland-config"]
    assert cm["data"]["inland.toml"] == services_cm["data"]["inland.toml"]


def test_the_bootstrap_job_is_hardened(production):
    job = by_component(production, "Job", "storage-bootstrap")
    spec = pod_spec(job)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] > 0
    for c in all_containers(job):
        sc = c["securityContext"]
        assert sc["readOnlyRootFilesystem"] is True and sc["allowPrivilegeEscalation"] is False
        assert sc["runAsNonRoot"] is True and sc["capabilities"]["drop"] == ["ALL"]
        assert c["resources"]["limits"]["memory"]


def test_the_bootstrap_job_reaches_the_store_only(production):
    values = merged(*PRODUCTION)["networkPolicy"]["egress"]
    job = by_component(production, "Job", "storage-bootstrap")
    policy = by_component(production, "NetworkPolicy", "storage-bootstrap")
    assert selects(policy["spec"]["podSelector"], job["spec"]["template"]["metadata"]["labels"])
    # No other policy selects the Job's pod (they would add their own egress).
    for other in of_kind(production, "NetworkPolicy"):
        if other is not policy:
            assert not selects(other["spec"]["podSelector"], job["spec"]["template"]["metadata"]["labels"])
    assert policy["spec"]["ingress"] == []
    assert policy["spec"]["egress"] == [
        {"to": values["dns"]["to"], "ports": values["dns"]["ports"]},
        {"to": values["store"]["to"], "ports": values["store"]["ports"]},
    ]


@pytest.mark.parametrize("setting", [
    ["store.bootstrap.enabled=false"],
    ["archiver.enabled=false", "query.enabled=false"],
])
def test_the_bootstrap_can_be_left_out(setting):
    docs = render(set_values=setting)
    assert not [d for d in docs if hook_of(d)]
    assert not of_kind(docs, "Job")


def test_without_the_store_services_nothing_reads_the_store():
    docs = render(set_values=["archiver.enabled=false", "query.enabled=false"])
    assert {component(d) for d in of_kind(docs, "Deployment")} == {"gateway", "geofence", "anonymizer"}
    (rule,) = of_kind(docs, "PrometheusRule")
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert not names & {"InlandStorageLifecycleDrift", "InlandArchiverStalled", "InlandStoreWriteErrors",
                        "InlandQueryErrors"}
    assert all(g["rules"] for g in rule["spec"]["groups"])


def test_a_service_account_given_by_name_runs_the_job():
    docs = render(set_values=["serviceAccount.create=false", "serviceAccount.name=inland-runner"])
    job = by_component(docs, "Job", "storage-bootstrap")
    assert pod_spec(job)["serviceAccountName"] == "inland-runner"
    assert not of_kind(docs, "ServiceAccount")


# --- alerts on the archive ------------------------------------------------------------------


def test_lifecycle_drift_and_archiver_alerts_select_the_archiver(production):
    (rule,) = of_kind(production, "PrometheusRule")
    rules = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert 'job=~"inland-(archiver|query)-metrics"' in rules["InlandStorageLifecycleDrift"]
    for alert in ("InlandArchiverStalled", "InlandArchiverFlushSlow"):
        assert 'job="inland-archiver-metrics"' in rules[alert]
    metrics_services = {s["metadata"]["name"] for s in of_kind(production, "Service")
                        if s["metadata"]["labels"].get("inland-metrics") == "true"}
    assert {"inland-archiver-metrics", "inland-query-metrics"} <= metrics_services
    assert 'code=~"internal|unavailable"' in rules["InlandQueryErrors"]


def test_archiver_flush_alert_follows_the_histogram_format():
    docs = render(set_values=["prometheusRule.histogramFormat=summary"])
    (rule,) = of_kind(docs, "PrometheusRule")
    rules = {r["alert"]: r["expr"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert 'inland_archiver_flush_seconds{namespace="inland", job="inland-archiver-metrics", quantile="0.99"}' in rules["InlandArchiverFlushSlow"]
    assert "_bucket" not in rules["InlandArchiverFlushSlow"]
