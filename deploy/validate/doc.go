// Package validate checks Herald's deployment files where no container
// engine or cluster runs: every Kubernetes manifest decodes strictly into
// the Kubernetes API types and the kustomizations build; the Compose file
// loads under the Compose specification; the Grafana dashboard's queries
// parse as PromQL and name only series that a live `herald worker` serves;
// and the Dockerfile's build lines compile the same bytes as `go build`.
//
// It is a module of its own so that the Kubernetes, Compose and Prometheus
// libraries it needs stay out of Herald's module. It has no code to import,
// only tests, run from CI with `(cd deploy/validate && go test ./...)`.
// Herald's internal packages cannot be imported from here, so the tests
// drive the herald binary, built from the repository, as a user would.
package validate
