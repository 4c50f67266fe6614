"""pandas: build frames, groupby/agg, merge, pivot, rolling windows, string and categorical columns."""
import numpy as np
import pandas as pd


def main(inp):
    return [day(d, inp["n"]) for d in range(inp["days"])]


def day(d, n):
    rng = np.random.default_rng(8 + d)
    trips = pd.DataFrame({
        "taxi": rng.integers(0, 40, n),
        "zone": rng.choice(["centre", "north", "south", "east", "west"], n),
        "km": rng.gamma(2.0, 3.0, n).round(3),
        "minutes": rng.integers(3, 60, n),
        "hour": rng.integers(0, 24, n),
    })
    taxis = pd.DataFrame({"taxi": range(40), "driver": [f"d{i:02d}" for i in range(40)], "ev": [i % 3 == 0 for i in range(40)]})
    g = trips.groupby("zone").agg(trips=("km", "size"), km=("km", "sum"), mean_min=("minutes", "mean")).round(6)
    merged = trips.merge(taxis, on="taxi", how="left")
    ev = merged.groupby(["ev", "zone"])["km"].sum().round(6)
    pivot = trips.pivot_table(index="hour", columns="zone", values="minutes", aggfunc="median").fillna(-1)
    by_taxi = trips.sort_values(["taxi", "hour", "km"]).groupby("taxi")["km"].apply(lambda s: s.rolling(5, min_periods=1).mean().iloc[-1])
    top = merged.assign(speed=merged.km / merged.minutes * 60).nlargest(5, "speed")[["driver", "zone", "speed"]]
    top["speed"] = top["speed"].round(9)
    merged["band"] = pd.cut(merged.km, [0, 2, 5, 10, 1000], labels=["short", "mid", "long", "far"])
    return {
        "zones": g.reset_index().to_dict("records"),
        "ev": {f"{k[0]}/{k[1]}": v for k, v in ev.items()},
        "pivot": pivot.astype(float).to_dict("list"),
        "by_taxi": by_taxi.round(9).tolist(),
        "top": top.to_dict("records"),
        "bands": merged.band.value_counts().sort_index().to_dict(),
        "drivers": merged.driver.str.upper().str[:2].value_counts().to_dict(),
    }
