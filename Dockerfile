# The CryptoBot project image: Dagster webserver/daemon, the API and the dashboard all run
# from it (docker-compose.yml picks the command). PySpark needs a Java 17 runtime.
FROM python:3.11-slim-bookworm

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DAGSTER_HOME=/opt/dagster/home \
    JAVA_HOME=/usr/lib/jvm/java-17

# procps: Spark's launcher scripts call `ps`.
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless procps \
    && ln -s "/usr/lib/jvm/java-17-openjdk-$(dpkg --print-architecture)" "$JAVA_HOME" \
    && rm -rf /var/lib/apt/lists/* \
    && java -version

WORKDIR /opt/cryptobot

# Dependencies first, so a code change does not reinstall them.
COPY pyproject.toml README.md ./
COPY cryptobot_core/__init__.py cryptobot_core/__init__.py
RUN mkdir -p cryptobot_assets cryptobot_api dashboard \
    && touch cryptobot_assets/__init__.py cryptobot_api/__init__.py dashboard/__init__.py \
    && pip install ".[deploy]" \
    && pip uninstall -y cryptobot

COPY cryptobot_core cryptobot_core
COPY cryptobot_assets cryptobot_assets
COPY cryptobot_api cryptobot_api
COPY dashboard dashboard
COPY deploy deploy
COPY workspace.yaml ./
RUN pip install --no-deps . \
    && useradd --create-home --uid 10001 cryptobot \
    && mkdir -p "$DAGSTER_HOME/storage" /opt/cryptobot/data \
    && chown -R cryptobot:cryptobot "$DAGSTER_HOME" /opt/cryptobot/data

USER cryptobot
EXPOSE 3000 8000 8501
# docker-compose.yml sets the command per service; alone, the image serves the API.
CMD ["uvicorn", "cryptobot_api.main:app", "--host", "0.0.0.0", "--port", "8000"]
