"""Logging configured by the job while it runs, and the process's standard streams held in its state: a
StreamHandler on sys.stderr (which refused every checkpoint while held), `out = sys.stdout`, a handler into a
StringIO whose text is the result (log lines after a restore went nowhere: the logging module's loggers are
kept by name), a level and a filter set on a logger, propagation turned off, and basicConfig on the root."""
import io
import logging
import sys


class Even(logging.Filter):
    def filter(self, record):
        return record.args[0] % 2 == 0 if record.args else True


def work(i, n=150):
    s = 0
    for k in range(n):
        s = (s * 31 + i + k) % 1000003
    return s


def main(inp):
    log = logging.getLogger("job.main")
    sink = io.StringIO()
    h = logging.StreamHandler(sink)
    h.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    log.addHandler(h)
    log.setLevel(logging.DEBUG)
    log.propagate = False
    err = logging.StreamHandler(sys.stderr)
    err.setLevel(logging.CRITICAL)  # nothing reaches it: the test's stderr stays quiet
    log.addHandler(err)
    quiet = logging.getLogger("job.quiet")
    quiet.addFilter(Even())
    quiet.addHandler(logging.StreamHandler(sink))
    quiet.propagate = False
    root_sink = io.StringIO()
    logging.basicConfig(stream=root_sink, level=logging.WARNING, format="root %(message)s", force=True)
    out = sys.stdout
    t = 0
    for i in range(inp["n"]):
        t = (t + work(i)) % 1000003
        if i % 50 == 0:
            logging.getLogger("job.main").debug("step %d total %d", i, t)
            logging.getLogger("job.quiet").info("%d", i // 50)
            logging.warning("checkpointable %d", i)
    lines = sink.getvalue().splitlines()
    return [t, len(lines), lines[:3], lines[-3:], root_sink.getvalue().count("\n"), out is sys.stdout,
            h.stream is sink, err.stream is sys.stderr]
