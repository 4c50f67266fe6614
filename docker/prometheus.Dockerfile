# Prometheus for the compose testbed, from Debian's package (no registry needed: BASE_IMAGE as in Dockerfile).
# Built by `make images` with configs/ as its context; the scrape configuration is configs/prometheus.yml.
ARG BASE_IMAGE=debian:bookworm-slim
FROM ${BASE_IMAGE}
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends prometheus \
    && rm -rf /var/lib/apt/lists/*
COPY prometheus.yml /etc/microlambda/prometheus.yml
USER prometheus
EXPOSE 9090
ENTRYPOINT ["prometheus", "--config.file=/etc/microlambda/prometheus.yml", "--storage.tsdb.path=/var/lib/prometheus/metrics2", "--web.listen-address=0.0.0.0:9090", "--web.console.libraries=/usr/share/prometheus/console_libraries", "--web.console.templates=/usr/share/prometheus/consoles"]
