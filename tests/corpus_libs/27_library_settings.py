"""A ride-analytics report that sets its libraries' process-wide settings first, the way notebooks turned jobs
do: pandas display options (`pd.set_option`, `pd.options...`) for the tables it renders as text, and matplotlib
rcParams for the charts it writes as SVG. The settings are the libraries' registries, not objects of the job: after
a restore the tables came out with six decimals and the charts with the default line width and no grid."""
import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def fares(seed, n):
    rng = np.random.default_rng(seed)
    zones = np.array(["north", "south", "east", "west", "centre"])
    return pd.DataFrame({"zone": zones[rng.integers(0, 5, n)], "km": rng.gamma(2.0, 3.0, n),
                         "fare": rng.gamma(3.0, 4.0, n), "hour": rng.integers(0, 24, n)})


def smooth(v, passes):
    out = list(v)
    for _ in range(passes):  # plain Python work between the library calls
        out = [out[0]] + [(a + 2 * b + c) / 4 for a, b, c in zip(out, out[1:], out[2:])] + [out[-1]]
    return out


def main(inp):
    pd.set_option("display.precision", 2)
    pd.options.display.max_rows = 6
    plt.rcParams["lines.linewidth"] = 3.25
    plt.rcParams.update({"axes.grid": True, "svg.hashsalt": "ml"})
    out = []
    for r in range(inp["rounds"]):
        df = fares(inp["seed"] + r, inp["n"])
        by_hour = df.groupby("hour")["fare"].mean()
        curve = smooth(by_hour.tolist(), inp["passes"])
        table = df.groupby("zone")[["km", "fare"]].mean()
        fig, ax = plt.subplots(figsize=(4, 3), dpi=50)
        ax.plot(curve)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None})
        plt.close(fig)
        svg = buf.getvalue()
        out.append({"table": table.to_string(), "long": str(df.head(20)).splitlines()[-1],
                    "width": svg.count("stroke-width: 3.25"), "paths": svg.count("<path"),
                    "curve": round(curve[5], 6)})
    return out
