"""Pinned checkpoints end to end: a local stand-in for the Hub, the real huggingface_hub client, faults on demand.

Every test runs with its own IMGEN_HOME, HF_HOME and lock file, and HF_ENDPOINT
pointing at a server on 127.0.0.1 that this file starts, so nothing touches the
real cache or the network.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import urlsplit

import numpy as np
import pytest
from safetensors.numpy import save_file
from typer.testing import CliRunner

from imgen import toml_subset, weights
from imgen.weights import (
    GENERATOR_FILE,
    TOKENIZER_FILE,
    UnknownCheckpointError,
    WeightsCorruptError,
    WeightsInputError,
    WeightsUnavailableError,
    add,
    dump_lock,
    pull,
    read_lock,
    resolve_model,
)
from imgen.weights_cli import weights_app

ROOT = Path(__file__).resolve().parents[1]
PACKAGE_BUNDLED = weights.BUNDLED  # before the fixtures point it at a temporary folder
REPO = "test-org/imgen-tiny"
REVISION = "0123456789abcdef0123456789abcdef01234567"
LFS_POINTER = b"version https://git-lfs.github.com/spec/v1\noid sha256:" + b"0" * 64 + b"\nsize 1234\n"


def write_fake_checkpoint(folder: Path, seed: int = 0, swap_kinds: bool = False) -> Path:
    """Two real safetensors files with the headers imgen expects, without torch (a few hundred KB)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    kinds = {TOKENIZER_FILE: "imgen-vq", GENERATOR_FILE: "imgen-generator"}
    if swap_kinds:
        kinds = {TOKENIZER_FILE: "imgen-generator", GENERATOR_FILE: "imgen-vq"}
    for filename, kind in kinds.items():
        tensors = {"weight": rng.standard_normal(40_000).astype(np.float32)}
        save_file(tensors, str(folder / filename), metadata={"kind": kind, "format_version": "1"})
    return folder


def flip_byte(path: Path, offset: int = -100) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@dataclass
class FakeHub:
    """Answers HEAD and GET on `/{repo_id}/resolve/{revision}/{filename}` like the Hub, with per-file faults.

    Faults: "tamper" (one byte flipped, headers consistent), "truncate" (half
    the file, headers consistent), "lfs" (a Git LFS pointer), "drop" (the
    connection closes half way, on every try), "drop-once" (only the first
    GET), "rendezvous" (each GET waits for a second one, so two clients
    download at the same time).
    """

    files: dict[str, bytes] = field(default_factory=dict)
    faults: dict[str, str] = field(default_factory=dict)
    log: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)
    dropped: set[str] = field(default_factory=set)
    barriers: dict[str, threading.Barrier] = field(default_factory=dict)

    def publish(self, folder: Path, repo_id: str = REPO, revision: str = REVISION) -> None:
        for path in folder.iterdir():
            self.files[f"/{repo_id}/resolve/{revision}/{path.name}"] = path.read_bytes()

    def gets(self, filename: str | None = None) -> int:
        return sum(1 for method, path in self.log if method == "GET" and (filename is None or path.endswith(filename)))


