"""The step-through as a learner takes it: `make lab` in a fresh checkout holding a smoke run,
then the notebooks run in JupyterLab, in headless Chromium.

The checkout is a copy of the working tree made into its own git repository, so the test can read
its `git status` after a learner's run without touching this repository.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import nbformat
import pytest
from browser import chromium_page, video_plays
from playwright.sync_api import Page
from playwright.sync_api import expect as expect_that

from recipe_utils.config import REPO_ROOT

pytestmark = [pytest.mark.browser, pytest.mark.slow]

START_TIMEOUT_S = 120
RUN_ALL_TIMEOUT_S = 300
NOTEBOOK = ".jp-NotebookPanel:not(.lm-mod-hidden)"  # the notebook in front
OUTPUT = f"{NOTEBOOK} .jp-OutputArea-output"
STDERR = f'{OUTPUT}[data-mime-type="application/vnd.jupyter.stderr"]'
PROMPTS = f"{NOTEBOOK} .jp-CodeCell .jp-InputArea-prompt"
BROWSER_VIDEO = f"{OUTPUT} .widget-html video"  # the clip browser's player (an ipywidgets HTML)


@dataclass
class Lab:
    checkout: Path
    url: str
    token: str

    def address(self, path: str = "", query: str = "") -> str:
        return f"{self.url}/{path}?token={self.token}{query}"


@dataclass
class Outputs:
    """What a learner sees after Run All; problems are the error and warning outputs."""

    problems: list[str]
    figures: int
    broken_figures: int
    videos: int
    dropdowns: int


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=True
    ).stdout


def copy_checkout(dest: Path) -> Path:
    """The working tree (tracked and untracked files, not ignored ones) as a fresh repository."""
    listed = git(REPO_ROOT, "ls-files", "-z", "--cached", "--others", "--exclude-standard")
    for name in filter(None, listed.split("\0")):
        if (REPO_ROOT / name).is_file():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO_ROOT / name, dest / name)
    git(dest, "init", "-q")
    git(dest, "add", "-A")
    git(dest, "-c", "user.name=learner", "-c", "user.email=learner@localhost", "commit", "-qm", "x")
    return dest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_up(lab: Lab, server: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(f"make lab exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(lab.address("api/status"), timeout=5)
            return
        except OSError:
            time.sleep(1)
    pytest.fail(f"JupyterLab did not answer in {START_TIMEOUT_S}s:\n{log.read_text()[-3000:]}")


def stop(server: subprocess.Popen) -> None:
    """End make and JupyterLab (one process group); JupyterLab shuts its kernels down first."""
    try:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()
    except ProcessLookupError:
        pass


@pytest.fixture(scope="module")
def lab(tmp_path_factory, smoke_run) -> Iterator[Lab]:
    """`make lab` on 127.0.0.1 with a token, in a fresh checkout holding the smoke run."""
    checkout = copy_checkout(tmp_path_factory.mktemp("checkout"))
    shutil.copytree(smoke_run, checkout / "runs" / "smoke")
    jupyter = tmp_path_factory.mktemp("jupyter")  # settings, workspaces and runtime files
    env = {
        **os.environ,
        "PYTHONPATH": str(checkout),
        "JUPYTER_CONFIG_DIR": str(jupyter / "config"),
        "JUPYTER_DATA_DIR": str(jupyter / "data"),
        "JUPYTER_RUNTIME_DIR": str(jupyter / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(jupyter / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(jupyter / "workspaces"),
    }
    env.pop("TQDM_DISABLE", None)  # a learner's notebook shows its progress bars
    lab = Lab(checkout, f"http://127.0.0.1:{free_port()}", secrets.token_hex(16))
    options = (
        f"--no-browser --ip=127.0.0.1 --port={lab.url.rsplit(':', 1)[1]} "
        f"--allow-root --ServerApp.port_retries=0 --IdentityProvider.token={lab.token}"
    )
    venv = Path(sys.prefix)
    log = jupyter / "lab.log"
    with log.open("w") as out:
        server = subprocess.Popen(
            # -o: the venv running this test is installed; make must not rebuild it
            ["make", "-o", str(venv / ".installed"), "lab", f"VENV={venv}", f"LAB_ARGS={options}"],
            cwd=checkout,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until_up(lab, server, log)
        yield lab
    finally:
        stop(server)


@pytest.fixture
def page() -> Iterator[Page]:
    with chromium_page() as page:
        page.set_default_timeout(60_000)
        yield page


def wait_for_kernel(page: Page) -> None:
    """Until the status bar says the kernel is idle: cells run before that are lost."""
    page.locator(".jp-StatusBar-Item", has_text=re.compile(r"\| Idle$")).wait_for()


def open_notebook(page: Page, lab: Lab, path: str = "") -> None:
    """Open `path` alone (empty: wherever `make lab` opens) and wait for its kernel."""
    page.goto(lab.address(f"lab/tree/{path}", "&reset") if path else lab.address())
    wait_for_kernel(page)


def run_all(page: Page) -> None:
    """Run > Run All Cells, then wait until every cell ran or one failed and the kernel rests."""
    page.locator(".lm-MenuBar-itemLabel", has_text=re.compile("^Run$")).click()
    page.locator(".lm-Menu-itemLabel", has_text=re.compile("^Run All Cells$")).click()
    page.wait_for_function(
        """([prompts, stderr]) => {
            const shown = [...document.querySelectorAll(prompts)].map(p => p.textContent);
            const ran = shown.every(t => /\\d/.test(t));
            return !shown.some(t => t.includes('*')) && (ran || document.querySelector(stderr));
        }""",
        arg=[PROMPTS, STDERR],
        timeout=RUN_ALL_TIMEOUT_S * 1000,
    )
    wait_for_kernel(page)


def look(page: Page) -> Outputs:
    """Count what rendered: error/warning outputs, figures, videos and widget dropdowns."""
    images = page.eval_on_selector_all(
        f"{OUTPUT} img", "els => els.map(e => e.complete && e.naturalWidth > 0)"
    )
    return Outputs(
        problems=page.eval_on_selector_all(STDERR, "els => els.map(e => e.textContent)"),
        figures=len(images),
        broken_figures=images.count(False),
        videos=page.locator(f"{OUTPUT} video").count(),
        dropdowns=page.locator(f"{OUTPUT} .widget-dropdown select").count(),
    )


def save(page: Page) -> None:
    """Ctrl+S, then wait until the tab no longer marks the notebook as modified."""
    page.keyboard.press("Control+s")
    page.wait_for_selector(".jp-mod-current.jp-mod-dirty", state="detached")


def step_through(page: Page, lab: Lab, path: str) -> Outputs:
    open_notebook(page, lab, path)
    run_all(page)
    return look(page)


# File-browser entries, read from their tooltips: "Name: <name>" and, below the root, a line
# "Path: <folder>".
ENTRIES = """() => [...document.querySelectorAll('.jp-DirListing-item')].map(el => {
    const lines = (el.title || '').split('\\n');
    const path = lines.find(line => line.startsWith('Path: '));
    return {el, name: lines[0].slice('Name: '.length), folder: path ? path.slice(6) : ''};
})"""
FIND_ENTRY = (
    f"""([name, folder]) => ({ENTRIES})().some(e => e.name === name && e.folder === folder)"""
)
# One step through the file browser: double-click the entry until its effect shows (its folder
# listed, or its file's tab current). A double-click can be lost while JupyterLab re-renders the
# listing (it polls the folder), so it is repeated every 2 s; so is the click on the home
# crumb that lists the root.
OPEN_ENTRY = f"""([name, folder, file]) => {{
    const entries = ({ENTRIES})();
    const path = folder ? folder + '/' + name : name;
    const opened = file
        ? [...document.querySelectorAll('.lm-TabBar-tab.jp-mod-current')]
            .some(tab => tab.textContent.includes(name))
        : entries.some(e => e.folder === path);
    if (opened) return true;
    if (Date.now() - (window.lastOpenTry || 0) < 2000) return false;
    window.lastOpenTry = Date.now();
    const entry = entries.find(e => e.name === name && e.folder === folder);
    if (entry) entry.el.dispatchEvent(new MouseEvent('dblclick', {{bubbles: true}}));
    else if (!folder) document.querySelector('.jp-BreadCrumbs-home').click();
    return false;
}}"""


def wait_for_entry(page: Page, path: str) -> None:
    folder, _, name = path.rpartition("/")
    page.wait_for_function(FIND_ENTRY, arg=[name, folder])


def open_in_file_browser(page: Page, path: str, file: bool = True) -> None:
    """From the root of the file browser, double-click each part of `path` in turn; the last
    is a file (its tab opens) unless `file` is False (its folder is listed)."""
    page.locator(".jp-BreadCrumbs-home").click()
    parts = path.split("/")
    for depth in range(1, len(parts) + 1):
        folder, name = "/".join(parts[: depth - 1]), parts[depth - 1]
        page.evaluate("window.lastOpenTry = 0")
        page.wait_for_function(OPEN_ENTRY, arg=[name, folder, file and depth == len(parts)])


def test_make_lab_opens_notebook_01_and_lists_each_notebook_once(page, lab):
    open_notebook(page, lab)
    assert page.url.endswith("/lab/tree/runs/notebooks/01_dataset_tour.ipynb")
    expected = sorted(nb.name for nb in (lab.checkout / "notebooks").glob("0*.ipynb"))
    open_in_file_browser(page, "notebooks", file=False)
    wait_for_entry(page, f"notebooks/{expected[0]}")
    assert page.locator(".jp-DirListing-itemText").all_inner_texts() == expected  # no .py twins


@pytest.mark.parametrize("notebook", ["02_zero_shot_scoring", "05_results_analysis"])
def test_notebook_runs_with_figures_and_no_error_output(page, lab, notebook):
    outputs = step_through(page, lab, f"runs/notebooks/{notebook}.ipynb")
    assert outputs.problems == []
    assert outputs.figures > 0 and outputs.broken_figures == 0
    if outputs.videos:
        assert video_plays(page)


def test_dataset_tour_runs_plays_clips_and_saving_leaves_git_clean(page, lab):
    outputs = step_through(page, lab, "runs/notebooks/01_dataset_tour.ipynb")
    assert outputs.problems == []
    assert outputs.figures > 0 and outputs.broken_figures == 0
    assert outputs.dropdowns >= 1 and outputs.videos >= 1  # the clip browser
    assert video_plays(page)
    shown = f"() => document.querySelector('{BROWSER_VIDEO}')"
    before = page.evaluate(f"({shown})().src")
    page.locator(f"{OUTPUT} .widget-dropdown select").first.select_option(index=1)
    page.wait_for_function(f"before => ({shown})().src !== before", arg=before)
    player = page.locator(BROWSER_VIDEO)
    player.scroll_into_view_if_needed()  # Chromium pauses muted autoplay out of view
    player.evaluate("v => v.play()")
    page.wait_for_function(f"() => ({shown})().currentTime > 0.3")  # the picked clip plays
    save(page)
    saved = nbformat.read(lab.checkout / "runs/notebooks/01_dataset_tour.ipynb", as_version=4)
    assert any(cell.get("outputs") for cell in saved.cells)  # the learner's outputs are kept
    assert git(lab.checkout, "status", "--porcelain") == ""


def test_the_check_fails_when_a_cell_raises(page, lab):
    notebook = nbformat.read(lab.checkout / "notebooks/01_dataset_tour.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if c.cell_type == "code" and "run_dir(" in c.source)
    cell.source += '\nraise RuntimeError("broken on purpose")'
    broken = lab.checkout / "runs/broken/01_dataset_tour.ipynb"
    broken.parent.mkdir(parents=True)
    nbformat.write(notebook, broken)
    outputs = step_through(page, lab, "runs/broken/01_dataset_tour.ipynb")
    assert any("broken on purpose" in problem for problem in outputs.problems)


@pytest.mark.parametrize(
    ("path", "text"),
    [
        ("runs/smoke/summary.md", "# Physical plausibility"),
        ("runs/smoke/zero_shot/report.html", "videos."),
    ],
)
def test_run_files_open_from_the_file_browser(page, lab, path, text):
    open_notebook(page, lab)
    open_in_file_browser(page, path)
    name = path.rpartition("/")[2]
    page.locator(".lm-TabBar-tab.jp-mod-current", has_text=name).wait_for()
    if path.endswith(".html"):
        shown = page.frame_locator(".jp-HTMLViewer iframe").locator("body")
    else:
        shown = page.locator(".jp-FileEditor .cm-content")
    expect_that(shown).to_contain_text(text)  # retried: the editor fills in after its tab shows
