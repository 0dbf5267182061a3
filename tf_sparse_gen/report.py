"""report.html: the self-contained page evaluate.py writes (no network, no server).

A metrics table (each metric's better direction, where it was measured, KID's subsets),
the run's step, preset and EMA state, a timing table, the figures by relative path, and an
interactive explorer (inline data and script) for each figure that is explorer data
(a `*explorer.json` of kind "basis_explorer", written by a family's `interpretation_figures`).
"""

from __future__ import annotations

import html
import json
import os
from typing import Optional

EXPLORER_KIND = "basis_explorer"

# The explorer's script: recomposes each latent's image from its basis data (see
# families/andor/explorer.py for the format): fm = fixed + sum of value * basis over
# the units switched on, then tanh, then round((t + 1) * 127.5) into a canvas.
_EXPLORER_JS = r"""
(function () {
  function floats(hex) {
    var n = hex.length >> 1, bytes = new Uint8Array(n);
    for (var i = 0; i < n; i++) bytes[i] = parseInt(hex.substr(2 * i, 2), 16);
    return new Float32Array(bytes.buffer);
  }
  function el(tag, attrs, text) {
    var e = document.createElement(tag);
    for (var k in attrs) e.setAttribute(k, attrs[k]);
    if (text !== undefined) e.textContent = text;
    return e;
  }
  var nodes = document.querySelectorAll("script.explorer-data");
  window.explorers = [];
  nodes.forEach(function (node, e) {
    var data = JSON.parse(node.textContent), H = data.height, W = data.width, C = data.channels;
    var root = node.parentNode.querySelector(".explorer-root");
    var state = {data: data, latents: []};
    window.explorers.push(state);
    data.latents.forEach(function (lat, li) {
      var fixed = floats(lat.fixed), flat = floats(lat.bases), offsets = [], off = 0;
      lat.boxes.forEach(function (b) { offsets.push(off); off += (b[1] - b[0]) * (b[3] - b[2]) * C; });
      var on = lat.units.map(function () { return true; });
      var box = el("div", {"class": "explorer-latent"});
      box.appendChild(el("h3", {}, lat.name + ": " + lat.units.length + " active units" +
        (lat.folded ? " (+" + lat.folded + " weakest, fixed)" : "")));
      var canvas = el("canvas", {"id": "explorer-" + e + "-canvas-" + li, "width": W, "height": H,
                                 "style": "width:" + (W * Math.max(1, Math.floor(192 / W))) + "px"});
      box.appendChild(canvas);
      var bar = el("div", {});
      var allOn = el("button", {"type": "button", "id": "explorer-" + e + "-on-" + li}, "all on");
      var allOff = el("button", {"type": "button", "id": "explorer-" + e + "-off-" + li}, "all off");
      bar.appendChild(allOn); bar.appendChild(allOff);
      var count = el("span", {"id": "explorer-" + e + "-count-" + li});
      bar.appendChild(count);
      box.appendChild(bar);
      function draw() {
        var fm = new Float64Array(fixed.length);
        for (var i = 0; i < fixed.length; i++) fm[i] = fixed[i];
        for (var k = 0; k < lat.units.length; k++) {
          if (!on[k]) continue;
          var b = lat.boxes[k], v = lat.values[k], o = offsets[k], bw = b[3] - b[2];
          for (var y = b[0]; y < b[1]; y++)
            for (var x = b[2]; x < b[3]; x++)
              for (var c = 0; c < C; c++)
                fm[(y * W + x) * C + c] += v * flat[o + ((y - b[0]) * bw + (x - b[2])) * C + c];
        }
        var ctx = canvas.getContext("2d"), img = ctx.createImageData(W, H);
        for (var p = 0; p < H * W; p++)
          for (var c = 0; c < 3; c++) {
            var t = Math.tanh(fm[p * C + (C === 1 ? 0 : c)]);
            img.data[p * 4 + c] = Math.min(255, Math.max(0, Math.round((t + 1) * 127.5)));
          }
        for (var p = 0; p < H * W; p++) img.data[p * 4 + 3] = 255;
        ctx.putImageData(img, 0, 0);
        count.textContent = " " + on.filter(Boolean).length + " of " + on.length + " on";
      }
      var boxes = [], groups = {};
      var list = el("div", {"class": "explorer-units"});
      lat.units.forEach(function (u, k) {
        var key = u[0] + "," + u[1];
        if (!(key in groups)) {
          groups[key] = el("div", {"class": "explorer-or"});
          groups[key].appendChild(el("b", {}, "OR (" + key + "): "));
          list.appendChild(groups[key]);
        }
        var id = "explorer-" + e + "-unit-" + li + "-" + k;
        var cb = el("input", {"type": "checkbox", "id": id, "data-unit": k});
        cb.checked = true;
        cb.addEventListener("change", function () { on[k] = cb.checked; draw(); });
        boxes.push(cb);
        var label = el("label", {"for": id, "title": "unit (" + u.join(", ") + "), s = " + lat.values[k]});
        label.appendChild(cb);
        label.appendChild(document.createTextNode("c" + u[2] + " " + lat.values[k].toFixed(2) + " "));
        groups[key].appendChild(label);
      });
      function setAll(v) { boxes.forEach(function (cb, k) { cb.checked = v; on[k] = v; }); draw(); }
      // A click on the image toggles the OR node under it: all units of that grid position
      // off when any is on, else all on.
      canvas.addEventListener("click", function (ev) {
        var r = canvas.getBoundingClientRect(), G = data.grid;
        var gx = Math.min(G - 1, Math.floor((ev.clientX - r.left) / r.width * G));
        var gy = Math.min(G - 1, Math.floor((ev.clientY - r.top) / r.height * G));
        var here = [];
        lat.units.forEach(function (u, k) { if (u[0] === gy && u[1] === gx) here.push(k); });
        var any = here.some(function (k) { return on[k]; });
        here.forEach(function (k) { on[k] = !any; boxes[k].checked = !any; });
        draw();
      });
      allOn.addEventListener("click", function () { setAll(true); });
      allOff.addEventListener("click", function () { setAll(false); });
      box.appendChild(list);
      root.appendChild(box);
      state.latents.push({on: on, draw: draw});
      draw();
    });
  });
  document.documentElement.setAttribute("data-explorer-ready", "1");
})();
"""


