"""What an SRE relies on in every rendering of the chart (defaults and ci/ values), and
that bad values fail at install time with a message that says what is wrong."""

import ipaddress
import json
import re
import tomllib
from pathlib import Path

import jsonschema

import pytest
import yaml

from conftest import (CHART, CI, TEST_VALUES, all_containers, component, helm_template, of_kind,
                      pod_spec, render, selects, workloads)

SERVICES = ["gateway", "geofence", "anonymizer", "archiver", "query"]
# The services that talk to Kafka (the query service reads the store only).
KAFKA_SERVICES = ["gateway", "geofence", "anonymizer", "archiver"]
# The stateless stages: autoscaled with the topics' partitions.
STAGES = ["gateway", "geofence", "anonymizer", "archiver"]
# Container ports each service serves besides the admin port.
SERVED = {"gateway": {50051}, "query": {50061, 8081}}
ANYWHERE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


# --- every container is hardened ---------------------------------------------------------


def test_a_deployment_per_service(manifests):
    assert sorted(component(d) for d in of_kind(manifests, "Deployment")) == sorted(SERVICES)


def test_every_container_has_the_security_context(manifests):
    assert of_kind(manifests, "Job"), "the storage bootstrap Job is rendered by default"
    for deploy in workloads(manifests):
        pod = pod_spec(deploy)
        psc = pod["securityContext"]
        assert psc["runAsNonRoot"] is True
        assert psc["runAsUser"] > 0
        assert psc["seccompProfile"]["type"] == "RuntimeDefault"
        assert pod["automountServiceAccountToken"] is False
        for c in all_containers(deploy):
            where = f"{deploy['metadata']['name']}/{c['name']}"
            sc = c.get("securityContext")
            assert sc, f"{where} has no securityContext"
            assert sc["runAsNonRoot"] is True, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc.get("privileged", False) is False, where
            assert "ALL" in sc["capabilities"]["drop"], where
            assert not sc["capabilities"].get("add"), where
            assert sc["seccompProfile"]["type"] == "RuntimeDefault", where


def test_tmp_is_an_empty_dir(manifests):
    for deploy in workloads(manifests):
        volumes = {v["name"]: v for v in pod_spec(deploy)["volumes"]}
        for c in pod_spec(deploy)["containers"]:
            tmp = [m for m in c["volumeMounts"] if m["mountPath"] == "/tmp"]
            assert len(tmp) == 1, c["name"]
            assert "emptyDir" in volumes[tmp[0]["name"]]


def test_every_container_has_liveness_and_readiness_probes(manifests):
    for deploy in of_kind(manifests, "Deployment"):
        for c in pod_spec(deploy)["containers"]:
            ports = {p["name"]: p["containerPort"] for p in c["ports"]}
            assert ports["admin"] == 9464
            for probe, path in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz"),
                                ("startupProbe", "/healthz")]:
                assert c[probe]["httpGet"] == {"path": path, "port": "admin"}, (c["name"], probe)


def test_every_container_has_resources(manifests):
    for deploy in workloads(manifests):
        for c in pod_spec(deploy)["containers"]:
            assert c["resources"]["requests"]["cpu"] and c["resources"]["requests"]["memory"]
            assert c["resources"]["limits"]["memory"]


def test_services_run_their_subcommand_with_json_logs_and_the_config_file(manifests):
    for deploy in of_kind(manifests, "Deployment"):
        c = pod_spec(deploy)["containers"][0]
        assert c["command"] == ["/usr/local/bin/inland"]
        assert c["args"] == [component(deploy)]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert env["INLAND_CONFIG"] == "/etc/inland/inland.toml"
        assert env["INLAND__OBSERVABILITY__LOG_FORMAT"] == "json"
        assert env["INLAND__OBSERVABILITY__ADMIN_LISTEN"] == "0.0.0.0:9464"
        if component(deploy) in KAFKA_SERVICES:
            assert env["INLAND__KAFKA__BOOTSTRAP_SERVERS"]
        else:
            assert not [n for n in env if n.startswith("INLAND__KAFKA__")], component(deploy)
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/inland/inland.toml"]["readOnly"] is True


