# tether: build with uv from the lock file, run as a non-root user.
# The build steps are the commands CI runs (`uv sync --frozen`), without the dev group.

FROM python:3.11-slim AS build
COPY --from=ghcr.io/astral-sh/uv:0.13 /uv /usr/local/bin/uv
ENV UV_LINK_MODE=copy UV_COMPILE_BYTECODE=1 UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY src ./src
RUN uv sync --frozen --no-dev

FROM python:3.11-slim
RUN useradd --create-home --uid 10001 tether
COPY --from=build --chown=tether:tether /app /app
ENV PATH=/app/.venv/bin:$PATH \
    TETHER_HOST=0.0.0.0 \
    TETHER_PORT=8080 \
    TETHER_DATA_DIR=/home/tether/.tether
USER tether
WORKDIR /home/tether
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status == 200 else 1)"
ENTRYPOINT ["tether"]
CMD ["up"]
