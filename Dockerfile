# syntax=docker/dockerfile:1
# One image for every deployable (case, directory, mirror, fees, the gateway): the command picks which.
# The base is pinned by digest; Renovate (or `docker buildx imagetools inspect`) gives the next one.
ARG PYTHON_IMAGE=docker.io/library/python:3.11.10-slim-bookworm@sha256:5148c0e4bbb64271bca1d3322360ebf4bfb7564507ae32dd639322e4952a6b16

# ---- build: the dependencies from the lock file, and the code generated from the protos -------------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /build
RUN python -m venv /opt/venv
COPY requirements-runtime.lock requirements.lock ./
# --no-deps: exactly what the lock lists, nothing a resolver would pick today.
RUN /opt/venv/bin/pip install --no-deps -r requirements-runtime.lock
# grpcio-tools only builds the generated code; it stays in this stage.
RUN python -m venv /opt/tools \
    && /opt/tools/bin/pip install "$(grep -E '^grpcio-tools==' requirements.lock)" "$(grep -E '^protobuf==' requirements.lock)"
COPY protos/ protos/
COPY third_party/ third_party/
COPY scripts/package_gen.py scripts/package_gen.py
RUN mkdir gen \
    && find protos -name '*.proto' -print0 | xargs -0 /opt/tools/bin/python -m grpc_tools.protoc \
        -Iprotos -Ithird_party/googleapis --python_out=gen --grpc_python_out=gen \
    && find protos -name '*.proto' -print0 | xargs -0 /opt/tools/bin/python -m grpc_tools.protoc \
        -Iprotos -Ithird_party/googleapis --include_imports --include_source_info \
        --descriptor_set_out=gen/descriptors.binpb \
    && /opt/tools/bin/python scripts/package_gen.py gen

# ---- runtime: the product's code and its dependencies, nothing else ----------------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PYTHONPATH=/app:/app/gen \
    PATH=/opt/venv/bin:$PATH
WORKDIR /app
COPY --from=build /opt/venv /opt/venv
COPY --from=build /build/gen gen/
COPY services/ services/
COPY gateway/ gateway/
# A numeric user, so that Kubernetes can check runAsNonRoot without resolving names.
USER 10001:10001
EXPOSE 8080 50051 50052 50053 50054
ENTRYPOINT ["python", "-m"]
CMD ["services.case.main"]

# ---- dev: the stand-ins and the SMTP sink, for the dev overlay only --------------------------------------
FROM runtime AS dev
COPY upstreams/ upstreams/
COPY synthcity/ synthcity/
COPY support/ support/
COPY scripts/ scripts/