def test_topology_spread_selects_the_service(manifests):
    for deploy in of_kind(manifests, "Deployment"):
        tsc = pod_spec(deploy)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in tsc} >= {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in tsc:
            assert c["labelSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]


# --- network policies ------------------------------------------------------------------


def test_a_network_policy_for_every_workload(manifests):
    policies = of_kind(manifests, "NetworkPolicy")
    for deploy in workloads(manifests):
        labels = deploy["spec"]["template"]["metadata"]["labels"]
        mine = [p for p in policies if selects(p["spec"]["podSelector"], labels)]
        assert len(mine) == 1, deploy["metadata"]["name"]
        assert set(mine[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}


def test_no_egress_rule_allows_anywhere(manifests):
    for policy in of_kind(manifests, "NetworkPolicy"):
        for rule in policy["spec"]["egress"]:
            # A rule without peers allows every destination.
            assert rule.get("to"), f"{policy['metadata']['name']}: egress rule without `to`"
            assert rule.get("ports"), f"{policy['metadata']['name']}: egress rule without ports"
            for peer in rule["to"]:
                if "ipBlock" in peer:
                    net = ipaddress.ip_network(peer["ipBlock"]["cidr"], strict=False)
                    assert net not in ANYWHERE, f"{policy['metadata']['name']} allows {net}"
                    assert net.prefixlen > 0


def test_ingress_only_to_served_ports(manifests):
    for policy in of_kind(manifests, "NetworkPolicy"):
        name = component(policy)
        if name == "storage-bootstrap":
            assert policy["spec"]["ingress"] == []
            continue
        allowed = {9464} | SERVED.get(name, set())
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress rule without `from`"
            assert {p["port"] for p in rule["ports"]} <= allowed


def test_egress_to_dns_and_the_broker(manifests):
    for policy in of_kind(manifests, "NetworkPolicy"):
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert 53 in ports
        if component(policy) in KAFKA_SERVICES:
            assert ports & {9092, 9093}, component(policy)
        else:
            assert not ports & {9092, 9093}, component(policy)


# --- services, autoscaling, disruption ------------------------------------------------


def test_gateway_service_serves_grpc_and_metrics_stay_internal(manifests):
    services = {s["metadata"]["name"]: s for s in of_kind(manifests, "Service")}
    gateway = services["inland-gateway"]
    assert [p["targetPort"] for p in gateway["spec"]["ports"]] == ["grpc"]
    for deploy in of_kind(manifests, "Deployment"):
        metrics = services[deploy["metadata"]["name"] + "-metrics"]
        assert metrics["spec"]["type"] == "ClusterIP"
        assert [p["port"] for p in metrics["spec"]["ports"]] == [9464]


def test_hpa_and_pdb_for_the_stateless_services(manifests):
    hpas = {h["spec"]["scaleTargetRef"]["name"]: h for h in of_kind(manifests, "HorizontalPodAutoscaler")}
    pdbs = {component(p) for p in of_kind(manifests, "PodDisruptionBudget")}
    for name in STAGES:
        assert f"inland-{name}" in hpas
    for name in SERVICES:
        assert name in pdbs
    for deploy in of_kind(manifests, "Deployment"):
        hpa = hpas.get(deploy["metadata"]["name"])
        if hpa:
            assert "replicas" not in deploy["spec"], "the HPA owns the replica count"
        if component(deploy) == "query":
            # A rollout or a node drain never takes SQL away.
            assert (hpa["spec"]["minReplicas"] if hpa else deploy["spec"]["replicas"]) >= 2


# --- configuration and secrets ---------------------------------------------------------


def test_config_map_is_valid_toml(manifests):
    (cm,) = [c for c in of_kind(manifests, "ConfigMap") if c["metadata"]["name"] == "inland-config"]
    config = tomllib.loads(cm["data"]["inland.toml"])
    assert config["kafka"]["properties"]["security.protocol"]
    for deploy in of_kind(manifests, "Deployment"):
        annotations = deploy["spec"]["template"]["metadata"]["annotations"]
        assert len(annotations["checksum/config"]) == 64


def test_integers_stay_integers_in_the_toml():
    docs = render([CI / "production-values.yaml"])
    (cm,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "inland-config"]
    config = tomllib.loads(cm["data"]["inland.toml"])
    assert config["topics"]["partitions"] == 12 and isinstance(config["topics"]["partitions"], int)
    assert config["topics"]["create_on_start"] is False
    assert config["kafka"]["properties"] == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "inland",
        "ssl.ca.location": "/etc/inland/kafka-ca/ca.crt",
        "socket.keepalive.enable": "true",
    }


def test_no_secret_is_rendered_only_referenced(manifests):
    assert not of_kind(manifests, "Secret")
    for deploy in workloads(manifests):
        spec = pod_spec(deploy)
        secret_volumes = {v["name"] for v in spec["volumes"] if "secret" in v}
        for c in all_containers(deploy):
            secret_dirs = [m["mountPath"] for m in c.get("volumeMounts", []) if m["name"] in secret_volumes]
            for e in c.get("env", []):
                lowered = e["name"].lower()
                if not any(w in lowered for w in ("password", "secret", "token", "key_id", "sse_c")):
                    continue
                if lowered.endswith("_file"):
                    # A path: it must lead into a Secret's volume.
                    assert any(e["value"].startswith(d + "/") for d in secret_dirs), e
                else:
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e["name"]


def test_production_references_every_secret():
    docs = render([CI / "production-values.yaml"])
    secrets, config_maps = set(), set()
    for deploy in workloads(docs):
        spec = pod_spec(deploy)
        secrets |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        config_maps |= {v["configMap"]["name"] for v in spec["volumes"] if "configMap" in v}
        for c in spec["containers"]:
            secrets |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert secrets == {"inland-gateway-tls", "inland-fleet-ca", "inland-zones", "inland-pseudonym-keys",
                       "inland-kafka-sasl", "inland-kafka-ca", "inland-store-credentials",
                       "inland-store-sse-c", "inland-query-tokens", "inland-query-tls"}
    assert config_maps == {"inland-config", "inland-storage-bootstrap", "inland-dc1-ca"}


def test_anonymizer_models_volume_and_init_container():
    docs = render([CI / "production-values.yaml"])
    (deploy,) = [d for d in of_kind(docs, "Deployment") if component(d) == "anonymizer"]
    spec = pod_spec(deploy)
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["models"] == {"name": "models", "emptyDir": {"sizeLimit": "512Mi"}}
    (init,) = spec["initContainers"]
    assert init["securityContext"]["readOnlyRootFilesystem"] is True
    env = {e["name"]: e.get("value") for e in spec["containers"][0]["env"]}
    assert env["INLAND__ANONYMIZER__VISION__MODELS_DIR"] == "/models"
    assert env["INLAND__ANONYMIZER__VISION__ORT_DYLIB"] == "/models/libonnxruntime.so.1.31.1"
    assert env["INLAND__ANONYMIZER__KEY_FILE"] == "/etc/inland/keys/keys.toml"


def test_frames_drop_needs_no_models():
    docs = render(set_values=["anonymizer.frames=drop", "anonymizer.models.existingClaim="])
    (deploy,) = [d for d in of_kind(docs, "Deployment") if component(d) == "anonymizer"]
    assert "models" not in {v["name"] for v in pod_spec(deploy)["volumes"]}


def test_zone_file_from_values_creates_its_config_map():
    docs = render([CI / "default-values.yaml"])
    (zones,) = [c for c in of_kind(docs, "ConfigMap") if c["metadata"]["name"] == "inland-zones"]
    assert json.loads(zones["data"]["zones.geojson"])["type"] == "FeatureCollection"


# --- monitoring ------------------------------------------------------------------------


def test_service_monitor_scrapes_every_metrics_service(manifests):
    (sm,) = of_kind(manifests, "ServiceMonitor")
    selector = sm["spec"]["selector"]
    scraped = [s for s in of_kind(manifests, "Service") if selects(selector, s["metadata"]["labels"])]
    assert sorted(s["metadata"]["name"] for s in scraped) == sorted(
        d["metadata"]["name"] + "-metrics" for d in of_kind(manifests, "Deployment"))
    assert sm["spec"]["endpoints"][0]["path"] == "/metrics"


def test_prometheus_rule_has_every_alert(manifests):
    (rule,) = of_kind(manifests, "PrometheusRule")
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert set(rules) == {
        "InlandStageConsumerLagHigh", "InlandStageDeadLetters", "InlandAnonymizerFailures",
        "InlandGatewayAckLatencyHigh", "InlandGeofenceDropRateSpike",
        "InlandStorageLifecycleDrift", "InlandArchiverStalled", "InlandArchiverFlushSlow",
        "InlandStoreWriteErrors", "InlandQueryErrors", "InlandTargetDown",
    }
    for metric, alert in [
        ("inland_stage_consumer_lag_records", "InlandStageConsumerLagHigh"),
        ("inland_gateway_ack_latency_seconds", "InlandGatewayAckLatencyHigh"),
        ("inland_geofence_dropped_total", "InlandGeofenceDropRateSpike"),
        ("inland_stage_records_dead_lettered_total", "InlandStageDeadLetters"),
        ("inland_anonymizer_records_total", "InlandAnonymizerFailures"),
        ("inland_storage_lifecycle_drift", "InlandStorageLifecycleDrift"),
        ("inland_archiver_records_total", "InlandArchiverStalled"),
        ("inland_stage_consumer_lag_records", "InlandArchiverStalled"),
        ("inland_archiver_flush_seconds", "InlandArchiverFlushSlow"),
        ("inland_store_errors_total", "InlandStoreWriteErrors"),
        ("inland_store_put_seconds", "InlandStoreWriteErrors"),
        ("inland_query_errors_total", "InlandQueryErrors"),
    ]:
        assert metric in rules[alert]["expr"]
        assert 'namespace="inland"' in rules[alert]["expr"]


def test_alerts_are_toggleable():
    docs = render(set_values=["prometheusRule.alerts.dropRateSpike.enabled=false",
                              "prometheusRule.alerts.lifecycleDrift.enabled=false"])
    (rule,) = of_kind(docs, "PrometheusRule")
    names = {r["alert"] for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "InlandGeofenceDropRateSpike" not in names and "InlandStorageLifecycleDrift" not in names
    assert "InlandStageConsumerLagHigh" in names
    assert all(g["rules"] for g in rule["spec"]["groups"])


def test_histogram_format_switches_the_latency_query():
    docs = render(set_values=["prometheusRule.histogramFormat=histogram"])
    (rule,) = of_kind(docs, "PrometheusRule")
    rules = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"]}
    assert "histogram_quantile(0.99" in rules["InlandGatewayAckLatencyHigh"]["expr"]


def test_grafana_dashboard(manifests):
    (cm,) = [c for c in of_kind(manifests, "ConfigMap") if c["metadata"]["name"] == "inland-dashboard"]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    dash = json.loads(cm["data"]["inland-overview.json"])
    exprs = " ".join(t["expr"] for p in dash["panels"] for t in p.get("targets", []))
    for metric in ["inland_gateway_uploads_total", "inland_stage_records_consumed_total",
                   "inland_stage_commit_lag_records", "inland_geofence_dropped_total",
                   "inland_gateway_ack_latency_seconds", "inland_archiver_records_total",
                   "inland_archiver_object_bytes_total", "inland_archiver_flush_seconds_bucket",
                   "inland_store_put_seconds_bucket", "inland_store_errors_total",
                   "inland_query_latency_seconds_bucket", "inland_query_errors_total"]:
        assert metric in exprs
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"


# --- bad values fail at install time, saying what is wrong ------------------------------


def fails(values_files=(), set_values=()):
    proc = helm_template(values_files, set_values, check=False)
    assert proc.returncode != 0, "helm template accepted values it should refuse"
    return proc.stderr


def test_a_region_outside_the_country_fails_the_schema_check():
    err = fails([CI / "production-values.yaml", TEST_VALUES / "non-in-country-region.yaml"])
    assert "values don't meet the specifications of the schema" in err
    assert "/store/region" in err
    assert "eu-central-1" in err
    assert "cn-north-1" in err and "^cn-[a-z0-9-]+$" in err


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1", "cn-inland-1", "cn-east-dc1"])
def test_in_country_regions_pass(region):
    render([CI / "production-values.yaml"], [f"store.region={region}", f"store.allowedRegions={{{region}}}"])


def test_a_region_off_the_region_lock_fails():
    # In the country, but not in store.allowedRegions: the binary would refuse to start.
    err = fails([CI / "production-values.yaml"], ["store.region=cn-north-1"])
    assert 'store.region "cn-north-1" is not in store.allowedRegions [cn-east-dc1]' in err


@pytest.mark.parametrize("setting, words", [
    (["securityContext.readOnlyRootFilesystem=false"], ["/securityContext/readOnlyRootFilesystem"]),
    (["securityContext.allowPrivilegeEscalation=true"], ["/securityContext/allowPrivilegeEscalation"]),
    (["podSecurityContext.runAsUser=0"], ["/podSecurityContext/runAsUser"]),
    (["networkPolicy.egress.kafka.to[0].ipBlock.cidr=0.0.0.0/0"], ["/networkPolicy/egress/kafka/to/0"]),
    (["kafka.securityProtocol=SASL_SSL"], ["/kafka/sasl"]),
    (["kafka.securityProtocol=TLS"], ["/kafka/securityProtocol"]),
    (["kafka.properties.sasl\\.password=hunter2"], ["/kafka/properties"]),
    (["store.endpoint=http://minio.local:9000"], ["/store/endpoint"]),
    (["store.endpoint=https://s3.cn-north-1.amazonaws.com.cn/inland-archive"], ["/store/endpoint"]),
    (["store.endpoint=https://key:secret@s3.cn-north-1.amazonaws.com.cn"], ["/store/endpoint"]),
    (["store.endpoint="], ["/store/endpoint", "minLength"]),
    (["store.allowedRegions={cn-north-1,eu-west-1}"], ["/store/allowedRegions/1"]),
    (["store.allowedRegions=null"], ["/store", "allowedRegions"]),
    (["store.bucket=Inland_Archive"], ["/store/bucket"]),
    (["store.bucket=in..land"], ["/store/bucket"]),
    (["store.shelfLife.telemetry=36h"], ["/store/shelfLife/telemetry"]),
    (["store.shelfLife.frames=0d"], ["/store/shelfLife/frames"]),
    (["store.shelfLife.frameIndex=60d"], ["store.shelfLife.frameIndex (60d) is longer than store.shelfLife.frames (30d)"]),
    (["store.existingSecret="], ["/store/existingSecret"]),
    (["store.ca.existingSecret=a", "store.ca.existingConfigMap=b"], ["store.ca: give existingSecret or existingConfigMap"]),
    (["store.bucket=192.168.1.1"], ["/store/bucket"]),
    (["store.sseC.existingSecret=Bad_Name"], ["/store/sseC/existingSecret"]),
    (["query.replicaCount=1"], ["/query/replicaCount"]),
    (["query.autoscaling.enabled=true", "query.autoscaling.minReplicas=1"], ["/query/autoscaling"]),
    (["query.tls.existingSecret="], ["/query/tls/existingSecret"]),
    (["query.existingSecret="], ["/query/existingSecret"]),
    (["query.export.k=1"], ["/query/export/k"]),
    (["query.limits.analyst.maxRows=0"], ["/query/limits/analyst/maxRows"]),
    (["query.limits.admin.timeout=forever"], ["/query/limits/admin/timeout"]),
    (["query.httpPort=9464"], ["query.flightPort (50061), query.httpPort (9464) and admin.port (9464) must differ"]),
    (["query.service.httpPort=50061"], ["query.service.flightPort and query.service.httpPort are both 50061"]),
    (["networkPolicy.ingress.query[0].ipBlock.cidr=0.0.0.0/0"], ["/networkPolicy/ingress/query/0"]),
    (["config.store.s3.bucket=other"], ["/config/store/s3/bucket"]),
    (["config.query.token_file=/tmp/tokens.toml"], ["/config/query/token_file"]),
    (["prometheusRule.alerts.storeWriteErrors.ratio=2"], ["/prometheusRule/alerts/storeWriteErrors/ratio"]),
    (["gateway.service.type=Ingress"], ["/gateway/service/type"]),
    (["anonymizer.frames=blur"], ["/anonymizer/frames"]),
    (["gatway.enabled=false"], ["gatway"]),
    (["geofence.zones.existingConfigMap="], ["/geofence/zones"]),
    (["anonymizer.models.existingClaim="], ["/anonymizer/models/existingClaim", "/anonymizer/models/volume"]),
    (["anonymizer.models.volume.emptyDir.medium=Memory",
      "anonymizer.models.volume.hostPath.path=/models"], ["/anonymizer/models/volume"]),
    (["gateway.resources.requests=null"], ["/gateway/resources"]),
])
def test_bad_values_fail_with_the_field_named(setting, words):
    err = fails(set_values=setting)
    for w in words:
        assert w in err, err


def test_bad_zone_file_fails():
    err = fails([TEST_VALUES / "bad-zone-file.yaml"])
    assert "not a GeoJSON FeatureCollection" in err


# --- the values files against the schema, without helm -----------------------------------


def merged(*files):
    """Values as helm merges them: the chart's defaults, then each file (maps deep-merged)."""
    def merge(base, over):
        for k, v in over.items():
            if isinstance(v, dict) and isinstance(base.get(k), dict):
                merge(base[k], v)
            elif v is None:
                base.pop(k, None)
            else:
                base[k] = v
        return base
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    for f in files:
        merge(values, yaml.safe_load(Path(f).read_text()) or {})
    return values


SCHEMA = json.loads((CHART / "values.schema.json").read_text())


@pytest.mark.parametrize("files", [[], [CI / "default-values.yaml"], [CI / "production-values.yaml"]])
def test_values_files_match_the_schema(files):
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(merged(*files)))
    assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]


def test_the_schema_refuses_a_region_outside_the_country():
    values = merged(CI / "production-values.yaml", TEST_VALUES / "non-in-country-region.yaml")
    errors = list(jsonschema.Draft7Validator(SCHEMA).iter_errors(values))
    assert [list(e.path) for e in errors] == [["store", "region"]]


# --- alerts and dashboard watch metrics the code exports ---------------------------------

REPO = CHART.parent.parent


def test_alerts_and_dashboard_use_metrics_the_code_defines():
    source = " ".join(p.read_text() for p in REPO.glob("crates/*/src/**/*.rs"))
    defined = set(re.findall(r'"(inland_[a-z0-9_]+)"', source))
    docs = render()
    (rule,) = of_kind(docs, "PrometheusRule")
    text = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    text += (CHART / "dashboards" / "inland-overview.json").read_text()
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"inland_[a-z0-9_]+", text)}
    assert used and used <= defined, f"not defined in crates/: {sorted(used - defined)}"


