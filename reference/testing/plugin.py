"""The suite's pytest plugin, loaded by the root conftest.py (`pytest_plugins`): thin hooks that hand
off to the session object (reference/testing/session.py), and the fixtures (fixtures.py).

- options: --require-cuda, --require-compile, --update-goldens, --record-trajectories, --artifacts-dir;
- markers, registered strictly (session.MARKERS): cpu, cuda, golden, property, mnist, environment, slow,
  compile, bisect, and `dtypes(...)`, which narrows the dtypes a test is parametrised over;
- device / dtype parametrisation in PyTorch's device-generic style (ids end in `cpu_float64`);
- Hypothesis profiles (hypothesis_profiles.py).
"""
from __future__ import annotations

import os

import pytest

from .hypothesis_profiles import register_profiles
from .session import REQUIRE_COMPILE_ENV, REQUIRE_CUDA_ENV, TestSession, controller_gone, flag_from_env  # noqa: F401

pytest_plugins = ["reference.testing.fixtures"]

# what loads this plugin into a pytester session of the plugin's tests, by module name as the root
# conftest.py loads it (no cache: nothing written beside the test's files)
PYTESTER_ARGS = ("-p", __name__, "-p", "no:cacheprovider")

register_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("torch-examples-spec")
    group.addoption("--require-cuda", action="store_true", default=flag_from_env(REQUIRE_CUDA_ENV),
                    help=f"fail, instead of skipping, when CUDA tests are selected and no GPU is usable "
                    f"(also: {REQUIRE_CUDA_ENV}=1)")
    group.addoption("--require-compile", action="store_true", default=flag_from_env(REQUIRE_COMPILE_ENV),
                    help="fail, instead of skipping, when compile tests are selected and a torch.compile backend "
                    f"cannot run here (inductor without a C++ compiler) (also: {REQUIRE_COMPILE_ENV}=1)")
    group.addoption("--update-goldens", action="store_true", default=False,
                    help="rewrite the golden trajectories of the selected golden tests where they differ "
                    "(never written otherwise)")
    group.addoption("--record-trajectories", default=None, metavar="DIR",
                    help="write the trajectories of the session's shared runs (cached_run) to DIR/<worker>.json "
                    "for `python -m reference compare` (tox does this per env)")
    group.addoption("--record-expectations", default=None, metavar="DIR",
                    help="write an expectation set of this environment from the golden tests' runs "
                    "(`check --record` does the same; docs/expectations.md)")
    group.addoption("--expect", action="append", default=[], metavar="DIR",
                    help="judge the golden tests bit for bit against the expectation set whose fingerprint matches "
                    "this environment (repeatable); where none does, by the calibrated policy, saying so")
    group.addoption("--artifacts-dir", default=os.environ.get("TES_ARTIFACTS_DIR", "artifacts"),
                    help="where failing golden comparisons write their reports, plots and obtained trajectories "
                    "(default: artifacts/)")


@pytest.hookimpl(tryfirst=True)  # before xdist's, which picks "load" when -n comes without --dist
def pytest_cmdline_main(config: pytest.Config) -> None:
    """`-n N` without --dist distributes by work stealing: each worker starts on its own half of the
    suite, so the two seldom wait for the same shared run (docs/speed.md)."""
    if getattr(config.option, "numprocesses", None) and getattr(config.option, "dist", "no") == "no":
        config.option.dist = "worksteal"


def _runs_tests(config: pytest.Config) -> bool:
    """False in pytest-xdist's controller, which only hands tests to its workers."""
    return hasattr(config, "workerinput") or config.getoption("dist", "no") == "no"


def pytest_configure(config: pytest.Config) -> None:
    TestSession(config).configure()


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:
    """xdist: every worker shares the controller's runs folder."""
    from .runs import WORKER_INPUT_KEY

    node.workerinput[WORKER_INPUT_KEY] = str(TestSession.of(node.config).runs_dir)


def pytest_sessionstart(session: pytest.Session) -> None:
    TestSession.of(session.config).start()


# --- device / dtype parametrisation (PyTorch device-generic style) -------------------------------------

DEVICES = [
    pytest.param("cpu", marks=pytest.mark.cpu, id="cpu"),
    pytest.param("cuda", marks=pytest.mark.cuda, id="cuda"),
]
DTYPES = ("float32", "float64")


@pytest.hookimpl(trylast=True)  # after explicit parametrisation, so ids end in cpu_float64
def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests asking for `device` and/or `dtype` get ids like `cpu_float64`, as in PyTorch; the
    `dtypes` marker narrows the dtypes, as PyTorch's @dtypes does."""
    names = [n for n in ("device", "dtype") if n in metafunc.fixturenames]
    if not names or any(n in _explicitly_parametrized(metafunc) for n in names):
        return
    dtypes = _dtypes(metafunc)
    if names == ["device"]:
        metafunc.parametrize("device", DEVICES)
    elif names == ["dtype"]:
        metafunc.parametrize("dtype", dtypes)
    else:
        combos = [pytest.param(d.values[0], dt, marks=d.marks, id=f"{d.id}_{dt}") for d in DEVICES for dt in dtypes]
        metafunc.parametrize("device,dtype", combos)


def _dtypes(metafunc: pytest.Metafunc) -> tuple[str, ...]:
    mark = metafunc.definition.get_closest_marker("dtypes")
    if mark is None:
        return DTYPES
    import torch

    unknown = [d for d in mark.args if not isinstance(d, str) or not isinstance(getattr(torch, d, None), torch.dtype)]
    if not mark.args or unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: @pytest.mark.dtypes{mark.args}: "
                                f"{', '.join(map(repr, unknown)) or 'nothing'} named; name torch dtypes, e.g. "
                                f"{', '.join(DTYPES)}, float16, bfloat16, int64")
    return tuple(mark.args)


def _explicitly_parametrized(metafunc: pytest.Metafunc) -> set[str]:
    names: set[str] = set()
    for mark in metafunc.definition.iter_markers("parametrize"):
        argnames = mark.args[0]
        names.update(n.strip() for n in (argnames.split(",") if isinstance(argnames, str) else argnames))
    return names


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    TestSession.of(config).deselect_opt_in(items)


def pytest_runtest_setup(item: pytest.Item) -> None:
    TestSession.of(item.config).setup(item)


def pytest_sessionfinish(session: pytest.Session) -> None:
    TestSession.of(session.config).finish()


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    TestSession.of(config).terminal_summary(terminalreporter)
