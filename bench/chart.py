"""The PNG chart of one run (needs matplotlib: run it with bench/.venv's python).

    bench/.venv/bin/python -m bench.chart results.json chart.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def draw(results: dict, dest: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.8))
    api = results.get("api") or {}
    ops = sorted({k for r in api.values() for k in (r.get("ops") or {})})
    series = [("vidgate", "vidgate", "#2b7bba"),
              ("vidgate_api_only", "vidgate, API only", "#9ecae1"),
              ("litellm", "LiteLLM", "#d9822b")]
    series = [s for s in series if api.get(s[0])]
    width = 0.8 / max(1, len(series))
    ax = axes[0]
    for index, (name, label, color) in enumerate(series):
        row = (api.get(name) or {}).get("ops") or {}
        offset = (index - (len(series) - 1) / 2) * width
        values = [row.get(op, {}).get("rps", 0) for op in ops]
        bars = ax.bar([i + offset for i in range(len(ops))], values, width, label=label,
                      color=color)
        ax.bar_label(bars, fmt="%.0f", fontsize=7)
    ax.set_xticks(range(len(ops)), [op.replace("_c", "\nc=") for op in ops])
    ax.set_yscale("log")
    ax.set_ylabel("requests / s (log)")
    ax.set_title("API throughput (server on 1 core)")
    ax.legend()

    ax = axes[1]
    dl = results.get("downloads") or {}
    labels = [("nginx_static", "nginx\n(disk)"), ("vidgate_content", "vidgate\n/content"),
              ("vidgate_signed", "vidgate\n/files"), ("litellm_content", "LiteLLM\n/content")]
    shown = [(key, label) for key, label in labels if dl.get(key)]
    bars = ax.bar([label for _, label in shown], [dl[k]["mib_per_s"] for k, _ in shown],
                  color=["#777777", "#2b7bba", "#2b7bba", "#d9822b"][: len(shown)])
    ax.bar_label(bars, fmt="%.0f", fontsize=8)
    ax.set_ylabel("MiB / s")
    ax.set_title(f"Downloading a {dl.get('bytes', 0) / 2**20:.0f} MiB video")

    ax = axes[2]
    width = 0.4
    fp = results.get("footprint") or {}
    names = [n for n in ("vidgate", "litellm") if fp.get(n)]
    idle = [fp[n].get("idle_rss_mib") or 0 for n in names]
    load = [fp[n].get("load_rss_mib") or 0 for n in names]
    xs = range(len(names))
    b1 = ax.bar([x - width / 2 for x in xs], idle, width, label="idle", color="#9ecae1")
    b2 = ax.bar([x + width / 2 for x in xs], load, width, label="under API load",
                color="#3182bd")
    ax.bar_label(b1, fmt="%.0f", fontsize=8)
    ax.bar_label(b2, fmt="%.0f", fontsize=8)
    ready = [fp[n].get("ready_s") or 0 for n in names]
    ax.set_xticks(list(xs), [f"{n}\nready {r:.1f} s" for n, r in zip(names, ready,
                                                                      strict=True)])
    ax.set_ylabel("RSS MiB")
    ax.set_title("Footprint")
    ax.legend()

    fig.suptitle(f"vidgate vs LiteLLM {'(quick run) ' if results.get('quick') else ''}"
                 f"- {results.get('finished_at', '')}")
    fig.tight_layout()
    fig.savefig(dest, dpi=110)
    plt.close(fig)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit("usage: python -m bench.chart results.json chart.png")
    draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))


if __name__ == "__main__":
    main()
