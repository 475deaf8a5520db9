# The operator image: docker build -t selfbootstrap-operator:0.1.0 .
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN pip install --no-cache-dir --prefix=/install .

FROM python:3.11-slim
# git: the run's git workflow shells out to the real git (argument lists, never a shell).
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
USER 65532:65532
ENV PYTHONUNBUFFERED=1
ENTRYPOINT ["selfbootstrap-operator"]
CMD ["--liveness=http://0.0.0.0:8080/healthz", "--metrics-bind-address=:9090", "--log-format=json"]