def _explorer_section(data: dict, index: int) -> str:
    """An explorer block: its data (JSON in a script tag) and the place the script fills."""
    payload = json.dumps(data).replace("</", "<\\/")
    return (f"<section class='explorer' id='explorer-{index}'><h2>Interactive explorer: layer "
            f"{html.escape(str(data.get('layer', '')))}</h2>"
            "<p>Every active unit of the layer is a toggle (grouped by position: each position is an OR node "
            "whose chosen children are the channels kept there; the number is the unit's activation). Switching "
            "units off and on recomposes the image here from the stored basis functions, exactly as the "
            "generator with the gates of this latent fixed: tanh(bias part + sum of activation x basis over "
            "the units that are on). All units off leaves the bias part. A click on the image switches the "
            "OR node under it (all units of that position) off, or on again.</p>"
            f"<script type='application/json' class='explorer-data'>{payload}</script>"
            "<div class='explorer-root'></div></section>")


def _read_explorer(path: str) -> Optional[dict]:
    """The explorer data in `path` (a JSON of kind basis_explorer), or None."""
    if not path.endswith("explorer.json") or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and data.get("kind") == EXPLORER_KIND else None


# Which way each metric improves (by name prefix), shown in the report.
_BETTER = (("fd", "lower"), ("fid", "lower"), ("kid", "lower"), ("mse_mean_image", "(baseline)"), ("mse", "lower"),
           ("is_", "higher"),
           ("ncc_lift", "higher"), ("ncc_untrained", "(floor)"), ("ncc", "higher"), ("purity", "higher"),
           ("object_purity", "higher"), ("locality", "higher"), ("stripe_ratio", "closer to 1"),
           ("hf_ratio", "closer to 1"), ("active_", "(k sets it)"))


