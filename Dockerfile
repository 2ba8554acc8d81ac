# One image for `navigator edge` and `navigator manager`: the command is the container's arguments.
#   docker build -t navigator .
#   docker run --rm -v $PWD/edge.yaml:/etc/navigator/edge.yaml navigator edge --config /etc/navigator/edge.yaml
# With plugins from contrib/ (names without the navigator-plugin- prefix, separated by spaces):
#   docker build --build-arg PLUGINS=postgres -t navigator:postgres .
# Kubernetes manifests: deploy/ (docs/deployment.md).
FROM python:3.11-slim AS build
ARG PLUGINS=""
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY navigator ./navigator
COPY plugins ./plugins
COPY contrib ./contrib
# Navigator and the plugins are given as local projects, so pip never looks `navigator` up on
# an index (where the name belongs to an unrelated project); only their dependencies come from it.
RUN set -e; projects="."; \
    for p in $PLUGINS; do \
        test -f "contrib/navigator-plugin-$p/pyproject.toml" || { echo "no plugin contrib/navigator-plugin-$p" >&2; exit 1; }; \
        projects="$projects ./contrib/navigator-plugin-$p"; \
    done; \
    pip wheel --no-cache-dir --wheel-dir /wheels $projects

FROM python:3.11-slim
ARG PLUGINS=""
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin navigator \
    && mkdir -p /var/lib/navigator && chown 10001:10001 /var/lib/navigator
COPY --from=build /wheels /wheels
RUN set -e; names="navigator"; for p in $PLUGINS; do names="$names navigator-plugin-$p"; done; \
    pip install --no-cache-dir --no-index --find-links=/wheels $names && rm -rf /wheels
USER 10001
# The manager's SQLite database goes here by default in deploy/ (a volume).
WORKDIR /var/lib/navigator
ENTRYPOINT ["navigator"]
CMD ["edge", "--config", "/etc/navigator/edge.yaml"]
