# promptctl serve: the release's static (musl) binary and a CA bundle, nothing else. Nothing
# is compiled or downloaded here, so the build pulls no image at all (FROM scratch). The
# build context holds what the image copies (scripts/docker-context.sh lays it out from
# release archives or a local musl build):
#   ca-certificates.crt        the CA bundle (providers and PostgreSQL over TLS)
#   bin/amd64/promptctl        x86_64-unknown-linux-musl
#   bin/arm64/promptctl        aarch64-unknown-linux-musl
# Build: docker build -t promptctl context/   (buildx sets TARGETARCH for each platform)
FROM scratch

ARG TARGETARCH=amd64

LABEL org.opencontainers.image.title="promptctl" \
      org.opencontainers.image.description="promptctl serve: the prompts registry over HTTP (JSON API, metrics, dashboard)"

COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY bin/${TARGETARCH}/promptctl /usr/local/bin/promptctl

ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt \
    PROMPTCTL_HEALTHCHECK_URL=http://127.0.0.1:8080/healthz

# Any unprivileged id works: the image has no /etc/passwd and needs none.
USER 65532:65532

EXPOSE 8080

# `serve` answers /healthz without the database; the check is the binary itself (no curl
# here), bounded by its own timeout.
HEALTHCHECK --interval=30s --timeout=10s --start-period=5s --retries=3 \
  CMD ["/usr/local/bin/promptctl", "healthcheck", "--timeout", "5"]

ENTRYPOINT ["/usr/local/bin/promptctl"]
# Off loopback, serve needs tokens: PROMPTCTL_READ_TOKENS, PROMPTCTL_RUN_TOKENS, and
# DATABASE_URL for PostgreSQL.
CMD ["serve", "--listen", "0.0.0.0:8080"]
