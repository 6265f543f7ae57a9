"""Overrides that run code or write outside the sweep directory are refused unless opted in."""

from __future__ import annotations

import pytest

from tests.helpers import TINY, run_vgx
from vgx.errors import ConfigError
from vgx.safety import check_safe

SWEEP = ("sweep", "depth=2,3", *TINY, "--no-report", "hydra/launcher=basic")


@pytest.mark.parametrize(
    "override",
    [
        "+hydra.callbacks.x._target_=builtins.open",
        "+hydra.callbacks.x={_target_:builtins.open,file:victim,mode:w}",
        "hydra.launcher._target_=os.system",
        "+hydra.sweeper.params.x={a:{_target_:os.system}}",
        "hydra/callbacks=log_job_return",
        "+hydra.job.env_set.LD_PRELOAD=/tmp/evil.so",
        "hydra.searchpath=[file:///tmp/evil]",
        "+hydra.job_logging.handlers.x.class=evil.Handler",
        "hydra.sweep.subdir=../../x",
        "hydra.sweep.subdir=/tmp/x",
        "hydra.sweep.subdir=a,../b",
        "hydra.output_subdir=../../x",
        "hydra.sweep.subdir=${oc.env:HOME}",
        "hydra.sweep.subdir=run_${oc.env:X}",
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
    ],
)
def test_an_override_that_runs_code_or_escapes_the_sweep_is_refused_in_one_line(override):
    with pytest.raises(ConfigError) as caught:
        check_safe([override])
    message = str(caught.value)
    assert message.startswith(f"refusing {override}: ") and "\n" not in message
    assert message.endswith("pass --allow-unsafe-overrides if you mean it")


@pytest.mark.parametrize(
    "override",
    [
        "hydra.sweep.dir=/tmp/anywhere/../the/user/names",
        "hydra.run.dir=../elsewhere",
        "hydra.sweep.subdir=${hydra.job.num}",
        "hydra.sweep.subdir=run_${hydra.job.id}",
        "hydra/launcher=joblib",
        "hydra.launcher.n_jobs=2",
        "hydra.job_logging.root.level=DEBUG",
        "depth=2,3",
    ],
)
def test_ordinary_overrides_and_any_directory_the_user_names_stay_allowed(override):
    check_safe([override])


def test_a_callback_that_would_truncate_a_file_is_refused_and_the_file_kept(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    callback = "+hydra.callbacks.x={_target_:builtins.open,file:victim.txt,mode:w}"
    result = run_vgx(*SWEEP, callback, "hydra.sweep.dir=s", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("vgx: error: refusing +hydra.callbacks.x=")
    assert "Traceback" not in result.stderr
    assert victim.read_text() == "precious"


def test_a_subdir_that_escapes_is_refused_and_runs_only_with_the_opt_in(tmp_path):
    escape = ("hydra.sweep.dir=sweeps/s", "hydra.sweep.subdir=../../outside_${hydra.job.num}")
    refused = run_vgx(*SWEEP, *escape, cwd=tmp_path)
    assert refused.returncode == 2 and "refusing hydra.sweep.subdir=" in refused.stderr
    assert not list(tmp_path.glob("outside_*"))
    allowed = run_vgx(*SWEEP, *escape, "--allow-unsafe-overrides", cwd=tmp_path)
    assert allowed.returncode == 0, allowed.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.glob("outside_*")) == ["outside_0", "outside_1"]