def better_direction(name: str) -> str:
    for prefix, direction in _BETTER:
        if name == prefix or name.startswith(prefix if prefix.endswith("_") else prefix + "_"):
            return direction
    return ""


def write_html_report(report: dict, path: str) -> str:
    """A self-contained page (no network, no server): metrics table, figures by relative path, and
    an interactive explorer (inline data and script) for each figure that is explorer data
    (a `*explorer.json` of kind "basis_explorer", written by a family's `interpretation_figures`)."""
    rows = []
    for name, entry in report["metrics"].items():
        value = entry["value"]
        shown = f"{value:.5g}" + (f" ± {entry['std']:.3g}" if "std" in entry else "")
        if "num_subsets" in entry:
            shown += f" ({entry['num_subsets']} subset{'s' if entry['num_subsets'] > 1 else ''} of {entry['subset_size']})"
        where = ", ".join(f"{k}={entry[k]}" for k in ("feature_net", "num_samples", "dataset", "split", "of")
                          if k in entry)
        rows.append(f"<tr><td>{html.escape(name)}</td><td>{html.escape(better_direction(name))}</td>"
                    f"<td>{shown}</td><td>{html.escape(where)}</td></tr>")
    timing_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{v:.2f}</td></tr>" for k, v in report["timing"].items())
    ema = report.get("ema") or {}
    ema_text = (f"generator EMA decay {ema['decay']:g}, {'averaged' if ema.get('averaged_weights_used') else 'raw'} "
                "weights evaluated" if ema.get("decay") else "no generator EMA")
    figures, explorers = [], []
    base = os.path.dirname(os.path.abspath(path))
    for title, rel in report["figures"].items():
        data = _read_explorer(os.path.join(base, rel)) if rel.endswith(".json") else None
        if data is not None:
            explorers.append(_explorer_section(data, len(explorers)))
        elif rel.endswith(".png"):
            figures.append(f"<figure><img src='{html.escape(rel)}' alt='{html.escape(title)}'>"
                           f"<figcaption>{html.escape(title)}</figcaption></figure>")
        else:
            figures.append(f"<p><a href='{html.escape(rel)}'>{html.escape(title)}</a></p>")
    script = f"<script>{_EXPLORER_JS}</script>" if explorers else ""
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>tf_sparse_gen evaluation: {html.escape(report['model'])}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:4px 8px}}img,canvas{{image-rendering:pixelated;max-width:100%}}
figure{{display:inline-block;margin:1em;vertical-align:top}}
.explorer-latent{{display:inline-block;vertical-align:top;margin:1em;max-width:40em}}
.explorer-units{{max-height:20em;overflow:auto;font-size:80%}}.explorer-or{{margin:2px 0}}</style></head><body>
<h1>{html.escape(report['model'])} ({html.escape(report['preset'])}) at step {report['step']}</h1>
<p>Step {report['step']}, preset {html.escape(report['preset'])}, {html.escape(ema_text)}.<br>
Run: {html.escape(report['model_dir'])}<br>Reference: {html.escape(report['reference']['dataset'])}
split {html.escape(report['reference']['split'])}, {report['num_samples']} images.
<code>fd_*/kid_*/is_*</code> use the named in-domain feature network and are not Inception FID.</p>
<table><tr><th>metric</th><th>better</th><th>value</th><th>measured on</th></tr>{''.join(rows)}</table>
<h2>Timing</h2>
<table><tr><th>what</th><th>value</th></tr>{timing_rows}</table>
{''.join(figures)}
{''.join(explorers)}
{script}
</body></html>
"""
    with open(path, "w") as f:
        f.write(page)
    return path
