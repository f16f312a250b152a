# syntax=docker/dockerfile:1
#
# The fallback processor image: one static binary on distroless, run as
# non-root. The same image runs every subcommand (run, topics create,
# providers, load); docker-compose.yml uses it for all of them.
#
#   docker build -t fallbackd/fallback:dev .
#   docker run --rm -e FALLBACK_BROKERS=... -e FALLBACK_REDIS_URL=... fallbackd/fallback:dev

FROM golang:1.26 AS build
WORKDIR /src
ENV CGO_ENABLED=0 GOFLAGS=-buildvcs=false
# Dependencies first, so they stay cached while the sources change.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod \
    go mod download
COPY . .
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    go build -trimpath -ldflags="-s -w" -o /out/fallback ./cmd/fallback

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/fallback /fallback
# distroless's nonroot user (65532); the :nonroot tag sets it too.
USER 65532:65532
ENTRYPOINT ["/fallback"]
CMD ["run"]
