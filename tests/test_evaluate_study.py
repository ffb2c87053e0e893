"""crn_tf.evaluate.study: the human-study page, its pairs, and the page clicked through in headless Chromium (then tallied)."""
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from crn_tf.evaluate.study import StudyError, make_pairs, write_study

NUM_PAIRS = 5


def _folders(tmp_path, rng, count=6):
    a, b = tmp_path / "crn", tmp_path / "pix2pix"
    a.mkdir()
    b.mkdir()
    for index in range(count):
        Image.fromarray(rng.integers(0, 256, (16, 32, 3)).astype(np.uint8)).save(a / f"img{index}.png")
        Image.fromarray(rng.integers(0, 256, (16, 32, 3)).astype(np.uint8)).save(b / f"img{index}.png")
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(a / "only_in_a.png")
    return a, b


def test_pairs_are_seeded_and_matched_by_stem(tmp_path, rng):
    a, b = _folders(tmp_path, rng)
    pairs, unmatched = make_pairs(str(a), str(b), num_pairs=4, seed=1)
    again, _ = make_pairs(str(a), str(b), num_pairs=4, seed=1)
    assert [(p.stem, p.a_on_left) for p in pairs] == [(p.stem, p.a_on_left) for p in again]
    assert len({p.stem for p in pairs}) == 4 and unmatched == {"only_a": 1, "only_b": 0}
    everything, _ = make_pairs(str(a), str(b), seed=2)
    assert sorted(p.stem for p in everything) == [f"img{i}" for i in range(6)]
    assert {p.a_on_left for p in everything} == {True, False}  # both placements occur
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(StudyError, match="share no image names"):
        make_pairs(str(a), str(empty))


def test_page_is_self_contained(tmp_path, rng):
    a, b = _folders(tmp_path, rng)
    out = tmp_path / "embedded"
    record = write_study(str(a), str(b), str(out), num_pairs=3, embed=True)
    page = (out / "index.html").read_text()
    assert page.count("data:image/png;base64,") == 6 and not os.listdir(out / "images")
    copied = write_study(str(a), str(b), str(tmp_path / "copied"), num_pairs=3)
    assert sorted(os.listdir(tmp_path / "copied" / "images")) == sorted(
        f"pair{i:04d}_{side}.png" for i in range(3) for side in ("left", "right"))
    assert record["id"] == copied["id"]  # same pairs, same seed: same study
    # The images on each side are the right method's files.
    for entry in copied["pairs"]:
        left = np.asarray(Image.open(tmp_path / "copied" / "images" / f"pair{entry['pair']:04d}_left.png"))
        source = a if entry["left"] == "a" else b
        np.testing.assert_array_equal(left, np.asarray(Image.open(source / f"{entry['stem']}.png")))


# --- the page in a real browser -----------------------------------------------------------------------
def _browser(download_dir):
    chromium, driver = shutil.which("chromium") or shutil.which("chromium-browser"), shutil.which("chromedriver")
    if not chromium or not driver:
        pytest.skip("chromium and chromedriver are not installed (apt-get install chromium chromium-driver)")
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install selenium)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage", f"--user-data-dir={download_dir.parent / 'chromium-profile'}"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    browser = webdriver.Chrome(options=options, service=Service(executable_path=driver))
    browser.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    return browser


def _wait(condition, what, timeout=20.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.mark.slow
def test_study_page_clicked_through_in_headless_chromium(tmp_path, rng):
    a, b = _folders(tmp_path, rng)
    out = tmp_path / "study"
    command = [sys.executable, "-m", "crn_tf.evaluate.study", "--a", str(a), "--b", str(b), "--out", str(out),
               "--num-pairs", str(NUM_PAIRS), "--seed", "3", "--time-limit", "0.5"]
    written = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert written.returncode == 0, written.stderr
    key = json.loads((out / "study.json").read_text())
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    browser = _browser(downloads)
    from selenium.webdriver.common.by import By

    try:
        browser.get((out / "index.html").as_uri())
        browser.find_element(By.ID, "worker").send_keys("tester1")
        browser.find_element(By.ID, "start-button").click()
        sides = ["left", "right", "left", "left", "right"]
        for number, side in enumerate(sides):
            _wait(lambda: browser.find_element(By.TAG_NAME, "body").get_attribute("data-shown") == str(number + 1),
                  f"pair {number + 1} on screen")
            assert browser.find_element(By.ID, "progress").text == f"Pair {number + 1} of {NUM_PAIRS}"
            assert browser.execute_script("return document.getElementById('left-img').naturalWidth") == 32
            if number == 2:  # the timed study: wait until the images are hidden, then still choose
                _wait(lambda: "hidden-images" in browser.find_element(By.ID, "trial").get_attribute("class"), "hiding")
                assert not browser.find_element(By.ID, "left-img").is_displayed()
            if number == NUM_PAIRS - 1:  # the keyboard works too
                from selenium.webdriver.common.keys import Keys

                browser.find_element(By.TAG_NAME, "body").send_keys(Keys.ARROW_RIGHT if side == "right" else Keys.ARROW_LEFT)
            else:
                browser.find_element(By.ID, side).click()  # a real mouse click on the image button
        answers_box = _wait(lambda: browser.find_element(By.ID, "answers").get_attribute("value"), "answers")
        browser.find_element(By.ID, "download").click()
        downloaded = _wait(lambda: [p for p in downloads.iterdir() if p.suffix == ".json"], "the download")
    finally:
        browser.quit()

    answers = json.loads(answers_box)
    assert answers == json.loads(downloaded[0].read_text())
    assert downloaded[0].name == f"answers-{key['id']}-tester1.json"
    assert answers["worker"] == "tester1" and answers["study"]["id"] == key["id"]
    assert [x["side"] for x in answers["answers"]] == sides
    for answer, pair in zip(answers["answers"], key["pairs"]):
        assert (answer["pair"], answer["stem"], answer["left"]) == (pair["pair"], pair["stem"], pair["left"])
        a_side = "left" if pair["left"] == "a" else "right"
        assert answer["choice"] == ("a" if answer["side"] == a_side else "b")
        assert answer["ms"] >= 0
    assert answers["answers"][2]["after_hiding"] is True

    result = subprocess.run([sys.executable, "-m", "crn_tf.evaluate.tally", str(downloaded[0])],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    chosen_a = sum(x["choice"] == "a" for x in answers["answers"])
    assert f"crn judged more realistic than pix2pix: {chosen_a} of {NUM_PAIRS}" in result.stdout
    assert "1 answers given after the images were hidden" in result.stdout
