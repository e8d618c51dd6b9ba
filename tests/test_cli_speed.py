"""The CLI's import weight: read commands load nothing they do not need (issue 9).

Every CLI call pays for each module it imports (``sandbox-kit models`` took ~0.5 s, nearly all
imports). Timings live in ``bench/bench_cli.py``; these tests keep the heavy modules out.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from sandbox_kit import Sandbox
from sandbox_kit.db import HEAD_REVISION, Database, known_revisions
from tests.conftest import script

#: Never needed to list or show models and jobs. The PostgreSQL dialect was pulled in by the
#: ORM's partial index (~40 ms); Alembic is for upgrades only; the rest is for the dashboard,
#: charts or models.
HEAVY = {
    "alembic",
    "ipywidgets",
    "matplotlib",
    "numpy",
    "pandas",
    "psycopg",
    "scipy",
    "sqlalchemy.dialects.postgresql",
    "voila",
}


def _loaded_after(code: str) -> set[str]:
    """Every module name in ``sys.modules`` after ``code`` ran in a fresh interpreter."""
    program = f"import json, sys\n{code}\nprint(json.dumps(sorted(sys.modules)), file=sys.stderr)"
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stderr.strip().splitlines()[-1]))


def _heavy(loaded: set[str]) -> set[str]:
    return {name for name in loaded if any(name == h or name.startswith(h + ".") for h in HEAVY)}


def _cli_main(home: Path, *args: str) -> str:
    argv = ["--home", str(home), *args]
    return f"from sandbox_kit.cli import main\nassert main({argv!r}) == 0, 'command failed'"


def test_importing_the_cli_loads_no_database_layer() -> None:
    loaded = _loaded_after("import sandbox_kit.cli")
    assert _heavy(loaded) == set()
    assert "sqlalchemy" not in loaded  # `--help` and usage errors stay instant


@pytest.fixture(scope="module")
def busy_home(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A home at the current schema with a model and one finished job."""
    home = tmp_path_factory.mktemp("cli-speed")
    sb = Sandbox(home=home)
    try:
        model = sb.upload(script("fast_exit.py"), "DMO")
        info = sb.run(model.id).wait(timeout=60)
        assert info.status.value == "success"
    finally:
        sb.close()
    return home, info.id


@pytest.mark.parametrize("command", ["models", "jobs", "status", "logs"])
def test_read_commands_load_no_heavy_module(busy_home: tuple[Path, str], command: str) -> None:
    home, job_id = busy_home
    args = [command, job_id] if command in ("status", "logs") else [command]

    loaded = _loaded_after(_cli_main(home, *args))

    assert "sandbox_kit.sandbox" in loaded  # the command did open the sandbox
    assert _heavy(loaded) == set()


def test_opening_leaves_the_collector_on_with_the_import_frozen(
    busy_home: tuple[Path, str],
) -> None:
    home, _ = busy_home
    code = (
        "import gc\n"
        + _cli_main(home, "models")
        + "\nassert gc.isenabled(), 'collector left off'"
        + "\nassert gc.get_freeze_count() > 10_000, gc.get_freeze_count()"
    )
    _loaded_after(code)


def test_alembic_is_imported_only_when_an_upgrade_is_due(tmp_path: Path) -> None:
    # The same check sees Alembic when the database is new: it can fail.
    loaded = _loaded_after(_cli_main(tmp_path, "models"))
    assert "alembic" in loaded
    assert "alembic" not in _loaded_after(_cli_main(tmp_path, "models"))


def test_the_cheap_revision_check_agrees_with_alembic() -> None:
    # ensure_schema compares alembic_version with HEAD_REVISION, read from the migrations'
    # file names, and imports Alembic only when they differ: both must name what Alembic sees.
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    import sandbox_kit.db

    cfg = Config()
    migrations = Path(sandbox_kit.db.__file__).with_name("migrations")
    cfg.set_main_option("script_location", str(migrations))
    scripts = ScriptDirectory.from_config(cfg)
    assert scripts.get_current_head() == HEAD_REVISION
    assert {r.revision for r in scripts.walk_revisions()} == known_revisions()


def test_one_active_version_per_type_is_still_enforced_by_the_database(db_url: str) -> None:
    # The partial unique index left the ORM metadata (it imported the PostgreSQL dialect);
    # migration 0001 still creates it on both databases.
    db = Database(db_url)
    try:
        db.ensure_schema()
        row = (
            "INSERT INTO models (model_type, name, version, status, sha256, description,"
            " original_filename, stored_name, size, created_at)"
            " VALUES ('DMO', :name, 1, :status, 'x', '', 'a.py', :name, 1, CURRENT_TIMESTAMP)"
        )
        with db.engine.begin() as conn:
            conn.execute(text(row), {"name": "a", "status": "active"})
            conn.execute(text(row), {"name": "b", "status": "inactive"})
            conn.execute(text(row), {"name": "c", "status": "inactive"})
        with pytest.raises(IntegrityError), db.engine.begin() as conn:
            conn.execute(text(row), {"name": "d", "status": "active"})
    finally:
        db.dispose()
