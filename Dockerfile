# The sidecar as a container image: one static binary on an empty base,
# run as an unprivileged user (65532), with a HEALTHCHECK on /healthz.
#
#   podman build -t sidecar .        or        docker build -t sidecar .
#
# GO_IMAGE is the build stage: any image with Go (of go.mod's version or
# newer) on PATH and the CA bundle at /etc/ssl/certs/ca-certificates.crt.
# GOPROXY is the module proxy (Go's default when unset); tests/container
# builds offline with GOPROXY=off and the host's module cache mounted at
# /go/pkg/mod and the host's build cache at /root/.cache/go-build.
# HEALTHCHECK is kept in Docker's image format only: build with
# podman build --format docker.
ARG GO_IMAGE=docker.io/library/golang:1.26-bookworm

FROM ${GO_IMAGE} AS build
ARG GOPROXY
ENV CGO_ENABLED=0
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN go build -trimpath -ldflags='-s -w' -o /out/sidecar . \
 && mkdir -p /out/root/etc /out/root/media /out/root/tmp \
 && echo 'sidecar:x:65532:65532:sidecar:/nonexistent:/sbin/nologin' >/out/root/etc/passwd \
 && echo 'sidecar:x:65532:' >/out/root/etc/group \
 && chown 65532:65532 /out/root/media && chmod 1777 /out/root/tmp

FROM scratch
COPY --from=build /out/root/ /
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /out/sidecar /sidecar
USER 65532:65532
ENV MEDIA_ROOT=/media
EXPOSE 8001
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 CMD ["/sidecar", "healthcheck"]
ENTRYPOINT ["/sidecar"]
