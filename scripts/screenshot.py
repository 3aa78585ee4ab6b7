"""Take the README screenshot from the real running app in headless Chromium.

    python scripts/screenshot.py [--out assets/screenshot.png] [--tab gan] [--unlearn] [--full-page]

Starts ``python app.py`` on a free port, generates samples on the chosen tab, runs its default
method, and saves a screenshot of the page.
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "assets" / "screenshot.png"))
    parser.add_argument("--tab", default="gan", help="backend tab to show")
    parser.add_argument("--unlearn", action="store_true", help="also run the default method before the shot")
    parser.add_argument("--full-page", action="store_true", help="shoot the whole page, not the first screen")
    args = parser.parse_args(argv)

    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    port = free_port()
    server = subprocess.Popen([sys.executable, "app.py", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                              env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--disable-component-update", "--window-size=1400,1500"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(600):
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        driver.get(url)
        wait = WebDriverWait(driver, 900)
        wait.until(lambda d: d.find_elements(By.ID, f"tab-{args.tab}-button") or
                   d.find_elements(By.XPATH, "//button[@role='tab']"))
        for tab in driver.find_elements(By.XPATH, "//button[@role='tab']"):
            if tab.get_attribute("id") == f"tab-{args.tab}-button" or tab.text.strip().lower().startswith(args.tab):
                tab.click()
                break
        wait.until(lambda d: d.find_element(By.ID, f"{args.tab}-generate").is_displayed())
        driver.find_element(By.ID, f"{args.tab}-generate").click()
        wait.until(lambda d: any(word in d.find_element(By.ID, f"{args.tab}-status").text for word in ("samples", "⚠")))
        if args.unlearn:
            driver.find_element(By.ID, f"{args.tab}-run").click()
            wait.until(lambda d: "done" in d.find_element(By.ID, f"{args.tab}-progress").text
                       or "⚠" in d.find_element(By.ID, f"{args.tab}-progress").text)
            time.sleep(3)
        driver.execute_script("window.scrollTo(0, 0)")
        if args.full_page:
            height = driver.execute_script("return document.documentElement.scrollHeight")
            driver.set_window_size(1400, min(int(height) + 100, 12000))
            time.sleep(1)
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(args.out)
        print(f"saved {args.out}")
    finally:
        driver.quit()
        server.terminate()
        server.wait(20)
    return 0


if __name__ == "__main__":
    sys.exit(main())
