"""The Helm chart on a real control plane: dry-run, install, twins Ready, test, upgrade, uninstall.

On the local control plane (kwok) the operator Deployment becomes Available but nothing in its
Pod runs, so the operator is started here as a subprocess *the way the chart configures it*:
with the arguments and environment of the rendered Deployment and the chart's ServiceAccount
token (so the chart's RBAC is what the operator really gets). Its default Qdrant is mapped to
qdrant-client local mode (PHOENIX_QDRANT_LOCAL_PATH). The release namespaces enforce the
`restricted` Pod Security Standard, so the operator and test Pods are admitted only if the chart
meets it.

On an external cluster (KUBECONFIG pointing at kind, as in .github/workflows/e2e-kind.yaml) the
operator image really runs: no subprocess is started and `helm test` runs for real.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from qdrant_client import QdrantClient

from localcluster import free_port
from tests.e2e.kube import KubeCluster, wait_for
from tests.e2e.operator_process import seed_local_collections
from tests.gitops.tools import RUNNERS, argocd_health, kstatus
from tests.helm.chart import CHART, CI_VALUES, REPO, helm, helm_binary, template_args

OPERATOR = Path(sys.executable).parent / "phoenix-operator"
VALUES = REPO / "tests" / "helm" / "values"
EXAMPLES = REPO / "examples"
CRD_NAME = "phoenixtwins.phoenixtwin.io"
TWIN_CHILD_KINDS = (
    "serviceaccounts,configmaps,secrets,services,deployments,statefulsets,networkpolicies"
)


def ready_timeout(kube: KubeCluster) -> float:
    """kwok marks Pods ready at once; on kind the twin's real containers must start."""
    return 90 if kube.local else 600


# --------------------------------------------------------------------------- helpers


def _uid() -> str:
    return uuid.uuid4().hex[:6]


def create_namespace(kube: KubeCluster, name: str, *, restricted: bool = False) -> str:
    kube.kubectl("create", "namespace", name)
    if restricted:
        kube.kubectl(
            "label",
            "namespace",
            name,
            "pod-security.kubernetes.io/enforce=restricted",
            "pod-security.kubernetes.io/enforce-version=latest",
        )
    wait_for(
        lambda: kube.kubectl("get", "sa", "default", "-n", name, check=False).returncode == 0,
        what=f"ServiceAccount {name}/default",
    )
    return name


def delete_namespaces(kube: KubeCluster, *names: str) -> None:
    """Delete and wait (bounded): the next test module starts on a quiet cluster, not during
    the garbage collection of this one's objects."""
    if names:
        kube.kubectl("delete", "namespace", *names, "--timeout=90s", check=False, timeout=120)


