"""A person at the web client: Debian's headless Chromium driven by Selenium 4, no driver downloads.

Invariants:
- The browser and driver are the system's (``/usr/bin/chromium``, ``/usr/bin/chromedriver``);
  a ``Service`` with an explicit executable path means Selenium Manager never runs.
- Every wait is a ``WebDriverWait`` with a deadline on something the page shows; nothing sleeps.
- Helpers read the page the way a person would (the message list, the channel list, the
  nick list); they never reach into the client's JavaScript state.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

CHROMIUM = os.environ.get("CHATD_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHATD_CHROMEDRIVER", "/usr/bin/chromedriver")
DEADLINE_S = 15.0
DESKTOP = (1280, 800)
PHONE = (390, 844)


def missing_browser() -> str | None:
    """Why browser tests cannot run here, or None when they can."""
    for path, package in ((CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")):
        if not os.access(path, os.X_OK):
            return f"{path} is not installed (apt-get install {package})"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install '.[test]')"
    return None


class Browser:
    """One headless Chromium window on the web client."""

    def __init__(self, size: tuple[int, int] = DESKTOP) -> None:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service

        options = webdriver.ChromeOptions()
        options.binary_location = CHROMIUM
        for argument in (
            "--headless=new",
            "--no-sandbox",
            "--disable-dev-shm-usage",
            "--disable-gpu",
            f"--window-size={size[0]},{size[1]}",
            "--force-device-scale-factor=1",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
        self.driver.set_window_size(*size)

    def close(self) -> None:
        self.driver.quit()

    # ---- waiting and reading -------------------------------------------------------------

    def wait(self, condition: Callable[[Any], Any], what: str, timeout: float = DEADLINE_S) -> Any:
        from selenium.webdriver.support.ui import WebDriverWait

        return WebDriverWait(self.driver, timeout, poll_frequency=0.05).until(condition, f"waiting for {what}")

    def find(self, selector: str) -> Any:
        from selenium.webdriver.common.by import By

        return self.driver.find_element(By.CSS_SELECTOR, selector)

    def find_all(self, selector: str) -> list[Any]:
        from selenium.webdriver.common.by import By

        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def texts(self, selector: str) -> list[str]:
        """The text of every match, read in one script call (elements may be replaced meanwhile)."""
        script = "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);"
        return self.driver.execute_script(script, selector)

    def lines(self) -> list[str]:
        """The message list of the buffer in view, one ``nick text`` (or info text) per line."""
        script = """return [...document.querySelectorAll('#messages .line')].map((line) =>
            [...line.children].filter((c) => !c.classList.contains('time')).map((c) => c.textContent).join(' '));"""
        return self.driver.execute_script(script)

    def wait_line(self, fragment: str, timeout: float = DEADLINE_S) -> str:
        """Wait for a line of the buffer in view that contains ``fragment``; return it."""
        return self.wait(
            lambda _: next((line for line in self.lines() if fragment in line), None),
            f"a line with {fragment!r}; have {self.lines()[-5:]!r}",
            timeout,
        )

    def buffers(self) -> dict[str, str]:
        """Buffer list: name → its unread badge ("" when none), with "!" appended when highlighted."""
        script = """return Object.fromEntries([...document.querySelectorAll('#buffers li.buffer')].map((li) =>
            [li.dataset.name, (li.querySelector('.unread')?.textContent || '')
             + (li.classList.contains('highlighted') ? '!' : '')]));"""
        return self.driver.execute_script(script)

    def nicks(self) -> list[str]:
        return self.texts("#nicks li")

    def active(self) -> str:
        return self.find("#buffer-name").text

    def console_errors(self) -> list[str]:
        """Browser console entries at SEVERE level (CSP violations land here)."""
        return [entry["message"] for entry in self.driver.get_log("browser") if entry["level"] == "SEVERE"]

    # ---- acting ---------------------------------------------------------------------------

    def open(self, url: str) -> None:
        self.driver.get(url)
        self.wait(lambda d: d.execute_script("return document.readyState") == "complete", "the page to load")

    def login(self, nick: str, channels: str = "#lobby", account: str = "", password: str = "") -> None:
        """Fill the login form and connect; wait for the chat view (or return at once with ``account``,
        when the caller checks the outcome itself)."""
        self.wait(lambda _: self.find("#nick").is_displayed(), "the login form")
        for field, value in (("#nick", nick), ("#channels", channels)):
            self.find(field).clear()
            self.find(field).send_keys(value)
        if account:
            self.wait(lambda _: self.find("#account").is_displayed(), "the account fields (SASL offered)")
            self.find("#account").send_keys(account)
            self.find("#password").send_keys(password)
        self.find("#connect").click()
        if not account:
            self.wait(lambda _: self.find("#chat").is_displayed(), "the chat view")

    def type(self, text: str, enter: bool = True) -> None:
        box = self.find("#input")
        box.send_keys(text + ("\n" if enter else ""))

    def say(self, text: str) -> None:
        self.type(text)
        self.wait(lambda _: self.find("#input").get_attribute("value") == "", f"{text!r} to be sent")

    def click_buffer(self, name: str) -> None:
        self.find(f"#buffers li.buffer[data-name={css_string(name)}] button.open").click()
        self.wait(lambda _: self.active() == name, f"{name} in view")

    def screenshot(self, path: str, size: tuple[int, int], mobile: bool = False) -> None:
        """A PNG of exactly ``size`` CSS pixels (the window's outer size would include no chrome in
        headless mode, but its inner height varies; the DevTools override pins the viewport)."""
        width, height = size
        metrics = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile}
        self.driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
        self.driver.save_screenshot(path)


def css_string(text: str) -> str:
    """``text`` as a CSS string literal (for attribute selectors)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
