"""scipy.optimize: minimize a Python objective (BFGS, Nelder-Mead, L-BFGS-B with bounds), curve_fit a model,
root finding (brentq, fsolve), linear programming."""
import math

import numpy as np
from scipy import optimize


def rosen(p):
    return sum(100.0 * (p[i + 1] - p[i] ** 2) ** 2 + (1 - p[i]) ** 2 for i in range(len(p) - 1))


def model(x, a, b, c):
    return a * np.exp(-b * x) + c


def main(inp):
    return [fit(inp["dims"], s) for s in range(inp["starts"])]


def fit(dims, start):
    out = {}
    x0 = [-1.2 + 0.1 * start, 1.0, 0.5 - 0.05 * start, -0.3][:dims]
    for method in ("BFGS", "Nelder-Mead", "L-BFGS-B"):
        kw = {"bounds": [(-2, 2)] * len(x0)} if method == "L-BFGS-B" else {}
        r = optimize.minimize(rosen, x0, method=method, options={"maxiter": 4000}, **kw)
        out[method] = [round(float(v), 6) for v in r.x] + [int(r.nfev)]
    xs = np.linspace(0, 4, 80)
    ys = model(xs, 2.5, 1.3, 0.5) + 0.01 * np.sin(xs * 37)
    popt, _ = optimize.curve_fit(model, xs, ys, p0=(1, 1, 1))
    out["fit"] = [round(float(v), 8) for v in popt]
    out["brentq"] = round(optimize.brentq(lambda x: math.cos(x) - x, 0, 1), 12)
    out["fsolve"] = [round(float(v), 10) for v in optimize.fsolve(lambda v: [v[0] ** 2 + v[1] ** 2 - 4, v[0] - v[1] ** 3], [1, 1])]
    lp = optimize.linprog(c=[-1, -2, -3], A_ub=[[1, 1, 1], [2, 1, 0], [0, 1, 3]], b_ub=[10, 12, 15], bounds=[(0, None)] * 3)
    out["lp"] = [round(float(v), 9) for v in lp.x] + [round(float(lp.fun), 9)]
    out["scalar"] = round(float(optimize.minimize_scalar(lambda x: (x - 2) ** 4 + math.sin(x), bounds=(0, 5), method="bounded").x), 7)
    return out
