"""report.html's interactive explorer in a real headless browser (Debian's chromium + chromedriver, selenium).

Toggling a unit in the page must show the pixels the Python computation gives
(tanh of the fixed-gate output with that unit removed), within 1/255.
Needs: `apt-get install chromium chromium-driver` (scripts/setup.sh does it as root)
and PyPI's selenium (requirements.txt); no browser is downloaded at run time.
"""

import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tf_sparse_gen import report as report_lib
from tf_sparse_gen import images as image_lib
from tf_sparse_gen.config import get_config
from tf_sparse_gen.families import build_model
from tf_sparse_gen.families.andor import ablate, explorer, interpret


def _browser_paths():
    chrome = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    driver = shutil.which("chromedriver") or ("/usr/bin/chromedriver" if os.path.exists("/usr/bin/chromedriver")
                                              else None)
    return chrome, driver


@pytest.fixture(scope="module")
def browser():
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -r requirements.txt)")
    chrome, driver = _browser_paths()
    if chrome is None or driver is None:
        pytest.skip("no chromium/chromedriver on this machine (apt-get install chromium chromium-driver; "
                    "scripts/setup.sh does it when root and apt are available)")
    options = webdriver.ChromeOptions()
    options.binary_location = chrome
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--allow-file-access-from-files"):
        options.add_argument(arg)
    d = webdriver.Chrome(service=Service(driver), options=options)
    d.set_script_timeout(30)
    yield d
    d.quit()


def _pixels(d, canvas_id, h, w, c):
    data = d.execute_script(
        f"var cv = document.getElementById('{canvas_id}');"
        f"return Array.from(cv.getContext('2d').getImageData(0, 0, {w}, {h}).data);")
    rgba = np.asarray(data, np.int64).reshape(h, w, 4)
    assert (rgba[..., 3] == 255).all()
    if c == 1:
        assert (rgba[..., 0] == rgba[..., 1]).all() and (rgba[..., 0] == rgba[..., 2]).all()
        return rgba[..., :1]
    return rgba[..., :3]


def _expected(fm):
    return image_lib.to_uint8(np.tanh(fm)).astype(np.int64)


@pytest.mark.parametrize("channels", [1, 3])
def test_toggling_units_shows_the_python_pixels(browser, tmp_path, channels):
    config = get_config("andor", "tiny", {"data.dataset": "digits", "data.channels": channels})
    model = build_model(config, 8)
    g = model.generator
    layer = model.mid_layer
    stage = g.layer_stages[layer]
    zs = tf.random.stateless_normal([2, g.z_dim], seed=[5, channels]).numpy() * 2.0
    explorer.write_explorer(g, zs, layer, str(tmp_path / "explorer.json"))
    report = {"model": "andor", "preset": "tiny", "step": 0, "model_dir": str(tmp_path),
              "reference": {"dataset": "digits", "split": "test"}, "num_samples": 0, "metrics": {}, "timing": {},
              "figures": {"interactive explorer (data)": "explorer.json"}}
    page = report_lib.write_html_report(report, str(tmp_path / "report.html"))
    with open(page) as f:
        text = f.read()
    assert "http" not in text  # nothing fetched from a network
    browser.get("file://" + page)
    assert browser.execute_script("return document.documentElement.getAttribute('data-explorer-ready')") == "1"
    size = g.image_size
    for li in range(2):
        rec = interpret.record(g, zs[li])
        units, values = interpret.active_units(g, rec, layer)
        order = np.argsort(-values, kind="stable")
        units = units[order]
        canvas = f"explorer-0-canvas-{li}"
        shown = lambda: _pixels(browser, canvas, size, size, channels)  # noqa: E731
        np.testing.assert_allclose(shown(), _expected(rec.fm), atol=1)
        h = rec.acts[stage].copy()
        # Switch off the strongest unit, then one at another position: what the generator
        # with this latent's gates fixed gives with those units zeroed.
        other = next(k for k in range(len(units)) if tuple(units[k, :2]) != tuple(units[0, :2]))
        for k in (0, other):
            browser.find_element("id", f"explorer-0-unit-{li}-{k}").click()
            h[tuple(units[k])] = 0.0
            np.testing.assert_allclose(shown(), _expected(ablate.fixed_gates_fm(g, rec, stage, h[None])[0]), atol=1)
        # All off: the bias part; then the strongest unit alone on; then all on again: the image.
        browser.find_element("id", f"explorer-0-off-{li}").click()
        beta = interpret.bias_part(g, rec, layer)
        np.testing.assert_allclose(shown(), _expected(beta), atol=1)
        assert np.abs(shown() - _expected(rec.fm)).max() > 2  # the toggles visibly change the picture
        browser.find_element("id", f"explorer-0-unit-{li}-0").click()
        alone = np.zeros_like(h)
        alone[tuple(units[0])] = rec.acts[stage][tuple(units[0])]
        np.testing.assert_allclose(shown(), _expected(ablate.fixed_gates_fm(g, rec, stage, alone[None])[0]), atol=1)
        browser.find_element("id", f"explorer-0-on-{li}").click()
        np.testing.assert_allclose(shown(), _expected(rec.fm), atol=1)
        assert browser.find_element("id", f"explorer-0-count-{li}").text.strip() == f"{len(units)} of {len(units)} on"
        # A click on the image at the strongest unit's grid cell switches that OR node (its position) off.
        from selenium.webdriver.common.action_chains import ActionChains

        element = browser.find_element("id", canvas)
        grid = rec.acts[stage].shape[0]
        cell = element.size["width"] / grid
        y, x = units[0, :2]
        ActionChains(browser).move_to_element_with_offset(
            element, int((x + 0.5) * cell - element.size["width"] / 2),
            int((y + 0.5) * cell - element.size["height"] / 2)).click().perform()
        h = rec.acts[stage].copy()
        h[y, x] = 0.0
        np.testing.assert_allclose(shown(), _expected(ablate.fixed_gates_fm(g, rec, stage, h[None])[0]), atol=1)
        here = int(np.sum((units[:, 0] == y) & (units[:, 1] == x)))
        assert browser.find_element("id", f"explorer-0-count-{li}").text.strip() == \
            f"{len(units) - here} of {len(units)} on"
