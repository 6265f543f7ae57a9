"""Whatever a user types as overrides, vgx answers with a config or one line: never a traceback."""

from __future__ import annotations

import contextlib
import io

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vgx.cli import main
from vgx.validate import choices, known_keys

NAMES = sorted({name for registry in choices().values() for name in registry})
KEYS = st.sampled_from(sorted(known_keys())) | st.from_regex(r"[a-z_.+~]{1,12}", fullmatch=True)
VALUES = (
    st.sampled_from(NAMES)
    | st.integers(-3, 10**6).map(str)
    | st.floats(allow_nan=True, allow_infinity=True).map(repr)
    | st.sampled_from(
        ["null", "true", "false", "[1,2]", "{a: 1}", "''", "range(0,3)", "x,y", "1,2"]
    )
    | st.text("abcxyz019.,=()[]{}'\"$ -_:", max_size=10)
)
OVERRIDES = st.lists(st.builds(lambda k, v: f"{k}={v}", KEYS, VALUES), max_size=4)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OVERRIDES)
def test_any_overrides_give_the_config_or_one_line_and_exit_2(overrides):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["run", *overrides, "--cfg", "job"])
    assert code in (0, 2)
    assert "Traceback" not in out.getvalue() + err.getvalue()
    if code == 2:
        assert len(err.getvalue().strip().splitlines()) == 1
