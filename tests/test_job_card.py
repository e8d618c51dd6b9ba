"""The one-job card (the ``%%sandbox`` cell's output), driven without its pump thread."""

from __future__ import annotations

import html

import pytest

from sandbox_kit import JobStatus, Sandbox
from sandbox_kit.widgets import JobCard
from sandbox_kit.widgets.job_card import summary_html
from tests.conftest import script
from tests.test_runner import wait_for_line


def settle(card: JobCard) -> None:
    """Refresh until the card has shown the end of its job."""
    for _ in range(100):
        if card.done:
            return
        card.refresh()
    raise AssertionError("the card never saw the end of the job")


@pytest.mark.slow
def test_a_finished_job_shows_its_lines_outcome_and_objective(lite: Sandbox) -> None:
    model = lite.upload(script("outcome_writer.py"), "RMO")
    job = lite.run(model.id, config={"outcome": "infeasible", "objective": 42.5})
    job.wait(timeout=60)
    card = JobCard(lite, job.id, start=False)
    settle(card)
    assert "outcome infeasible objective 42.5" in card.view.value
    summary = card.summary.value
    assert "Job <b>success</b>" in summary and "outcome <b>infeasible</b>" in summary
    assert "objective <b>42.50</b>" in summary
    assert card.cancel_button.layout.display == "none"
    assert html.escape(job.id) in card.heading.value and "outcome_writer v1" in card.heading.value


@pytest.mark.slow
def test_cancel_stops_a_running_job_and_the_card_says_so(lite: Sandbox) -> None:
    model = lite.upload(script("slow_lines.py"), "DMO")
    job = lite.run(model.id, config={"lines": 600, "every": 0.1})
    wait_for_line(job, "tick 1", timeout=60)
    card = JobCard(lite, job.id, start=False)
    card.refresh()
    assert not card.cancel_button.disabled and "tick 1" in card.view.value
    card.cancel_button.click()
    assert card.cancel_button.disabled
    assert job.wait(timeout=60).status is JobStatus.CANCELLED
    settle(card)
    assert "Job <b>cancelled</b>" in card.summary.value


def test_a_job_deleted_meanwhile_ends_the_card_with_a_message(lite: Sandbox) -> None:
    model = lite.upload(b"print('x')\n", "SO", filename="so.py")
    job = lite.run(model.id)
    job.wait(timeout=60)
    card = JobCard(lite, job.id, start=False)
    lite.delete(model.id)
    card.refresh()
    assert card.done and f"no job with id {job.id}" in card.message.value


def test_a_failed_job_shows_its_reason(lite: Sandbox) -> None:
    job = lite.run_code("raise SystemExit(3)\n", "DMO")
    info = job.wait(timeout=60)
    assert info.status is JobStatus.FAILED and info.reason
    text = summary_html(info)
    assert "Job <b>failed</b>" in text and html.escape(info.reason) in text
    assert "sk-msg-error" in text
