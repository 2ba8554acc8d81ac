# One image for `navigator edge` and `navigator manager`: the command is the container's arguments.
#   docker build -t navigator .
#   docker run --rm -v $PWD/edge.yaml:/etc/navigator/edge.yaml navigator edge --config /etc/navigator/edge.yaml
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY navigator ./navigator
COPY plugins ./plugins
RUN pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
RUN useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin navigator
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir --no-index --find-links=/wheels navigator && rm -rf /wheels
USER 10001
ENTRYPOINT ["navigator"]
CMD ["edge", "--config", "/etc/navigator/edge.yaml"]
