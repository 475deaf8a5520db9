# The operator image:
#   docker build -t ghcr.io/selfbootstrap/selfbootstrap-operator:0.1.0 .
# The image name is set in one place per install method: `images:` in manifests/common/kustomization.yaml,
# `image.repository` / `image.tag` in the Helm chart's values.
FROM python:3.11-slim AS build
WORKDIR /src
# Dependencies first, in a layer of their own: a change to the code does not reinstall them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > requirements.txt \
    && pip install --no-cache-dir --prefix=/install -r requirements.txt
COPY README.md LICENSE ./
COPY operator ./operator
RUN pip install --no-cache-dir --no-deps --prefix=/install .

FROM python:3.11-slim
# git: the run's git workflow shells out to the real git (argument lists, never a shell).
RUN apt-get update && apt-get install -y --no-install-recommends git ca-certificates \
    && rm -rf /var/lib/apt/lists/*
COPY --from=build /install /usr/local
USER 65532:65532
ENV PYTHONUNBUFFERED=1
EXPOSE 8080 9090
ENTRYPOINT ["selfbootstrap-operator"]
CMD ["--liveness=http://0.0.0.0:8080/healthz", "--metrics-bind-address=:9090", "--log-format=json"]
