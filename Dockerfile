# dsnparse serve in a container: a slim Python, the wheel built from this checkout, a
# non-root user, state in a volume.  The RUN steps are the shell steps of README's
# "Docker" section, in the same order (tests/test_deploy.py compares them).
#   docker build -t dsnparse .
#   docker run -d -p 127.0.0.1:8025:8025 -e DSNPARSE_API_TOKEN=... -v dsnparse:/var/lib/dsnparse dsnparse
FROM python:3.12-slim AS build
WORKDIR /src
COPY . .
RUN python -m pip install --no-cache-dir build
RUN python -m build --wheel --outdir /dist

FROM python:3.12-slim
COPY --from=build /dist /dist
RUN python -m pip install --no-cache-dir "$(ls /dist/dsnparse-*.whl)[serve]" && rm -r /dist
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/dsnparse --create-home dsnparse
USER dsnparse
ENV DSNPARSE_DB=/var/lib/dsnparse/ledger.sqlite3 \
    DSNPARSE_CACHE_DIR=/var/lib/dsnparse/cache
WORKDIR /var/lib/dsnparse
VOLUME /var/lib/dsnparse
EXPOSE 8025
CMD ["dsnparse", "serve", "--host", "0.0.0.0", "--port", "8025", "--db", "/var/lib/dsnparse/ledger.sqlite3"]
