package deploy

import (
	"regexp"
	"strings"
	"testing"
)

// The Dockerfile cannot be built here (no Docker engine); this checks what
// can be checked without one.
func TestDockerfile(t *testing.T) {
	df := string(readFile(t, "Dockerfile"))
	froms := regexp.MustCompile(`(?m)^FROM\s+(\S+\s+)*?(\S+)(\s+AS\s+\S+)?\s*$`).FindAllStringSubmatch(df, -1)
	if len(froms) < 2 {
		t.Fatalf("want a multi-stage build, got %d stages", len(froms))
	}
	final := froms[len(froms)-1][2]
	if !strings.HasPrefix(final, "gcr.io/distroless/static") || !strings.HasSuffix(final, ":nonroot") {
		t.Errorf("final stage %s: want distroless static, nonroot", final)
	}
	for _, want := range []string{"CGO_ENABLED=0", "./cmd/sequoia", "USER 65532:65532", `ENTRYPOINT ["/usr/local/bin/sequoia"]`, "SEQUOIA_ADMIN_LISTEN=:9090", "EXPOSE 8080 9090",
		"ENV SEQUOIA_STATE_DIR=/var/lib/sequoia", "VOLUME /var/lib/sequoia", "--chown=65532:65532 /out/state /var/lib/sequoia"} {
		if !strings.Contains(df, want) {
			t.Errorf("Dockerfile lacks %q", want)
		}
	}
	// The builder's Go is the one the module asks for.
	gomod := string(readFile(t, "../go.mod"))
	goLine := regexp.MustCompile(`(?m)^go (\S+)$`).FindStringSubmatch(gomod)
	arg := regexp.MustCompile(`(?m)^ARG GO_VERSION=(\S+)$`).FindStringSubmatch(df)
	if goLine == nil || arg == nil || goLine[1] != arg[1] {
		t.Errorf("Dockerfile GO_VERSION %v, go.mod go %v: keep them equal", arg, goLine)
	}
}
