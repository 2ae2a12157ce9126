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

from conftest import CHART, CI, TEST_VALUES, helm_template, of_kind, render

SERVICES = ["gateway", "geofence", "anonymizer"]
ANYWHERE = {ipaddress.ip_network("0.0.0.0/0"), ipaddress.ip_network("::/0")}


def pod_spec(deploy):
    return deploy["spec"]["template"]["spec"]


def all_containers(deploy):
    spec = pod_spec(deploy)
    return spec.get("initContainers", []) + spec["containers"]


def component(obj):
    return obj["metadata"]["labels"]["app.kubernetes.io/component"]


def selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())


# --- every container is hardened ---------------------------------------------------------


def test_a_deployment_per_service(manifests):
    assert sorted(component(d) for d in of_kind(manifests, "Deployment")) == sorted(SERVICES)


def test_every_container_has_the_security_context(manifests):
    for deploy in of_kind(manifests, "Deployment"):
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
    for deploy in of_kind(manifests, "Deployment"):
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
    for deploy in of_kind(manifests, "Deployment"):
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
        assert env["INLAND__KAFKA__BOOTSTRAP_SERVERS"]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/inland/inland.toml"]["readOnly"] is True


def test_topology_spread_selects_the_service(manifests):
    for deploy in of_kind(manifests, "Deployment"):
        tsc = pod_spec(deploy)["topologySpreadConstraints"]
        assert {c["topologyKey"] for c in tsc} >= {"topology.kubernetes.io/zone", "kubernetes.io/hostname"}
        for c in tsc:
            assert c["labelSelector"]["matchLabels"] == deploy["spec"]["selector"]["matchLabels"]


# --- network policies ------------------------------------------------------------------


def test_a_network_policy_for_every_deployment(manifests):
    policies = of_kind(manifests, "NetworkPolicy")
    for deploy in of_kind(manifests, "Deployment"):
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
        allowed = {9464} | ({50051} if name == "gateway" else set())
        for rule in policy["spec"]["ingress"]:
            assert rule.get("from"), f"{policy['metadata']['name']}: ingress rule without `from`"
            assert {p["port"] for p in rule["ports"]} <= allowed


def test_egress_to_dns_and_the_broker(manifests):
    for policy in of_kind(manifests, "NetworkPolicy"):
        ports = {p["port"] for rule in policy["spec"]["egress"] for p in rule["ports"]}
        assert 53 in ports
        assert ports & {9092, 9093}


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
    hpas = {h["spec"]["scaleTargetRef"]["name"] for h in of_kind(manifests, "HorizontalPodAutoscaler")}
    pdbs = {component(p) for p in of_kind(manifests, "PodDisruptionBudget")}
    for name in SERVICES:
        assert f"inland-{name}" in hpas
        assert name in pdbs
    for deploy in of_kind(manifests, "Deployment"):
        assert "replicas" not in deploy["spec"], "the HPA owns the replica count"


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
    for deploy in of_kind(manifests, "Deployment"):
        for c in all_containers(deploy):
            for e in c.get("env", []):
                lowered = e["name"].lower()
                if any(w in lowered for w in ("password", "secret", "token")):
                    assert "value" not in e and "secretKeyRef" in e["valueFrom"], e["name"]


def test_production_references_every_secret():
    docs = render([CI / "production-values.yaml"])
    secrets = set()
    for deploy in of_kind(docs, "Deployment"):
        spec = pod_spec(deploy)
        secrets |= {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
        for c in spec["containers"]:
            secrets |= {e["valueFrom"]["secretKeyRef"]["name"] for e in c["env"] if "valueFrom" in e}
    assert secrets == {"inland-gateway-tls", "inland-fleet-ca", "inland-zones", "inland-pseudonym-keys",
                       "inland-kafka-sasl", "inland-kafka-ca"}


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
        "InlandStorageLifecycleDrift", "InlandTargetDown",
    }
    for metric, alert in [
        ("inland_stage_consumer_lag_records", "InlandStageConsumerLagHigh"),
        ("inland_gateway_ack_latency_seconds", "InlandGatewayAckLatencyHigh"),
        ("inland_geofence_dropped_total", "InlandGeofenceDropRateSpike"),
        ("inland_stage_records_dead_lettered_total", "InlandStageDeadLetters"),
        ("inland_anonymizer_records_total", "InlandAnonymizerFailures"),
        ("inland_storage_lifecycle_drift", "InlandStorageLifecycleDrift"),
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
                   "inland_gateway_ack_latency_seconds"]:
        assert metric in exprs


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


