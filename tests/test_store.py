"""The store (issue 12): trees and bytes under keys, in a folder and in S3 (moto's server)."""

from __future__ import annotations

import os
from pathlib import Path

import fsspec
import pytest

from sandbox_kit.config import Paths, Settings
from sandbox_kit.errors import StoreError, ValidationError
from sandbox_kit.store import Store
from tests.dask_fixtures import _moto_endpoint, s3_store_url
from tests.test_package import _imported_after

__all__ = ["_moto_endpoint", "s3_store_url"]  # the fixtures, imported for the tests below

BINARY = bytes(range(256)) * 4000  # ~1 MiB, every byte value


@pytest.fixture(params=["folder", "s3"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Store:
    """A store on each backend: a folder, and a bucket of a local S3 server."""
    if request.param == "folder":
        return Store(str(tmp_path / "store"))
    return Store(str(request.getfixturevalue("s3_store_url")))


def _tree(root: Path, files: dict[str, bytes]) -> Path:
    for relative, data in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def _read_tree(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


def _raw(store: Store, relative: str, data: bytes) -> None:
    """Write under the store's URL without the store (what another program, or a crash, left)."""
    with fsspec.open(f"{store.url}/{relative}", "wb", auto_mkdir=True) as out:
        out.write(data)


FILES = {
    "result.json": b'{"outcome": "optimal", "objective": 42.5}',
    "tables/dispatch.csv": b"unit,mw\ng1,100\n",
    "tables/deep/er/nested.bin": BINARY,
    "empty.txt": b"",
    "caf\u00e9 menu.txt": "na\u00efve".encode(),
}


def test_a_tree_round_trips(store: Store, tmp_path: Path) -> None:
    source = _tree(tmp_path / "src", FILES)
    sent = store.put_dir(source, "results/DMO_1764331200000_k3f9qa")
    assert sent == sum(len(data) for data in FILES.values())
    assert store.exists("results/DMO_1764331200000_k3f9qa")
    dest = tmp_path / "dest" / "inner"
    assert store.get_dir("results/DMO_1764331200000_k3f9qa", dest) is True
    assert _read_tree(dest) == FILES
    # A tree is not bytes.
    assert store.get_bytes("results/DMO_1764331200000_k3f9qa") is None


def test_putting_a_tree_replaces_the_old_one_entirely(store: Store, tmp_path: Path) -> None:
    store.put_dir(_tree(tmp_path / "a", FILES), "results/job")
    newer = {"result.json": b"{}", "other/x.csv": b"a\n"}
    assert store.put_dir(_tree(tmp_path / "b", newer), "results/job") == 4
    assert store.get_dir("results/job", tmp_path / "out")
    assert _read_tree(tmp_path / "out") == newer
    # Bytes replace a tree, and a tree replaces bytes.
    store.put_bytes("results/job", b"now bytes")
    assert store.get_bytes("results/job") == b"now bytes"
    assert store.get_dir("results/job", tmp_path / "gone") is False
    assert not (tmp_path / "gone").exists()
    store.put_dir(_tree(tmp_path / "c", {"f": b"tree again"}), "results/job")
    assert store.get_bytes("results/job") is None
    assert store.get_dir("results/job", tmp_path / "again")
    assert _read_tree(tmp_path / "again") == {"f": b"tree again"}


def test_an_empty_folder_is_an_empty_tree(store: Store, tmp_path: Path) -> None:
    (tmp_path / "empty" / "only-folders").mkdir(parents=True)
    assert store.put_dir(tmp_path / "empty", "trees/empty") == 0
    assert store.exists("trees/empty")
    assert store.get_dir("trees/empty", tmp_path / "out") is True
    assert (tmp_path / "out").is_dir() and _read_tree(tmp_path / "out") == {}


def test_bytes_round_trip_and_delete(store: Store) -> None:
    store.put_bytes("data/sets/a.json", b'{"x": 1}')
    store.put_bytes("data/sets/empty", b"")
    store.put_bytes("data/sets/binary", BINARY)
    assert store.get_bytes("data/sets/a.json") == b'{"x": 1}'
    assert store.get_bytes("data/sets/empty") == b""
    assert store.get_bytes("data/sets/binary") == BINARY
    store.put_bytes("data/sets/a.json", b"replaced")
    assert store.get_bytes("data/sets/a.json") == b"replaced"
    store.delete("data/sets/a.json")
    assert store.get_bytes("data/sets/a.json") is None
    assert not store.exists("data/sets/a.json")
    assert store.exists("data/sets/empty")


def test_absent_keys(store: Store, tmp_path: Path) -> None:
    assert store.get_bytes("no/such/key") is None
    assert store.exists("no/such/key") is False
    assert store.get_dir("no/such/key", tmp_path / "out") is False
    assert not (tmp_path / "out").exists()
    store.delete("no/such/key")  # absent is fine


def test_delete_removes_a_tree(store: Store, tmp_path: Path) -> None:
    store.put_dir(_tree(tmp_path / "src", FILES), "results/job")
    store.put_bytes("results/other", b"kept")
    store.delete("results/job")
    assert not store.exists("results/job")
    assert store.get_dir("results/job", tmp_path / "out") is False
    assert store.get_bytes("results/other") == b"kept"
    # Nothing of the tree is left under the URL, manifest included.
    fs, root = fsspec.core.url_to_fs(store.url)
    assert not [p for p in fs.find(root) if "/results/job" in p]


def test_a_tree_without_its_manifest_is_absent(store: Store, tmp_path: Path) -> None:
    # What an upload interrupted before its manifest leaves behind.
    _raw(store, "results/half/result.json", b"{}")
    assert store.exists("results/half") is False
    assert store.get_dir("results/half", tmp_path / "out") is False
    # The next upload replaces the leftovers.
    store.put_dir(_tree(tmp_path / "src", {"table.csv": b"a\n"}), "results/half")
    assert store.get_dir("results/half", tmp_path / "out")
    assert _read_tree(tmp_path / "out") == {"table.csv": b"a\n"}


BAD_KEYS = [
    "",
    "/abs",
    "trailing/",
    "a//b",
    ".",
    "..",
    "../escape",
    "a/../b",
    "a/./b",
    "with space",
    "back\\slash",
    "caf\u00e9",
    "tree@tree.json",
    "~staging/x",
    "new\nline",
    "x" * 513,
]


@pytest.mark.parametrize("key", BAD_KEYS)
def test_bad_keys_are_refused_and_change_nothing(store: Store, tmp_path: Path, key: str) -> None:
    source = _tree(tmp_path / "src", {"f": b"x"})
    operations = [
        lambda: store.put_dir(source, key),
        lambda: store.get_dir(key, tmp_path / "out"),
        lambda: store.put_bytes(key, b"x"),
        lambda: store.get_bytes(key),
        lambda: store.exists(key),
        lambda: store.delete(key),
    ]
    for operation in operations:
        with pytest.raises(ValidationError, match="is not a store key: use names of letters"):
            operation()
    assert not (tmp_path / "out").exists()
    fs, root = fsspec.core.url_to_fs(store.url)
    assert not fs.exists(root) or fs.find(root) == []


def test_the_longest_key_is_accepted(store: Store) -> None:
    key = "/".join(["k" * 99] * 5) + "/" + "z" * 12
    assert len(key) == 512
    store.put_bytes(key, b"ok")
    assert store.get_bytes(key) == b"ok"


def test_symlinks_and_special_files_are_skipped(store: Store, tmp_path: Path) -> None:
    secret = tmp_path / "outside" / "secret.txt"
    secret.parent.mkdir()
    secret.write_bytes(b"not for the store")
    source = _tree(tmp_path / "src", {"result.json": b"{}", "sub/kept.csv": b"a\n"})
    (source / "link-to-file").symlink_to(secret)
    (source / "link-to-folder").symlink_to(secret.parent, target_is_directory=True)
    (source / "sub" / "dangling").symlink_to(tmp_path / "nowhere")
    os.mkfifo(source / "pipe")  # would block a reader that opened it
    assert store.put_dir(source, "results/linked") == 4
    assert store.get_dir("results/linked", tmp_path / "out")
    assert _read_tree(tmp_path / "out") == {"result.json": b"{}", "sub/kept.csv": b"a\n"}
    assert not any(p.is_symlink() for p in (tmp_path / "out").rglob("*"))


def test_a_linked_or_missing_source_folder_is_refused(store: Store, tmp_path: Path) -> None:
    real = _tree(tmp_path / "real", {"f": b"x"})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    for source in (tmp_path / "link", tmp_path / "missing", real / "f"):
        with pytest.raises(ValidationError, match="is not a folder"):
            store.put_dir(source, "results/x")
    assert not store.exists("results/x")


@pytest.mark.parametrize("entry", ["../evil.txt", "/etc/evil.txt", "a/../../evil.txt", "a//b"])
def test_get_refuses_entries_that_land_outside(store: Store, tmp_path: Path, entry: str) -> None:
    store.put_dir(_tree(tmp_path / "src", {"ok.txt": b"fine"}), "results/forged")
    forged = f'{{"files": [{{"path": "ok.txt", "size": 4}}, {{"path": "{entry}", "size": 1}}]}}'
    _raw(store, "results/forged@tree.json", forged.encode())
    dest = tmp_path / "deep" / "dest"
    with pytest.raises(StoreError, match="would land outside") as caught:
        store.get_dir("results/forged", dest)
    assert repr(entry) in str(caught.value) and "nothing was written" in str(caught.value)
    assert not (tmp_path / "deep").exists()
    assert not (tmp_path / "evil.txt").exists()


def test_get_does_not_follow_a_link_in_the_destination(store: Store, tmp_path: Path) -> None:
    store.put_dir(_tree(tmp_path / "src", {"sub/f.txt": b"x"}), "results/t")
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (dest / "sub").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    with pytest.raises(StoreError, match="in the way"):
        store.get_dir("results/t", dest)
    assert list((tmp_path / "elsewhere").iterdir()) == []


def test_an_unusable_folder_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    store = Store(str(blocker / "store"))
    with pytest.raises(StoreError, match=r"^cannot write k in the store at .*a-file/store: "):
        store.put_bytes("k", b"x")
    with pytest.raises(StoreError, match=r"^cannot write k in the store at "):
        store.put_dir(_tree(tmp_path / "src", {"f": b"x"}), "k")
    with pytest.raises(StoreError, match=r"^cannot read k in the store at "):
        store.get_bytes("k")
    assert blocker.read_text() == "not a folder"


def test_an_unreachable_s3_server_is_a_store_error(
    s3_store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # Port 9 (discard) has no listener here; one attempt, not botocore's five.
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    store = Store(s3_store_url)
    with pytest.raises(StoreError, match="Could not connect to the endpoint URL") as caught:
        store.get_bytes("results/x")
    assert str(caught.value).startswith(f"cannot read results/x in the store at {s3_store_url}: ")
    assert caught.value.url == s3_store_url
    with pytest.raises(StoreError, match="cannot write results/x"):
        store.put_dir(_tree(tmp_path / "src", {"f": b"x"}), "results/x")


def test_a_missing_bucket_is_an_error_not_an_absent_key(s3_store_url: str, tmp_path: Path) -> None:
    store = Store("s3://no-such-bucket-here/prefix")
    for operation in (
        lambda: store.get_bytes("k"),
        lambda: store.exists("k"),
        lambda: store.get_dir("k", tmp_path / "out"),
        lambda: store.put_bytes("k", b"x"),
    ):
        with pytest.raises(StoreError, match="bucket does not exist"):
            operation()


def test_missing_credentials_are_a_store_error(
    s3_store_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    store = Store(s3_store_url)
    with pytest.raises(StoreError, match="credentials"):
        store.put_bytes("k", b"x")


def test_the_url_is_shown_without_credentials() -> None:
    store = Store("s3://AKIAEXAMPLE:pa55word@bucket/prefix?token=t0ken")
    assert "pa55word" not in repr(store) and "t0ken" not in repr(store)
    assert repr(store) == "Store('s3://bucket/prefix')"


def test_an_unknown_protocol_is_refused() -> None:
    with pytest.raises(ValidationError, match="the store URL nosuch://bucket is not usable"):
        Store("nosuch://bucket")
    with pytest.raises(ValidationError, match="the store URL is empty"):
        Store(" ")


def test_from_settings(tmp_path: Path) -> None:
    paths = Paths.resolve(tmp_path / "home")
    store = Store.from_settings(Settings(), paths)
    assert store.url == str(paths.store)
    assert paths.store.is_dir() and paths.store.stat().st_mode & 0o777 == 0o700
    elsewhere = tmp_path / "shared-store"
    assert Store.from_settings(Settings(store=str(elsewhere)), paths).url == str(elsewhere)
    assert Store(f"file://{elsewhere}").url == f"file://{elsewhere}"


def test_a_relative_folder_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert Store("rel/store").url == str(tmp_path / "rel" / "store")


def test_the_local_executor_does_not_load_the_store_libraries() -> None:
    loaded = _imported_after("import sandbox_kit, sandbox_kit.sandbox, sandbox_kit.cli")
    assert loaded & {"fsspec", "s3fs", "dask", "distributed", "botocore"} == set()
    assert "fsspec" in _imported_after("import sandbox_kit.store; sandbox_kit.store.Store('x')")
