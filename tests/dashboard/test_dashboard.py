#!/usr/bin/env python3
"""Browser test of the queuemgr dashboard (/ui/), with Python Playwright and Debian's chromium.

Usage: test_dashboard.py BASE_URL API_KEY SCREENSHOT_PATH [ROLE_KEYS_JSON]

  BASE_URL         a running host, e.g. http://127.0.0.1:18600, with the example jobs loaded
                   (my_job, noop, failing, hostile, cpu_heavy)
  API_KEY          the host's --api-key, or "-" when it has none
  SCREENSHOT_PATH  where to save a screenshot of the jobs page
  ROLE_KEYS_JSON   a file {"read": [name, key], "run": [name, key]} of keys from the host's
                   keys file: the sign-in shows each key's name and role and hides what the
                   role may not do

Set-up (once): python3 -m venv target/dashboard-venv &&
target/dashboard-venv/bin/pip install playwright==1.65.2 && apt-get install -y chromium
(no `playwright install`: the browser is /usr/bin/chromium, or $CHROMIUM).

Prints one JSON line per check ({"check", "ok", ...}) and a summary line; exits 1 if any check
failed (2 on bad usage). Runs in about 20 s.
"""

import json
import os
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

from playwright.sync_api import expect, sync_playwright

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
RESULTS = []
STEP = {"now": ""}


def step(what):
    """Names what a check is doing, for the failure message."""
    STEP["now"] = what


def failure(e):
    """The useful lines of an exception (Playwright's carry a long call log)."""
    lines = [ln.strip() for ln in str(e).strip().splitlines() if ln.strip()]
    keep = [ln for ln in lines if not ln.startswith(("Call log", "- ", "  -"))][:3]
    return " / ".join(keep)[:600] or type(e).__name__


def report(check, ok, **info):
    line = {"check": check, "ok": bool(ok)}
    line.update(info)
    RESULTS.append(line)
    print(json.dumps(line), flush=True)


