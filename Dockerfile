# One image for every eventyard role; the role comes from EVENTYARD_ROLES (default: all).
#   docker build -t eventyard .
#   docker run -e EVENTYARD_LOG=nats://nats:4222 -e EVENTYARD_STATE=postgresql://... \
#              -e EVENTYARD_ROLES=collect -p 8080:8080 eventyard
# See docs/deployment.md.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/eventyard \
    && /opt/eventyard/bin/pip install --no-cache-dir --upgrade pip \
    && /opt/eventyard/bin/pip install --no-cache-dir .

FROM python:3.11-slim
RUN useradd --system --create-home --home-dir /var/lib/eventyard eventyard
COPY --from=build /opt/eventyard /opt/eventyard
ENV PATH=/opt/eventyard/bin:$PATH \
    EVENTYARD_HOST=0.0.0.0 \
    EVENTYARD_PORT=8080 \
    EVENTYARD_DATA_DIR=/var/lib/eventyard/data
USER eventyard
WORKDIR /var/lib/eventyard
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s \
    CMD python -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/ready', timeout=2).status == 200 else 1)"
ENTRYPOINT ["eventyard"]
CMD ["serve"]
