package proxy

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// APIAuth authorizes writes to sequoia's own API: registering, replacing
// and deleting DAGs (api.go). Authenticate names the caller whose
// credentials an Authorization header value carries; AllowDAG is the
// policy's decision on one write (see DAGWrite), with its reason when it
// refuses.
type APIAuth interface {
	Authenticate(authorization []byte) (caller string, ok bool)
	AllowDAG(w DAGWrite) (ok bool, reason string)
}

// DAGWrite is one write to the DAG registry, as the policy is asked
// about it.
type DAGWrite struct {
	Action string // "put" or "delete"
	DAG    string
	Caller string
	// Owner is the caller who registered the DAG now under that name;
	// "" when none is, or it was loaded from SEQUOIA_DAG_DIR.
	Owner  string
	Exists bool
	// Functions are the functions the new DAG's tasks invoke, in the
	// platform's terms, and Tenants their tenants (OpenWhisk namespaces,
	// Lambda ARN accounts), each sorted without repeats (put only).
	Functions, Tenants []string
}

// TokenFile is a file of bearer tokens, read as Kubernetes mounts a
// Secret: one token a line, as "NAME TOKEN" or a lone TOKEN (named "api");
// blank lines and lines starting with # are skipped. The file is read
// again when it changes (its size, modification time or inode), so that a
// rotated Secret takes effect without a restart; if it cannot be read
// then, the tokens read last stay.
//
// Tokens are kept as SHA-256 digests and a presented token is looked up by
// its digest, so the time a look-up takes says nothing about how much of
// a token was right.
type TokenFile struct {
	path string

	mu      sync.Mutex
	stamp   fileStamp           // REQUIRES: mu
	callers map[[32]byte]string // REQUIRES: mu
}

type fileStamp struct {
	size  int64
	mtime time.Time
	ino   uint64
}

// NewTokenFile reads path; a file that cannot be read or holds no token is
// an error.
func NewTokenFile(path string) (*TokenFile, error) {
	f := &TokenFile{path: path}
	if err := f.reload(); err != nil {
		return nil, err
	}
	return f, nil
}

// Len returns the number of tokens.
func (f *TokenFile) Len() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.callers)
}

func stampOf(st os.FileInfo) fileStamp {
	s := fileStamp{size: st.Size(), mtime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		s.ino = uint64(sys.Ino)
	}
	return s
}

// reload reads the file if it changed.
//
// REQUIRES: f.mu not held.
func (f *TokenFile) reload() error {
	st, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	stamp := stampOf(st)
	f.mu.Lock()
	same := f.callers != nil && stamp == f.stamp
	f.mu.Unlock()
	if same {
		return nil
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	callers, err := parseTokens(b)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	f.mu.Lock()
	f.stamp, f.callers = stamp, callers
	f.mu.Unlock()
	return nil
}

func parseTokens(b []byte) (map[[32]byte]string, error) {
	callers := map[[32]byte]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.Fields(line)
		name, token := "api", fields[0]
		switch len(fields) {
		case 1:
		case 2:
			name, token = fields[0], fields[1]
		default:
			return nil, fmt.Errorf("line %d: want TOKEN or NAME TOKEN", n)
		}
		if len(token) < 16 {
			return nil, fmt.Errorf("line %d: a token must have at least 16 characters", n)
		}
		sum := sha256.Sum256([]byte(token))
		if _, dup := callers[sum]; dup {
			return nil, fmt.Errorf("line %d: the same token twice", n)
		}
		callers[sum] = name
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if len(callers) == 0 {
		return nil, errors.New("no token in the file")
	}
	return callers, nil
}

var bearer = []byte("bearer ")

// Caller returns the name of the token an Authorization header value
// ("Bearer TOKEN") carries, and whether it is one of the file's.
func (f *TokenFile) Caller(authorization []byte) (string, bool) {
	if len(authorization) <= len(bearer) || !bytes.EqualFold(authorization[:len(bearer)], bearer) {
		return "", false
	}
	_ = f.reload() // a file that cannot be read now keeps the tokens read last
	sum := sha256.Sum256(bytes.TrimSpace(authorization[len(bearer):]))
	f.mu.Lock()
	defer f.mu.Unlock()
	name, ok := f.callers[sum]
	return name, ok
}