# --- what the chart sets, the binary reads ------------------------------------------------

STRUCT = re.compile(r"pub struct (\w+)\s*\{(.*?)\n\}", re.S)
FIELD = re.compile(r"^\s*pub ([a-z_][a-z0-9_]*):\s*([^\n]+?),?\s*$", re.M)
MAP_TYPES = {"BTreeMap", "HashMap", "IndexMap"}
# Sections the chart sets whose crates define them, while inland-cli's InlandConfig does not
# compose them yet (test_the_binary_composes_every_section_the_chart_sets says which).
SECTION_TYPES = {"store": ("inland-store", "StoreConfig"),
                 "archiver": ("inland-archiver", "ArchiverConfig"),
                 "query": ("inland-query", "QueryConfig")}


def rust_structs():
    """{crate: {struct: {field: type}}} of every `pub struct` in crates/."""
    structs = {}
    for path in sorted(REPO.glob("crates/*/src/**/*.rs")):
        crate = path.relative_to(REPO).parts[1]
        for name, body in STRUCT.findall(path.read_text()):
            structs.setdefault(crate, {}).setdefault(name, dict(FIELD.findall(body)))
    return structs


STRUCTS = rust_structs()


def resolve(ty, crate):
    """What a field's type is: ("map", None), ("struct", (crate, name)) or ("leaf", None)."""
    ty = ty.strip()
    while (m := re.fullmatch(r"(?:[\w:]*::)?(?:Option|Box)<(.*)>", ty)):
        ty = m.group(1).strip()
    outer = re.match(r"(?:[\w:]*::)?(\w+)", ty).group(1)
    if outer in MAP_TYPES:
        return "map", None
    if outer in STRUCTS.get(crate, {}):
        return "struct", (crate, outer)
    owners = [c for c, s in STRUCTS.items() if outer in s]
    return ("struct", (owners[0], outer)) if len(owners) == 1 else ("leaf", None)


