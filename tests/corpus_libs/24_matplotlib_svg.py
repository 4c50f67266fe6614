"""matplotlib (Agg): figures with several lines, a legend and a title, written to SVG in memory; `rounds` times.
The SVG backend draws text as paths through FreeType fonts (a C object from a cache) and forwards its arguments
through bound methods (`Figure.savefig` -> `print_figure(**kwargs)`)."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def main(inp):
    out = []
    for r in range(inp["rounds"]):
        x = np.linspace(0, 4 * np.pi, 400)
        fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
        for k in range(5):
            ax.plot(x, np.sin(x * (k + 1) + r), label=f"k={k}")
        ax.legend(loc="upper right")
        ax.set_title(f"round {r}")
        buf = io.BytesIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        svg = buf.getvalue()
        out.append([len(svg) > 1000, svg.count(b"<path"), [round(float(v), 6) for v in ax.get_xlim()]])
    return out