def khelm(kube: KubeCluster, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return helm(*args, "--kubeconfig", kube.kubeconfig, check=check)


def condition(body: dict[str, Any], kind: str) -> dict[str, Any]:
    for item in (body.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return {}


def twin_ready(kube: KubeCluster, namespace: str, name: str) -> bool:
    result = kube.kubectl("get", "ptwin", name, "-n", namespace, "-o", "json", check=False)
    if result.returncode != 0:
        return False
    body = json.loads(result.stdout)
    generation = body["metadata"]["generation"]
    ready = condition(body, "Ready")
    return bool(
        ready.get("status") == "True"
        and ready.get("observedGeneration") == generation
        and body["status"].get("observedGeneration") == generation
    )


def example_twin() -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """A twin from examples/ that runs on the default Qdrant, with the examples' Secrets."""
    docs = [
        doc
        for path in sorted(EXAMPLES.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if isinstance(doc, dict)
    ]
    secrets = [d for d in docs if d.get("kind") == "Secret"]
    for candidate in (d for d in docs if d.get("kind") == "PhoenixTwin"):
        qdrant = ((candidate.get("spec") or {}).get("memory") or {}).get("qdrant") or {}
        if not qdrant.get("url"):  # a Qdrant server is what this control plane does not have
            return secrets, candidate
    raise AssertionError("examples/ has no twin that runs on the default Qdrant")


def example_with_qdrant_server() -> dict[str, Any] | None:
    """The production-like example: a twin on its own Qdrant server (None while there is none)."""
    for path in sorted(EXAMPLES.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "PhoenixTwin":
                memory = (doc.get("spec") or {}).get("memory") or {}
                if (memory.get("qdrant") or {}).get("url"):
                    return dict(doc)
    return None


def secret_refs(value: Any) -> list[dict[str, str]]:
    """Every `...SecretRef: {name, key}` in a twin's spec."""
    found: list[dict[str, str]] = []
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("SecretRef") and isinstance(item, dict):
                found.append({"name": str(item["name"]), "key": str(item["key"])})
            else:
                found += secret_refs(item)
    elif isinstance(value, list):
        for item in value:
            found += secret_refs(item)
    return found


def release_twins(kube: KubeCluster, namespace: str) -> None:
    """Drop finalizers of twins left behind with no operator, so their namespace can go."""
    names = kube.kubectl("get", "ptwin", "-n", namespace, "-o", "name", check=False).stdout
    for name in names.split():
        kube.kubectl(
            "patch",
            name,
            "-n",
            namespace,
            "--type=merge",
            "-p",
            '{"metadata":{"finalizers":null}}',
            check=False,
        )


def apply_in(kube: KubeCluster, namespace: str, *objects: dict[str, Any]) -> None:
    placed = []
    for original in objects:
        obj = json.loads(json.dumps(original))
        obj["metadata"]["namespace"] = namespace
        obj["metadata"].pop("resourceVersion", None)
        placed.append(obj)
    kube.apply(*placed)


def twin(name: str, spec: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "apiVersion": "phoenixtwin.io/v1alpha1",
        "kind": "PhoenixTwin",
        "metadata": {"name": name},
        "spec": spec or {},
    }


# --------------------------------------------------------------------------- a release


@dataclass
class Release:
    """One `helm install` of the chart, and the operator it deploys."""

    kube: KubeCluster
    name: str
    namespace: str
    workdir: Path
    sets: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None
    health_port: int = 0
    metrics_port: int = 0
    installed: bool = False

    @property
    def fullname(self) -> str:
        return f"{self.name}-phoenixtwin"

    @property
    def qdrant_path(self) -> Path:
        return self.workdir / "qdrant"

    def _set_args(self) -> list[str]:
        args = [arg for value in self.sets for arg in ("--set", value)]
        if not self.kube.local:
            # kind: the images built and loaded by the workflow, the Qdrant it installed.
            tag = os.environ.get("PHOENIX_E2E_IMAGE_TAG")
            if tag:
                args += ["--set", f"image.tag={tag}", "--set", f"operator.twinImages.tag={tag}"]
            qdrant = os.environ.get("PHOENIX_E2E_QDRANT_URL")
            if qdrant:
                args += ["--set", f"qdrant.url={qdrant}"]
        return args

    def install(self) -> subprocess.CompletedProcess[str]:
        result = khelm(
            self.kube,
            "install",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            *self._set_args(),
            "--wait",
            "--timeout",
            "120s",
        )
        self.installed = True
        return result

    def upgrade(self, *sets: str) -> subprocess.CompletedProcess[str]:
        self.sets += list(sets)
        return khelm(
            self.kube,
            "upgrade",
            self.name,
            str(CHART),
            "--namespace",
            self.namespace,
            *self._set_args(),
            "--wait",
            "--timeout",
            "120s",
        )

    def uninstall(self) -> None:
        khelm(self.kube, "uninstall", self.name, "--namespace", self.namespace, "--wait")
        self.installed = False

    def deployment(self) -> dict[str, Any]:
        manifest = khelm(self.kube, "get", "manifest", self.name, "-n", self.namespace).stdout
        for doc in yaml.safe_load_all(manifest):
            if doc and doc["kind"] == "Deployment":
                return dict(doc)
        raise AssertionError(f"release {self.name} has no Deployment")

    def wait_available(self) -> None:
        self.kube.kubectl(
            "wait",
            "--for=condition=Available",
            f"deployment/{self.fullname}",
            "-n",
            self.namespace,
            "--timeout=120s",
        )

    # ------------------------------------------------------------ the operator process

    def _token_kubeconfig(self) -> Path:
        """The admin kubeconfig with the chart ServiceAccount's token instead of the admin cert."""
        sa = self.deployment()["spec"]["template"]["spec"]["serviceAccountName"]
        token = self.kube.kubectl(
            "create", "token", sa, "-n", self.namespace, "--duration=3600s"
        ).stdout.strip()
        admin = yaml.safe_load(Path(self.kube.kubeconfig).read_text())
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": admin["clusters"],
            "users": [{"name": "operator", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "operator",
                    "context": {"cluster": admin["clusters"][0]["name"], "user": "operator"},
                }
            ],
            "current-context": "operator",
        }
        path = self.workdir / f"{self.name}-operator.kubeconfig"
        path.write_text(json.dumps(config))
        path.chmod(0o600)
        return path

    def start_operator(self) -> None:
        """Start phoenix-operator as the chart's Deployment would (local control plane only)."""
        if not self.kube.local:
            self.wait_available()  # the real Pod runs the operator
            return
        container = self.deployment()["spec"]["template"]["spec"]["containers"][0]
        chart_env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
        self.health_port, self.metrics_port = free_port(), free_port()
        env = {
            **os.environ,
            **chart_env,
            "KUBECONFIG": str(self._token_kubeconfig()),
            "POD_ID": f"{self.fullname}-local",
            # Ports of this machine, not of a Pod; the default Qdrant in local mode.
            "PHOENIX_OPERATOR_HEALTH_PORT": str(self.health_port),
            "PHOENIX_OPERATOR_METRICS_PORT": str(self.metrics_port),
            "PHOENIX_QDRANT_LOCAL_PATH": str(self.qdrant_path),
            "PHOENIX_LOG_FORMAT": "text",
        }
        log = (self.workdir / f"{self.name}-operator.log").open("ab")
        args = list(container["args"])
        if container.get("command"):  # peering: a shell draws the priority, then execs
            args = [*args[2:], "--priority=1"]
        self.proc = subprocess.Popen(
            [str(OPERATOR), *args],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        wait_for(self._healthy, what=f"phoenix-operator of release {self.name}", timeout=60)

    def _healthy(self) -> bool:
        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"phoenix-operator exited; log:\n{self.log_tail()}")
        try:
            url = f"http://127.0.0.1:{self.health_port}/healthz"
            with urllib.request.urlopen(url, timeout=1) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def stop_operator(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def forbidden(self) -> list[str]:
        """Lines where RBAC refused the operator something: its Role is too small.

        ("forbidden: User ... cannot ..."; not the other 403s, such as creating an Event in a
        namespace that another test is deleting.)"""
        path = self.workdir / f"{self.name}-operator.log"
        if not path.exists():
            return []
        lines = path.read_text(errors="replace").splitlines()
        return [line for line in lines if "forbidden: User" in line]

    def log_tail(self, lines: int = 60) -> str:
        path = self.workdir / f"{self.name}-operator.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def collections(self, namespace: str) -> list[str]:
        """Collections of ``namespace`` in the local-mode Qdrant (operator stopped or idle)."""
        path = self.qdrant_path / namespace
        if not path.exists():
            return []
        deadline = time.monotonic() + 20
        while True:
            try:
                client = QdrantClient(path=str(path))
            except RuntimeError:  # the operator holds the directory's lock right now
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
                continue
            try:
                return sorted(c.name for c in client.get_collections().collections)
            finally:
                client.close()


@contextlib.contextmanager
def released(release: Release) -> Iterator[Release]:
    try:
        yield release
    finally:
        release.stop_operator()
        if release.installed:
            khelm(release.kube, "uninstall", release.name, "-n", release.namespace, check=False)


@dataclass
class Stack:
    release: Release
    twins_ns: str


@pytest.fixture(scope="module")
def stack(kube_cluster: KubeCluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A cluster-scoped install in a `restricted` namespace, its operator running."""
    suffix = _uid()
    system = create_namespace(kube_cluster, f"phx-system-{suffix}", restricted=True)
    twins = create_namespace(kube_cluster, f"phx-twins-{suffix}")
    release = Release(kube_cluster, f"phx{suffix}", system, tmp_path_factory.mktemp("helm"))
    try:
        with released(release):
            release.install()
            release.start_operator()
            yield Stack(release, twins)
    finally:
        release_twins(kube_cluster, twins)
        delete_namespaces(kube_cluster, system, twins)


def ready_example(stack: Stack) -> str:
    """The example twin in the stack's namespace, Ready; returns its name."""
    secrets, example = example_twin()
    name = example["metadata"]["name"]
    apply_in(stack.release.kube, stack.twins_ns, *secrets, example)
    wait_for(
        lambda: twin_ready(stack.release.kube, stack.twins_ns, name),
        what=f"PhoenixTwin {stack.twins_ns}/{name} Ready",
        timeout=ready_timeout(stack.release.kube),
    )
    return str(name)


# --------------------------------------------------------------------------- no install


def test_rendered_chart_passes_server_side_dry_run(kube_cluster: KubeCluster) -> None:
    suffix = _uid()
    system = create_namespace(kube_cluster, f"phx-dry-{suffix}")
    served = create_namespace(kube_cluster, f"phx-dry-served-{suffix}")
    try:
        variants = {
            "default": [],
            "namespaced": [
                "--set",
                "rbac.scope=namespace",
                "--set",
                f"rbac.watchNamespaces={{{served}}}",
            ],
            # Everything but the ServiceMonitor (its CRD is the Prometheus Operator's).
            "full": [
                "--values",
                str(CI_VALUES / "full-values.yaml"),
                "--set",
                "metrics.serviceMonitor.enabled=false",
            ],
        }
        for variant, extra in variants.items():
            release = f"dry{variant}"
            # What `helm install` applies (test hooks are applied only by `helm test`)...
            rendered = helm(
                *template_args(
                    "--include-crds", "--skip-tests", *extra, release=release, namespace=system
                )
            ).stdout
            result = kube_cluster.kubectl(
                "apply", "--dry-run=server", "--server-side", "-f", "-", stdin=rendered, check=False
            )
            assert result.returncode == 0, f"{variant}: {result.stderr}"
            assert "deployment.apps/dry" in result.stdout, result.stdout
            # ...then the test hooks in their weight order: the ServiceAccount for real (the
            # Pod's admission looks it up), the Pod as a dry run.
            hooks = helm(
                *template_args(
                    "--show-only", "templates/tests/test-operator.yaml", *extra,
                    release=release, namespace=system,
                )
            ).stdout  # fmt: skip
            account, pod = (d for d in yaml.safe_load_all(hooks) if d)
            kube_cluster.apply(account)
            result = kube_cluster.kubectl(
                "apply", "--dry-run=server", "--server-side", "-f", "-",
                stdin=json.dumps(pod), check=False,
            )  # fmt: skip
            assert result.returncode == 0, f"{variant} test hook: {result.stderr}"
    finally:
        delete_namespaces(kube_cluster, system, served)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ("bad-scope.yaml", "at '/rbac/scope': value must be one of 'cluster', 'namespace'"),
        ("bad-run-as-root.yaml", "at '/podSecurityContext/runAsNonRoot': value must be true"),
    ],
)
def test_install_refuses_values_that_violate_the_schema(
    kube_cluster: KubeCluster, values: str, message: str
) -> None:
    name = f"bad{_uid()}"
    result = khelm(
        kube_cluster,
        "install",
        name,
        str(CHART),
        "-n",
        "default",
        "-f",
        str(VALUES / values),
        check=False,
    )
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    # Nothing was installed: no release, no object.
    assert khelm(kube_cluster, "status", name, "-n", "default", check=False).returncode != 0
    left = kube_cluster.kubectl(
        "get", "all", "-n", "default", "-l", f"app.kubernetes.io/instance={name}", "-o", "name"
    )
    assert not left.stdout.strip()


# --------------------------------------------------------------------------- namespace scope
# (before the cluster-scoped stack starts an operator that would serve every namespace)


def test_namespace_scoped_install_serves_only_its_namespaces(
    kube_cluster: KubeCluster, tmp_path: Path
) -> None:
    suffix = _uid()
    system = create_namespace(kube_cluster, f"phx-nss-{suffix}", restricted=True)
    served = create_namespace(kube_cluster, f"phx-served-{suffix}")
    other = create_namespace(kube_cluster, f"phx-other-{suffix}")
    release = Release(
        kube_cluster,
        f"ns{suffix}",
        system,
        tmp_path,
        sets=["rbac.scope=namespace", f"rbac.watchNamespaces={{{served}}}"],
    )
    try:
        with released(release):
            release.install()
            args = release.deployment()["spec"]["template"]["spec"]["containers"][0]["args"]
            assert args == [f"--namespace={served}"]
            sa = f"system:serviceaccount:{system}:{release.fullname}"
            for namespace, allowed in ((served, "yes"), (other, "no")):
                can = kube_cluster.kubectl(
                    "auth",
                    "can-i",
                    "create",
                    "deployments",
                    "-n",
                    namespace,
                    f"--as={sa}",
                    check=False,
                )
                assert can.stdout.strip() == allowed, (namespace, can.stdout, can.stderr)
            release.start_operator()
            apply_in(kube_cluster, served, twin("inside"))
            apply_in(kube_cluster, other, twin("outside"))
            wait_for(
                lambda: twin_ready(kube_cluster, served, "inside"),
                what="twin inside Ready",
                timeout=ready_timeout(kube_cluster),
            )
            time.sleep(2)
            outside = kube_cluster.get("ptwin", "outside", "-n", other)
            assert not outside.get("status"), (
                "the operator reconciled a namespace it does not serve"
            )
            assert not kube_cluster.get("deployments", "-n", other)["items"]
            assert not release.forbidden(), "\n".join(release.forbidden()[:5])
    finally:
        delete_namespaces(kube_cluster, system, served, other)


# --------------------------------------------------------------------------- cluster scope


def test_install_brings_the_operator_to_available(stack: Stack) -> None:
    release, kube = stack.release, stack.release.kube
    release.wait_available()
    deployment = kube.get("deployment", release.fullname, "-n", release.namespace)
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"]["type"] == "Recreate"
    assert deployment["status"]["availableReplicas"] == 1
    # The Pod was admitted in a namespace that enforces the restricted Pod Security Standard.
    pods = kube.get("pods", "-n", release.namespace, "-l", "app.kubernetes.io/component=operator")[
        "items"
    ]
    assert [p["status"]["phase"] for p in pods] == ["Running"]
    crd = kube.get("crd", CRD_NAME)
    established = [c for c in crd["status"]["conditions"] if c["type"] == "Established"]
    assert established[0]["status"] == "True"
    status = khelm(kube, "status", release.name, "-n", release.namespace).stdout
    assert "STATUS: deployed" in status
    assert f"kubectl -n {release.namespace} rollout status deployment/{release.fullname}" in status


def test_example_twin_becomes_ready_under_the_charts_rbac(stack: Stack) -> None:
    name = ready_example(stack)
    kube = stack.release.kube
    body = kube.get("ptwin", name, "-n", stack.twins_ns)
    assert body["status"]["phase"] == "Ready"
    children = kube.get(TWIN_CHILD_KINDS, "-n", stack.twins_ns, "-l", f"phoenixtwin.io/twin={name}")
    assert {c["kind"] for c in children["items"]} >= {"Deployment", "Service", "ConfigMap"}
    # The GitOps health checks agree with the live object (docs/gitops.md).
    for runner in RUNNERS:
        assert argocd_health(body, runner=runner)[0] == "Healthy", runner
    assert kstatus(body)["status"] == "Current"
    # The chart's RBAC was enough: the API server refused the operator nothing.
    assert not stack.release.forbidden(), "\n".join(stack.release.forbidden()[:5])


def test_production_example_without_its_qdrant_is_degraded(stack: Stack) -> None:
    """The production-like example names a Qdrant server this cluster does not have: the twin
    is Degraded (QdrantUnreachable), and the GitOps health checks say so."""
    example = example_with_qdrant_server()
    assert example is not None, "examples/ has no twin with spec.memory.qdrant.url"
    kube = stack.release.kube
    if not kube.local:
        # The premise (no Qdrant at that URL) holds only on the local control plane, where
        # this test always runs (CI included); on kind or a real cluster it may be reachable.
        pytest.skip("on a real cluster the example's Qdrant URL may well be reachable")
    name = example["metadata"]["name"]
    secrets: dict[str, dict[str, Any]] = {}
    for ref in secret_refs(example.get("spec")):
        secret = secrets.setdefault(
            ref["name"],
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": ref["name"]},
                "stringData": {},
            },
        )
        secret["stringData"][ref["key"]] = "not-a-real-key"
    apply_in(kube, stack.twins_ns, *secrets.values(), example)

    def degraded() -> bool:
        body = kube.get("ptwin", name, "-n", stack.twins_ns)
        return condition(body, "Degraded").get("status") == "True"

    wait_for(degraded, what=f"PhoenixTwin {name} Degraded", timeout=60)
    body = kube.get("ptwin", name, "-n", stack.twins_ns)
    assert condition(body, "Degraded")["reason"] == "QdrantUnreachable"
    assert condition(body, "Ready")["status"] == "False"
    for runner in RUNNERS:
        assert argocd_health(body, runner=runner)[0] == "Degraded", runner
    assert kstatus(body)["status"] == "InProgress"
    assert not stack.release.forbidden(), "\n".join(stack.release.forbidden()[:5])


def run_selfcheck_as_the_kubelet_would(release: Release, pod: dict[str, Any]) -> int:
    """kwok runs no container: run the hook Pod's own command here, as its ServiceAccount.

    The Service URLs become the operator subprocess's ports and the in-cluster API server the
    local one; the token is a real one of the Pod's ServiceAccount, so what the check reads is
    what that account may read. Returns the exit status the container would have.
    """
    kube = release.kube
    container = pod["spec"]["containers"][0]
    local = {
        "--health": f"http://127.0.0.1:{release.health_port}/healthz",
        "--metrics": f"http://127.0.0.1:{release.metrics_port}/metrics",
    }
    args = []
    for arg in container["args"]:
        flag, _, url = arg.partition("=")
        assert url.startswith(f"http://{release.fullname}-metrics.{release.namespace}.svc:"), arg
        args.append(f"{flag}={local[flag]}")
    account = pod["spec"]["serviceAccountName"]
    token = release.workdir / f"{account}.token"
    token.write_text(
        kube.kubectl("create", "token", account, "-n", release.namespace).stdout.strip()
    )
    admin = yaml.safe_load(Path(kube.kubeconfig).read_text())["clusters"][0]["cluster"]
    command = [sys.executable if c == "python" else c for c in container["command"]]
    result = subprocess.run(
        [
            *command,
            *args,
            f"--api-server={admin['server']}",
            f"--token-file={token}",
            f"--ca-file={admin['certificate-authority']}",
            "--attempts=5",
            "--delay=1",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    print(result.stdout, result.stderr)
    return result.returncode


def test_helm_test_hook(stack: Stack) -> None:
    release, kube = stack.release, stack.release.kube
    pod_name = f"{release.fullname}-test"
    proc = subprocess.Popen(
        [
            str(helm_binary()),
            "test",
            release.name,
            "-n",
            release.namespace,
            "--kubeconfig",
            kube.kubeconfig,
            "--timeout",
            "120s",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        if kube.local:
            # The hook Pod is admitted (restricted PSS), scheduled and Running under kwok; its
            # check runs here for real, and its result becomes the Pod's phase.
            def running() -> bool:
                result = kube.kubectl(
                    "get",
                    "pod",
                    pod_name,
                    "-n",
                    release.namespace,
                    "-o",
                    "jsonpath={.status.phase}",
                    check=False,
                )
                return result.stdout == "Running"

            wait_for(running, what=f"helm test Pod {pod_name} Running", timeout=60)
            pod = kube.get("pod", pod_name, "-n", release.namespace)
            assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
            code = run_selfcheck_as_the_kubelet_would(release, pod)
            assert code == 0, "the selfcheck failed against the running operator"
            kube.kubectl(
                "patch",
                "pod",
                pod_name,
                "-n",
                release.namespace,
                "--subresource=status",
                "--type=merge",
                "-p",
                json.dumps({"status": {"phase": "Succeeded"}}),
            )
        out, err = proc.communicate(timeout=150)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, f"helm test failed:\n{out}\n{err}"
    assert pod_name in out
    assert "Succeeded" in out
    # hook-delete-policy hook-succeeded: the Pod is gone afterwards.
    wait_for(
        lambda: (
            kube.kubectl("get", "pod", pod_name, "-n", release.namespace, check=False).returncode
            != 0
        ),
        what=f"{pod_name} to be deleted",
        timeout=60,
    )


def test_the_helm_test_check_fails_when_the_operator_is_down(stack: Stack) -> None:
    """The check can fail: with the operator stopped, the same command exits non-zero."""
    release = stack.release
    if not release.kube.local:
        pytest.skip("stops the operator subprocess of the local control plane")
    pod = {
        "spec": {
            "serviceAccountName": release.fullname,
            "containers": [
                {
                    "command": ["python", "-m", "phoenix_operator.selfcheck"],
                    "args": [
                        f"--health=http://{release.fullname}-metrics.{release.namespace}.svc:1/healthz",
                        f"--metrics=http://{release.fullname}-metrics.{release.namespace}.svc:1/metrics",
                    ],
                }
            ],
        }
    }
    release.stop_operator()
    try:
        assert run_selfcheck_as_the_kubelet_would(release, pod) == 1
    finally:
        release.start_operator()


def test_upgrade_with_changed_values_keeps_twins_ready(stack: Stack) -> None:
    release, kube = stack.release, stack.release.kube
    name = ready_example(stack)

    def generations() -> dict[str, int]:
        selector = f"phoenixtwin.io/twin={name}"
        items = kube.get("deployments,statefulsets", "-n", stack.twins_ns, "-l", selector)
        return {d["metadata"]["name"]: d["metadata"]["generation"] for d in items["items"]}

    before = generations()
    release.upgrade("operator.logLevel=debug", "operator.resyncSeconds=3")
    # Recreate: the old operator stops before the new one starts.
    release.stop_operator()
    assert twin_ready(kube, stack.twins_ns, name)
    release.start_operator()
    container = release.deployment()["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PHOENIX_LOG_LEVEL"] == "debug"
    assert env["PHOENIX_OPERATOR_RESYNC_SECONDS"] == "3"
    history = khelm(kube, "history", release.name, "-n", release.namespace, "-o", "json").stdout
    assert [r["status"] for r in json.loads(history)] == ["superseded", "deployed"]
    # Two resync periods of the new operator: the twin stays Ready and nothing of it rolls.
    deadline = time.monotonic() + 7
    while time.monotonic() < deadline:
        assert twin_ready(kube, stack.twins_ns, name), "the twin left Ready during the upgrade"
        time.sleep(0.5)
    assert generations() == before


def test_uninstall_leaves_twins_and_their_data_per_reclaim_policy(stack: Stack) -> None:
    release, kube = stack.release, stack.release.kube
    kept = ready_example(stack)
    # A Delete-reclaim twin deleted while the operator runs loses its collections...
    apply_in(kube, stack.twins_ns, twin("scratch", {"memory": {"reclaimPolicy": "Delete"}}))
    wait_for(
        lambda: twin_ready(kube, stack.twins_ns, "scratch"),
        what="twin scratch Ready",
        timeout=ready_timeout(kube),
    )
    if kube.local:  # what the twins' memory services create on first use (no pods run here)
        seed_local_collections(
            release.qdrant_path / stack.twins_ns,
            [f"phx.{stack.twins_ns}.{kept}.default", f"phx.{stack.twins_ns}.scratch.default"],
        )
    kube.kubectl("delete", "ptwin", "scratch", "-n", stack.twins_ns, "--timeout=60s")

    release.uninstall()
    release.stop_operator()

    # ...the operator's own objects are gone...
    for kind, namespace in (
        ("deployment", release.namespace),
        ("serviceaccount", release.namespace),
        ("service", release.namespace),
        ("clusterrole", None),
        ("clusterrolebinding", None),
    ):
        args = [
            "get",
            kind,
            release.fullname if kind != "service" else f"{release.fullname}-metrics",
        ]
        if namespace:
            args += ["-n", namespace]
        assert kube.kubectl(*args, check=False).returncode != 0, f"{kind} survived uninstall"
    # ...but Helm never deletes CRDs from crds/, so twins, their children and (Retain) data stay.
    assert kube.kubectl("get", "crd", CRD_NAME, check=False).returncode == 0
    body = kube.get("ptwin", kept, "-n", stack.twins_ns)
    assert condition(body, "Ready")["status"] == "True"
    selector = f"phoenixtwin.io/twin={kept}"
    children = kube.get("deployments,statefulsets", "-n", stack.twins_ns, "-l", selector)
    assert len(children["items"]) == 4
    if kube.local:
        remaining = release.collections(stack.twins_ns)
        assert any(f".{kept}." in c for c in remaining), remaining
        assert not any(".scratch." in c for c in remaining), remaining
