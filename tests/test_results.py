"""Reading what a model left in ``result.json``: bounded, and never trusted (issue 9).

Every case is a real file in ``tmp_path``; the 300 MB one is sparse, so it costs no disk.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from sandbox_kit import Settings
from sandbox_kit.errors import ValidationError
from sandbox_kit.results import (
    MAX_METRICS,
    NAME_MAX,
    RESULT_MAX_BYTES,
    ResultSummary,
    read_result,
    summarize,
)

MB = 1 << 20


def write(folder: Path, data: Any) -> Path:
    path = folder / "result.json"
    path.write_text(data if isinstance(data, str) else json.dumps(data), encoding="utf-8")
    return path


def sparse(folder: Path, n_bytes: int) -> Path:
    """A result.json of ``n_bytes`` that takes no disk space (and is no valid JSON)."""
    path = folder / "result.json"
    with open(path, "wb") as fh:
        fh.truncate(n_bytes)
    return path


# -- read_result -----------------------------------------------------------------------------


def test_a_300_mb_result_is_refused_unread(tmp_path: Path) -> None:
    sparse(tmp_path, 300 * MB)
    with pytest.raises(ValidationError) as err:
        read_result(tmp_path)
    assert str(err.value) == "result.json is 300.0 MB, over the 1.0 MB limit; it was not read"


def test_the_limit_is_a_parameter(tmp_path: Path) -> None:
    write(tmp_path, {"outcome": "optimal", "pad": "x" * 2000})
    assert read_result(tmp_path, max_bytes=4096) is not None
    with pytest.raises(ValidationError, match=r"over the 1\.0 KB limit"):
        read_result(tmp_path, max_bytes=1024)


def test_a_missing_result_is_none(tmp_path: Path) -> None:
    assert read_result(tmp_path) is None
    assert summarize(tmp_path) == ResultSummary()


def test_a_symlinked_result_is_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"outcome": "optimal", "message": "not yours"}')
    folder = tmp_path / "result"
    folder.mkdir()
    (folder / "result.json").symlink_to(secret)
    with pytest.raises(ValidationError, match="symbolic link"):
        read_result(folder)


def test_a_fifo_result_does_not_hang_the_reader(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "result.json")
    assert summarize(tmp_path).error == "result.json is not a regular file; it was not read"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{nope", "invalid JSON"),
        ("[1, 2]", "result must be a JSON object"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ('{"objective": ' + "9" * 5000 + "}", "invalid JSON"),  # past Python's int limit
        (b"\xff\xfe{}", "not UTF-8"),
    ],
)
def test_bad_results_are_validation_errors(
    tmp_path: Path, content: str | bytes, expected: str
) -> None:
    path = tmp_path / "result.json"
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(ValidationError, match=expected):
        read_result(tmp_path)
    result = summarize(tmp_path)
    assert result.outcome == "error" and result.error is not None and expected in result.error
    assert result.objective is None and result.metrics == {}


# -- summarize -------------------------------------------------------------------------------


def test_summarize_of_a_300_mb_result_says_why_and_reads_nothing(tmp_path: Path) -> None:
    sparse(tmp_path, 300 * MB)
    result = summarize(tmp_path, max_bytes=MB)
    assert result == ResultSummary(
        outcome="error",
        error="result.json is 300.0 MB, over the 1.0 MB limit; it was not read",
    )


def test_summarize_keeps_a_clean_result_as_it_is(tmp_path: Path) -> None:
    write(
        tmp_path,
        {"outcome": "optimal", "objective": 12.5, "metrics": {"gap": 0.0, "nodes": 3}},
    )
    assert summarize(tmp_path) == ResultSummary("optimal", 12.5, {"gap": 0.0, "nodes": 3.0})


def test_at_most_max_metrics_names_are_kept(tmp_path: Path) -> None:
    write(tmp_path, {"metrics": {f"m{i}": i for i in range(250)}})
    result = summarize(tmp_path, max_metrics=200)
    assert list(result.metrics) == [f"m{i}" for i in range(200)]  # the file's order
    assert result.warnings == ("50 metrics dropped: only the first 200 are kept",)
    assert result.error is None


def test_as_many_metrics_as_fit_under_the_size_limit(tmp_path: Path) -> None:
    write(tmp_path, {"outcome": "optimal", "metrics": {f"{i:x}": 1 for i in range(80_000)}})
    assert (tmp_path / "result.json").stat().st_size < RESULT_MAX_BYTES
    result = summarize(tmp_path)
    assert len(result.metrics) == MAX_METRICS
    assert result.warnings == ("79800 metrics dropped: only the first 200 are kept",)


def test_non_finite_values_are_dropped_with_a_warning_naming_them(tmp_path: Path) -> None:
    write(
        tmp_path,
        '{"objective": NaN, "metrics": {"gap": Infinity, "cost": -Infinity, "ok": 1, "bad": NaN}}',
    )
    result = summarize(tmp_path)
    assert result.metrics == {"ok": 1.0} and result.objective is None
    assert result.warnings == (
        "result objective dropped: nan is not finite",
        "metrics dropped, not finite: gap, cost, bad",
    )


def test_a_long_list_of_dropped_names_is_cut_in_the_warning(tmp_path: Path) -> None:
    write(tmp_path, '{"metrics": {' + ", ".join(f'"n{i}": NaN' for i in range(8)) + "}}")
    [warning] = summarize(tmp_path).warnings
    assert warning == "metrics dropped, not finite: n0, n1, n2, n3, n4 and 3 more"


def test_values_that_are_not_numbers_are_dropped(tmp_path: Path) -> None:
    write(tmp_path, {"objective": "12", "metrics": {"flag": True, "s": "x", "n": None, "v": 2}})
    result = summarize(tmp_path)
    assert result.objective is None and result.metrics == {"v": 2.0}
    assert result.warnings == (
        "result objective dropped: '12' is not a number",
        "metrics dropped, not numbers: flag, s, n",
    )


def test_long_names_and_outcomes_are_cut(tmp_path: Path) -> None:
    write(tmp_path, {"outcome": "o" * 100, "metrics": {"x" * 5000: 1.0, "y": 2.0}})
    result = summarize(tmp_path)
    assert result.outcome == "o" * 32  # the registry's outcome column width
    assert list(result.metrics) == ["x" * NAME_MAX, "y"]
    assert len(result.warnings) == 2
    assert result.warnings[0].startswith("result outcome cut to 32 characters: ooo")
    assert result.warnings[1] == f"1 metric names cut to {NAME_MAX} characters"
    assert all(len(w) < 200 and "\n" not in w for w in result.warnings)


def test_warnings_are_single_lines(tmp_path: Path) -> None:
    write(tmp_path, {"outcome": "a\nb", "metrics": {"line\nbreak": float("nan"), "x\ty": 1}})
    result = summarize(tmp_path)
    assert result.outcome == "a b" and result.metrics == {"x y": 1.0}
    assert result.warnings == ("metrics dropped, not finite: line break",)


def test_metrics_that_are_not_an_object_are_ignored(tmp_path: Path) -> None:
    write(tmp_path, {"outcome": "optimal", "metrics": [1, 2]})
    result = summarize(tmp_path)
    assert result.metrics == {} and result.outcome == "optimal"
    assert result.warnings == ("result metrics ignored: expected an object, got list",)


def test_settings_defaults_match_the_readers_defaults() -> None:
    settings = Settings()
    assert settings.result_max_bytes == RESULT_MAX_BYTES == MB
    assert settings.max_metrics == MAX_METRICS == 200


def test_settings_from_the_environment() -> None:
    settings = Settings.from_env(
        {
            "SANDBOX_RESULT_MAX_MB": "4",
            "SANDBOX_MAX_METRICS": "50",
            "SANDBOX_PREVIEW_ROWS": "20",
            "SANDBOX_INLINE_MAX_MB": "2",
        }
    )
    assert settings.result_max_bytes == 4 * MB and settings.max_metrics == 50
    assert settings.preview_rows == 20 and settings.inline_max_bytes == 2 * MB
    defaults = Settings.from_env({})
    assert defaults.preview_rows == 200 and defaults.inline_max_bytes == 20 * MB
    with pytest.raises(ValidationError, match="SANDBOX_MAX_METRICS must be a whole number"):
        Settings.from_env({"SANDBOX_MAX_METRICS": "many"})
