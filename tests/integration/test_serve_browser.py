"""The web page in real headless Chromium (selenium + the system chromedriver): log in, create an avatar
(reference, challenge phrase, consent clip, verdict), make a video from an audio file, watch the progress,
see the finished video play, delete it. The server is the real app on a real socket (uvicorn in a thread);
jobs run the tiny random-weights pipeline in a thread of this process (the worker processes are exercised by
test_serve_restart.py); consent is a verifier injected here that accepts (the real checks are
test_consent_challenge.py's). Screenshots land in the test's tmp dir."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.unit.test_serve_api import REF, ThreadExecutor, passing_consent, speech_wav

pytest.importorskip("uvicorn")
webdriver = pytest.importorskip("selenium.webdriver")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    import uvicorn

    from avatarv.serve.app import create_app
    from avatarv.serve.auth import create_user
    from avatarv.serve.config import ServerConfig

    app = create_app(ServerConfig(data=tmp_path / "data", preset="tiny", steps=1), executor=ThreadExecutor(),
                     verify_consent=passing_consent)
    _, token = create_user(app.state.server.store, "alice")
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    end = time.time() + 30
    while not srv.started and time.time() < end:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", token
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def browser():
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1000,1400",
                "--autoplay-policy=no-user-gesture-required", "--mute-audio"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(options=opts, service=Service(executable_path=CHROMEDRIVER))
    yield driver
    driver.quit()


@pytest.mark.slow
def test_whole_flow_in_chromium(server, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    url, token = server
    shots = tmp_path / "screens"
    shots.mkdir()
    wait = WebDriverWait(browser, 30)
    find = browser.find_element

    def shot(name: str) -> None:
        browser.save_screenshot(str(shots / f"{name}.png"))

    browser.get(url)
    wait.until(ec.visibility_of_element_located((By.ID, "token")))
    shot("01-login")
    find(By.ID, "token").send_keys(token + "x")
    find(By.ID, "login").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "error"), "invalid token"))
    find(By.ID, "token").clear()
    find(By.ID, "token").send_keys(token)
    find(By.ID, "login").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "me"), "alice"))

    find(By.ID, "avatar-name").send_keys("alice at her desk")
    find(By.ID, "ref-file").send_keys(str(REF))
    find(By.ID, "create-avatar").click()
    wait.until(ec.visibility_of_element_located((By.ID, "challenge-btn"))).click()
    phrase = wait.until(ec.visibility_of_element_located((By.ID, "phrase"))).text
    assert len(phrase.split()) == 5
    shot("02-challenge")
    find(By.ID, "consent-file").send_keys(str(REF))
    find(By.ID, "consent-btn").click()
    wait.until(ec.text_to_be_present_in_element((By.ID, "decision"), "Consent verified."))
    assert "consent verified" in find(By.ID, "avatars").text
    shot("03-consent-verified")

    find(By.ID, "job-audio").send_keys(str(speech_wav(tmp_path / "speech.wav")))
    find(By.ID, "job-steps").send_keys("1")
    find(By.ID, "job-submit").click()
    card = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#jobs .job")))
    WebDriverWait(browser, 60).until(lambda d: "running" in card.find_element(By.CLASS_NAME, "state").text
                                     or "finished" in card.find_element(By.CLASS_NAME, "state").text)
    shot("04-running")
    WebDriverWait(browser, 180).until(lambda d: "finished" in card.find_element(By.CLASS_NAME, "state").text)
    video = card.find_element(By.CSS_SELECTOR, "video.final")
    WebDriverWait(browser, 30).until(lambda d: d.execute_script(
        "const v = arguments[0]; return v.readyState >= 2 && v.duration > 0.5;", video))
    assert browser.execute_script("return arguments[0].error", video) is None
    assert browser.execute_script("return arguments[0].videoWidth", video) == 64  # the tiny preset's frames
    browser.execute_script("arguments[0].currentTime = 0.5;", video)
    time.sleep(0.5)
    shot("05-finished")
    job_id = card.get_attribute("data-id")
    assert card.find_element(By.CLASS_NAME, "download").get_attribute("href").endswith(f"/api/jobs/{job_id}/video")

    card.find_element(By.CLASS_NAME, "delete").click()
    WebDriverWait(browser, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, f'#jobs [data-id="{job_id}"]'))
    assert sorted(p.name for p in shots.iterdir()) == ["01-login.png", "02-challenge.png", "03-consent-verified.png",
                                                       "04-running.png", "05-finished.png"]
    keep = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "serve-screens"
    if keep.is_dir() and not any(keep.iterdir()):  # filled once, on purpose, for the write-up
        for p in shots.iterdir():
            shutil.copy(p, keep / p.name)
