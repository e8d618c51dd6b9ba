"""Versioned data sets (issue 11): versions, dedupe, read-only storage and mounts, hostile
names and archives refused with nothing stored, delete refused while in use, data sources."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from sandbox_kit import Sandbox, Settings
from sandbox_kit.errors import ConflictError, NotFoundError, ValidationError
from tests.conftest import cli, script

ARCHIVES = Path(__file__).with_name("archives")


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def stored_entries(sb: Sandbox) -> list[str]:
    return sorted(os.listdir(sb.paths.data))


def test_versions_dedupe_and_lookup(sandbox: Sandbox, tmp_path: Path) -> None:
    first = write(tmp_path / "a", {"load.csv": "hour,mw\n1,100\n"}) / "load.csv"
    v1 = sandbox.add_data(first, name="load_forecast", description="first")
    again = sandbox.add_data(first, name="load_forecast")
    assert (again.id, again.version) == (v1.id, 1)  # identical content: the stored version
    first.write_text("hour,mw\n1,105\n")
    v2 = sandbox.add_data(first, name="load_forecast")
    assert (v2.version, v2.source) == (2, "data:load_forecast@2")
    assert v2.sha256 != v1.sha256 and v2.files == 1 and v2.size == len("hour,mw\n1,105\n")
    other = sandbox.add_data(first, name="other")  # same bytes, another name: its own v1
    assert (other.version, other.sha256, other.path) == (1, v2.sha256, v2.path)
    assert [d.label for d in sandbox.data_sets()] == [
        "load_forecast@2",
        "load_forecast@1",
        "other@1",
    ]
    assert sandbox.data_set("load_forecast").version == 2
    assert sandbox.data_set("data:load_forecast@1").description == "first"
    with pytest.raises(NotFoundError, match="no data set with id load_forecast@3"):
        sandbox.data_set("load_forecast@3")
    with pytest.raises(NotFoundError):
        sandbox.data_set("missing")


def test_stored_files_are_world_readable_and_read_only(lite: Sandbox, tmp_path: Path) -> None:
    folder = write(tmp_path / "in", {"a.csv": "1\n", "sub/b.json": "{}"})
    data_set = lite.add_data(folder, name="inputs")
    root = Path(data_set.path)
    assert root.parent == lite.paths.data and root.name == data_set.sha256
    assert data_set.kind == "folder" and data_set.files == 2
    modes = {
        p.relative_to(root).as_posix(): stat.S_IMODE(p.stat().st_mode) for p in root.rglob("*")
    }
    assert modes == {"a.csv": 0o444, "sub": 0o555, "sub/b.json": 0o444}
    assert stat.S_IMODE(root.stat().st_mode) == 0o555
    assert stored_entries(lite) == [data_set.sha256]  # no staging folder left behind


def test_a_zip_is_stored_extracted_and_equals_its_folder(lite: Sandbox, tmp_path: Path) -> None:
    zipped = lite.add_data(ARCHIVES / "forecast.zip", name="forecast")
    assert zipped.kind == "zip" and zipped.files == 2
    assert (Path(zipped.path) / "forecast" / "load.csv").read_text() == "hour,mw\n1,100\n2,120\n"
    folder = write(
        tmp_path / "copy",
        {
            "forecast/load.csv": "hour,mw\n1,100\n2,120\n",
            "forecast/prices.csv": "hour,price\n1,30\n2,35\n",
        },
    )
    same = lite.add_data(folder, name="forecast")
    assert (same.id, same.sha256) == (zipped.id, zipped.sha256)  # the content is the identity
    assert [f for f, _ in lite.datastore.files(same)] == [
        "forecast/load.csv",
        "forecast/prices.csv",
    ]


@pytest.mark.parametrize(
    ("archive", "message"),
    [
        ("zip_slip.zip", "zip_slip.zip: ../../escaped.txt: leads out of its folder"),
        ("zip_absolute.zip", "/tmp/absolute_escape.txt: is an absolute path"),
        ("zip_symlink.zip", "zip_symlink.zip: passwd: is a symbolic link"),
    ],
)
def test_hostile_archives_are_refused_with_nothing_stored(
    lite: Sandbox, archive: str, message: str
) -> None:
    with pytest.raises(ValidationError, match=message.replace(".", r"\.")):
        lite.add_data(ARCHIVES / archive, name="hostile")
    assert lite.data_sets() == []
    assert stored_entries(lite) == []
    assert not (lite.home.parent / "escaped.txt").exists()
    assert not Path("/tmp/absolute_escape.txt").exists()


def test_symbolic_links_are_refused(lite: Sandbox, tmp_path: Path) -> None:
    folder = write(tmp_path / "in", {"a.csv": "1\n"})
    (folder / "secrets").symlink_to("/etc/passwd")
    with pytest.raises(ValidationError, match="in/secrets: is a symbolic link"):
        lite.add_data(folder, name="linked")
    link = tmp_path / "link.csv"
    link.symlink_to(folder / "a.csv")
    with pytest.raises(ValidationError, match=r"link\.csv: is a symbolic link"):
        lite.add_data(link, name="linked")
    assert lite.data_sets() == [] and stored_entries(lite) == []


@pytest.mark.parametrize(
    "name", ["", "../up", "a/b", ".hidden", "x" * 101, "a b", "data:x", "x@1", "tab\tname"]
)
def test_hostile_names_are_refused(lite: Sandbox, tmp_path: Path, name: str) -> None:
    path = write(tmp_path, {"a.csv": "1\n"}) / "a.csv"
    with pytest.raises(ValidationError, match="is not allowed"):
        lite.add_data(path, name=name)
    assert lite.data_sets() == [] and stored_entries(lite) == []


def test_the_size_limit_counts_a_zip_extracted(home: Path, tmp_path: Path) -> None:
    sb = Sandbox(home=home, settings=Settings(data_max_bytes=30))
    try:
        big = tmp_path / "big.csv"
        big.write_text("x" * 31)
        with pytest.raises(ValidationError, match="is more than the data set limit of 30 B"):
            sb.add_data(big, name="big")
        # 287 bytes zipped, 45 bytes extracted: the extracted size is what counts.
        with pytest.raises(ValidationError, match="extracts to more than the data set limit"):
            sb.add_data(ARCHIVES / "forecast.zip", name="big")
        empty = tmp_path / "empty"
        empty.mkdir()
        with pytest.raises(ValidationError, match="holds no files"):
            sb.add_data(empty, name="big")
        assert sb.data_sets() == [] and stored_entries(sb) == []
        small = sb.add_data(b"h,v\n1,2\n", name="small", filename="small.csv")
        assert (Path(small.path) / "small.csv").read_bytes() == b"h,v\n1,2\n"
    finally:
        sb.close()


def upload(sb: Sandbox, name: str) -> int:
    return sb.upload(script(name), "DMO", name=Path(name).stem).id


def test_a_model_cannot_write_into_its_data_source(lite: Sandbox, tmp_path: Path) -> None:
    folder = write(tmp_path / "in", {"load.csv": "hour,mw\n1,100\n"})
    data_set = lite.add_data(folder, name="load")
    job = lite.run(upload(lite, "data_writer.py"), data_source_id="data:load")
    info = job.wait(timeout=60)
    assert info.status.value == "success", info.reason
    report = json.loads(job.logs()[-1].text)
    assert report["names"] == ["load.csv"] and report["read"] == "hour,mw\n1,100\n"
    for attempt in ("create", "append", "remove", "chmod", "rename"):
        assert report[attempt] in ("OSError", "PermissionError"), (attempt, report)
    assert os.listdir(data_set.path) == ["load.csv"]
    assert (Path(data_set.path) / "load.csv").read_text() == "hour,mw\n1,100\n"
    assert (info.data_source, info.data_source_sha256) == ("data:load@1", data_set.sha256)


def test_delete_is_refused_while_a_job_uses_it(lite: Sandbox, tmp_path: Path) -> None:
    path = write(tmp_path, {"a.csv": "1\n"}) / "a.csv"
    lite.add_data(path, name="inputs")
    shared = lite.add_data(path, name="shared")  # the same content under another name
    job = lite.run(upload(lite, "hang.py"), data_source_id="data:inputs@1")
    with pytest.raises(ConflictError, match=f"inputs@1 is used by job {job.id}"):
        lite.delete_data("inputs")
    assert [d.label for d in lite.data_sets("inputs")] == ["inputs@1"]
    job.cancel()
    job.wait(timeout=30)
    assert [d.label for d in lite.delete_data("inputs")] == ["inputs@1"]
    assert lite.data_sets("inputs") == []
    assert Path(shared.path).is_dir()  # still held by "shared"
    lite.delete_data("shared@1")
    assert stored_entries(lite) == []
    # Both changes are in the audit trail, newest first.
    assert [e.object_id for e in lite.audit(action="data_delete")] == ["shared@1", "inputs@1"]
    assert [e.object_id for e in lite.audit(action="data_add")] == ["shared@1", "inputs@1"]


def test_data_sources_are_pinned_when_the_job_is_created(lite: Sandbox, tmp_path: Path) -> None:
    model = upload(lite, "outcome_writer.py")
    path = write(tmp_path, {"a.csv": "1\n"}) / "a.csv"
    lite.add_data(path, name="inputs")
    first = lite.run(model, data_source_id="data:inputs")
    path.write_text("2\n")
    lite.add_data(path, name="inputs")  # v2 arrives after the job was created
    info = first.wait(timeout=60)
    assert (info.data_source_id, info.data_source) == ("data:inputs", "data:inputs@1")
    assert info.data_source_sha256 == lite.data_set("inputs@1").sha256
    failed = lite.run(model, config={"exit": 3})
    assert failed.wait(timeout=60).status.value == "failed"
    newest = lite.run(model, config={"objective": 2.0})
    newest.wait(timeout=60)
    for asked, label in [
        ("latest:dmo", f"job:{newest.id}"),  # the newest success, never the failed run
        (f"job:{first.id}", f"job:{first.id}"),
        (first.id, f"job:{first.id}"),  # a bare job id, as before
    ]:
        ran = lite.run(model, data_source_id=asked).wait(timeout=60)
        assert (ran.status.value, ran.data_source) == ("success", label)
        assert ran.data_source_sha256 is not None
    assert "data: ['result.json']" in [line.text for line in lite.job(ran.id).logs()]
    with pytest.raises(ValidationError, match=f"job {failed.id} is failed"):
        lite.run(model, data_source_id=f"job:{failed.id}")
    with pytest.raises(NotFoundError, match="no data set with id nope"):
        lite.run(model, data_source_id="data:nope")
    with pytest.raises(NotFoundError, match="no job with id DMO_1_abcdef"):
        lite.run(model, data_source_id="DMO_1_abcdef")
    with pytest.raises(ValidationError, match="no successful SO job yet"):
        lite.run(model, data_source_id="latest:SO")
    outside = lite.run(model, data_source_id="forecast-2024-07").wait(timeout=60)
    assert (outside.data_source, outside.data_source_sha256) == ("forecast-2024-07", None)


def test_data_commands(home: Path, tmp_path: Path) -> None:
    folder = write(tmp_path / "week", {"load.csv": "1\n", "bids/b.csv": "2\n"})
    added = cli("data", "add", str(folder), "--name", "week", "--description", "w1", home=home)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip().splitlines()[-1] == "data:week@1"
    assert "Stored data set week@1 (2 file(s)" in added.stderr
    again = cli("data", "add", str(folder), "--name", "week", "--json", home=home)
    shown = json.loads(again.stdout)
    assert (shown["version"], shown["created"], shown["files"]) == (1, False, 2)
    listed = cli("data", "list", home=home)
    assert "week  1" in listed.stdout and "w1" in listed.stdout
    detail = json.loads(cli("data", "show", "week", "--json", home=home).stdout)
    assert [f["path"] for f in detail["file_list"]] == ["bids/b.csv", "load.csv"]
    slip = cli("data", "add", str(ARCHIVES / "zip_slip.zip"), "--name", "bad", home=home)
    assert slip.returncode == 1 and slip.stderr.startswith("Error: ")
    assert "leads out of its folder" in slip.stderr and "Traceback" not in slip.stderr
    refused = cli("data", "delete", "week", home=home, stdin="")
    assert refused.returncode == 1 and "pass --yes" in refused.stderr
    deleted = cli("data", "delete", "week", "--yes", home=home)
    assert deleted.returncode == 0 and "Deleted data set week@1." in deleted.stdout
    missing = cli("data", "show", "week", home=home)
    assert missing.returncode == 1 and "no data set with id week" in missing.stderr
    assert sorted(os.listdir(home / "data")) == []
