def mandel(cx, cy, limit):
    x = y = 0.0
    for k in range(limit):
        x, y = x * x - y * y + cx, 2 * x * y + cy
        if x * x + y * y > 4.0:
            return k
    return limit


def main(inp):
    n = inp["n"]
    rows = []
    for j in range(n):
        row = 0
        for i in range(n):
            row += mandel(-2.0 + 2.5 * i / n, -1.25 + 2.5 * j / n, 60)
        rows.append(row)
    return [sum(rows), rows[:5]]
