"""Browser check of the GATE explorer (issue 27): each control's latency to its final render in JupyterLab.

Trains the NB301 and NDS smoke runs when missing (``closekit train params/.../smoke.yaml``) or takes a trained run
(``--run-dir nb301=DIR``, e.g. the NB301 mini CLOSE run of the issue), executes
notebooks/gate_explorer.ipynb on each with papermill, starts JupyterLab on a free localhost port, opens each
executed notebook in Debian's chromium through Playwright, runs it, then drives every control of the explorer and
measures the time from the action to the last change of the explorer's DOM (the final render, a quiet window
after it), the smallest height the explorer had meanwhile (a collapse makes the page jump), console errors and
stderr / error outputs of the kernel. Prints one table with the machine load and writes results.json and
screenshots (PNG) under --out.

    PYTHONPATH=. .venv/bin/python bench/explorer_latency.py --out /tmp/explorer-bench
    closekit train params/nb301/mini-close.yaml --out /tmp/nb301-mini --set archs=sample:20   # the issue's run
    PYTHONPATH=. .venv/bin/python bench/explorer_latency.py --out /tmp/explorer-bench --run-dir nb301=/tmp/nb301-mini
Needs: ``pip install playwright`` (no ``playwright install``: it drives /usr/bin/chromium).
"""
import argparse
import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "notebooks/gate_explorer.ipynb"
RUNS = {"nb301": "params/nb301/smoke.yaml", "nds": "params/nds/resnet-smoke.yaml"}
QUIET_MS = 1500              # no DOM change for this long after the last one: the render is final
TIMEOUT_MS = 60_000          # one control's render, at most
BIN = Path(sys.executable).parent
WATCH = """root => { window._ex = {last: performance.now(), minH: root.getBoundingClientRect().height};
  new MutationObserver(() => { window._ex.last = performance.now(); }).observe(root,
      {subtree: true, childList: true, attributes: true, characterData: true});
  const tick = () => { window._ex.minH = Math.min(window._ex.minH, root.getBoundingClientRect().height);
                       requestAnimationFrame(tick); }; tick(); }"""
DONE = """() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')].map(e => e.innerText);
  return p.length > 0 && p.every(t => /\\[\\d+\\]/.test(t)); }"""      # every cell ran: no [*] or [ ] prompt
VIEW = """root => [...root.querySelectorAll('pre, img, table')].map(e => e.src || e.innerText).join('|')"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prepare(out, archs, runs, run_dirs):
    """Train the smoke runs (if missing and not in ``run_dirs``) and execute the explorer notebook on each;
    {name: notebook path}."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    books = {}
    for name in runs:
        run = Path(run_dirs.get(name) or out / "runs" / name).resolve()
        if not (run / "snapshots").is_dir():
            subprocess.run([BIN / "closekit", "train", ROOT / RUNS[name], "--set", f"out_dir={run}"], env=env,
                           check=True, stdout=subprocess.DEVNULL)
        books[name] = book = out / f"explorer-{name}.ipynb"
        if not book.exists():
            subprocess.run([BIN / "papermill", NOTEBOOK, book, "-p", "run_dir", str(run), "-p", "archs",
                            archs, "--no-progress-bar"], env=env, check=True, stderr=subprocess.DEVNULL)
            nb = json.loads(book.read_text())
            nb["metadata"].pop("jupytext", None)     # no py twin: Lab would ask which of the two to open
            book.write_text(json.dumps(nb))
        book.with_suffix(".py").unlink(missing_ok=True)
    return books


def start_lab(out, port, token):
    """JupyterLab on 127.0.0.1:port serving ``out`` (notebook windowing off: every cell stays in the DOM)."""
    for ext, name, value in (("notebook-extension", "tracker", {"windowingMode": "none"}),
                             ("apputils-extension", "notification", {"fetchNews": "false"})):
        path = out / "lab-settings/@jupyterlab" / ext / f"{name}.jupyterlab-settings"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(value))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    lab = subprocess.Popen([BIN / "jupyter", "lab", "--no-browser", "--allow-root", f"--port={port}", "--ip=127.0.0.1",
                            f"--IdentityProvider.token={token}", f"--ServerApp.root_dir={out}",
                            f"--LabServerApp.user_settings_dir={out / 'lab-settings'}"],
                           env=env, stdout=open(out / "lab.log", "w"), stderr=subprocess.STDOUT)
    for _ in range(120):
        if lab.poll() is not None:
            break
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token={token}", timeout=2)
            return lab
        except OSError:
            time.sleep(1)
    lab.terminate()
    raise RuntimeError(f"JupyterLab did not answer on port {port}; see {out / 'lab.log'}")


def kernels_idle(port, token):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/kernels?token={token}", timeout=5) as r:
        ks = json.loads(r.read())
    return bool(ks) and all(k["execution_state"] == "idle" for k in ks)


def wait_idle(port, token, limit=900):
    """Until every kernel of the server is idle (``limit`` s at most)."""
    t0 = time.time()
    while not kernels_idle(port, token) and time.time() - t0 < limit:
        time.sleep(1)


def quiet(page, t0=0.0):
    """Whether the explorer changed after ``t0`` and has been still for QUIET_MS since."""
    now, last = page.evaluate("[performance.now(), window._ex.last]")
    return last > t0 and now - last > QUIET_MS


def measure(page, root, act):
    """ms from ``act()`` to the explorer's last DOM change (its view changed), and its smallest height meanwhile."""
    root.evaluate(WATCH)
    while not quiet(page, -1):                   # the previous render is over
        time.sleep(0.05)
    before, t0 = root.evaluate(VIEW), page.evaluate("performance.now()")
    root.evaluate("root => { window._ex.minH = root.getBoundingClientRect().height; }")
    act()
    deadline = time.time() + TIMEOUT_MS / 1000
    while time.time() < deadline:
        if quiet(page, t0) and root.evaluate(VIEW) != before:
            return round(page.evaluate("window._ex.last") - t0), round(page.evaluate("window._ex.minH"))
        time.sleep(0.05)
    return float("nan"), round(page.evaluate("window._ex.minH"))


