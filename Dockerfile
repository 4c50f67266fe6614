# One image for every role of the mesh (nats, node, placement, loadgen); the role is the command.
# Not built on the development machines (no Docker engine there): keep it minimal and honest.
FROM rust:1.95-bookworm AS build
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 python3.11-dev python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN python3.11 -m venv .venv && .venv/bin/pip install --no-cache-dir -r python/requirements.txt \
    && cargo build --release --workspace --bins

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends python3.11 libpython3.11 python3.11-venv \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
# The venv must sit at the path the binary was built against (its interpreter and site-packages).
COPY --from=build /src/.venv /src/.venv
COPY --from=build /src/target/release/microlambda /src/target/release/microlambda-loadgen /usr/local/bin/
COPY configs ./configs
COPY python ./python
ENV PATH=/src/.venv/bin:$PATH MICROLAMBDA_PYTHON=/src/.venv/bin/python
ENTRYPOINT ["microlambda"]