def top_level_fields():
    fields = dict(STRUCTS["inland-cli"]["InlandConfig"])
    for section, (crate, name) in SECTION_TYPES.items():
        fields.setdefault(section, f"{crate}::{name}")
    return fields


def names_a_field(path):
    """Whether the config path (lower-case segments) names a field of the binary's config."""
    crate, fields = "inland-cli", top_level_fields()
    for i, segment in enumerate(path):
        if segment not in fields:
            return False
        ty = fields[segment]
        if i == 0 and segment in SECTION_TYPES and "::" in ty:
            kind, target = "struct", SECTION_TYPES[segment]
        else:
            kind, target = resolve(ty, crate)
        if kind == "map":
            return True
        if kind == "leaf":
            return i == len(path) - 1
        crate, fields = target[0], STRUCTS[target[0]][target[1]]
    return True


def config_paths(table, prefix=()):
    for k, v in table.items():
        if isinstance(v, dict) and v:
            yield from config_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def rendered_settings(docs):
    paths = []
    for workload in workloads(docs):
        for c in pod_spec(workload)["containers"]:
            for e in c["env"]:
                if e["name"].startswith("INLAND__"):
                    paths.append(tuple(e["name"][len("INLAND__"):].lower().split("__")))
    for cm in of_kind(docs, "ConfigMap"):
        if "inland.toml" in cm.get("data", {}):
            paths += list(config_paths(tomllib.loads(cm["data"]["inland.toml"])))
    return paths


