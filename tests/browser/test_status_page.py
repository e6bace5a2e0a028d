#!/usr/bin/env python3
"""The status page in a real headless browser (Debian's chromium + chromedriver, driven with
python3-selenium): the page served by agentd's admin endpoint loads, shows the three daemons of
a ring on loopback, and its rate chart moves while a flood runs.

usage: test_status_page.py BUILD_DIR [--screenshot FILE [--linger SECONDS]]
  --linger: before the screenshot, let the flood run (and then pause) SECONDS more, so that
            the chart has a history to show (for docs/status-page.png; not used by ctest)

Exits 0 when it passed, 1 when it failed, 77 (ctest's SKIP_RETURN_CODE) with a message when
chromium, chromedriver or selenium is missing. Bounded: about 60 s at most.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

DEADLINE = time.monotonic() + 60  # the whole test


def skip(why):
    print("SKIP: " + why + " (sh scripts/install-deps.sh installs it)")
    sys.exit(77)


def fail(why):
    print("FAIL: " + why)
    sys.exit(1)


def free_ports(kind, n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket(socket.AF_INET, kind)
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def await_true(what, pred, timeout_s):
    """Polls pred until it is true, at most timeout_s (and never past the test's deadline)."""
    end = min(time.monotonic() + timeout_s, DEADLINE)
    while time.monotonic() < end:
        try:
            if pred():
                return
        except Exception:  # not there yet (connection refused, element missing...)
            pass
        time.sleep(0.1)
    fail("timed out waiting for " + what)


def get_json(url):
    with urllib.request.urlopen(url, timeout=2) as r:
        return json.load(r)


def main():
    if len(sys.argv) < 2:
        print(__doc__)
        sys.exit(2)
    build = sys.argv[1]
    global DEADLINE
    screenshot = sys.argv[sys.argv.index("--screenshot") + 1] if "--screenshot" in sys.argv else None
    linger = float(sys.argv[sys.argv.index("--linger") + 1]) if "--linger" in sys.argv else 0
    DEADLINE += 2 * linger
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver") else None)
    if not chromium:
        skip("chromium is not installed")
    if not driver:
        skip("chromedriver (package chromium-driver) is not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.common.by import By
    except ImportError:
        skip("python3-selenium is not importable by " + sys.executable)

    agentd = os.path.join(build, "agentd", "agentd")
    flood = os.path.join(build, "examples", "flood", "agent-flood")
    tmp = tempfile.mkdtemp(prefix="agent-browser-")
    ring_ports = free_ports(socket.SOCK_DGRAM, 3)
    http_ports = free_ports(socket.SOCK_STREAM, 3)
    procs = []  # only what this test started is stopped
    browser = None
    try:
        for i in range(1, 4):
            conf = os.path.join(tmp, "d%d.toml" % i)
            with open(conf, "w") as f:
                f.write('[daemon]\nname = "d%d"\nstate_dir = "%s/state%d"\n' % (i, tmp, i))
                f.write('[clients]\nunix_socket = "%s/d%d.sock"\ntcp = "off"\n' % (tmp, i))
                f.write('[ring]\nid = %d\nkey_file = "none"\ntoken_loss_ms = 2000\n' % i)
                for j, port in enumerate(ring_ports, 1):
                    f.write('[[ring.daemons]]\nid = %d\naddress = "127.0.0.1"\nport = %d\nname = "d%d"\n'
                            % (j, port, j))
                f.write('[admin]\nhttp = "127.0.0.1:%d"\n' % http_ports[i - 1])
            log = open(os.path.join(tmp, "d%d.log" % i), "w")
            procs.append(subprocess.Popen([agentd, "--config", conf], stderr=log, stdout=log))
        base = "http://127.0.0.1:%d" % http_ports[0]
        await_true("the ring of three in d1's /status",
                   lambda: sum(d["in_ring"] for d in get_json(base + "/status")["daemons"]) == 3, 20)

        opts = webdriver.ChromeOptions()
        opts.binary_location = chromium
        for a in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--window-size=1000,1000", "--user-data-dir=" + os.path.join(tmp, "chrome")):
            opts.add_argument(a)
        # chromedriver started here on 127.0.0.1 and reached by address: selenium's own start
        # waits for "localhost", which a root without /etc/hosts (a fresh debootstrap) cannot
        # resolve.
        driver_port = free_ports(socket.SOCK_STREAM, 1)[0]
        driver_log = open(os.path.join(tmp, "chromedriver.log"), "w")
        driver_proc = subprocess.Popen([driver, "--port=%d" % driver_port, "--allowed-ips=127.0.0.1"],
                                       stdout=driver_log, stderr=driver_log)
        procs.append(driver_proc)
        driver_url = "http://127.0.0.1:%d" % driver_port
        await_true("chromedriver answering on 127.0.0.1:%d" % driver_port,
                   lambda: get_json(driver_url + "/status")["value"]["ready"], 20)
        browser = webdriver.Remote(command_executor=driver_url, options=opts)
        browser.set_page_load_timeout(15)
        browser.get(base + "/")

        def daemon_rows():
            return browser.find_elements(By.CSS_SELECTOR, "#daemons tbody tr.daemon")

        await_true("three daemons in the page's ring table, all in the ring",
                   lambda: len(daemon_rows()) == 3 and all("in ring" in r.text and "not in ring" not in r.text
                                                           for r in daemon_rows()), 15)
        names = [r.find_elements(By.TAG_NAME, "td")[1].text for r in daemon_rows()]
        if not (names[0].startswith("d1") and names[1] == "d2" and names[2] == "d3"):
            fail("the ring table names %r, not d1 (this daemon), d2, d3" % names)
        if "(this daemon)" not in names[0]:
            fail("d1's row does not say it is this daemon: %r" % names[0])
        chart = browser.find_element(By.ID, "chart")
        await_true("the chart's first points", lambda: int(chart.get_attribute("data-points")) >= 2, 10)
        idle = float(chart.get_attribute("data-max-ordered"))
        before = browser.execute_script("return document.getElementById('chart').toDataURL()")

        # A flood through d1 (a receiver on d2 too): the chart's message rate rises.
        receiver = subprocess.Popen([flood, "-d", os.path.join(tmp, "d2.sock"), "-n", "recv", "-r",
                                     "-c", "100000000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(receiver)
        sender = subprocess.Popen([flood, "-d", os.path.join(tmp, "d1.sock"), "-n", "flood",
                                   "-c", "100000000", "-s", "1024", "-b", "16"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(sender)
        await_true("the chart's message rate to rise above 1000 msg/s (idle: %g)" % idle,
                   lambda: float(chart.get_attribute("data-last-ordered")) > max(1000.0, 10 * idle), 20)
        after = browser.execute_script("return document.getElementById('chart').toDataURL()")
        if after == before:
            fail("the chart's pixels did not change while the flood ran")
        summary = browser.find_element(By.ID, "summary").text
        if "operational" not in summary:
            fail("the summary does not show the ring operational: %r" % summary)
        await_true("the flood's group in the groups table",
                   lambda: any(r.text.startswith("flood") or "#flood#d1" in r.text
                               for r in browser.find_elements(By.CSS_SELECTOR, "#groups tbody tr.group")), 10)
        if screenshot:
            if linger:
                time.sleep(linger)  # the flood goes on: a history for the picture
                sender.send_signal(signal.SIGSTOP)
                time.sleep(linger / 2)  # and pauses: the chart falls
                sender.send_signal(signal.SIGCONT)
                time.sleep(linger / 2)
            browser.save_screenshot(screenshot)
            print("screenshot: " + screenshot)
        print("ok: three daemons shown; the chart rose from %g to %s msg/s during the flood"
              % (idle, chart.get_attribute("data-last-ordered")))
    finally:
        if browser is not None:
            browser.quit()
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