class Api:
    """The host's API, called directly (to set up jobs and to check what the page did)."""

    def __init__(self, base, key):
        self.base = base.rstrip("/")
        self.key = key

    def _req(self, path, body=None):
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["X-API-Key"] = self.key
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise RuntimeError(f"{path}: HTTP {e.code}: {e.read()[:300]!r}") from None

    def queue(self, action, **params):
        params["action"] = action
        out = self._req("/api/jsonrpc", {"jsonrpc": "2.0", "id": 1, "method": "queue", "params": params})
        if "error" in out:
            raise RuntimeError(f"{action}: {out['error']}")
        if not out["result"].get("success"):
            raise RuntimeError(f"{action}: {out['result'].get('error')}")
        return out["result"]["data"]

    def status(self, job_id):
        return self.queue("get_status", job_id=job_id)["status"]

    def call(self, method, **params):
        out = self._req("/api/jsonrpc", {"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
        if "error" in out:
            raise RuntimeError(f"{method}: {out['error']}")
        if not out["result"].get("success"):
            raise RuntimeError(f"{method}: {out['result'].get('error')}")
        return out["result"]["data"]

    def total(self):
        return self.queue("list_jobs", limit=1)["total_count"]

    def job(self, job_id):
        return self._req("/api/v1/jobs/" + urllib.parse.quote(job_id, safe=""))


def wait_until(fn, timeout, interval=0.2):
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end:
            return v
        time.sleep(interval)


def row(page, job_id):
    return page.locator(f'tr[data-job-id="{job_id}"]')


def bar_width(page, job_id):
    """The inline width of the job's progress bar, as a number (None when absent)."""
    w = page.evaluate(
        """id => { const b = document.querySelector(`.progress[data-job-id="${id}"] .bar`);
                   return b ? b.style.width : null; }""",
        job_id,
    )
    if not w:
        return None
    m = re.match(r"^([\d.]+)%$", w)
    return float(m.group(1)) if m else None


def open_jobs(page, base):
    step("open the jobs page: #jobs-table, then #jobs-count filled and #live[data-state=live]")
    page.goto(base + "/ui/#/jobs")
    expect(page.locator("#jobs-table")).to_be_visible(timeout=10000)
    # Loaded: the count shows, and the stream is connected.
    expect(page.locator("#jobs-count")).not_to_have_text("", timeout=10000)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=10000)


def check_auth(browser, base, key):
    """(d) The page asks for the key, refuses a wrong one, and works once the right one is in."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    step("open the jobs page without a key: #key-dialog shows, #live[data-state=auth]")
    page.goto(base + "/ui/#/jobs")
    dialog = page.locator("#key-dialog")
    expect(dialog).to_be_visible(timeout=10000)
    expect(page.locator("#live")).to_have_attribute("data-state", "auth", timeout=5000)
    step("enter a wrong key: the dialog stays, #key-message says refused")
    page.fill("#api-key", "wrong-" + key)
    page.click("#api-key-save")
    expect(dialog).to_be_visible(timeout=5000)
    expect(page.locator("#key-message")).to_contain_text("refused", timeout=5000)
    step("enter the right key: dialog hidden, jobs listed, stream live, key in localStorage")
    page.fill("#api-key", key)
    page.click("#api-key-save")
    expect(dialog).to_be_hidden(timeout=5000)
    expect(page.locator("#jobs-count")).to_have_text(re.compile(r"\d"), timeout=10000)
    expect(page.locator("#live")).to_have_attribute("data-state", "live", timeout=10000)
    stored = page.evaluate("localStorage.getItem('queuemgr.apiKey')")
    if stored != key:
        raise AssertionError(f"the key was not kept in localStorage (got {stored!r})")
    step("reload: no prompt, jobs listed")
    page.reload()
    expect(page.locator("#jobs-count")).to_have_text(re.compile(r"\d"), timeout=10000)
    if dialog.is_visible():
        raise AssertionError("the key dialog showed again after a reload")
    return ctx, page


def check_live_progress(page, api, base, run):
    """(a) A job added through the API appears in the open table and its bar moves."""
    open_jobs(page, base)
    job_id = f"pw-a-{run}"
    t0 = time.monotonic()
    api.queue("add_job", job_id=job_id, job_type="my_job", params={"task_name": "pw", "duration": 4}, start=True)
    step(f'the new job appears in the open table: tr[data-job-id="{job_id}"]')
    expect(row(page, job_id)).to_be_visible(timeout=5000)
    appeared = time.monotonic() - t0
    step(f'sample .progress[data-job-id="{job_id}"] .bar style.width until COMPLETED')
    widths = []
    end = time.monotonic() + 12
    while time.monotonic() < end:
        w = bar_width(page, job_id)
        if w is not None and (not widths or widths[-1] != w):
            widths.append(w)
        if row(page, job_id).get_attribute("data-status") == "COMPLETED" and w == 100:
            break
        time.sleep(0.1)
    status = row(page, job_id).get_attribute("data-status")
    inter = [w for w in widths if 0 < w < 100]
    increasing = all(b >= a for a, b in zip(widths, widths[1:])) and len(widths) >= 3
    ok = increasing and len(inter) >= 2 and status == "COMPLETED"
    report("a_live_progress", ok, job_id=job_id, appeared_after_s=round(appeared, 2), widths=widths, final_status=status,
           **({} if ok else {"error": "expected the bar to widen through at least two values between 0% and 100% and the row to reach COMPLETED"}))


def check_stop(page, api, base, run):
    """(b) A long job's Stop button stops it: the row reads STOPPED, and so does the API."""
    job_id = f"pw-b-{run}"
    api.queue("add_job", job_id=job_id, job_type="my_job", params={"task_name": "pw-long", "duration": 60}, start=True)
    r = row(page, job_id)
    step(f'tr[data-job-id="{job_id}"] shows RUNNING')
    expect(r).to_have_attribute("data-status", "RUNNING", timeout=5000)
    step('click its button[data-action="stop"]: the row reads STOPPED')
    r.locator('button[data-action="stop"]').click()
    expect(r).to_have_attribute("data-status", "STOPPED", timeout=5000)
    expect(r.locator(".badge[data-status]")).to_have_text("STOPPED")
    api_status = wait_until(lambda: api.status(job_id)["status"] == "STOPPED", 3) and "STOPPED"
    api_status = api_status or api.status(job_id)["status"]
    ok = api_status == "STOPPED" and r.locator('button[data-action="retry"]').count() == 1
    report("b_stop_button", ok, job_id=job_id, api_status=api_status,
           **({} if ok else {"error": "the API did not read STOPPED, or the row has no Retry button"}))


def check_add_form(page, api, base, run):
    """(c) The add form: a bad value is refused in the browser (nothing sent), a server error shows
    next to its field, and a good value adds the job and opens its page."""
    step('open the types page: form[data-job-type="my_job"]')
    page.goto(base + "/ui/#/types")
    form = page.locator('form[data-job-type="my_job"]')
    expect(form).to_be_visible(timeout=10000)
    before = api.total()
    step('submit duration -5: .field-error[data-field="duration"] shows, nothing is added')
    dur = form.locator('[name="duration"]')
    dur.fill("-5")
    form.locator('button[type="submit"]').click()
    err = form.locator('.field-error[data-field="duration"]')
    expect(err).to_have_text(re.compile(r"\S"), timeout=3000)
    message = err.inner_text()
    time.sleep(0.8)
    after = api.total()
    if after != before:
        raise AssertionError(f"an invalid form was submitted: job count {before} → {after}")
    if "#/types" not in page.url:
        raise AssertionError(f"the page left the types page: {page.url}")
    report("c_invalid_refused", True, value="-5", message=message, job_count=after)

    # A server-side error (an id that exists) shows next to the job id field.
    taken = f"pw-b-{run}"
    step('submit an existing job id: [data-meta-error="job_id"] shows the host\'s error')
    dur.fill("1")
    form.locator("details.more summary").click()
    form.locator('[data-meta="job_id"]').fill(taken)
    form.locator('button[type="submit"]').click()
    id_err = form.locator('[data-meta-error="job_id"]')
    expect(id_err).to_have_text(re.compile(r"\S"), timeout=5000)
    report("c_server_error_shown", True, job_id=taken, message=id_err.inner_text())

    # A valid one: submitted, the new job's page shows it (and it runs to COMPLETED live).
    step("submit a valid job: the page goes to #/jobs/<new id>, which shows it COMPLETED with logs")
    form.locator('[data-meta="job_id"]').fill("")
    form.locator('[name="task_name"]').fill(f"pw-form-{run}")
    dur.fill("1")
    form.locator('button[type="submit"]').click()
    page.wait_for_url(re.compile(r"#/jobs/[^/?]+$"), timeout=5000)
    new_id = urllib.parse.unquote(page.url.split("#/jobs/", 1)[1])
    expect(page.locator("#job-id")).to_have_text(new_id, timeout=5000)
    expect(page.locator("#job-status .badge")).to_have_text("COMPLETED", timeout=8000)
    expect(page.locator("#job-logs .log").first).to_be_visible(timeout=3000)
    job = api.job(new_id)
    ok = job["job_type"] == "my_job" and job.get("params") == {"task_name": f"pw-form-{run}", "duration": 1} and api.total() == before + 1
    report("c_valid_submitted", ok, job_id=new_id, params=job.get("params"), status=job["status"],
           **({} if ok else {"error": "the added job has other params, or the job count did not grow by one"}))


def check_server_field_error(ctx, api, base):
    """(c) An error the server finds in a param shows next to that field: the page is given a
    my_job schema without `minimum` (so the browser lets -5 through) and the host refuses it."""
    page = ctx.new_page()

    def loosen(route):
        req = route.request
        if req.method == "POST" and "list_job_types" in (req.post_data or ""):
            resp = route.fetch()
            body = resp.json()
            for t in body["result"]["data"]["job_types"]:
                if t["job_type"] == "my_job":
                    t["params_schema"]["properties"]["duration"].pop("minimum", None)
            route.fulfill(response=resp, json=body)
        else:
            route.continue_()

    try:
        step("types page with a schema lacking minimum; submit -5: the host's error shows at duration")
        page.route("**/api/jsonrpc", loosen)
        page.goto(base + "/ui/#/types/my_job")
        form = page.locator('form[data-job-type="my_job"]')
        expect(form).to_be_visible(timeout=10000)
        before = api.total()
        form.locator('[name="duration"]').fill("-5")
        form.locator('button[type="submit"]').click()
        err = form.locator('.field-error[data-field="duration"]')
        expect(err).to_contain_text("minimum", timeout=5000)
        after = api.total()
        ok = after == before and "#/types" in page.url
        report("c_server_field_error", ok, field="params.duration", message=err.inner_text(),
               **({} if ok else {"error": f"job count {before} → {after}, url {page.url}"}))
    finally:
        page.close()


def check_screenshot(page, api, base, run, path):
    """(e) The jobs page with a few jobs, one of them running."""
    job_id = f"pw-e-{run}"
    api.queue("add_job", job_id=f"pw-e-noop-{run}", job_type="noop", params={}, start=True)
    api.queue("add_job", job_id=job_id, job_type="my_job", params={"task_name": "screenshot", "duration": 20}, start=True)
    open_jobs(page, base)
    step(f'tr[data-job-id="{job_id}"] RUNNING, then the screenshot')
    expect(row(page, job_id)).to_have_attribute("data-status", "RUNNING", timeout=5000)
    wait_until(lambda: (bar_width(page, job_id) or 0) > 0, 4)
    time.sleep(0.5)  # let the bar's transition settle
    page.screenshot(path=path, full_page=False)
    size = os.path.getsize(path)
    rows = page.locator("tbody tr[data-job-id]").count()
    try:
        api.queue("stop_job", job_id=job_id)
    except RuntimeError:
        pass
    report("e_screenshot", size > 10000 and rows >= 3, path=path, bytes=size, rows=rows)


def check_schedules(page, api, base, run):
    """(f) The schedules page: a schedule added through the API shows its next runs, then its last
    run and that job's status; its Pause button pauses it (the API agrees)."""
    name = f"pw-f-{run}"
    api.queue("add_schedule", name=name, job_type="noop", cron="* * * * * *", overlap="allow", params={})
    step("open #/schedules: the schedule's row shows three next runs")
    page.goto(base + "/ui/#/schedules")
    r = page.locator(f'tr[data-schedule="{name}"]')
    expect(r).to_be_visible(timeout=10000)
    expect(r.locator(".next-runs div")).to_have_count(3, timeout=5000)
    step("after a few seconds (refreshed every 5 s), its last run shows a status badge")
    expect(r.locator(".last-run .badge[data-status]")).to_be_visible(timeout=12000)
    step('click button[data-action="pause"]: the row reads paused, and so does the API')
    r.locator('button[data-action="pause"]').click()
    expect(r).to_have_attribute("data-state", "paused", timeout=5000)
    enabled = api.queue("get_schedule", name=name)["schedule"]["enabled"]
    api.queue("delete_schedule", name=name)
    ok = enabled is False
    report("f_schedules", ok, schedule=name, **({} if ok else {"error": "the API still reads it enabled"}))


def check_queues(page, api, base, run):
    """(f) The queues page: a queue given limits through the API shows them and its unstarted job;
    its Pause button pauses it and Resume resumes it (the API agrees each time)."""
    name = "mail"
    job_id = f"pw-q-{run}"

    def api_view():
        return next((q for q in api.queue("list_queues")["queues"] if q["name"] == name), {})

    def api_paused():
        return api_view().get("paused")

    api.queue("set_queue", queue=name, concurrency=2, rate="100/min")
    api.queue("add_job", job_id=job_id, job_type="noop", params={"sleep_ms": 0}, queue=name, start=False)
    try:
        step("the API's list_queues: mail has concurrency 2, rate 100/min, one unstarted job")
        v = api_view()
        if (v.get("concurrency"), v.get("rate"), v.get("unstarted"), v.get("paused")) != (2, "100/min", 1, False):
            raise AssertionError(f"the host's view of {name} is not what was set: {v}")
        step("open #/queues: #queues-table lists default and mail")
        page.goto(base + "/ui/#/queues")
        expect(page.locator("#queues-table")).to_be_visible(timeout=10000)
        expect(page.locator('#queues-table tr[data-queue="default"]')).to_be_visible(timeout=5000)
        r = page.locator(f'#queues-table tr[data-queue="{name}"]')
        expect(r).to_be_visible(timeout=5000)
        step("the mail row: active, running 0 / 2, rate 100/min, waiting 0, unstarted 1, origin api")
        expect(r).to_have_attribute("data-state", "active")
        expect(r.locator(".c-state")).to_have_text("active")
        expect(r.locator(".c-running")).to_have_text(re.compile(r"^\s*0\s*/\s*2\s*$"))
        expect(r.locator(".c-rate")).to_have_text("100/min")
        expect(r.locator(".c-waiting")).to_have_text("0")
        expect(r.locator(".c-unstarted")).to_have_text("1")
        expect(r.locator(".c-origin")).to_have_text("api")
        shown = {c: r.locator("." + c).inner_text().strip() for c in ("c-running", "c-waiting", "c-unstarted", "c-rate")}
        step('click button[data-action="pause"]: the row reads paused, and so does the API')
        r.locator('button[data-action="pause"]').click()
        expect(r).to_have_attribute("data-state", "paused", timeout=5000)
        expect(r.locator(".c-state")).to_have_text("paused")
        if not wait_until(lambda: api_paused() is True, 3):
            raise AssertionError(f"after Pause the API's list_queues reads paused={api_paused()!r}")
        step("start the job while mail is paused: its page says queue mail, held: paused")
        api.queue("start_job", job_id=job_id)
        page.goto(base + "/ui/#/jobs/" + job_id)
        expect(page.locator("#job-queue")).to_have_text("queue mail", timeout=10000)
        expect(page.locator("#job-held")).to_contain_text("held: paused", timeout=10000)
        page.goto(base + "/ui/#/queues")
        r = page.locator(f'#queues-table tr[data-queue="{name}"]')
        expect(r).to_have_attribute("data-state", "paused", timeout=10000)
        step('click button[data-action="resume"]: the row reads active, and so does the API')
        r.locator('button[data-action="resume"]').click()
        expect(r).to_have_attribute("data-state", "active", timeout=5000)
        expect(r.locator('button[data-action="pause"]')).to_be_visible()
        if not wait_until(lambda: api_paused() is False, 3):
            raise AssertionError(f"after Resume the API's list_queues reads paused={api_paused()!r}")
    finally:
        try:
            api.queue("delete_job", job_id=job_id, force=True)
        except RuntimeError:
            pass
    report("f_queues", True, queue=name, shown=shown)


def sign_in(browser, base, key):
    """A fresh browser signed in with `key` on the jobs page."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 860})
    page = ctx.new_page()
    page.goto(base + "/ui/#/jobs")
    expect(page.locator("#key-dialog")).to_be_visible(timeout=10000)
    page.fill("#api-key", key)
    page.click("#api-key-save")
    expect(page.locator("#key-dialog")).to_be_hidden(timeout=5000)
    return ctx, page


def check_roles(browser, api, base, run, roles):
    """(g) Signed in with a read key: its name and role show, no job, schedule or queue action
    and no add form; with a run key: stop and add, delete only its own jobs; sign out asks for
    a key again and forgets it. Each job page says who added it and who acted on it."""
    (read_name, read_key), (run_name, run_key) = roles["read"], roles["run"]
    theirs = f"pw-g-admin-{run}"
    api.queue("add_job", job_id=theirs, job_type="my_job", params={"task_name": "pw-g", "duration": 60}, start=True)
    mine = f"pw-g-mine-{run}"
    Api(base, run_key).queue("add_job", job_id=mine, job_type="my_job", params={"task_name": "pw-g", "duration": 60}, start=True)
    ctx, page = sign_in(browser, base, read_key)
    step("read key: #who-name and #who-role show its name and role")
    expect(page.locator("#who-name")).to_have_text(read_name, timeout=5000)
    expect(page.locator("#who-role")).to_contain_text("read")
    expect(page.locator("#sign-out")).to_be_visible()
    step("read key: a running job's row has no action buttons")
    expect(row(page, theirs)).to_have_attribute("data-status", "RUNNING", timeout=10000)
    if row(page, theirs).locator("button[data-action]").count() != 0:
        raise AssertionError("a read key sees job actions")
    step("read key: the job type page has no add form; schedules and queues have no buttons")
    page.goto(base + "/ui/#/types/noop")
    expect(page.locator(".page")).to_be_visible(timeout=10000)
    page.wait_for_timeout(500)
    if page.locator("form.add-form").count() and page.locator("form.add-form").is_visible():
        raise AssertionError("a read key sees the add form")
    page.goto(base + "/ui/#/queues")
    expect(page.locator("tr[data-queue]").first).to_be_visible(timeout=10000)
    if page.locator("tr[data-queue] button[data-action]:visible").count():
        raise AssertionError("a read key sees queue buttons")
    step("sign out: the sign-in dialog shows and the key is forgotten")
    page.click("#sign-out")
    expect(page.locator("#key-dialog")).to_be_visible(timeout=5000)
    if page.evaluate("localStorage.getItem('queuemgr.apiKey')"):
        raise AssertionError("the key was kept after signing out")
    ctx.close()

    ctx, page = sign_in(browser, base, run_key)
    step("run key: name and role, stop on both jobs, delete only on its own")
    expect(page.locator("#who-name")).to_have_text(run_name, timeout=5000)
    expect(page.locator("#who-role")).to_contain_text("run")
    expect(row(page, mine)).to_have_attribute("data-status", "RUNNING", timeout=10000)
    expect(row(page, theirs).locator('button[data-action="stop"]')).to_have_count(1)
    expect(row(page, theirs).locator('button[data-action="delete"]')).to_have_count(0)
    expect(row(page, mine).locator('button[data-action="delete"]')).to_have_count(1)
    step("run key: stop the admin's job from its page; the page names who added and who stopped it")
    page.goto(base + "/ui/#/jobs/" + theirs)
    page.locator('#job-actions button[data-action="stop"]').click()
    expect(page.locator("#job-status")).to_contain_text("STOPPED", timeout=5000)
    expect(page.locator("#job-added-by")).to_contain_text("added by")
    expect(page.locator('#job-audit-list li[data-action="stop"]')).to_contain_text(run_name, timeout=5000)
    ctx.close()
    for j in (theirs, mine):
        try:
            api.queue("stop_job", job_id=j)
        except RuntimeError:
            pass
    report("g_sign_in_roles", True, read=read_name, run=run_name)


def check_flow(page, api, base, run):
    """(h) A flow: an order_flow job suspended on its approval shows its graph (itself and its two
    item jobs, each with its status) and an event form; sending the approval from the page
    resumes it, and the graph turns the job COMPLETED live."""
    job_id = f"pw-flow-{run}"
    api.queue("add_job", job_id=job_id, job_type="order_flow", start=True,
              params={"order_id": job_id, "amount": 3, "items": [{"sku": "a"}, {"sku": "b"}]})
    step("the API: the job waits for the event approval, its items completed")
    if not wait_until(lambda: (api.status(job_id).get("waiting_for") or {}).get("kind") == "event", 15):
        raise AssertionError(f"the flow did not suspend on its approval: {api.status(job_id)}")
    step("open its page: #job-flow draws 3 nodes, the items COMPLETED, the job PENDING")
    page.goto(base + "/ui/#/jobs/" + job_id)
    expect(page.locator("#job-flow")).to_be_visible(timeout=10000)
    expect(page.locator("#flow-graph .flow-node")).to_have_count(3, timeout=10000)
    for i in (0, 1):
        expect(page.locator(f'#flow-graph .flow-node[data-job-id="{job_id}.item-{i}"]')).to_have_attribute(
            "data-status", "COMPLETED", timeout=5000)
    root = page.locator(f'#flow-graph .flow-node[data-job-id="{job_id}"]')
    expect(root).to_have_attribute("data-status", "PENDING")
    expect(page.locator("#job-flow-info")).to_contain_text("3 jobs")
    step("the event form: visible, named approval; send {approved: true, by: browser}")
    expect(page.locator("#send-event")).to_be_visible(timeout=5000)
    expect(page.locator("#event-name")).to_have_value("approval")
    page.locator("#event-payload").fill('{"approved": true, "by": "browser"}')
    page.locator("#event-send").click()
    step("the graph turns the job COMPLETED without a reload, and so does the API")
    expect(root).to_have_attribute("data-status", "COMPLETED", timeout=15000)
    expect(page.locator("#job-status")).to_contain_text("COMPLETED", timeout=5000)
    done = api.status(job_id)
    if done.get("status") != "COMPLETED" or (done.get("result") or {}).get("approved_by") != "browser":
        raise AssertionError(f"the API does not agree: {done}")
    expect(page.locator("#send-event")).to_be_hidden()
    flow = api.call("queue_get_flow", job_id=job_id)
    report("h_flow_graph_and_event", True, nodes=flow["count"])


def main():
    if len(sys.argv) not in (4, 5):
        print(__doc__, file=sys.stderr)
        return 2
    base, key, shot = sys.argv[1].rstrip("/"), sys.argv[2], sys.argv[3]
    roles = None
    if len(sys.argv) == 5:
        with open(sys.argv[4]) as f:
            roles = json.load(f)
    key = None if key == "-" else key
    api = Api(base, key)
    run = format(int(time.time() * 1000) % 10**10, "x")
    started = time.monotonic()
    try:
        types = {t["job_type"] for t in api.queue("list_job_types")["job_types"]}
    except Exception as e:  # noqa: BLE001
        report("host_reachable", False, error=f"{base}: {e}")
        return 1
    missing = {"my_job", "noop"} - types
    if missing:
        report("host_job_types", False, error=f"the host lacks job types {sorted(missing)} (loaded: {sorted(types)})")
        return 1

    page_errors = []
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        ctx = page = None
        if key:
            try:
                ctx, page = check_auth(browser, base, key)
                report("d_api_key_prompt", True)
            except Exception as e:  # noqa: BLE001
                report("d_api_key_prompt", False, step=STEP["now"], error=failure(e))
        if page is None:
            ctx = browser.new_context(viewport={"width": 1280, "height": 860})
            if key:  # the prompt failed: go on with the key preset, to test the rest
                ctx.add_init_script(f"localStorage.setItem('queuemgr.apiKey', {json.dumps(key)})")
            page = ctx.new_page()
            if not key:
                page.goto(base + "/ui/")
                page.wait_for_timeout(1000)
                shown = page.locator("#key-dialog").is_visible()
                report("d_api_key_prompt", not shown, skipped="no API key given",
                       **({"error": "the key dialog showed on a host without a key"} if shown else {}))
        page.on("pageerror", lambda e: page_errors.append(str(e)))

        for name, fn in [
            ("a_live_progress", lambda: check_live_progress(page, api, base, run)),
            ("b_stop_button", lambda: check_stop(page, api, base, run)),
            ("c_add_form", lambda: check_add_form(page, api, base, run)),
            ("c_server_field_error", lambda: check_server_field_error(ctx, api, base)),
            ("e_screenshot", lambda: check_screenshot(page, api, base, run, shot)),
            ("f_schedules", lambda: check_schedules(page, api, base, run)),
            ("f_queues", lambda: check_queues(page, api, base, run)),
        ] + ([("g_sign_in_roles", lambda: check_roles(browser, api, base, run, roles))] if roles else []) + (
            [("h_flow_graph_and_event", lambda: check_flow(page, api, base, run))]
            if {"order_flow", "order_item"} <= types else []):
            step("")
            try:
                fn()
            except Exception as e:  # noqa: BLE001
                report(name, False, step=STEP["now"], error=failure(e))
        report("no_page_errors", not page_errors, errors=page_errors[:5])
        browser.close()

    failed = [r["check"] for r in RESULTS if not r["ok"]]
    print(json.dumps({"summary": "passed" if not failed else "failed", "checks": len(RESULTS),
                      "failed": failed, "seconds": round(time.monotonic() - started, 1)}), flush=True)
    if failed:
        print(f"dashboard test FAILED: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
