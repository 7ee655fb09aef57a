# syntax=docker/dockerfile:1
# Nurture: one static binary on a distroless base.
#
#   docker build -t nurture .
#   docker run --rm nurture --help
#
# The image carries the example content at /content (NURTURE_CONTENT_DIR);
# mount your own content over it. It runs as an unprivileged user and listens
# on 0.0.0.0:8080.

FROM golang:1.26-alpine AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-trimpath
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    go build -ldflags="-s -w" -o /out/nurture ./cmd/nurture && \
    /out/nurture validate /src/examples

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/nurture /nurture
COPY --from=build /src/examples /content
ENV NURTURE_HTTP_ADDR=0.0.0.0:8080 \
    NURTURE_CONTENT_DIR=/content \
    NURTURE_LOG_FORMAT=json
USER nonroot:nonroot
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s CMD ["/nurture", "healthcheck"]
ENTRYPOINT ["/nurture"]
CMD ["serve"]
