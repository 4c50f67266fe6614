"""pandas: a time-indexed sensor series: resample, rolling, ewm, shift/diff, merge_asof, describe, to_json.
The two long JSON texts are returned as digests (the whole output stays under the node's output cap)."""
import hashlib

import numpy as np
import pandas as pd


def main(inp):
    return {f"sensor{s}": sensor(s, inp["n"]) for s in range(inp["sensors"])}


def sensor(s, n):
    idx = pd.date_range("2026-01-01", periods=n, freq="7s")
    rng = np.random.default_rng(21 + s)
    hr = pd.Series(70 + np.cumsum(rng.normal(0, 0.3, n)), index=idx, name="hr")
    resp = pd.Series(15 + np.sin(np.arange(n) / 40.0) * 3, index=idx, name="rsp")
    df = pd.concat([hr, resp], axis=1)
    df["hr_roll"] = df.hr.rolling("5min").mean()
    df["hr_ewm"] = df.hr.ewm(span=20).mean()
    df["d"] = df.hr.diff().fillna(0)
    minute = df.resample("10min").agg({"hr": ["mean", "max"], "rsp": "median", "d": "std"})
    events = pd.DataFrame({"t": pd.date_range("2026-01-01 00:03", periods=30, freq="13min"), "ev": range(30)})
    asof = pd.merge_asof(events, df.reset_index().rename(columns={"index": "t"})[["t", "hr_roll"]], on="t")
    desc = df.describe().round(8)
    return {
        "minute": digest(minute.round(8).to_json(orient="split", date_format="iso")),
        "asof": digest(asof.assign(hr_roll=asof.hr_roll.round(8)).to_json(orient="records", date_format="iso")),
        "desc": desc.to_dict(),
        "q": df.hr.quantile([0.1, 0.5, 0.9]).round(8).tolist(),
        "peaks": int((df.hr > df.hr_roll + 1).sum()),
    }


def digest(text):
    return f"{len(text)}:{hashlib.sha256(text.encode()).hexdigest()}"
