"""The sweep's progress log and bar: it moves while runs train, and a resume counts honestly."""

from __future__ import annotations

from vgx.status import DONE, SKIPPED
from vgx.sweep.progress import (
    INVOCATION_ENV,
    SweepProgress,
    read_progress,
    record_progress,
    record_steps,
    running_fractions,
)


def test_a_running_run_counts_by_the_fraction_of_its_steps_done(tmp_path):
    for done in range(0, 150, 10):
        record_steps(tmp_path, "a", done, 200)
    assert running_fractions(tmp_path) == {"a": 0.7}


def test_a_run_that_ended_no_longer_counts_as_running(tmp_path):
    record_steps(tmp_path, "a", 100, 200)
    record_progress(tmp_path, "a", DONE)
    assert running_fractions(tmp_path) == {}
    assert read_progress(tmp_path) == {DONE: 1}


def test_step_records_are_few_per_run(tmp_path):
    for done in range(1, 1001):
        record_steps(tmp_path, "a", done, 1000)
    assert len((tmp_path / ".vgx-progress").read_text().splitlines()) <= 20


def test_a_step_record_is_a_four_field_line_of_its_invocation(tmp_path, monkeypatch):
    monkeypatch.setenv(INVOCATION_ENV, "now")
    record_steps(tmp_path, "a", 50, 100)
    assert (tmp_path / ".vgx-progress").read_text() == "now\t@steps\t0.500\ta\n"
    assert read_progress(tmp_path, "now") == {}


def test_only_this_invocations_running_runs_count(tmp_path, monkeypatch):
    monkeypatch.setenv(INVOCATION_ENV, "earlier")
    record_steps(tmp_path, "a", 50, 100)  # killed mid-run: it never ended in that invocation
    monkeypatch.setenv(INVOCATION_ENV, "now")
    record_steps(tmp_path, "b", 25, 100)
    assert running_fractions(tmp_path, "now") == {"b": 0.25}
    assert running_fractions(tmp_path, "earlier") == {"a": 0.5}


def test_the_bar_moves_while_the_first_runs_train(tmp_path, monkeypatch):
    monkeypatch.setenv(INVOCATION_ENV, "now")
    with SweepProgress(tmp_path, total=4, invocation="now", interval=60) as progress:
        record_steps(tmp_path, "a", 50, 100)
        record_steps(tmp_path, "b", 25, 100)
    assert progress.bar.n == 0.75


def test_runs_skipped_on_a_resume_leave_the_total_instead_of_counting_as_done(
    tmp_path, monkeypatch
):
    monkeypatch.setenv(INVOCATION_ENV, "now")
    with SweepProgress(tmp_path, total=4, invocation="now", interval=60) as progress:
        record_progress(tmp_path, "a", SKIPPED)
        record_progress(tmp_path, "b", SKIPPED)
        record_progress(tmp_path, "c", DONE)
    assert (progress.bar.total, progress.bar.n) == (2, 1)