def test_the_field_walk_can_fail():
    assert names_a_field(("store", "s3", "endpoint"))
    assert names_a_field(("kafka", "properties", "sasl.mechanism"))
    assert names_a_field(("query", "tls", "cert"))
    assert names_a_field(("query", "limits", "analyst", "max_rows"))
    assert not names_a_field(("store", "endpoint"))          # the chart's old stub
    assert not names_a_field(("store", "s3", "endpoint", "x"))
    assert not names_a_field(("query", "limits", "analyst", "rows"))
    assert not names_a_field(("archiver", "prefix"))


def test_settings_name_fields_of_the_binary_config(manifests):
    """Every INLAND__… variable and inland.toml key the chart renders names a field of the
    binary's config, following the config structs in crates/ from InlandConfig down (they
    deny unknown fields: a stale name stops the service at start)."""
    paths = rendered_settings(manifests)
    assert ("store", "s3", "sse_c_key_file") in paths or ("store", "s3", "bucket") in paths
    missing = {".".join(p) for p in paths if not names_a_field(p)}
    assert not missing, f"not fields of the binary's config: {sorted(missing)}"


def test_the_binary_composes_every_section_the_chart_sets():
    composed = set(STRUCTS["inland-cli"]["InlandConfig"])
    pending = sorted(set(SECTION_TYPES) - composed)
    if pending:
        pytest.skip(f"crates/inland-cli/src/config.rs InlandConfig has no {', '.join(pending)} "
                    "section yet; the chart sets them (checked against their crates' structs)")