class HubHandler(BaseHTTPRequestHandler):
    server: HubServer

    def do_HEAD(self) -> None:
        self._serve(send_body=False)

    def do_GET(self) -> None:
        self._serve(send_body=True)

    def log_message(self, format: str, *args: object) -> None:  # keep test output quiet
        pass

    def _serve(self, send_body: bool) -> None:
        hub = self.server.hub
        path = urlsplit(self.path).path
        with hub.lock:
            hub.log.append((self.command, path))
        content = hub.files.get(path)
        if content is None:
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        revision, filename = path.split("/")[-2:]
        fault = hub.faults.get(filename, "")
        body = content
        if fault == "tamper":
            body = bytearray(content)
            body[len(body) // 2] ^= 0x01
            body = bytes(body)
        elif fault == "truncate":
            body = content[: len(content) // 2]
        elif fault == "lfs":
            body = LFS_POINTER
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range", ""))
        start = int(match.group(1)) if match else 0
        self.send_response(206 if start else 200)
        self.send_header("X-Repo-Commit", revision)
        self.send_header("ETag", f'"{hashlib.sha256(body).hexdigest()}"')
        self.send_header("Content-Length", str(len(body) - start))
        self.send_header("Accept-Ranges", "bytes")
        if start:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if not send_body:
            return
        cut = len(body) // 2
        if fault == "rendezvous":
            with hub.lock:
                barrier = hub.barriers.setdefault(filename, threading.Barrier(2, timeout=60))
            with contextlib.suppress(threading.BrokenBarrierError):  # the other client never came: serve anyway
                barrier.wait()
        elif fault == "drop" or (fault == "drop-once" and filename not in hub.dropped):
            hub.dropped.add(filename)
            self.wfile.write(body[start : max(start, cut)])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body[start:])


class HubServer(ThreadingHTTPServer):
    daemon_threads = True
    hub: FakeHub


@pytest.fixture
def hub() -> Iterator[FakeHub]:
    server = HubServer(("127.0.0.1", 0), HubHandler)
    server.hub = FakeHub(url=f"http://127.0.0.1:{server.server_address[1]}")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server.hub
    server.shutdown()
    server.server_close()


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hub: FakeHub) -> Path:
    """Private cache, HF home and lock; the Hub is the local server; online unless a test says otherwise."""
    import huggingface_hub.constants

    monkeypatch.setenv("IMGEN_HOME", str(tmp_path / "imgen-home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setenv("HF_TOKEN", "hf_test_token_not_real")
    monkeypatch.setenv("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    monkeypatch.setenv("HF_HUB_DISABLE_TELEMETRY", "1")
    monkeypatch.setenv("IMGEN_WEIGHTS_LOCK", str(tmp_path / "weights.lock"))
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(weights, "PACKAGE_WEIGHTS", tmp_path / "package-weights")
    monkeypatch.setattr(weights, "BUNDLED", tmp_path / "package-weights" / "default")
    return tmp_path


@pytest.fixture
def published(isolated: Path, hub: FakeHub) -> Path:
    """A checkpoint 'tiny' pinned in the lock at REPO@REVISION, served by the hub, not yet in the cache."""
    source = write_fake_checkpoint(isolated / "source")
    hub.publish(source)
    add(source, "tiny", repo_id=REPO, revision=REVISION)
    shutil.rmtree(weights.cache_root() / "checkpoints" / "tiny")
    return source


def cached(name: str = "tiny") -> Path:
    return weights.cache_root() / "checkpoints" / name


def assert_nothing_trusted(name: str = "tiny") -> None:
    """No staging leftovers, and whatever the cache holds for `name` fails the check a later run makes."""
    staging = weights.cache_root() / "tmp"
    assert not staging.exists() or list(staging.iterdir()) == []
    with pytest.raises(WeightsUnavailableError):
        resolve_model(name, download=False)


def run_cli(*args: str) -> SimpleNamespace:
    result = CliRunner().invoke(weights_app, list(args))
    return SimpleNamespace(code=result.exit_code, out=result.stdout, err=result.stderr)


# ---------------------------------------------------------------- downloads


def test_good_pull_installs_the_pinned_bytes_and_a_second_pull_uses_the_cache(published: Path, hub: FakeHub):
    folder = pull("tiny")
    assert folder == cached()
    for filename in (TOKENIZER_FILE, GENERATOR_FILE):
        assert (folder / filename).read_bytes() == (published / filename).read_bytes()
    assert hub.gets() == 2
    assert resolve_model("tiny") == folder
    assert pull("tiny") == folder
    assert hub.gets() == 2  # nothing downloaded again
    assert list((weights.cache_root() / "tmp").iterdir()) == []


def test_cli_pull_prints_the_folder_and_verify_reports_ok(published: Path):
    result = run_cli("pull", "tiny")
    assert result.code == 0, result.err
    assert result.out.strip() == str(cached())
    result = run_cli("verify", "tiny")
    assert result.code == 0 and result.out.split("\t")[:2] == ["tiny", "ok"]
    assert run_cli("path", "tiny").out.strip() == str(cached())


def test_tampered_download_is_refused_removed_and_repulled_once_fixed(published: Path, hub: FakeHub):
    hub.faults[GENERATOR_FILE] = "tamper"
    with pytest.raises(WeightsCorruptError, match=r"sha256 .*deleted.*imgen weights pull tiny"):
        pull("tiny")
    assert not (cached() / GENERATOR_FILE).exists()
    assert_nothing_trusted()
    result = run_cli("pull", "tiny")
    assert result.code == 3 and result.err.startswith("imgen: error: tiny: the download of generator.safetensors")
    assert result.err.count("\n") == 1
    del hub.faults[GENERATOR_FILE]
    assert (pull("tiny") / GENERATOR_FILE).read_bytes() == (published / GENERATOR_FILE).read_bytes()


def test_truncated_transfer_is_refused(published: Path, hub: FakeHub):
    hub.faults[TOKENIZER_FILE] = "truncate"
    with pytest.raises(WeightsCorruptError, match=r"tokenizer\.safetensors .*truncated"):
        pull("tiny")
    assert not (cached() / TOKENIZER_FILE).exists()
    assert_nothing_trusted()


def test_git_lfs_pointer_is_refused_with_its_name(published: Path, hub: FakeHub):
    hub.faults[GENERATOR_FILE] = "lfs"
    with pytest.raises(WeightsCorruptError, match="Git LFS pointer"):
        pull("tiny")
    assert_nothing_trusted()


def test_server_stopping_mid_download_once_is_resumed_and_checked(published: Path, hub: FakeHub):
    hub.faults[GENERATOR_FILE] = "drop-once"
    folder = pull("tiny")
    assert (folder / GENERATOR_FILE).read_bytes() == (published / GENERATOR_FILE).read_bytes()
    assert GENERATOR_FILE in hub.dropped


def test_server_always_stopping_mid_download_fails_cleanly(published: Path, hub: FakeHub):
    hub.faults[GENERATOR_FILE] = "drop"
    with pytest.raises(WeightsUnavailableError, match=r"cannot download generator\.safetensors.*nothing was installed"):
        pull("tiny")
    assert not (cached() / GENERATOR_FILE).exists()
    assert_nothing_trusted()


def test_offline_without_a_cached_copy_refuses_with_the_command(published: Path, hub: FakeHub, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(WeightsUnavailableError, match=re.escape("run `HF_HUB_OFFLINE=0 imgen weights pull tiny`")):
        resolve_model("tiny")
    result = run_cli("pull", "tiny")
    assert result.code == 3 and "HF_HUB_OFFLINE=0 imgen weights pull tiny" in result.err
    assert hub.log == []


def test_an_unreachable_hub_is_one_line_at_once_without_the_download_retries(
    published: Path, hub: FakeHub, monkeypatch: pytest.MonkeyPatch
):
    import socket

    import huggingface_hub

    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    monkeypatch.setenv("HF_ENDPOINT", f"http://127.0.0.1:{closed}")
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(variable, raising=False)
    attempts = []
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: attempts.append(a) or 1 / 0)
    result = run_cli("pull", "tiny")
    assert result.code == 3 and attempts == [] and len(result.err.strip().splitlines()) == 1
    assert f"127.0.0.1:{closed}) is not reachable" in result.err and "HF_HUB_OFFLINE=1" in result.err
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")  # behind a proxy the direct connect proves nothing
    assert weights.hub_unreachable() is None


def test_offline_with_a_cached_copy_uses_it_without_the_network(published: Path, hub: FakeHub, monkeypatch):
    folder = pull("tiny")
    requests = len(hub.log)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert resolve_model("tiny") == folder
    assert run_cli("pull", "tiny").code == 0
    assert len(hub.log) == requests
    flip_byte(folder / TOKENIZER_FILE)  # a damaged cached copy is not used offline either, nor deleted unreplaced
    with pytest.raises(WeightsUnavailableError, match=r"has tokenizer\.safetensors not matching the lock.*OFFLINE"):
        resolve_model("tiny")
    assert (folder / TOKENIZER_FILE).exists() and len(hub.log) == requests


def test_a_damaged_cached_file_is_replaced_when_online(published: Path, hub: FakeHub):
    folder = pull("tiny")
    flip_byte(folder / GENERATOR_FILE)
    statuses = {status.name: status for status in weights.verify()}
    assert statuses["tiny"].state == "damaged" and "sha256" in statuses["tiny"].detail
    assert resolve_model("tiny") == folder
    assert (folder / GENERATOR_FILE).read_bytes() == (published / GENERATOR_FILE).read_bytes()
    assert hub.gets(GENERATOR_FILE) == 2


def test_two_processes_pulling_the_same_checkpoint_at_once(published: Path, hub: FakeHub):
    hub.faults.update({TOKENIZER_FILE: "rendezvous", GENERATOR_FILE: "rendezvous"})
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    command = [sys.executable, "-c", "from imgen.weights_cli import weights_app; weights_app()", "pull", "tiny"]
    children = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)
    ]
    outputs = [child.communicate(timeout=180) for child in children]
    assert [child.returncode for child in children] == [0, 0], [err for _, err in outputs]
    assert [out.strip() for out, _ in outputs] == [str(cached())] * 2
    assert hub.gets(TOKENIZER_FILE) == 2 and hub.gets(GENERATOR_FILE) == 2  # both really downloaded
    assert weights.verify("tiny")[0].state == "ok"
    assert list((weights.cache_root() / "tmp").iterdir()) == []


# ---------------------------------------------------------------- the bundled checkpoint and paths


def test_bundled_checkpoint_missing_is_listed_as_missing(isolated: Path):
    statuses = weights.list_checkpoints()
    assert [(s.name, s.state) for s in statuses] == [("default", "missing")]
    result = run_cli("list")
    assert result.code == 0 and re.search(r"^default\s+package\s+missing", result.out, re.MULTILINE)
    with pytest.raises(WeightsUnavailableError, match="reinstall imgen"):
        resolve_model(None)
    assert run_cli("verify").code == 3


def test_flipped_byte_in_the_bundled_checkpoint_is_a_clear_error(isolated: Path):
    bundled = write_fake_checkpoint(weights.BUNDLED)
    assert weights.list_checkpoints()[0].state == "unlocked"
    assert resolve_model(None) == bundled  # usable before it is locked
    entry = weights.lock_bundled()
    assert entry.source == "package" and all(item.repo_id is None for item in entry.files)
    assert resolve_model(None) == bundled and resolve_model("default") == bundled
    assert not weights.cache_root().exists()  # the bundled files stay in the package
    flip_byte(bundled / GENERATOR_FILE)
    with pytest.raises(WeightsCorruptError, match=r"bundled .*generator\.safetensors has sha256 .*reinstall imgen"):
        resolve_model(None)
    result = run_cli("verify")
    assert result.code == 3 and result.err.startswith("imgen: error: default is damaged: generator.safetensors")
    with pytest.raises(WeightsCorruptError):
        resolve_model(str(bundled))  # the same folder given as a path is checked too


def test_without_a_weights_lock_the_bundled_checkpoint_is_hashed_against_the_packages_own(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    """An installed wheel has no weights.lock beside it: `package.lock` inside the package still pins the files."""
    bundled = write_fake_checkpoint(weights.BUNDLED)
    weights.lock_bundled()
    assert read_lock(weights.package_lock_path()).checkpoints["default"] == read_lock().checkpoints["default"]
    monkeypatch.setenv("IMGEN_WEIGHTS_LOCK", str(isolated / "user" / "weights.lock"))  # no such file
    assert resolve_model(None) == bundled and weights.verify("default")[0].state == "ok"
    flip_byte(bundled / GENERATOR_FILE)
    for model in (None, "default", str(bundled)):
        with pytest.raises(WeightsCorruptError, match=r"generator\.safetensors has sha256"):
            resolve_model(model)
    assert weights.list_checkpoints(full=True)[0].state == "damaged"
    assert run_cli("verify").code == 3


def test_a_stale_default_entry_in_a_users_lock_does_not_outvote_the_packages_own(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    bundled = write_fake_checkpoint(weights.BUNDLED)
    weights.lock_bundled()  # the package's entry, and one in the user's lock
    write_fake_checkpoint(weights.BUNDLED, seed=1)  # an upgrade ships new files with their own package.lock
    shipped = read_lock(weights.package_lock_path())
    stale = read_lock().checkpoints["default"]
    described = (weights._describe(bundled / f.filename, "Apache-2.0", None, None) for f in stale.files)
    fresh = replace(stale, files=tuple(described))
    weights.write_lock(replace(shipped, checkpoints={"default": fresh}))
    assert resolve_model(None) == bundled and weights.verify("default")[0].state == "ok"
    assert [s.state for s in weights.list_checkpoints(full=True)] == ["ok"]


def test_an_installed_package_keeps_its_users_lock_in_the_cache_not_beside_the_package(
    isolated: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("IMGEN_WEIGHTS_LOCK")
    monkeypatch.setattr(weights, "PACKAGE_DIR", isolated / "site-packages" / "imgen")
    assert weights.default_lock_path() == weights.cache_root() / "weights.lock"
    (isolated / "site-packages" / "weights.lock").parent.mkdir(parents=True)
    (isolated / "site-packages" / "weights.lock").write_text("version = 1\n")  # written there by an older imgen
    assert weights.default_lock_path() == isolated / "site-packages" / "weights.lock"


def test_the_repositorys_lock_and_the_packages_agree_on_the_bundled_checkpoint():
    shipped = read_lock(PACKAGE_BUNDLED.parent / weights.PACKAGE_LOCK_NAME).checkpoints
    assert shipped["default"] == read_lock(ROOT / "weights.lock").checkpoints["default"]
    assert set(shipped) <= {p.name for p in PACKAGE_BUNDLED.parent.iterdir() if p.is_dir()}


def test_a_path_is_checked_against_the_lock_only_where_the_lock_lists_it(published: Path):
    folder = pull("tiny")
    assert resolve_model(str(folder / GENERATOR_FILE)) == folder
    other = write_fake_checkpoint(published.parent / "other", seed=1)
    assert resolve_model(other) == other
    flip_byte(folder / TOKENIZER_FILE)
    with pytest.raises(WeightsUnavailableError, match=r"does not match weights\.lock"):
        resolve_model(str(folder))
    swapped = write_fake_checkpoint(published.parent / "swapped", swap_kinds=True)
    with pytest.raises(WeightsUnavailableError, match="holds a 'imgen-generator' checkpoint where a 'imgen-vq'"):
        resolve_model(swapped)
    (swapped / GENERATOR_FILE).write_bytes(LFS_POINTER)
    with pytest.raises(WeightsUnavailableError, match="Git LFS pointer"):
        resolve_model(swapped)


def test_unknown_name_lists_the_known_ones(published: Path):
    with pytest.raises(UnknownCheckpointError, match=r"unknown checkpoint 'nope'.* lists tiny"):
        resolve_model("nope")
    result = run_cli("pull", "nope")
    assert result.code == 2 and result.err.startswith("imgen: error: unknown checkpoint 'nope'")
    assert run_cli("path", "nope").code == 2
    with pytest.raises(WeightsUnavailableError, match="no checkpoint at"):
        resolve_model("runs/does-not-exist")


def test_a_model_that_names_nothing_is_refused_without_reading_any_checkpoint(published: Path, tmp_path: Path):
    from imgen.weights import check_model_named

    with pytest.raises(UnknownCheckpointError, match=r"unknown checkpoint 'nope'.* lists tiny"):
        check_model_named("nope")
    with pytest.raises(WeightsUnavailableError, match="no checkpoint at"):
        check_model_named(str(tmp_path / "does-not-exist"))
    folder = write_fake_checkpoint(tmp_path / "mine")
    (folder / GENERATOR_FILE).write_bytes(b"damaged")  # named and present: what is in it is resolve_model's to say
    for named in (None, "default", "tiny", str(folder)):
        check_model_named(named)
    with pytest.raises(WeightsUnavailableError):
        resolve_model(str(folder))


# ---------------------------------------------------------------- add and push


def test_add_pins_a_folder_that_resolve_model_then_loads(isolated: Path, tiny_checkpoint: Path):
    from imgen import api, checkpoints

    assert (weights.TOKENIZER_FILE, weights.GENERATOR_FILE) == (api.TOKENIZER_FILE, api.GENERATOR_FILE)
    assert weights.EXPECTED_KINDS[api.TOKENIZER_FILE] == checkpoints.TOKENIZER_KIND
    assert PACKAGE_BUNDLED == api.BUNDLED

    result = run_cli("add", str(tiny_checkpoint), "--name", "mine")
    assert result.code == 0, result.err
    entry = read_lock().get("mine")
    assert entry.source == "local" and {item.filename for item in entry.files} == {TOKENIZER_FILE, GENERATOR_FILE}
    folder = resolve_model("mine")
    assert folder == cached("mine") and folder != tiny_checkpoint
    for item in entry.files:
        assert hashlib.sha256((folder / item.filename).read_bytes()).hexdigest() == item.sha256
    pipe = api.load(folder)
    assert pipe.generator.config.d_model == 32
    flip_byte(folder / GENERATOR_FILE)
    with pytest.raises(WeightsUnavailableError, match="never pushed"):
        resolve_model("mine")


def test_a_cached_checkpoint_that_cannot_be_fetched_again_is_never_deleted(isolated: Path):
    """A local entry whose lock moved on (another branch, a colleague's --replace): its cache may be the only copy."""
    add(write_fake_checkpoint(isolated / "source"), "mine")
    shutil.rmtree(isolated / "source")
    lock_text = weights.default_lock_path().read_text()
    changed = read_lock().get("mine").files[1].sha256
    weights.default_lock_path().write_text(lock_text.replace(changed, "0" * 64))
    before = {f.name: f.read_bytes() for f in cached("mine").iterdir()}
    for attempt in (lambda: resolve_model("mine"), lambda: pull("mine")):
        with pytest.raises(WeightsUnavailableError, match="never pushed"):
            attempt()
    with pytest.raises(WeightsUnavailableError, match=r"add FOLDER --name mine --replace") as refused:
        resolve_model("mine", download=False)
    assert "pull" not in str(refused.value)
    assert {f.name: f.read_bytes() for f in cached("mine").iterdir()} == before


def test_an_add_replace_that_fails_part_way_keeps_the_old_files_and_lock(
    isolated: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    add(tiny_checkpoint, "mine")
    before = {f.name: f.read_bytes() for f in cached("mine").iterdir()}
    lock_before = read_lock().get("mine")
    other = write_fake_checkpoint(isolated / "other")
    real_copy, calls = weights._copy_in, []

    def fail_on_the_second_file(*args, **kwargs):
        calls.append(args[0])
        if len(calls) == 2:
            raise OSError("No space left on device")
        return real_copy(*args, **kwargs)

    monkeypatch.setattr(weights, "_copy_in", fail_on_the_second_file)
    with pytest.raises(OSError, match="No space"):
        add(other, "mine", replace_existing=True)
    assert {f.name: f.read_bytes() for f in cached("mine").iterdir()} == before
    assert read_lock().get("mine") == lock_before
    assert list((weights.cache_root() / "tmp").iterdir()) == []
    assert resolve_model("mine") == cached("mine")  # still verifies against its lock entry


def test_an_add_replace_whose_lock_cannot_be_written_puts_the_old_files_back(
    isolated: Path, tiny_checkpoint: Path, monkeypatch: pytest.MonkeyPatch
):
    add(tiny_checkpoint, "mine")
    before = {f.name: f.read_bytes() for f in cached("mine").iterdir()}
    lock_before = read_lock().get("mine")

    def full_disk(lock):
        raise OSError("No space left on device")

    monkeypatch.setattr(weights, "write_lock", full_disk)
    with pytest.raises(OSError, match="No space"):
        add(write_fake_checkpoint(isolated / "other"), "mine", replace_existing=True)
    assert {f.name: f.read_bytes() for f in cached("mine").iterdir()} == before
    assert read_lock().get("mine") == lock_before
    assert resolve_model("mine") == cached("mine")  # the files still match the entry that pins them
    with pytest.raises(OSError, match="No space"):
        add(write_fake_checkpoint(isolated / "new"), "fresh")  # a first add: no file is left behind
    assert not cached("fresh").exists() or list(cached("fresh").iterdir()) == []


def test_add_refuses_a_tokenizer_the_generator_was_not_trained_with(isolated: Path, tiny_checkpoint: Path):
    import torch

    from imgen.checkpoints import save_tokenizer
    from imgen.tokenizer import VQ_SIZES, VQTokenizer

    mixed = isolated / "mixed"
    shutil.copytree(tiny_checkpoint, mixed)
    torch.manual_seed(1)  # the same sizes, other weights: pinned, it would fail every generate
    save_tokenizer(VQTokenizer(VQ_SIZES["tiny"]), mixed / TOKENIZER_FILE)
    with pytest.raises(WeightsInputError, match="not the one the generator was trained with"):
        add(mixed, "mixed")
    assert "mixed" not in read_lock().checkpoints
    add(tiny_checkpoint, "tiny")  # its own pair is pinned


def test_add_refuses_what_is_not_a_checkpoint(isolated: Path):
    with pytest.raises(WeightsInputError, match="holds a 'imgen-generator' checkpoint"):
        add(write_fake_checkpoint(isolated / "swapped", swap_kinds=True), "swapped")
    lfs = write_fake_checkpoint(isolated / "lfs")
    (lfs / TOKENIZER_FILE).write_bytes(LFS_POINTER)
    with pytest.raises(WeightsInputError, match="Git LFS pointer"):
        add(lfs, "lfs")
    good = write_fake_checkpoint(isolated / "good")
    with pytest.raises(WeightsInputError, match="invalid checkpoint name"):
        add(good, "Bad Name")
    with pytest.raises(WeightsInputError, match="--bundled"):
        add(good, "default")
    with pytest.raises(WeightsInputError, match="package folder"):
        add(good, "good", bundled=True)
    add(good, "good")
    with pytest.raises(WeightsInputError, match="--replace"):
        add(good, "good")
    add(write_fake_checkpoint(isolated / "good2", seed=5), "good", replace_existing=True)
    assert resolve_model("good") == cached("good")
    result = run_cli("add", str(isolated / "nowhere"), "--name", "x")
    assert result.code == 2 and result.err.startswith("imgen: error: ")


def test_push_pins_the_commit_and_others_can_pull_it(isolated: Path, hub: FakeHub):
    add(write_fake_checkpoint(isolated / "source"), "shared")
    uploads: list[str] = []

    class FakeApi:
        def create_repo(self, repo_id: str, **_: object) -> None:
            assert repo_id == REPO

        def create_commit(self, repo_id: str, operations: list, **_: object) -> SimpleNamespace:
            for operation in operations:
                uploads.append(operation.path_in_repo)
                key = f"/{repo_id}/resolve/{REVISION}/{operation.path_in_repo}"
                hub.files[key] = Path(operation.path_or_fileobj).read_bytes()
            return SimpleNamespace(oid=REVISION)

    entry = weights.push("shared", REPO, api=FakeApi())
    assert sorted(uploads) == sorted([TOKENIZER_FILE, GENERATOR_FILE])
    assert entry.source == "hub" and {(f.repo_id, f.revision) for f in entry.files} == {(REPO, REVISION)}
    assert read_lock().get("shared") == entry
    shutil.rmtree(cached("shared"))  # another machine: only the lock
    assert resolve_model("shared") == cached("shared")
    assert hub.gets() == 2


# ---------------------------------------------------------------- the lock file


def test_lock_round_trips_through_the_fallback_reader(published: Path, isolated: Path):
    write_fake_checkpoint(weights.BUNDLED)
    weights.lock_bundled()
    lock = read_lock()
    text = (isolated / "weights.lock").read_text()
    assert text.startswith("# imgen weights lock")
    assert (isolated / "weights.lock").stat().st_mode & 0o777 == 0o644  # not owner-only like a fresh temporary file
    assert dump_lock(lock.checkpoints.values()) == text
    data = toml_subset.parse_subset(text)
    assert list(data["checkpoints"]) == ["default", "tiny"]
    first = data["checkpoints"]["tiny"]["files"][0]
    assert set(first) == {"filename", "repo_id", "revision", "size", "sha256", "license"}
    tricky = 'a = "q\\"uote \\u00e9\\\\"  # comment\n[t."dotted.key"]\nn = -1_000\nb = true\n[[t.arr]]\nx = 1\n'
    assert toml_subset.parse_subset(tricky) == {
        "a": 'q"uote \u00e9\\',
        "t": {"dotted.key": {"n": -1000, "b": True}, "arr": [{"x": 1}]},
    }
    with pytest.raises(toml_subset.TomlError, match=":2:"):
        toml_subset.parse_subset("a = 1\nb = [1, 2]\n")
    # what a training config (--config) holds, read without tomllib as on Python 3.10
    numbers = "lr = 3e-4\nmax_minutes = 90.5\nbox_masks = 0.25\ny = -2.5E+3\nsteps = 10_500\n"
    assert toml_subset.parse_subset(numbers) == {
        "lr": 3e-4, "max_minutes": 90.5, "box_masks": 0.25, "y": -2500.0, "steps": 10500,
    }  # fmt: skip
    for bad in ("a = 1.", "a = .5", "a = 1e", "a = 01.5"):  # not TOML floats
        with pytest.raises(toml_subset.TomlError):
            toml_subset.parse_subset(bad)


def test_the_fallback_reader_reads_the_lock_as_tomllib_does(published: Path, isolated: Path):
    tomllib = pytest.importorskip("tomllib")  # the reference reader, in the standard library from Python 3.11
    write_fake_checkpoint(weights.BUNDLED)
    weights.lock_bundled()
    text = (isolated / "weights.lock").read_text()
    assert toml_subset.parse_subset(text) == tomllib.loads(text)
    tricky = 'a = "q\\"uote \\u00e9\\\\"  # comment\n[t."dotted.key"]\nn = -1_000\nb = true\n[[t.arr]]\nx = 1\n'
    assert toml_subset.parse_subset(tricky) == tomllib.loads(tricky)


def test_a_malformed_lock_is_bad_input(published: Path, isolated: Path):
    lock_file = isolated / "weights.lock"
    lock_file.write_text(lock_file.read_text().replace('sha256 = "', 'sha256 = "zz', 1))
    with pytest.raises(WeightsInputError, match="sha256 must be 64"):
        read_lock()
    result = run_cli("list")
    assert result.code == 2 and result.err.startswith("imgen: error: ")
    lock_file.write_text("this is not toml\n")
    assert run_cli("verify").code == 2


def test_help_has_examples():
    assert "Examples:" in run_cli("--help").out
    for command in ("list", "pull", "verify", "path", "add", "push"):
        assert "Example" in run_cli(command, "--help").out