def controls(page, root):
    """(name, action) for each control of the explorer, each changing the view."""
    def select(label, pick):
        sel = root.locator(f".widget-dropdown:has(label:text-is('{label}')) select").first
        opts = sel.locator("option").all_inner_texts()
        return lambda: sel.select_option(label=pick(opts, sel.input_value()))

    def other(opts, value):
        return next(o for o in opts if o != value and o != "(custom)")

    def slider(key):
        def go():
            root.locator(".widget-slider .noUi-handle").first.focus()
            page.keyboard.press(key)
        return go
    first_op = root.locator(".widget-dropdown label").nth(2).inner_text()   # after notable and level
    acts = [("epoch slider", slider("Home")), ("level", select("level", lambda o, v: o[-1] if v != o[-1] else o[0])),
            ("op dropdown", select(first_op, lambda o, v: next(x for x in o if x != v))),
            ("notable", select("notable", lambda o, v: other(o, v)))]
    usage = root.locator(".widget-toggle-buttons button:text-is('expected (Gumbel)')")
    if usage.count() and usage.first.is_visible():
        acts.append(("usage toggle", usage.first.click))
    acts.append(("epoch slider back", slider("ArrowLeft")))
    return acts


def run_notebook(browser, port, token, name, book, out):
    page = browser.new_page(viewport={"width": 1400, "height": 1000})
    errors, phase = [], ["open"]                 # open: the stored (executed) notebook; run: the live kernel
    page.on("console", lambda m: errors.append(f"{phase[0]}: {m.text.splitlines()[0]}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"{phase[0]}: page error {e}"))
    page.goto(f"http://127.0.0.1:{port}/lab/tree/{book.name}?reset&token={token}")   # reset: this notebook only
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
    wait_idle(port, token)
    page.locator(".jp-Notebook").first.click()
    page.keyboard.press("Escape")
    page.get_by_role("menuitem", name="Run", exact=True).click()
    phase[0] = "run"
    page.get_by_text("Run All Cells", exact=True).click()
    t0 = time.time()
    page.wait_for_function(f"() => !({DONE})()", timeout=30_000, polling=100)   # the run started ...
    page.wait_for_function(DONE, timeout=900_000, polling=1000)                  # ... and every cell ran
    wait_idle(port, token)
    ready = round(time.time() - t0, 1)
    root = page.locator(".jp-OutputArea-output .widget-vbox:has(img):visible").first
    root.wait_for(timeout=120_000)
    root.scroll_into_view_if_needed()
    root.screenshot(path=out / f"{name}-0-start.png")
    rows = []
    for k, (control, act) in enumerate(controls(page, root), 1):
        ms, min_h = measure(page, root, act)
        height = round(root.bounding_box()["height"])
        shot = out / f"{name}-{k}-{control.replace(' ', '-')}"
        root.locator("img:visible").first.screenshot(path=f"{shot}-drawing.png")
        root.locator("table").first.screenshot(path=f"{shot}-table.png")
        rows.append({"run": name, "control": control, "ms": ms, "min_height": min_h, "height": height})
    stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr'], "
                          ".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").all_inner_texts()
    page.screenshot(path=out / f"{name}-page.png", full_page=True)
    page.close()
    return rows, {"run": name, "ready_s": ready, "console": errors, "kernel_stderr": [s[:300] for s in stderr]}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="work dir: runs, executed notebooks, screenshots")
    ap.add_argument("--archs", default="sample:100", help="the explorer's architecture set")
    ap.add_argument("--runs", nargs="+", default=list(RUNS), choices=list(RUNS), help="which runs")
    ap.add_argument("--run-dir", nargs="+", default=[], metavar="NAME=DIR",
                    help="a trained run to open for NAME instead of its smoke run")
    args = ap.parse_args()
    from playwright.sync_api import sync_playwright
    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    run_dirs = dict(kv.split("=", 1) for kv in args.run_dir)
    books = prepare(out, args.archs, args.runs, run_dirs)
    port, token = free_port(), secrets.token_hex(16)
    lab = start_lab(out, port, token)
    rows, notes = [], []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            for name, book in books.items():
                try:
                    r, n = run_notebook(browser, port, token, name, book, out)
                except Exception as e:              # the other notebook still gets measured
                    for page in browser.contexts[0].pages if browser.contexts else ():
                        page.screenshot(path=out / f"{name}-failed.png")
                    r, n = [], {"run": name, "ready_s": float("nan"), "console": [], "kernel_stderr": [],
                                "failed": f"{type(e).__name__}: {str(e).splitlines()[0]}"}
                rows += r
                notes.append(n)
            browser.close()
    finally:
        lab.terminate()
        lab.wait(30)
    load = os.getloadavg()
    (out / "results.json").write_text(json.dumps({"load": load, "cpus": os.cpu_count(), "rows": rows,
                                                  "notes": notes}, indent=1))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs")
    print(f"{'run':6} {'control':20} {'ms':>7} {'min px':>7} {'px':>6}")
    for r in rows:
        print(f"{r['run']:6} {r['control']:20} {r['ms']:>7} {r['min_height']:>7} {r['height']:>6}")
    for n in notes:
        print(f"{n['run']}: ready after {n['ready_s']} s; console errors {n['console'] or 'none'}; "
              f"kernel stderr {n['kernel_stderr'] or 'none'}" + (f"; FAILED {n['failed']}" if "failed" in n else ""))


if __name__ == "__main__":
    main()
