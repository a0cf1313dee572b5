"""Use the served page in a real browser, as a person does: headless
Chromium (the system's, e.g. Debian's ``chromium``; Playwright drives it and
downloads no browser) picks a task, uploads images, runs and reads the
result, and takes a screenshot. The browser test and
``tools/serve_screenshot.py`` use it."""
import json
import os.path as osp
import shutil
import tempfile
from dataclasses import dataclass
from typing import Optional, Sequence

from playwright.sync_api import sync_playwright

#: Where distributions put Chromium.
CHROMIUM_PATHS = ('/usr/bin/chromium', '/usr/bin/chromium-browser',
                  '/usr/bin/google-chrome')
# No background networking: the machine's closed network refuses Chromium's
# own connections (updates, sync), each of which would otherwise be tried.
CHROMIUM_ARGS = ('--headless=new', '--no-sandbox', '--disable-gpu',
                 '--disable-quic', '--no-first-run',
                 '--disable-background-networking',
                 '--disable-component-update', '--disable-sync')


def find_chromium() -> Optional[str]:
    """The system's Chromium, or None."""
    for path in CHROMIUM_PATHS:
        if osp.isfile(path):
            return path
    return shutil.which('chromium')


@dataclass
class PageResult:
    """What the page showed: the messages, the detections (the JSON box,
    parsed), the number of pictures in the gallery."""
    messages: str
    payload: dict
    pictures: int
    screenshot: Optional[str]


def detect_in_browser(url: str, task: str, images: Sequence[str], *,
                      classes: str = '', score_thr: Optional[float] = None,
                      screenshot: Optional[str] = None,
                      chromium: Optional[str] = None,
                      timeout_s: float = 180) -> PageResult:
    """Open ``url``, choose ``task``, type ``classes`` (zero-shot), set the
    threshold, upload ``images``, press Detect and read the result."""
    chromium = chromium or find_chromium()
    if chromium is None:
        raise FileNotFoundError(
            f'No Chromium at {", ".join(CHROMIUM_PATHS)}: install the '
            f'distribution\'s package (apt-get install chromium).')
    timeout = timeout_s * 1000
    with tempfile.TemporaryDirectory() as profile, sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(
            profile, executable_path=chromium, args=list(CHROMIUM_ARGS),
            headless=True, viewport=dict(width=1280, height=900))
        try:
            page = browser.new_page()
            page.set_default_timeout(timeout)
            page.goto(url)
            page.locator('#detect').wait_for()
            page.locator('#task input').click()
            page.get_by_role('option', name=task, exact=True).click()
            page.locator('#card').get_by_text(task).first.wait_for()
            if classes:
                page.locator('#classes textarea').fill(classes)
            if score_thr is not None:
                page.locator('#score-thr input[type=number]').fill(
                    str(score_thr))
                page.locator('#score-thr input[type=number]').press('Enter')
            page.locator('#images input[type=file]').set_input_files(
                list(images))
            for image in images:  # listed once uploaded (stem, suffix)
                page.locator('#images').get_by_text(osp.splitext(
                    osp.basename(image))[0]).first.wait_for()
            page.locator('#detect').click()
            page.locator('#messages').get_by_text(
                'image(s) detected').or_(
                    page.locator('#messages').get_by_text('Not run')
            ).first.wait_for()
            page.get_by_text('Detections (JSON)').click()
            box = page.locator('#results-json textarea')
            box.wait_for()
            payload = json.loads(box.input_value())
            messages = page.locator('#messages').inner_text()
            pictures = page.locator('#gallery img').count()
            if screenshot:
                page.screenshot(path=screenshot, full_page=True)
            return PageResult(messages, payload, pictures, screenshot)
        finally:
            browser.close()