@pytest.mark.parametrize("region", ["cn-north-1", "cn-northwest-1", "cn-east-dc1"])
def test_in_country_regions_pass(region):
    render([CI / "production-values.yaml"], [f"store.region={region}"])


@pytest.mark.parametrize("setting, words", [
    (["securityContext.readOnlyRootFilesystem=false"], ["/securityContext/readOnlyRootFilesystem"]),
    (["securityContext.allowPrivilegeEscalation=true"], ["/securityContext/allowPrivilegeEscalation"]),
    (["podSecurityContext.runAsUser=0"], ["/podSecurityContext/runAsUser"]),
    (["networkPolicy.egress.kafka.to[0].ipBlock.cidr=0.0.0.0/0"], ["/networkPolicy/egress/kafka/to/0"]),
    (["kafka.securityProtocol=SASL_SSL"], ["/kafka/sasl"]),
    (["kafka.securityProtocol=TLS"], ["/kafka/securityProtocol"]),
    (["kafka.properties.sasl\\.password=hunter2"], ["/kafka/properties"]),
    (["store.endpoint=http://minio.local:9000"], ["/store/endpoint"]),
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
# Metrics of services still to come, named here first.
TO_COME = {"inland_storage_lifecycle_drift"}


def test_alerts_and_dashboard_use_metrics_the_code_defines():
    source = " ".join(p.read_text() for p in REPO.glob("crates/*/src/**/*.rs"))
    defined = set(re.findall(r'"(inland_[a-z0-9_]+)"', source)) | TO_COME
    docs = render()
    (rule,) = of_kind(docs, "PrometheusRule")
    text = " ".join(r["expr"] for g in rule["spec"]["groups"] for r in g["rules"])
    text += (CHART / "dashboards" / "inland-overview.json").read_text()
    used = {re.sub(r"_(bucket|sum|count)$", "", m) for m in re.findall(r"inland_[a-z0-9_]+", text)}
    assert used and used <= defined, f"not defined in crates/: {sorted(used - defined)}"


# --- what the chart sets, the binary reads ------------------------------------------------

# Keys below these are free-form maps in the binary's config, not struct fields.
MAPS = {"properties", "purposes"}


def config_paths(table, prefix=()):
    for k, v in table.items():
        if isinstance(v, dict) and k not in MAPS:
            yield from config_paths(v, prefix + (k,))
        else:
            yield prefix + (k,)


def test_settings_name_fields_of_the_binary_config(manifests):
    """Every INLAND__… variable and inland.toml key the chart renders names fields that
    exist in crates/ (the config structs deny unknown fields: a stale name stops every
    service at start)."""
    source = " ".join(p.read_text() for p in REPO.glob("crates/*/src/**/*.rs"))
    fields = set(re.findall(r"\bpub ([a-z_][a-z0-9_]*):", source))
    paths = []
    for deploy in of_kind(manifests, "Deployment"):
        for c in pod_spec(deploy)["containers"]:
            for e in c["env"]:
                if e["name"].startswith("INLAND__"):
                    paths.append(tuple(e["name"][len("INLAND__"):].lower().split("__")))
    (cm,) = [c for c in of_kind(manifests, "ConfigMap") if c["metadata"]["name"] == "inland-config"]
    paths += list(config_paths(tomllib.loads(cm["data"]["inland.toml"])))
    missing = set()
    for path in paths:
        for segment in path:
            if segment not in fields:
                missing.add(".".join(path))
            if segment in MAPS:
                break
    assert not missing, f"not fields of the binary's config: {sorted(missing)}"
