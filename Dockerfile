# kmt container image: a static binary on distroless, running as non-root.
#   make image IMAGE=registry.example.com/kmt:v1   (make push to publish)
FROM golang:1.26.8-bookworm AS build
WORKDIR /src
ENV GOTOOLCHAIN=local CGO_ENABLED=0
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/kmt ./cmd/kmt

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/kmt /kmt
USER 65532:65532
ENTRYPOINT ["/kmt"]
